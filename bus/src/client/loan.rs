//! Loans: room claimed in a lane, written in place, then sent (as iceoryx2's loans and Aeron's
//! `tryClaim`).

use agentbus_ipc::ring::{Claim, Producer};

use crate::codec::{claim_error, write_typed, TypedPayload};
use crate::error::EncodeError;
use crate::header::{Flags, FrameHeader, HEADER_LEN};
use crate::ids::MessageId;
use crate::kinds::MessageType;

/// Room for one message claimed in a lane: write the payload straight into shared memory, then
/// [`Loan::send`]. Dropping it without sending abandons it: nothing is committed and the
/// receiver never sees it. While it is held, the lane it was claimed in takes nothing else.
///
/// A loaned message carries raw bytes (written through [`Loan::bytes`], [`Loan::write`] or
/// [`Loan::plain_mut`]) or one typed value ([`Loan::write_typed`]); it has no metadata, trace or
/// reply-to (send a [`crate::Message`] for those). It is labelled
/// [`MessageType::Notification`] unless [`Loan::message_type`] says otherwise.
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions};
/// use agentbus::MessagePriority;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-loan-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Tick { px: f64, qty: u64 }
///
/// let mut feed = Agent::attach(options("feed-1", "feed"))?;
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let to_strategy = feed.peer("strategy-1")?;
/// let mut loan = feed.sender().loan(&to_strategy, MessagePriority::High, size_of::<Tick>())?;
/// *loan.plain_mut::<Tick>()? = Tick { px: 101.25, qty: 300 };  // written in shared memory
/// loan.send();
/// let d = strategy.recv_timeout(Duration::from_secs(5))?.expect("the tick");
/// assert_eq!(d.plain::<Tick>()?.qty, 300);                    // read where it lies
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Loan<'a> {
    claim: Claim<'a>,
    header: FrameHeader,
    room: usize,
}

/// The ring claim a loan of `room` payload bytes needs.
pub(crate) fn frame_len(room: usize) -> usize {
    HEADER_LEN + room
}

impl<'a> Loan<'a> {
    /// Claims room for `room` payload bytes after `header` (an id and timestamp already set)
    /// in `producer`.
    pub(crate) fn new(
        producer: &'a mut Producer,
        mut header: FrameHeader,
        room: usize,
    ) -> Result<Loan<'a>, EncodeError> {
        let claim = producer.try_claim(frame_len(room)).map_err(claim_error)?;
        header.flags = header.flags.without(Flags::TYPED) | Flags::RAW;
        header.extension_len = 0;
        header.body_len = room as u32;
        Ok(Loan {
            claim,
            header,
            room,
        })
    }

    /// The message's id, as the receiver will see it.
    pub fn id(&self) -> MessageId {
        self.header.message_id
    }

    /// Labels the message with `message_type`.
    pub fn message_type(&mut self, message_type: MessageType) -> &mut Self {
        self.header.message_type = message_type;
        self
    }

    /// The payload's room in the lane, as claimed (its previous contents are unspecified).
    /// Sent as raw bytes, all of them unless [`Loan::set_len`] says fewer.
    pub fn bytes(&mut self) -> &mut [u8] {
        self.header.flags = self.header.flags.without(Flags::TYPED) | Flags::RAW;
        &mut self.claim.payload()[HEADER_LEN..HEADER_LEN + self.room]
    }

    /// Sends only the first `len` payload bytes (at most the room claimed).
    pub fn set_len(&mut self, len: usize) {
        self.header.body_len = len.min(self.room) as u32;
    }

    /// Copies `bytes` into the room and sends exactly them; too many for the room is an error
    /// and changes nothing.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if bytes.len() > self.room {
            return Err(EncodeError::TooLarge {
                size: HEADER_LEN + bytes.len(),
                max: HEADER_LEN + self.room,
            });
        }
        self.bytes()[..bytes.len()].copy_from_slice(bytes);
        self.set_len(bytes.len());
        Ok(())
    }

    /// The room as a plain value to fill in place (its previous contents are unspecified:
    /// write every field), sent as its bytes; the receiver reads it with
    /// [`super::Delivery::plain`] without a copy.
    pub fn plain_mut<T: bytemuck::Pod>(&mut self) -> Result<&mut T, EncodeError> {
        let n = size_of::<T>();
        if n > self.room {
            return Err(EncodeError::TooLarge {
                size: HEADER_LEN + n,
                max: HEADER_LEN + self.room,
            });
        }
        self.set_len(n);
        bytemuck::try_from_bytes_mut(&mut self.bytes()[..n])
            .map_err(|e| EncodeError::Serialization(format!("{e:?}")))
    }

    /// Serializes `value` into the room, in place and without allocating, to be sent as a typed
    /// value (read with [`super::Delivery::typed`]). A value that does not fit the room is an
    /// error and the loan stays as it was.
    pub fn write_typed<T: TypedPayload>(&mut self, value: &T) -> Result<(), EncodeError> {
        let room = self.room;
        let out = &mut self.claim.payload()[HEADER_LEN..HEADER_LEN + room];
        let len = write_typed(value, out).map_err(|e| match e {
            EncodeError::Serialization(why) => {
                EncodeError::Serialization(format!("{why} (the loan has {room} bytes of room)"))
            }
            e => e,
        })?;
        self.header.flags = self.header.flags.without(Flags::RAW) | Flags::TYPED;
        self.header.body_len = len as u32;
        Ok(())
    }

    /// Commits the message (inside a batch, it is published with the batch) and returns its id.
    pub fn send(mut self) -> MessageId {
        let h = self.header;
        h.write(&mut self.claim.payload()[..HEADER_LEN]);
        self.claim.commit(h.frame_len());
        h.message_id
    }
}
