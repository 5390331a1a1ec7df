//! Requests awaiting replies: the table the receiver files replies into, and the
//! [`PendingRequest`] handle that waits for one (or abandons it when dropped).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rkyv::util::AlignedVec;

use super::acked::{Again, Resend};
use super::breaker::{BreakerConfig, Breakers, Outcome};
use super::destination::Target;
use super::Agent;
use crate::body::Payload;
use crate::codec::decode;
use crate::control::AgentAddress;
use crate::error::CommunicationError;
use crate::header::{Flags, FrameHeader, AGENTD_SLOT};
use crate::ids::MessageId;
use crate::kinds::MessageType;
use crate::message::Message;
use crate::payload::ErrorKind;

/// What a frame flagged as a reply is to this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    /// Not a reply to anything this agent asked: an ordinary message.
    NotAwaited,
    /// The reply to an outstanding request, from the agent it went to (or from agentd).
    Awaited,
    /// A reply to a request that timed out or was abandoned.
    Late,
    /// It names an outstanding request but comes from an agent the request did not go to.
    Forged,
    /// An acknowledgement of a message no longer awaited (of a retried copy, after the first
    /// was acknowledged): dropped.
    StrayAck,
}

/// Who may answer an outstanding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replier {
    /// The agent at this address (the request was sent to it by id).
    Agent(AgentAddress),
    /// Whichever agent the router picked (capability or type routing): the request's
    /// unguessable id is what only that agent knows.
    Picked,
}

/// An outstanding request: who may answer it, where it went as named (for its errors), and its
/// reply once it came.
#[derive(Debug)]
struct Outstanding {
    replier: Replier,
    to: Target,
    reply: Option<AlignedVec<16>>,
    /// For a message sent for at-least-once delivery: how to send it again.
    resend: Option<Box<Resend>>,
    /// Its receiver acknowledged it (at-least-once).
    acked: bool,
    /// Why it can never be answered (agentd restarted while it was outstanding).
    failed: Option<CommunicationError>,
}

/// Request ids given up on (timed out, or their [`PendingRequest`] dropped), remembered up to a
/// bound so their late replies are recognised and counted.
#[derive(Debug, Default)]
struct GivenUp {
    order: VecDeque<MessageId>,
    ids: HashSet<MessageId>,
}

impl GivenUp {
    const BOUND: usize = 4096;

    fn remember(&mut self, id: MessageId) {
        if self.order.len() == Self::BOUND {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back(id);
        self.ids.insert(id);
    }
}

/// An agent's outstanding requests, shared by its receiver (which files replies) and every
/// [`PendingRequest`] (which takes its reply, or gives it up when dropped). Locked once per
/// request started, per reply filed and per wait: never on the path of an ordinary message.
#[derive(Debug, Default)]
pub(crate) struct RequestTable {
    outstanding: HashMap<MessageId, Outstanding>,
    /// The at-least-once messages among them, so that looking for due retries does not walk
    /// every outstanding request.
    resending: HashSet<MessageId>,
    /// A circuit breaker per destination.
    pub(crate) breakers: Breakers,
    given_up: GivenUp,
    /// Replies that came after their request was given up (counted, then dropped).
    pub(crate) late: u64,
    /// Replies dropped because they named an outstanding request but came from an agent the
    /// request was not sent to.
    pub(crate) forged: u64,
}

/// The table, shared.
pub(crate) type Requests = Arc<Mutex<RequestTable>>;

/// Locks the table. A panic while it was held (in this client's own code, between two
/// consistent states) leaves it usable.
pub(crate) fn lock(requests: &Requests) -> MutexGuard<'_, RequestTable> {
    requests.lock().unwrap_or_else(|p| p.into_inner())
}

impl RequestTable {
    /// An empty table whose breakers follow `breaker` (`None`: no breakers).
    pub(crate) fn new(breaker: Option<BreakerConfig>) -> RequestTable {
        RequestTable {
            breakers: Breakers::new(breaker),
            ..RequestTable::default()
        }
    }

