//! The fixed routing header in front of every message body.
//!
//! It carries what the router needs and nothing else, at fixed offsets, little-endian, so the
//! router reads a frame's route without touching its body. Wire layout (112 bytes, a multiple of
//! 16 so the body after it stays 16-byte aligned):
//!
//! | offset | field | | offset | field |
//! | --- | --- | --- | --- | --- |
//! | 0 | magic `u16` | | 40 | correlation id `u128` (0: none) |
//! | 2 | version `u8` | | 56 | reply-to id `u64` (0: none) |
//! | 3 | message type `u8` | | 64 | timestamp, ns since the epoch `u64` |
//! | 4 | priority `u8` | | 72 | ttl, ms `u32` (0: none) |
//! | 5 | route kind `u8` | | 76 | source epoch `u32` (stamped by the router) |
//! | 6 | flags `u16` | | 80 | trace id `[u8; 16]` |
//! | 8 | body length `u32` | | 96 | span id `[u8; 8]` |
//! | 12 | source slot `u32` (stamped by the router) | | 104 | reserved `[u8; 8]` (zero) |
//! | 16 | destination id `u64` | | | |
//! | 24 | message id `u128` | | | |

use crate::error::DecodeError;
use crate::ids::MessageId;
use crate::kinds::{MessagePriority, MessageType, RouteKind};

/// Bytes of the header on the wire.
pub const HEADER_LEN: usize = 112;
/// First two bytes of every header.
pub const HEADER_MAGIC: u16 = 0xA6B5;
/// The layout version this build writes and reads.
pub const HEADER_VERSION: u8 = 1;

/// Header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u16);

impl Flags {
    /// The receiver's client acks after its handler returns (at-least-once delivery).
    pub const ACK_REQUESTED: Flags = Flags(1);
    /// This message answers the one named by its correlation id.
    pub const IS_REPLY: Flags = Flags(2);
    /// This is an acknowledgement.
    pub const IS_ACK: Flags = Flags(4);
    /// The sender waits for a reply correlated to this message's id (request/response).
    pub const EXPECTS_REPLY: Flags = Flags(8);
    /// Every flag this version knows.
    pub const ALL: Flags = Flags(15);

    /// No flags.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// The wire bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Flags from wire bits, or `None` if an unknown bit is set.
    pub const fn from_bits(bits: u16) -> Option<Flags> {
        if bits & !Flags::ALL.0 == 0 {
            Some(Flags(bits))
        } else {
            None
        }
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

/// W3C trace-context sized ids, set by the sender; all zeros means "not traced".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TraceContext {
    /// 16-byte trace id.
    pub trace_id: [u8; 16],
    /// 8-byte span id.
    pub span_id: [u8; 8],
}

/// The routing header, decoded. `#[repr(C)]` with fixed-size fields; its wire form is the
/// explicit little-endian layout above, written by [`FrameHeader::write`] and checked by
/// [`FrameHeader::parse`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The body's type.
    pub message_type: MessageType,
    /// Its priority (which lane it travels in).
    pub priority: MessagePriority,
    /// How the router finds its destination.
    pub route: RouteKind,
    /// Flags.
    pub flags: Flags,
    /// Bytes of archived body after the header.
    pub body_len: u32,
    /// The sender's slot, stamped by the router from the lane it read (so it cannot be forged).
    pub source_slot: u32,
    /// The epoch of the sender's slot, stamped by the router: with the slot, the address a
    /// reply goes to.
    pub source_epoch: u32,
    /// Agent slot, topic id, type id or capability-set id, by route kind.
    pub destination: u64,
    /// The message's id.
    pub message_id: MessageId,
    /// The id of the message this one answers or follows.
    pub correlation_id: MessageId,
    /// Interned id of where replies go (0: to the sender).
    pub reply_to: u64,
    /// When it was sent, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// Milliseconds it may wait for delivery before it is dead-lettered (0: the bus default).
    pub ttl_ms: u32,
    /// Trace context.
    pub trace: TraceContext,
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

fn u128_at(b: &[u8; HEADER_LEN], at: usize) -> u128 {
    u128::from_le_bytes(std::array::from_fn(|i| b[at + i]))
}

impl FrameHeader {
    /// Writes the wire form into the first [`HEADER_LEN`] bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`HEADER_LEN`] (a caller bug: frames are claimed with room).
    pub fn write(&self, out: &mut [u8]) {
        let b = &mut out[..HEADER_LEN];
        b[0..2].copy_from_slice(&HEADER_MAGIC.to_le_bytes());
        b[2] = HEADER_VERSION;
        b[3] = self.message_type as u8;
        b[4] = self.priority as u8;
        b[5] = self.route as u8;
        b[6..8].copy_from_slice(&self.flags.bits().to_le_bytes());
        b[8..12].copy_from_slice(&self.body_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.source_slot.to_le_bytes());
        b[16..24].copy_from_slice(&self.destination.to_le_bytes());
        b[24..40].copy_from_slice(&self.message_id.0.to_le_bytes());
        b[40..56].copy_from_slice(&self.correlation_id.0.to_le_bytes());
        b[56..64].copy_from_slice(&self.reply_to.to_le_bytes());
        b[64..72].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b[72..76].copy_from_slice(&self.ttl_ms.to_le_bytes());
        b[76..80].copy_from_slice(&self.source_epoch.to_le_bytes());
        b[80..96].copy_from_slice(&self.trace.trace_id);
        b[96..104].copy_from_slice(&self.trace.span_id);
        b[104..112].fill(0);
    }

