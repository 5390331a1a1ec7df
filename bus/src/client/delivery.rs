//! A received message: read in place in the agent's inbound lane, or (when it arrived while
//! the agent waited for a response) from a copy of its frame.

use agentbus_ipc::ring::ReadGuard;
use rkyv::util::AlignedVec;

use crate::body::{AgentIdentifier, ArchivedPayload};
use crate::codec::{view, BodyRef, Envelope};
use crate::header::FrameHeader;
use crate::message::Message;

/// Where a delivery's bytes are.
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// In the inbound lane; dropping the guard hands the room back to the router.
    Lane(ReadGuard<'a>),
    /// Copied off the lane (16-byte aligned, as rkyv needs).
    Copied(AlignedVec<16>),
    /// Copied into a buffer the receiver reuses (channels).
    Scratch(&'a [u8]),
}

impl Frame<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Frame::Lane(g) => g.bytes(),
            Frame::Copied(v) => v,
            Frame::Scratch(b) => b,
        }
    }
}

/// Copies a frame's bytes, aligned for reading in place later.
pub(crate) fn copy_frame(bytes: &[u8]) -> AlignedVec<16> {
    let mut v = AlignedVec::<16>::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

/// A message, validated when received. Reading it copies nothing; dropping it hands its room
/// back to the router.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub(crate) frame: Frame<'a>,
    pub(crate) header: FrameHeader,
    pub(crate) from: std::sync::Arc<AgentIdentifier>,
}

impl Delivery<'_> {
    /// The routing header (the source slot and epoch are the router's word, not the sender's).
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Who sent it: the attached identity of the slot and epoch the router stamped (for a
    /// channel, the peer agentd connected it to), whatever the body claims. The spec's
    /// `from`, unforgeable.
    pub fn from(&self) -> &AgentIdentifier {
        &self.from
    }

    /// The message, in place.
    pub fn envelope(&self) -> Envelope<'_> {
        // SAFETY: `view` reads an archive only when the header is not RAW. Such a body was
        // validated with `decode` before this Delivery was made (`Agent::try_recv`, the
        // dispatcher, `Channel::try_recv`) and cannot change since: a copied frame is ours alone
        // (borrowed for this Delivery's life), and an agent lane frame is not written again by
        // its only writer (agentd's router) until the guard we hold releases it. A channel frame
        // read in place is always RAW (raw bytes: whatever the peer rewrites, the header used is
        // the one parsed at receipt, and the bounds are the ring's).
        unsafe { view(self.header, self.frame.bytes(), &self.from) }
    }

    /// The body, in place: an archive, or raw bytes written without one.
    pub fn body(&self) -> BodyRef<'_> {
        self.envelope().body
    }

    /// The archived payload of a spec message type, in place (`None` for raw bytes).
    pub fn payload(&self) -> Option<&ArchivedPayload> {
        self.envelope().payload()
    }

    /// Raw application bytes, in place (`None` for a spec payload).
    pub fn raw(&self) -> Option<&[u8]> {
        self.envelope().raw()
    }

    /// An owned copy (allocates).
    pub fn to_message(&self) -> Message {
        self.envelope()
            .to_message()
            .expect("a validated body deserializes")
    }
}
