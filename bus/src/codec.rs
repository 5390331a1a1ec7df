//! Writing messages into a lane in place, and reading them in place.
//!
//! A frame's payload is a [`FrameHeader`] followed by the rkyv archive of the [`Body`],
//! serialized straight into the claimed ring bytes (no intermediate buffer), and read where it
//! lies: validated with bytecheck by [`decode`], or unchecked by [`decode_unchecked`].

use agentbus_ipc::ring::{ClaimError, Producer};
use rkyv::rancor;
use rkyv::ser::writer::Buffer;

use crate::body::{AgentIdentifier, ArchivedBody, ArchivedPayload, Body, Payload, UNKNOWN_SENDER};
use crate::error::{DecodeError, EncodeError};
use crate::header::{Flags, FrameHeader};
use crate::ids::MessageId;
use crate::kinds::RouteKind;
use crate::message::Message;

/// Payload bytes claimed on a first attempt: enough for most messages; larger ones retry with
/// the lane's maximum.
const FIRST_CLAIM: usize = 512;

/// Where the router should take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// How to find the destination.
    pub kind: RouteKind,
    /// Agent slot, topic id, type id or capability-set id, by `kind`.
    pub destination: u64,
}

/// The header a message will be sent with (the body length is filled in by [`encode`]).
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
        trace: message.trace,
    }
}

fn claim_error(e: ClaimError) -> EncodeError {
    match e {
        ClaimError::TooLarge { len, max } => EncodeError::TooLarge { size: len, max },
        ClaimError::Full { needed, free } => EncodeError::QueueFull { needed, free },
        ClaimError::TimedOut => EncodeError::QueueFull { needed: 0, free: 0 },
        ClaimError::Corrupt(c) => EncodeError::Corrupt(c),
    }
}

/// Serializes `header` and `body` into one frame of `producer` and commits it (inside a batch,
/// it is published with the batch). On any error nothing is committed and the lane stays usable.
pub fn encode(
    producer: &mut Producer,
    header: &FrameHeader,
    body: &Body,
) -> Result<(), EncodeError> {
    let max = producer.max_payload();
    let prefix = header.prefix_len();
    if max < prefix {
        return Err(EncodeError::TooLarge { size: prefix, max });
    }
    if let Some(bytes) = raw_only(body) {
        return encode_raw(producer, header, bytes);
    }
    let mut header = *header;
    header.flags = header.flags.without(Flags::RAW);
    let header = &header;
    let first = FIRST_CLAIM.min(max);
    for claim_len in [first, max] {
        let mut claim = producer.try_claim(claim_len).map_err(claim_error)?;
        let (head, rest) = claim.payload().split_at_mut(prefix);
        let written = rkyv::api::high::to_bytes_in::<_, rancor::Error>(body, Buffer::from(rest))
            .map(|w| w.len());
        if let Ok(body_len) = written {
            let mut h = *header;
            h.body_len = body_len as u32;
            h.write(head);
            claim.commit(prefix + body_len);
            return Ok(());
        }
        // Dropping the claim abandons it: nothing is committed.
    }
    // It did not fit in the largest frame: measure it (off the hot path) to say by how much.
    match rkyv::to_bytes::<rancor::Error>(body) {
        Ok(bytes) => Err(EncodeError::TooLarge {
            size: prefix + bytes.len(),
            max,
        }),
        Err(e) => Err(EncodeError::Serialization(e.to_string())),
    }
}

/// A raw payload with nothing else in its body travels without an archive.
fn raw_only(body: &Body) -> Option<&[u8]> {
    match &body.payload {
        Payload::Raw(bytes) if body.metadata.is_empty() && body.reply_to.is_none() => Some(bytes),
        _ => None,
    }
}

/// Writes a raw body: the header (flagged [`Flags::RAW`]) and the bytes, nothing else.
fn encode_raw(
    producer: &mut Producer,
    header: &FrameHeader,
    bytes: &[u8],
) -> Result<(), EncodeError> {
    let mut h = *header;
    h.flags |= Flags::RAW;
    h.body_len = u32::try_from(bytes.len()).map_err(|_| EncodeError::TooLarge {
        size: bytes.len(),
        max: producer.max_payload(),
    })?;
    let len = h.frame_len();
    let mut claim = producer.try_claim(len).map_err(claim_error)?;
    let buf = claim.payload();
    let prefix = h.prefix_len();
    h.write(&mut buf[..prefix]);
    buf[prefix..len].copy_from_slice(bytes);
    claim.commit(len);
    Ok(())
}

/// A message's body as it lies in the frame.
#[derive(Debug, Clone, Copy)]
pub enum BodyRef<'a> {
    /// An rkyv archive (every spec payload, or raw bytes with metadata or reply-to).
    Archived(&'a ArchivedBody),
    /// Raw application bytes, written without an archive ([`Flags::RAW`]).
    Raw(&'a [u8]),
}

/// A message read in place: the decoded header and a view of the body in the lane.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The header.
    pub header: FrameHeader,
    /// The body, in place.
    pub body: BodyRef<'a>,
    /// Who sent it: the identity the router vouches for when a client read it
    /// ([`crate::body::UNKNOWN_SENDER`] from a bare [`decode`]).
    pub from: &'a AgentIdentifier,
}

