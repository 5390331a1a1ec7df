//! A doorbell: a futex word in shared memory that a sleeping side waits on.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

use super::futex;

/// Two words in shared memory: a ring counter to sleep on, and a flag saying somebody sleeps.
///
/// The protocol (a Dekker handshake, so no wake-up is lost):
/// - the sleeper reads `seq`, sets `sleeping`, issues a SeqCst fence, re-checks its condition, and
///   only then sleeps while `seq` is unchanged;
/// - the waker publishes its data, issues a SeqCst fence, and rings (bumps `seq`, futex-wakes)
///   only if it sees `sleeping` set.
///
/// Either the waker sees the flag, or the sleeper's re-check sees the data: the two fences forbid
/// both missing.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Doorbell {
    seq: AtomicU32,
    sleeping: AtomicU32,
}

impl Doorbell {
    /// Sleeper, step 1: flags this side asleep and returns the ring count to sleep on.
    pub fn prepare(&self) -> u32 {
        let seq = self.seq.load(Ordering::Acquire);
        self.sleeping.store(1, Ordering::Relaxed);
        // SYNC POINT with the fence in `ring_if_sleeping`: orders our flag store before the
        // re-check of the condition that follows this call.
        fence(Ordering::SeqCst);
        seq
    }

    /// Sleeper, step 2: sleeps until rung (or `timeout`), unless it was rung since `prepare`.
    pub fn sleep(&self, seq: u32, timeout: Duration) {
        futex::wait(&self.seq, seq, timeout);
    }

    /// Sleeper, last step (after waking, or when the re-check found data): clears the flag.
    pub fn cancel(&self) {
        self.sleeping.store(0, Ordering::Relaxed);
    }

    /// Waker: call after publishing. Rings only if the other side flagged itself asleep, so the
    /// common case costs a fence and one load of a line the sleeper rarely writes.
    pub fn ring_if_sleeping(&self) {
        // SYNC POINT with the fence in `prepare`: orders our data publication before the load of
        // the flag.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) != 0 {
            self.ring();
        }
    }

    /// Waker: rings unconditionally (one system call).
    pub fn ring(&self) {
        // Release pairs with the Acquire load in `prepare`.
        self.seq.fetch_add(1, Ordering::Release);
        futex::wake_all(&self.seq);
    }
}
