//! `CreateTopic` and `ListTopics`.

use agentbus::control::{Refusal, Response, TopicInfo};

use super::{refuse, Control, Reply};

pub(super) fn create(ctl: &mut Control, name: &str) -> Reply {
    if name.is_empty()
        || name.len() > 256
        || name
            .split('.')
            .any(|s| s.is_empty() || s == "*" || s == ">")
    {
        return refuse(
            Refusal::BadRequest,
            format!("topic {name:?} is not valid: use dot-separated, non-empty segments without wildcards"),
        );
    }
    // A new topic is sent to the router (with the subscribers whose patterns match it) before
    // its id is handed out; an existing one changes nothing and is answered at once.
    let id = ctl.registry.intern_topic(name);
    if let Err(e) = ctl.sync_routes(false) {
        return e.refusal();
    }
    Response::Id(id).into()
}

pub(super) fn list(ctl: &mut Control) -> Reply {
    let topics = ctl
        .registry
        .topic_names()
        .map(|(id, name)| TopicInfo {
            id,
            name: name.into(),
            subscribers: ctl.registry.topic_subscribers(id) as u32,
        })
        .collect();
    Response::Topics(topics).into()
}
