//! Writing messages into a lane in place, and reading them in place.
//!
//! A frame is a [`FrameHeader`], an extension block when something optional is set
//! ([`crate::extensions`]), then the body, which is only the payload, one of three kinds (the
//! header's flags say which):
//! - **raw bytes** ([`Flags::RAW`]): the application's bytes, nothing added; reading them needs
//!   only the header's bounds;
//! - **a typed value** ([`Flags::TYPED`]): the rkyv archive of an application's own type
//!   ([`TypedPayload`]), written with rkyv's allocation-free serializer and validated by the
//!   reader that names the type;
//! - **a spec payload** (neither flag): the rkyv archive of a [`Payload`], validated by
//!   [`decode`] (or read unchecked by [`decode_unchecked`]).
//!
//! Everything is serialized straight into the claimed ring bytes, with no intermediate buffer.

use std::mem::MaybeUninit;

use agentbus_ipc::ring::{Claim, ClaimError, Producer};
use rkyv::api::low::{LowSerializer, LowValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::SubAllocator;
use rkyv::ser::writer::Buffer;

use crate::body::{AgentIdentifier, ArchivedPayload, Payload, UNKNOWN_SENDER};
use crate::error::{DecodeError, EncodeError};
use crate::extensions::{Extensions, Extras};
use crate::header::{Flags, FrameHeader, HEADER_LEN};
use crate::ids::MessageId;
use crate::kinds::RouteKind;
use crate::message::Message;
use crate::nesting::CheckError;

/// Payload bytes claimed on a first attempt at an archive: enough for most messages; larger
/// ones are measured and claimed at their size.
const FIRST_CLAIM: usize = 512;
/// Scratch space (on the stack) rkyv may use while serializing a typed value.
const TYPED_SCRATCH: usize = 1024;

/// The serializer a typed value is written with: into a lane's bytes, scratch space on the
/// stack, no allocation and no shared pointers.
pub type TypedSerializer<'a> = LowSerializer<Buffer<'a>, SubAllocator<'a>, rancor::Error>;

/// An application type that travels as a typed payload: anything that derives
/// `rkyv::Archive` and `rkyv::Serialize` (with rkyv's `bytecheck` validation, the default),
/// without shared pointers (`Rc`, `Arc`), whose serializing needs at most 1 KiB of scratch space.
/// Implemented for every such type; nothing to write by hand.
///
/// ```
/// #[derive(rkyv::Archive, rkyv::Serialize)]
/// struct Tick {
///     symbol: [u8; 8],
///     px: f64,
///     qty: u64,
/// }
/// fn travels<T: agentbus::codec::TypedPayload>() {}
/// travels::<Tick>();
/// ```
pub trait TypedPayload:
    rkyv::Archive<Archived: for<'a> CheckBytes<LowValidator<'a, rancor::Error>>>
    + for<'a> rkyv::Serialize<TypedSerializer<'a>>
{
}

impl<T> TypedPayload for T where
    T: rkyv::Archive<Archived: for<'a> CheckBytes<LowValidator<'a, rancor::Error>>>
        + for<'a> rkyv::Serialize<TypedSerializer<'a>>
{
}

/// Where the router should take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// How to find the destination.
    pub kind: RouteKind,
    /// Agent slot, topic id, type id or capability-set id, by `kind`.
    pub destination: u64,
}

/// The header a message will be sent with (the extension and body lengths are filled in by
/// [`encode`]).
pub fn header_for(message: &Message, route: Route, source_slot: u32) -> FrameHeader {
    FrameHeader {
        message_type: message.message_type,
        priority: message.priority,
        route: route.kind,
        flags: message.flags,
        body_len: 0,
        source_slot,
        source_epoch: 0,
        destination: route.destination,
        message_id: message.id,
        correlation_id: message.correlation_id,
        timestamp_ns: message.timestamp_ns,
        ttl_ms: message
            .ttl
            .map_or(0, |t| t.as_millis().clamp(1, u32::MAX as u128) as u32),
        extension_len: 0,
    }
}

