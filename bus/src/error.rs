//! Errors: the spec's `CommunicationError`, and the codec's per-operation errors.

use std::time::Duration;

use agentbus_ipc::ring::Corruption;

use crate::control::Refusal;
use crate::payload::ErrorKind;

/// A communication failure, as the spec names them. Every message says what to do next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommunicationError {
    /// No agent could take the message.
    #[error("agent {agent:?} is unreachable: {reason}; check that it is attached (`agentbus top`), or route by capability or type instead")]
    AgentUnreachable {
        /// The destination as named: an agent id, or for a request routed by capability or type,
        /// `capabilities a,b` or `type t`.
        agent: String,
        /// Why, as whoever found it said: agentd's refusal, the error the router sent back, or
        /// the closed channel.
        reason: String,
    },
    /// The message does not fit the lane.
    #[error("the message takes {size} bytes, more than the lane's maximum of {max}: send less per message, or configure larger lanes")]
    MessageTooLarge {
        /// Bytes the message needs (routing header included).
        size: usize,
        /// The most a frame may carry.
        max: usize,
    },
    /// Bytes that are not a valid message.
    #[error(
        "invalid message: {reason}; the sender is broken or runs an incompatible agentbus version"
    )]
    InvalidFormat {
        /// What was wrong.
        reason: String,
    },
    /// Refused by the bus's policy.
    #[error("unauthorized: {what}; ask the bus operator to allow it in agentd's policy")]
    Unauthorized {
        /// What was refused.
        what: String,
    },
    /// No answer in time.
    #[error("timed out after {after:?} waiting for {what}: the other side is slow, busy or gone; check it (`agentbus top`), then retry or wait longer")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// A lane had no room.
    #[error("queue full: {needed} bytes needed, {free} free; the reader is behind: retry, send with a wait, or lower the rate")]
    QueueFull {
        /// Bytes needed.
        needed: usize,
        /// Bytes free.
        free: usize,
    },
    /// A value could not be serialized.
    #[error(
        "could not serialize the message: {reason}; make the value fit what the payload allows"
    )]
    Serialization {
        /// The serializer's complaint.
        reason: String,
    },
    /// agentd is not running for the bus: nothing listens on its socket (the socket is absent,
    /// or refuses connections). Not a spec kind: it is classified as
    /// [`ErrorKind::AgentUnreachable`].
    #[error("agentd is not running for bus {bus:?} ({reason}): start it (`agentd --bus {bus}`), then attach again")]
    BusNotRunning {
        /// The name of the bus tried (as `agentd --bus` takes it).
        bus: String,
        /// What showed it (the socket path tried, and what happened).
        reason: String,
    },
    /// agentd closed this agent's control connection: it stopped or died (the router's beat
    /// stopped too), or it detached this agent. Nothing this agent sends is routed any more.
    /// Not a spec kind: it is classified as [`ErrorKind::AgentUnreachable`].
    #[error("agentd for bus {bus:?} closed this agent's connection (it stopped, died, or detached this agent: see its log){}; start agentd if it stopped (`agentd --bus {bus}`), then attach again", unsent_note(.unsent))]
    Disconnected {
        /// The name of the bus whose agentd closed the connection.
        bus: String,
        /// Messages this agent's `send`s accepted that agentd never took (still in its outbound
        /// lanes, never routed), counted when the agent found agentd gone. `None` when the
        /// error was converted from a [`ClientError`](crate::client::ClientError) without its
        /// agent, which cannot look at the lanes.
        unsent: Option<u64>,
    },
    /// agentd refused a control request (resolve, subscribe, create a topic, ...) for a
    /// reason the spec has no kind of its own for; agentd's message says what to do.
    #[error("agentd refused ({refusal:?}): {message}")]
    Refused {
        /// agentd's reason, as a value to match on ([`CommunicationError::kind`] maps it to a
        /// spec kind).
        refusal: Refusal,
        /// agentd's explanation.
        message: String,
    },
    /// A control-plane operation failed in a way no spec kind describes (a socket error on the
    /// control connection, unusable shared memory, an unsafe socket directory, ...). Classified
    /// as [`ErrorKind::AgentUnreachable`]: agentd could not be used.
    #[error("{reason}")]
    Control {
        /// What failed, and what to do (the control-plane error's own message).
        reason: String,
    },
    /// Requests to this destination failed too often in a row: its circuit breaker is open, and
    /// requests fail at once until it has rested. Not a spec kind: classified as
    /// [`ErrorKind::AgentUnreachable`].
    #[error("the circuit breaker for {destination} is open after {failures} failures in a row: requests to it fail at once for {retry_in:?} more, then one is let through to try it; check the destination (`agentbus top`), or send elsewhere")]
    CircuitOpen {
        /// The destination as named: an agent id, `capabilities a,b` or `type t`.
        destination: String,
        /// Failures in a row that opened it (or kept it open).
        failures: u32,
        /// How long until it lets a trial request through.
        retry_in: Duration,
    },
    /// A message sent for at-least-once delivery was not acknowledged after every attempt (the
    /// receiver never acknowledged it, or it could not be routed each time). Not a spec kind:
    /// classified as [`ErrorKind::AgentUnreachable`].
    #[error("message {message_id} to {destination} was not acknowledged after {attempts} attempts ({reason}); check the receiver (`agentbus top`): it must ack what it reads with `recv` (handlers ack on return)")]
    DeliveryFailed {
        /// The destination as named: an agent id, `capabilities a,b` or `type t`.
        destination: String,
        /// The message's id (the same on every attempt).
        message_id: crate::ids::MessageId,
        /// Attempts made.
        attempts: u32,
        /// What the last attempt came to.
        reason: String,
    },
    /// The other side answered a request with an error.
    #[error("the request failed at its receiver ({kind:?}): {details}; its receiver's message says why: fix the request, or ask its owner")]
    RequestFailed {
        /// What kind of failure it reported.
        kind: ErrorKind,
        /// What it said.
        details: String,
    },
}

