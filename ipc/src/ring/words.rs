//! How the ring's protocol reaches its memory: 64-bit words by byte offset.

use std::sync::atomic::{AtomicU64, Ordering};

/// The words a ring lives in, addressed by byte offset from the ring's start (multiples of 8).
///
/// Shared memory implements it with [`RawWords`]; a model checker implements it with its own
/// atomics, so the same position protocol ([`super::cursor`]) runs under loom.
pub trait Words {
    /// Atomically loads the word at `offset`.
    fn load(&self, offset: usize, order: Ordering) -> u64;
    /// Atomically stores `value` at `offset`.
    fn store(&self, offset: usize, value: u64, order: Ordering);
}

/// Words in raw (shared or heap) memory.
#[derive(Debug, Clone, Copy)]
pub struct RawWords {
    base: *mut u8,
    len: usize,
}

// SAFETY: RawWords only performs atomic accesses; the memory is kept alive by the Region held
// beside it in every Producer and Consumer.
unsafe impl Send for RawWords {}

impl RawWords {
    /// Words over `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be 8-byte aligned and valid for reads and writes of `len` bytes for as long
    /// as this value (or a copy) is used, and those bytes may only be accessed atomically by
    /// anyone else while it is.
    pub unsafe fn new(base: *mut u8, len: usize) -> RawWords {
        RawWords { base, len }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        // The protocol computes offsets from validated values only; this check turns a bug in
        // it into a panic rather than an access outside the ring.
        assert!(
            offset % 8 == 0 && offset + 8 <= self.len,
            "ring word offset {offset} outside 0..{}",
            self.len
        );
        // SAFETY: the offset is in bounds and 8-aligned (checked above, and base is aligned per
        // `new`'s contract); AtomicU64 has the layout of u64 and any bit pattern is valid.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }
}

impl Words for RawWords {
    #[inline]
    fn load(&self, offset: usize, order: Ordering) -> u64 {
        self.word(offset).load(order)
    }

    #[inline]
    fn store(&self, offset: usize, value: u64, order: Ordering) {
        self.word(offset).store(value, order)
    }
}