/// The header of a message sent without a [`Message`] (a loan, raw bytes, a typed value):
/// labelled [`crate::MessageType::Notification`], no id or timestamp yet.
pub fn bare_header(route: Route, priority: crate::MessagePriority) -> FrameHeader {
    FrameHeader {
        message_type: crate::MessageType::Notification,
        priority,
        route: route.kind,
        flags: Flags::empty(),
        body_len: 0,
        source_slot: 0,
        source_epoch: 0,
        destination: route.destination,
        message_id: MessageId::NONE,
        correlation_id: MessageId::NONE,
        timestamp_ns: 0,
        ttl_ms: 0,
        extension_len: 0,
    }
}

/// How an encoder gets room for its frame: at once or not at all ([`NoWait`], every public
/// `encode*` function and every send that does not wait), or waiting on the lane's space doorbell
/// through a wait strategy until a deadline ([`WaitUntil`], the client's blocking sends: its one
/// wait-for-room path). A trait rather than an enum so that each encoder is compiled once per
/// policy: the no-wait encoders are exactly a `try_claim` (an enum cost channel throughput 6%).
pub trait Room {
    /// Claims `len` bytes in `producer` as this policy says.
    fn claim<'p>(&self, producer: &'p mut Producer, len: usize) -> Result<Claim<'p>, EncodeError>;
}

/// Room now or `QueueFull`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWait;

impl Room for NoWait {
    #[inline]
    fn claim<'p>(&self, producer: &'p mut Producer, len: usize) -> Result<Claim<'p>, EncodeError> {
        producer.try_claim(len).map_err(claim_error)
    }
}

/// Wait for room (parking on the lane's space doorbell, spinning or backing off, as `wait`
/// says) until `deadline`; past it, `TimedOut` reporting `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct WaitUntil {
    /// How to wait.
    pub wait: agentbus_ipc::wait::Wait,
    /// When to give up.
    pub deadline: std::time::Instant,
    /// The whole wait, as the error reports it (a caller may wait in slices).
    pub timeout: std::time::Duration,
}

impl Room for WaitUntil {
    fn claim<'p>(&self, producer: &'p mut Producer, len: usize) -> Result<Claim<'p>, EncodeError> {
        producer
            .claim(len, &self.wait, Some(self.deadline))
            .map_err(|e| match e {
                ClaimError::TimedOut => EncodeError::TimedOut {
                    after: self.timeout,
                },
                e => claim_error(e),
            })
    }
}

/// A failed `try_claim`'s error as the codec reports it.
pub(crate) fn claim_error(e: ClaimError) -> EncodeError {
    match e {
        ClaimError::TooLarge { len, max } => EncodeError::TooLarge { size: len, max },
        ClaimError::Full { needed, free } => EncodeError::QueueFull { needed, free },
        // Only a claim that waits times out, and `try_claim` does not wait: were it ever to,
        // it waited for nothing.
        ClaimError::TimedOut => EncodeError::TimedOut {
            after: std::time::Duration::ZERO,
        },
        ClaimError::Corrupt(c) => EncodeError::Corrupt(c),
    }
}

/// The header of a frame with `extras` and a body of `kind`: flags set for the body's kind and
/// the extension length filled in.
fn framed(
    header: &FrameHeader,
    extras: &Extras<'_>,
    kind: Flags,
) -> Result<FrameHeader, EncodeError> {
    let mut h = *header;
    h.flags = h.flags.without(Flags::RAW).without(Flags::TYPED) | kind;
    h.extension_len = extras.block_len()? as u32;
    Ok(h)
}

/// Writes the header and extension block at the start of `buf`.
pub(crate) fn write_prefix(buf: &mut [u8], header: &FrameHeader, extras: &Extras<'_>) {
    header.write(&mut buf[..HEADER_LEN]);
    extras.write(&mut buf[HEADER_LEN..header.prefix_len()]);
}

