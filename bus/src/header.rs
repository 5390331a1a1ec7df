//! The compact routing header in front of every message body.
//!
//! It carries what the router needs and nothing else, at fixed offsets, little-endian, so the
//! router reads a frame's route without touching its body. With the ring's 16-byte frame header
//! in front of it, a frame's first 64 bytes (one cache line) hold everything routing reads.
//! Wire layout (48 bytes, a multiple of 16 so what follows stays 16-byte aligned):
//!
//! | offset | field | | offset | field |
//! | --- | --- | --- | --- | --- |
//! | 0 | message type `u8` | | 12 | ttl, ms `u32` (0: none) |
//! | 1 | priority `u8` | | 16 | destination id `u64` |
//! | 2 | route kind `u8` | | 24 | message id `u64` |
//! | 3 | flags `u8` | | 32 | correlation id `u64` (0: none) |
//! | 4 | bytes after the header `u32` (extension block + body) | | 40 | timestamp, ns since the epoch `u64` |
//! | 8 | source slot `u16` (stamped by the router) | | | |
//! | 10 | source epoch `u16` (stamped by the router) | | | |
//!
//! Anything optional (trace context, reply-to, metadata) travels in an extension block right
//! after the header, present only when set and flagged [`Flags::EXTENDED`]; see
//! [`crate::extensions`]. The header's `u32` at offset 4 counts the block and the payload.
//!
//! No magic or version: frames live in lanes only agentd and attached clients of the same
//! protocol version write (checked at attach), and every field is validated on read.

use crate::error::DecodeError;
use crate::ids::MessageId;
use crate::kinds::{MessagePriority, MessageType, RouteKind};

/// Bytes of the fixed header on the wire.
pub const HEADER_LEN: usize = 48;
/// The source slot agentd writes from (errors back, `sys.agents`): no agent ever has it.
pub const AGENTD_SLOT: u32 = 0xFFFF;

/// The flag bits of a frame header (its byte at offset 3): a frame with a bit this version does
/// not know is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u8);

impl Flags {
    /// The receiver's client acks after its handler returns (at-least-once delivery).
    pub const ACK_REQUESTED: Flags = Flags(1);
    /// This message answers the one named by its correlation id.
    pub const IS_REPLY: Flags = Flags(2);
    /// The message acknowledges another (answering [`Flags::ACK_REQUESTED`]); the bus carries
    /// the bit as the sender set it.
    pub const IS_ACK: Flags = Flags(4);
    /// The sender waits for a reply correlated to this message's id (request/response).
    pub const EXPECTS_REPLY: Flags = Flags(8);
    /// An extension block follows the header (set by the header's writer, from its content).
    pub const EXTENDED: Flags = Flags(16);
    /// The body is raw application bytes, not an archive (set by the encoder).
    pub const RAW: Flags = Flags(32);
    /// The body is the rkyv archive of an application's own type, not of a spec payload (set
    /// by the encoder; read with `Delivery::typed`).
    pub const TYPED: Flags = Flags(64);
    /// Every flag this version knows.
    pub const ALL: Flags = Flags(127);

    /// No flags.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// The wire bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Flags from wire bits, or `None` if an unknown bit is set.
    pub const fn from_bits(bits: u8) -> Option<Flags> {
        if bits & !Flags::ALL.0 == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }

    /// These flags without those of `other`.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

/// W3C trace-context sized ids, set by the sender; all zeros means "not traced" (and costs no
/// bytes on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TraceContext {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// 8-byte span id.
    pub span_id: [u8; 8],
}

/// The routing header, decoded, with its extension block's items. Its wire form is the explicit
/// little-endian layout above, written by [`FrameHeader::write`] and checked by
/// [`FrameHeader::parse`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the body is; for raw bytes or a typed value, the label the sender chose.
    pub message_type: MessageType,
    /// Its priority (which lane it travels in).
    pub priority: MessagePriority,
    /// How the router finds its destination.
    pub route: RouteKind,
    /// What the frame is and asks for ([`Flags::IS_REPLY`], [`Flags::RAW`], ...); an unknown
    /// bit fails [`FrameHeader::parse`].
    pub flags: Flags,
    /// Bytes of body after the header and its extension block.
    pub body_len: u32,
    /// The sender's slot, stamped by the router from the lane it read (so it cannot be forged);
    /// [`AGENTD_SLOT`] for what agentd itself sends. Below 2^16 on the wire.
    pub source_slot: u32,
    /// The epoch of the sender's slot, stamped by the router: with the slot, the address a
    /// reply goes to. Below 2^16 on the wire (agentd's epochs cycle through 1..=65535).
    pub source_epoch: u32,
    /// Agent slot, topic id, type id or capability-set id, by route kind.
    pub destination: u64,
    /// The message's id: unique on the bus together with the source slot and epoch.
    pub message_id: MessageId,
    /// The id of the message this one answers or follows.
    pub correlation_id: MessageId,
    /// When it was sent, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// Milliseconds it may wait for delivery before it is dead-lettered (0: the bus default).
    pub ttl_ms: u32,
    /// Bytes of the extension block between the header and the body (0: none; else a multiple
    /// of 16).
    pub extension_len: u32,
}

