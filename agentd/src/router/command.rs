//! What the control thread tells the router, and what the router tells it back.

use agentbus::AgentIdentifier;
use agentbus_ipc::ring::{Consumer, Producer};
use agentbus_ipc::Region;

/// An agent's lanes and identity, handed to the router at attach.
#[derive(Debug)]
pub struct NewAgent {
    /// The slot agentd gave it: which router slot and lanes are its.
    pub slot: u32,
    /// The epoch agentd gave this attach (1..=65535): with the slot, names this occupant.
    pub epoch: u32,
    /// Who it is (for `sys.agents` notifications).
    pub identity: AgentIdentifier,
    /// Its outbound lanes, CRITICAL first (the router consumes).
    pub outbound: Vec<Consumer>,
    /// Its inbound lanes, CRITICAL first (the router produces).
    pub inbound: Vec<Producer>,
    /// Its control block (heartbeat, load).
    pub control: agentbus::lanes::ControlBlock,
    /// Its whole lane segment (to collect unread frames when it dies).
    pub lanes: Region,
    /// Bytes per lane.
    pub lane_capacity: usize,
    /// The most tasks it declared it holds (`max_capacity` at attach): routing by capability or
    /// type passes it over while its load is at this.
    pub capacity: u32,
    /// How it wakes the sleeping router.
    pub wake: super::AgentWake,
}

/// One route of the routing table: the table it is in and its id there (the id agentd handed
/// out for the topic, capability set or type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteId {
    /// A topic's subscribers.
    Topic(u64),
    /// A capability set's candidates (live agents having every capability of it).
    CapabilitySet(u64),
    /// An agent type's members (live agents of that type).
    Type(u64),
    /// The live agents who may publish on a topic whose publishers are restricted (a topic
    /// never given this route is open to every publisher).
    Publishers(u64),
}

/// A route's new members, replacing what the router had for it (a route the router has not
/// heard of yet, such as a topic just created, extends its table: from then on the id counts
/// as issued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    /// The route whose members are replaced: its table and its id there.
    pub route: RouteId,
    /// Its slots, ascending, each once.
    pub slots: Vec<u32>,
}

/// What the router does with one topic's messages: the routing part of its
/// [`agentbus::control::TopicConfig`] (who may publish comes as a [`RouteId::Publishers`]
/// route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicPolicy {
    /// What to do with a copy for a subscriber whose lane is full.
    pub back_pressure: agentbus::control::BackPressure,
    /// The largest frame it carries (0: no limit of its own).
    pub max_frame: u32,
    /// How many of its last messages are kept for new subscribers (0: none).
    pub history: u32,
    /// The most bytes those take (a lane's capacity: what a new subscriber can be given at
    /// once).
    pub history_bytes: usize,
}

/// A change to the routing table, applied by the router between passes, in the order queued.
/// None is acknowledged by itself: a [`Command::Barrier`] queued after them is, once every
/// command before it took effect.
#[derive(Debug)]
pub enum Command {
    /// Start routing for an agent.
    AddAgent(Box<NewAgent>),
    /// The agent is gone (`drain`: deliver what it committed first) or misbehaved.
    RemoveAgent {
        /// The slot of the agent to remove.
        slot: u32,
        /// Epoch (a stale command for an earlier occupant is ignored).
        epoch: u32,
        /// Deliver its committed frames first.
        drain: bool,
    },
    /// The routes that changed with one control request, each with all its members now.
    SetRoutes(Vec<RouteChange>),
    /// Route a dead letter's frame again (an operator's retry): delivered where its header
    /// says now, or dead-lettered anew with its retries counted.
    Redeliver(Box<crate::dead_letters::DeadLetter>),
    /// How a topic behaves (sent once, when it is created, before its id is handed out).
    ConfigureTopic {
        /// The topic's id.
        topic: u64,
        /// What the router does with it.
        policy: TopicPolicy,
    },
    /// Publishes `message`, agentd's own, on `topic` to its subscribers (a `sys.leases`
    /// notice); a subscriber whose lane is full misses it.
    Notice {
        /// The topic's id.
        topic: u64,
        /// What agentd says.
        message: Box<agentbus::Message>,
    },
    /// Acknowledge this number on the router's acknowledgement channel: every command queued
    /// before it has been applied.
    Barrier(u64),
}

/// What the router reports to the control thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    /// The slot is free: the agent was drained and removed (or detached for a fault).
    Gone {
        /// The slot the router emptied, free for a new attach.
        slot: u32,
        /// The epoch of the agent removed: the control thread frees the slot only if it still
        /// holds that epoch.
        epoch: u32,
        /// Why it was detached, if it misbehaved.
        fault: Option<String>,
    },
}
