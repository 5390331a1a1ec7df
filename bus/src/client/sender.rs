//! The sending half of an agent: destinations resolved once, one `send` family over every
//! route kind, loans, batches and replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus_ipc::clock::realtime_ns;
use agentbus_ipc::ring::Producer;
use agentbus_ipc::wait::Wait;

use super::destination::{AgentType, Capability, Destination, Peer, Topic};
use super::outgoing::sealed::Encode;
use super::reroute::{Named, Reroutes, Resolved};
use super::shared::{unexpected, Shared};
use super::{Batch, Loan, Outgoing};
use crate::body::AgentIdentifier;
use crate::codec::{bare_header, NoWait, Room, Route, WaitUntil};
use crate::control::{
    AgentAddress, Refusal, Refused, Request, Response, TopicConfig, TopicRequest,
};
use crate::error::{CommunicationError, EncodeError};
use crate::header::{Flags, FrameHeader, AGENTD_SLOT};
use crate::ids::{IdGenerator, MessageId};
use crate::kinds::{MessagePriority, RouteKind};
use crate::lanes::ControlBlock;

/// Topic prefix for events ([`Sender::event`]).
pub const EVENT_PREFIX: &str = "evt.";

/// The longest one wait for room lasts before the link to agentd is checked again: a blocking
/// send notices agentd's death within about this, whatever its timeout.
const ROOM_CHECK_EVERY: Duration = Duration::from_millis(50);

/// How long a reply waits for room before it is given up (the requester times out anyway).
const REPLY_ROOM_TIMEOUT: Duration = Duration::from_secs(1);

/// The sending half of an [`super::Agent`]: its outbound lanes, one per priority.
///
/// Get it with [`super::Agent::split`] (beside the [`super::Receiver`], so a message read in
/// place can be answered while it is held) or [`super::Agent::sender`]. Destinations are
/// resolved once ([`Sender::peer`], [`Sender::topic`], [`Sender::capability`],
/// [`Sender::agent_type`]); every send then goes straight into the lane: no lookup, no lock, no
/// system call while the router is awake, one clock reading.
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions, Raw};
/// use agentbus::{Message, Notification};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-sender-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut feed = Agent::attach(options("feed-1", "market_data"))?;
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let _ticks = strategy.subscribe("market.>")?;
/// let tx = feed.sender();
/// let aapl = tx.topic("market.AAPL")?;                      // resolved once
/// let tick = Message::notification(tx.identity(), Notification {
///     event: "tick".into(),
///     ..Default::default()
/// });
/// tx.send(&aapl, &tick)?;                                   // QueueFull at once if the lane is full
/// tx.send_blocking(&aapl, Raw(b"px=101.25"), Duration::from_millis(100))?; // waits for room
/// let first = strategy.recv_timeout(Duration::from_secs(5))?.expect("the tick");
/// assert!(first.payload().is_some());
/// drop(first);
/// let second = strategy.recv_timeout(Duration::from_secs(5))?.expect("the bytes");
/// assert_eq!(second.raw(), Some(&b"px=101.25"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sender {
    pub(crate) shared: Arc<Shared>,
    outbound: Vec<Producer>,
    /// The current attachment's control block (heartbeat, load, the router's beat).
    control: ControlBlock,
    /// Half the heartbeat interval, ns: the longest this agent goes without showing life.
    beat_every_ns: u64,
    /// The generation the handles resolved now belong to ([`Shared::generation`]), and the
    /// routes of older handles resolved again in it, by name.
    routes: Reroutes,
    ids: IdGenerator,
    /// When the last send was stamped into the control block (realtime ns).
    last_send_beat: u64,
    wait: Wait,
    /// A [`Batch`] is open.
    batching: bool,
    /// Sender batching bounded by size and delay, when set.
    timed: Option<TimedBatch>,
}

