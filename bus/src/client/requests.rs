//! Request/response, events, handler dispatch (`poll`), and the replies agents send.

use std::time::{Duration, Instant};

use super::delivery::copy_frame;
use super::handlers::{
    HandlerError, Listener, ListenerId, MessageFilter, RequestHandler, SubscriptionHandler,
};
use super::{Agent, ClientError};
use crate::body::Payload;
use crate::codec::{decode, Envelope, Route};
use crate::control::{AgentAddress, Request, Response};

use crate::error::CommunicationError;
use crate::header::{Flags, FrameHeader};
use crate::ids::MessageId;
use crate::kinds::{MessageType, RouteKind};
use crate::message::Message;
use crate::payload::{ErrorKind, ErrorPayload};

use crate::header::AGENTD_SLOT;
/// Topic prefix for events.
pub const EVENT_PREFIX: &str = "evt.";

/// Where a message or request goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// One agent, by id.
    Agent(&'a str),
    /// The least-loaded live agent having all these capabilities.
    Capability(&'a [&'a str]),
    /// The least-loaded live agent of this type under capacity.
    Type(&'a str),
}

impl Destination<'_> {
    /// The destination as errors name it: the agent id, `capabilities a,b`, or `type t`.
    fn name(&self) -> String {
        match self {
            Destination::Agent(id) => (*id).into(),
            Destination::Capability(caps) => format!("capabilities {}", caps.join(",")),
            Destination::Type(t) => format!("type {t}"),
        }
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

/// Request ids that timed out, remembered (up to a bound) so their late replies are recognised.
#[derive(Debug, Default)]
pub(crate) struct TimedOut {
    order: std::collections::VecDeque<MessageId>,
    ids: std::collections::HashSet<MessageId>,
}

impl TimedOut {
    const BOUND: usize = 4096;

    pub(crate) fn remember(&mut self, id: MessageId) {
        if self.order.len() == Self::BOUND {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back(id);
        self.ids.insert(id);
    }

    fn forget(&mut self, id: MessageId) {
        self.ids.remove(&id);
    }

    fn contains(&self, id: &MessageId) -> bool {
        self.ids.contains(id)
    }
}

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

/// An outstanding request: who may answer it, and where it went, as named (for its errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Who may answer.
    replier: Replier,
    /// The destination as named ([`Destination::name`]).
    to: String,
}

/// What a frame is to an agent's requests. The source slot and epoch are the router's stamp, so
/// an agent cannot claim another's; the correlation id of a request is unguessable
/// ([`crate::IdGenerator::next_secret_id`]), so an agent it was not shown cannot name it.
fn reply_kind_of(
    outstanding: &std::collections::HashMap<MessageId, Pending>,
    timed_out: &TimedOut,
    h: &FrameHeader,
) -> ReplyKind {
    if !h.flags.contains(Flags::IS_REPLY) || h.correlation_id.is_none() {
        return ReplyKind::NotAwaited;
    }
    match outstanding.get(&h.correlation_id).map(|p| &p.replier) {
        Some(_) if h.source_slot == AGENTD_SLOT => ReplyKind::Awaited,
        Some(Replier::Agent(a)) if a.slot != h.source_slot || a.epoch != h.source_epoch => {
            ReplyKind::Forged
        }
        Some(_) => ReplyKind::Awaited,
        None if timed_out.contains(&h.correlation_id) => ReplyKind::Late,
        None => ReplyKind::NotAwaited,
    }
}

impl Agent {
    /// Whether a frame is a reply this agent takes aside rather than hand to `recv`.
    pub(crate) fn takes_aside(&self, h: &FrameHeader) -> bool {
        reply_kind_of(&self.outstanding, &self.timed_out, h) != ReplyKind::NotAwaited
    }

    /// Replies dropped because they named an outstanding request but came from an agent the
    /// request was not sent to.
    pub fn forged_replies(&self) -> u64 {
        self.forged_replies
    }
}

impl Agent {
    /// Sends `message` to `destination`, returning its id.
    pub fn send_to(
        &mut self,
        destination: Destination<'_>,
        message: &Message,
    ) -> Result<MessageId, CommunicationError> {
        match destination {
            Destination::Agent(id) => self.send(id, message),
            Destination::Capability(caps) => self.send_by_capability(caps, message),
            Destination::Type(t) => self.send_to_type(t, message),
        }
    }

    /// Sends a request without waiting: its reply is collected by [`Agent::wait_response`]
    /// (many may be outstanding at once). The request always gets a fresh, unguessable id (any
    /// id set on `request` is replaced), and only a reply from the agent it was delivered to is
    /// accepted: from the named agent for [`Destination::Agent`]; for capability and type
    /// routes, from whichever agent can name the id, which only the one the router chose was
    /// shown.
    pub fn start_request(
        &mut self,
        destination: Destination<'_>,
        request: &Message,
    ) -> Result<MessageId, CommunicationError> {
        let mut m = request.clone();
        m.id = self.ids.next_secret_id();
        m.flags |= Flags::EXPECTS_REPLY;
        let replier = match destination {
            Destination::Agent(name) => Replier::Agent(self.address(name)?),
            Destination::Capability(_) | Destination::Type(_) => Replier::Picked,
        };
        let pending = Pending {
            replier,
            to: destination.name(),
        };
        self.outstanding.insert(m.id, pending);
        match self.send_to(destination, &m) {
            Ok(id) => Ok(id),
            Err(e) => {
                self.outstanding.remove(&m.id);
                Err(e)
            }
        }
    }

    /// The reply to request `id` if it has arrived (without waiting, beyond taking what is in
    /// the lanes now); `None` if not yet. An `Error` reply comes back as an error.
    pub fn try_response(&mut self, id: MessageId) -> Option<Result<Message, CommunicationError>> {
        if !self.responses.contains_key(&id) {
            if let Err(e) = self.poll(64) {
                return Some(Err(e));
            }
        }
        let (_, bytes) = self.responses.remove(&id)?;
        let to = self.destination_of(id);
        Some(response_result(&bytes, to))
    }

    /// Forgets outstanding request `id` (its reply has come), returning where it went.
    fn destination_of(&mut self, id: MessageId) -> String {
        match self.outstanding.remove(&id) {
            Some(pending) => pending.to,
            None => format!("the receiver of request {id}"),
        }
    }

    /// Gives up waiting for request `id`: a reply that still comes is counted late.
    pub fn abandon(&mut self, id: MessageId) {
        if self.outstanding.remove(&id).is_some() {
            self.timed_out.remember(id);
        }
        self.responses.remove(&id);
    }

    /// Waits up to `timeout` until a message is waiting (without taking it); true if one is.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        if !self.queue.is_empty() || Agent::ready_lane(&mut self.inbound).is_some() {
            return true;
        }
        self.idle(Instant::now() + timeout)
    }

    /// Waits up to `timeout` for the reply to request `id`. Other messages that arrive
    /// meanwhile go to their handlers (see [`Agent::poll`]) or are queued for `recv`. A reply
    /// that comes after its request timed out is counted ([`Agent::late_responses`]) and
    /// dropped. An `Error` reply (the handler failed, or agentd could not route the request)
    /// is returned as an error.
    pub fn wait_response(
        &mut self,
        id: MessageId,
        timeout: Duration,
    ) -> Result<Message, CommunicationError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, bytes)) = self.responses.remove(&id) {
                let to = self.destination_of(id);
                return response_result(&bytes, to);
            }
            let now = Instant::now();
            if now >= deadline {
                self.outstanding.remove(&id);
                self.timed_out.remember(id);
                return Err(CommunicationError::Timeout {
                    what: format!("the response to request {id}"),
                    after: timeout,
                });
            }
            if self.poll(64)? == 0 {
                if let Err(e) = self.check_link_now() {
                    self.outstanding.remove(&id);
                    return Err(e);
                }
                self.idle(deadline);
            }
        }
    }

    /// Sends a request and waits up to `timeout` for its reply (the spec's `sendRequest`).
    pub fn request(
        &mut self,
        destination: Destination<'_>,
        request: &Message,
        timeout: Duration,
    ) -> Result<Message, CommunicationError> {
        let id = self.start_request(destination, request)?;
        self.wait_response(id, timeout)
    }

    /// Replies that arrived after their request had timed out (counted, then dropped).
    pub fn late_responses(&self) -> u64 {
        self.late_responses
    }

    /// Sets the handler that answers requests (the spec's `setRequestHandler`). It runs from
    /// [`Agent::poll`] (and while this agent waits for its own responses); what it returns is
    /// sent back correlated to the request, an `Err` as an `Error` response carrying the
    /// [`HandlerError`]'s message.
    pub fn on_request(
        &mut self,
        handler: impl FnMut(&Envelope<'_>) -> Result<Payload, HandlerError> + Send + 'static,
    ) {
        self.handlers.request = Some(Box::new(handler) as RequestHandler);
    }

    /// Replies to `request` (from its header) with `payload`.
    pub fn reply(
        &mut self,
        request: &FrameHeader,
        payload: Payload,
    ) -> Result<MessageId, CommunicationError> {
        let t = payload.message_type().unwrap_or(MessageType::TaskResponse);
        let m = Message::new(t, self.identity(), payload);
        self.send_reply(request, m)
    }

    fn send_reply(
        &mut self,
        request: &FrameHeader,
        message: Message,
    ) -> Result<MessageId, CommunicationError> {
        if request.source_slot == AGENTD_SLOT {
            return Ok(MessageId::NONE);
        }
        let m = message
            .correlation(request.message_id)
            .priority(request.priority)
            .flags(Flags::IS_REPLY);
        let route = Route {
            kind: RouteKind::Agent,
            destination: AgentAddress {
                slot: request.source_slot,
                epoch: request.source_epoch,
            }
            .destination(),
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match self.send_routed(route, &m) {
                Err(CommunicationError::QueueFull { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(50))
                }
                other => return other,
            }
        }
    }

    /// Publishes an event of `event_type` (the spec's `emitEvent`): a topic message on
    /// `evt.<event_type>`.
    pub fn emit(
        &mut self,
        event_type: &str,
        event: &Message,
    ) -> Result<MessageId, CommunicationError> {
        self.publish(&format!("{EVENT_PREFIX}{event_type}"), event)
    }

    /// Calls `handler` for every event of `event_type` (the spec's `addEventListener`), from
    /// [`Agent::poll`].
    pub fn on_event(
        &mut self,
        event_type: &str,
        handler: impl FnMut(&Envelope<'_>) + Send + 'static,
    ) -> Result<ListenerId, ClientError> {
        let topic = format!("{EVENT_PREFIX}{event_type}");
        let topic_id = self.create_topic(&topic)?;
        if !self.handlers.event_subscriptions.contains_key(&topic_id) {
            let sub = self.subscribe(&topic)?;
            self.handlers.event_subscriptions.insert(topic_id, sub);
        }
        self.handlers.next_listener += 1;
        let id = ListenerId(self.handlers.next_listener);
        self.handlers.listeners.push(Listener {
            id,
            topic_id,
            handler: Box::new(handler),
        });
        Ok(id)
    }

    /// Removes an event listener (the spec's `removeEventListener`): it is never called again.
    pub fn remove_listener(&mut self, id: ListenerId) -> Result<(), ClientError> {
        let Some(pos) = self.handlers.listeners.iter().position(|l| l.id == id) else {
            return Ok(());
        };
        let topic_id = self.handlers.listeners.remove(pos).topic_id;
        if !self
            .handlers
            .listeners
            .iter()
            .any(|l| l.topic_id == topic_id)
        {
            if let Some(sub) = self.handlers.event_subscriptions.remove(&topic_id) {
                self.unsubscribe(sub)?;
            }
        }
        Ok(())
    }

    /// Subscribes to `pattern` with a handler called from [`Agent::poll`], after `filter`
    /// (when given) accepts the message: the spec's "interested symbols" check runs on the
    /// message in place, before any handler work.
    pub fn subscribe_with(
        &mut self,
        pattern: &str,
        filter: Option<MessageFilter>,
        handler: impl FnMut(&Envelope<'_>) + Send + 'static,
    ) -> Result<u64, ClientError> {
        let subscription = self.subscribe(pattern)?;
        self.handlers.subscriptions.push(SubscriptionHandler {
            subscription,
            pattern: pattern.into(),
            filter,
            handler: Box::new(handler),
        });
        Ok(subscription)
    }

    /// Ends a subscription made with [`Agent::subscribe_with`] (or `subscribe`).
    pub fn unsubscribe_handler(&mut self, subscription: u64) -> Result<(), ClientError> {
        self.handlers
            .subscriptions
            .retain(|s| s.subscription != subscription);
        self.unsubscribe(subscription)
    }

    /// Topic messages a subscription filter turned away.
    pub fn filtered(&self) -> u64 {
        self.handlers.filtered
    }

    fn topic_name(&mut self, id: u64) -> Option<String> {
        if let Some(n) = self.handlers.topic_names.get(&id) {
            return Some(n.clone());
        }
        if let Ok((Response::Topics(topics), _)) = self.conn.call(&Request::ListTopics) {
            for t in topics {
                self.handlers.topic_names.insert(t.id, t.name);
            }
        }
        self.handlers.topic_names.get(&id).cloned()
    }

    /// Dispatches everything waiting now (up to `max` messages), most urgent first: replies to
    /// this agent's requests are set aside for [`Agent::wait_response`]; requests go to the
    /// request handler; events to their listeners; topic messages to matching subscription
    /// handlers (after their filters); everything else is queued for [`Agent::recv`]. Returns
    /// how many messages it took.
    pub fn poll(&mut self, max: usize) -> Result<usize, CommunicationError> {
        let mut n = 0;
        while n < max {
            self.maybe_beat();
            let Some(p) = Agent::ready_lane(&mut self.inbound) else {
                break;
            };
            n += 1;
            let header = match self.inbound[p].peek() {
                Ok(Some(bytes)) => FrameHeader::parse(bytes).ok(),
                _ => None,
            };
            let Some(header) = header else {
                // Unreadable: let try_recv report it.
                drop(self.try_recv()?);
                continue;
            };
            if self.takes_aside(&header) {
                self.set_aside(p);
                continue;
            }
            let for_handler =
                header.flags.contains(Flags::EXPECTS_REPLY) && self.handlers.request.is_some();
            let topic_name =
                if header.route == RouteKind::Topic && !self.handlers.subscriptions.is_empty() {
                    self.topic_name(header.destination)
                } else {
                    None
                };
            let for_topic = header.route == RouteKind::Topic
                && self
                    .handlers
                    .wants_topic(header.destination, topic_name.as_deref());
            let from = self.sender_of(&header);
            let Ok(Some(guard)) = self.inbound[p].read() else {
                continue;
            };
            let mut env = decode(guard.bytes())?;
            env.from = &from;
            if for_handler {
                let mut handler = self.handlers.request.take().expect("checked above");
                let result = handler(&env);
                self.handlers.request = Some(handler);
                drop(guard); // hand the request's room back before replying
                let reply = match result {
                    Ok(payload) => {
                        let t = payload.message_type().unwrap_or(MessageType::TaskResponse);
                        Message::new(t, self.identity(), payload)
                    }
                    Err(e) => Message::error(
                        self.identity(),
                        ErrorPayload {
                            kind: ErrorKind::HandlerError,
                            details: e.into_message(),
                        },
                    ),
                };
                self.send_reply(&header, reply)?;
            } else if for_topic {
                self.handlers
                    .dispatch_topic(header.destination, topic_name.as_deref(), &env);
            } else {
                self.queue.push_back((header, copy_frame(guard.bytes())));
            }
        }
        Ok(n)
    }

    /// Runs this agent's handlers ([`Agent::poll`]) until `deadline` or until `stop` says so,
    /// sleeping on the agent's doorbell (or spinning, as configured) when there is nothing to do.
    /// Messages no handler takes are queued for [`Agent::recv`].
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut stop: impl FnMut(&mut Agent) -> bool,
    ) -> Result<(), CommunicationError> {
        loop {
            let handled = self.poll(256)?;
            if stop(self) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            if handled == 0 {
                self.idle(deadline);
            }
        }
    }

    /// Takes the reply at the front of lane `p` aside for its waiting request, or counts it
    /// late.
    pub(crate) fn set_aside(&mut self, p: usize) {
        let kind = match self.inbound[p].peek() {
            Ok(Some(bytes)) => match FrameHeader::parse(bytes) {
                Ok(h) => reply_kind_of(&self.outstanding, &self.timed_out, &h),
                Err(_) => ReplyKind::NotAwaited,
            },
            _ => return,
        };
        let Ok(Some(guard)) = self.inbound[p].read() else {
            return;
        };
        let Ok(env) = decode(guard.bytes()) else {
            return; // invalid: dropped with the guard
        };
        let id = env.header.correlation_id;
        match kind {
            ReplyKind::Awaited => {
                let header = env.header;
                self.responses
                    .insert(id, (header, copy_frame(guard.bytes())));
            }
            ReplyKind::Late => {
                self.timed_out.forget(id);
                self.late_responses += 1;
            }
            ReplyKind::Forged => self.forged_replies += 1, // dropped with the guard
            ReplyKind::NotAwaited => {}
        }
    }
}
