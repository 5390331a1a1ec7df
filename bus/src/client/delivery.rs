//! A received message: read in place in the agent's inbound lane, or (when it arrived while
//! the agent waited for a response) from a copy of its frame.

use agentbus_ipc::ring::ReadGuard;
use rkyv::util::AlignedVec;

use crate::body::{AgentIdentifier, ArchivedPayload};
use crate::codec::{self, view, BodyRef, Envelope, TypedPayload};
use crate::error::CommunicationError;
use crate::extensions::Extensions;
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
/// back to the router. It borrows only the [`super::Receiver`] it came from, so the
/// [`super::Sender`] beside it can answer while it is held.
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions, Typed};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-delivery-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// #[derive(rkyv::Archive, rkyv::Serialize)]
/// struct Order { symbol: [u8; 4], qty: u32 }
///
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let mut exec = Agent::attach(options("exec-1", "execution"))?;
/// let to_exec = strategy.peer("exec-1")?;
/// strategy.send(&to_exec, Typed(&Order { symbol: *b"AAPL", qty: 100 }))?;
/// let d = exec.recv_timeout(Duration::from_secs(5))?.expect("routed");
/// assert_eq!(d.from().agent_id, "strategy-1");             // the router's word, not the sender's
/// let order = d.typed::<Order>()?;                          // validated, read in the lane
/// assert_eq!((&order.symbol, order.qty.to_native()), (b"AAPL", 100));
/// # Ok(()) }
/// ```
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
        // SAFETY: `view` reads a spec archive only when the header is neither RAW nor TYPED.
        // Such a body was validated with `decode` before this Delivery was made
        // (`Agent::try_recv`, the dispatcher, `Channel::try_recv`) and cannot change since: a
        // copied frame is ours alone (borrowed for this Delivery's life), and an agent lane frame
        // is not written again by its only writer (agentd's router) until the guard we hold
        // releases it. A channel frame read in place is always RAW (raw bytes: whatever the peer
        // rewrites, the header used is the one parsed at receipt, and the bounds are the ring's).
        unsafe { view(self.header, self.frame.bytes(), &self.from) }
    }

    /// Trace context, reply-to and metadata, in place.
    pub fn extensions(&self) -> Extensions<'_> {
        self.envelope().extensions
    }

    /// A metadata entry, in place.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.envelope().metadata(key)
    }

    /// The body, in place: a spec archive, raw bytes, or a typed value's archive.
    pub fn body(&self) -> BodyRef<'_> {
        self.envelope().body
    }

    /// The body's bytes as they are in the frame, whatever its kind
    /// ([`super::BodyKind::of`] the header's flags says which): what a bridge forwards without
    /// decoding it.
    pub fn body_bytes(&self) -> &[u8] {
        self.frame
            .bytes()
            .get(self.header.prefix_len()..self.header.frame_len())
            .unwrap_or_default()
    }

    /// The archived payload of a spec message type, in place (`None` for raw bytes).
    pub fn payload(&self) -> Option<&ArchivedPayload> {
        self.envelope().payload()
    }

    /// Raw application bytes, in place (`None` for a spec payload).
    pub fn raw(&self) -> Option<&[u8]> {
        self.envelope().raw()
    }

    /// The application's typed value `T`, in place, validated (bytecheck) on every call:
    /// bytes that are not a valid `T`, or a body that is not a typed value, are
    /// `InvalidFormat`, never a panic. Validation checks the bytes are *a* valid `T`, not that
    /// the sender meant a `T`: agree on the type per message type or topic. Allocates nothing.
    ///
    /// From an agent's inbound lane (written only by agentd) it reads the lane where it lies;
    /// a channel hands typed values over in a private copy, because its peer can write the
    /// shared memory and could rewrite an archive's relative pointers after validation. For a
    /// value without pointers (`#[repr(C)]`, every bit pattern valid) use [`Delivery::plain`],
    /// which a channel reads without a copy.
    pub fn typed<T: TypedPayload>(&self) -> Result<&T::Archived, CommunicationError> {
        codec::typed::<T>(self.body()).map_err(CommunicationError::from)
    }

    /// As [`Delivery::typed`], without validating the archive.
    ///
    /// # Safety
    /// Every sender on this path must be a trusted process of the same build that sends a `T`
    /// here (see [`codec::typed_unchecked`]); bytes from anyone else must go through
    /// [`Delivery::typed`].
    pub unsafe fn typed_unchecked<T: TypedPayload>(
        &self,
    ) -> Result<&T::Archived, CommunicationError> {
        // SAFETY: forwarded to this function's own contract.
        unsafe { codec::typed_unchecked::<T>(self.body()) }.map_err(CommunicationError::from)
    }

    /// Raw bytes read as a plain value `T` in place, with no copy and no validation beyond the
    /// length and alignment: sound for any bytes because every bit pattern is a valid `T`
    /// (`bytemuck::AnyBitPattern`: integers, floats, arrays of them, `#[repr(C)]` structs of
    /// them), even while a channel's peer rewrites them. Send one with `bytemuck::bytes_of`, or
    /// write it in place into a loan ([`super::Loan::plain_mut`]).
    pub fn plain<T: bytemuck::AnyBitPattern>(&self) -> Result<&T, CommunicationError> {
        let Some(bytes) = self.envelope().raw() else {
            return Err(CommunicationError::InvalidFormat {
                reason: "the body is not raw bytes, so it cannot be read as a plain value".into(),
            });
        };
        bytemuck::try_from_bytes(bytes).map_err(|e| CommunicationError::InvalidFormat {
            reason: format!(
                "{} bytes cannot be read as a {} ({} bytes, aligned to {}): {e:?}",
                bytes.len(),
                std::any::type_name::<T>(),
                size_of::<T>(),
                align_of::<T>()
            ),
        })
    }

    /// An owned copy (allocates).
    pub fn to_message(&self) -> Message {
        self.envelope()
            .to_message()
            .expect("a validated body deserializes")
    }
}
