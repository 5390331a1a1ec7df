//! Anonymous memfd segments, sized up front and sealed.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{fcntl, posix_fallocate, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::fstat;

use super::{CreateError, OpenError};
use crate::region::{Mapping, Region};

/// The seals every memfd segment carries: its size can never change again.
const SIZE_SEALS: SealFlag = SealFlag::F_SEAL_SHRINK.union(SealFlag::F_SEAL_GROW);

/// An anonymous shared-memory segment, reachable only through its file descriptor.
#[derive(Debug)]
pub struct MemfdSegment {
    fd: OwnedFd,
    map: Arc<Mapping>,
}

impl MemfdSegment {
    /// Creates a segment of `len` bytes, allocates all of it now (so a full `/dev/shm` fails
    /// here rather than with SIGBUS on first write), seals its size, and maps it read-write.
    ///
    /// `name` shows in `/proc/<pid>/fd` and `/proc/<pid>/maps` only; it need not be unique.
    pub fn create(name: &str, len: usize) -> Result<MemfdSegment, CreateError> {
        let size = i64::try_from(len)
            .ok()
            .filter(|&n| n > 0)
            .ok_or(CreateError::BadSize { size: len })?;
        let os = |call| move |errno| CreateError::Os { call, errno };
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
            .map_err(os("memfd_create"))?;
        posix_fallocate(&fd, 0, size).map_err(|errno| match errno {
            Errno::ENOSPC | Errno::ENOMEM | Errno::EFBIG => CreateError::NoSpace { size: len },
            errno => CreateError::Os {
                call: "posix_fallocate",
                errno,
            },
        })?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(SIZE_SEALS | SealFlag::F_SEAL_SEAL),
        )
        .map_err(os("fcntl(F_ADD_SEALS)"))?;
        let map = Mapping::map_fd(&fd, len, true).map_err(os("mmap"))?;
        Ok(MemfdSegment {
            fd,
            map: Arc::new(map),
        })
    }

    /// Maps a segment whose descriptor another process handed over, after checking that its
    /// size is sealed and that it holds at least `min_len` bytes.
    pub fn open(fd: OwnedFd, min_len: usize) -> Result<MemfdSegment, OpenError> {
        let os = |call| move |errno| OpenError::Os { call, errno };
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS).map_err(os("fcntl(F_GET_SEALS)"))?;
        if !SealFlag::from_bits_truncate(seals).contains(SIZE_SEALS) {
            return Err(OpenError::NotSealed { seals });
        }
        let stat = fstat(&fd).map_err(os("fstat"))?;
        let len = usize::try_from(stat.st_size).unwrap_or(0);
        if len < min_len.max(1) {
            return Err(OpenError::TooSmall {
                len,
                needed: min_len.max(1),
            });
        }
        let map = Mapping::map_fd(&fd, len, true).map_err(os("mmap"))?;
        Ok(MemfdSegment {
            fd,
            map: Arc::new(map),
        })
    }

    /// The descriptor, to hand to another process with [`super::fdpass::send_fds`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The whole segment as a region.
    pub fn region(&self) -> Region {
        Region::whole(Arc::clone(&self.map))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: segments have at least one byte.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
