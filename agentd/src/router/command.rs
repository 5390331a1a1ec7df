//! What the control thread tells the router, and what the router tells it back.

use std::sync::mpsc::SyncSender;

use agentbus::AgentIdentifier;
use agentbus_ipc::ring::{Consumer, Producer};
use agentbus_ipc::Region;

/// An agent's lanes and identity, handed to the router at attach.
#[derive(Debug)]
pub struct NewAgent {
    /// Slot.
    pub slot: u32,
    /// Epoch of the slot.
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
    /// Declared capacity.
    pub capacity: u32,
}

/// A change to the routing table, applied by the router between passes. Every command that
/// carries an `ack` is acknowledged after it took effect.
#[derive(Debug)]
pub enum Command {
    /// Start routing for an agent.
    AddAgent(Box<NewAgent>, SyncSender<()>),
    /// The agent is gone (`drain`: deliver what it committed first) or misbehaved.
    RemoveAgent {
        /// Slot.
        slot: u32,
        /// Epoch (a stale command for an earlier occupant is ignored).
        epoch: u32,
        /// Deliver its committed frames first.
        drain: bool,
    },
    /// The slots subscribed to a topic.
    SetTopic(u64, Vec<u32>, SyncSender<()>),
    /// The slots having every capability of a capability set.
    SetCapabilitySet(u64, Vec<u32>, SyncSender<()>),
    /// The slots of an agent type.
    SetType(u64, Vec<u32>, SyncSender<()>),
}

/// What the router reports to the control thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    /// The slot is free: the agent was drained and removed (or detached for a fault).
    Gone {
        /// Slot.
        slot: u32,
        /// Epoch.
        epoch: u32,
        /// Why it was detached, if it misbehaved.
        fault: Option<String>,
    },
}
