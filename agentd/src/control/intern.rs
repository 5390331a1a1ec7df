//! `InternCapabilities` and `InternType`: ids for capability and load-balanced routes.

use agentbus::control::Response;

use super::{Control, Reply};

pub(super) fn capabilities(ctl: &mut Control, caps: Vec<String>) -> Reply {
    let id = ctl.registry.intern_capset(caps);
    ctl.sync_routes();
    Response::Id(id).into()
}

pub(super) fn agent_type(ctl: &mut Control, agent_type: &str) -> Reply {
    let id = ctl.registry.intern_type(agent_type);
    ctl.sync_routes();
    Response::Id(id).into()
}
