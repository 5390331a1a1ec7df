//! Waking a consumer that sleeps on an eventfd, and that consumer's own sleeping flag.
//!
//! A futex [`super::Doorbell`] in memory several processes share can be spoiled by any of them
//! (clear the sleeping flag and the others stop waking the sleeper; ring it in a loop and the
//! sleeper never sleeps). For a consumer that serves many producers (agentd's router), each
//! producer gets an [`EventFd`] of its own, and a sleeping flag in memory it shares with the
//! consumer alone ([`EventWake`]): a producer that lies about the flag or signals in a loop
//! harms itself, and the consumer knows which one it is.
//!
//! The protocol is the doorbell's Dekker handshake, with the eventfd's counter for the ring
//! count (a signal sent before the consumer sleeps is not lost: the counter stays up until the
//! consumer drains it):
//! - the consumer sets the flag, issues a SeqCst fence, re-checks its condition, and only then
//!   waits on the eventfd (epoll);
//! - the producer publishes, issues a SeqCst fence, and signals only if it sees the flag set.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd as NixEventFd};

use crate::words::WordTable;
use crate::Region;

/// An eventfd: a counter in the kernel that producers add to and a consumer waits on (with
/// epoll) and drains. Non-blocking and close-on-exec.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd at 0.
    pub fn new() -> std::io::Result<EventFd> {
        let fd = NixEventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(EventFd(fd.into()))
    }

    /// The eventfd received as `fd` (from agentd). Any descriptor is accepted: writing to one
    /// that is not an eventfd fails, and a failed signal only delays its sender's own wake-ups.
    pub fn from_fd(fd: OwnedFd) -> EventFd {
        EventFd(fd)
    }

    /// Adds one to the counter (one system call). A full counter (2^64 - 2) or any other
    /// failure is ignored: the consumer is awake by then, or wakes at its next timeout.
    pub fn signal(&self) {
        let _ = nix::unistd::write(&self.0, &1u64.to_ne_bytes());
    }

    /// Takes the counter to 0; returns what it was (0 if it was 0 already).
    pub fn drain(&self) -> u64 {
        let mut buf = [0u8; 8];
        match nix::unistd::read(&self.0, &mut buf) {
            Ok(8) => u64::from_ne_bytes(buf),
            Ok(_) | Err(Errno::EAGAIN) | Err(_) => 0,
        }
    }

    /// A duplicate descriptor of the same eventfd (to hand to another process).
    pub fn try_clone_fd(&self) -> std::io::Result<OwnedFd> {
        self.0.try_clone()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The producer's side: the consumer's sleeping flag (one word the consumer sets while it
/// sleeps) and the eventfd to signal then.
#[derive(Debug, Clone)]
pub struct EventWake {
    flag: Arc<WordTable>,
    event: Arc<EventFd>,
}

impl EventWake {
    /// The wake-up of a consumer whose sleeping flag is the first word of `flag` (8 bytes,
    /// 8-aligned), signalled through `event`; `None` if `flag` is not such a word.
    pub fn new(flag: Region, event: Arc<EventFd>) -> Option<EventWake> {
        let flag = WordTable::new(flag).filter(|t| !t.is_empty())?;
        Some(EventWake {
            flag: Arc::new(flag),
            event,
        })
    }

    /// Producer: call after publishing. Signals only if the consumer flagged itself asleep,
    /// so the common case costs a fence and one load.
    pub fn ring_if_sleeping(&self) {
        // SYNC POINT with the fence in `SleepFlag::prepare`: orders our data publication
        // before the load of the flag.
        fence(Ordering::SeqCst);
        if self.flag.load(0, Ordering::Relaxed) != 0 {
            self.event.signal();
        }
    }
}

/// The consumer's side of one producer's sleeping flag.
#[derive(Debug)]
pub struct SleepFlag {
    flag: WordTable,
}

impl SleepFlag {
    /// The flag in the first word of `flag` (8 bytes, 8-aligned), or `None`.
    pub fn new(flag: Region) -> Option<SleepFlag> {
        let flag = WordTable::new(flag).filter(|t| !t.is_empty())?;
        Some(SleepFlag { flag })
    }

    /// Consumer, before sleeping: flags itself asleep for this producer. Call [`fence`] once
    /// after setting every flag, then re-check the condition, then wait.
    pub fn set(&self) {
        self.flag.store(0, 1, Ordering::Relaxed);
    }

    /// Consumer, after waking (or when the re-check found work): clears the flag.
    pub fn clear(&self) {
        self.flag.store(0, 0, Ordering::Relaxed);
    }

    /// Consumer, between setting the flags and re-checking: the SeqCst fence that pairs with
    /// the one in [`EventWake::ring_if_sleeping`] (a Dekker handshake: either the producer
    /// sees the flag, or the consumer's re-check sees the data).
    pub fn fence() {
        fence(Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Mapping;

    fn word() -> Region {
        Region::whole(Arc::new(Mapping::heap(4096).unwrap()))
            .sub(0, 8)
            .unwrap()
    }

    #[test]
    fn a_producer_signals_only_while_the_consumer_sleeps_and_nothing_is_lost() {
        let region = word();
        let event = Arc::new(EventFd::new().unwrap());
        let wake = EventWake::new(region.clone(), Arc::clone(&event)).unwrap();
        let sleeper = SleepFlag::new(region).unwrap();
        wake.ring_if_sleeping();
        assert_eq!(event.drain(), 0, "awake: no signal");
        sleeper.set();
        SleepFlag::fence();
        wake.ring_if_sleeping();
        wake.ring_if_sleeping();
        assert_eq!(event.drain(), 2, "asleep: each signal counted, none lost");
        assert_eq!(event.drain(), 0);
        sleeper.clear();
        wake.ring_if_sleeping();
        assert_eq!(event.drain(), 0);
    }
}
