//! `ListAgents`: every agent with its status, load and heartbeat.

use agentbus::control::{AgentInfo, Response};
use agentbus::lanes;
use agentbus::AgentStatus;

use super::{Control, Reply};
use crate::router::slot_counter;

pub(super) fn handle(ctl: &mut Control) -> Reply {
    let now = agentbus_ipc::clock::monotonic_ns();
    let now_rt = agentbus_ipc::clock::realtime_ns();
    let timeout = ctl.config.heartbeat_timeout.as_nanos() as u64;
    let agents = ctl
        .registry
        .agents()
        .map(|(slot, a)| {
            let cb = lanes::ControlBlock::of(&a.lanes.region());
            let load = cb.load();
            let status = if a.leaving {
                AgentStatus::Dead
            } else if !cb.alive(now, now_rt, timeout) {
                AgentStatus::Unresponsive
            } else if load >= a.capacity {
                AgentStatus::Busy
            } else {
                AgentStatus::Active
            };
            AgentInfo {
                slot,
                epoch: a.epoch,
                agent_id: a.identity.agent_id.clone(),
                agent_type: a.identity.agent_type.clone(),
                instance_id: a.identity.instance_id.clone(),
                capabilities: a.capabilities.clone(),
                status,
                load,
                capacity: a.capacity,
                pid: a.pid,
                uid: a.uid,
                frames_sent: ctl.header.slot_counter(slot, slot_counter::SENT),
                frames_delivered: ctl.header.slot_counter(slot, slot_counter::DELIVERED),
                frames_dead: ctl.header.slot_counter(slot, slot_counter::DEAD),
                copies_received: ctl.header.slot_counter(slot, slot_counter::RECEIVED),
                copies_delivered: ctl.header.slot_counter(slot, slot_counter::COPIES),
                copies_dead: ctl.header.slot_counter(slot, slot_counter::COPIES_DEAD),
                destinations: ctl.header.slot_counter(slot, slot_counter::DESTINATIONS),
                throttled: ctl.header.slot_counter(slot, slot_counter::THROTTLED),
                copies_lost: ctl.header.slot_counter(slot, slot_counter::LOST),
                wakes_ignored: ctl.header.slot_counter(slot, slot_counter::WAKES_IGNORED),
            }
        })
        .collect();
    Response::Agents(agents).into()
}
