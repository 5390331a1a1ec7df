//! The small enums every message carries in its header: type, priority, route kind.
// rkyv's derive generates public `*Resolver` types without Debug; every type written here
// derives Debug, and so do their archived forms.
#![allow(missing_debug_implementations)]

use rkyv::{Archive, Deserialize, Serialize};

/// Why a name is not one of a header enum's spec names (the `FromStr` of [`MessageType`],
/// [`MessagePriority`] and [`RouteKind`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {given:?}: expected one of {}", expected.join(", "))]
pub struct ParseKindError {
    /// The enum parsed (`MessageType`, ...).
    pub kind: &'static str,
    /// The text that was parsed, as given.
    pub given: String,
    /// The names it accepts, in wire order.
    pub expected: Vec<&'static str>,
}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $value:expr => $text:expr,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Archive, Serialize, Deserialize)]
        #[rkyv(derive(Debug, PartialEq, Eq))]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vm])* $variant = $value,)+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value for a wire byte, or `None` for an unknown one.
            pub fn from_u8(v: u8) -> Option<$name> {
                match v {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The spec's name for it (`task_request`, `critical`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseKindError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| ParseKindError {
                        kind: stringify!($name),
                        given: s.into(),
                        expected: $name::ALL.iter().map(|v| v.as_str()).collect(),
                    })
            }
        }
    };
}

wire_enum! {
    /// What a message's body is (the spec's `MessageType`): the header's first byte.
    MessageType {
        /// Asks an agent to do a task.
        TaskRequest = 0 => "task_request",
        /// A task's result or failure.
        TaskResponse = 1 => "task_response",
        /// Progress on a task.
        TaskUpdate = 2 => "task_update",
        /// An agent's status, load and metrics.
        StatusUpdate = 3 => "status_update",
        /// Asks for a resource.
        ResourceRequest = 4 => "resource_request",
        /// Grants or refuses a resource.
        ResourceResponse = 5 => "resource_response",
        /// Consensus, elections, allocation, workflows, conflicts.
        Coordination = 6 => "coordination",
        /// An event or alert.
        Notification = 7 => "notification",
        /// A liveness beat.
        Heartbeat = 8 => "heartbeat",
        /// A communication failure reported to the sender.
        Error = 9 => "error",
    }
}

wire_enum! {
    /// The spec's `MessagePriority`: lower is more urgent; the router drains CRITICAL first.
    MessagePriority {
        /// Drained before everything else.
        Critical = 0 => "critical",
        /// Drained before NORMAL and LOW.
        High = 1 => "high",
        /// The default: drained after CRITICAL and HIGH, before LOW.
        Normal = 2 => "normal",
        /// Drained last.
        Low = 3 => "low",
    }
}

// Written out: the shared `wire_enum!` derive list has no Default (not every wire enum has one).
#[allow(clippy::derivable_impls)]
impl Default for MessagePriority {
    fn default() -> Self {
        MessagePriority::Normal
    }
}

wire_enum! {
    /// How the router finds a message's destination(s).
    RouteKind {
        /// One agent: the destination id packs its slot and epoch
        /// ([`crate::control::AgentAddress::destination`]).
        Agent = 0 => "agent",
        /// Several agents, listed in the body's `to`.
        Multicast = 1 => "multicast",
        /// Every subscriber of a topic.
        Topic = 2 => "topic",
        /// The least-loaded agent having all required capabilities.
        Capability = 3 => "capability",
        /// The least-loaded active agent of a type, under capacity.
        LoadBalanced = 4 => "load_balanced",
        /// Every other attached agent: not the sender, nor an agent leaving.
        Broadcast = 5 => "broadcast",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_and_names_round_trip_and_unknown_ones_are_refused() {
        for t in MessageType::ALL {
            assert_eq!(MessageType::from_u8(*t as u8), Some(*t));
            assert_eq!(t.as_str().parse::<MessageType>().unwrap(), *t);
        }
        assert_eq!(MessageType::ALL.len(), 10);
        assert_eq!(MessageType::from_u8(10), None);
        assert_eq!(MessagePriority::from_u8(4), None);
        assert_eq!(RouteKind::from_u8(6), None);
        assert!(MessagePriority::Critical < MessagePriority::Low);
        assert!("urgent"
            .parse::<MessagePriority>()
            .unwrap_err()
            .to_string()
            .contains("critical, high, normal, low"));
    }
}
