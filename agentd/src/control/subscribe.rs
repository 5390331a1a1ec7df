//! `Subscribe` and `Unsubscribe`; answered once the router routes accordingly.

use agentbus::control::{Refusal, Response};
use mio::Token;

use super::{refuse, Control, Reply};
use crate::registry::SubscribeRefused;

/// Whether `p` is a valid subscription pattern: dot-separated non-empty segments, `*` for one,
/// `>` only last.
pub(crate) fn valid_pattern(p: &str) -> bool {
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
    let id = match ctl.registry.subscribe(slot, pattern) {
        Ok(id) => id,
        Err(SubscribeRefused::NotLive) => {
            return refuse(Refusal::NotAttached, "this agent is leaving")
        }
        Err(SubscribeRefused::Unauthorized(who)) => {
            return refuse(
                Refusal::Unauthorized,
                format!("this agent may not subscribe to topic {pattern:?}: only {who} may"),
            )
        }
    };
    if let Err(e) = ctl.sync_routes(false) {
        // Not answered as subscribed unless publishes reach it: undone (the router applies
        // the undoing after whatever of it arrives late).
        ctl.registry.unsubscribe(slot, id);
        let _ = ctl.send_routes();
        return e.refusal();
    }
    Response::Id(id).into()
}

pub(super) fn unsubscribe(ctl: &mut Control, token: Token, id: u64) -> Reply {
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before unsubscribing");
    };
    if !ctl.registry.unsubscribe(slot, id) {
        return refuse(
            Refusal::BadRequest,
            format!("no subscription {id} of this agent"),
        );
    }
    if let Err(e) = ctl.sync_routes(false) {
        // The subscription is gone from the registry; the router drops it when it resumes.
        tracing::warn!(slot, id, "unsubscribe: {e}");
    }
    Response::Done.into()
}
