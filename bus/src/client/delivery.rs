//! A received message, read in place in the agent's inbound lane.

use agentbus_ipc::ring::ReadGuard;

use crate::body::ArchivedBody;
use crate::codec::{decode_unchecked, Envelope};
use crate::header::FrameHeader;
use crate::message::Message;

/// A message in the inbound lane, validated when received. Reading it copies nothing; dropping
/// it hands its room back to the router.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub(crate) guard: ReadGuard<'a>,
    pub(crate) header: FrameHeader,
}

impl Delivery<'_> {
    /// The routing header (the source slot is the router's word, not the sender's).
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// The message, in place.
    pub fn envelope(&self) -> Envelope<'_> {
        // SAFETY: `Agent::try_recv` validated these exact bytes with `decode` before making
        // this Delivery; the lane's only writer (agentd's router) does not write them again
        // until the guard we hold releases them.
        unsafe { decode_unchecked(self.guard.bytes()) }
            .expect("the header was validated when the message was received")
    }

    /// The body, in place.
    pub fn body(&self) -> &ArchivedBody {
        self.envelope().body
    }

    /// An owned copy (allocates).
    pub fn to_message(&self) -> Message {
        self.envelope()
            .to_message()
            .expect("a validated body deserializes")
    }
}
