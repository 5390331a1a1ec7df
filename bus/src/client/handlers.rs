//! Handlers the agent dispatches to from [`super::Agent::poll`]: the request handler, and
//! subscription handlers (event listeners among them) with client-side filters.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::Sender;
use crate::body::Payload;
use crate::codec::Envelope;

/// Answers a request: the payload of the response, or a [`HandlerError`] sent back as an
/// `Error` response correlated to the request. The [`Sender`] is the agent's, for anything
/// else the answer needs sent (an alert, a hedge).
pub type RequestHandler =
    Box<dyn FnMut(&Envelope<'_>, &mut Sender) -> Result<Payload, HandlerError> + Send>;

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

/// Handles a message in place; the [`Sender`] is the agent's, to answer or pass it on.
pub type MessageHandler = Box<dyn FnMut(&Envelope<'_>, &mut Sender) + Send>;
/// Decides, before the handler runs, whether a topic message is of interest.
pub type MessageFilter = Box<dyn Fn(&Envelope<'_>) -> bool + Send>;

/// A subscription's handler, called while its [`super::Subscription`] lives.
pub(crate) struct SubscriptionHandler {
    pub(crate) live: Arc<AtomicBool>,
    pub(crate) pattern: Arc<str>,
    pub(crate) filter: Option<MessageFilter>,
    pub(crate) handler: MessageHandler,
}

impl SubscriptionHandler {
    fn live(&self) -> bool {
        // Acquire: pairs with the Release store of the subscription's drop.
        self.live.load(Ordering::Acquire)
    }
}

/// Everything `poll` dispatches to.
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) request: Option<RequestHandler>,
    /// Direct messages (not requests, replies or topic messages): the spec's `receiveMessage`.
    pub(crate) message: Option<MessageHandler>,
    pub(crate) subscriptions: Vec<SubscriptionHandler>,
    /// Topic names by id, learnt from agentd, to match subscription patterns.
    pub(crate) topic_names: HashMap<u64, Arc<str>>,
    /// Topic messages a filter turned away.
    pub(crate) filtered: u64,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handlers")
            .field("request", &self.request.is_some())
            .field("message", &self.message.is_some())
            .field("subscriptions", &self.subscriptions.len())
            .field("filtered", &self.filtered)
            .finish()
    }
}

impl Handlers {
    /// Whether some live subscription handler wants the topic named `name`; forgets the
    /// handlers of dropped subscriptions.
    pub(crate) fn wants_topic(&mut self, name: &str) -> bool {
        self.subscriptions.retain(SubscriptionHandler::live);
        self.subscriptions
            .iter()
            .any(|s| crate::control::topic_matches(&s.pattern, name))
    }

    /// Runs every matching live subscription handler on a topic message (after its filter).
    pub(crate) fn dispatch_topic(&mut self, name: &str, env: &Envelope<'_>, tx: &mut Sender) {
        for s in &mut self.subscriptions {
            if !s.live() || !crate::control::topic_matches(&s.pattern, name) {
                continue;
            }
            if s.filter.as_ref().is_some_and(|f| !f(env)) {
                self.filtered += 1;
                continue;
            }
            (s.handler)(env, tx);
        }
    }
}