/// Serializes `message` (routing fields from `header`, extras and payload from the message)
/// into one frame of `producer` and commits it (inside a batch, it is published with the
/// batch). On any error nothing is committed and the lane stays usable; a payload whose values
/// nest deeper than [`crate::nesting::MAX_VALUE_DEPTH`] is refused with
/// [`EncodeError::TooDeep`].
pub fn encode(
    producer: &mut Producer,
    header: &FrameHeader,
    message: &Message,
) -> Result<(), EncodeError> {
    encode_in(producer, header, message, &NoWait)
}

/// As [`encode`], getting room as `room` says.
#[inline]
pub fn encode_in(
    producer: &mut Producer,
    header: &FrameHeader,
    message: &Message,
    room: &impl Room,
) -> Result<(), EncodeError> {
    let extras = message.extras();
    match &message.payload {
        Payload::Raw(bytes) => encode_bytes_in(producer, header, &extras, bytes, room),
        payload => encode_archive(producer, header, &extras, payload, room),
    }
}

/// Writes `payload` alone (no trace, reply-to or metadata) as a frame's body: raw bytes as they
/// are, any other payload as its archive. Gets room as `room` says.
pub fn encode_payload_in(
    producer: &mut Producer,
    header: &FrameHeader,
    payload: &Payload,
    room: &impl Room,
) -> Result<(), EncodeError> {
    match payload {
        Payload::Raw(bytes) => encode_bytes_in(producer, header, &Extras::NONE, bytes, room),
        payload => encode_archive(producer, header, &Extras::NONE, payload, room),
    }
}

/// A spec payload as a message's body carries it, with its body kind: raw bytes as they are,
/// anything else as its rkyv archive (what a bridge sends on for a reply it got decoded).
pub fn body_of(payload: &Payload) -> Result<(Flags, Vec<u8>), EncodeError> {
    match payload {
        Payload::Raw(bytes) => Ok((Flags::RAW, bytes.clone())),
        payload => {
            crate::nesting::check_payload(payload)?;
            rkyv::to_bytes::<rancor::Error>(payload)
                .map(|b| (Flags::empty(), b.to_vec()))
                .map_err(|e| EncodeError::Serialization(e.to_string()))
        }
    }
}

/// Writes a spec payload's archive.
fn encode_archive(
    producer: &mut Producer,
    header: &FrameHeader,
    extras: &Extras<'_>,
    payload: &Payload,
    room: &impl Room,
) -> Result<(), EncodeError> {
    // Before rkyv recurses into it: a value nested deeper would overflow the stack here, or
    // in the receiver that validates it.
    crate::nesting::check_payload(payload)?;
    let header = framed(header, extras, Flags::empty())?;
    let max = producer.max_payload();
    let prefix = header.prefix_len();
    if max < prefix {
        return Err(EncodeError::TooLarge { size: prefix, max });
    }
    let first = FIRST_CLAIM.max(prefix + 64).min(max);
    let mut claim_len = first;
    for attempt in 0..2 {
        if attempt == 1 {
            // Larger than the first claim: measure it (off the common path: one allocation)
            // and claim exactly that, so that it needs only its own room in the lane, not an
            // empty lane.
            match rkyv::to_bytes::<rancor::Error>(payload) {
                Ok(bytes) if prefix + bytes.len() <= max => claim_len = prefix + bytes.len(),
                Ok(bytes) => {
                    return Err(EncodeError::TooLarge {
                        size: prefix + bytes.len(),
                        max,
                    })
                }
                Err(e) => return Err(EncodeError::Serialization(e.to_string())),
            }
        }
        let mut claim = room.claim(producer, claim_len)?;
        let (head, rest) = claim.payload().split_at_mut(prefix);
        let written = rkyv::api::high::to_bytes_in::<_, rancor::Error>(payload, Buffer::from(rest))
            .map(|w| w.len());
        if let Ok(body_len) = written {
            let mut h = header;
            h.body_len = body_len as u32;
            write_prefix(head, &h, extras);
            claim.commit(prefix + body_len);
            return Ok(());
        }
        // Dropping the claim abandons it: nothing is committed.
    }
    // It did not fit in the largest frame: measure it (off the hot path) to say by how much.
    match rkyv::to_bytes::<rancor::Error>(payload) {
        Ok(bytes) => Err(EncodeError::TooLarge {
            size: prefix + bytes.len(),
            max,
        }),
        Err(e) => Err(EncodeError::Serialization(e.to_string())),
    }
}

