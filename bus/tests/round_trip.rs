//! Every message type goes through a real ring: written in place, read in place, every field
//! checked.

mod support;

use agentbus::codec::header_for;
use agentbus::*;
use agentbus_ipc::ring::{Ring, RingOptions};
use support::{full_message, payloads, route};

#[test]
fn every_message_type_round_trips_through_a_ring_with_every_field() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 16)).unwrap().split();
    let messages: Vec<Message> = payloads()
        .into_iter()
        .enumerate()
        .map(|(i, p)| full_message(p, i as u64))
        .collect();
    assert_eq!(messages.len(), 11, "ten spec types and raw bytes");
    for m in &messages {
        encode(&mut tx, &header_for(m, route(), 5), m).unwrap();
    }
    for m in &messages {
        let frame = rx.peek().unwrap().expect("a frame per message");
        let env = decode(frame).unwrap();
        assert_eq!(env.header.message_type, m.message_type);
        assert_eq!(env.header.route, RouteKind::Multicast);
        assert_eq!(env.header.destination, 77);
        assert_eq!(env.header.source_slot, 5);
        assert_eq!(env.header.flags.without(Flags::RAW), Flags::ACK_REQUESTED);
        assert_eq!(env.header.ttl_ms, 1500);
        assert_eq!(env.header.frame_len(), frame.len());
        assert_eq!(
            env.header.prefix_len(),
            HEADER_LEN + m.extras().block_len().unwrap()
        );
        assert!(
            env.header.prefix_len() > HEADER_LEN,
            "metadata and trace travel"
        );
        // The owned copy equals the original in every field that travels, header and body;
        // `from` and `to` do not travel (the receiver's client resolves the sender from the
        // router-stamped slot; a bare decode knows nobody).
        let copy = env.to_message().unwrap();
        assert_eq!(copy.from, agentbus::body::UNKNOWN_SENDER);
        assert!(copy.to.is_empty());
        assert_eq!(
            copy,
            Message {
                from: agentbus::body::UNKNOWN_SENDER.clone(),
                to: Vec::new(),
                ..m.clone()
            }
        );
        // And the in-place view reads the same without copying.
        assert_eq!(m.to.len(), 2, "the sender named two");
        match &m.payload {
            Payload::Raw(bytes) => assert_eq!(env.raw(), Some(&bytes[..])),
            p => assert_eq!(
                env.payload().expect("a spec payload").message_type(),
                p.message_type()
            ),
        }
        assert_eq!(env.metadata("desk"), Some("equities"));
        assert_eq!(env.extensions.reply_to(), m.reply_to.as_deref());
        assert_eq!(env.extensions.trace(), m.trace);
        rx.pop();
        rx.release();
    }
    assert!(rx.peek().unwrap().is_none());
}

#[test]
fn unchecked_access_reads_what_checked_access_reads() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 16)).unwrap().split();
    let m = full_message(payloads().remove(0), 0);
    encode(&mut tx, &header_for(&m, route(), 1), &m).unwrap();
    let frame = rx.peek().unwrap().unwrap();
    let checked = decode(frame).unwrap().to_message().unwrap();
    // SAFETY: the frame was just written by `encode` in this test and not modified since.
    let unchecked = unsafe { decode_unchecked(frame) }
        .unwrap()
        .to_message()
        .unwrap();
    assert_eq!(checked, unchecked);
    assert_eq!(checked.payload, m.payload);
    assert_eq!(checked.metadata, m.metadata);
    assert_eq!(checked.id, m.id);
}

#[test]
fn a_body_that_contradicts_its_header_type_is_invalid() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 16)).unwrap().split();
    let m = full_message(payloads().remove(0), 0); // a TaskRequest body
    let mut header = header_for(&m, route(), 1);
    header.message_type = MessageType::Heartbeat;
    encode(&mut tx, &header, &m).unwrap();
    let err = decode(rx.peek().unwrap().unwrap()).unwrap_err();
    assert!(err.reason.contains("heartbeat"), "{err}");
}

#[test]
fn constructors_set_the_type_and_leave_optional_fields_reachable() {
    let me = support::agent("me", "strategy");
    let m = Message::heartbeat(me.clone(), Heartbeat::default());
    assert_eq!(m.message_type, MessageType::Heartbeat);
    assert_eq!(m.priority, MessagePriority::Normal);
    assert!(m.ttl.is_none() && m.correlation_id.is_none() && m.to.is_empty());
    let raw = Message::raw(me, MessageType::Notification, vec![1, 2]);
    assert_eq!(raw.payload, Payload::Raw(vec![1, 2]));
}

#[test]
fn a_small_raw_message_is_a_small_frame() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 12)).unwrap().split();
    let m = Message::raw(
        AgentIdentifier::new("a-rather-long-agent-name", "strategy"),
        MessageType::Notification,
        vec![7; 64],
    );
    encode(&mut tx, &header_for(&m, route(), 1), &m).unwrap();
    let frame = rx.peek().unwrap().unwrap();
    eprintln!(
        "a 64-byte raw payload travels as a {}-byte message",
        frame.len()
    );
    // Nothing but the 48-byte header and the bytes: no sender name, no extension block, no
    // archive (368 bytes with the old header, from/to and the archived payload enum). With the
    // ring's 16-byte frame header, two cache lines.
    assert_eq!(frame.len(), HEADER_LEN + 64);
    let env = decode(frame).unwrap();
    assert!(env.header.flags.contains(Flags::RAW));
    assert_eq!(env.raw(), Some(&[7u8; 64][..]));
    assert!(env.payload().is_none());
    assert_eq!(env.to_message().unwrap().payload, m.payload);
    rx.pop();
    rx.release();
    // With metadata, raw bytes stay raw: the metadata goes in an extension block, the body
    // is still only the bytes.
    let tagged = m.clone().metadata("venue", "XNAS");
    encode(&mut tx, &header_for(&tagged, route(), 1), &tagged).unwrap();
    let frame = rx.peek().unwrap().unwrap();
    let env = decode(frame).unwrap();
    assert!(env.header.flags.contains(Flags::RAW) && env.header.extension_len == 16);
    assert_eq!(env.header.prefix_len(), HEADER_LEN + 16);
    assert_eq!(frame.len(), HEADER_LEN + 16 + 64);
    assert_eq!(env.raw(), Some(&[7u8; 64][..]));
    assert_eq!(env.metadata("venue"), Some("XNAS"));
}
