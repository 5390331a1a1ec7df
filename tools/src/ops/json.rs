//! The control protocol's listings as JSON.

use agentbus::control::{AgentInfo, DeadLetterInfo, TopicInfo};
use agentbus::{Record, Value};
use serde_json::{json, Value as Json};

/// An agent as `agentbus agents --json` prints it.
pub fn agent(a: &AgentInfo) -> Json {
    json!({
        "slot": a.slot, "epoch": a.epoch, "agent_id": a.agent_id, "agent_type": a.agent_type,
        "instance_id": a.instance_id, "capabilities": a.capabilities,
        "status": format!("{:?}", a.status), "load": a.load, "capacity": a.capacity,
        "pid": a.pid, "uid": a.uid, "frames_sent": a.frames_sent,
        "frames_delivered": a.frames_delivered, "frames_dead": a.frames_dead,
        "copies_received": a.copies_received, "copies_delivered": a.copies_delivered,
        "copies_dead": a.copies_dead, "destinations": a.destinations, "throttled": a.throttled,
        "copies_lost": a.copies_lost, "wakes_ignored": a.wakes_ignored,
    })
}

/// A topic as `agentbus topics --json` prints it.
pub fn topic(t: &TopicInfo) -> Json {
    json!({
        "id": t.id, "name": t.name, "subscribers": t.subscribers,
        "back_pressure": t.config.back_pressure.name(),
        "max_message_size": t.config.max_message_size, "history": t.config.history,
        "publishers": t.config.publishers.to_string(),
        "subscribers_allowed": t.config.subscribers.to_string(),
    })
}

/// A dead letter as `agentbus dlq list --json` prints it.
pub fn letter(l: &DeadLetterInfo) -> Json {
    json!({
        "sequence": l.sequence, "message_id": l.message_id,
        "message_type": l.message_type.to_string(), "route": l.route.to_string(),
        "source_slot": l.source_slot, "destination_slot": l.destination_slot,
        "reason": l.reason, "at_ns": l.at_ns, "frame_len": l.frame_len, "retries": l.retries,
    })
}

/// A value of a message's body as JSON.
pub fn value(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!(f),
        Value::String(s) => json!(s),
        Value::Bytes(b) => json!(String::from_utf8_lossy(b)),
        Value::List(l) => Json::Array(l.iter().map(value).collect()),
        Value::Map(m) => record(m),
    }
}

/// A record as a JSON object.
pub fn record(r: &Record) -> Json {
    Json::Object(r.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}
