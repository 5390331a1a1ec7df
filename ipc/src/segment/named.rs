//! Named POSIX shared-memory segments (`/dev/shm/<name>`).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{posix_fallocate, OFlag};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fstat, Mode};

use super::{CreateError, OpenError};
use crate::region::{Mapping, Region};

/// A named shared-memory segment. The creator unlinks it with [`NamedSegment::unlink`]; dropping
/// a handle only unmaps it.
#[derive(Debug)]
pub struct NamedSegment {
    name: String,
    map: Arc<Mapping>,
    _fd: OwnedFd,
}

fn shm_path(name: &str) -> String {
    format!("/{name}")
}

impl NamedSegment {
    /// Creates `/dev/shm/<name>` with `len` bytes, all allocated now, readable and writable by
    /// the owner only (`mode` adds more, e.g. `0o640` for an ops group; set exactly, whatever
    /// the umask). Fails if it exists.
    pub fn create(name: &str, len: usize, mode: u32) -> Result<NamedSegment, CreateError> {
        let size = i64::try_from(len)
            .ok()
            .filter(|&n| n > 0)
            .ok_or(CreateError::BadSize { size: len })?;
        let fd = shm_open(
            shm_path(name).as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode | 0o600),
        )
        .map_err(|errno| match errno {
            Errno::EEXIST => CreateError::AlreadyExists { name: name.into() },
            Errno::EACCES | Errno::EPERM => CreateError::PermissionDenied { name: name.into() },
            errno => CreateError::Os {
                call: "shm_open",
                errno,
            },
        })?;
        let fail = |err| {
            let _ = shm_unlink(shm_path(name).as_str());
            err
        };
        // Exactly `mode`, whatever the umask (which would strip the group's read bit).
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode | 0o600)).map_err(|errno| {
            fail(CreateError::Os {
                call: "fchmod",
                errno,
            })
        })?;
        posix_fallocate(&fd, 0, size).map_err(|errno| {
            fail(match errno {
                Errno::ENOSPC | Errno::ENOMEM | Errno::EFBIG => CreateError::NoSpace { size: len },
                errno => CreateError::Os {
                    call: "posix_fallocate",
                    errno,
                },
            })
        })?;
        let map = Mapping::map_fd(&fd, len, true).map_err(|errno| {
            fail(CreateError::Os {
                call: "mmap",
                errno,
            })
        })?;
        Ok(NamedSegment {
            name: name.into(),
            map: Arc::new(map),
            _fd: fd,
        })
    }

    /// Maps an existing segment, read-write or read-only (monitor tools), checking it holds at
    /// least `min_len` bytes.
    pub fn open(name: &str, writable: bool, min_len: usize) -> Result<NamedSegment, OpenError> {
        let flags = if writable {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        };
        let fd = shm_open(
            shm_path(name).as_str(),
            flags | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            Errno::ENOENT => OpenError::NoSuchSegment { name: name.into() },
            Errno::EACCES | Errno::EPERM => OpenError::PermissionDenied { name: name.into() },
            errno => OpenError::Os {
                call: "shm_open",
                errno,
            },
        })?;
        let os = |call| move |errno| OpenError::Os { call, errno };
        let len = usize::try_from(fstat(&fd).map_err(os("fstat"))?.st_size).unwrap_or(0);
        if len < min_len.max(1) {
            return Err(OpenError::TooSmall {
                len,
                needed: min_len.max(1),
            });
        }
        let map = Mapping::map_fd(&fd, len, writable).map_err(os("mmap"))?;
        Ok(NamedSegment {
            name: name.into(),
            map: Arc::new(map),
            _fd: fd,
        })
    }

    /// Removes the name from `/dev/shm`; mappings stay valid until dropped. Removing a name
    /// that is already gone is not an error.
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        match shm_unlink(shm_path(name).as_str()) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EACCES | Errno::EPERM) => {
                Err(OpenError::PermissionDenied { name: name.into() })
            }
            Err(errno) => Err(OpenError::Os {
                call: "shm_unlink",
                errno,
            }),
        }
    }

    /// The segment's name (without the leading `/`).
    pub fn name(&self) -> &str {
        &self.name
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