    /// Reads and checks a header at the start of `frame`: magic, version, every enum and flag,
    /// and that the body it announces fits in `frame`.
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
        let magic = u16_at(b, 0);
        if magic != HEADER_MAGIC {
            return Err(DecodeError::new(format!("bad header magic {magic:#06x}")));
        }
        if b[2] != HEADER_VERSION {
            return Err(DecodeError::new(format!(
                "header version {} (this build reads {HEADER_VERSION})",
                b[2]
            )));
        }
        let message_type = MessageType::from_u8(b[3])
            .ok_or_else(|| DecodeError::new(format!("unknown message type {}", b[3])))?;
        let priority = MessagePriority::from_u8(b[4])
            .ok_or_else(|| DecodeError::new(format!("unknown priority {}", b[4])))?;
        let route = RouteKind::from_u8(b[5])
            .ok_or_else(|| DecodeError::new(format!("unknown route kind {}", b[5])))?;
        let flags = Flags::from_bits(u16_at(b, 6))
            .ok_or_else(|| DecodeError::new(format!("unknown flags {:#06x}", u16_at(b, 6))))?;
        let body_len = u32_at(b, 8);
        if body_len as usize > frame.len() - HEADER_LEN {
            return Err(DecodeError::new(format!(
                "body of {body_len} bytes announced, {} present",
                frame.len() - HEADER_LEN
            )));
        }
        let mut trace = TraceContext::default();
        trace.trace_id.copy_from_slice(&b[80..96]);
        trace.span_id.copy_from_slice(&b[96..104]);
        Ok(FrameHeader {
            message_type,
            priority,
            route,
            flags,
            body_len,
            source_slot: u32_at(b, 12),
            source_epoch: u32_at(b, 76),
            destination: u64_at(b, 16),
            message_id: MessageId(u128_at(b, 24)),
            correlation_id: MessageId(u128_at(b, 40)),
            reply_to: u64_at(b, 56),
            timestamp_ns: u64_at(b, 64),
            ttl_ms: u32_at(b, 72),
            trace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            message_id: MessageId(u128::MAX - 1),
            correlation_id: MessageId(42),
            reply_to: 9,
            timestamp_ns: 1_700_000_000_000_000_000,
            ttl_ms: 250,
            trace: TraceContext {
                trace_id: [1; 16],
                span_id: [2; 8],
            },
        }
    }

    #[test]
    fn a_header_round_trips_through_its_wire_form() {
        let mut buf = [0u8; HEADER_LEN + 3];
        sample().write(&mut buf);
        assert_eq!(FrameHeader::parse(&buf).unwrap(), sample());
    }

    #[test]
    fn every_bad_field_is_refused_with_its_reason() {
        let mut good = [0u8; HEADER_LEN + 3];
        sample().write(&mut good);
        let cases: &[(usize, u8, &str)] = &[
            (0, 0, "magic"),
            (2, 9, "version"),
            (3, 10, "message type"),
            (4, 4, "priority"),
            (5, 6, "route kind"),
            (7, 0x80, "flags"),
            (8, 4, "body"),
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