/// Sender batching bounded by size and delay ([`Sender::set_batching`]; the spec's
/// `MessageBatcher`): messages are held in the lanes and reach the router together when
/// `max_messages` have been sent or `max_delay` has passed since the first, whichever comes
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Messages that publish the batch at once.
    pub max_messages: u32,
    /// The longest the first message of a batch waits: checked on each send and by `poll`.
    pub max_delay: Duration,
}

/// An open timed batch's state.
#[derive(Debug, Clone, Copy)]
struct TimedBatch {
    policy: BatchPolicy,
    /// Messages in the open batch (0: none open).
    held: u32,
    /// When its first message was sent (realtime ns).
    opened_at: u64,
}

impl Sender {
    pub(crate) fn new(
        shared: Arc<Shared>,
        outbound: Vec<Producer>,
        control: ControlBlock,
        beat_every_ns: u64,
        wait: Wait,
    ) -> Sender {
        Sender {
            routes: Reroutes::new(shared.generation()),
            shared,
            outbound,
            control,
            beat_every_ns,
            ids: IdGenerator::new(),
            last_send_beat: 0,
            wait,
            batching: false,
            timed: None,
        }
    }

    /// A fresh unguessable id, for a request.
    pub(crate) fn secret_id(&mut self) -> MessageId {
        self.ids.next_secret_id()
    }

    /// This agent's identifier, for the `from` of its messages.
    pub fn identity(&self) -> AgentIdentifier {
        self.shared.identity.clone()
    }

    /// Resolves the agent `agent_id` (one control request): sending to the [`Peer`] needs no
    /// lookup. `AgentUnreachable` if no agent of that id is attached.
    pub fn peer(&self, agent_id: &str) -> Result<Peer, CommunicationError> {
        match self.control(Request::ResolveAgent(agent_id.into()))? {
            Response::Agent(address) => {
                let name: Arc<str> = agent_id.into();
                self.shared.remember(
                    RouteKind::Agent,
                    address.destination(),
                    Named::Peer(Arc::clone(&name)),
                );
                Ok(Peer {
                    address,
                    name,
                    generation: self.shared.generation(),
                })
            }
            Response::Refused(Refused {
                kind: Refusal::NoSuchAgent,
                message,
            }) => Err(CommunicationError::AgentUnreachable {
                agent: agent_id.into(),
                reason: message,
            }),
            other => Err(unexpected(other).into()),
        }
    }

    /// The topic `name`, created if it does not exist (one control request); a new one is
    /// configured as agentd's configuration says for its name (by default,
    /// [`crate::control::BackPressure::Block`]).
    pub fn topic(&self, name: &str) -> Result<Topic, CommunicationError> {
        self.topic_as(name, None)
    }

    /// The topic `name`, created with `config` if it does not exist (the spec's
    /// `createTopic(topic, config)`). An existing topic configured otherwise is refused
    /// (`Refused` with `BadRequest`, naming both): a topic has one configuration for its life.
    pub fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<Topic, CommunicationError> {
        self.topic_as(name, Some(config))
    }

    fn topic_as(
        &self,
        name: &str,
        config: Option<TopicConfig>,
    ) -> Result<Topic, CommunicationError> {
        let request = Request::CreateTopic(TopicRequest {
            name: name.into(),
            config: config.clone(),
        });
        match self.control(request)? {
            Response::Topic(grant) => {
                if let Some(config) = config {
                    // Created again with its configuration if agentd restarts.
                    let mut book = self.shared.book();
                    if !book.topics.iter().any(|(n, _)| n == name) {
                        book.topics.push((name.into(), config));
                    }
                }
                let name: Arc<str> = name.into();
                self.shared
                    .remember(RouteKind::Topic, grant.id, Named::Topic(Arc::clone(&name)));
                Ok(Topic {
                    id: grant.id,
                    name,
                    may_publish: grant.may_publish,
                    generation: self.shared.generation(),
                })
            }
            other => Err(self.shared.control_failed(unexpected(other))),
        }
    }

    /// The topic events of `event_type` are published on (`evt.<event_type>`; the spec's
    /// `emitEvent` is a send to it). Listen with [`super::Agent::on_event`].
    pub fn event(&self, event_type: &str) -> Result<Topic, CommunicationError> {
        self.topic(&format!("{EVENT_PREFIX}{event_type}"))
    }

