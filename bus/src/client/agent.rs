//! The agent handle every communication pattern uses.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use agentbus_ipc::clock::{monotonic_ns, realtime_ns};
use agentbus_ipc::ring::{Consumer, Producer};
use agentbus_ipc::segment::MemfdSegment;
use agentbus_ipc::wait::{WaitError, WaitStrategy};
use agentbus_ipc::words::SharedDoorbell;
use rustc_hash::FxHashMap;

use super::conn::ControlConn;
use super::delivery::Frame;
use super::handlers::Handlers;
use super::{AttachOptions, ClientError, Delivery, HandoverError, Loan};
use crate::codec::{
    bare_header, decode, encode, encode_bytes, encode_typed, header_for, Route, TypedPayload,
};
use crate::control::{
    AgentAddress, AgentInfo, AttachInfo, AttachRequest, BusStats, DeadLetterInfo, DeadLetterPage,
    Refusal, Refused, Request, Response, TopicInfo, PROTOCOL_VERSION,
};
use crate::error::{CommunicationError, EncodeError};
use crate::extensions::Extras;
use crate::header::FrameHeader;
use crate::ids::{IdGenerator, MessageId};
use crate::kinds::{MessagePriority, RouteKind};
use crate::lanes::{self, PRIORITIES};
use crate::message::Message;
use crate::paths;
use rkyv::util::AlignedVec;

/// How many `try_recv` calls between heartbeat clock checks.
const RECV_CALLS_PER_BEAT_CHECK: u32 = 256;

/// An agent attached to a bus.
///
/// ```no_run
/// use agentbus::client::{Agent, AttachOptions};
/// use agentbus::{AgentIdentifier, Message, Notification};
///
/// let mut feed = Agent::attach(AttachOptions::new("demo", "feed-1", "market_data")).unwrap();
/// let tick = Message::notification(feed.identity(), Notification {
///     event: "tick".into(),
///     ..Default::default()
/// });
/// feed.publish("market.AAPL", &tick).unwrap();
/// ```
#[derive(Debug)]
pub struct Agent {
    pub(crate) options: AttachOptions,
    pub(crate) conn: ControlConn,
    pub(crate) info: AttachInfo,
    pub(crate) lanes: MemfdSegment,
    _router_bell: MemfdSegment,
    pub(crate) outbound: Vec<Producer>,
    pub(crate) inbound: Vec<Consumer>,
    pub(crate) control: lanes::ControlBlock,
    pub(crate) bell: SharedDoorbell,
    pub(crate) ids: IdGenerator,
    /// Resolved agent names. Looked up on every send by name: Fx hashing (a few ns for a short
    /// name) instead of SipHash, which took 8% of a loop-back send-and-receive; the keys are
    /// names this process chose to send to, so hash flooding is not a concern.
    agents: FxHashMap<String, AgentAddress>,
    topics: FxHashMap<String, u64>,
    capsets: FxHashMap<Vec<String>, u64>,
    types: FxHashMap<String, u64>,
    recv_calls: u32,
    last_beat: u64,
    /// When the last send was stamped into the control block (realtime ns).
    last_send_beat: u64,
    pub(crate) link: super::link::Link,
    pub(crate) queue: VecDeque<(FrameHeader, AlignedVec<16>)>,
    pub(crate) outstanding: HashMap<MessageId, super::requests::Pending>,
    pub(crate) forged_replies: u64,
    pub(crate) senders: super::senders::Senders,
    pub(crate) responses: HashMap<MessageId, (FrameHeader, AlignedVec<16>)>,
    pub(crate) late_responses: u64,
    pub(crate) timed_out: super::requests::TimedOut,
    pub(crate) handlers: Handlers,
}

fn unexpected(r: Response) -> ClientError {
    match r {
        Response::Refused(Refused { kind, message }) => ClientError::Refused { kind, message },
        other => ClientError::Protocol(format!("{other:?}")),
    }
}

fn encode_error(e: EncodeError) -> CommunicationError {
    e.into()
}