impl CommunicationError {
    /// The kind carried on the wire in an `Error` message.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommunicationError::AgentUnreachable { .. }
            | CommunicationError::BusNotRunning { .. }
            | CommunicationError::Disconnected { .. }
            | CommunicationError::CircuitOpen { .. }
            | CommunicationError::DeliveryFailed { .. }
            | CommunicationError::Control { .. } => ErrorKind::AgentUnreachable,
            CommunicationError::Refused { refusal, .. } => refusal_kind(*refusal),
            CommunicationError::MessageTooLarge { .. } => ErrorKind::MessageTooLarge,
            CommunicationError::InvalidFormat { .. } => ErrorKind::InvalidFormat,
            CommunicationError::Unauthorized { .. } => ErrorKind::Unauthorized,
            CommunicationError::Timeout { .. } => ErrorKind::Timeout,
            CommunicationError::QueueFull { .. } => ErrorKind::QueueFull,
            CommunicationError::Serialization { .. } => ErrorKind::SerializationError,
            CommunicationError::RequestFailed { kind, .. } => *kind,
        }
    }
}

/// The spec's kind closest to a refusal of agentd's.
fn refusal_kind(refusal: Refusal) -> ErrorKind {
    match refusal {
        Refusal::Unauthorized | Refusal::AlreadyAttached => ErrorKind::Unauthorized,
        Refusal::NoSuchAgent | Refusal::NotAttached | Refusal::ShuttingDown => {
            ErrorKind::AgentUnreachable
        }
        Refusal::VersionMismatch | Refusal::BadRequest => ErrorKind::InvalidFormat,
        // No free slot, no room for lanes or descriptors: try again later, as for a full lane.
        Refusal::NoRoom => ErrorKind::QueueFull,
    }
}

