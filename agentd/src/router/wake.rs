//! How the idle router sleeps and who wakes it: each agent through an eventfd of its own
//! (signalled while the router's flag in that agent's control block is set), the control
//! thread through a waker of agentd's own. Nothing an agent can write reaches another agent's
//! wake-ups: an agent that clears its flag delays only its own messages, and one that signals
//! in a loop is found out ([`WakeBudget`]) and muted for the rest of the second.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus_ipc::wait::{EventFd, SleepFlag};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// The poll token of the control thread's waker (agents' tokens are their slots).
pub const CONTROL_TOKEN: Token = Token(usize::MAX);

/// Signals past which an agent that had nothing to send is muted for the rest of the second:
/// a sender signals only when it has sent while the router slept, so a handful a second come
/// from races (the router took the frame before reading the signal); a flood is hostile or
/// broken.
pub const SPURIOUS_WAKES_PER_SECOND: u32 = 100;

/// Wakes the router from the control thread (and from `Daemon::stop`).
#[derive(Debug, Clone)]
pub struct RouterWake {
    asleep: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
}

impl RouterWake {
    /// Wakes the router if it sleeps (after queueing a command: a fence and a load when it is
    /// awake).
    pub fn wake_if_sleeping(&self) {
        // SYNC POINT with the fence in `Sleeper::sleep`: orders the command's push before the
        // load of the flag.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) {
            let _ = self.waker.wake();
        }
    }

    /// Wakes the router whether or not it sleeps (one system call).
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// One agent's way to wake the router, as the router holds it.
#[derive(Debug)]
pub struct AgentWake {
    /// What the agent signals.
    pub event: EventFd,
    /// The router's sleeping flag in the agent's control block.
    pub flag: SleepFlag,
    /// Its signals while it had nothing to send, this second.
    pub budget: WakeBudget,
}

/// Spurious signals of one agent in the current second, and whether it is muted.
#[derive(Debug, Default, Clone, Copy)]
pub struct WakeBudget {
    second: u64,
    spurious: u32,
    /// Its eventfd is out of the router's poll set until the second is over.
    pub muted: bool,
}

impl WakeBudget {
    /// Counts a spurious signal at `now_mono`; true if that crosses the limit (mute it now).
    pub fn spurious(&mut self, now_mono: u64) -> bool {
        let second = now_mono / 1_000_000_000;
        if second != self.second {
            self.second = second;
            self.spurious = 0;
        }
        self.spurious += 1;
        !self.muted && self.spurious > SPURIOUS_WAKES_PER_SECOND
    }

    /// Whether a muted agent's second is over at `now_mono` (listen to it again).
    pub fn expired(&self, now_mono: u64) -> bool {
        self.muted && now_mono / 1_000_000_000 != self.second
    }
}

/// The router's side: the poll set of every agent's eventfd and the control waker.
#[derive(Debug)]
pub struct Sleeper {
    poll: Poll,
    events: Events,
    asleep: Arc<AtomicBool>,
    /// Slots whose eventfd fired in the last sleep.
    pub woken: Vec<u32>,
}

impl Sleeper {
    /// A sleeper and the waker the control thread wakes it with.
    pub fn new() -> std::io::Result<(Sleeper, RouterWake)> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), CONTROL_TOKEN)?);
        let asleep = Arc::new(AtomicBool::new(false));
        Ok((
            Sleeper {
                poll,
                events: Events::with_capacity(64),
                asleep: Arc::clone(&asleep),
                woken: Vec::with_capacity(64),
            },
            RouterWake { asleep, waker },
        ))
    }

    /// Listens to the agent in `slot`.
    pub fn register(&self, slot: u32, wake: &AgentWake) -> std::io::Result<()> {
        let fd = wake.event.as_fd().as_raw_fd();
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(slot as usize), Interest::READABLE)
    }

    /// Stops listening to the agent in `slot` (before its eventfd is closed: the agent holds
    /// another descriptor of it, which would keep it in the poll set).
    pub fn deregister(&self, wake: &AgentWake) {
        let fd = wake.event.as_fd().as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// Flags the router asleep for the control thread; every agent's flag must be set too,
    /// then [`SleepFlag::fence`], then the re-check, then [`Sleeper::sleep`].
    pub fn prepare(&self) {
        self.asleep.store(true, Ordering::Relaxed);
    }

    /// Sleeps until an agent or the control thread signals, or `timeout`; the agents that
    /// signalled are in [`Sleeper::woken`] (their eventfds not drained yet).
    pub fn sleep(&mut self, timeout: Duration) {
        self.woken.clear();
        if self.poll.poll(&mut self.events, Some(timeout)).is_err() {
            return; // interrupted: the caller re-checks everything anyway
        }
        for event in self.events.iter() {
            if event.token() != CONTROL_TOKEN {
                self.woken.push(event.token().0 as u32);
            }
        }
    }

    /// Clears the control thread's flag (the agents' flags are the caller's to clear).
    pub fn cancel(&self) {
        self.asleep.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_spurious_signals_mutes_for_the_rest_of_the_second() {
        let mut b = WakeBudget::default();
        let t = 7_000_000_000;
        for _ in 0..SPURIOUS_WAKES_PER_SECOND {
            assert!(!b.spurious(t));
        }
        assert!(b.spurious(t + 1), "one more crosses the limit");
        b.muted = true;
        assert!(!b.expired(t + 999_999_999));
        assert!(b.expired(t + 1_000_000_000));
        b.muted = false;
        assert!(!b.spurious(t + 1_000_000_000), "a new second starts afresh");
    }
}
