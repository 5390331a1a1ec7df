//! Circuit breakers, one per request destination: after repeated failures the destination is
//! given a rest, and requests to it fail fast instead of waiting out their timeouts (the spec's
//! `CommunicationCircuitBreaker`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::destination::Target;
use crate::error::CommunicationError;

/// When a destination's breaker opens and how long it stays open
/// ([`super::AttachOptions::breaker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row (timeouts, unreachable destinations, full queues) that open the
    /// breaker.
    pub failure_threshold: u32,
    /// How long an open breaker fails requests at once before it lets one trial through
    /// (half-open).
    pub reset_timeout: Duration,
}

impl Default for BreakerConfig {
    /// Five failures in a row open it; it rests five seconds.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(5),
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests go through; failures in a row are counted.
    Closed,
    /// Requests fail at once with `CircuitOpen` until the reset timeout has passed.
    Open,
    /// One trial request is out: its success closes the breaker, its failure opens it again.
    HalfOpen,
}

/// One destination's breaker, as [`super::Agent::breakers`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerStatus {
    /// The destination as errors name it: an agent id, `capabilities a,b` or `type t`.
    pub destination: String,
    /// Where it stands.
    pub state: CircuitState,
    /// Failures in a row so far (0 after a success).
    pub failures: u32,
    /// How often it has opened.
    pub opened: u64,
}

#[derive(Debug)]
struct Breaker {
    target: Target,
    state: CircuitState,
    failures: u32,
    opened_at: Instant,
    opened: u64,
}

/// What became of a request, for its destination's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It was answered (an `Error` answer from the handler included: the destination works).
    Answered,
    /// The destination did not answer or could not be reached.
    Failed,
}

impl Outcome {
    /// How a request's result counts: a failure is the destination's fault (no answer, not
    /// reachable, no room), not the request's (malformed, refused by its handler).
    pub(crate) fn of<T>(result: &Result<T, CommunicationError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Answered,
            Err(e) => Outcome::of_error(e),
        }
    }

    /// How a request's error counts (see [`Outcome::of`]).
    pub(crate) fn of_error(e: &CommunicationError) -> Outcome {
        match e {
            CommunicationError::Timeout { .. }
            | CommunicationError::AgentUnreachable { .. }
            | CommunicationError::QueueFull { .. } => Outcome::Failed,
            _ => Outcome::Answered,
        }
    }
}

/// Every destination's breaker (keyed by the destination's route), in the request table.
#[derive(Debug, Default)]
pub(crate) struct Breakers {
    config: Option<BreakerConfig>,
    by_destination: HashMap<Target, Breaker>,
}

impl Breakers {
    pub(crate) fn new(config: Option<BreakerConfig>) -> Breakers {
        Breakers {
            config,
            by_destination: HashMap::new(),
        }
    }

    /// Whether a request may go to `target` now; `CircuitOpen` if its breaker is open (or a
    /// half-open trial is already out). Moves an open breaker whose rest is over to half-open:
    /// this request is its trial.
    pub(crate) fn admit(
        &mut self,
        target: &Target,
        now: Instant,
    ) -> Result<(), CommunicationError> {
        let Some(config) = self.config else {
            return Ok(());
        };
        let Some(b) = self.by_destination.get_mut(target) else {
            return Ok(());
        };
        match b.state {
            CircuitState::Closed => Ok(()),
            CircuitState::Open if now.duration_since(b.opened_at) >= config.reset_timeout => {
                b.state = CircuitState::HalfOpen;
                Ok(())
            }
            CircuitState::Open | CircuitState::HalfOpen => {
                let retry_in = config
                    .reset_timeout
                    .saturating_sub(now.duration_since(b.opened_at));
                Err(CommunicationError::CircuitOpen {
                    destination: target.to_string(),
                    failures: b.failures,
                    retry_in,
                })
            }
        }
    }

