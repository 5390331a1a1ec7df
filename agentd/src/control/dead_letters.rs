//! `DeadLetters`: one page of the dead-letter queue; `DeadLetter`: a message a client gave up
//! on, recorded in it.

use agentbus::control::{ClientDeadLetter, Refusal, Response};
use agentbus::FrameHeader;
use mio::Token;

use super::{refuse, Control, Reply};
use crate::router::Command;

pub(super) fn handle(ctl: &mut Control, from: u64, max: u32) -> Reply {
    let q = crate::dead_letters::lock(&ctl.dead_letters);
    Response::DeadLetters(q.page(from, max as usize)).into()
}

/// Records a message the agent on `token` gave up on, stamped as sent by it.
pub(super) fn record(ctl: &mut Control, token: Token, letter: ClientDeadLetter) -> Reply {
    let Some((slot, epoch)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before reporting dead letters");
    };
    let mut header = match FrameHeader::parse(&letter.frame) {
        Ok(h) if h.frame_len() <= letter.frame.len() => h,
        Ok(h) => {
            return refuse(
                Refusal::BadRequest,
                format!(
                    "the dead letter's frame is {} bytes, its header says {}: send the frame as it was encoded",
                    letter.frame.len(),
                    h.frame_len()
                ),
            )
        }
        Err(e) => {
            return refuse(
                Refusal::BadRequest,
                format!("the dead letter's frame does not start with a valid header: {e}"),
            )
        }
    };
    // As many as the router would make for it (dead_letter_rate a second, dead_letter_burst at
    // once): a client cannot fill the queue faster than a sender could.
    let limit = crate::router::DeadLetterLimit {
        rate: ctl.config.dead_letter_rate,
        burst: ctl.config.dead_letter_burst,
    };
    let now = agentbus_ipc::clock::monotonic_ns();
    let entry = ctl
        .client_letters
        .entry(slot)
        .or_insert_with(|| (epoch, crate::router::DeadLetterBudget::new(limit, now)));
    if entry.0 != epoch {
        *entry = (epoch, crate::router::DeadLetterBudget::new(limit, now));
    }
    entry.1.refill(limit, now);
    if !entry.1.affordable() {
        return refuse(
            Refusal::NoRoom,
            format!(
                "this agent reported dead letters faster than agentd allows ({} a second, {} at once: dead_letter_rate and dead_letter_burst): report fewer, or later",
                limit.rate, limit.burst
            ),
        );
    }
    entry.1.spend();
    header.source_slot = slot;
    header.source_epoch = epoch;
    let frame = &letter.frame[..header.frame_len()];
    crate::router::dead_letter(
        &ctl.dead_letters,
        &header,
        frame,
        None,
        &letter.reason,
        agentbus_ipc::clock::realtime_ns(),
    );
    Response::Done.into()
}

/// Drops every dead letter, from the file too.
pub(super) fn purge(ctl: &mut Control) -> Reply {
    let mut q = crate::dead_letters::lock(&ctl.dead_letters);
    let n = q.purge();
    tracing::info!("{n} dead letters purged");
    Response::Purged(n).into()
}

/// Takes dead letter `sequence` out of the queue and hands its frame to the router to route
/// again.
pub(super) fn retry(ctl: &mut Control, sequence: u64) -> Reply {
    let letter = crate::dead_letters::lock(&ctl.dead_letters).take(sequence);
    let Some(letter) = letter else {
        return refuse(
            Refusal::BadRequest,
            format!(
                "no dead letter {sequence} is held: list them (`dead_letters`) for their numbers"
            ),
        );
    };
    if letter.frame.is_empty() {
        return refuse(
            Refusal::BadRequest,
            format!("dead letter {sequence} kept no frame (it was larger than the queue's byte bound): it cannot be retried"),
        );
    }
    if let Err(e) = ctl.push(Command::Redeliver(Box::new(letter))) {
        return e.why.refusal();
    }
    if let Err(e) = ctl.sync_routes(true) {
        return e.refusal();
    }
    Response::Done.into()
}
