//! Fuzzing the frame header and its extension block (`FrameHeader::parse`, `FrameHeader::write`,
//! `Extras`, `Extensions`): whatever bytes a peer writes into a lane, parsing never panics,
//! and a header it accepts announces no byte past those given.
//!
//! Short run: `cargo test -p agentbus --test fuzz_header`; long run:
//! `FUZZ_CASES=100000 cargo test -p agentbus --release --test fuzz_header`.

mod fuzz_support;

use std::collections::BTreeMap;

use agentbus::*;
use fuzz_support::{aligned, config};
use proptest::prelude::*;

/// Sender-settable flags, with at most one of `RAW` and `TYPED`.
fn flags() -> impl Strategy<Value = Flags> {
    (0u8..16, prop::sample::select(&[0u8, 32, 64][..]))
        .prop_map(|(low, kind)| Flags::from_bits(low | kind).expect("only known bits"))
}

/// A header as a sender writes it (lengths filled in by [`frame`]).
fn header() -> impl Strategy<Value = FrameHeader> {
    (
        (
            prop::sample::select(MessageType::ALL),
            prop::sample::select(MessagePriority::ALL),
            prop::sample::select(RouteKind::ALL),
            flags(),
        ),
        (any::<u16>(), any::<u16>(), any::<u32>()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |((message_type, priority, route, flags), (slot, epoch, ttl), (dest, id, corr, ts))| {
                FrameHeader {
                    message_type,
                    priority,
                    route,
                    flags,
                    body_len: 0,
                    source_slot: slot as u32,
                    source_epoch: epoch as u32,
                    destination: dest,
                    message_id: MessageId(id),
                    correlation_id: MessageId(corr),
                    timestamp_ns: ts,
                    ttl_ms: ttl,
                    extension_len: 0,
                }
            },
        )
}

/// What an extension block carries, owned ([`Extras`] borrows it).
#[derive(Debug, Clone)]
struct OwnedExtras {
    trace: TraceContext,
    reply_to: Option<String>,
    metadata: BTreeMap<String, String>,
}

impl OwnedExtras {
    fn extras(&self) -> Extras<'_> {
        Extras {
            trace: self.trace,
            reply_to: self.reply_to.as_deref(),
            metadata: (!self.metadata.is_empty()).then_some(&self.metadata),
        }
    }
}

/// Extras of every kind: often none, sometimes a key too long for the wire (255 bytes).
fn extras() -> impl Strategy<Value = OwnedExtras> {
    let trace = prop_oneof![
        Just(TraceContext::default()),
        (any::<[u8; 16]>(), any::<[u8; 8]>())
            .prop_map(|(trace_id, span_id)| TraceContext { trace_id, span_id }),
    ];
    let key = prop_oneof![8 => "\\PC{0,12}", 1 => "k{250,260}"];
    (
        trace,
        prop::option::of("\\PC{0,40}"),
        prop::collection::btree_map(key, "\\PC{0,24}", 0..4),
    )
        .prop_map(|(trace, reply_to, metadata)| OwnedExtras {
            trace,
            reply_to,
            metadata,
        })
}

/// The frame a sender writes: `header` with `extras` and `body`; the header with its lengths
/// set, or the encoder's refusal of the extras.
fn frame(
    header: &FrameHeader,
    extras: &Extras<'_>,
    body: &[u8],
) -> Result<(FrameHeader, Vec<u8>), EncodeError> {
    let mut h = *header;
    h.extension_len = extras.block_len()? as u32;
    h.body_len = body.len() as u32;
    let mut buf = vec![0; h.frame_len()];
    h.write(&mut buf);
    extras.write(&mut buf[HEADER_LEN..h.prefix_len()]);
    buf[h.prefix_len()..].copy_from_slice(body);
    Ok((h, buf))
}

/// What every header `parse` accepts must hold: it fits the bytes given, its block is whole
/// 16-byte units, its flags are consistent, and writing it gives back the bytes it was read
/// from. Reading its extensions and body through `decode` must not panic either.
fn check_accepted(bytes: &[u8], h: &FrameHeader) -> Result<(), TestCaseError> {
    prop_assert!(
        h.frame_len() <= bytes.len(),
        "{h:?} past {} bytes",
        bytes.len()
    );
    prop_assert_eq!(h.extension_len % 16, 0);
    prop_assert!(!h.flags.contains(Flags::EXTENDED), "parse strips EXTENDED");
    prop_assert!(!h.flags.contains(Flags::RAW | Flags::TYPED));
    let mut rewritten = [0u8; HEADER_LEN];
    h.write(&mut rewritten);
    prop_assert_eq!(
        &rewritten[..],
        &bytes[..HEADER_LEN],
        "parse and write are inverses"
    );
    prop_assert_eq!(FrameHeader::parse(&bytes[..h.frame_len()]), Ok(*h));
    if let Ok(env) = decode(&aligned(bytes)) {
        prop_assert_eq!(&env.header, h);
        let _ = (env.extensions.trace(), env.extensions.reply_to());
        let _ = env.extensions.metadata_map();
        let _ = env.to_message();
    }
    Ok(())
}