    /// Records what became of a request to `target`.
    pub(crate) fn record(&mut self, target: &Target, outcome: Outcome, now: Instant) {
        let Some(config) = self.config else {
            return;
        };
        let b = self
            .by_destination
            .entry(target.clone())
            .or_insert_with(|| Breaker {
                target: target.clone(),
                state: CircuitState::Closed,
                failures: 0,
                opened_at: now,
                opened: 0,
            });
        match outcome {
            Outcome::Answered => {
                b.failures = 0;
                b.state = CircuitState::Closed;
            }
            Outcome::Failed => {
                b.failures = b.failures.saturating_add(1);
                let trip = b.state == CircuitState::HalfOpen
                    || (b.state == CircuitState::Closed && b.failures >= config.failure_threshold);
                if trip {
                    b.state = CircuitState::Open;
                    b.opened_at = now;
                    b.opened += 1;
                }
            }
        }
    }

    /// Every destination's breaker, as it stands.
    pub(crate) fn status(&self) -> Vec<BreakerStatus> {
        let mut all: Vec<BreakerStatus> = self
            .by_destination
            .values()
            .map(|b| BreakerStatus {
                destination: b.target.to_string(),
                state: b.state,
                failures: b.failures,
                opened: b.opened,
            })
            .collect();
        all.sort_by(|a, b| a.destination.cmp(&b.destination));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> Result<(), CommunicationError> {
        Err(CommunicationError::Timeout {
            what: "a reply".into(),
            after: Duration::from_millis(1),
        })
    }

    #[test]
    fn closed_open_half_open_and_back() {
        let config = BreakerConfig {
            failure_threshold: 3,
            reset_timeout: Duration::from_secs(1),
        };
        let mut b = Breakers::new(Some(config));
        let risk = Target::Peer("risk-1".into());
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.admit(&risk, t0).is_ok());
            b.record(&risk, Outcome::of(&timeout()), t0);
        }
        assert_eq!(b.status()[0].state, CircuitState::Closed);
        b.record(&risk, Outcome::Failed, t0);
        assert_eq!(b.status()[0].state, CircuitState::Open);
        match b.admit(&risk, t0 + Duration::from_millis(400)) {
            Err(CommunicationError::CircuitOpen {
                destination,
                failures,
                retry_in,
            }) => {
                assert_eq!((destination.as_str(), failures), ("risk-1", 3));
                assert_eq!(retry_in, Duration::from_millis(600));
            }
            other => panic!("{other:?}"),
        }
        // Rested: one trial goes; a second waits for it.
        let later = t0 + Duration::from_secs(1);
        assert!(b.admit(&risk, later).is_ok());
        assert_eq!(b.status()[0].state, CircuitState::HalfOpen);
        assert!(b.admit(&risk, later).is_err());
        // The trial fails: open again, for another rest.
        b.record(&risk, Outcome::Failed, later);
        assert_eq!(b.status()[0].state, CircuitState::Open);
        assert!(b.admit(&risk, later + Duration::from_millis(999)).is_err());
        // The next trial is answered: closed, count reset.
        let again = later + Duration::from_secs(1);
        assert!(b.admit(&risk, again).is_ok());
        b.record(&risk, Outcome::Answered, again);
        let s = &b.status()[0];
        assert_eq!(
            (s.state, s.failures, s.opened),
            (CircuitState::Closed, 0, 2)
        );
    }

    #[test]
    fn a_handler_error_is_an_answer_and_other_destinations_are_apart() {
        let mut b = Breakers::new(Some(BreakerConfig {
            failure_threshold: 1,
            reset_timeout: Duration::from_secs(60),
        }));
        let now = Instant::now();
        let refused: Result<(), _> = Err(CommunicationError::RequestFailed {
            kind: crate::payload::ErrorKind::HandlerError,
            details: "no".into(),
        });
        let a = Target::Type("execution".into());
        b.record(&a, Outcome::of(&refused), now);
        assert!(b.admit(&a, now).is_ok(), "the destination answered");
        b.record(&a, Outcome::Failed, now);
        assert!(b.admit(&a, now).is_err());
        assert!(b.admit(&Target::Type("risk".into()), now).is_ok());
        assert!(b.admit(&Target::Peer("execution".into()), now).is_ok());
    }

    #[test]
    fn without_a_config_nothing_is_counted_or_refused() {
        let mut b = Breakers::new(None);
        let a = Target::Peer("x".into());
        for _ in 0..100 {
            b.record(&a, Outcome::Failed, Instant::now());
        }
        assert!(b.admit(&a, Instant::now()).is_ok());
        assert!(b.status().is_empty());
    }
}