    /// The set of `capabilities` (order and repeats do not matter), for capability routing
    /// (one control request).
    pub fn capability<S: AsRef<str>>(
        &self,
        capabilities: &[S],
    ) -> Result<Capability, CommunicationError> {
        let mut names: Vec<String> = capabilities.iter().map(|c| c.as_ref().into()).collect();
        names.sort();
        names.dedup();
        let id = self.id_of(Request::InternCapabilities(names.clone()))?;
        let names: Arc<[String]> = names.into();
        self.shared.remember(
            RouteKind::Capability,
            id,
            Named::Capability(Arc::clone(&names)),
        );
        Ok(Capability {
            id,
            names,
            generation: self.shared.generation(),
        })
    }

    /// The agent type `name`, for load-balanced routing (one control request).
    pub fn agent_type(&self, name: &str) -> Result<AgentType, CommunicationError> {
        let id = self.id_of(Request::InternType(name.into()))?;
        let name: Arc<str> = name.into();
        self.shared
            .remember(RouteKind::LoadBalanced, id, Named::Type(Arc::clone(&name)));
        Ok(AgentType {
            id,
            name,
            generation: self.shared.generation(),
        })
    }

    fn control(&self, request: Request) -> Result<Response, CommunicationError> {
        self.shared
            .call(&request)
            .map_err(|e| self.shared.control_failed(e))
    }

    fn id_of(&self, request: Request) -> Result<u64, CommunicationError> {
        match self.control(request)? {
            Response::Id(id) => Ok(id),
            other => Err(self.shared.control_failed(unexpected(other))),
        }
    }