/// Writes raw bytes as a frame's body ([`Flags::RAW`]): the header, the extension block when
/// `extras` has something, and the bytes. Allocates nothing.
pub fn encode_bytes(
    producer: &mut Producer,
    header: &FrameHeader,
    extras: &Extras<'_>,
    bytes: &[u8],
) -> Result<(), EncodeError> {
    encode_bytes_in(producer, header, extras, bytes, &NoWait)
}

/// As [`encode_bytes`], getting room as `room` says.
#[inline]
pub fn encode_bytes_in(
    producer: &mut Producer,
    header: &FrameHeader,
    extras: &Extras<'_>,
    bytes: &[u8],
    room: &impl Room,
) -> Result<(), EncodeError> {
    encode_body_in(producer, header, extras, Flags::RAW, bytes, room)
}

/// Writes `body`, already encoded as `kind` says ([`Flags::RAW`], [`Flags::TYPED`], or neither:
/// the archive of a spec payload), as a frame's body, unchanged: what a bridge forwards from
/// another bus. The receiver validates an archive when it reads it, as it does any frame's.
pub fn encode_body_in(
    producer: &mut Producer,
    header: &FrameHeader,
    extras: &Extras<'_>,
    kind: Flags,
    bytes: &[u8],
    room: &impl Room,
) -> Result<(), EncodeError> {
    let body_kind = Flags::ALL.without(Flags::RAW).without(Flags::TYPED);
    let mut h = framed(header, extras, kind.without(body_kind))?;
    h.body_len = u32::try_from(bytes.len()).map_err(|_| EncodeError::TooLarge {
        size: bytes.len(),
        max: producer.max_payload(),
    })?;
    let len = h.frame_len();
    let mut claim = room.claim(producer, len)?;
    let buf = claim.payload();
    write_prefix(buf, &h, extras);
    buf[h.prefix_len()..len].copy_from_slice(bytes);
    claim.commit(len);
    Ok(())
}

/// Serializes `value` into `out` with rkyv's allocation-free serializer; returns the bytes
/// written.
pub(crate) fn write_typed<T: TypedPayload>(
    value: &T,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut scratch = [MaybeUninit::<u8>::uninit(); TYPED_SCRATCH];
    rkyv::api::low::to_bytes_in_with_alloc::<_, _, rancor::Error>(
        value,
        Buffer::from(out),
        SubAllocator::new(&mut scratch),
    )
    .map(|w| w.len())
    .map_err(|e| EncodeError::Serialization(e.to_string()))
}

/// Writes an application's typed value as a frame's body ([`Flags::TYPED`]), serialized in
/// place. Allocates nothing while the value fits (a value larger than the lane's frames, or one
/// needing more than 1 KiB of scratch space to serialize, is an error and nothing is sent).
pub fn encode_typed<T: TypedPayload>(
    producer: &mut Producer,
    header: &FrameHeader,
    extras: &Extras<'_>,
    value: &T,
) -> Result<(), EncodeError> {
    encode_typed_in(producer, header, extras, value, &NoWait)
}