impl<'a> Envelope<'a> {
    /// The archived payload, for the spec's message types (`None` for raw bytes written
    /// without an archive).
    pub fn payload(&self) -> Option<&'a ArchivedPayload> {
        match self.body {
            BodyRef::Archived(b) => Some(&b.payload),
            BodyRef::Raw(_) => None,
        }
    }

    /// The raw application bytes, whichever way they travelled (`None` for a spec payload).
    pub fn raw(&self) -> Option<&'a [u8]> {
        match self.body {
            BodyRef::Raw(b) => Some(b),
            BodyRef::Archived(b) => match &b.payload {
                ArchivedPayload::Raw(v) => Some(v.as_slice()),
                _ => None,
            },
        }
    }

    /// A metadata entry.
    pub fn metadata(&self, key: &str) -> Option<&'a str> {
        match self.body {
            BodyRef::Archived(b) => b
                .metadata
                .iter()
                .find(|(k, _)| k.as_str() == key)
                .map(|(_, v)| v.as_str()),
            BodyRef::Raw(_) => None,
        }
    }
}

impl Envelope<'_> {
    /// An owned copy of the message (allocates; for when the view cannot be kept).
    pub fn to_message(&self) -> Result<Message, DecodeError> {
        let body = match self.body {
            BodyRef::Archived(b) => rkyv::deserialize::<Body, rancor::Error>(b)
                .map_err(|e| DecodeError::new(format!("body could not be copied out: {e}")))?,
            BodyRef::Raw(bytes) => Body {
                metadata: Default::default(),
                reply_to: None,
                payload: Payload::Raw(bytes.to_vec()),
            },
        };
        let h = &self.header;
        Ok(Message {
            id: h.message_id,
            timestamp_ns: h.timestamp_ns,
            message_type: h.message_type,
            priority: h.priority,
            correlation_id: h.correlation_id,
            ttl: (h.ttl_ms > 0).then(|| std::time::Duration::from_millis(h.ttl_ms as u64)),
            flags: h.flags,
            trace: h.trace,
            from: self.from.clone(),
            to: Vec::new(),
            body,
        })
    }

    /// The message's id.
    pub fn id(&self) -> MessageId {
        self.header.message_id
    }
}

fn check_type(header: &FrameHeader, body: &ArchivedBody) -> Result<(), DecodeError> {
    match body.payload.message_type() {
        Some(t) if t != header.message_type => Err(DecodeError::new(format!(
            "header says {} but the body holds a {}",
            header.message_type, t
        ))),
        _ => Ok(()),
    }
}

fn split(frame: &[u8]) -> Result<(FrameHeader, &[u8]), DecodeError> {
    let header = FrameHeader::parse(frame)?;
    let body = &frame[header.prefix_len()..header.frame_len()];
    Ok((header, body))
}

/// Reads a frame's message in place, validating the header and the whole archive (bytecheck):
/// corrupt bytes are an error, never a panic or undefined behaviour. The frame must start
/// 16-byte aligned (ring frames do).
pub fn decode(frame: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let (header, bytes) = split(frame)?;
    if header.flags.contains(Flags::RAW) {
        return Ok(raw_envelope(header, bytes));
    }
    let body = rkyv::access::<ArchivedBody, rancor::Error>(bytes)
        .map_err(|e| DecodeError::new(format!("body failed validation: {e}")))?;
    check_type(&header, body)?;
    Ok(Envelope {
        header,
        body: BodyRef::Archived(body),
        from: &UNKNOWN_SENDER,
    })
}

/// The message of a frame whose header was parsed (and, for an archive, whose body was
/// validated) when it was received, without parsing anything again: the header given is used
/// as it is, so bytes rewritten since (a channel's peer can write its ring) cannot change it.
///
/// # Safety
/// Unless `header` says [`Flags::RAW`], `frame[header.prefix_len()..header.frame_len()]` must
/// be an archive of [`Body`] validated by [`decode`] (or written by [`encode`]) and not modified
/// since.
pub(crate) unsafe fn view<'a>(
    header: FrameHeader,
    frame: &'a [u8],
    from: &'a AgentIdentifier,
) -> Envelope<'a> {
    let bytes = frame
        .get(header.prefix_len()..header.frame_len())
        .unwrap_or_default();
    let body = if header.flags.contains(Flags::RAW) {
        BodyRef::Raw(bytes)
    } else {
        // SAFETY: this function's contract: the bytes are a validated, unmodified archive.
        BodyRef::Archived(unsafe { rkyv::access_unchecked::<ArchivedBody>(bytes) })
    };
    Envelope { header, body, from }
}

/// Raw bytes need no validation: the header's bounds are the whole check.
fn raw_envelope(header: FrameHeader, bytes: &[u8]) -> Envelope<'_> {
    Envelope {
        header,
        body: BodyRef::Raw(bytes),
        from: &UNKNOWN_SENDER,
    }
}

/// Reads a frame's message in place, checking the header but not the body's archive.
///
/// # Safety
/// The body bytes must be a valid archive of [`Body`] written by [`encode`]: sound when the
/// frame comes from a lane whose writer is trusted and the bytes were not modified since (for
/// example, an agent reading its inbound lane, which only agentd writes, when every sender is a
/// trusted process of the same build). Bytes from an untrusted or corrupting writer must go
/// through [`decode`].
pub unsafe fn decode_unchecked(frame: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let (header, bytes) = split(frame)?;
    if header.flags.contains(Flags::RAW) {
        return Ok(raw_envelope(header, bytes));
    }
    // SAFETY: the caller guarantees `bytes` is a valid archive of Body (this function's
    // contract); the header was validated and bounds the slice.
    let body = unsafe { rkyv::access_unchecked::<ArchivedBody>(bytes) };
    check_type(&header, body)?;
    Ok(Envelope {
        header,
        body: BodyRef::Archived(body),
        from: &UNKNOWN_SENDER,
    })
}
