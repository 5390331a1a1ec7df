//! `Stats`: the router's counters from the bus header.

use std::sync::atomic::Ordering;

use agentbus::control::{BusStats, Response};

use super::{Control, Reply};
use crate::bus_header::word;

pub(super) fn handle(ctl: &mut Control) -> Reply {
    let h = &ctl.header;
    let w = |i| h.load(i, Ordering::Relaxed);
    let (held, bytes, evicted) = {
        let q = ctl.dead_letters.lock().unwrap_or_else(|p| p.into_inner());
        (q.len() as u64, q.bytes() as u64, q.evicted())
    };
    Response::Stats(BusStats {
        dead_letters_held: held,
        dead_letter_bytes: bytes,
        dead_letters_evicted: evicted,
        passes: w(word::PASSES),
        frames_in: w(word::FRAMES_IN),
        delivered: w(word::DELIVERED),
        dead_lettered: w(word::DEAD),
        faulted: w(word::FAULTED),
        agents: ctl
            .registry
            .agents
            .iter()
            .flatten()
            .filter(|a| !a.leaving)
            .count() as u32,
    })
    .into()
}
