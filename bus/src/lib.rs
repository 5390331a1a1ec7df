//! agentbus: the message model of the bus, and its client.
//!
//! [`client`] is how a process takes part: [`client::Agent::attach`] to a bus's agentd, then
//! send through a [`client::Sender`] to destinations resolved once ([`client::Peer`],
//! [`client::Topic`], [`client::Capability`], [`client::AgentType`]) and receive in place from a
//! [`client::Receiver`]. The rest of the crate is what both ends and agentd share:
//!
//! Every message travels as one frame in a shared-memory lane: a fixed 48-byte routing
//! [`FrameHeader`], an [`extensions`] block only when trace context, reply-to or metadata is
//! set, then the payload: raw bytes, an application's own rkyv type, or the archive of one of the
//! spec's [`Payload`]s, written by the sender straight into the lane ([`codec`]) and read by the
//! receiver where it lies.
//!
//! One file per concern: [`kinds`] (type, priority, route), [`header`], [`extensions`], [`body`] and
//! [`payload`] (the spec's message bodies), [`value`] (JSON-like values), [`message`] (owned
//! messages and their constructors), [`codec`], [`nesting`] (how deep values may nest),
//! [`ids`], [`error`].
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod body;
pub mod channel_layout;
pub mod client;
pub mod codec;
pub mod control;
pub mod error;
pub mod extensions;
pub mod header;
pub mod ids;
pub mod kinds;
pub mod lanes;
pub mod message;
pub mod nesting;
pub mod paths;
pub mod patterns;
pub mod payload;
pub mod text;
pub mod value;

pub use body::{AgentIdentifier, ArchivedPayload, Payload};
pub use codec::{
    decode, decode_unchecked, encode, encode_bytes, encode_typed, BodyRef, Envelope, Route,
    TypedPayload,
};
pub use error::{CommunicationError, DecodeError, EncodeError};
pub use extensions::{Extensions, Extras};
pub use header::{Flags, FrameHeader, TraceContext, HEADER_LEN};
pub use ids::{IdGenerator, MessageId};
pub use kinds::{MessagePriority, MessageType, ParseKindError, RouteKind};
pub use message::Message;
pub use payload::*;
pub use value::{Record, Value};

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
