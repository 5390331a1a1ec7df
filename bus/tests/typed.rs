//! Typed values through a real ring: written in place with extras, read back validated, and
//! corrupted one byte at a time: every result is a value or an error, never a panic.

mod support;

use std::collections::BTreeMap;

use agentbus::codec::{bare_header, typed, typed_unchecked, BodyRef};
use agentbus::*;
use agentbus_ipc::ring::{Ring, RingOptions};
use support::route;

#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize)]
struct Order {
    id: u64,
    symbol: String,
    buy: bool,
    tags: Vec<String>,
}

fn order() -> Order {
    Order {
        id: 42,
        symbol: "AAPL".into(),
        buy: true,
        tags: vec!["algo".into(), "a-rather-longer-tag-than-inline".into()],
    }
}

#[test]
fn a_typed_value_round_trips_with_its_extras_and_reads_the_same_unchecked() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 12)).unwrap().split();
    let meta: BTreeMap<String, String> = [("venue".to_string(), "XNAS".to_string())].into();
    let extras = Extras {
        reply_to: Some("fills.me"),
        metadata: Some(&meta),
        ..Extras::NONE
    };
    let header = bare_header(route(), MessagePriority::High);
    encode_typed(&mut tx, &header, &extras, &order()).unwrap();
    let frame = rx.peek().unwrap().unwrap();
    let env = decode(frame).unwrap();
    assert!(env.header.flags.contains(Flags::TYPED));
    assert_eq!(env.metadata("venue"), Some("XNAS"));
    assert_eq!(env.extensions.reply_to(), Some("fills.me"));
    let o = typed::<Order>(env.body).unwrap();
    assert_eq!(
        (o.id.to_native(), o.symbol.as_str(), o.buy),
        (42, "AAPL", true)
    );
    assert_eq!(o.tags[1].as_str(), "a-rather-longer-tag-than-inline");
    // SAFETY: the frame was just written by `encode_typed` with an Order and not modified.
    let u = unsafe { typed_unchecked::<Order>(env.body) }.unwrap();
    assert_eq!(u.tags.len(), 2);
    assert!(env.payload().is_none() && env.raw().is_none());
}

#[test]
fn a_corrupted_typed_body_is_an_error_or_a_valid_value_never_a_panic() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 12)).unwrap().split();
    encode_typed(
        &mut tx,
        &bare_header(route(), MessagePriority::Normal),
        &Extras::NONE,
        &order(),
    )
    .unwrap();
    let frame = rx.peek().unwrap().unwrap().to_vec();
    let header = FrameHeader::parse(&frame).unwrap();
    let body = header.prefix_len()..header.frame_len();
    let mut refused = 0;
    for at in body.clone() {
        for value in [0x00, 0x7F, 0xFF] {
            // 16-byte aligned, as ring frames are.
            let mut bad = rkyv::util::AlignedVec::<16>::new();
            bad.extend_from_slice(&frame);
            if bad[at] == value {
                continue;
            }
            bad[at] = value;
            match typed::<Order>(BodyRef::Typed(&bad[body.clone()])) {
                Ok(o) => {
                    // Valid by construction: every string and vector lies inside the body.
                    let _ = (
                        o.symbol.len(),
                        o.tags.iter().map(|t| t.len()).sum::<usize>(),
                    );
                }
                Err(e) => {
                    assert!(e.reason.contains("not a valid"), "{e}");
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 0, "no corruption was noticed");
}
