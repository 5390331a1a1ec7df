//! Leases: leader election, resource allocation and conflict resolution, arbitrated by agentd.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::client::shared::Shared;
use crate::client::{Agent, ClientError};
use crate::control::{LeaseGrant, LeaseRequest, LeaseToken, Push, Refusal, Request, Response};

/// A lease's fencing token: it only grows, from grant to grant (across agentd restarts too, as
/// the clock does). Whoever a holder writes to keeps the largest token it has seen and refuses
/// a write carrying a smaller one: a stale leader's late writes are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(pub u64);

/// What to ask for ([`Lease::acquire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOptions {
    /// The lease's name (`primary.execution`).
    pub name: String,
    /// Units wanted (1).
    pub units: u32,
    /// Units the lease has in all (1: exclusive, leader election).
    pub capacity: u32,
    /// How long a grant lasts unless renewed (5 s): a holder that hangs loses it after this; one
    /// that dies loses it at once.
    pub ttl: Duration,
    /// Who goes first among waiters (0): higher first, equal ones by arrival.
    pub priority: u8,
    /// How long to wait in line when the units are taken (`None`: fail at once with `Busy`).
    pub wait: Option<Duration>,
}

impl LeaseOptions {
    /// One unit of the one-unit lease `name` (leader election), a 5 s ttl, no waiting.
    pub fn new(name: &str) -> LeaseOptions {
        LeaseOptions {
            name: name.into(),
            units: 1,
            capacity: 1,
            ttl: Duration::from_secs(5),
            priority: 0,
            wait: None,
        }
    }

    /// `units` of a lease of `capacity` units (resource allocation).
    pub fn units(mut self, units: u32, capacity: u32) -> LeaseOptions {
        self.units = units;
        self.capacity = capacity;
        self
    }

    /// Grants last `ttl` unless renewed.
    pub fn ttl(mut self, ttl: Duration) -> LeaseOptions {
        self.ttl = ttl;
        self
    }

    /// Waits up to `wait` in line.
    pub fn wait(mut self, wait: Duration) -> LeaseOptions {
        self.wait = Some(wait);
        self
    }

    /// Waits in line at `priority` (higher first).
    pub fn priority(mut self, priority: u8) -> LeaseOptions {
        self.priority = priority;
        self
    }
}

/// Why a lease was not granted.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// Taken, and the request did not wait.
    #[error(
        "lease {name:?} is taken ({why}): wait for it (`LeaseOptions::wait`) or try again later"
    )]
    Busy {
        /// The lease.
        name: String,
        /// What agentd said (who holds it).
        why: String,
    },
    /// Waited in line as long as allowed.
    #[error("waited {waited:?} for lease {name:?} behind {holders:?}: wait longer, or check that its holder still renews it")]
    TimedOut {
        /// The lease.
        name: String,
        /// How long.
        waited: Duration,
        /// Who held it when the wait began.
        holders: Vec<String>,
    },
    /// agentd refused the request as asked (a capacity other than the lease's, a ttl out of
    /// range, this agent holding it already).
    #[error("lease {name:?} refused: {why}")]
    Refused {
        /// The lease.
        name: String,
        /// What agentd said.
        why: String,
    },
    /// The control connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A lease can no longer be renewed: it expired (not renewed within its ttl) or agentd lost it
/// (restarted). Stop acting as its holder.
#[derive(Debug, thiserror::Error)]
#[error(
    "lease {name:?} (token {token}) is lost: {why}; stop acting as its holder and acquire it again"
)]
pub struct LeaseLost {
    /// The lease.
    pub name: String,
    /// The token it had.
    pub token: u64,
    /// Why.
    pub why: String,
}

/// A lease held: released when dropped (or by [`Lease::release`]), renewed by
/// [`Lease::renew`] before its ttl runs out.
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions};
/// use agentbus::patterns::{Lease, LeaseOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-lease-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut exec_a = Agent::attach(options("exec-a", "execution"))?;
/// let mut exec_b = Agent::attach(options("exec-b", "execution"))?;
/// let primary = LeaseOptions::new("primary.execution").ttl(Duration::from_secs(2));
/// let mut lease = Lease::acquire(&mut exec_a, &primary)?;      // exec-a is primary
/// assert!(Lease::acquire(&mut exec_b, &primary).is_err());      // taken: Busy
/// lease.renew()?;                                               // well before the ttl
/// let token = lease.token();                                    // stamp writes with it
/// drop(lease);                                                  // released
/// let next = Lease::acquire(&mut exec_b, &primary)?;
/// assert!(next.token() > token);                                // fencing tokens only grow
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping a Lease releases it at once"]
pub struct Lease {
    grant: LeaseGrant,
    shared: Weak<Shared>,
    released: bool,
}

