//! Waiting for the other side of a ring: [`BusySpin`], [`Backoff`] and [`Park`].
//!
//! A strategy drives a readiness check (`ready`) until it yields a value or the deadline passes.
//! `BusySpin` never leaves the core (pinned production cores); `Backoff` spins, then yields the
//! core; `Park` spins, then sleeps on a futex [`Doorbell`] in shared memory, which the other side
//! rings only when this side has flagged itself asleep, so the other side's fast path makes no
//! system call. Every wait takes an optional deadline.

mod doorbell;
mod event;
mod futex;
mod strategy;

pub use doorbell::Doorbell;
pub use event::{EventFd, EventWake, SleepFlag};
pub use strategy::{Backoff, BusySpin, Park, ParseWaitError, Wait, WaitError, WaitStrategy};