/// As [`encode_typed`], getting room as `room` says.
pub fn encode_typed_in<T: TypedPayload>(
    producer: &mut Producer,
    header: &FrameHeader,
    extras: &Extras<'_>,
    value: &T,
    room: &impl Room,
) -> Result<(), EncodeError> {
    let h = framed(header, extras, Flags::TYPED)?;
    let max = producer.max_payload();
    let prefix = h.prefix_len();
    // A first claim sized for the value's root (most typed values are only that), then the
    // lane's maximum for one that holds strings or vectors.
    let first = (prefix + size_of::<T::Archived>())
        .next_multiple_of(16)
        .max(prefix + 64)
        .min(max);
    for claim_len in [first, max] {
        let mut claim = room.claim(producer, claim_len)?;
        let (head, rest) = claim.payload().split_at_mut(prefix);
        match write_typed(value, rest) {
            Ok(body_len) => {
                let mut h = h;
                h.body_len = body_len as u32;
                write_prefix(head, &h, extras);
                claim.commit(prefix + body_len);
                return Ok(());
            }
            Err(e) if claim_len == max => {
                return Err(match e {
                    EncodeError::Serialization(why) => EncodeError::Serialization(format!(
                        "{why} (a typed value must fit in the lane's {max}-byte frames, header \
                         included, and need at most {TYPED_SCRATCH} bytes of scratch space)"
                    )),
                    e => e,
                })
            }
            Err(_) => {} // retry with all the room a frame may have
        }
    }
    Err(EncodeError::TooLarge { size: max + 1, max })
}

/// A message's body as it lies in the frame.
#[derive(Debug, Clone, Copy)]
pub enum BodyRef<'a> {
    /// The archive of a spec payload.
    Archived(&'a ArchivedPayload),
    /// Raw application bytes ([`Flags::RAW`]).
    Raw(&'a [u8]),
    /// The archive of an application's own type ([`Flags::TYPED`]): read it with
    /// [`typed`], which validates it.
    Typed(&'a [u8]),
}

/// A message read in place: the decoded header, its extension block and a view of the body in
/// the lane.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The fixed routing header, decoded; in a frame a client received, the source slot and
    /// epoch are those the router stamped.
    pub header: FrameHeader,
    /// Trace context, reply-to and metadata, in place.
    pub extensions: Extensions<'a>,
    /// The body, in place.
    pub body: BodyRef<'a>,
    /// Who sent it: the identity the router vouches for when a client read it
    /// ([`crate::body::UNKNOWN_SENDER`] from a bare [`decode`]).
    pub from: &'a AgentIdentifier,
}

impl<'a> Envelope<'a> {
    /// The archived payload, for the spec's message types (`None` for raw bytes or a typed
    /// value).
    pub fn payload(&self) -> Option<&'a ArchivedPayload> {
        match self.body {
            BodyRef::Archived(b) => Some(b),
            BodyRef::Raw(_) | BodyRef::Typed(_) => None,
        }
    }

    /// The raw application bytes (`None` for a spec payload or a typed value).
    pub fn raw(&self) -> Option<&'a [u8]> {
        match self.body {
            BodyRef::Raw(b) => Some(b),
            BodyRef::Archived(ArchivedPayload::Raw(v)) => Some(v.as_slice()),
            _ => None,
        }
    }

    /// The value of metadata key `key`, read in place; `None` if the sender set none.
    pub fn metadata(&self, key: &str) -> Option<&'a str> {
        self.extensions.metadata_value(key)
    }

    /// The id from its header: unique on the bus together with the source slot and epoch.
    pub fn id(&self) -> MessageId {
        self.header.message_id
    }

    /// An owned copy of the message (allocates; for when the view cannot be kept). A typed
    /// value is copied out as its archive's bytes, in [`Payload::Raw`].
    pub fn to_message(&self) -> Result<Message, DecodeError> {
        let payload = match self.body {
            BodyRef::Archived(b) => rkyv::deserialize::<Payload, rancor::Error>(b)
                .map_err(|e| DecodeError::new(format!("body could not be copied out: {e}")))?,
            BodyRef::Raw(bytes) | BodyRef::Typed(bytes) => Payload::Raw(bytes.to_vec()),
        };
        let h = &self.header;
        Ok(Message {
            id: h.message_id,
            timestamp_ns: h.timestamp_ns,
            message_type: h.message_type,
            priority: h.priority,
            correlation_id: h.correlation_id,
            ttl: (h.ttl_ms > 0).then(|| std::time::Duration::from_millis(h.ttl_ms as u64)),
            flags: h.flags.without(Flags::RAW).without(Flags::TYPED),
            trace: self.extensions.trace(),
            from: self.from.clone(),
            to: Vec::new(),
            metadata: self.extensions.metadata_map(),
            reply_to: self.extensions.reply_to().map(str::to_owned),
            payload,
        })
    }
}

