//! `Stats`: the router's counters from the bus header.

use agentbus::control::{BusStats, Response};

use super::{Control, Reply};

pub(super) fn handle(ctl: &mut Control) -> Reply {
    let router = ctl.header.router();
    let (held, bytes, evicted) = {
        let q = crate::dead_letters::lock(&ctl.dead_letters);
        (q.len() as u64, q.bytes() as u64, q.evicted())
    };
    Response::Stats(BusStats {
        dead_letters_held: held,
        dead_letter_bytes: bytes,
        dead_letters_evicted: evicted,
        passes: router.passes,
        frames_in: router.frames_in,
        delivered: router.delivered,
        dead_lettered: router.dead,
        faulted: router.faulted,
        agents: ctl.registry.agents().filter(|(_, a)| !a.leaving).count() as u32,
    })
    .into()
}
