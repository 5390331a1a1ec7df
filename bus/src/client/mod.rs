//! The client: attach to a bus, send, publish, subscribe, receive.
//!
//! The caller's thread drives everything (`send`, `recv`, `poll`): no hidden threads on the
//! data path. See [`Agent`].

mod agent;
mod channel;
mod conn;
mod delivery;
mod error;
mod handlers;
mod link;
mod loan;
mod options;
mod requests;
mod senders;

pub use agent::Agent;
pub use channel::Channel;
pub use delivery::Delivery;
pub use error::{ClientError, HandoverError};
pub use handlers::{HandlerError, ListenerId, MessageFilter, MessageHandler, RequestHandler};
pub use loan::Loan;
pub use options::AttachOptions;
pub use requests::{Destination, EVENT_PREFIX};