// Readers over the fixed-size header: constant offsets into a `[u8; HEADER_LEN]` need no
// bounds checks at run time.
fn u16_at(b: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    u64::from_le_bytes(std::array::from_fn(|i| b[at + i]))
}

impl TraceContext {
    /// Whether nothing is traced.
    pub fn is_empty(&self) -> bool {
        self.trace_id == [0; 16] && self.span_id == [0; 8]
    }

    /// The W3C `traceparent` form: `00-<trace id>-<span id>-01`.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", Hex(&self.trace_id), Hex(&self.span_id))
    }

    /// The trace context of a `traceparent` value, if it is one.
    ///
    /// ```
    /// use agentbus::TraceContext;
    /// let t = TraceContext { trace_id: [0xab; 16], span_id: [1; 8] };
    /// assert_eq!(t.traceparent(), format!("00-{}-{}-01", "ab".repeat(16), "01".repeat(8)));
    /// assert_eq!(TraceContext::from_traceparent(&t.traceparent()), Some(t));
    /// assert_eq!(TraceContext::from_traceparent("00-zz-01-01"), None);
    /// ```
    pub fn from_traceparent(value: &str) -> Option<TraceContext> {
        let mut parts = value.split('-');
        let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
        Some(TraceContext {
            trace_id: parse_hex(trace)?,
            span_id: parse_hex(span)?,
        })
    }
}

