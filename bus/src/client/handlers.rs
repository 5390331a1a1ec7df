//! Handlers the agent dispatches to from [`Agent::poll`]: the request handler, event
//! listeners, and subscription handlers with client-side filters.

use std::collections::HashMap;
use std::fmt;

use crate::body::Payload;
use crate::codec::Envelope;

/// Answers a request: the payload of the response, or a [`HandlerError`] sent back as an
/// `Error` response correlated to the request.
pub type RequestHandler = Box<dyn FnMut(&Envelope<'_>) -> Result<Payload, HandlerError> + Send>;

/// Why a request handler could not answer. It goes back to the requester as an `Error`
/// response of kind [`ErrorKind::HandlerError`](crate::payload::ErrorKind::HandlerError),
/// correlated to the request; the requester sees it as
/// [`CommunicationError::RequestFailed`](crate::error::CommunicationError::RequestFailed) with
/// this message as its `details`. Say what was wrong with the request and what the requester
/// can do about it: the message is all it gets.
///
/// ```
/// use agentbus::client::HandlerError;
///
/// let e = HandlerError::new("insufficient margin for AAPL: reduce the order or add collateral");
/// assert_eq!(e.to_string(), e.message());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    message: String,
}

impl HandlerError {
    /// A failure the requester is told about with `message`.
    pub fn new(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
        }
    }

    /// What the requester is told.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the requester is told, owned.
    pub fn into_message(self) -> String {
        self.message
    }
}

/// Handles a message in place.
pub type MessageHandler = Box<dyn FnMut(&Envelope<'_>) + Send>;
/// Decides, before the handler runs, whether a topic message is of interest.
pub type MessageFilter = Box<dyn Fn(&Envelope<'_>) -> bool + Send>;

/// Identifies an event listener, for [`super::Agent::remove_listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u64);

pub(crate) struct Listener {
    pub(crate) id: ListenerId,
    pub(crate) topic_id: u64,
    pub(crate) handler: MessageHandler,
}

pub(crate) struct SubscriptionHandler {
    pub(crate) subscription: u64,
    pub(crate) pattern: String,
    pub(crate) filter: Option<MessageFilter>,
    pub(crate) handler: MessageHandler,
}

/// Everything `poll` dispatches to.
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) request: Option<RequestHandler>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) subscriptions: Vec<SubscriptionHandler>,
    /// Topic names by id, learnt from agentd, to match subscription patterns.
    pub(crate) topic_names: HashMap<u64, String>,
    /// The subscription behind each event topic's listeners.
    pub(crate) event_subscriptions: HashMap<u64, u64>,
    pub(crate) next_listener: u64,
    /// Topic messages a filter turned away.
    pub(crate) filtered: u64,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("request", &self.request.is_some())
            .field("listeners", &self.listeners.len())
            .field("subscriptions", &self.subscriptions.len())
            .field("filtered", &self.filtered)
            .finish()
    }
}

impl Handlers {
    /// Whether some handler wants topic `topic_id` (named `name`, when known).
    pub(crate) fn wants_topic(&self, topic_id: u64, name: Option<&str>) -> bool {
        self.listeners.iter().any(|l| l.topic_id == topic_id)
            || name.is_some_and(|n| {
                self.subscriptions
                    .iter()
                    .any(|s| crate::control::topic_matches(&s.pattern, n))
            })
    }

    /// Runs every listener and matching subscription handler on a topic message.
    pub(crate) fn dispatch_topic(&mut self, topic_id: u64, name: Option<&str>, env: &Envelope<'_>) {
        for l in self.listeners.iter_mut().filter(|l| l.topic_id == topic_id) {
            (l.handler)(env);
        }
        let Some(name) = name else { return };
        for s in &mut self.subscriptions {
            if !crate::control::topic_matches(&s.pattern, name) {
                continue;
            }
            if s.filter.as_ref().is_some_and(|f| !f(env)) {
                self.filtered += 1;
                continue;
            }
            (s.handler)(env);
        }
    }
}