impl Lease {
    /// Asks agentd for the lease `options` names: granted now, or after waiting in line up to
    /// `options.wait` (pushed by agentd when the units free: its holder released it, its ttl ran
    /// out, or its agent died).
    pub fn acquire(agent: &mut Agent, options: &LeaseOptions) -> Result<Lease, AcquireError> {
        let shared = Arc::clone(&agent.tx.shared);
        let name = options.name.clone();
        let request = Request::AcquireLease(LeaseRequest {
            name: name.clone(),
            units: options.units,
            capacity: options.capacity,
            ttl_ms: options.ttl.as_millis().min(u32::MAX as u128) as u32,
            priority: options.priority,
            wait: options.wait.is_some(),
        });
        let granted = |grant| Lease {
            grant,
            shared: Arc::downgrade(&shared),
            released: false,
        };
        let holders = match shared.call(&request)? {
            Response::Lease(grant) => return Ok(granted(grant)),
            Response::LeaseQueued(q) => q.holders,
            Response::Refused(r) if r.kind == Refusal::NoRoom => {
                return Err(AcquireError::Busy {
                    name,
                    why: r.message,
                })
            }
            Response::Refused(r) => {
                return Err(AcquireError::Refused {
                    name,
                    why: r.message,
                })
            }
            other => return Err(ClientError::Protocol(format!("{other:?}")).into()),
        };
        let waited = options.wait.unwrap_or_default();
        let start = Instant::now();
        let mine = |p: &Push| matches!(p, Push::LeaseGranted(g) if g.name == name);
        if let Some((Push::LeaseGranted(grant), _)) = shared.next_push(waited, mine)? {
            return Ok(granted(grant));
        }
        // Out of patience: leave the line. A grant pushed meanwhile arrives before the answer
        // to this, and is given back.
        shared.call(&Request::ReleaseLease(LeaseToken {
            name: name.clone(),
            token: 0,
        }))?;
        if let Some((Push::LeaseGranted(grant), _)) = shared.next_push(Duration::ZERO, mine)? {
            drop(granted(grant));
        }
        Err(AcquireError::TimedOut {
            name,
            waited: start.elapsed(),
            holders,
        })
    }

    /// The fencing token of this grant.
    pub fn token(&self) -> FencingToken {
        FencingToken(self.grant.token)
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.grant.name
    }

    /// Units held.
    pub fn units(&self) -> u32 {
        self.grant.units
    }

    /// How long a grant lasts unless renewed.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.grant.ttl_ms as u64)
    }

    /// Extends the grant by its ttl from now. `LeaseLost` if it expired (or agentd restarted):
    /// stop acting as its holder.
    pub fn renew(&mut self) -> Result<(), LeaseLost> {
        let lost = |why: String| LeaseLost {
            name: self.grant.name.clone(),
            token: self.grant.token,
            why,
        };
        let Some(shared) = self.shared.upgrade() else {
            return Err(lost("its agent is gone".into()));
        };
        match shared.call(&Request::RenewLease(self.token_of())) {
            Ok(Response::Lease(grant)) => {
                self.grant = grant;
                Ok(())
            }
            Ok(Response::Refused(r)) => Err(lost(r.message)),
            Ok(other) => Err(lost(format!("unexpected answer {other:?}"))),
            Err(e) => Err(lost(e.to_string())),
        }
    }

    /// Gives the lease back now, reporting what went wrong (dropping it does the same and
    /// ignores errors). The next waiter, if any, is granted it at once.
    pub fn release(mut self) -> Result<(), ClientError> {
        self.released = true;
        self.end()
    }

    fn token_of(&self) -> LeaseToken {
        LeaseToken {
            name: self.grant.name.clone(),
            token: self.grant.token,
        }
    }

    fn end(&mut self) -> Result<(), ClientError> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(()); // the agent is gone, and its leases with it
        };
        match shared.call(&Request::ReleaseLease(self.token_of()))? {
            Response::Done => Ok(()),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.end();
        }
    }
}
