//! The wait strategies ([`BusySpin`], [`Backoff`], [`Park`]) and [`Wait`], which picks one at
//! run time.

use std::fmt;
use std::time::{Duration, Instant};

use super::Doorbell;

/// Why a wait ended without a value.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitError<E> {
    /// The deadline passed first.
    TimedOut,
    /// The readiness check failed (for a ring: the peer corrupted it).
    Failed(E),
}

impl<E: fmt::Display> fmt::Display for WaitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::TimedOut => write!(f, "timed out waiting for the other side of the ring"),
            WaitError::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for WaitError<E> {}

/// How a side waits for its peer.
pub trait WaitStrategy {
    /// Calls `ready` until it returns `Ok(Some(value))`, waiting between calls in this strategy's
    /// way, until `deadline`. `bell` is the doorbell the peer rings, when the ring has one.
    fn wait_for<T, E>(
        &self,
        bell: Option<&Doorbell>,
        deadline: Option<Instant>,
        ready: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, WaitError<E>>;
}

/// How many polls between clock reads while spinning: keeps the clock off the hot path.
const POLLS_PER_CLOCK_READ: u32 = 1024;

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Spins on the core, never yielding it. For pinned, dedicated cores only.
#[derive(Debug, Default, Clone, Copy)]
pub struct BusySpin;

impl WaitStrategy for BusySpin {
    fn wait_for<T, E>(
        &self,
        _bell: Option<&Doorbell>,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, WaitError<E>> {
        let mut polls = 0u32;
        loop {
            if let Some(v) = ready().map_err(WaitError::Failed)? {
                return Ok(v);
            }
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            if polls % POLLS_PER_CLOCK_READ == 0 && past(deadline) {
                return Err(WaitError::TimedOut);
            }
        }
    }
}

/// Spins `spins` times, then yields the core between polls.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Polls spent spinning before the first yield.
    pub spins: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { spins: 128 }
    }
}

impl WaitStrategy for Backoff {
    fn wait_for<T, E>(
        &self,
        _bell: Option<&Doorbell>,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, WaitError<E>> {
        let mut polls = 0u32;
        loop {
            if let Some(v) = ready().map_err(WaitError::Failed)? {
                return Ok(v);
            }
            polls = polls.saturating_add(1);
            if polls < self.spins {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
                if past(deadline) {
                    return Err(WaitError::TimedOut);
                }
            }
        }
    }
}

/// Spins `spins` times, then sleeps on the peer's doorbell until rung.
///
/// On a ring created without doorbells (see `RingOptions::parking`) nobody rings, so `Park`
/// sleeps in slices of [`Park::slice`] and re-checks: correct, but slow to notice.
#[derive(Debug, Clone, Copy)]
pub struct Park {
    /// Polls spent spinning before sleeping.
    pub spins: u32,
    /// The longest single sleep; a safety net, not the wake-up mechanism.
    pub slice: Duration,
}

impl Default for Park {
    fn default() -> Self {
        Park {
            spins: 256,
            slice: Duration::from_millis(50),
        }
    }
}

impl WaitStrategy for Park {
    fn wait_for<T, E>(
        &self,
        bell: Option<&Doorbell>,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, WaitError<E>> {
        for _ in 0..self.spins {
            if let Some(v) = ready().map_err(WaitError::Failed)? {
                return Ok(v);
            }
            std::hint::spin_loop();
        }
        loop {
            let mut slice = self.slice;
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(WaitError::TimedOut);
                }
                slice = slice.min(d - now);
            }
            match bell {
                Some(bell) => {
                    let seq = bell.prepare();
                    match ready() {
                        Ok(Some(v)) => {
                            bell.cancel();
                            return Ok(v);
                        }
                        Err(e) => {
                            bell.cancel();
                            return Err(WaitError::Failed(e));
                        }
                        Ok(None) => {}
                    }
                    bell.sleep(seq, slice);
                    bell.cancel();
                }
                None => std::thread::sleep(slice.min(Duration::from_micros(100))),
            }
            if let Some(v) = ready().map_err(WaitError::Failed)? {
                return Ok(v);
            }
        }
    }
}

