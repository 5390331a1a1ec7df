//! agentbus: the message model and (soon) the client of the bus.
//!
//! Every message travels as one frame in a shared-memory lane: a fixed routing
//! [`FrameHeader`] followed by an rkyv archive of its [`Body`], serialized by the sender straight
//! into the lane ([`codec::encode`]) and read by the receiver where it lies ([`codec::decode`]).
//!
//! One file per concern: [`kinds`] (type, priority, route), [`header`], [`body`] and
//! [`payload`] (the spec's message bodies), [`value`] (JSON-like values), [`message`] (owned
//! messages and their constructors), [`codec`], [`ids`], [`error`].
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod body;
pub mod channel_layout;
pub mod client;
pub mod codec;
pub mod control;
pub mod error;
pub mod header;
pub mod ids;
pub mod kinds;
pub mod lanes;
pub mod message;
pub mod paths;
pub mod payload;
pub mod value;

pub use body::{AgentIdentifier, ArchivedBody, ArchivedPayload, Body, Payload};
pub use codec::{decode, decode_unchecked, encode, BodyRef, Envelope, Route};
pub use error::{CommunicationError, DecodeError, EncodeError};
pub use header::{Flags, FrameHeader, TraceContext, HEADER_LEN};
pub use ids::{IdGenerator, MessageId};
pub use kinds::{MessagePriority, MessageType, RouteKind};
pub use message::Message;
pub use payload::*;
pub use value::{Record, Value};

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
