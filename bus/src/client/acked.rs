//! At-least-once delivery: a message sent with an acknowledgement request is retried, with
//! exponential backoff, until its receiver's client acknowledges it or the attempts are spent
//! (the spec's `AtLeastOnceDelivery`). The retries are driven by the agent's own `poll` (and by
//! waiting on the [`PendingDelivery`]), never by a hidden thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::destination::{AgentType, Capability, Peer, Responder, Target};
use super::pending::{lock, Requests};
use super::Agent;
use crate::error::CommunicationError;
use crate::ids::MessageId;
use crate::message::Message;

/// How at-least-once messages are retried, and how long receivers remember them
/// ([`super::AttachOptions::delivery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Attempts in all, the first included (the spec's 3).
    pub attempts: u32,
    /// The wait for an acknowledgement after the first attempt; it doubles after each retry
    /// (the spec's 1 s: 1, 2, then 4 s).
    pub retry_delay: Duration,
    /// How long a receiver remembers the messages it took, to drop their retried copies: it
    /// must cover the senders' retry horizon (1 + 2 + 4 s by default).
    pub dedup_window: Duration,
    /// The most messages a receiver remembers at once (the oldest forgotten first).
    pub dedup_capacity: usize,
}

impl Default for DeliveryConfig {
    /// The spec's three attempts from 1 s doubling; receivers remember a minute, at most 65,536
    /// messages.
    fn default() -> Self {
        DeliveryConfig {
            attempts: 3,
            retry_delay: Duration::from_secs(1),
            dedup_window: Duration::from_secs(60),
            dedup_capacity: 1 << 16,
        }
    }
}

/// A destination a retry can be sent to again: an owned [`Responder`].
#[derive(Debug, Clone)]
pub(crate) enum Again {
    Peer(Peer),
    Capability(Capability),
    Type(AgentType),
}

impl Again {
    pub(crate) fn of(to: Responder<'_>) -> Again {
        match to {
            Responder::Peer(p) => Again::Peer(p.clone()),
            Responder::Capability(c) => Again::Capability(c.clone()),
            Responder::Type(t) => Again::Type(t.clone()),
        }
    }

    pub(crate) fn responder(&self) -> Responder<'_> {
        match self {
            Again::Peer(p) => Responder::Peer(p),
            Again::Capability(c) => Responder::Capability(c),
            Again::Type(t) => Responder::Type(t),
        }
    }
}

/// What a message sent for at-least-once delivery needs to be sent again.
#[derive(Debug)]
pub(crate) struct Resend {
    pub(crate) message: Message,
    pub(crate) to: Again,
    pub(crate) attempts: u32,
    pub(crate) max: u32,
    pub(crate) delay: Duration,
    /// When the current attempt is given up and the next one (or the failure) is due.
    pub(crate) next_at: Instant,
    /// What the last attempt came to, for the failure's reason.
    pub(crate) last_error: Option<String>,
}

impl Resend {
    pub(crate) fn new(message: Message, to: Again, config: DeliveryConfig, now: Instant) -> Resend {
        Resend {
            message,
            to,
            attempts: 1,
            max: config.attempts.max(1),
            delay: config.retry_delay,
            next_at: now + config.retry_delay,
            last_error: None,
        }
    }

    /// Whether another attempt is due at `now`; if so, counts it and schedules the wait for
    /// its acknowledgement (the delay doubled once more).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if self.attempts >= self.max || now < self.next_at {
            return false;
        }
        self.attempts += 1;
        let doubled = self.delay.saturating_mul(1 << (self.attempts - 1).min(16));
        self.next_at = now + doubled;
        true
    }

    /// Whether every attempt was made and the last one's wait is over.
    pub(crate) fn spent(&self, now: Instant) -> bool {
        self.attempts >= self.max && now >= self.next_at
    }
}

/// A message sent for at-least-once delivery ([`Agent::send_acked`]) and not yet acknowledged.
/// [`PendingDelivery::wait`] drives its retries until its receiver acknowledges it (`Ok`) or
/// every attempt is spent (`DeliveryFailed`); dropping it stops the retries.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-acked-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| agentbus::client::AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// use std::time::Duration;
/// use agentbus::client::Agent;
/// use agentbus::{Message, MessageType};
///
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let mut exec = Agent::attach(options("exec-1", "execution"))?;
/// let to_exec = strategy.peer("exec-1")?;
/// let order = Message::raw(strategy.identity(), MessageType::TaskRequest, b"buy 100".to_vec());
/// let delivery = strategy.send_acked(&to_exec, &order)?;     // retried until acknowledged
/// let (tx, rx) = exec.split();
/// let got = rx.recv_timeout(Duration::from_secs(5))?.expect("delivered");
/// tx.ack(got.header())?;                                      // `recv` users ack; handlers do on return
/// drop(got);
/// delivery.wait(&mut strategy)?;                              // acknowledged
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PendingDelivery {
    id: MessageId,
    target: Target,
    requests: Requests,
    open: Arc<AtomicUsize>,
    done: bool,
}

impl PendingDelivery {
    pub(crate) fn new(
        id: MessageId,
        target: Target,
        requests: Requests,
        open: Arc<AtomicUsize>,
    ) -> PendingDelivery {
        // Relaxed: a hint for `poll` to look at the table; the table itself is locked.
        open.fetch_add(1, Ordering::Relaxed);
        PendingDelivery {
            id,
            target,
            requests,
            open,
            done: false,
        }
    }

    /// The message's id (the same on every attempt).
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// `Some(Ok(()))` once acknowledged, `Some(Err(DeliveryFailed))` once every attempt is
    /// spent (the message is then in agentd's dead-letter queue), `None` while it is in flight; runs `agent`'s `poll` (which sends due retries)
    /// first. `agent` must be the one that sent it.
    pub fn try_wait(&mut self, agent: &mut Agent) -> Option<Result<(), CommunicationError>> {
        if self.done {
            return None;
        }
        if let Err(e) = agent.poll(64) {
            return Some(Err(e));
        }
        self.take(agent, Instant::now())
    }

    /// Waits until the message is acknowledged (`Ok`) or every attempt is spent
    /// (`DeliveryFailed`, after the retry horizon: 1 + 2 + 4 s by default; the message is then
    /// in agentd's dead-letter queue), running `agent`'s handlers and sending the retries
    /// meanwhile. `agent` must be the one that sent it.
    pub fn wait(mut self, agent: &mut Agent) -> Result<(), CommunicationError> {
        loop {
            if let Some(r) = self.take(agent, Instant::now()) {
                return r;
            }
            if agent.poll(64)? == 0 {
                let next = agent.drive_deliveries().unwrap_or_else(Instant::now);
                agent.receiver().check_link()?;
                let until = next.max(Instant::now() + Duration::from_micros(100));
                agent.receiver().idle(until);
            }
        }
    }

    /// Stops retrying now (the same as dropping it).
    pub fn abandon(self) {}

    /// The message's fate, if decided; a failed one is dead-lettered with agentd through
    /// `agent` (the failure is returned whether or not that worked).
    fn take(&mut self, agent: &mut Agent, now: Instant) -> Option<Result<(), CommunicationError>> {
        let r = lock(&self.requests).take_delivery(self.id, &self.target, now)?;
        self.finish();
        Some(r.map_err(|(failed, resend)| {
            agent.dead_letter(self.id, &resend, &failed.to_string());
            failed
        }))
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for PendingDelivery {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.requests).cancel(self.id);
            self.finish();
        }
    }
}
