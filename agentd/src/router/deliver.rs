//! Dead letters, and the messages agentd writes itself (errors back to senders, `sys.agents`).

use std::sync::{Arc, Mutex};

use agentbus::codec::header_for;
use agentbus::control::{AgentAddress, DeadLetterInfo};
use agentbus::{
    AgentIdentifier, AgentStatus, ErrorKind, ErrorPayload, Flags, FrameHeader, IdGenerator,
    Message, MessagePriority, Route, RouteKind, StatusUpdate,
};

use crate::dead_letters::{DeadLetter, DeadLetterQueue};
use agentbus::header::AGENTD_SLOT;

/// The sender of a frame being routed: its slot, the epoch it attached with, and the
/// priority (lane index, CRITICAL = 0) the frame came in on.
#[derive(Debug, Clone, Copy)]
pub struct FrameSender {
    /// The slot whose outbound lane the frame was read from: stamped as its source.
    pub slot: u32,
    /// The epoch of its attachment.
    pub epoch: u32,
    /// The lane the frame came from.
    pub priority: usize,
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
    record(
        queue,
        letter(header, frame, destination_slot, reason, now_rt),
    );
}

/// The dead letter of `frame` routed with `header`, not retried yet (its sequence number is
/// the queue's to give).
pub fn letter(
    header: &FrameHeader,
    frame: &[u8],
    destination_slot: Option<u32>,
    reason: &str,
    now_rt: u64,
) -> DeadLetter {
    // The frame as routed: the router's header (its stamped source) over the sender's.
    let mut frame = frame.to_vec();
    if frame.len() >= agentbus::HEADER_LEN {
        header.write(&mut frame[..agentbus::HEADER_LEN]);
    }
    DeadLetter {
        info: DeadLetterInfo {
            sequence: 0,
            message_id: header.message_id.0,
            message_type: header.message_type,
            route: header.route,
            source_slot: header.source_slot,
            destination_slot,
            reason: reason.into(),
            at_ns: now_rt,
            frame_len: frame.len() as u32,
            retries: 0,
        },
        frame,
    }
}

/// Adds `letter` to the queue.
pub fn record(queue: &Mutex<DeadLetterQueue>, letter: DeadLetter) {
    crate::dead_letters::lock(queue).push(letter);
}

/// agentd's identity, as the sender of what it writes itself.
pub fn agentd() -> AgentIdentifier {
    AgentIdentifier::new("agentd", "daemon")
}

/// The header of `msg`, a notice agentd publishes on `topic`: stamped as agentd's, a fresh id,
/// sent at `now_rt`.
pub fn notice_header(ids: &mut IdGenerator, topic: u64, msg: &Message, now_rt: u64) -> FrameHeader {
    let mut header = header_for(
        msg,
        Route {
            kind: RouteKind::Topic,
            destination: topic,
        },
        AGENTD_SLOT,
    );
    header.message_id = ids.next_id();
    header.timestamp_ns = now_rt;
    header
}

/// The `AgentUnreachable` error, correlated to the failed message, that goes back to its
/// sender: the header (addressed to the sender's slot and epoch) and the message.
pub fn unroutable_error(
    ids: &mut IdGenerator,
    sender: FrameSender,
    failed: &FrameHeader,
    why: crate::router::Unroutable,
    now_rt: u64,
) -> (FrameHeader, Message) {
    let reason = why.reason();
    let kind = match why {
        crate::router::Unroutable::TooLarge => ErrorKind::MessageTooLarge,
        crate::router::Unroutable::Unauthorized => ErrorKind::Unauthorized,
        _ => ErrorKind::AgentUnreachable,
    };
    let msg = Message::error(
        agentd(),
        ErrorPayload {
            kind,
            details: format!(
                "message {} could not be routed: {reason}",
                failed.message_id
            ),
        },
    )
    .correlation(failed.message_id)
    .priority(MessagePriority::ALL[sender.priority])
    .flags(Flags::IS_REPLY);
    let mut header = header_for(
        &msg,
        Route {
            kind: RouteKind::Agent,
            destination: AgentAddress {
                slot: sender.slot,
                epoch: sender.epoch,
            }
            .destination(),
        },
        AGENTD_SLOT,
    );
    header.message_id = ids.next_id();
    header.timestamp_ns = now_rt;
    (header, msg)
}

/// The `sys.agents` notice that the agent `identity` in `slot` attached or died: the header
/// (to `topic`) and the message.
pub fn agents_notice(
    ids: &mut IdGenerator,
    topic: u64,
    identity: &AgentIdentifier,
    slot: u32,
    status: AgentStatus,
) -> (FrameHeader, Message) {
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
    let header = notice_header(ids, topic, &msg, agentbus_ipc::clock::realtime_ns());
    (header, msg)
}
