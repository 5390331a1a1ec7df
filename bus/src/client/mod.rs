//! The client: attach to a bus, then send and receive through typed handles.
//!
//! [`Agent::attach`] is the entry point. An [`Agent`] is a [`Sender`] and a [`Receiver`]
//! ([`Agent::split`] hands out both, so a message read in place can be answered while held),
//! plus the handlers [`Agent::poll`] runs. Destinations are resolved once into [`Peer`],
//! [`Topic`], [`Capability`] and [`AgentType`] handles; one `send` family
//! ([`Sender::send`], [`Sender::send_blocking`]) covers every route kind ([`Destination`]) and
//! body kind (`&Message`, [`Raw`], [`Typed`]). What must be undone is a guard:
//! [`Subscription`] (unsubscribes on drop), [`PendingRequest`] (abandons on drop), [`Batch`]
//! (publishes on drop), [`Loan`] (abandoned unless sent).
//!
//! The caller's thread drives everything (`send`, `recv`, `poll`): no hidden threads on the
//! data path.

mod acked;
pub(crate) mod agent;
mod batch;
mod breaker;
mod channel;
mod conn;
mod dedup;
mod delivery;
mod destination;
mod dispatch;
mod error;
mod handlers;
mod link;
mod loan;
mod options;
mod outgoing;
mod pending;
mod receiver;
mod reconnect;
mod reroute;
mod sender;
mod senders;
pub(crate) mod shared;
mod subscription;

pub use acked::{DeliveryConfig, PendingDelivery};
pub use agent::{Agent, ClientCounters};
pub use batch::Batch;
pub use breaker::{BreakerConfig, BreakerStatus, CircuitState};
pub use channel::Channel;
pub use delivery::Delivery;
pub use destination::{AgentType, Capability, Destination, Peer, Responder, Topic};
pub use error::{ClientError, HandoverError};
pub use handlers::{HandlerError, MessageFilter, MessageHandler, RequestHandler};
pub use loan::Loan;
pub use options::AttachOptions;
pub use outgoing::{BodyKind, Encoded, Outgoing, Raw, Typed};
pub use pending::PendingRequest;
pub use receiver::Receiver;
pub use reconnect::{ConnectionEvent, ConnectionHandler, ReconnectPolicy};
pub use sender::{BatchPolicy, Sender, EVENT_PREFIX};
pub use subscription::Subscription;
