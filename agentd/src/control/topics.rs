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
    let before = ctl.registry.topics.len();
    let id = ctl.registry.intern_topic(name);
    if ctl.registry.topics.len() != before {
        // A new topic may match existing wildcard subscriptions.
        ctl.sync_routes();
    }
    Response::Id(id).into()
}

pub(super) fn list(ctl: &mut Control) -> Reply {
    let routes = ctl.registry.topic_routes();
    let topics = ctl
        .registry
        .topic_names()
        .map(|(id, name)| TopicInfo {
            id,
            name: name.into(),
            subscribers: routes.get(id as usize).map_or(0, |(_, s)| s.len() as u32),
        })
        .collect();
    Response::Topics(topics).into()
}
