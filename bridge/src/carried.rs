//! What travels beside a message's body on NATS: its header fields as NATS headers.
//!
//! | header | what |
//! | --- | --- |
//! | `Agentbus-Origin` | the exporting bus's id (loop prevention) |
//! | `Agentbus-From` | the sending agent's id |
//! | `Agentbus-Body` | `spec`, `raw` or `typed`: what the payload bytes are |
//! | `Agentbus-Type` | the message type (`task_request`, ...) |
//! | `Agentbus-Priority` | `critical`, `high`, `normal`, `low` |
//! | `Agentbus-Ttl-Ms` | its ttl, when it has one |
//! | `Agentbus-Id`, `Agentbus-Correlation` | its id and correlation id on its own bus (hex) |
//! | `traceparent` | its trace context, W3C form `00-<trace>-<span>-01` |

use agentbus::client::BodyKind;
use agentbus::text::printable;
use agentbus::{FrameHeader, MessagePriority, MessageType, TraceContext};
use async_nats::HeaderMap;

/// The exporting bus's id.
pub const ORIGIN: &str = "Agentbus-Origin";
/// The sending agent's id.
pub const FROM: &str = "Agentbus-From";
/// The body's kind.
pub const BODY: &str = "Agentbus-Body";
/// The message type.
pub const TYPE: &str = "Agentbus-Type";
/// The priority.
pub const PRIORITY: &str = "Agentbus-Priority";
/// The ttl in milliseconds.
pub const TTL_MS: &str = "Agentbus-Ttl-Ms";
/// The message id on its own bus.
pub const ID: &str = "Agentbus-Id";
/// The correlation id on its own bus.
pub const CORRELATION: &str = "Agentbus-Correlation";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A message's header fields as they travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The exporting bus's id.
    pub origin: String,
    /// The sending agent's id.
    pub from: String,
    /// What the body bytes are.
    pub kind: BodyKind,
    /// The message type.
    pub message_type: MessageType,
    /// The priority.
    pub priority: MessagePriority,
    /// The ttl (0: none).
    pub ttl_ms: u32,
    /// Its id on its own bus.
    pub id: u64,
    /// Its correlation id on its own bus.
    pub correlation: u64,
    /// Its trace context.
    pub trace: TraceContext,
}

/// Why NATS headers are not an agentbus message's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "NATS message without agentbus headers: {0} (sent by something other than an agentbus bridge?)"
)]
pub struct NotCarried(pub String);

impl Carried {
    /// The fields of a received frame's `header`, sent by `from` through bus `origin`.
    pub fn of(header: &FrameHeader, trace: TraceContext, origin: &str, from: &str) -> Carried {
        Carried {
            origin: origin.into(),
            from: from.into(),
            kind: BodyKind::of(header.flags),
            message_type: header.message_type,
            priority: header.priority,
            ttl_ms: header.ttl_ms,
            id: header.message_id.0,
            correlation: header.correlation_id.0,
            trace,
        }
    }

    /// As NATS headers.
    pub fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, printable(&self.origin).as_ref());
        h.insert(FROM, printable(&self.from).as_ref());
        h.insert(BODY, self.kind.name());
        h.insert(TYPE, self.message_type.as_str());
        h.insert(PRIORITY, self.priority.as_str());
        if self.ttl_ms > 0 {
            h.insert(TTL_MS, self.ttl_ms.to_string().as_str());
        }
        h.insert(ID, format!("{:016x}", self.id).as_str());
        if self.correlation != 0 {
            h.insert(CORRELATION, format!("{:016x}", self.correlation).as_str());
        }
        if !self.trace.is_empty() {
            h.insert(TRACEPARENT, self.trace.traceparent().as_str());
        }
        h
    }

    /// From NATS headers (those [`Carried::to_headers`] writes).
    pub fn from_headers(h: Option<&HeaderMap>) -> Result<Carried, NotCarried> {
        let h = h.ok_or_else(|| NotCarried("no headers".into()))?;
        let get = |name: &str| h.get(name).map(|v| v.as_str());
        let need = |name: &'static str| get(name).ok_or_else(|| NotCarried(format!("no {name}")));
        let bad = |name: &str, v: &str| NotCarried(format!("{name} {v:?}"));
        let kind_name = need(BODY)?;
        let type_name = need(TYPE)?;
        let priority_name = need(PRIORITY)?;
        let hex = |name: &str| -> Result<u64, NotCarried> {
            get(name).map_or(Ok(0), |v| {
                u64::from_str_radix(v, 16).map_err(|_| bad(name, v))
            })
        };
        Ok(Carried {
            origin: need(ORIGIN)?.to_string(),
            from: get(FROM).unwrap_or("").to_string(),
            kind: BodyKind::from_name(kind_name).ok_or_else(|| bad(BODY, kind_name))?,
            message_type: type_name.parse().map_err(|_| bad(TYPE, type_name))?,
            priority: priority_name
                .parse()
                .map_err(|_| bad(PRIORITY, priority_name))?,
            ttl_ms: get(TTL_MS).map_or(Ok(0), |v| v.parse().map_err(|_| bad(TTL_MS, v)))?,
            id: hex(ID)?,
            correlation: hex(CORRELATION)?,
            trace: get(TRACEPARENT)
                .and_then(TraceContext::from_traceparent)
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_survive_the_trip_through_nats_headers() {
        let c = Carried {
            origin: "host-a/desk".into(),
            from: "feed".into(),
            kind: BodyKind::Raw,
            message_type: MessageType::TaskRequest,
            priority: MessagePriority::High,
            ttl_ms: 250,
            id: 0xabc,
            correlation: 7,
            trace: TraceContext {
                trace_id: [0x4b; 16],
                span_id: [0x11; 8],
            },
        };
        let h = c.to_headers();
        assert_eq!(Carried::from_headers(Some(&h)).unwrap(), c);
        assert!(Carried::from_headers(None).is_err());
        let mut missing = HeaderMap::new();
        missing.insert(ORIGIN, "x");
        let e = Carried::from_headers(Some(&missing)).unwrap_err();
        assert!(e.to_string().contains(BODY), "{e}");
    }

    #[test]
    fn an_agent_id_cannot_forge_a_header() {
        let c = Carried {
            origin: "a".into(),
            from: "evil\r\nAgentbus-Origin: b".into(),
            kind: BodyKind::Raw,
            message_type: MessageType::Notification,
            priority: MessagePriority::Normal,
            ttl_ms: 0,
            id: 1,
            correlation: 0,
            trace: TraceContext::default(),
        };
        let back = Carried::from_headers(Some(&c.to_headers())).unwrap();
        assert_eq!(back.origin, "a");
        assert_eq!(back.from, "evil??Agentbus-Origin: b");
    }
}
