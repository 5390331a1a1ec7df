//! What a send can carry: a spec [`Message`], raw bytes ([`Raw`]) or an application's typed
//! value ([`Typed`]); each is written straight into the lane.

use agentbus_ipc::ring::Producer;

use crate::body::Payload;
use crate::codec::{
    bare_header, encode_bytes_in, encode_in, encode_payload_in, encode_typed_in, header_for, Room,
    Route, TypedPayload,
};
use crate::error::EncodeError;
use crate::extensions::Extras;
use crate::header::FrameHeader;
use crate::kinds::MessagePriority;
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