impl Agent {
    /// Connects to the bus's agentd, attaches, and maps this agent's lanes.
    pub fn attach(options: AttachOptions) -> Result<Agent, ClientError> {
        let dir = options
            .socket_dir
            .clone()
            .unwrap_or_else(paths::default_socket_dir);
        let path = paths::socket_path(&dir, &options.bus);
        options.prepare_to_connect(&dir, &path)?;
        let mut conn = ControlConn::connect(&path, &options.bus, options.control_timeout)?;
        let (response, mut fds) = conn.call(&Request::Attach(AttachRequest {
            protocol: PROTOCOL_VERSION,
            agent_id: options.agent_id.clone(),
            agent_type: options.agent_type.clone(),
            instance_id: options.instance_id.clone(),
            capabilities: options.capabilities.clone(),
            max_capacity: options.max_capacity,
        }))?;
        let info = match response {
            Response::Attached(info) => info,
            other => return Err(unexpected(other)),
        };
        if fds.len() != 2 {
            return Err(HandoverError::Descriptors { got: fds.len() }.into());
        }
        let bell_fd = fds.pop().expect("two descriptors");
        let lanes_fd = fds.pop().expect("two descriptors");
        let map = |what| move |source| HandoverError::Map { what, source };
        let lanes_seg = MemfdSegment::open(lanes_fd, lanes::CONTROL_BLOCK).map_err(map("lanes"))?;
        let router_bell_seg = MemfdSegment::open(bell_fd, 8).map_err(map("router doorbell"))?;
        let region = lanes_seg.region();
        let layout = lanes::check(&region).map_err(HandoverError::from)?;
        let router_bell = SharedDoorbell::new(router_bell_seg.region())
            .ok_or(HandoverError::MisalignedDoorbell)?;
        let lane = |direction, priority| {
            move |source| HandoverError::Lane {
                direction,
                priority,
                source,
            }
        };
        let mut outbound = Vec::with_capacity(PRIORITIES);
        for (p, ring) in layout.outbound_ring(&region).enumerate() {
            let mut producer = ring.map_err(lane("outbound", p))?.into_producer();
            producer.set_wake(router_bell.clone());
            outbound.push(producer);
        }
        let mut inbound = Vec::with_capacity(PRIORITIES);
        for (p, ring) in layout.inbound_rings(&region).enumerate() {
            inbound.push(ring.map_err(lane("inbound", p))?.into_consumer());
        }
        let control = lanes::ControlBlock::of(&region);
        let bell = lanes::agent_bell(&region);
        let mut agent = Agent {
            options,
            conn,
            info,
            lanes: lanes_seg,
            _router_bell: router_bell_seg,
            outbound,
            inbound,
            control,
            bell,
            ids: IdGenerator::new(),
            agents: FxHashMap::default(),
            topics: FxHashMap::default(),
            capsets: FxHashMap::default(),
            types: FxHashMap::default(),
            recv_calls: 0,
            last_beat: 0,
            last_send_beat: 0,
            link: Default::default(),
            queue: VecDeque::new(),
            outstanding: HashMap::new(),
            forged_replies: 0,
            senders: Default::default(),
            responses: HashMap::new(),
            late_responses: 0,
            timed_out: Default::default(),
            handlers: Handlers::default(),
        };
        agent.beat();
        Ok(agent)
    }

    /// This agent's identifier, for the `from` of its messages.
    pub fn identity(&self) -> crate::body::AgentIdentifier {
        crate::body::AgentIdentifier {
            agent_id: self.options.agent_id.clone(),
            agent_type: self.options.agent_type.clone(),
            instance_id: self.options.instance_id.clone(),
        }
    }

    /// The slot agentd gave this agent (the router stamps it as the source of what it sends).
    pub fn slot(&self) -> u32 {
        self.info.slot
    }

