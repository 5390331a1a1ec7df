//! Who sent a message: the identity of the slot and epoch the router stamped, never what the
//! sender wrote about itself.
//!
//! The first message from a slot and epoch costs one control request (`IdentifySlot`); the
//! answer is kept, keyed by slot with its epoch, so every later message from that sender is an
//! index and a compare, with no allocation (the identity is shared, `Arc`). A new epoch in a
//! slot (the agent left and another took its place) misses and asks again.

use std::sync::Arc;

use super::ClientError;
use crate::body::AgentIdentifier;
use crate::control::{AgentAddress, Request, Response};
use crate::header::{FrameHeader, AGENTD_SLOT};

/// Known senders, by slot.
#[derive(Debug)]
pub(crate) struct Senders {
    by_slot: Vec<Option<(u32, Arc<AgentIdentifier>)>>,
    agentd: Arc<AgentIdentifier>,
}

impl Default for Senders {
    fn default() -> Self {
        Senders {
            by_slot: Vec::new(),
            agentd: Arc::new(AgentIdentifier::new("agentd", "daemon")),
        }
    }
}

impl Senders {
    fn cached(&self, slot: u32, epoch: u32) -> Option<&Arc<AgentIdentifier>> {
        match self.by_slot.get(slot as usize) {
            Some(Some((e, id))) if *e == epoch => Some(id),
            _ => None,
        }
    }

    fn remember(&mut self, slot: u32, epoch: u32, id: Arc<AgentIdentifier>) {
        let i = slot as usize;
        if self.by_slot.len() <= i {
            self.by_slot.resize(i + 1, None);
        }
        self.by_slot[i] = Some((epoch, id));
    }
}

impl super::Receiver {
    /// The identity of the agent that sent the frame with `header` (agentd itself for what the
    /// bus sends). One control request for a sender not seen before, then none.
    pub(crate) fn sender_of(&mut self, header: &FrameHeader) -> Arc<AgentIdentifier> {
        let (slot, epoch) = (header.source_slot, header.source_epoch);
        if slot == AGENTD_SLOT {
            return Arc::clone(&self.senders.agentd);
        }
        if let Some(id) = self.senders.cached(slot, epoch) {
            return Arc::clone(id);
        }
        let id = match self
            .shared
            .call(&Request::IdentifySlot(AgentAddress { slot, epoch }))
        {
            Ok(Response::Identity(id)) => id,
            // It left before we asked (or agentd is gone): say so instead of guessing a name.
            Ok(_) | Err(ClientError::Refused { .. }) | Err(_) => AgentIdentifier {
                agent_id: format!("departed:{slot}.{epoch}"),
                agent_type: String::new(),
                instance_id: None,
            },
        };
        let id = Arc::new(id);
        self.senders.remember(slot, epoch, Arc::clone(&id));
        id
    }
}
