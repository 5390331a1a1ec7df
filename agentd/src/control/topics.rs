//! `CreateTopic` and `ListTopics`.

use agentbus::control::{
    Access, Refusal, Response, TopicConfig, TopicGrant, TopicInfo, TopicRequest, MAX_HISTORY,
};
use mio::Token;

use crate::router::{Command, TopicPolicy};

use super::{refuse, Control, Reply};

pub(super) fn create(ctl: &mut Control, token: Token, request: TopicRequest) -> Reply {
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
    if request
        .config
        .as_ref()
        .is_some_and(|c| c.history > MAX_HISTORY)
    {
        return refuse(
            Refusal::BadRequest,
            format!("a topic keeps at most {MAX_HISTORY} messages of history: ask for fewer"),
        );
    }
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before creating topics");
    };
    if let Some(id) = ctl.registry.topic_id(name) {
        let own = ctl.registry.topic_config(id).cloned().unwrap_or_default();
        return match request.config {
            Some(asked) if asked != own => refuse(
                Refusal::BadRequest,
                format!(
                    "topic {name:?} exists with {}; it cannot become {}: a topic keeps one configuration for its life (use another name, or ask for it as it is)",
                    describe(&own),
                    describe(&asked)
                ),
            ),
            // An existing topic changes nothing: answered at once.
            _ => grant(ctl, slot, id),
        };
    }
    // agentd's rule for the name sets its access lists: a client may not loosen them.
    let ruled = ctl.config.topic_config_for(name);
    let config = match request.config {
        Some(asked) if restricts(&ruled) && !same_access(&asked, &ruled) => {
            return refuse(
                Refusal::Unauthorized,
                format!(
                    "agentd's configuration sets who may use topic {name:?} (publishers: {}; subscribers: {}): ask for it with those access lists, or without a configuration",
                    ruled.publishers, ruled.subscribers
                ),
            )
        }
        Some(asked) => asked,
        None => ruled,
    };
    // A new topic is configured and sent to the router (with the subscribers whose patterns
    // match it, and who may publish) before its id is handed out.
    let policy = TopicPolicy {
        back_pressure: config.back_pressure,
        max_frame: config.max_message_size,
        history: config.history,
        history_bytes: ctl.config.lane_capacity,
    };
    let id = ctl.registry.intern_topic_as(name, config);
    let queued = policy != TopicPolicy::default();
    if queued {
        if let Err(e) = ctl.push(Command::ConfigureTopic { topic: id, policy }) {
            return e.why.refusal();
        }
    }
    if let Err(e) = ctl.sync_routes(queued) {
        return e.refusal();
    }
    grant(ctl, slot, id)
}

/// The answer to `CreateTopic`: the topic's id and whether the agent in `slot` may publish.
fn grant(ctl: &Control, slot: u32, id: u64) -> Reply {
    Response::Topic(TopicGrant {
        id,
        may_publish: ctl.registry.may_publish(slot, id),
    })
    .into()
}

/// Whether `config` restricts who may publish or subscribe.
fn restricts(config: &TopicConfig) -> bool {
    config.publishers != Access::Anyone || config.subscribers != Access::Anyone
}

/// Whether `a` and `b` let the same agents publish and subscribe.
fn same_access(a: &TopicConfig, b: &TopicConfig) -> bool {
    a.publishers == b.publishers && a.subscribers == b.subscribers
}

pub(super) fn list(ctl: &mut Control) -> Reply {
    let topics = ctl
        .registry
        .topic_names()
        .map(|(id, name)| TopicInfo {
            id,
            name: name.into(),
            subscribers: ctl.registry.topic_subscribers(id) as u32,
            config: ctl.registry.topic_config(id).cloned().unwrap_or_default(),
        })
        .collect();
    Response::Topics(topics).into()
}

/// A topic configuration as refusals name it.
fn describe(config: &TopicConfig) -> String {
    let size = match config.max_message_size {
        0 => "no size limit".to_string(),
        n => format!("messages up to {n} bytes"),
    };
    format!(
        "back-pressure {}, {size}, history {}, publishers {}, subscribers {}",
        config.back_pressure.name(),
        config.history,
        config.publishers,
        config.subscribers
    )
}
