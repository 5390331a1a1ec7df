//! What a send can carry: a spec [`Message`], raw bytes ([`Raw`]) or an application's typed
//! value ([`Typed`]); each is written straight into the lane.

use agentbus_ipc::ring::Producer;

use crate::body::Payload;
use crate::codec::{
    bare_header, encode_body_in, encode_bytes_in, encode_in, encode_payload_in, encode_typed_in,
    header_for, Room, Route, TypedPayload,
};
use crate::error::EncodeError;
use crate::extensions::Extras;
use crate::header::{Flags, FrameHeader, TraceContext};
use crate::kinds::{MessagePriority, MessageType};
use crate::message::Message;

/// Something [`super::Sender::send`] (and a [`super::Channel`]) can send: a `&Message`, a spec
/// [`Payload`] alone (owned or borrowed: sent at normal priority, typed by its kind, without
/// trace, reply-to or metadata), [`Raw`] bytes or a [`Typed`] value. Sealed: these are the
/// wire's body kinds.
pub trait Outgoing: sealed::Encode {}

/// Raw application bytes, sent as they are at normal priority and labelled
/// [`crate::MessageType::Notification`]; the receiver reads them in place with
/// [`super::Delivery::raw`] (or [`super::Delivery::plain`]). Allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a [u8]);

/// An application's own rkyv type, serialized in place without allocating, at normal priority
/// and labelled [`crate::MessageType::Notification`]; the receiver reads it with
/// [`super::Delivery::typed`].
#[derive(Debug)]
pub struct Typed<'a, T>(pub &'a T);

/// A body already encoded elsewhere, sent as it is: what a bridge forwards between buses (the
/// bytes it got from another host, with the header fields that travelled beside them). The
/// receiver reads and validates it as any message of its kind.
#[derive(Debug, Clone, Copy)]
pub struct Encoded<'a> {
    /// What the body is.
    pub kind: BodyKind,
    /// The body's bytes.
    pub body: &'a [u8],
    /// The message's type.
    pub message_type: MessageType,
    /// Its priority.
    pub priority: MessagePriority,
    /// Milliseconds it may wait for delivery (0: the bus default).
    pub ttl_ms: u32,
    /// Its trace context (all zeros: not traced).
    pub trace: TraceContext,
}

/// What an [`Encoded`] body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// The rkyv archive of a spec payload.
    Spec,
    /// Raw application bytes.
    Raw,
    /// The rkyv archive of an application's own type.
    Typed,
}

impl BodyKind {
    /// The kind of a frame's body, from its flags.
    pub fn of(flags: Flags) -> BodyKind {
        if flags.contains(Flags::RAW) {
            BodyKind::Raw
        } else if flags.contains(Flags::TYPED) {
            BodyKind::Typed
        } else {
            BodyKind::Spec
        }
    }

    /// Its name on the wire of a bridge (`spec`, `raw`, `typed`).
    pub fn name(self) -> &'static str {
        match self {
            BodyKind::Spec => "spec",
            BodyKind::Raw => "raw",
            BodyKind::Typed => "typed",
        }
    }

    /// The kind named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<BodyKind> {
        [BodyKind::Spec, BodyKind::Raw, BodyKind::Typed]
            .into_iter()
            .find(|k| k.name() == name)
    }

    fn flags(self) -> Flags {
        match self {
            BodyKind::Spec => Flags::empty(),
            BodyKind::Raw => Flags::RAW,
            BodyKind::Typed => Flags::TYPED,
        }
    }
}

impl<T> Clone for Typed<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Typed<'_, T> {}

pub(crate) mod sealed {
    use super::*;

    /// How a sendable thing becomes a frame.
    pub trait Encode {
        /// The header it is sent with on `route` (no id or timestamp yet unless it has its
        /// own).
        fn header(&self, route: Route) -> FrameHeader;
        /// Writes the frame for `header` into `lane`, getting room as `room` says.
        fn write(
            &self,
            lane: &mut Producer,
            header: &FrameHeader,
            room: &impl Room,
        ) -> Result<(), EncodeError>;
    }
}

impl sealed::Encode for &Message {
    fn header(&self, route: Route) -> FrameHeader {
        header_for(self, route, 0)
    }

    fn write(
        &self,
        lane: &mut Producer,
        header: &FrameHeader,
        room: &impl Room,
    ) -> Result<(), EncodeError> {
        encode_in(lane, header, self, room)
    }
}
impl Outgoing for &Message {}

impl sealed::Encode for &Payload {
    fn header(&self, route: Route) -> FrameHeader {
        let mut h = bare_header(route, MessagePriority::Normal);
        if let Some(t) = self.message_type() {
            h.message_type = t;
        }
        h
    }

    fn write(
        &self,
        lane: &mut Producer,
        header: &FrameHeader,
        room: &impl Room,
    ) -> Result<(), EncodeError> {
        encode_payload_in(lane, header, self, room)
    }
}
impl Outgoing for &Payload {}

impl sealed::Encode for Payload {
    fn header(&self, route: Route) -> FrameHeader {
        (&self).header(route)
    }

    fn write(
        &self,
        lane: &mut Producer,
        header: &FrameHeader,
        room: &impl Room,
    ) -> Result<(), EncodeError> {
        (&self).write(lane, header, room)
    }
}
impl Outgoing for Payload {}

impl sealed::Encode for Raw<'_> {
    fn header(&self, route: Route) -> FrameHeader {
        bare_header(route, MessagePriority::Normal)
    }

    fn write(
        &self,
        lane: &mut Producer,
        header: &FrameHeader,
        room: &impl Room,
    ) -> Result<(), EncodeError> {
        encode_bytes_in(lane, header, &Extras::NONE, self.0, room)
    }
}
impl Outgoing for Raw<'_> {}

impl<T: TypedPayload> sealed::Encode for Typed<'_, T> {
    fn header(&self, route: Route) -> FrameHeader {
        bare_header(route, MessagePriority::Normal)
    }

    fn write(
        &self,
        lane: &mut Producer,
        header: &FrameHeader,
        room: &impl Room,
    ) -> Result<(), EncodeError> {
        encode_typed_in(lane, header, &Extras::NONE, self.0, room)
    }
}
impl<T: TypedPayload> Outgoing for Typed<'_, T> {}

impl sealed::Encode for Encoded<'_> {
    fn header(&self, route: Route) -> FrameHeader {
        let mut h = bare_header(route, self.priority);
        h.message_type = self.message_type;
        h.ttl_ms = self.ttl_ms;
        h
    }

    fn write(
        &self,
        lane: &mut Producer,
        header: &FrameHeader,
        room: &impl Room,
    ) -> Result<(), EncodeError> {
        let extras = Extras {
            trace: self.trace,
            ..Extras::NONE
        };
        encode_body_in(lane, header, &extras, self.kind.flags(), self.body, room)
    }
}
impl Outgoing for Encoded<'_> {}
