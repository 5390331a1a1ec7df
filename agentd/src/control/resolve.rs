//! `ResolveAgent`: an agent id's slot and epoch; `IdentifySlot`: the reverse.

use agentbus::control::{AgentAddress, Refusal, Response};

use super::{refuse, Control, Reply};

pub(super) fn handle(ctl: &mut Control, agent_id: &str) -> Reply {
    let found = ctl.registry.slot_of(agent_id).and_then(|slot| {
        ctl.registry.agent(slot).map(|a| AgentAddress {
            slot,
            epoch: a.epoch,
        })
    });
    match found {
        Some(address) => Response::Agent(address).into(),
        None => refuse(
            Refusal::NoSuchAgent,
            format!(
                "no agent {agent_id:?} is attached: check `agentbus top`, or wait for it to attach"
            ),
        ),
    }
}

pub(super) fn identify(ctl: &mut Control, address: AgentAddress) -> Reply {
    match ctl
        .registry
        .agent(address.slot)
        .filter(|a| a.epoch == address.epoch)
    {
        Some(a) => Response::Identity(a.identity.clone()).into(),
        None => refuse(
            Refusal::NoSuchAgent,
            format!(
                "no agent is attached at slot {} epoch {}: it has left",
                address.slot, address.epoch
            ),
        ),
    }
}
