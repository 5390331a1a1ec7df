//! Mapped memory and the regions carved out of it.
//!
//! A [`Mapping`] owns a span of memory: a shared mapping of a segment's file descriptor, or a
//! zeroed heap allocation that stands in for one in tests (the ring's code cannot tell them
//! apart). A [`Region`] is a reference-counted window onto a mapping, so a ring keeps its memory
//! alive for as long as a producer or consumer uses it.

use std::alloc::{self, Layout};
use std::fmt;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::Arc;

use nix::sys::mman::{self, MapFlags, ProtFlags};

/// Alignment of every mapping: a page, so any cache-line or futex alignment inside holds.
pub const PAGE: usize = 4096;

enum Backing {
    Heap(Layout),
    Mmap,
}

/// An owned span of memory that rings and headers are laid out in.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    backing: Backing,
}

// SAFETY: a Mapping is plain memory with no thread affinity. Everything that reads or writes it
// concurrently does so through atomics, or through byte ranges the ring protocol hands to exactly
// one side at a time.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared references only expose raw pointers and atomic accessors.
unsafe impl Sync for Mapping {}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("writable", &self.writable)
            .field("heap", &matches!(self.backing, Backing::Heap(_)))
            .finish()
    }
}

impl Mapping {
    /// Allocates `len` zeroed, page-aligned bytes on the heap: the memory tests run rings in.
    ///
    /// Returns `None` when `len` is zero or too large to allocate.
    pub fn heap(len: usize) -> Option<Mapping> {
        let layout = Layout::from_size_align(len, PAGE).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size, checked above.
        let ptr = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
        Some(Mapping {
            ptr,
            len,
            writable: true,
            backing: Backing::Heap(layout),
        })
    }

    /// Maps `len` bytes of `fd` shared, read-write or read-only.
    pub(crate) fn map_fd(fd: impl AsFd, len: usize, writable: bool) -> nix::Result<Mapping> {
        let length = NonZeroUsize::new(len).ok_or(nix::errno::Errno::EINVAL)?;
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        // SAFETY: we map a fresh range chosen by the kernel (no address hint), so no existing
        // Rust object is aliased; the file is sealed or owned by agentd, so it is not truncated
        // under us while mapped.
        let ptr = unsafe { mman::mmap(None, length, prot, MapFlags::MAP_SHARED, fd, 0)? };
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            writable,
            backing: Backing::Mmap,
        })
    }

    /// The first byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping is never empty. Present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the mapping may be written.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Touches every page once, so the page-table entries exist before the hot path runs and the
    /// first message pays no page fault.
    pub fn prefault(&self) {
        let mut offset = 0;
        while offset < self.len {
            // SAFETY: offset < len, so the byte is inside the mapping; a volatile read of a
            // byte that another process may be writing is a plain load on every target we run on.
            unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(offset)) };
            offset += PAGE;
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.backing {
            // SAFETY: allocated in `heap` with this very layout, and freed only here.
            Backing::Heap(layout) => unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) },
            Backing::Mmap => {
                // SAFETY: mapped in `map_fd` with this length; every Region holds an Arc of this
                // mapping, so no reference into it outlives this drop.
                let _ = unsafe { mman::munmap(self.ptr.cast(), self.len) };
            }
        }
    }
}

/// A window `[offset, offset + len)` onto a [`Mapping`], which it keeps alive.
#[derive(Clone, Debug)]
pub struct Region {
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
}

impl Region {
    /// The whole of `map`.
    pub fn whole(map: Arc<Mapping>) -> Region {
        let len = map.len();
        Region {
            map,
            offset: 0,
            len,
        }
    }

    /// A window inside this one, or `None` if `[offset, offset + len)` does not fit in it.
    pub fn sub(&self, offset: usize, len: usize) -> Option<Region> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then(|| Region {
            map: Arc::clone(&self.map),
            offset: self.offset + offset,
            len,
        })
    }

    /// The first byte of the window.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: offset <= map.len() is an invariant of every constructor.
        unsafe { self.map.as_ptr().add(self.offset) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the window has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping this window lies in.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }
}
