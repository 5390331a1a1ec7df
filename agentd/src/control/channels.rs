//! `OpenChannel` and `CloseChannel`: direct channels between two agents, and closing them
//! when one side leaves.

use std::os::fd::OwnedFd;

use agentbus::channel_layout::{self, ChannelControl, ClosedBy};
use agentbus::control::{ChannelInfo, Push, Refusal, Response};
use agentbus_ipc::segment::MemfdSegment;
use mio::Token;

use super::{refuse, Control, Reply};

/// A channel agentd created: its two ends and its segment (kept mapped to close it for an end
/// that dies).
#[derive(Debug)]
pub struct ChannelRecord {
    /// Slots of the opener and of the peer.
    pub slots: [u32; 2],
    /// The channel's memfd: kept mapped so agentd can mark the channel closed when an end
    /// leaves.
    pub segment: MemfdSegment,
}

pub(super) fn open(ctl: &mut Control, token: Token, peer: &str) -> Reply {
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before opening channels");
    };
    let Some(peer_slot) = ctl.registry.slot_of(peer) else {
        return refuse(
            Refusal::NoSuchAgent,
            format!("no agent {peer:?} is attached to open a channel to"),
        );
    };
    if peer_slot == slot {
        return refuse(Refusal::BadRequest, "a channel needs two different agents");
    }
    let (Some(me), Some(them)) = (ctl.registry.agent(slot), ctl.registry.agent(peer_slot)) else {
        return refuse(Refusal::NoSuchAgent, "one end is not attached");
    };
    let (my_id, their_id, peer_token) = (me.identity.clone(), them.identity.clone(), them.token);
    ctl.next_channel += 1;
    let id = ctl.next_channel;
    let segment =
        match channel_layout::create(id, ctl.config.lane_capacity, ctl.config.lane_parking) {
            Ok(s) => s,
            Err(e) => return refuse(Refusal::NoRoom, format!("cannot create the channel: {e}")),
        };
    let (Ok(mine), Ok(theirs)) = (
        segment.fd().try_clone_to_owned(),
        segment.fd().try_clone_to_owned(),
    ) else {
        return refuse(Refusal::NoRoom, "out of file descriptors");
    };
    let offer = Reply {
        response: Response::Push(Push::ChannelOffer(ChannelInfo {
            id,
            peer: my_id,
            side: 1,
        })),
        fds: vec![theirs],
    };
    if !ctl.reply(peer_token, offer) {
        ctl.close(peer_token);
        return refuse(
            Refusal::NoSuchAgent,
            format!("agent {peer:?} could not be told of the channel"),
        );
    }
    ctl.channels.insert(
        id,
        ChannelRecord {
            slots: [slot, peer_slot],
            segment,
        },
    );
    tracing::info!(id, from = slot, to = peer_slot, "channel opened");
    Reply {
        response: Response::ChannelOpened(ChannelInfo {
            id,
            peer: their_id,
            side: 0,
        }),
        fds: vec![mine as OwnedFd],
    }
}

pub(super) fn close(ctl: &mut Control, token: Token, id: u64) -> Reply {
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach first");
    };
    match ctl.channels.get(&id) {
        Some(r) if r.slots.contains(&slot) => {
            let side = ClosedBy::side(if r.slots[0] == slot { 0 } else { 1 });
            shut(ctl.channels.remove(&id).expect("present"), side);
            Response::Done.into()
        }
        _ => refuse(
            Refusal::BadRequest,
            format!("this agent has no channel {id}"),
        ),
    }
}

/// Closes every channel of an agent that is leaving, so its peers see it at once.
pub(super) fn close_all_of(ctl: &mut Control, slot: u32) {
    let ids: Vec<u64> = ctl
        .channels
        .iter()
        .filter(|(_, r)| r.slots.contains(&slot))
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        if let Some(r) = ctl.channels.remove(&id) {
            shut(r, ClosedBy::Agentd);
        }
    }
}

fn shut(record: ChannelRecord, by: ClosedBy) {
    let region = record.segment.region();
    ChannelControl::of(&region).close(by);
    if let Ok((a, b)) = channel_layout::rings(&region) {
        a.wake_both();
        b.wake_both();
    }
}