/// Reads the typed value `T` from a body, validating its archive (bytecheck): bytes that are
/// not a valid `T` are an error, never a panic or undefined behaviour. The bytes must start
/// 16-byte aligned (every body does) and must not change while the result is held, which holds
/// for a frame in an agent's inbound lane (only agentd's router writes it) and for a copy;
/// `Delivery::typed` reads a channel's frames from a copy for that reason. An archive nested
/// more than [`crate::nesting::MAX_ARCHIVE_DEPTH`] pointers deep is refused (its encoder does
/// not check how deep an application's own type nests: keep recursive types shallower).
pub fn typed<T: TypedPayload>(body: BodyRef<'_>) -> Result<&T::Archived, DecodeError> {
    let BodyRef::Typed(bytes) = body else {
        return Err(DecodeError::new(format!(
            "the body is {}, not a typed value",
            match body {
                BodyRef::Archived(_) => "a spec payload",
                _ => "raw bytes",
            }
        )));
    };
    let mut validator = crate::nesting::typed_validator(bytes);
    rkyv::api::access_with_context::<T::Archived, _, rancor::Error>(bytes, &mut validator).map_err(
        |e| {
            DecodeError::new(format!(
                "the typed body ({} bytes) is not a valid {} no more than {} pointers deep: {e}",
                bytes.len(),
                std::any::type_name::<T>(),
                crate::nesting::MAX_ARCHIVE_DEPTH,
            ))
        },
    )
}

fn check_type(header: &FrameHeader, body: &ArchivedPayload) -> Result<(), DecodeError> {
    match body.message_type() {
        Some(t) if t != header.message_type => Err(DecodeError::new(format!(
            "header says {} but the body holds a {}",
            header.message_type, t
        ))),
        _ => Ok(()),
    }
}

/// The header, the extension block and the body of a frame.
fn split(frame: &[u8]) -> Result<(FrameHeader, Extensions<'_>, &[u8]), DecodeError> {
    let header = FrameHeader::parse(frame)?;
    let (ext, body) = parts(&header, frame);
    Ok((header, ext, body))
}

/// The extension block and body of `frame` as `header` bounds them (empty where the frame is
/// shorter than the header says, which a parsed header rules out).
fn parts<'a>(header: &FrameHeader, frame: &'a [u8]) -> (Extensions<'a>, &'a [u8]) {
    let body = frame
        .get(header.prefix_len()..header.frame_len())
        .unwrap_or_default();
    (Extensions::of(header, frame), body)
}

/// Reads a frame's message in place, validating the header, the extension block and a spec
/// payload's whole archive (bytecheck): corrupt bytes are an error, never a panic or undefined
/// behaviour, and bytes nested more than [`crate::nesting::MAX_ARCHIVE_DEPTH`] pointers deep are
/// an error found before validation recurses further (never a stack overflow). A typed body is
/// validated when it is read ([`typed`]). The frame must start 16-byte aligned (ring frames do).
pub fn decode(frame: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let (header, extensions, bytes) = split(frame)?;
    let body = if header.flags.contains(Flags::RAW) {
        BodyRef::Raw(bytes)
    } else if header.flags.contains(Flags::TYPED) {
        BodyRef::Typed(bytes)
    } else {
        let mut validator = crate::nesting::payload_validator(bytes);
        let body =
            rkyv::api::access_with_context::<ArchivedPayload, _, CheckError>(bytes, &mut validator)
                .map_err(|e| e.into_decode_error("body"))?;
        check_type(&header, body)?;
        BodyRef::Archived(body)
    };
    Ok(Envelope {
        header,
        extensions,
        body,
        from: &UNKNOWN_SENDER,
    })
}

