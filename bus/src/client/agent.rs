//! The agent: attach to a bus, then send and receive through its two halves.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus_ipc::segment::MemfdSegment;

use super::acked::{Again, Resend};
use super::breaker::{BreakerStatus, Outcome};
use super::handlers::Handlers;
use super::link::Attachment;
use super::pending::{lock, PendingRequest, Replier};
use super::shared::{unexpected, Shared};
use super::{
    AgentType, AttachOptions, Capability, ClientError, Delivery, Destination, HandoverError,
    Outgoing, Peer, Receiver, Responder, Sender, Subscription, Topic,
};
use crate::control::{
    AgentInfo, AttachInfo, BusStats, DeadLetterInfo, DeadLetterPage, Request, Response, TopicInfo,
};
use crate::error::CommunicationError;
use crate::header::Flags;
use crate::ids::MessageId;
use crate::message::Message;

/// An agent attached to a bus: a [`Sender`] and a [`Receiver`] over its lanes, the handlers
/// [`Agent::poll`] runs, and its requests awaiting replies.
///
/// The caller's thread drives everything (`send`, `recv`, `poll`): there are no hidden threads
/// on the data path. [`Agent::split`] hands out both halves at once, so a message read in place
/// from the receiver can be answered through the sender while it is held. Destinations are
/// resolved once into handles ([`Peer`], [`Topic`], [`Capability`], [`AgentType`]); what must be
/// undone is a guard ([`Subscription`] unsubscribes, [`PendingRequest`] abandons, a
/// [`super::Batch`] publishes, a [`super::Loan`] that is not sent is never seen).
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions};
/// use agentbus::{record, Message, Notification};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-agent-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// // `options(id, type)`: `AttachOptions::new(bus, id, type)` for the bus's agentd
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let mut exec = Agent::attach(options("exec-1", "execution").capabilities(["equities"]))?;
/// let _fills = exec.subscribe("fills.>")?;                 // unsubscribed when dropped
/// let to_exec = strategy.peer("exec-1")?;                   // resolved once: no lookup per send
/// let equities = strategy.capability(&["equities"])?;
/// let order = Message::notification(strategy.identity(), Notification {
///     event: "order".into(),
///     data: record! { "symbol" => "AAPL", "qty" => 100i64 },
/// });
/// strategy.send(&to_exec, &order)?;                         // unicast
/// strategy.send(&equities, &order)?;                        // the least-loaded capable agent
/// for _ in 0..2 {
///     let d = exec.recv_timeout(Duration::from_secs(5))?.expect("routed");
///     assert_eq!(d.from().agent_id, "strategy-1");          // read in place; stamped by the router
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Agent {
    pub(crate) tx: Sender,
    pub(crate) rx: Receiver,
    pub(crate) handlers: Handlers,
    /// How at-least-once messages are retried.
    delivery: super::DeliveryConfig,
    /// At-least-once messages in flight (a hint for `poll`: none, and it never looks).
    deliveries: Arc<std::sync::atomic::AtomicUsize>,
    /// Re-attaching after agentd restarts.
    pub(crate) reconnect: super::reconnect::Reconnect,
}

/// What the client counted that no call returned: replies nobody waited for, forged replies,
/// and topic messages a subscription filter turned away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Replies that came after their request was given up (timed out, or its
    /// [`PendingRequest`] dropped), or came and were never taken.
    pub late_replies: u64,
    /// Replies dropped because they named an outstanding request but came from an agent the
    /// request was not sent to.
    pub forged_replies: u64,
    /// Topic messages a subscription's filter turned away.
    pub filtered: u64,
    /// Retried copies of at-least-once messages this agent had already taken, dropped
    /// (exactly-once processing).
    pub duplicates: u64,
}

/// Opens a direct channel from the agent of `shared` to agent `peer` (one control request).
pub(crate) fn open_channel(shared: &Shared, peer: &str) -> Result<super::Channel, ClientError> {
    let (response, mut fds) = shared.call_with_fds(&Request::OpenChannel(peer.into()))?;
    match response {
        Response::ChannelOpened(info) => channel_end(shared, info, fds.pop()),
        other => Err(unexpected(other)),
    }
}