    /// Records request `id` as sent to `replier`, named `to` for errors.
    pub(crate) fn start(&mut self, id: MessageId, replier: Replier, to: Target) {
        self.insert(id, replier, to, None);
    }

    /// Records message `id`, sent for at-least-once delivery to `replier`, with what a retry
    /// needs.
    pub(crate) fn start_delivery(
        &mut self,
        id: MessageId,
        replier: Replier,
        to: Target,
        resend: Resend,
    ) {
        self.insert(id, replier, to, Some(Box::new(resend)));
    }

    fn insert(&mut self, id: MessageId, replier: Replier, to: Target, resend: Option<Box<Resend>>) {
        let outstanding = Outstanding {
            replier,
            to,
            reply: None,
            resend,
            acked: false,
            failed: None,
        };
        if outstanding.resend.is_some() {
            self.resending.insert(id);
        }
        self.outstanding.insert(id, outstanding);
    }

    /// Ends entry `id`, a request's or an at-least-once message's.
    fn remove(&mut self, id: MessageId) -> Option<Outstanding> {
        self.resending.remove(&id);
        self.outstanding.remove(&id)
    }

    /// The at-least-once messages due for another attempt at `now` (counted as made), and when
    /// the next one after them is due.
    pub(crate) fn due(
        &mut self,
        now: Instant,
    ) -> (Vec<(MessageId, Again, Message)>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for id in &self.resending {
            let Some(o) = self.outstanding.get_mut(id) else {
                continue;
            };
            let Some(r) = o.resend.as_mut().filter(|_| !o.acked) else {
                continue;
            };
            if r.due(now) {
                due.push((*id, r.to.clone(), r.message.clone()));
            }
            next = Some(next.map_or(r.next_at, |n| n.min(r.next_at)));
        }
        (due, next)
    }

    /// Notes that an attempt of at-least-once message `id` could not be sent.
    pub(crate) fn attempt_failed(&mut self, id: MessageId, why: String) {
        if let Some(r) = self
            .outstanding
            .get_mut(&id)
            .and_then(|o| o.resend.as_mut())
        {
            r.last_error = Some(why);
        }
    }

    /// At-least-once message `id`'s fate at `now`, ending it: `Ok` once acknowledged,
    /// `DeliveryFailed` once every attempt is spent (with what it takes to dead-letter the
    /// message); `None` while in flight.
    pub(crate) fn take_delivery(
        &mut self,
        id: MessageId,
        target: &Target,
        now: Instant,
    ) -> Option<Result<(), (CommunicationError, Box<Resend>)>> {
        let o = self.outstanding.get_mut(&id)?;
        if o.acked {
            self.remove(id);
            return Some(Ok(()));
        }
        let r = o.resend.as_mut()?;
        if let Some(reply) = o.reply.take() {
            // Not an acknowledgement: agentd could not route that attempt.
            r.last_error = Some(match response_result(&reply, target.to_string()) {
                Ok(m) => format!(
                    "an answer that is not an acknowledgement ({})",
                    m.message_type
                ),
                Err(e) => e.to_string(),
            });
        }
        if !r.spent(now) {
            return None;
        }
        let failed = CommunicationError::DeliveryFailed {
            destination: target.to_string(),
            message_id: id,
            attempts: r.attempts,
            reason: r
                .last_error
                .take()
                .unwrap_or_else(|| "no acknowledgement came".into()),
        };
        let resend = self.remove(id)?.resend?;
        Some(Err((failed, resend)))
    }

    /// Forgets request `id` without remembering it (its send failed).
    pub(crate) fn cancel(&mut self, id: MessageId) {
        self.remove(id);
    }

    /// Gives up on request `id`: a reply that still comes (or came and was never taken) is
    /// counted late.
    fn give_up(&mut self, id: MessageId) {
        if let Some(o) = self.remove(id) {
            if o.reply.is_some() {
                self.late += 1;
            } else {
                self.given_up.remember(id);
            }
        }
    }