/// The message of a frame whose header was parsed (and, for a spec payload, whose archive was
/// validated) when it was received, without parsing anything again: the header given is used
/// as it is, so bytes rewritten since (a channel's peer can write its ring) cannot change it.
///
/// # Safety
/// Unless `header` says [`Flags::RAW`] or [`Flags::TYPED`],
/// `frame[header.prefix_len()..header.frame_len()]` must be an archive of [`Payload`] validated
/// by [`decode`] (or written by [`encode`]) and not modified since.
pub(crate) unsafe fn view<'a>(
    header: FrameHeader,
    frame: &'a [u8],
    from: &'a AgentIdentifier,
) -> Envelope<'a> {
    let (extensions, bytes) = parts(&header, frame);
    let body = if header.flags.contains(Flags::RAW) {
        BodyRef::Raw(bytes)
    } else if header.flags.contains(Flags::TYPED) {
        BodyRef::Typed(bytes)
    } else {
        // SAFETY: this function's contract: the bytes are a validated, unmodified archive.
        BodyRef::Archived(unsafe { rkyv::access_unchecked::<ArchivedPayload>(bytes) })
    };
    Envelope {
        header,
        extensions,
        body,
        from,
    }
}

/// Reads a frame's message in place, checking the header and extension block but not a spec
/// payload's archive.
///
/// # Safety
/// A spec payload's bytes must be a valid archive of [`Payload`] written by [`encode`]: sound
/// when the frame comes from a lane whose writer is trusted and the bytes were not modified
/// since (for example, an agent reading its inbound lane, which only agentd writes, when every
/// sender is a trusted process of the same build). Bytes from an untrusted or corrupting writer
/// must go through [`decode`].
pub unsafe fn decode_unchecked(frame: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let (header, extensions, bytes) = split(frame)?;
    let body = if header.flags.contains(Flags::RAW) {
        BodyRef::Raw(bytes)
    } else if header.flags.contains(Flags::TYPED) {
        BodyRef::Typed(bytes)
    } else {
        // SAFETY: the caller guarantees `bytes` is a valid archive of Payload (this function's
        // contract); the header was validated and bounds the slice.
        let body = unsafe { rkyv::access_unchecked::<ArchivedPayload>(bytes) };
        check_type(&header, body)?;
        BodyRef::Archived(body)
    };
    Ok(Envelope {
        header,
        extensions,
        body,
        from: &UNKNOWN_SENDER,
    })
}

/// Reads the typed value `T` from a body without validating it.
///
/// # Safety
/// The body's bytes must be an archive of `T` written by this crate's encoder (a typed send or
/// loan of a `T`) and unmodified since: sound only when every sender on this path is a trusted
/// process of the same build sending `T` here. Anything else goes through [`typed`].
pub unsafe fn typed_unchecked<T: TypedPayload>(
    body: BodyRef<'_>,
) -> Result<&T::Archived, DecodeError> {
    match body {
        // SAFETY: this function's contract: the bytes are an unmodified archive of `T`.
        BodyRef::Typed(bytes) => Ok(unsafe { rkyv::access_unchecked::<T::Archived>(bytes) }),
        _ => Err(DecodeError::new("the body is not a typed value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CommunicationError;

    /// A claim that ran out of time is a timeout, not a full queue with made-up numbers; a
    /// full ring keeps its real numbers.
    #[test]
    fn claim_errors_keep_their_meaning() {
        match CommunicationError::from(claim_error(ClaimError::TimedOut)) {
            CommunicationError::Timeout { what, .. } => assert!(what.contains("room"), "{what}"),
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert_eq!(
            CommunicationError::from(claim_error(ClaimError::Full {
                needed: 96,
                free: 40
            })),
            CommunicationError::QueueFull {
                needed: 96,
                free: 40
            }
        );
    }
}
