//! `Attach`: check the peer, give it a slot and lanes, start routing for it.

use agentbus::control::{AttachInfo, AttachRequest, Refusal, Response, PROTOCOL_VERSION};
use agentbus::lanes::{self, LaneLayout};
use agentbus::AgentIdentifier;
use mio::Token;

use super::{refuse, Control, Reply};
use crate::registry::AgentRecord;
use crate::router::{AgentWake, Command, NewAgent, WakeBudget};
use agentbus_ipc::wait::{EventFd, SleepFlag};

pub(super) fn handle(ctl: &mut Control, token: Token, req: AttachRequest) -> Reply {
    let Some(peer) = ctl.conns.get(&token).map(|c| c.peer) else {
        return refuse(Refusal::BadRequest, "unknown connection");
    };
    let allowed = peer.uid == ctl.own_uid
        || ctl.config.allow_uids.contains(&peer.uid)
        || ctl.config.allow_gids.contains(&peer.gid);
    if !allowed {
        tracing::warn!(?peer, agent = %req.agent_id, "attach refused by policy");
        return refuse(
            Refusal::Unauthorized,
            format!(
                "uid {} (gid {}) may not attach to bus {:?}: add it to allow_uids or allow_gids in agentd's config",
                peer.uid, peer.gid, ctl.config.bus
            ),
        );
    }
    if req.protocol != PROTOCOL_VERSION {
        return refuse(
            Refusal::VersionMismatch,
            format!(
                "client speaks protocol {}, agentd {PROTOCOL_VERSION}: use the same agentbus version",
                req.protocol
            ),
        );
    }
    if req.agent_id.is_empty() || req.agent_id.len() > 128 || req.agent_type.is_empty() {
        return refuse(
            Refusal::BadRequest,
            "agent_id (1 to 128 bytes) and agent_type must not be empty",
        );
    }
    if ctl.attached_slot(token).is_some() {
        return refuse(Refusal::BadRequest, "this connection is attached already");
    }
    if let Some(slot) = ctl.registry.slot_of(&req.agent_id) {
        return refuse(
            Refusal::AlreadyAttached,
            format!(
                "agent {:?} is attached already (slot {slot}): pick another id, or stop the other one",
                req.agent_id
            ),
        );
    }
    let Some(slot) = ctl.registry.free_slot() else {
        return refuse(
            Refusal::NoRoom,
            format!(
                "all {} slots are taken: raise max_agents in agentd's config",
                ctl.config.max_agents
            ),
        );
    };
    // Epochs cycle through 1..=65535: they travel in 16 bits, and 0 never names an agent.
    let epoch = ctl.registry.epochs[slot as usize] % 0xFFFF + 1;
    ctl.registry.epochs[slot as usize] = epoch;
    let layout = LaneLayout {
        capacity: ctl.config.lane_capacity,
    };
    let segment = match lanes::create(layout, slot, epoch, ctl.config.lane_parking) {
        Ok(s) => s,
        Err(e) => return refuse(Refusal::NoRoom, format!("cannot create lanes: {e}")),
    };
    let region = segment.region();
    let control = lanes::ControlBlock::of(&region);
    // Born beating: not UNRESPONSIVE before its first own beat.
    control.beat(agentbus_ipc::clock::monotonic_ns());
    let agent_bell = lanes::agent_bell(&region);
    let outbound: Result<Vec<_>, _> = layout
        .outbound_ring(&region)
        .map(|r| r.map(|r| r.into_consumer()))
        .collect();
    let inbound: Result<Vec<_>, _> = layout
        .inbound_rings(&region)
        .map(|r| {
            r.map(|r| {
                let mut p = r.into_producer();
                p.set_wake(agent_bell.clone());
                p
            })
        })
        .collect();
    let (Ok(outbound), Ok(inbound)) = (outbound, inbound) else {
        return refuse(
            Refusal::NoRoom,
            "lanes were created but could not be attached",
        );
    };
    // The agent's own way to wake the router: nothing it can write reaches another's.
    let Ok(event) = EventFd::new() else {
        return refuse(Refusal::NoRoom, "out of file descriptors");
    };
    let (Ok(lanes_fd), Ok(event_fd)) = (segment.fd().try_clone_to_owned(), event.try_clone_fd())
    else {
        return refuse(Refusal::NoRoom, "out of file descriptors");
    };
    let Some(flag) = SleepFlag::new(lanes::router_asleep_word(&region)) else {
        return refuse(
            Refusal::NoRoom,
            "the lane segment has no room for the wake flag",
        );
    };
    let identity = AgentIdentifier {
        agent_id: req.agent_id.clone(),
        agent_type: req.agent_type.clone(),
        instance_id: req.instance_id.clone(),
    };
    // Sorted and deduplicated by the registry.
    let capabilities = req.capabilities.clone();
    let new = NewAgent {
        slot,
        epoch,
        identity: identity.clone(),
        outbound,
        inbound,
        control,
        lanes: region,
        lane_capacity: layout.capacity,
        capacity: req.max_capacity,
        wake: AgentWake {
            event,
            flag,
            budget: WakeBudget::default(),
        },
    };
    if let Err(e) = ctl.push(Command::AddAgent(Box::new(new))) {
        return e.why.refusal();
    }
    ctl.registry.attach(
        slot,
        AgentRecord {
            epoch,
            identity,
            capabilities,
            capacity: req.max_capacity,
            pid: peer.pid,
            uid: peer.uid,
            token,
            lanes: segment,
            leaving: false,
        },
    );
    // One acknowledgement for the agent and the routes it joined (its type, the capability
    // sets it has): it is answered only once the router routes to it.
    if let Err(e) = ctl.sync_routes(true) {
        // Undone: the router removes it (after adding it, if that arrives late), the routes
        // it joined forget it, and the slot is free again.
        ctl.registry.free(slot, epoch);
        let _ = ctl.push(Command::RemoveAgent {
            slot,
            epoch,
            drain: false,
        });
        let _ = ctl.send_routes();
        tracing::warn!(slot, agent = %req.agent_id, "attach refused: {e}");
        return e.refusal();
    }
    ctl.bus_header.publish_slot(
        slot,
        Some(&crate::bus_header::RegistryEntry {
            slot,
            epoch,
            pid: peer.pid as u32,
            uid: peer.uid,
            capacity: req.max_capacity,
            agent_id: req.agent_id.clone(),
            agent_type: req.agent_type.clone(),
        }),
    );
    if let Some(conn) = ctl.conns.get_mut(&token) {
        conn.slot = Some((slot, epoch));
    }
    ctl.header.set_agents(ctl.registry.agents().count() as u64);
    tracing::info!(slot, epoch, agent = %req.agent_id, pid = peer.pid, "attached");
    Reply {
        response: Response::Attached(AttachInfo {
            slot,
            epoch,
            heartbeat_interval_ms: ctl.config.heartbeat_interval.as_millis() as u32,
        }),
        fds: vec![lanes_fd, event_fd],
    }
}
