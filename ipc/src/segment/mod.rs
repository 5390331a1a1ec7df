//! Segments: the shared memory that rings and headers live in.
//!
//! - [`NamedSegment`]: a POSIX shared-memory object in `/dev/shm`, found by name. agentd keeps the
//!   bus header there so monitor tools can map it read-only without asking anyone.
//! - [`MemfdSegment`]: an anonymous memfd, sized with `posix_fallocate` (a full `/dev/shm` fails
//!   at creation, not with SIGBUS later) and sealed against shrinking and growing. It is reachable
//!   only through its file descriptor, which [`fdpass`] hands to another process over a Unix
//!   socket, so nothing is left behind when a process dies.

mod error;
pub mod fdpass;
mod memfd;
mod named;

pub use error::{CreateError, OpenError};
pub use memfd::MemfdSegment;
pub use named::NamedSegment;