    /// Sends `message` (a `&Message`, [`super::Raw`] bytes or a [`super::Typed`] value) to
    /// `to`, returning its id. Fails at once with `QueueFull` if this agent's outbound lane for
    /// the message's priority has no room (see [`Sender::send_blocking`]). To several peers, one
    /// copy each with one id; a failure part way leaves the copies before it sent.
    pub fn send<'d, M: Outgoing>(
        &mut self,
        to: impl Into<Destination<'d>>,
        message: M,
    ) -> Result<MessageId, CommunicationError> {
        self.send_with(to.into(), &message, None, |_| {})
    }

    /// As [`Sender::send`], waiting up to `timeout` for room in the lane instead of failing
    /// with `QueueFull`: the wait parks on the lane's space doorbell (or spins, or backs off, as
    /// [`super::AttachOptions::wait`] says), so the router's next read wakes it. `Timeout` if no
    /// room came in time; `Disconnected` (within about 50 ms) if agentd died meanwhile.
    pub fn send_blocking<'d, M: Outgoing>(
        &mut self,
        to: impl Into<Destination<'d>>,
        message: M,
        timeout: Duration,
    ) -> Result<MessageId, CommunicationError> {
        self.send_with(to.into(), &message, Some(timeout), |_| {})
    }

    /// Sends `message` to `to`, its header adjusted by `adjust` (a request's id and flags);
    /// waits up to `timeout` for room when given.
    pub(crate) fn send_with<M: Outgoing>(
        &mut self,
        to: Destination<'_>,
        message: &M,
        timeout: Option<Duration>,
        adjust: impl Fn(&mut FrameHeader),
    ) -> Result<MessageId, CommunicationError> {
        let now = realtime_ns();
        self.shared.check_link(now, &self.control)?;
        self.stamp_send(now);
        self.open_timed(now);
        let sent = self.send_stamped(to, message, timeout, now, adjust);
        self.close_timed(now);
        sent
    }

    /// [`Sender::send_with`] once the link is checked and the clock read (`now`).
    fn send_stamped<M: Outgoing>(
        &mut self,
        to: Destination<'_>,
        message: &M,
        timeout: Option<Duration>,
        now: u64,
        adjust: impl Fn(&mut FrameHeader),
    ) -> Result<MessageId, CommunicationError> {
        let deadline = timeout.map(|t| (Instant::now() + t, t));
        let peers: &[Peer] = match to {
            Destination::Peers(peers) => peers,
            single => {
                let route = self
                    .route_of(&single)?
                    .expect("a single destination has one route");
                let header = self.stamped(message.header(route), now, &adjust);
                self.write(message, &header, deadline)?;
                self.count_timed();
                return Ok(header.message_id);
            }
        };
        let mut id = MessageId::NONE;
        for peer in peers {
            let route = Route {
                kind: RouteKind::Multicast,
                destination: self.peer_destination(peer)?,
            };
            let mut header = message.header(route);
            if !id.is_none() {
                header.message_id = id;
            }
            let header = self.stamped(header, now, &adjust);
            id = header.message_id;
            self.write(message, &header, deadline)?;
            self.count_timed();
        }
        Ok(id)
    }

    /// The route of single destination `to` now (`None` for several peers): a handle resolved
    /// before agentd restarted is resolved again by name, once per generation. A topic this
    /// agent may not publish on is refused here, before anything is sent.
    pub(crate) fn route_of(
        &mut self,
        to: &Destination<'_>,
    ) -> Result<Option<Route>, CommunicationError> {
        let Some(generation) = to.generation() else {
            return Ok(to.route());
        };
        // The name (two Arc clones) only for a handle of an earlier generation.
        let stale = (generation != self.routes.generation)
            .then(|| to.named())
            .flatten();
        let (route, may_publish) = match stale {
            Some((named, kind)) => {
                let resolved = self.resolve_again(named)?;
                (
                    Some(super::reroute::route(kind, resolved)),
                    resolved.may_publish,
                )
            }
            _ => (
                to.route(),
                !matches!(to, Destination::Topic(t) if !t.may_publish),
            ),
        };
        if let (false, Destination::Topic(t)) = (may_publish, to) {
            return Err(CommunicationError::Unauthorized {
                what: format!(
                    "this agent may not publish on topic {:?} (its publishers are restricted)",
                    t.name()
                ),
            });
        }
        Ok(route)
    }

    /// The destination id of `peer` now (resolved again by name if agentd restarted since).
    pub(crate) fn peer_destination(&mut self, peer: &Peer) -> Result<u64, CommunicationError> {
        if peer.generation == self.routes.generation {
            return Ok(peer.address.destination());
        }
        Ok(self
            .resolve_again(Named::Peer(Arc::clone(&peer.name)))?
            .destination)
    }

    /// What `named` resolves to in the current generation: asked of agentd once, then kept.
    pub(crate) fn resolve_again(&mut self, named: Named) -> Result<Resolved, CommunicationError> {
        if let Some(r) = self.routes.get(&named) {
            return Ok(r);
        }
        let resolved = match &named {
            Named::Peer(id) => Resolved {
                destination: self.peer(id)?.address.destination(),
                may_publish: true,
            },
            Named::Topic(name) => {
                let t = self.topic(name)?;
                Resolved {
                    destination: t.id,
                    may_publish: t.may_publish,
                }
            }
            Named::Capability(names) => Resolved {
                destination: self.capability(names)?.id,
                may_publish: true,
            },
            Named::Type(name) => Resolved {
                destination: self.agent_type(name)?.id,
                may_publish: true,
            },
        };
        self.routes.insert(named, resolved);
        Ok(resolved)
    }

    /// Writes `frame` (one whole frame, as a dead agentd left it unread) into the lane of its
    /// priority with `header` (its destination resolved again) over its own, as a new send.
    pub(crate) fn write_frame(
        &mut self,
        frame: &[u8],
        header: &FrameHeader,
        route: Route,
    ) -> Result<(), CommunicationError> {
        let mut header = *header;
        header.destination = route.destination;
        let lane = (header.priority as usize).min(self.outbound.len() - 1);
        let mut claim = self.outbound[lane]
            .try_claim(frame.len())
            .map_err(|e| CommunicationError::from(crate::codec::claim_error(e)))?;
        let buf = claim.payload();
        buf[..frame.len()].copy_from_slice(frame);
        header.write(&mut buf[..crate::header::HEADER_LEN]);
        claim.commit(frame.len());
        Ok(())
    }

    /// Takes over a new attachment's lanes and control block (agentd restarted): handles of
    /// earlier generations are resolved again from here on.
    pub(crate) fn relink(
        &mut self,
        outbound: Vec<Producer>,
        control: ControlBlock,
        beat_every_ns: u64,
    ) {
        self.outbound = outbound;
        self.control = control;
        self.beat_every_ns = beat_every_ns;
        self.routes = Reroutes::new(self.shared.generation());
        self.last_send_beat = 0;
        self.batching = false;
        if let Some(t) = self.timed.as_mut() {
            t.held = 0;
        }
    }

    /// Holds sends in the lanes when timed batching is on and no batch is open yet.
    fn open_timed(&mut self, now: u64) {
        if let Some(t) = self.timed.as_mut() {
            if t.held == 0 && !self.batching {
                t.opened_at = now;
                for lane in &mut self.outbound {
                    lane.begin_batch();
                }
            }
        }
    }

    fn count_timed(&mut self) {
        if let Some(t) = self.timed.as_mut() {
            t.held = t.held.saturating_add(1);
        }
    }

    /// Publishes the timed batch if it is full or old enough at `now`.
    fn close_timed(&mut self, now: u64) {
        let Some(t) = self.timed else {
            return;
        };
        if t.held > 0
            && (t.held >= t.policy.max_messages
                || now.saturating_sub(t.opened_at) >= t.policy.max_delay.as_nanos() as u64)
        {
            self.flush();
        }
    }

    /// Sets sender batching bounded by size and delay (`None`: every send is published at
    /// once; an open batch is published first). Sends are held in the lanes until
    /// `max_messages` have been sent or `max_delay` has passed since the first; the delay is
    /// checked on each send and by the agent's `poll`, so an agent that stops sending must
    /// keep polling (as `run_until` does) for its last batch to go.
    pub fn set_batching(&mut self, policy: Option<BatchPolicy>) {
        self.flush();
        self.timed = policy.map(|policy| TimedBatch {
            policy,
            held: 0,
            opened_at: 0,
        });
    }

    /// Publishes what a timed batch holds now (inside a [`Batch`], that batch publishes it).
    pub fn flush(&mut self) {
        if let Some(t) = self.timed.as_mut() {
            t.held = 0;
        }
        if !self.batching {
            for lane in &mut self.outbound {
                lane.publish();
            }
        }
    }

    /// Publishes the timed batch if its delay has passed; returns when it will be due if one
    /// is still open (for a caller about to sleep).
    pub(crate) fn flush_due(&mut self) -> Option<Instant> {
        let t = self.timed?;
        if t.held == 0 {
            return None;
        }
        let now = realtime_ns();
        let age = now.saturating_sub(t.opened_at);
        let delay = t.policy.max_delay.as_nanos() as u64;
        if age >= delay {
            self.flush();
            return None;
        }
        Some(Instant::now() + Duration::from_nanos(delay - age))
    }

    /// `header` with an id (if it has none) and the send's timestamp.
    fn stamped(
        &mut self,
        mut header: FrameHeader,
        now: u64,
        adjust: &impl Fn(&mut FrameHeader),
    ) -> FrameHeader {
        adjust(&mut header);
        if header.message_id.is_none() {
            header.message_id = self.ids.next_id();
        }
        header.timestamp_ns = now;
        header
    }

    /// Writes one frame into the lane of its priority: at once, or (with a deadline) through
    /// the client's one wait-for-room path.
    fn write<M: Encode>(
        &mut self,
        message: &M,
        header: &FrameHeader,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<(), CommunicationError> {
        let lane = header.priority as usize;
        let written = message.write(&mut self.outbound[lane], header, &NoWait);
        if matches!(written, Err(EncodeError::QueueFull { .. })) {
            // The slow path only: what `agentbus top` shows as this agent's full lanes.
            self.control.count_full(lane);
        }
        match (written, deadline) {
            (Err(EncodeError::QueueFull { .. }), Some((deadline, timeout))) => {
                self.wait_for_room(lane, deadline, timeout, |lane, room| {
                    message.write(lane, header, room)
                })
            }
            (written, _) => written.map_err(CommunicationError::from),
        }
    }

    /// The wait-for-room path: retries `write` on lane `lane`, each try waiting on the lane's
    /// space doorbell for at most [`ROOM_CHECK_EVERY`], checking between tries that agentd is
    /// still there, until `deadline`. An open batch is published first: its frames are what the
    /// router must read to make room.
    fn wait_for_room(
        &mut self,
        lane: usize,
        deadline: Instant,
        timeout: Duration,
        mut write: impl FnMut(&mut Producer, &WaitUntil) -> Result<(), EncodeError>,
    ) -> Result<(), CommunicationError> {
        if self.batching || self.timed.is_some_and(|t| t.held > 0) {
            self.outbound[lane].publish();
            self.outbound[lane].begin_batch();
        }
        loop {
            let slice = deadline.min(Instant::now() + ROOM_CHECK_EVERY);
            let room = WaitUntil {
                wait: self.wait,
                deadline: slice,
                timeout,
            };
            match write(&mut self.outbound[lane], &room) {
                Err(EncodeError::TimedOut { .. }) if Instant::now() < deadline => {
                    self.shared.check_link_now(&self.control)?;
                }
                Err(EncodeError::TimedOut { .. }) => {
                    return Err(CommunicationError::Timeout {
                        what: format!(
                            "room in this agent's {} outbound lane (the router is not taking its messages)",
                            lane_name(lane)
                        ),
                        after: timeout,
                    })
                }
                other => return other.map_err(CommunicationError::from),
            }
        }
    }

    /// Claims room for a `len`-byte payload to `to` in the lane for `priority`, to write in
    /// place and send ([`Loan`]). Fails at once with `QueueFull` if the lane has no room.
    pub fn loan(
        &mut self,
        to: &Peer,
        priority: MessagePriority,
        len: usize,
    ) -> Result<Loan<'_>, CommunicationError> {
        self.loan_in(to, priority, len, None)
    }

    /// As [`Sender::loan`], waiting up to `timeout` for room (as [`Sender::send_blocking`]).
    pub fn loan_blocking(
        &mut self,
        to: &Peer,
        priority: MessagePriority,
        len: usize,
        timeout: Duration,
    ) -> Result<Loan<'_>, CommunicationError> {
        self.loan_in(to, priority, len, Some(timeout))
    }

    fn loan_in(
        &mut self,
        to: &Peer,
        priority: MessagePriority,
        len: usize,
        timeout: Option<Duration>,
    ) -> Result<Loan<'_>, CommunicationError> {
        let now = realtime_ns();
        self.shared.check_link(now, &self.control)?;
        self.stamp_send(now);
        let route = Route {
            kind: RouteKind::Agent,
            destination: self.peer_destination(to)?,
        };
        let header = self.stamped(bare_header(route, priority), now, &|_| {});
        let lane = priority as usize;
        if let Some(timeout) = timeout {
            // Wait until the loan's room is free, then claim it below (nothing else writes
            // this lane meanwhile: the sender is borrowed).
            let room = super::loan::frame_len(len);
            let deadline = Instant::now() + timeout;
            self.wait_for_room(lane, deadline, timeout, |lane, r| {
                r.claim(lane, room).map(drop)
            })?;
        }
        Loan::new(&mut self.outbound[lane], header, len).map_err(CommunicationError::from)
    }

    /// Replies to the message whose header is `request` with `message` (a [`crate::Payload`], a
    /// `&Message`, [`super::Raw`] bytes or a [`super::Typed`] value): correlated to it, at its priority, to the agent the
    /// router says sent it. Waits up to a second for room. Works while the request is still held
    /// in place, so an answer can be written from the request's own bytes without copying them
    /// out first (`let (tx, rx) = agent.split(); let d = rx.recv()?; tx.reply(d.header(), ..)`).
    /// A message agentd sent itself is not answered.
    pub fn reply<M: Outgoing>(
        &mut self,
        request: &FrameHeader,
        message: M,
    ) -> Result<MessageId, CommunicationError> {
        self.send_reply(request, &message)
    }

    /// Acknowledges the at-least-once message whose header is `delivered` (a no-op for one sent
    /// without an acknowledgement request): its sender stops retrying. A `recv` user calls it
    /// once the message is dealt with; handlers run by `poll` acknowledge on return.
    pub fn ack(&mut self, delivered: &FrameHeader) -> Result<(), CommunicationError> {
        if !delivered.flags.contains(Flags::ACK_REQUESTED) {
            return Ok(());
        }
        self.answer(delivered, &super::Raw(&[]), Flags::IS_REPLY | Flags::IS_ACK)
            .map(drop)
    }

    pub(crate) fn send_reply<M: Outgoing>(
        &mut self,
        request: &FrameHeader,
        message: &M,
    ) -> Result<MessageId, CommunicationError> {
        self.answer(request, message, Flags::IS_REPLY)
    }

    /// Sends `message` back to the sender of the message with header `to`, correlated to it, at
    /// its priority, with `flags`; waits up to a second for room. A message agentd sent itself
    /// is not answered.
    fn answer<M: Outgoing>(
        &mut self,
        to: &FrameHeader,
        message: &M,
        flags: Flags,
    ) -> Result<MessageId, CommunicationError> {
        if to.source_slot == AGENTD_SLOT {
            return Ok(MessageId::NONE);
        }
        let peer = Peer {
            address: AgentAddress {
                slot: to.source_slot,
                epoch: to.source_epoch,
            },
            name: Arc::from(""),
            // Read from a frame of this agentd's: current (a frame received before a restart
            // names an address the new agentd almost surely never gave out: its epochs start
            // at random, so the answer is dead-lettered rather than misdelivered).
            generation: self.routes.generation,
        };
        let (correlation, priority) = (to.message_id, to.priority);
        self.send_with(
            Destination::Peer(&peer),
            message,
            Some(REPLY_ROOM_TIMEOUT),
            |h| {
                h.correlation_id = correlation;
                h.priority = priority;
                h.flags |= flags;
            },
        )
    }

    /// Starts a batch: messages sent through the returned guard reach the router together, with
    /// one Release store and at most one wake-up per lane (sender batching), when it is dropped.
    pub fn batch(&mut self) -> Batch<'_> {
        for lane in &mut self.outbound {
            lane.begin_batch();
        }
        self.batching = true;
        Batch::new(self)
    }

    /// Publishes every lane's open batch (the [`Batch`] guard's drop).
    pub(crate) fn end_batch(&mut self) {
        for lane in &mut self.outbound {
            lane.publish();
        }
        self.batching = false;
        if let Some(t) = self.timed.as_mut() {
            t.held = 0; // published with it
        }
    }

    /// Reports how many tasks this agent holds (load-balanced routing prefers the least loaded).
    pub fn set_load(&self, load: u32) {
        self.control.report_load(load);
    }

    /// Whether this agent still has a live agentd (checks as a send does: a system call only if
    /// the router's beat has stopped).
    pub fn is_connected(&self) -> bool {
        self.shared.check_link_now(&self.control).is_ok()
    }

    /// Shows the router that this agent is alive when it only sends: a store into the control
    /// block at most once per half heartbeat interval, from the send's own clock reading.
    fn stamp_send(&mut self, now: u64) {
        if now.wrapping_sub(self.last_send_beat) > self.beat_every_ns {
            self.control.sent_at(now);
            self.last_send_beat = now;
        }
    }
}

/// A lane's priority as errors name it.
fn lane_name(lane: usize) -> &'static str {
    match lane {
        0 => "CRITICAL",
        1 => "HIGH",
        2 => "NORMAL",
        _ => "LOW",
    }
}