    /// Detaches cleanly: agentd delivers what this agent sent, then frees its slot.
    pub fn detach(mut self) -> Result<(), ClientError> {
        match self.conn.call(&Request::Detach)?.0 {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn control_call(&mut self, request: Request) -> Result<Response, ClientError> {
        Ok(self.conn.call(&request)?.0)
    }

    fn id_call(&mut self, request: Request) -> Result<u64, ClientError> {
        match self.control_call(request)? {
            Response::Id(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Stamps this agent's heartbeat (agentd marks an agent UNRESPONSIVE when it goes stale).
    /// `recv_timeout` and `try_recv` call it for you.
    pub fn beat(&mut self) {
        let now = monotonic_ns();
        self.control.beat(now);
        self.last_beat = now;
    }

    pub(crate) fn maybe_beat(&mut self) {
        self.recv_calls = self.recv_calls.wrapping_add(1);
        if self.recv_calls % RECV_CALLS_PER_BEAT_CHECK == 0 {
            let interval = self.info.heartbeat_interval_ms as u64 * 1_000_000 / 2;
            if monotonic_ns().saturating_sub(self.last_beat) > interval {
                self.beat();
            }
        }
    }

    /// Half the heartbeat interval: the longest this agent sleeps without beating.
    fn beat_every(&self) -> Duration {
        Duration::from_millis(self.info.heartbeat_interval_ms.max(2) as u64 / 2)
    }

    /// Waits (parking, spinning or backing off, as configured) until a message is waiting or
    /// `until`, at most half a heartbeat interval, and beats if nothing came. Returns whether a
    /// message is waiting.
    pub(crate) fn idle(&mut self, until: Instant) -> bool {
        let slice = until.min(Instant::now() + self.beat_every());
        // Lanes without doorbells (agentd's `lane_parking = false`): nobody rings ours, so a
        // parking wait must poll in short sleeps instead of sleeping on it.
        let bell = self.inbound[0].parking().then(|| self.bell.bell());
        let inbound = &mut self.inbound;
        let r: Result<(), WaitError<()>> = self.options.wait.wait_for(bell, Some(slice), || {
            Ok(Agent::ready_lane(inbound).map(|_| ()))
        });
        if r.is_err() {
            self.beat();
        }
        r.is_ok()
    }

    /// Reports how many tasks this agent holds (load-balanced routing prefers the least loaded).
    pub fn set_load(&mut self, load: u32) {
        self.control.report_load(load);
    }

    pub(crate) fn send_routed(
        &mut self,
        route: Route,
        message: &Message,
    ) -> Result<MessageId, CommunicationError> {
        let header = self.outgoing(header_for(message, route, 0))?;
        let lane = &mut self.outbound[message.priority as usize];
        encode(lane, &header, message).map_err(encode_error)?;
        Ok(header.message_id)
    }

    /// `header`, ready to go: an id if it has none, and the send's one clock reading as its
    /// timestamp, which also stamps this agent's liveness and checks that agentd is still
    /// there.
    fn outgoing(&mut self, mut header: FrameHeader) -> Result<FrameHeader, CommunicationError> {
        if header.message_id.is_none() {
            header.message_id = self.ids.next_id();
        }
        let now = realtime_ns();
        self.check_link(now)?;
        header.timestamp_ns = now;
        self.stamp_send(now);
        Ok(header)
    }

    /// The header of a message without a [`Message`] (a loan, raw bytes, a typed value) to the
    /// agent `to`.
    fn bare_to(
        &mut self,
        to: &str,
        priority: MessagePriority,
    ) -> Result<FrameHeader, CommunicationError> {
        let a = self.address(to)?;
        self.outgoing(bare_header(
            Route {
                kind: RouteKind::Agent,
                destination: a.destination(),
            },
            priority,
        ))
    }

    /// Claims room for a `len`-byte payload to the agent `to` in this agent's lane for
    /// `priority`, to write in place and send ([`Loan`]). Fails at once with `QueueFull` if the
    /// lane has no room for it.
    pub fn loan(
        &mut self,
        to: &str,
        priority: MessagePriority,
        len: usize,
    ) -> Result<Loan<'_>, CommunicationError> {
        let header = self.bare_to(to, priority)?;
        Loan::new(&mut self.outbound[priority as usize], header, len).map_err(encode_error)
    }

    /// Sends raw `bytes` to the agent `to` at normal priority, labelled
    /// [`crate::MessageType::Notification`] (a [`Loan`] labels otherwise), allocating nothing.
    pub fn send_bytes(&mut self, to: &str, bytes: &[u8]) -> Result<MessageId, CommunicationError> {
        let header = self.bare_to(to, MessagePriority::Normal)?;
        let lane = &mut self.outbound[MessagePriority::Normal as usize];
        encode_bytes(lane, &header, &Extras::NONE, bytes).map_err(encode_error)?;
        Ok(header.message_id)
    }

    /// Sends the typed value `value` to the agent `to` at normal priority, labelled
    /// [`crate::MessageType::Notification`], serialized in place without allocating; the receiver
    /// reads it with [`Delivery::typed`].
    pub fn send_typed<T: TypedPayload>(
        &mut self,
        to: &str,
        value: &T,
    ) -> Result<MessageId, CommunicationError> {
        let header = self.bare_to(to, MessagePriority::Normal)?;
        let lane = &mut self.outbound[MessagePriority::Normal as usize];
        encode_typed(lane, &header, &Extras::NONE, value).map_err(encode_error)?;
        Ok(header.message_id)
    }

    /// Shows the router that this agent is alive when it only sends: a store into the control
    /// block at most once per half heartbeat interval, from the send's own clock reading.
    fn stamp_send(&mut self, now: u64) {
        let every = self.info.heartbeat_interval_ms as u64 * 1_000_000 / 2;
        if now.wrapping_sub(self.last_send_beat) > every {
            self.control.sent_at(now);
            self.last_send_beat = now;
        }
    }

    pub(crate) fn address(&mut self, agent_id: &str) -> Result<AgentAddress, CommunicationError> {
        if let Some(a) = self.agents.get(agent_id) {
            return Ok(*a);
        }
        match self
            .control_call(Request::ResolveAgent(agent_id.into()))
            .map_err(|e| self.control_failed(e))?
        {
            Response::Agent(a) => {
                self.agents.insert(agent_id.into(), a);
                Ok(a)
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

    /// Starts a batch: messages sent until [`Agent::flush`] reach the router together, with
    /// one Release store and at most one wake-up per lane (sender batching).
    pub fn begin_batch(&mut self) {
        for lane in &mut self.outbound {
            lane.begin_batch();
        }
    }

    /// Ends a batch, publishing every message sent since [`Agent::begin_batch`].
    pub fn flush(&mut self) {
        for lane in &mut self.outbound {
            lane.publish();
        }
    }

    /// Forgets the cached address of `agent_id` (after it restarted under a new epoch).
    pub fn forget(&mut self, agent_id: &str) {
        self.agents.remove(agent_id);
    }

    /// Sends `message` to the agent `to` (unicast). Fails at once with `QueueFull` if this
    /// agent's outbound lane for the message's priority is full.
    pub fn send(&mut self, to: &str, message: &Message) -> Result<MessageId, CommunicationError> {
        let a = self.address(to)?;
        self.send_routed(
            Route {
                kind: RouteKind::Agent,
                destination: a.destination(),
            },
            message,
        )
    }

    /// As [`Agent::send`], waiting up to `timeout` for room instead of failing with `QueueFull`.
    pub fn send_blocking(
        &mut self,
        to: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<MessageId, CommunicationError> {
        let deadline = Instant::now() + timeout;
        let wait = self.options.wait;
        loop {
            match self.send(to, message) {
                Err(CommunicationError::QueueFull { .. }) if Instant::now() < deadline => {
                    let r: Result<(), WaitError<()>> = wait.wait_for(
                        None,
                        Some(deadline.min(Instant::now() + Duration::from_micros(200))),
                        || Ok(None),
                    );
                    let _ = r;
                }
                Err(CommunicationError::QueueFull { .. }) => {
                    return Err(CommunicationError::Timeout {
                        what: format!("room in the outbound lane to send to {to}"),
                        after: timeout,
                    })
                }
                other => return other,
            }
        }
    }

    /// Sends one copy of `message` to each of `to` (multicast), all with the same id.
    pub fn send_multicast(
        &mut self,
        to: &[&str],
        message: &Message,
    ) -> Result<MessageId, CommunicationError> {
        let mut id = message.id;
        if id.is_none() {
            id = self.ids.next_id();
        }
        let addresses: Vec<AgentAddress> = to
            .iter()
            .map(|t| self.address(t))
            .collect::<Result<_, _>>()?;
        let mut m = message.clone();
        m.id = id;
        for a in addresses {
            self.send_routed(
                Route {
                    kind: RouteKind::Multicast,
                    destination: a.destination(),
                },
                &m,
            )?;
        }
        Ok(id)
    }

    /// Creates topic `name` if it does not exist; returns its id.
    pub fn create_topic(&mut self, name: &str) -> Result<u64, ClientError> {
        if let Some(&id) = self.topics.get(name) {
            return Ok(id);
        }
        let id = self.id_call(Request::CreateTopic(name.into()))?;
        self.topics.insert(name.into(), id);
        Ok(id)
    }

    /// Publishes `message` to every subscriber of `topic` (creating the topic if needed).
    pub fn publish(
        &mut self,
        topic: &str,
        message: &Message,
    ) -> Result<MessageId, CommunicationError> {
        let id = self
            .create_topic(topic)
            .map_err(|e| self.control_failed(e))?;
        self.send_routed(
            Route {
                kind: RouteKind::Topic,
                destination: id,
            },
            message,
        )
    }

    /// Subscribes to `pattern` (exact, `*` for one segment, trailing `>` for the rest). When
    /// this returns, every later publish to a matching topic reaches this agent.
    pub fn subscribe(&mut self, pattern: &str) -> Result<u64, ClientError> {
        self.id_call(Request::Subscribe(pattern.into()))
    }

    /// Ends a subscription.
    pub fn unsubscribe(&mut self, subscription: u64) -> Result<(), ClientError> {
        match self.control_call(Request::Unsubscribe(subscription))? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `message` to the least-loaded live agent having every capability in
    /// `capabilities` (the spec's capability-based routing).
    pub fn send_by_capability(
        &mut self,
        capabilities: &[&str],
        message: &Message,
    ) -> Result<MessageId, CommunicationError> {
        let mut key: Vec<String> = capabilities.iter().map(|c| c.to_string()).collect();
        key.sort();
        key.dedup();
        let id = match self.capsets.get(&key) {
            Some(&id) => id,
            None => {
                let id = self
                    .id_call(Request::InternCapabilities(key.clone()))
                    .map_err(|e| self.control_failed(e))?;
                self.capsets.insert(key, id);
                id
            }
        };
        self.send_routed(
            Route {
                kind: RouteKind::Capability,
                destination: id,
            },
            message,
        )
    }

    /// Sends `message` to the least-loaded ACTIVE agent of `agent_type` under its capacity
    /// (the spec's load-balanced routing).
    pub fn send_to_type(
        &mut self,
        agent_type: &str,
        message: &Message,
    ) -> Result<MessageId, CommunicationError> {
        let id = match self.types.get(agent_type) {
            Some(&id) => id,
            None => {
                let id = self
                    .id_call(Request::InternType(agent_type.into()))
                    .map_err(|e| self.control_failed(e))?;
                self.types.insert(agent_type.into(), id);
                id
            }
        };
        self.send_routed(
            Route {
                kind: RouteKind::LoadBalanced,
                destination: id,
            },
            message,
        )
    }

    /// Sends `message` to every other attached agent.
    pub fn broadcast(&mut self, message: &Message) -> Result<MessageId, CommunicationError> {
        self.send_routed(
            Route {
                kind: RouteKind::Broadcast,
                destination: 0,
            },
            message,
        )
    }

    pub(crate) fn ready_lane(inbound: &mut [Consumer]) -> Option<usize> {
        // Errors count as ready, so that `try_recv` reports them.
        inbound
            .iter_mut()
            .position(|lane| !matches!(lane.peek(), Ok(None)))
    }

    /// The next message, most urgent lane first, read in place; `None` if there is none.
    /// Messages queued while this agent waited for a response come first; replies to this
    /// agent's outstanding requests are set aside for [`Agent::wait_response`] (late ones are
    /// counted and dropped). Handlers run only from [`Agent::poll`].
    pub fn try_recv(&mut self) -> Result<Option<Delivery<'_>>, CommunicationError> {
        self.try_recv_up_to(crate::MessagePriority::Low)
    }

    /// As [`Agent::try_recv`], looking only at lanes of `priority` or more urgent (leaving less
    /// urgent messages waiting).
    pub fn try_recv_up_to(
        &mut self,
        priority: crate::MessagePriority,
    ) -> Result<Option<Delivery<'_>>, CommunicationError> {
        let lanes = priority as usize + 1;
        self.maybe_beat();
        if let Some((header, bytes)) = self.queue.pop_front() {
            let from = self.sender_of(&header);
            return Ok(Some(Delivery {
                frame: Frame::Copied(bytes),
                header,
                from,
            }));
        }
        let p = loop {
            let Some(p) = Agent::ready_lane(&mut self.inbound[..lanes]) else {
                return Ok(None);
            };
            let header = match self.inbound[p].peek() {
                Ok(Some(bytes)) => FrameHeader::parse(bytes).ok(),
                _ => None,
            };
            let reply = header.is_some_and(|h| self.takes_aside(&h));
            if !reply {
                break (p, header);
            }
            self.set_aside(p);
        };
        let (p, peeked) = p;
        // Resolved before the frame is taken (a first message from a sender asks agentd).
        let from = peeked.map(|h| self.sender_of(&h));
        let guard = match self.inbound[p].read() {
            Ok(Some(g)) => g,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(CommunicationError::InvalidFormat {
                    reason: e.to_string(),
                })
            }
        };
        let header = match decode(guard.bytes()) {
            Ok(env) => env.header,
            Err(e) => return Err(e.into()), // dropping the guard skips the bad frame
        };
        let Some(from) = from else {
            // The header parsed as a whole frame but not on its own: cannot happen for one
            // frame; treat as invalid rather than guess a sender.
            return Err(CommunicationError::InvalidFormat {
                reason: "a frame's header could not be read twice alike".into(),
            });
        };
        Ok(Some(Delivery {
            frame: Frame::Lane(guard),
            header,
            from,
        }))
    }

    /// The next message, waiting up to `timeout` (parking, spinning or backing off as
    /// configured). `None` when the time runs out.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Delivery<'_>>, CommunicationError> {
        if !self.queue.is_empty() {
            return self.try_recv();
        }
        let deadline = Instant::now() + timeout;
        while Agent::ready_lane(&mut self.inbound).is_none() {
            self.check_link_now()?;
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.idle(deadline);
        }
        self.try_recv()
    }

    /// The next message, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<Delivery<'_>, CommunicationError> {
        while self.queue.is_empty() && Agent::ready_lane(&mut self.inbound).is_none() {
            self.check_link_now()?;
            self.idle(Instant::now() + Duration::from_secs(3600));
        }
        self.try_recv()?
            .ok_or_else(|| CommunicationError::InvalidFormat {
                reason: "a frame vanished between its arrival and its read".into(),
            })
    }

    /// Opens a direct channel to agent `peer` (the spec's `establishChannel`): two rings
    /// shared by exactly the two agents, skipping the router. The peer takes its end with
    /// [`Agent::accept_channel`].
    pub fn channel(&mut self, peer: &str) -> Result<super::Channel, ClientError> {
        let (response, mut fds) = self.conn.call(&Request::OpenChannel(peer.into()))?;
        match response {
            Response::ChannelOpened(info) => self.channel_end(info, fds.pop()),
            other => Err(unexpected(other)),
        }
    }

    /// Takes the end of a channel another agent opened to this one, waiting up to `timeout`
    /// for an offer; `None` if none came.
    pub fn accept_channel(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<super::Channel>, ClientError> {
        match self.conn.next_push(timeout)? {
            Some((crate::control::Push::ChannelOffer(info), mut fds)) => {
                self.channel_end(info, fds.pop()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn channel_end(
        &self,
        info: crate::control::ChannelInfo,
        fd: Option<std::os::fd::OwnedFd>,
    ) -> Result<super::Channel, ClientError> {
        let fd = fd.ok_or(HandoverError::NoChannelSegment)?;
        let seg = MemfdSegment::open(fd, 4096).map_err(|source| HandoverError::Map {
            what: "channel",
            source,
        })?;
        super::Channel::new(info, seg, self.identity(), self.slot(), self.options.wait)
            .map_err(|e| HandoverError::from(e).into())
    }

    /// Every attached agent.
    pub fn list_agents(&mut self) -> Result<Vec<AgentInfo>, ClientError> {
        match self.control_call(Request::ListAgents)? {
            Response::Agents(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    /// Every topic.
    pub fn list_topics(&mut self) -> Result<Vec<TopicInfo>, ClientError> {
        match self.control_call(Request::ListTopics)? {
            Response::Topics(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// Bus counters.
    pub fn stats(&mut self) -> Result<BusStats, ClientError> {
        match self.control_call(Request::Stats)? {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Every dead letter agentd holds, oldest first, fetched a page at a time (see
    /// [`Agent::dead_letter_page`]); letters made while paging may be included or not.
    pub fn dead_letters(&mut self) -> Result<Vec<DeadLetterInfo>, ClientError> {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let page = self.dead_letter_page(from, 1024)?;
            all.extend(page.letters);
            if !page.more || page.next <= from {
                return Ok(all);
            }
            from = page.next;
        }
    }

    /// One page of the dead-letter queue: up to `max` letters from sequence number `from` on
    /// (agentd may return fewer, to keep a page small), and where the next page starts.
    pub fn dead_letter_page(&mut self, from: u64, max: u32) -> Result<DeadLetterPage, ClientError> {
        match self.control_call(Request::DeadLetters(crate::control::PageRequest {
            from,
            max,
        }))? {
            Response::DeadLetters(page) => Ok(page),
            other => Err(unexpected(other)),
        }
    }
}
