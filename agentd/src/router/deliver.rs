//! Copying frames into inbound lanes, dead letters, and the messages agentd writes itself.

use std::sync::{Arc, Mutex};

use agentbus::codec::header_for;
use agentbus::control::{AgentAddress, DeadLetterInfo};
use agentbus::{
    encode, AgentIdentifier, AgentStatus, ErrorKind, ErrorPayload, Flags, FrameHeader, IdGenerator,
    Message, MessagePriority, Route, RouteKind, StatusUpdate,
};
use agentbus_ipc::ring::{ClaimError, Producer};

use crate::dead_letters::{DeadLetter, DeadLetterQueue};
use agentbus::header::{AGENTD_SLOT, HEADER_LEN};

/// How a copy into an inbound lane went.
#[derive(Debug)]
pub enum Outcome {
    /// Written.
    Delivered,
    /// No room: try again later.
    Full,
    /// Cannot be delivered there, and why.
    Failed(String),
}

fn lane<'a>(
    inbound: &'a mut [Option<Vec<Producer>>],
    touched: &mut Vec<(u32, usize)>,
    touched_mask: &mut [u8],
    d: u32,
    p: usize,
) -> Option<&'a mut Producer> {
    let lanes = inbound.get_mut(d as usize)?.as_mut()?;
    let bit = 1u8 << p;
    if touched_mask[d as usize] & bit == 0 {
        // First frame for this lane in this pass: batch until the pass publishes it.
        touched_mask[d as usize] |= bit;
        touched.push((d, p));
        lanes[p].begin_batch();
    }
    Some(&mut lanes[p])
}

/// Copies `frame` (already parsed into `header`, source slot and priority stamped) into
/// inbound lane `p` of agent `d`. The header is written from the router's validated copy, so a
/// sender rewriting its frame meanwhile cannot change where or as whom it arrives.
pub fn copy(
    inbound: &mut [Option<Vec<Producer>>],
    touched: &mut Vec<(u32, usize)>,
    touched_mask: &mut [u8],
    d: u32,
    p: usize,
    header: &FrameHeader,
    frame: &[u8],
) -> Outcome {
    let Some(lane) = lane(inbound, touched, touched_mask, d, p) else {
        return Outcome::Failed("its recipient left".into());
    };
    match lane.try_claim(frame.len()) {
        Ok(mut claim) => {
            // The fixed header from the router's copy, then the extension block and the body
            // as they are.
            let buf = claim.payload();
            header.write(&mut buf[..HEADER_LEN]);
            buf[HEADER_LEN..frame.len()].copy_from_slice(&frame[HEADER_LEN..]);
            claim.commit(frame.len());
            Outcome::Delivered
        }
        Err(ClaimError::Full { .. } | ClaimError::TimedOut) => Outcome::Full,
        Err(e @ ClaimError::TooLarge { .. }) => Outcome::Failed(e.to_string()),
        Err(ClaimError::Corrupt(c)) => Outcome::Failed(c.to_string()),
    }
}

/// Records a dead letter.
pub fn dead_letter(
    queue: &Arc<Mutex<DeadLetterQueue>>,
    header: &FrameHeader,
    frame: &[u8],
    destination_slot: Option<u32>,
    reason: &str,
    now_rt: u64,
) {
    let letter = DeadLetter {
        info: DeadLetterInfo {
            sequence: 0, // the queue numbers it
            message_id: header.message_id.0,
            message_type: header.message_type,
            route: header.route,
            source_slot: header.source_slot,
            destination_slot,
            reason: reason.into(),
            at_ns: now_rt,
            frame_len: frame.len() as u32,
        },
        frame: frame.to_vec(),
    };
    // A poisoned lock only means another thread panicked while listing: keep recording.
    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
    q.push(letter);
}

fn agentd() -> AgentIdentifier {
    AgentIdentifier::new("agentd", "daemon")
}

/// Sends an `AgentUnreachable` error, correlated to the failed message, back to its sender.
#[allow(clippy::too_many_arguments)]
pub fn error_back(
    inbound: &mut [Option<Vec<Producer>>],
    touched: &mut Vec<(u32, usize)>,
    touched_mask: &mut [u8],
    ids: &mut IdGenerator,
    (sender, epoch, p): (u32, u32, usize),
    failed: &FrameHeader,
    reason: &str,
    now_rt: u64,
) {
    let msg = Message::error(
        agentd(),
        ErrorPayload {
            kind: ErrorKind::AgentUnreachable,
            details: format!(
                "message {} could not be routed: {reason}",
                failed.message_id
            ),
        },
    )
    .correlation(failed.message_id)
    .priority(MessagePriority::ALL[p])
    .flags(Flags::IS_REPLY);
    let mut h = header_for(
        &msg,
        Route {
            kind: RouteKind::Agent,
            destination: AgentAddress {
                slot: sender,
                epoch,
            }
            .destination(),
        },
        AGENTD_SLOT,
    );
    h.message_id = ids.next_id();
    h.timestamp_ns = now_rt;
    if let Some(lane) = lane(inbound, touched, touched_mask, sender, p) {
        if let Err(e) = encode(lane, &h, &msg) {
            // Its own lane is full: it is not reading its errors. The dead letter (logged,
            // rate-limited) already records the failure; a line per lost error would not be.
            tracing::debug!(
                sender,
                "could not tell the sender its message was unroutable: {e}"
            );
        }
    }
}

/// Tells the subscribers of `sys.agents` that an agent attached or died.
#[allow(clippy::too_many_arguments)]
pub fn notify_agents_topic(
    inbound: &mut [Option<Vec<Producer>>],
    touched: &mut Vec<(u32, usize)>,
    touched_mask: &mut [u8],
    ids: &mut IdGenerator,
    dead: &Arc<Mutex<DeadLetterQueue>>,
    delivered: &mut u64,
    dead_count: &mut u64,
    (topic, subscribers): (u64, &[u32]),
    identity: &AgentIdentifier,
    slot: u32,
    status: AgentStatus,
) {
    if subscribers.is_empty() {
        return;
    }
    let msg = Message::status_update(
        identity.clone(),
        StatusUpdate {
            agent_status: status,
            ..Default::default()
        },
    )
    .priority(MessagePriority::High)
    .metadata("reported_by", "agentd")
    .metadata("agent_id", identity.agent_id.clone())
    .metadata("agent_type", identity.agent_type.clone())
    .metadata("slot", slot.to_string());
    let mut h = header_for(
        &msg,
        Route {
            kind: RouteKind::Topic,
            destination: topic,
        },
        AGENTD_SLOT,
    );
    h.message_id = ids.next_id();
    h.timestamp_ns = agentbus_ipc::clock::realtime_ns();
    let p = MessagePriority::High as usize;
    for &d in subscribers {
        let Some(lane) = lane(inbound, touched, touched_mask, d, p) else {
            continue;
        };
        match encode(lane, &h, &msg) {
            Ok(()) => *delivered += 1,
            Err(e) => {
                let why = format!("sys.agents notification not delivered: {e}");
                dead_letter(dead, &h, &[], Some(d), &why, h.timestamp_ns);
                *dead_count += 1;
            }
        }
    }
}
