//! `InternCapabilities` and `InternType`: ids for capability and load-balanced routes.

use agentbus::control::Response;

use super::{Control, Reply};

pub(super) fn capabilities(ctl: &mut Control, caps: Vec<String>) -> Reply {
    // A new set is sent to the router (with its candidates) before its id is handed out.
    let id = ctl.registry.intern_capset(caps);
    if let Err(e) = ctl.sync_routes(false) {
        return e.refusal();
    }
    Response::Id(id).into()
}

pub(super) fn agent_type(ctl: &mut Control, agent_type: &str) -> Reply {
    let id = ctl.registry.intern_type(agent_type);
    if let Err(e) = ctl.sync_routes(false) {
        return e.refusal();
    }
    Response::Id(id).into()
}
