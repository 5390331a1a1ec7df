//! `ResolveAgent`: an agent id's slot and epoch.

use agentbus::control::{AgentAddress, Refusal, Response};

use super::{refuse, Control, Reply};

pub(super) fn handle(ctl: &mut Control, agent_id: &str) -> Reply {
    let found = ctl.registry.by_id.get(agent_id).and_then(|&slot| {
        ctl.registry.agents[slot as usize]
            .as_ref()
            .map(|a| AgentAddress {
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
