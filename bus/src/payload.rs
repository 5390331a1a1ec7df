//! The payload of each message type (the spec's "Specific Message Types").
//!
//! Times are nanoseconds since the Unix epoch; optional spec fields are `Option`s.
// rkyv's derive generates public `*Resolver` types without Debug; every type written here
// derives Debug, and so do their archived forms.
#![allow(missing_debug_implementations)]

use rkyv::{Archive, Deserialize, Serialize};

use crate::body::AgentIdentifier;
use crate::value::{Record, Value};

macro_rules! archived {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
        #[rkyv(derive(Debug))]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }
    };
}

macro_rules! archived_enum {
    ($(#[$m:meta])* pub enum $name:ident { $(#[$dm:meta])* $default:ident, $($(#[$vm:meta])* $variant:ident,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Archive, Serialize, Deserialize)]
        #[rkyv(derive(Debug, PartialEq, Eq))]
        #[repr(u8)]
        pub enum $name {
            $(#[$dm])*
            #[default]
            $default,
            $($(#[$vm])* $variant,)*
        }
    };
}

archived_enum! {
    /// Where a task stands.
    pub enum TaskStatus {
        /// Received, not started.
        Pending,
        /// Accepted by the agent.
        Accepted,
        /// Being worked on.
        InProgress,
        /// Done, with a result.
        Completed,
        /// Ended with an error.
        Failed,
        /// Called off.
        Cancelled,
        /// Refused by the agent.
        Rejected,
    }
}

archived_enum! {
    /// An agent's state in the registry.
    pub enum AgentStatus {
        /// Attached and taking work.
        Active,
        /// Attached, at capacity.
        Busy,
        /// Attached, heartbeat stale: routing avoids it.
        Unresponsive,
        /// Gone: its connection closed.
        Dead,
    }
}

archived_enum! {
    /// What a coordination round is for (the spec's `CoordinationType`).
    pub enum CoordinationType {
        /// Vote on a proposal.
        ConsensusRequest,
        /// Choose a leader.
        LeaderElection,
        /// Share out a resource.
        ResourceAllocation,
        /// Drive a workflow step.
        WorkflowCoordination,
        /// Settle a conflict.
        ConflictResolution,
    }
}

archived_enum! {
    /// The spec's `CommunicationError`, as carried in an `Error` message.
    pub enum ErrorKind {
        /// No agent could take the message.
        AgentUnreachable,
        /// Larger than the lane accepts.
        MessageTooLarge,
        /// Bytes that are not a valid message.
        InvalidFormat,
        /// Not allowed by policy.
        Unauthorized,
        /// No answer in time.
        Timeout,
        /// A lane was full.
        QueueFull,
        /// A value could not be serialized.
        SerializationError,
        /// The receiver's request handler failed (not part of the spec's list: a request's
        /// answer needs it).
        HandlerError,
    }
}

archived! {
    /// A constraint on how a task is done (`max_slippage_bps` = 5, ...).
    pub struct TaskConstraint {
        /// What is constrained.
        pub name: String,
        /// The bound.
        pub value: Value,
    }
}

archived! {
    /// What went wrong, in a response.
    pub struct ErrorDetails {
        /// A machine-readable code.
        pub code: String,
        /// A sentence for people.
        pub message: String,
        /// Anything more.
        pub details: Option<Value>,
    }
}

archived! {
    /// `TASK_REQUEST`: asks an agent to do something.
    pub struct TaskRequest {
        /// The task's id, chosen by the requester.
        pub task_id: String,
        /// What kind of task (`place_order`, `risk_check`, ...).
        pub task_type: String,
        /// For people.
        pub description: String,
        /// Its inputs.
        pub parameters: Record,
        /// Limits on how to do it.
        pub constraints: Vec<TaskConstraint>,
        /// When it must be done by.
        pub deadline_ns: Option<u64>,
        /// Capabilities the doer must have (capability routing reads these).
        pub required_capabilities: Vec<String>,
        /// Tasks that must finish first.
        pub dependencies: Vec<String>,
    }
}

archived! {
    /// `TASK_RESPONSE`: the outcome of a task.
    pub struct TaskResponse {
        /// The task answered.
        pub task_id: String,
        /// Where it stands.
        pub status: TaskStatus,
        /// What the task produced, when it has completed.
        pub result: Option<Value>,
        /// What went wrong, when it failed.
        pub error: Option<ErrorDetails>,
        /// When it is expected to finish.
        pub estimated_completion_ns: Option<u64>,
        /// 0.0 to 1.0.
        pub progress: Option<f32>,
    }
}

archived! {
    /// `TASK_UPDATE`: progress on a task.
    pub struct TaskUpdate {
        /// The id of the task it reports on (as in its [`TaskRequest`]).
        pub task_id: String,
        /// Where it stands.
        pub status: TaskStatus,
        /// 0.0 to 1.0.
        pub progress: Option<f32>,
        /// For people.
        pub message: Option<String>,
    }
}

archived! {
    /// What an agent is using.
    pub struct ResourceUsage {
        /// CPU, percent of one core.
        pub cpu_percent: f32,
        /// Resident memory.
        pub memory_bytes: u64,
        /// Messages waiting in its inbound lanes.
        pub queue_depth: u32,
        /// Tasks in hand.
        pub load: u32,
        /// Tasks it can hold.
        pub capacity: u32,
    }
}

archived! {
    /// How an agent is performing.
    pub struct PerformanceMetrics {
        /// Messages handled.
        pub messages_processed: u64,
        /// Mean handling time.
        pub avg_latency_ns: u64,
        /// 99th percentile handling time.
        pub p99_latency_ns: u64,
        /// Handling failures, as the agent counts them.
        pub error_count: u64,
    }
}

archived! {
    /// `STATUS_UPDATE`: an agent's state, work and numbers.
    pub struct StatusUpdate {
        /// The state the agent reports itself in (`Active`, `Busy`, ...).
        pub agent_status: AgentStatus,
        /// Task ids in hand.
        pub current_tasks: Vec<String>,
        /// Capabilities on offer now.
        pub available_capabilities: Vec<String>,
        /// Resources used.
        pub resource_usage: ResourceUsage,
        /// Messages handled, handling times and failures, as the agent counts them.
        pub performance_metrics: PerformanceMetrics,
    }
}

archived! {
    /// `RESOURCE_REQUEST`: asks for a resource (risk limit, capital, rate budget, ...).
    pub struct ResourceRequest {
        /// Chosen by the requester; the [`ResourceResponse`] names it back.
        pub request_id: String,
        /// What is asked for.
        pub resource_type: String,
        /// How much.
        pub amount: f64,
        /// Anything more.
        pub parameters: Record,
    }
}

archived! {
    /// `RESOURCE_RESPONSE`: grants or refuses a resource.
    pub struct ResourceResponse {
        /// The request answered.
        pub request_id: String,
        /// Whether it was granted.
        pub granted: bool,
        /// How much was granted.
        pub amount: f64,
        /// Why not, when refused.
        pub reason: Option<String>,
    }
}

archived! {
    /// An action proposed for agreement.
    pub struct ProposedAction {
        /// What to do.
        pub action: String,
        /// With what.
        pub parameters: Record,
    }
}

archived! {
    /// `COORDINATION`: consensus, elections, allocation, workflows, conflicts.
    pub struct Coordination {
        /// What the round is for: consensus, an election, an allocation, a workflow step or a
        /// conflict.
        pub coordination_type: CoordinationType,
        /// Who takes part.
        pub participants: Vec<AgentIdentifier>,
        /// The data of the round (a proposal, a vote, ...).
        pub coordination_data: Record,
        /// The action proposed.
        pub proposed_action: Option<ProposedAction>,
    }
}

archived! {
    /// `NOTIFICATION`: an event, alert or broadcast.
    pub struct Notification {
        /// What happened (`trade.executed`, `risk.limit_breached`, ...).
        pub event: String,
        /// The event's fields (`symbol`, `price`, ...), free-form.
        pub data: Record,
    }
}

archived! {
    /// `HEARTBEAT`: I am alive, and this loaded.
    pub struct Heartbeat {
        /// Counts up by one per beat.
        pub sequence: u64,
        /// The state the sender reports itself in (`Active`, `Busy`, ...).
        pub status: AgentStatus,
        /// Tasks in hand.
        pub load: u32,
    }
}

archived! {
    /// `ERROR`: a communication failure, sent to the sender of the message that failed, with the
    /// header's correlation id set to that message's id.
    pub struct ErrorPayload {
        /// What kind of failure.
        pub kind: ErrorKind,
        /// What happened and what to do.
        pub details: String,
    }
}