/// Bytes as lowercase hex, written only when displayed (trace and span ids).
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// `N` bytes from exactly `2 * N` hex digits, if `text` is that.
///
/// ```
/// assert_eq!(agentbus::header::parse_hex::<2>("0aFf"), Some([0x0a, 0xff]));
/// assert_eq!(agentbus::header::parse_hex::<2>("0aF"), None);
/// ```
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl FrameHeader {
    /// Bytes before the body: the header and its extension block.
    pub fn prefix_len(&self) -> usize {
        HEADER_LEN + self.extension_len as usize
    }

    /// Bytes of the whole message: header, extension block and body.
    pub fn frame_len(&self) -> usize {
        self.prefix_len() + self.body_len as usize
    }

    /// Writes the fixed header into the first [`HEADER_LEN`] bytes of `out` (the extension
    /// block, when there is one, is written after it by its owner:
    /// [`crate::extensions::Extras::write`], or the router copying it as it is).
    /// [`Flags::EXTENDED`] is set from `extension_len`, whatever `flags` says.
    ///
    /// A source slot or epoch past 16 bits (only a caller writing its own header could set one)
    /// is written as 0xFFFF; the router restamps both on every frame it routes anyway.
    ///
    /// # Panics
    /// If `out` is shorter than [`HEADER_LEN`] (a caller bug: frames are claimed with room).
    pub fn write(&self, out: &mut [u8]) {
        let ext = self.extension_len;
        let b = &mut out[..HEADER_LEN];
        let flags = if ext > 0 {
            self.flags | Flags::EXTENDED
        } else {
            self.flags.without(Flags::EXTENDED)
        };
        b[0] = self.message_type as u8;
        b[1] = self.priority as u8;
        b[2] = self.route as u8;
        b[3] = flags.bits();
        b[4..8].copy_from_slice(&(ext + self.body_len).to_le_bytes());
        let slot = u16::try_from(self.source_slot).unwrap_or(u16::MAX);
        let epoch = u16::try_from(self.source_epoch).unwrap_or(u16::MAX);
        b[8..10].copy_from_slice(&slot.to_le_bytes());
        b[10..12].copy_from_slice(&epoch.to_le_bytes());
        b[12..16].copy_from_slice(&self.ttl_ms.to_le_bytes());
        b[16..24].copy_from_slice(&self.destination.to_le_bytes());
        b[24..32].copy_from_slice(&self.message_id.0.to_le_bytes());
        b[32..40].copy_from_slice(&self.correlation_id.0.to_le_bytes());
        b[40..48].copy_from_slice(&self.timestamp_ns.to_le_bytes());
    }

    /// Reads and checks a header (and its extension block) at the start of `frame`: every
    /// enum and flag, the block's items, and that the body it announces fits in `frame`.
    pub fn parse(frame: &[u8]) -> Result<FrameHeader, DecodeError> {
        if frame.len() < HEADER_LEN {
            return Err(DecodeError::new(format!(
                "frame of {} bytes is shorter than the {HEADER_LEN}-byte header",
                frame.len()
            )));
        }
        let b: &[u8; HEADER_LEN] = frame[..HEADER_LEN]
            .try_into()
            .expect("the length was checked above");
        let message_type = MessageType::from_u8(b[0])
            .ok_or_else(|| DecodeError::new(format!("unknown message type {}", b[0])))?;
        let priority = MessagePriority::from_u8(b[1])
            .ok_or_else(|| DecodeError::new(format!("unknown priority {}", b[1])))?;
        let route = RouteKind::from_u8(b[2])
            .ok_or_else(|| DecodeError::new(format!("unknown route kind {}", b[2])))?;
        let flags = Flags::from_bits(b[3])
            .ok_or_else(|| DecodeError::new(format!("unknown flags {:#04x}", b[3])))?;
        if flags.contains(Flags::RAW | Flags::TYPED) {
            return Err(DecodeError::new(
                "flags say the body is both raw bytes and a typed value",
            ));
        }
        let after = u32_at(b, 4) as usize;
        let present = frame.len() - HEADER_LEN;
        if after > present {
            return Err(DecodeError::new(format!(
                "body of {after} bytes announced, {present} present"
            )));
        }
        let ext = if flags.contains(Flags::EXTENDED) {
            crate::extensions::check(&frame[HEADER_LEN..HEADER_LEN + after])?.0
        } else {
            0
        };
        Ok(FrameHeader {
            message_type,
            priority,
            route,
            flags: flags.without(Flags::EXTENDED),
            body_len: (after - ext) as u32,
            source_slot: u16_at(b, 8) as u32,
            source_epoch: u16_at(b, 10) as u32,
            destination: u64_at(b, 16),
            message_id: MessageId(u64_at(b, 24)),
            correlation_id: MessageId(u64_at(b, 32)),
            timestamp_ns: u64_at(b, 40),
            ttl_ms: u32_at(b, 12),
            extension_len: ext as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::Extras;

    const TRACED: Extras<'static> = Extras {
        trace: TraceContext {
            trace_id: [1; 16],
            span_id: [2; 8],
        },
        ..Extras::NONE
    };
    /// 2 (length) + 3 (tag, length) + 24, padded to 16.
    const TRACE_BLOCK: usize = 32;

    fn sample() -> FrameHeader {
        FrameHeader {
            message_type: MessageType::Coordination,
            priority: MessagePriority::High,
            route: RouteKind::Capability,
            flags: Flags::ACK_REQUESTED | Flags::IS_REPLY,
            body_len: 3,
            source_slot: 7,
            source_epoch: 3,
            destination: 0xDEAD_BEEF,
            message_id: MessageId(u64::MAX - 1),
            correlation_id: MessageId(42),
            timestamp_ns: 1_700_000_000_000_000_000,
            ttl_ms: 250,
            extension_len: TRACE_BLOCK as u32,
        }
    }

    fn traced_frame() -> [u8; HEADER_LEN + TRACE_BLOCK + 3] {
        let mut buf = [0u8; HEADER_LEN + TRACE_BLOCK + 3];
        sample().write(&mut buf);
        assert_eq!(TRACED.block_len().unwrap(), TRACE_BLOCK);
        TRACED.write(&mut buf[HEADER_LEN..HEADER_LEN + TRACE_BLOCK]);
        buf
    }

    #[test]
    fn a_header_round_trips_through_its_wire_form() {
        let buf = traced_frame();
        assert_eq!(FrameHeader::parse(&buf).unwrap(), sample());
        assert_eq!(sample().prefix_len(), HEADER_LEN + TRACE_BLOCK);
        // Nothing optional: no extension block at all.
        let plain = FrameHeader {
            extension_len: 0,
            ..sample()
        };
        let mut buf = [0u8; HEADER_LEN + 3];
        plain.write(&mut buf);
        assert_eq!(buf[3] & Flags::EXTENDED.bits(), 0);
        assert_eq!(FrameHeader::parse(&buf).unwrap(), plain);
        assert_eq!(plain.frame_len(), HEADER_LEN + 3);
    }

    #[test]
    fn every_bad_field_is_refused_with_its_reason() {
        let good = traced_frame();
        let cases: &[(usize, u8, &str)] = &[
            (0, 10, "message type"),
            (1, 4, "priority"),
            (2, 6, "route kind"),
            (3, 0x80, "flags"),
            (4, 40, "body"),
            (HEADER_LEN, 17, "extension block"),
            (HEADER_LEN + 2, 9, "unknown item"),
            (HEADER_LEN + 3, 200, "runs past"),
        ];
        for &(at, v, what) in cases {
            let mut b = good;
            b[at] = v;
            let err = FrameHeader::parse(&b).unwrap_err();
            assert!(err.reason.contains(what), "{what}: {err}");
        }
        assert!(FrameHeader::parse(&good[..HEADER_LEN - 1])
            .unwrap_err()
            .reason
            .contains("shorter"));
    }
}