/// This agent's end of channel `info`, from its segment's descriptor `fd`.
fn channel_end(
    shared: &Shared,
    info: crate::control::ChannelInfo,
    fd: Option<std::os::fd::OwnedFd>,
) -> Result<super::Channel, ClientError> {
    let fd = fd.ok_or(HandoverError::NoChannelSegment)?;
    let seg = MemfdSegment::open(fd, 4096).map_err(|source| HandoverError::Map {
        what: "channel",
        source,
    })?;
    super::Channel::new(
        info,
        seg,
        shared.identity.clone(),
        shared.info().slot,
        shared.options.wait,
    )
    .map_err(|e| HandoverError::from(e).into())
}

/// Half the heartbeat interval agentd asked for, in ns: the longest an agent goes without
/// beating.
pub(crate) fn beat_every_ns(info: &AttachInfo) -> u64 {
    info.heartbeat_interval_ms as u64 * 1_000_000 / 2
}

/// `message` encoded as one frame with `header`, in memory of its own (for a dead letter);
/// `None` if it cannot be encoded.
fn frame_of(header: &crate::header::FrameHeader, message: &Message) -> Option<Vec<u8>> {
    use agentbus_ipc::ring::{Ring, RingOptions};
    for capacity in [1 << 16, 1 << 22] {
        let (mut tx, mut rx) = Ring::heap(RingOptions::new(capacity)).ok()?.split();
        if crate::codec::encode(&mut tx, header, message).is_ok() {
            let frame = rx.peek().ok().flatten()?;
            return Some(frame[..header_len(frame)?].to_vec());
        }
    }
    None
}

/// The length of the frame at the start of `bytes`, from its header.
fn header_len(bytes: &[u8]) -> Option<usize> {
    let len = crate::header::FrameHeader::parse(bytes).ok()?.frame_len();
    (len <= bytes.len()).then_some(len)
}

impl Agent {
    /// Connects to the bus's agentd, attaches, and maps this agent's lanes. `BusNotRunning` if
    /// no agentd serves the bus; `Refused` with agentd's reason (a taken id, no free slot, a
    /// uid not allowed).
    pub fn attach(options: AttachOptions) -> Result<Agent, ClientError> {
        let a = Attachment::connect(&options)?;
        let beat_every = beat_every_ns(&a.info);
        let shared = Arc::new(Shared::new(options.clone(), a.info, a.conn, a.lanes));
        let mut agent = Agent {
            tx: Sender::new(
                Arc::clone(&shared),
                a.outbound,
                a.control.clone(),
                beat_every,
                options.wait,
            ),
            rx: Receiver::new(shared, a.inbound, a.bell, a.control, beat_every, &options),
            handlers: Handlers::default(),
            delivery: options.delivery,
            deliveries: Arc::default(),
            reconnect: super::reconnect::Reconnect::new(options.reconnect),
        };
        agent.rx.beat();
        Ok(agent)
    }

    /// Both halves at once: receive a message in place from the [`Receiver`] and answer it
    /// through the [`Sender`] while it is held.
    pub fn split(&mut self) -> (&mut Sender, &mut Receiver) {
        (&mut self.tx, &mut self.rx)
    }

    /// The sending half alone: resolve destinations, send, reply, batch (the first of
    /// [`Agent::split`]).
    pub fn sender(&mut self) -> &mut Sender {
        &mut self.tx
    }

    /// The receiving half alone: receive, wait, beat (the second of [`Agent::split`]).
    pub fn receiver(&mut self) -> &mut Receiver {
        &mut self.rx
    }

    /// This agent's identifier, for the `from` of its messages.
    pub fn identity(&self) -> crate::body::AgentIdentifier {
        self.tx.identity()
    }

