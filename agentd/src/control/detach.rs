//! `Detach`: the agent leaves; the router delivers what it sent, then frees its slot.

use agentbus::control::{Refusal, Response};
use mio::Token;

use super::{refuse, Control, Reply};

pub(super) fn handle(ctl: &mut Control, token: Token) -> Reply {
    let Some((slot, epoch)) = ctl.attached_slot(token) else {
        return refuse(
            Refusal::NotAttached,
            "this connection has no agent attached",
        );
    };
    if let Some(conn) = ctl.conns.get_mut(&token) {
        conn.slot = None;
    }
    ctl.leave(slot, epoch);
    // Answered once the router stopped routing to it (or gave up: it has left either way).
    if let Err(e) = ctl.sync_routes(true) {
        tracing::warn!(slot, "detach: {e}");
    }
    Response::Done.into()
}