    /// What the frame with header `h` is to this agent's requests. The source slot and epoch
    /// are the router's stamp, so an agent cannot claim another's; the correlation id of a
    /// request is unguessable ([`crate::IdGenerator::next_secret_id`]), so an agent it was not
    /// shown cannot name it.
    pub(crate) fn kind_of(&self, h: &FrameHeader) -> ReplyKind {
        if !h.flags.contains(Flags::IS_REPLY) || h.correlation_id.is_none() {
            return ReplyKind::NotAwaited;
        }
        match self.outstanding.get(&h.correlation_id).map(|o| &o.replier) {
            Some(_) if h.source_slot == AGENTD_SLOT => ReplyKind::Awaited,
            Some(Replier::Agent(a)) if a.slot != h.source_slot || a.epoch != h.source_epoch => {
                ReplyKind::Forged
            }
            Some(_) => ReplyKind::Awaited,
            None if self.given_up.ids.contains(&h.correlation_id) => ReplyKind::Late,
            None if h.flags.contains(Flags::IS_ACK) => ReplyKind::StrayAck,
            None => ReplyKind::NotAwaited,
        }
    }

    /// Files a reply frame of kind `kind` (from [`RequestTable::kind_of`]): kept for its
    /// request, or counted and dropped.
    pub(crate) fn file(&mut self, kind: ReplyKind, h: &FrameHeader, frame: &[u8]) {
        let id = h.correlation_id;
        match kind {
            ReplyKind::Awaited => {
                if let Some(o) = self.outstanding.get_mut(&id) {
                    if h.flags.contains(Flags::IS_ACK) {
                        o.acked = true;
                    } else if !o.acked {
                        o.reply = Some(super::delivery::copy_frame(frame));
                    }
                }
            }
            ReplyKind::Late => {
                self.given_up.ids.remove(&id);
                self.late += 1;
            }
            ReplyKind::Forged => self.forged += 1,
            ReplyKind::StrayAck | ReplyKind::NotAwaited => {}
        }
    }

    /// agentd restarted: every outstanding request fails (its reply died with agentd), and an
    /// at-least-once message keeps being retried, acknowledged by whichever agent its id
    /// reaches (the agent it went to has a new address, if it came back at all). Returns how
    /// many requests failed.
    pub(crate) fn reattached(&mut self) -> usize {
        let mut failed = 0;
        for (id, o) in self.outstanding.iter_mut() {
            if o.resend.is_some() {
                o.replier = Replier::Picked;
            } else if o.reply.is_none() && o.failed.is_none() {
                o.failed = Some(CommunicationError::RequestFailed {
                    kind: ErrorKind::AgentUnreachable,
                    details: format!(
                        "agentd restarted while request {id} to {} was outstanding: its reply cannot come; send it again",
                        o.to
                    ),
                });
                failed += 1;
            }
        }
        failed
    }

    /// Takes request `id`'s reply if it came (or why it never will), ending the request.
    fn take(&mut self, id: MessageId) -> Option<Result<Message, CommunicationError>> {
        let o = self.outstanding.get_mut(&id)?;
        if let Some(e) = o.failed.take() {
            self.remove(id);
            return Some(Err(e));
        }
        let reply = o.reply.take()?;
        let to = self.remove(id).map(|o| o.to.to_string());
        Some(response_result(&reply, to.unwrap_or_default()))
    }
}

/// A reply frame as the caller sees it: the message, or the error an `Error` reply reports.
/// `to` is the request's destination as named.
fn response_result(bytes: &[u8], to: String) -> Result<Message, CommunicationError> {
    let m = decode(bytes)?.to_message()?;
    match &m.payload {
        Payload::Error(e) if m.message_type == MessageType::Error => Err(match e.kind {
            ErrorKind::AgentUnreachable => CommunicationError::AgentUnreachable {
                agent: to,
                reason: e.details.clone(),
            },
            kind => CommunicationError::RequestFailed {
                kind,
                details: e.details.clone(),
            },
        }),
        _ => Ok(m),
    }
}

