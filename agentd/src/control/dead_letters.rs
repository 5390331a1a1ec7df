//! `DeadLetters`: list the dead-letter queue.

use agentbus::control::Response;

use super::{Control, Reply};

pub(super) fn handle(ctl: &mut Control) -> Reply {
    let q = ctl.dead_letters.lock().unwrap_or_else(|p| p.into_inner());
    Response::DeadLetters(q.list()).into()
}