    /// The slot agentd gave this agent (the router stamps it as the source of what it sends).
    pub fn slot(&self) -> u32 {
        self.tx.shared.info().slot
    }

    /// Detaches cleanly: agentd delivers what this agent sent, then frees its slot.
    pub fn detach(self) -> Result<(), ClientError> {
        match self.tx.shared.call(&Request::Detach)? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// [`Sender::peer`]: the agent `agent_id`, resolved once.
    pub fn peer(&self, agent_id: &str) -> Result<Peer, CommunicationError> {
        self.tx.peer(agent_id)
    }

    /// [`Sender::topic`]: the topic `name`, created if needed.
    pub fn topic(&self, name: &str) -> Result<Topic, CommunicationError> {
        self.tx.topic(name)
    }

    /// [`Sender::create_topic`]: the topic `name`, created with `config` if needed.
    pub fn create_topic(
        &self,
        name: &str,
        config: crate::control::TopicConfig,
    ) -> Result<Topic, CommunicationError> {
        self.tx.create_topic(name, config)
    }

    /// [`Sender::capability`]: a capability set, for capability routing.
    pub fn capability<S: AsRef<str>>(
        &self,
        capabilities: &[S],
    ) -> Result<Capability, CommunicationError> {
        self.tx.capability(capabilities)
    }

    /// [`Sender::agent_type`]: an agent type, for load-balanced routing.
    pub fn agent_type(&self, name: &str) -> Result<AgentType, CommunicationError> {
        self.tx.agent_type(name)
    }

    /// [`Sender::send`]: sends at once or fails with `QueueFull`.
    pub fn send<'d, M: Outgoing>(
        &mut self,
        to: impl Into<Destination<'d>>,
        message: M,
    ) -> Result<MessageId, CommunicationError> {
        self.reconnect_if_due()?;
        self.tx.send(to, message)
    }

