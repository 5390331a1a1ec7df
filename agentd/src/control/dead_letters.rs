//! `DeadLetters`: one page of the dead-letter queue.

use agentbus::control::Response;

use super::{Control, Reply};

pub(super) fn handle(ctl: &mut Control, from: u64, max: u32) -> Reply {
    let q = ctl.dead_letters.lock().unwrap_or_else(|p| p.into_inner());
    Response::DeadLetters(q.page(from, max as usize)).into()
}
