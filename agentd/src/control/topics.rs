//! `CreateTopic` and `ListTopics`.

use agentbus::control::{Refusal, Response, TopicConfig, TopicInfo, TopicRequest};

use crate::router::Command;

use super::{refuse, Control, Reply};

pub(super) fn create(ctl: &mut Control, request: TopicRequest) -> Reply {
    let name = request.name.as_str();
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
    if let Some(id) = ctl.registry.topic_id(name) {
        let own = ctl.registry.topic_config(id);
        return match request.config {
            Some(asked) if asked != own => refuse(
                Refusal::BadRequest,
                format!(
                    "topic {name:?} exists with {}; it cannot become {}: a topic keeps one configuration for its life (use another name, or ask for it as it is)",
                    describe(own),
                    describe(asked)
                ),
            ),
            // An existing topic changes nothing: answered at once.
            _ => Response::Id(id).into(),
        };
    }
    // A new topic is configured and sent to the router (with the subscribers whose patterns
    // match it) before its id is handed out.
    let config = request
        .config
        .unwrap_or_else(|| ctl.config.topic_config_for(name));
    let id = ctl.registry.intern_topic_as(name, config);
    let queued = config != TopicConfig::default();
    if queued {
        if let Err(e) = ctl.push(Command::ConfigureTopic { topic: id, config }) {
            return e.why.refusal();
        }
    }
    if let Err(e) = ctl.sync_routes(queued) {
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
            config: ctl.registry.topic_config(id),
        })
        .collect();
    Response::Topics(topics).into()
}

/// A topic configuration as refusals name it.
fn describe(config: TopicConfig) -> String {
    let size = match config.max_message_size {
        0 => "no size limit".to_string(),
        n => format!("messages up to {n} bytes"),
    };
    format!("back-pressure {}, {size}", config.back_pressure.name())
}