/// One of the header's fields: its offset and width on the wire.
const FIELDS: [(usize, usize); 12] = [
    (0, 1),  // message type
    (1, 1),  // priority
    (2, 1),  // route kind
    (3, 1),  // flags
    (4, 4),  // bytes after the header
    (8, 2),  // source slot
    (10, 2), // source epoch
    (12, 4), // ttl
    (16, 8), // destination
    (24, 8), // message id
    (32, 8), // correlation id
    (40, 8), // timestamp
];

/// The data of an item with `tag`: mostly well formed (a 24-byte trace, UTF-8 text, a key
/// length that fits), sometimes any bytes at all.
fn item_data(tag: u8) -> BoxedStrategy<Vec<u8>> {
    let any_bytes = prop::collection::vec(any::<u8>(), 0..40);
    let good = match tag {
        1 => any::<[u8; 24]>().prop_map(|b| b.to_vec()).boxed(),
        2 => "\\PC{0,20}".prop_map(String::into_bytes).boxed(),
        3 => ("\\PC{0,8}", "\\PC{0,12}")
            .prop_map(|(k, v)| {
                let mut b = vec![k.len() as u8];
                b.extend_from_slice(k.as_bytes());
                b.extend_from_slice(v.as_bytes());
                b
            })
            .boxed(),
        _ => any_bytes.clone().boxed(),
    };
    prop_oneof![4 => good, 1 => any_bytes].boxed()
}

/// Extension block bytes built from items a peer might write: mostly well formed, and
/// sometimes with unknown tags, lengths that lie, bytes that are not UTF-8, padding that is
/// not zero, or a block length that lies.
fn block() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![8 => 1u8..=3, 1 => any::<u8>()].prop_flat_map(|tag| {
        (
            Just(tag),
            item_data(tag),
            prop_oneof![8 => Just(None), 1 => any::<u16>().prop_map(Some)],
        )
    });
    (
        prop::collection::vec(item, 0..4),
        prop_oneof![8 => Just(None), 1 => any::<u16>().prop_map(Some)],
        prop_oneof![8 => Just(0u8), 1 => any::<u8>()],
    )
        .prop_map(|(items, lying_len, pad)| {
            let mut b = vec![0u8, 0];
            for (tag, data, lying) in items {
                b.push(tag);
                let n = lying.unwrap_or(data.len() as u16);
                b.extend_from_slice(&n.to_le_bytes());
                b.extend_from_slice(&data);
            }
            let len = b.len().next_multiple_of(16);
            b.resize(len, pad);
            let n = lying_len.unwrap_or(len as u16);
            b[..2].copy_from_slice(&n.to_le_bytes());
            b
        })
}

