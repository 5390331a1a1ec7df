//! Chain of responsibility: a message offered to handlers in order until one takes it.
//!
//! A step is local (two closures in this agent: whether it can handle the message, and how)
//! or remote (an agent named by id, capability or type, asked with a request). A local step
//! that says it cannot, a remote one that answers [`declined`], times out or cannot be reached
//! passes the message on to the next step. The first step that handles it answers for the
//! chain; a handler that fails (a local `Err`, a remote error answer) ends the chain with that
//! failure: it took the message. When every step passes, the chain fails with `NoHandler`,
//! naming the message type and why each step passed.

use std::time::Duration;

use crate::body::Payload;
use crate::client::{Agent, AgentType, Capability, HandlerError, Peer, Responder};
use crate::error::CommunicationError;
use crate::kinds::MessageType;
use crate::message::Message;
use crate::payload::Notification;

/// The event of the answer by which a remote step declines ([`declined`]).
const DECLINED: &str = "chain.declined";

/// Whom a remote step asks.
#[derive(Debug, Clone)]
pub enum Remote {
    /// One agent.
    Peer(Peer),
    /// The least-loaded live agent having these capabilities.
    Capability(Capability),
    /// The least-loaded agent of this type.
    Type(AgentType),
}

impl Remote {
    fn responder(&self) -> Responder<'_> {
        match self {
            Remote::Peer(p) => Responder::Peer(p),
            Remote::Capability(c) => Responder::Capability(c),
            Remote::Type(t) => Responder::Type(t),
        }
    }

    fn name(&self) -> String {
        match self {
            Remote::Peer(p) => p.name().into(),
            Remote::Capability(c) => format!("capabilities {}", c.names().join(",")),
            Remote::Type(t) => format!("type {}", t.name()),
        }
    }
}

impl From<Peer> for Remote {
    fn from(p: Peer) -> Remote {
        Remote::Peer(p)
    }
}

impl From<Capability> for Remote {
    fn from(c: Capability) -> Remote {
        Remote::Capability(c)
    }
}

impl From<AgentType> for Remote {
    fn from(t: AgentType) -> Remote {
        Remote::Type(t)
    }
}

/// Whether a local step takes a message.
pub type CanHandle = Box<dyn FnMut(&Message) -> bool + Send>;
/// How a local step handles a message it took.
pub type Handle = Box<dyn FnMut(&Message) -> Result<Payload, HandlerError> + Send>;

enum Step {
    Local {
        name: String,
        can: CanHandle,
        handle: Handle,
    },
    Remote {
        to: Remote,
        timeout: Duration,
    },
}

/// An ordered chain of handlers.
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions, HandlerError};
/// use agentbus::patterns::chain::{Chain, ChainError};
/// use agentbus::{Message, MessageType, Payload};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-chain-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut desk = Agent::attach(options("desk", "ops"))?;
/// // Error escalation: small errors are fixed here, the rest escalate (and fail if nobody takes them).
/// let mut escalation = Chain::new().local(
///     "auto-fix",
///     |m| matches!(&m.payload, Payload::Raw(b) if b.len() < 8),
///     |_| Ok(Payload::Raw(b"fixed".to_vec())),
/// );
/// let small = Message::raw(desk.identity(), MessageType::Error, b"oops".to_vec());
/// assert_eq!(escalation.process(&mut desk, &small)?.handled_by, "auto-fix");
/// let big = Message::raw(desk.identity(), MessageType::Error, b"margin call".to_vec());
/// assert!(matches!(escalation.process(&mut desk, &big), Err(ChainError::NoHandler { .. })));
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Chain {
    steps: Vec<Step>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Local { name, .. } => format!("local {name}"),
                Step::Remote { to, timeout } => format!("remote {} ({timeout:?})", to.name()),
            })
            .collect();
        f.debug_struct("Chain").field("steps", &names).finish()
    }
}

/// Who handled a message, with the answer, and who passed before.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainOutcome {
    /// The step that took it (a local step's name; a remote step's agent id, `capabilities
    /// a,b` or `type t`).
    pub handled_by: String,
    /// Its answer.
    pub answer: Message,
    /// The steps before it, each with why it passed.
    pub passed: Vec<(String, String)>,
}

