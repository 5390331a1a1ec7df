//! What a message's body holds: one of the spec's payloads (an rkyv archive) or raw bytes, and
//! the spec's `AgentIdentifier`.
// rkyv's derive generates public `*Resolver` types without Debug; every type written here
// derives Debug, and so do their archived forms.
#![allow(missing_debug_implementations)]

use rkyv::{Archive, Deserialize, Serialize};

use crate::kinds::MessageType;
use crate::payload::*;

/// Who an agent is (the spec's `AgentIdentifier`): its id, its type and, optionally, which
/// instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug))]
pub struct AgentIdentifier {
    /// Unique on the bus (`risk-1`).
    pub agent_id: String,
    /// Its type (`risk`, `execution`): load-balanced routing picks by type.
    pub agent_type: String,
    /// Which instance, when several run.
    pub instance_id: Option<String>,
}

/// An identity nobody has: what a message read without a client (a bare `decode`) is from.
pub static UNKNOWN_SENDER: AgentIdentifier = AgentIdentifier {
    agent_id: String::new(),
    agent_type: String::new(),
    instance_id: None,
};

impl AgentIdentifier {
    /// An identifier with no instance id.
    pub fn new(agent_id: impl Into<String>, agent_type: impl Into<String>) -> AgentIdentifier {
        AgentIdentifier {
            agent_id: agent_id.into(),
            agent_type: agent_type.into(),
            instance_id: None,
        }
    }
}

/// One payload per message type, plus raw application bytes.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug))]
pub enum Payload {
    /// The body of a `TASK_REQUEST`: asks an agent to do a task.
    TaskRequest(TaskRequest),
    /// The body of a `TASK_RESPONSE`: a task's result or failure.
    TaskResponse(TaskResponse),
    /// The body of a `TASK_UPDATE`: progress on a task.
    TaskUpdate(TaskUpdate),
    /// The body of a `STATUS_UPDATE`: an agent's status, load and metrics.
    StatusUpdate(StatusUpdate),
    /// The body of a `RESOURCE_REQUEST`: asks for an amount of a resource.
    ResourceRequest(ResourceRequest),
    /// The body of a `RESOURCE_RESPONSE`: grants or refuses a resource request.
    ResourceResponse(ResourceResponse),
    /// The body of a `COORDINATION`: a coordination step among participants.
    Coordination(Coordination),
    /// The body of a `NOTIFICATION`: an event or alert.
    Notification(Notification),
    /// The body of a `HEARTBEAT`: a liveness beat with status and load.
    Heartbeat(Heartbeat),
    /// The body of a `ERROR`: a communication failure reported to a sender.
    Error(ErrorPayload),
    /// Application bytes; the header's message type says what they are.
    Raw(Vec<u8>),
}

impl Payload {
    /// The message type this payload belongs to; `None` for raw bytes, which may be any type.
    pub fn message_type(&self) -> Option<MessageType> {
        Some(match self {
            Payload::TaskRequest(_) => MessageType::TaskRequest,
            Payload::TaskResponse(_) => MessageType::TaskResponse,
            Payload::TaskUpdate(_) => MessageType::TaskUpdate,
            Payload::StatusUpdate(_) => MessageType::StatusUpdate,
            Payload::ResourceRequest(_) => MessageType::ResourceRequest,
            Payload::ResourceResponse(_) => MessageType::ResourceResponse,
            Payload::Coordination(_) => MessageType::Coordination,
            Payload::Notification(_) => MessageType::Notification,
            Payload::Heartbeat(_) => MessageType::Heartbeat,
            Payload::Error(_) => MessageType::Error,
            Payload::Raw(_) => return None,
        })
    }
}

impl ArchivedPayload {
    /// As [`Payload::message_type`], read in place.
    pub fn message_type(&self) -> Option<MessageType> {
        Some(match self {
            ArchivedPayload::TaskRequest(_) => MessageType::TaskRequest,
            ArchivedPayload::TaskResponse(_) => MessageType::TaskResponse,
            ArchivedPayload::TaskUpdate(_) => MessageType::TaskUpdate,
            ArchivedPayload::StatusUpdate(_) => MessageType::StatusUpdate,
            ArchivedPayload::ResourceRequest(_) => MessageType::ResourceRequest,
            ArchivedPayload::ResourceResponse(_) => MessageType::ResourceResponse,
            ArchivedPayload::Coordination(_) => MessageType::Coordination,
            ArchivedPayload::Notification(_) => MessageType::Notification,
            ArchivedPayload::Heartbeat(_) => MessageType::Heartbeat,
            ArchivedPayload::Error(_) => MessageType::Error,
            ArchivedPayload::Raw(_) => return None,
        })
    }
}
