//! Errors of creating and opening segments.

use nix::errno::Errno;

/// Why a segment could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A named segment of that name exists already.
    #[error("shared-memory segment {name:?} already exists: another agentd may own it; stop it, or remove /dev/shm/{name} if it is stale")]
    AlreadyExists {
        /// The name as given: the segment is `/dev/shm/<name>`.
        name: String,
    },
    /// The size asked for is zero or does not fit the platform's file offsets.
    #[error("cannot create a segment of {size} bytes: give a size between 1 byte and {max} bytes", max = i64::MAX)]
    BadSize {
        /// The size asked for.
        size: usize,
    },
    /// `/dev/shm` (or the memory cgroup) has no room for the segment.
    #[error("no room for a {size}-byte segment in /dev/shm: free some space there (df -h /dev/shm), or configure smaller lanes")]
    NoSpace {
        /// The size asked for.
        size: usize,
    },
    /// The caller may not create it.
    #[error("permission denied creating shared-memory segment {name:?}: check the permissions of /dev/shm and of any existing segment")]
    PermissionDenied {
        /// The name as given: the segment is `/dev/shm/<name>`.
        name: String,
    },
    /// Any other system error, with the call that failed.
    #[error("{call} failed while creating a segment: {errno}")]
    Os {
        /// The system call that failed.
        call: &'static str,
        /// What it returned.
        errno: Errno,
    },
}

/// Why a segment could not be opened or mapped.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No named segment by that name: usually, no agentd runs that bus.
    #[error("no shared-memory segment {name:?}: is agentd running for this bus? start it with `agentd --bus <name>`")]
    NoSuchSegment {
        /// The name as given: the segment is `/dev/shm/<name>`.
        name: String,
    },
    /// The caller may not map it.
    #[error("permission denied opening shared-memory segment {name:?}: run as the user that owns agentd, or add yourself to its ops group")]
    PermissionDenied {
        /// The name as given: the segment is `/dev/shm/<name>`.
        name: String,
    },
    /// A memfd handed over without the shrink/grow seals: its owner could truncate it under us.
    #[error("the segment's memfd is not sealed against shrinking and growing (seals {seals:#x}); refusing to map memory its owner could truncate")]
    NotSealed {
        /// The seals found on it.
        seals: i32,
    },
    /// The segment is smaller than its user needs.
    #[error("segment holds {len} bytes but at least {needed} are needed: its creator and this process disagree on the layout")]
    TooSmall {
        /// The segment's size in bytes, from `fstat`.
        len: usize,
        /// The least the opener asked for (`min_len`, and never under 1 byte).
        needed: usize,
    },
    /// Any other system error, with the call that failed.
    #[error("{call} failed while opening a segment: {errno}")]
    Os {
        /// The system call that failed.
        call: &'static str,
        /// What it returned.
        errno: Errno,
    },
}