/// Why a chain ended without an answer.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Every step passed.
    #[error("no handler found for message type {message_type}: {}", describe(.passed))]
    NoHandler {
        /// The message's type.
        message_type: MessageType,
        /// Each step, with why it passed.
        passed: Vec<(String, String)>,
    },
    /// The step that took the message failed handling it.
    #[error("{by} took the message and failed: {reason}")]
    Failed {
        /// The step.
        by: String,
        /// Its failure.
        reason: String,
        /// The steps before it, each with why it passed.
        passed: Vec<(String, String)>,
    },
    /// This agent's own link failed.
    #[error(transparent)]
    Communication(#[from] CommunicationError),
}

fn describe(passed: &[(String, String)]) -> String {
    if passed.is_empty() {
        return "the chain is empty".into();
    }
    passed
        .iter()
        .map(|(s, why)| format!("{s} {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Chain {
    /// An empty chain.
    pub fn new() -> Chain {
        Chain::default()
    }

    /// Adds a local step: `can` says whether it takes a message, `handle` answers it.
    pub fn local(
        mut self,
        name: &str,
        can: impl FnMut(&Message) -> bool + Send + 'static,
        handle: impl FnMut(&Message) -> Result<Payload, HandlerError> + Send + 'static,
    ) -> Chain {
        self.steps.push(Step::Local {
            name: name.into(),
            can: Box::new(can),
            handle: Box::new(handle),
        });
        self
    }

    /// Adds a remote step: the message is sent to `to` as a request, with `timeout` to answer.
    pub fn remote(mut self, to: impl Into<Remote>, timeout: Duration) -> Chain {
        self.steps.push(Step::Remote {
            to: to.into(),
            timeout,
        });
        self
    }

    /// Offers `message` to each step in order, from `agent`, until one takes it.
    pub fn process(
        &mut self,
        agent: &mut Agent,
        message: &Message,
    ) -> Result<ChainOutcome, ChainError> {
        let mut passed = Vec::new();
        for step in &mut self.steps {
            match step {
                Step::Local { name, can, handle } => {
                    if !can(message) {
                        passed.push((name.clone(), "declined".into()));
                        continue;
                    }
                    return match handle(message) {
                        Ok(payload) => Ok(ChainOutcome {
                            handled_by: name.clone(),
                            answer: Message::new(
                                payload.message_type().unwrap_or(MessageType::TaskResponse),
                                agent.identity(),
                                payload,
                            ),
                            passed,
                        }),
                        Err(e) => Err(ChainError::Failed {
                            by: name.clone(),
                            reason: e.into_message(),
                            passed,
                        }),
                    };
                }
                Step::Remote { to, timeout } => {
                    let name = to.name();
                    let answer = agent.request(to.responder(), message, *timeout);
                    match answer {
                        Ok(m) if is_declined(&m) => passed.push((name, "declined".into())),
                        Ok(m) => {
                            return Ok(ChainOutcome {
                                handled_by: name,
                                answer: m,
                                passed,
                            })
                        }
                        Err(CommunicationError::RequestFailed { details, .. }) => {
                            return Err(ChainError::Failed {
                                by: name,
                                reason: details,
                                passed,
                            })
                        }
                        Err(e @ CommunicationError::Disconnected { .. }) => return Err(e.into()),
                        Err(e) => passed.push((name, format!("passed it on: {e}"))),
                    }
                }
            }
        }
        Err(ChainError::NoHandler {
            message_type: message.message_type,
            passed,
        })
    }
}

/// The answer by which a remote step declines a message (what its request handler returns
/// when it cannot handle it): the chain passes the message on.
pub fn declined() -> Payload {
    Payload::Notification(Notification {
        event: DECLINED.into(),
        data: Default::default(),
    })
}

fn is_declined(m: &Message) -> bool {
    matches!(&m.payload, Payload::Notification(n) if n.event == DECLINED)
}
