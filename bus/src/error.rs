//! Errors: the spec's `CommunicationError`, and the codec's per-operation errors.

use std::time::Duration;

use agentbus_ipc::ring::Corruption;

use crate::payload::ErrorKind;

/// A communication failure, as the spec names them. Every message says what to do next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommunicationError {
    /// No agent could take the message.
    #[error("agent {agent:?} is unreachable: {reason}; check that it is attached (`agentbus top`), or route by capability or type instead")]
    AgentUnreachable {
        /// The destination as named.
        agent: String,
        /// Why.
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
    #[error("timed out after {after:?} waiting for {what}")]
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
    #[error("could not serialize the message: {reason}")]
    Serialization {
        /// The serializer's complaint.
        reason: String,
    },
    /// agentd is gone (it stopped or died): nothing is routed any more. `unsent` messages this
    /// agent had sent were still in its outbound lanes, never routed, when that was found.
    #[error("agentd is gone (its control connection closed): {unsent} messages this agent sent were never routed; restart agentd and attach again")]
    Disconnected {
        /// Messages accepted by `send` that agentd never took.
        unsent: u64,
    },
    /// The other side answered a request with an error.
    #[error("the request failed at its receiver ({kind:?}): {details}")]
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
            | CommunicationError::Disconnected { .. } => ErrorKind::AgentUnreachable,
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

/// Why a message could not be written into a lane. Nothing was committed in every case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// See [`CommunicationError::MessageTooLarge`].
    #[error("the message takes {size} bytes, more than the lane's maximum of {max}: send less per message, or configure larger lanes")]
    TooLarge {
        /// Bytes needed.
        size: usize,
        /// The most a frame may carry.
        max: usize,
    },
    /// See [`CommunicationError::QueueFull`].
    #[error("queue full: {needed} bytes needed, {free} free; the reader is behind: retry, send with a wait, or lower the rate")]
    QueueFull {
        /// Bytes needed.
        needed: usize,
        /// Bytes free.
        free: usize,
    },
    /// See [`CommunicationError::Serialization`].
    #[error("could not serialize the message: {0}")]
    Serialization(String),
    /// The lane's reader wrote an impossible position: the lane is unusable.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// A metadata key longer than the wire allows.
    #[error("a metadata key of {len} bytes is longer than the {max} allowed: use a shorter key")]
    MetadataKeyTooLong {
        /// The key's length.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// Trace context, reply-to and metadata together are more than an extension block holds.
    #[error("metadata and reply-to take {size} bytes, more than the {max} a message may carry beside its payload: put large values in the payload")]
    ExtrasTooLarge {
        /// Bytes they would take.
        size: usize,
        /// The most allowed.
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
            EncodeError::Serialization(reason) => CommunicationError::Serialization { reason },
            e @ (EncodeError::MetadataKeyTooLong { .. } | EncodeError::ExtrasTooLarge { .. }) => {
                CommunicationError::Serialization {
                    reason: e.to_string(),
                }
            }
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
