//! Shared-memory transport for agentbus: segments, the single-producer/single-consumer frame
//! ring, wait strategies, clocks and core pinning.
//!
//! This crate knows nothing of messages. It moves frames of bytes between one producer and one
//! consumer, in shared memory or (for tests) heap memory, and it is the only crate of the
//! workspace with `unsafe` code: every block carries a `// SAFETY:` line saying why it holds.
//!
//! ```
//! use agentbus_ipc::ring::{Ring, RingOptions};
//!
//! let ring = Ring::heap(RingOptions::new(4096)).unwrap();
//! let (mut tx, mut rx) = ring.split();
//! let mut claim = tx.try_claim(5).unwrap();
//! claim.payload()[..5].copy_from_slice(b"hello");
//! claim.commit(5);
//! assert_eq!(rx.peek().unwrap(), Some(&b"hello"[..]));
//! rx.pop();
//! rx.release();
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod affinity;
pub mod clock;
pub mod mailbox;
pub mod region;
pub mod ring;
pub mod segment;
pub mod wait;
pub mod words;

pub use region::{Mapping, Region};