proptest! {
    #![proptest_config(config(1024))]

    /// Bytes of any length and content: never a panic, and what is accepted holds.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(h) = FrameHeader::parse(&bytes) {
            check_accepted(&bytes, &h)?;
        }
        let _ = decode(&aligned(&bytes));
    }

    /// Bytes whose first four look like a header (so that parsing gets past them) and whose
    /// length field is anything: the length never lets a frame past the bytes given.
    #[test]
    fn plausible_headers_over_arbitrary_bytes_never_panic(
        kinds in (0u8..12, 0u8..5, 0u8..7, any::<u8>()),
        after in prop_oneof![0u32..300, any::<u32>()],
        mut bytes in prop::collection::vec(any::<u8>(), HEADER_LEN..HEADER_LEN + 256),
    ) {
        bytes[0] = kinds.0;
        bytes[1] = kinds.1;
        bytes[2] = kinds.2;
        // Known bits, EXTENDED mostly clear (a random block is almost always refused).
        bytes[3] = kinds.3 & if kinds.3 % 4 == 0 { 0x7F } else { 0x6F };
        bytes[4..8].copy_from_slice(&after.to_le_bytes());
        if let Ok(h) = FrameHeader::parse(&bytes) {
            check_accepted(&bytes, &h)?;
        }
    }

    /// A header and extension block as a sender writes them parse back to what was written,
    /// whatever follows them; the extensions read back as they were set.
    #[test]
    fn a_written_header_round_trips(
        header in header(),
        extras in extras(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        trailing in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let written = frame(&header, &extras.extras(), &body);
        let too_long = extras.metadata.keys().any(|k| k.len() > 255);
        match written {
            Err(EncodeError::MetadataKeyTooLong { .. }) if too_long => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("refused: {e}"))),
            Ok(_) if too_long => return Err(TestCaseError::fail("a long key was written")),
            Ok((h, mut bytes)) => {
                prop_assert_eq!(FrameHeader::parse(&bytes), Ok(h));
                check_accepted(&bytes, &h)?;
                bytes.extend_from_slice(&trailing);
                prop_assert_eq!(FrameHeader::parse(&bytes), Ok(h));
                if h.flags.contains(Flags::RAW) {
                    let frame = aligned(&bytes);
                    let env = decode(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(env.raw(), Some(&body[..]));
                    prop_assert_eq!(env.extensions.trace(), extras.trace);
                    prop_assert_eq!(env.extensions.reply_to(), extras.reply_to.as_deref());
                    prop_assert_eq!(env.extensions.metadata_map(), extras.metadata.clone());
                }
            }
        }
    }

    /// A valid frame with one header field set to anything: parsed to exactly that value, or
    /// refused, as the field's rules say.
    #[test]
    fn one_mutated_field_parses_to_its_value_or_is_refused(
        header in header(),
        extras in extras(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        field in 0..FIELDS.len(),
        value in prop_oneof![any::<u64>(), 0u64..300],
    ) {
        let Ok((h, mut bytes)) = frame(&header, &extras.extras(), &body) else {
            return Ok(()); // extras the encoder refuses: the round trip checks that
        };
        let (at, width) = FIELDS[field];
        bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        let v = value & (u64::MAX >> (64 - 8 * width));
        let parsed = FrameHeader::parse(&bytes);
        if let Ok(p) = &parsed {
            check_accepted(&bytes, p)?;
        }
        let byte = v as u8;
        match field {
            0 => prop_assert_eq!(parsed.map(|p| p.message_type).ok(), MessageType::from_u8(byte)),
            1 => prop_assert_eq!(parsed.map(|p| p.priority).ok(), MessagePriority::from_u8(byte)),
            2 => prop_assert_eq!(parsed.map(|p| p.route).ok(), RouteKind::from_u8(byte)),
            3 => {
                let wanted = Flags::from_bits(byte)
                    .filter(|f| !f.contains(Flags::RAW | Flags::TYPED));
                match (wanted, parsed) {
                    (None, parsed) => prop_assert!(parsed.is_err(), "flags {byte:#x} accepted"),
                    (Some(f), Ok(p)) => prop_assert_eq!(p.flags, f.without(Flags::EXTENDED)),
                    // Setting EXTENDED on a frame without a block makes its body one: refused
                    // unless the body happens to be a valid block.
                    (Some(f), Err(e)) => prop_assert!(
                        f.contains(Flags::EXTENDED) && h.extension_len == 0,
                        "flags {byte:#x} refused: {e}"
                    ),
                }
            }
            4 => {
                let after = v as usize;
                let fits = after <= bytes.len() - HEADER_LEN && after >= h.extension_len as usize;
                prop_assert_eq!(parsed.is_ok(), fits, "{} bytes after the header", after);
                if let Ok(p) = parsed {
                    prop_assert_eq!(p.body_len as usize, after - h.extension_len as usize);
                }
            }
            _ => {
                let p = parsed.map_err(|e| TestCaseError::fail(e.to_string()))?;
                let got = match field {
                    5 => p.source_slot as u64,
                    6 => p.source_epoch as u64,
                    7 => p.ttl_ms as u64,
                    8 => p.destination,
                    9 => p.message_id.0,
                    10 => p.correlation_id.0,
                    _ => p.timestamp_ns,
                };
                prop_assert_eq!(got, v);
                prop_assert_eq!(p, FrameHeader { source_slot: p.source_slot, source_epoch: p.source_epoch,
                    ttl_ms: p.ttl_ms, destination: p.destination, message_id: p.message_id,
                    correlation_id: p.correlation_id, timestamp_ns: p.timestamp_ns, ..h });
            }
        }
    }

    /// Extension blocks a peer might write, lying lengths and all: never a panic; a block that
    /// is accepted reads back without one.
    #[test]
    fn arbitrary_extension_blocks_never_panic(
        header in header(),
        block in block(),
        body in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut h = header;
        h.flags = h.flags.without(Flags::TYPED) | Flags::RAW;
        h.extension_len = 0;
        h.body_len = (block.len() + body.len()) as u32;
        let mut bytes = vec![0; HEADER_LEN];
        h.write(&mut bytes);
        bytes[3] |= Flags::EXTENDED.bits();
        bytes.extend_from_slice(&block);
        bytes.extend_from_slice(&body);
        if let Ok(p) = FrameHeader::parse(&bytes) {
            check_accepted(&bytes, &p)?;
            prop_assert_eq!(p.prefix_len() + p.body_len as usize, bytes.len());
        }
    }

    /// A valid frame with bits flipped anywhere, cut short or run on: never a panic, and what
    /// is accepted holds.
    #[test]
    fn a_valid_frame_corrupted_never_panics(
        header in header(),
        extras in extras(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..6),
        cut in any::<prop::sample::Index>(),
        how in 0u8..3,
    ) {
        let Ok((_, mut bytes)) = frame(&header, &extras.extras(), &body) else {
            return Ok(());
        };
        match how {
            0 => {
                for (i, bit) in flips {
                    let i = i.index(bytes.len());
                    bytes[i] ^= 1 << bit;
                }
            }
            1 => bytes.truncate(cut.index(bytes.len())),
            _ => bytes.extend(flips.iter().map(|(i, b)| i.index(256) as u8 ^ b)),
        }
        if let Ok(p) = FrameHeader::parse(&bytes) {
            check_accepted(&bytes, &p)?;
        }
    }
}
