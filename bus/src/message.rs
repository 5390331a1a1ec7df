//! An owned message, with constructors for every type and setters for every optional field.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::body::{AgentIdentifier, Payload};
use crate::extensions::Extras;
use crate::header::{Flags, TraceContext};
use crate::ids::MessageId;
use crate::kinds::{MessagePriority, MessageType};
use crate::payload::*;

/// The spec's `AgentMessage`: routing fields (which travel in the header), what is optional
/// (trace, metadata, reply-to: in the extension block, only when set) and the payload (the
/// frame's body).
///
/// ```
/// use agentbus::{AgentIdentifier, Message, MessagePriority, TaskRequest, record};
///
/// let me = AgentIdentifier::new("strategy-1", "strategy");
/// let msg = Message::task_request(me, TaskRequest {
///     task_id: "ord-1".into(),
///     task_type: "place_order".into(),
///     parameters: record! { "symbol" => "AAPL", "qty" => 100i64 },
///     required_capabilities: vec!["execution".into()],
///     ..Default::default()
/// })
/// .priority(MessagePriority::High)
/// .ttl(std::time::Duration::from_millis(250));
/// assert_eq!(msg.message_type, agentbus::MessageType::TaskRequest);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its id; [`MessageId::NONE`] until the sender assigns one.
    pub id: MessageId,
    /// When it was sent (ns since the epoch); 0 until the sender stamps it.
    pub timestamp_ns: u64,
    /// What the payload is: the typed constructors set it to match, [`Message::raw`] takes it
    /// from the caller.
    pub message_type: MessageType,
    /// Which lane it travels in (the router drains CRITICAL first); NORMAL unless set.
    pub priority: MessagePriority,
    /// The message this one answers or follows.
    pub correlation_id: MessageId,
    /// How long it may wait for delivery; `None`: the bus default.
    pub ttl: Option<Duration>,
    /// Header flags the sender asks for ([`Flags::ACK_REQUESTED`], ...); the encoder sets
    /// `EXTENDED`, `RAW` and `TYPED` from what it writes, whatever this says.
    pub flags: Flags,
    /// Trace and span ids; all zeros (the default) means not traced and costs no wire bytes.
    pub trace: TraceContext,
    /// The sender. Not sent: a receiver gets the identity the router vouches for (the attached
    /// identity of the sending slot), whatever this says.
    pub from: AgentIdentifier,
    /// The recipients as the sender named them (multicast); not sent either: the header's
    /// destination is what routes it.
    pub to: Vec<AgentIdentifier>,
    /// Free-form string metadata (keys up to 255 bytes).
    pub metadata: BTreeMap<String, String>,
    /// Where replies should go, when not to the sender.
    pub reply_to: Option<String>,
    /// The payload: all the frame's body holds.
    pub payload: Payload,
}

macro_rules! constructors {
    ($($(#[$m:meta])* $fn:ident($ty:ident) => $variant:ident;)*) => {
        $(
            $(#[$m])*
            pub fn $fn(from: AgentIdentifier, payload: $ty) -> Message {
                Message::new(MessageType::$variant, from, Payload::$variant(payload))
            }
        )*
    };
}

impl Message {
    /// A message of `message_type` from `from` with `payload`, normal priority, no recipients
    /// named yet.
    pub fn new(message_type: MessageType, from: AgentIdentifier, payload: Payload) -> Message {
        Message {
            id: MessageId::NONE,
            timestamp_ns: 0,
            message_type,
            priority: MessagePriority::Normal,
            correlation_id: MessageId::NONE,
            ttl: None,
            flags: Flags::empty(),
            trace: TraceContext::default(),
            from,
            to: Vec::new(),
            metadata: BTreeMap::new(),
            reply_to: None,
            payload,
        }
    }

    constructors! {
        /// A `TASK_REQUEST` from `from`: asks an agent to do a task.
        task_request(TaskRequest) => TaskRequest;
        /// A `TASK_RESPONSE` from `from`: a task's result or failure.
        task_response(TaskResponse) => TaskResponse;
        /// A `TASK_UPDATE` from `from`: progress on a task.
        task_update(TaskUpdate) => TaskUpdate;
        /// A `STATUS_UPDATE` from `from`: its status, load and metrics.
        status_update(StatusUpdate) => StatusUpdate;
        /// A `RESOURCE_REQUEST` from `from`: asks for an amount of a resource.
        resource_request(ResourceRequest) => ResourceRequest;
        /// A `RESOURCE_RESPONSE` from `from`: grants or refuses a resource request.
        resource_response(ResourceResponse) => ResourceResponse;
        /// A `COORDINATION` message from `from`: consensus, elections, allocation, workflows,
        /// conflicts.
        coordination(Coordination) => Coordination;
        /// A `NOTIFICATION` from `from`: an event or alert.
        notification(Notification) => Notification;
        /// A `HEARTBEAT` from `from`: a liveness beat with its status and load.
        heartbeat(Heartbeat) => Heartbeat;
        /// An `ERROR` from `from`: a communication failure reported to a sender.
        error(ErrorPayload) => Error;
    }

    /// Application bytes, labelled with `message_type`.
    pub fn raw(from: AgentIdentifier, message_type: MessageType, bytes: Vec<u8>) -> Message {
        Message::new(message_type, from, Payload::Raw(bytes))
    }

    /// Adds a recipient (several make a multicast).
    pub fn to(mut self, recipient: AgentIdentifier) -> Message {
        self.to.push(recipient);
        self
    }

    /// Sets the lane it travels in (the router drains CRITICAL first).
    pub fn priority(mut self, priority: MessagePriority) -> Message {
        self.priority = priority;
        self
    }

    /// Marks it as answering or following message `id` (its correlation id).
    pub fn correlation(mut self, id: MessageId) -> Message {
        self.correlation_id = id;
        self
    }

    /// Sets how long it may wait for delivery.
    pub fn ttl(mut self, ttl: Duration) -> Message {
        self.ttl = Some(ttl);
        self
    }

    /// Adds metadata `key` = `value`, replacing an earlier value of `key` (keys up to 255
    /// bytes: a longer one fails at encode).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Message {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets where replies go.
    pub fn reply_to(mut self, address: impl Into<String>) -> Message {
        self.reply_to = Some(address.into());
        self
    }

    /// Sets the trace and span ids (all zeros: not traced).
    pub fn trace(mut self, trace_id: [u8; 16], span_id: [u8; 8]) -> Message {
        self.trace = TraceContext { trace_id, span_id };
        self
    }

    /// What travels in the extension block, borrowed.
    pub fn extras(&self) -> Extras<'_> {
        Extras {
            trace: self.trace,
            reply_to: self.reply_to.as_deref(),
            metadata: (!self.metadata.is_empty()).then_some(&self.metadata),
        }
    }

    /// Adds header flags to those set (it never clears one).
    pub fn flags(mut self, flags: Flags) -> Message {
        self.flags |= flags;
        self
    }
}