    /// [`Sender::send_blocking`]: sends, waiting up to `timeout` for room.
    pub fn send_blocking<'d, M: Outgoing>(
        &mut self,
        to: impl Into<Destination<'d>>,
        message: M,
        timeout: Duration,
    ) -> Result<MessageId, CommunicationError> {
        self.reconnect_if_due()?;
        self.tx.send_blocking(to, message, timeout)
    }

    /// [`Receiver::try_recv`]: the next message, in place, if one is waiting.
    pub fn try_recv(&mut self) -> Result<Option<Delivery<'_>>, CommunicationError> {
        self.reconnect_if_due()?;
        self.rx.try_recv()
    }

    /// [`Receiver::recv_timeout`]: the next message, waiting up to `timeout`.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Delivery<'_>>, CommunicationError> {
        let deadline = Instant::now() + timeout;
        self.reconnect_until(deadline)?;
        self.rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    }

    /// [`Receiver::recv`]: the next message, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<Delivery<'_>, CommunicationError> {
        self.reconnect_until(Instant::now() + Duration::from_secs(365 * 24 * 3600))?;
        self.rx.recv()
    }

    /// Subscribes to `pattern` (exact, `*` for one segment, trailing `>` for the rest): matching
    /// messages come out of [`Agent::recv`]. When this returns, every later publish to a
    /// matching topic reaches this agent, until the [`Subscription`] is dropped.
    pub fn subscribe(&mut self, pattern: &str) -> Result<Subscription, ClientError> {
        self.subscription(pattern, None)
    }

    /// Subscribes to `pattern` with a handler called from [`Agent::poll`], after `filter`
    /// (when given) accepts the message: the spec's "interested symbols" check runs on the
    /// message in place, before any handler work. The handler gets the agent's [`Sender`].
    pub fn subscribe_with(
        &mut self,
        pattern: &str,
        filter: Option<super::MessageFilter>,
        handler: impl FnMut(&crate::codec::Envelope<'_>, &mut Sender) + Send + 'static,
    ) -> Result<Subscription, ClientError> {
        self.subscription(pattern, Some((filter, Box::new(handler))))
    }

    /// Calls `handler` for every event of `event_type` (the spec's `addEventListener`), from
    /// [`Agent::poll`], until the returned listener handle is dropped (the spec's
    /// `removeEventListener`). Events are sent to [`Sender::event`]'s topic.
    pub fn on_event(
        &mut self,
        event_type: &str,
        handler: impl FnMut(&crate::codec::Envelope<'_>, &mut Sender) + Send + 'static,
    ) -> Result<Subscription, ClientError> {
        let topic = format!("{}{event_type}", super::EVENT_PREFIX);
        self.subscription(&topic, Some((None, Box::new(handler))))
    }

    fn subscription(
        &mut self,
        pattern: &str,
        handler: Option<(Option<super::MessageFilter>, super::MessageHandler)>,
    ) -> Result<Subscription, ClientError> {
        // Not re-attached: the call below says Disconnected.
        let _ = self.reconnect_if_due();
        let id = match self.tx.shared.call(&Request::Subscribe(pattern.into()))? {
            Response::Id(id) => id,
            other => return Err(unexpected(other)),
        };
        let live = Arc::new(AtomicBool::new(true));
        let pattern: Arc<str> = pattern.into();
        if let Some((filter, handler)) = handler {
            self.handlers
                .subscriptions
                .push(super::handlers::SubscriptionHandler {
                    live: Arc::clone(&live),
                    pattern: Arc::clone(&pattern),
                    filter,
                    handler,
                });
        }
        Ok(Subscription::new(id, pattern, &self.tx.shared, live))
    }

    /// Sets the handler for direct messages (the spec's `receiveMessage`): every message that is
    /// not a request, a reply or a topic message goes to it from [`Agent::poll`] instead of the
    /// `recv` queue. A message sent for at-least-once delivery is acknowledged when it returns.
    pub fn on_message(
        &mut self,
        handler: impl FnMut(&crate::codec::Envelope<'_>, &mut Sender) + Send + 'static,
    ) {
        self.handlers.message = Some(Box::new(handler));
    }

    /// Sets the handler that answers requests (the spec's `setRequestHandler`). It runs from
    /// [`Agent::poll`] (and while this agent waits for its own replies); what it returns is
    /// sent back correlated to the request, an `Err` as an `Error` response carrying the
    /// [`super::HandlerError`]'s message.
    pub fn on_request(
        &mut self,
        handler: impl FnMut(
                &crate::codec::Envelope<'_>,
                &mut Sender,
            ) -> Result<crate::Payload, super::HandlerError>
            + Send
            + 'static,
    ) {
        self.handlers.request = Some(Box::new(handler));
    }

    /// Sends a request without waiting (many may be outstanding at once): its reply is taken
    /// with the returned [`PendingRequest`]. The request always gets a fresh, unguessable id,
    /// and only a reply from the agent it was delivered to is accepted: from the named agent
    /// for a [`Peer`]; for capability and type routes, from whichever agent can name the id,
    /// which only the one the router chose was shown.
    pub fn start_request<'d, M: Outgoing>(
        &mut self,
        to: impl Into<Responder<'d>>,
        request: M,
    ) -> Result<PendingRequest, CommunicationError> {
        self.reconnect_if_due()?;
        let to = to.into();
        let target = to.target();
        let id = self.tx.secret_id();
        let replier = self.replier(to)?;
        {
            let mut requests = lock(&self.rx.requests);
            requests.breakers.admit(&target, Instant::now())?;
            requests.start(id, replier, target.clone());
        }
        let sent = self.tx.send_with(to.into(), &request, None, |h| {
            h.message_id = id;
            h.flags |= Flags::EXPECTS_REPLY;
        });
        match sent {
            Ok(_) => Ok(PendingRequest::new(
                id,
                target,
                Arc::clone(&self.rx.requests),
            )),
            Err(e) => {
                let mut requests = lock(&self.rx.requests);
                requests.cancel(id);
                requests
                    .breakers
                    .record(&target, Outcome::of_error(&e), Instant::now());
                Err(e)
            }
        }
    }

    /// Sends `message` for at-least-once delivery to `to` (a [`Peer`], [`Capability`] or
    /// [`AgentType`]): its receiver's client acknowledges it once its handler has returned (or
    /// when a `recv` user calls [`Sender::ack`]); until then it is sent again, with the same id,
    /// after [`super::DeliveryConfig::retry_delay`], doubling, up to
    /// [`super::DeliveryConfig::attempts`] in all. The retries go out from this agent's `poll`
    /// (and from waiting on the returned [`super::PendingDelivery`]), never from another
    /// thread. A capability or type route may pick another agent for a retry (one that died
    /// before acknowledging is replaced by a live one); receivers drop retried copies of what
    /// they already took (exactly-once processing).
    pub fn send_acked<'d>(
        &mut self,
        to: impl Into<Responder<'d>>,
        message: &Message,
    ) -> Result<super::PendingDelivery, CommunicationError> {
        self.reconnect_if_due()?;
        let to = to.into();
        let target = to.target();
        let id = self.tx.secret_id();
        let replier = self.replier(to)?;
        let resend = Resend::new(
            message.clone(),
            Again::of(to),
            self.delivery,
            Instant::now(),
        );
        lock(&self.rx.requests).start_delivery(id, replier, target.clone(), resend);
        let pending = super::PendingDelivery::new(
            id,
            target,
            Arc::clone(&self.rx.requests),
            Arc::clone(&self.deliveries),
        );
        match self.send_attempt(id, to, message) {
            Ok(()) => Ok(pending),
            // No room now: the next attempt is due after the retry delay.
            Err(e @ CommunicationError::QueueFull { .. }) => {
                lock(&self.rx.requests).attempt_failed(id, e.to_string());
                Ok(pending)
            }
            Err(e) => Err(e), // dropping `pending` forgets it
        }
    }

    /// Who may answer what is sent to `to` now (a peer resolved before agentd restarted is
    /// resolved again).
    fn replier(&mut self, to: Responder<'_>) -> Result<Replier, CommunicationError> {
        Ok(match to {
            Responder::Peer(p) => Replier::Agent(crate::control::AgentAddress::from_destination(
                self.tx.peer_destination(p)?,
            )),
            Responder::Capability(_) | Responder::Type(_) => Replier::Picked,
        })
    }

    fn send_attempt(
        &mut self,
        id: MessageId,
        to: Responder<'_>,
        message: &Message,
    ) -> Result<(), CommunicationError> {
        self.tx
            .send_with(to.into(), &message, None, |h| {
                h.message_id = id;
                h.flags |= Flags::ACK_REQUESTED;
            })
            .map(drop)
    }

    /// Records at-least-once message `id`, given up on, in agentd's dead-letter queue with
    /// `reason`. Best effort: the caller gets its `DeliveryFailed` whether or not agentd
    /// recorded it.
    pub(crate) fn dead_letter(&mut self, id: MessageId, resend: &Resend, reason: &str) {
        let Ok(Some(route)) = self.tx.route_of(&Destination::from(resend.to.responder())) else {
            return;
        };
        let mut header = crate::codec::header_for(&resend.message, route, self.slot());
        header.message_id = id;
        header.flags |= Flags::ACK_REQUESTED;
        header.timestamp_ns = agentbus_ipc::clock::realtime_ns();
        let Some(frame) = frame_of(&header, &resend.message) else {
            return;
        };
        let _ = self
            .tx
            .shared
            .call(&Request::DeadLetter(crate::control::ClientDeadLetter {
                frame,
                reason: reason.into(),
            }));
    }

    /// Sends the at-least-once messages whose retry is due; returns when the next one is due.
    pub(crate) fn drive_deliveries(&mut self) -> Option<Instant> {
        if self.deliveries.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return None;
        }
        let (due, next) = lock(&self.rx.requests).due(Instant::now());
        for (id, to, message) in due {
            if let Err(e) = self.send_attempt(id, to.responder(), &message) {
                lock(&self.rx.requests).attempt_failed(id, e.to_string());
            }
        }
        next
    }

    /// Sends a request and waits up to `timeout` for its reply (the spec's `sendRequest`): see
    /// [`Agent::start_request`] and [`PendingRequest::wait`].
    pub fn request<'d, M: Outgoing>(
        &mut self,
        to: impl Into<Responder<'d>>,
        request: M,
        timeout: Duration,
    ) -> Result<Message, CommunicationError> {
        self.start_request(to, request)?.wait(self, timeout)
    }

    /// Every request destination's circuit breaker, as it stands (the client's breaker stats).
    pub fn breakers(&self) -> Vec<BreakerStatus> {
        lock(&self.rx.requests).breakers.status()
    }

    /// What the client counted that no call returned.
    pub fn counters(&self) -> ClientCounters {
        let requests = lock(&self.rx.requests);
        ClientCounters {
            late_replies: requests.late,
            forged_replies: requests.forged,
            filtered: self.handlers.filtered,
            duplicates: self.rx.dedup.duplicates,
        }
    }

    /// Opens a direct channel to agent `peer` (the spec's `establishChannel`): two rings
    /// shared by exactly the two agents, skipping the router. The peer takes its end with
    /// [`Agent::accept_channel`].
    pub fn channel(&mut self, peer: &str) -> Result<super::Channel, ClientError> {
        open_channel(&self.tx.shared, peer)
    }

    /// Takes the end of a channel another agent opened to this one, waiting up to `timeout`
    /// for an offer; `None` if none came.
    pub fn accept_channel(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<super::Channel>, ClientError> {
        let offer = |p: &crate::control::Push| matches!(p, crate::control::Push::ChannelOffer(_));
        match self.tx.shared.next_push(timeout, offer)? {
            Some((crate::control::Push::ChannelOffer(info), mut fds)) => {
                channel_end(&self.tx.shared, info, fds.pop()).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn query(&self, request: Request) -> Result<Response, ClientError> {
        self.tx.shared.call(&request)
    }

    /// Every agent in a slot, leaving ones included, with its status and counters (one control
    /// request).
    pub fn list_agents(&self) -> Result<Vec<AgentInfo>, ClientError> {
        match self.query(Request::ListAgents)? {
            Response::Agents(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    /// Every topic by id, with its subscriber count (one control request).
    pub fn list_topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        match self.query(Request::ListTopics)? {
            Response::Topics(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// The bus-wide counters: router passes, frames in, copies delivered and dead-lettered,
    /// agents, dead letters held (one control request).
    pub fn stats(&self) -> Result<BusStats, ClientError> {
        match self.query(Request::Stats)? {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Every dead letter agentd holds, oldest first, fetched a page at a time (see
    /// [`Agent::dead_letter_page`]); letters made while paging may be included or not.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetterInfo>, ClientError> {
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

    /// Drops every dead letter agentd holds (from its file too); returns how many there were.
    pub fn purge_dead_letters(&self) -> Result<u64, ClientError> {
        match self.query(Request::PurgeDeadLetters)? {
            Response::Purged(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Routes dead letter `sequence` again (to where its header says, from its original
    /// sender); if it fails again it is dead-lettered anew with its retries counted.
    pub fn retry_dead_letter(&self, sequence: u64) -> Result<(), ClientError> {
        match self.query(Request::RetryDeadLetter(sequence))? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// One page of the dead-letter queue: up to `max` letters from sequence number `from` on
    /// (agentd may return fewer, to keep a page small), and where the next page starts.
    pub fn dead_letter_page(&self, from: u64, max: u32) -> Result<DeadLetterPage, ClientError> {
        match self.query(Request::DeadLetters(crate::control::PageRequest {
            from,
            max,
        }))? {
            Response::DeadLetters(page) => Ok(page),
            other => Err(unexpected(other)),
        }
    }
}