/// A request sent and not yet answered ([`Agent::start_request`]). [`PendingRequest::wait`]
/// or [`PendingRequest::try_wait`] on the agent that sent it takes its reply; dropping it
/// abandons the request: its entry goes at once, and a reply that still comes is counted
/// ([`super::ClientCounters::late_replies`]) and dropped.
///
/// ```
/// use std::time::{Duration, Instant};
/// use agentbus::client::{Agent, AttachOptions};
/// use agentbus::{Message, Payload, TaskRequest, TaskResponse};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-pending-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut risk = Agent::attach(options("risk-1", "risk").capabilities(["risk"]))?;
/// risk.on_request(|_request, _tx| Ok(Payload::TaskResponse(TaskResponse::default())));
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let to_risk = strategy.capability(&["risk"])?;
/// let ask = Message::task_request(strategy.identity(), TaskRequest {
///     task_type: "check_order".into(),
///     ..Default::default()
/// });
/// let first = strategy.start_request(&to_risk, &ask)?;
/// let second = strategy.start_request(&to_risk, &ask)?;    // both outstanding at once
/// // risk answers both from its handler (its `poll` loop)
/// # let until = Instant::now() + Duration::from_secs(5);
/// # let mut answered = 0;
/// # while answered < 2 && Instant::now() < until { answered += risk.poll(16)?; risk.receiver().wait_ready(Duration::from_millis(10)); }
/// let answer = first.wait(&mut strategy, Duration::from_secs(5))?;
/// assert!(matches!(answer.payload, Payload::TaskResponse(_)));
/// drop(second);                                            // abandoned: its reply is counted late
/// # while strategy.counters().late_replies == 0 && Instant::now() < until { strategy.poll(16)?; strategy.receiver().wait_ready(Duration::from_millis(10)); }
/// assert_eq!(strategy.counters().late_replies, 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PendingRequest {
    id: MessageId,
    /// Where it went, for its destination's breaker.
    target: Target,
    requests: Requests,
    /// The reply was taken: nothing to give up on drop.
    done: bool,
}

impl PendingRequest {
    pub(crate) fn new(id: MessageId, target: Target, requests: Requests) -> PendingRequest {
        PendingRequest {
            id,
            target,
            requests,
            done: false,
        }
    }

    /// The request's id (the reply's correlation id).
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The reply if it has come (taking what is in `agent`'s lanes now, and running its
    /// handlers on anything else, without waiting); `None` if not yet. An `Error` reply comes
    /// back as an error. `agent` must be the one that sent the request.
    pub fn try_wait(&mut self, agent: &mut Agent) -> Option<Result<Message, CommunicationError>> {
        if self.done {
            return None;
        }
        if let Some(r) = self.take() {
            return Some(r);
        }
        if let Err(e) = agent.poll(64) {
            return Some(Err(e));
        }
        self.take()
    }

    /// Waits up to `timeout` for the reply, running `agent`'s handlers (see [`Agent::poll`]) on
    /// whatever else arrives and queueing the rest for `recv`. An `Error` reply (the handler
    /// failed, or agentd could not route the request) is returned as an error; past the timeout,
    /// `Timeout`, and a reply that still comes is counted late. `agent` must be the one that
    /// sent the request.
    pub fn wait(
        mut self,
        agent: &mut Agent,
        timeout: Duration,
    ) -> Result<Message, CommunicationError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.take() {
                return r;
            }
            if Instant::now() >= deadline {
                let timed_out = Err(CommunicationError::Timeout {
                    what: format!("the response to request {}", self.id),
                    after: timeout,
                });
                self.count(&timed_out);
                return timed_out;
            }
            if agent.poll(64)? == 0 {
                agent.receiver().check_link()?;
                agent.receiver().idle(deadline);
            }
        }
    }

    /// Gives the request up now (the same as dropping it).
    pub fn abandon(self) {}

    fn take(&mut self) -> Option<Result<Message, CommunicationError>> {
        let r = lock(&self.requests).take(self.id)?;
        self.done = true;
        self.count(&r);
        Some(r)
    }

    /// Tells the destination's breaker what became of the request.
    fn count(&self, result: &Result<Message, CommunicationError>) {
        lock(&self.requests)
            .breakers
            .record(&self.target, Outcome::of(result), Instant::now());
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.requests).give_up(self.id);
        }
    }
}