/// `Disconnected`'s account of the messages agentd never took.
fn unsent_note(unsent: &Option<u64>) -> String {
    match unsent {
        Some(0) => String::new(),
        Some(n) => format!(": {n} messages this agent sent were never routed"),
        None => String::new(),
    }
}

/// Why a message could not be written into a lane. Nothing was committed in every case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// The frame is larger than the lane takes; see [`CommunicationError::MessageTooLarge`].
    #[error("the message takes {size} bytes, more than the lane's maximum of {max}: send less per message, or configure larger lanes")]
    TooLarge {
        /// Bytes needed.
        size: usize,
        /// The most a frame may carry.
        max: usize,
    },
    /// The lane has no room now: its reader is behind; see [`CommunicationError::QueueFull`].
    #[error("queue full: {needed} bytes needed, {free} free; the reader is behind: retry, send with a wait, or lower the rate")]
    QueueFull {
        /// Bytes needed.
        needed: usize,
        /// Bytes free.
        free: usize,
    },
    /// Waiting for room in the lane passed its deadline: its reader is not taking frames.
    /// See [`CommunicationError::Timeout`].
    #[error("timed out after {after:?} waiting for room in the lane: its reader is not taking frames; check that agentd runs (`agentbus stat`), or lower the rate")]
    TimedOut {
        /// How long the claim waited.
        after: Duration,
    },
    /// rkyv could not serialize the value, with its complaint; see
    /// [`CommunicationError::Serialization`].
    #[error("could not serialize the message: {0}")]
    Serialization(String),
    /// A value in the payload nests lists and maps deeper than receivers accept
    /// ([`crate::nesting::MAX_VALUE_DEPTH`]); see [`CommunicationError::Serialization`].
    #[error("a value in the payload nests lists and maps more than {max} levels deep, more than receivers accept (serializing or validating it could overflow a thread's stack): flatten it")]
    TooDeep {
        /// The most levels allowed ([`crate::nesting::MAX_VALUE_DEPTH`]).
        max: usize,
    },
    /// The lane's reader wrote an impossible position: the lane is unusable.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// A metadata key longer than the wire allows.
    #[error("a metadata key of {len} bytes is longer than the {max} allowed: use a shorter key")]
    MetadataKeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The longest key the wire carries, in bytes ([`crate::extensions::MAX_KEY`]).
        max: usize,
    },
    /// Trace context, reply-to and metadata together are more than an extension block holds.
    #[error("metadata and reply-to take {size} bytes, more than the {max} a message may carry beside its payload: put large values in the payload")]
    ExtrasTooLarge {
        /// Bytes they would take in the extension block.
        size: usize,
        /// The most an extension block holds, in bytes ([`crate::extensions::MAX_BLOCK`]).
        max: usize,
    },
}

impl From<EncodeError> for CommunicationError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::TooLarge { size, max } => {
                CommunicationError::MessageTooLarge { size, max }
            }
            EncodeError::QueueFull { needed, free } => {
                CommunicationError::QueueFull { needed, free }
            }
            EncodeError::TimedOut { after } => CommunicationError::Timeout {
                what: "room in the lane".into(),
                after,
            },
            EncodeError::Serialization(reason) => CommunicationError::Serialization { reason },
            e @ (EncodeError::MetadataKeyTooLong { .. }
            | EncodeError::ExtrasTooLarge { .. }
            | EncodeError::TooDeep { .. }) => CommunicationError::Serialization {
                reason: e.to_string(),
            },
            EncodeError::Corrupt(c) => CommunicationError::InvalidFormat {
                reason: c.to_string(),
            },
        }
    }
}

/// Why bytes could not be read as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message: {reason}; the sender is broken or runs an incompatible agentbus version")]
pub struct DecodeError {
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(reason: impl Into<String>) -> DecodeError {
        DecodeError {
            reason: reason.into(),
        }
    }
}

impl From<DecodeError> for CommunicationError {
    fn from(e: DecodeError) -> Self {
        CommunicationError::InvalidFormat { reason: e.reason }
    }
}