/// A strategy chosen at run time (from configuration or a command-line flag).
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// `spin` (or `busy-spin`): never leaves the core; for pinned, dedicated cores only.
    BusySpin(BusySpin),
    /// `backoff`: spins, then yields the core between polls.
    Backoff(Backoff),
    /// `park`, the default: spins, then sleeps on the peer's doorbell until rung.
    Park(Park),
}

impl Default for Wait {
    /// Parking: the right default on a shared or small machine.
    fn default() -> Self {
        Wait::Park(Park::default())
    }
}

/// Why a name is not a wait strategy ([`Wait`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wait strategy {given:?}: use spin, backoff or park")]
pub struct ParseWaitError {
    /// The text that was parsed, as given (not one of `spin`, `busy-spin`, `backoff`, `park`).
    pub given: String,
}

impl std::str::FromStr for Wait {
    type Err = ParseWaitError;

    /// Parses `spin`, `backoff` or `park`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spin" | "busy-spin" => Ok(Wait::BusySpin(BusySpin)),
            "backoff" => Ok(Wait::Backoff(Backoff::default())),
            "park" => Ok(Wait::Park(Park::default())),
            other => Err(ParseWaitError {
                given: other.into(),
            }),
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Wait::BusySpin(_) => "spin",
            Wait::Backoff(_) => "backoff",
            Wait::Park(_) => "park",
        })
    }
}

impl WaitStrategy for Wait {
    fn wait_for<T, E>(
        &self,
        bell: Option<&Doorbell>,
        deadline: Option<Instant>,
        ready: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, WaitError<E>> {
        match self {
            Wait::BusySpin(s) => s.wait_for(bell, deadline, ready),
            Wait::Backoff(s) => s.wait_for(bell, deadline, ready),
            Wait::Park(s) => s.wait_for(bell, deadline, ready),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn times_out<S: WaitStrategy>(s: S) {
        let start = Instant::now();
        let r: Result<(), WaitError<()>> =
            s.wait_for(None, Some(start + Duration::from_millis(20)), || Ok(None));
        assert_eq!(r, Err(WaitError::TimedOut));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn every_strategy_honours_its_deadline() {
        times_out(BusySpin);
        times_out(Backoff::default());
        times_out(Park::default());
    }

    #[test]
    fn a_failing_check_ends_the_wait_with_its_error() {
        let r: Result<(), _> = Park::default().wait_for(None, None, || Err("corrupt"));
        assert_eq!(r, Err(WaitError::Failed("corrupt")));
    }

    #[test]
    fn park_wakes_when_the_doorbell_rings() {
        let bell = Arc::new(Doorbell::default());
        let flag = Arc::new(AtomicBool::new(false));
        let (b, f) = (Arc::clone(&bell), Arc::clone(&flag));
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            f.store(true, Ordering::Release);
            b.ring_if_sleeping();
        });
        // A long slice: only the ring can end this sleep early.
        let park = Park {
            spins: 1,
            slice: Duration::from_secs(10),
        };
        let start = Instant::now();
        let r: Result<(), WaitError<()>> =
            park.wait_for(Some(&bell), Some(start + Duration::from_secs(20)), || {
                Ok(flag.load(Ordering::Acquire).then_some(()))
            });
        waker.join().unwrap();
        assert_eq!(r, Ok(()));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "woken by the bell, not the slice"
        );
    }

    #[test]
    fn wait_parses_its_names() {
        for name in ["spin", "backoff", "park"] {
            assert_eq!(name.parse::<Wait>().unwrap().to_string(), name);
        }
        assert!("nap"
            .parse::<Wait>()
            .unwrap_err()
            .to_string()
            .contains("spin, backoff or park"));
    }
}
