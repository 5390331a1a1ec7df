//! `Subscribe` and `Unsubscribe`; answered once the router routes accordingly.

use agentbus::control::{Refusal, Response};
use mio::Token;

use super::{refuse, Control, Reply};

fn valid_pattern(p: &str) -> bool {
    let segs: Vec<&str> = p.split('.').collect();
    !p.is_empty()
        && p.len() <= 256
        && segs.iter().all(|s| !s.is_empty())
        && segs.iter().take(segs.len() - 1).all(|s| *s != ">")
}

pub(super) fn subscribe(ctl: &mut Control, token: Token, pattern: &str) -> Reply {
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before subscribing");
    };
    if !valid_pattern(pattern) {
        return refuse(
            Refusal::BadRequest,
            format!("pattern {pattern:?} is not valid: dot-separated segments, `*` for one, a final `>` for the rest"),
        );
    }
    let id = ctl.registry.subscribe(slot, pattern);
    ctl.sync_routes();
    Response::Id(id).into()
}

pub(super) fn unsubscribe(ctl: &mut Control, token: Token, id: u64) -> Reply {
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before unsubscribing");
    };
    match ctl.registry.subscriptions.get(&id) {
        Some((s, _)) if *s == slot => {
            ctl.registry.subscriptions.remove(&id);
            ctl.sync_routes();
            Response::Done.into()
        }
        _ => refuse(
            Refusal::BadRequest,
            format!("no subscription {id} of this agent"),
        ),
    }
}
