//! Messages too large for the lane are refused with both sizes, nothing is committed, and the
//! lane stays usable.

mod support;

use agentbus::codec::header_for;
use agentbus::*;
use agentbus_ipc::ring::{Ring, RingOptions};
use support::{agent, route};

#[test]
fn a_message_larger_than_the_lane_is_refused_and_nothing_is_committed() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(4096)).unwrap().split();
    let max = tx.max_payload();
    let big = Message::raw(
        agent("a", "feed"),
        MessageType::Notification,
        vec![7; 10_000],
    );
    match encode(&mut tx, &header_for(&big, route(), 1), &big) {
        Err(EncodeError::TooLarge { size, max: m }) => {
            assert_eq!(m, max);
            assert!(size > 10_000, "the real size is reported: {size}");
            let text = CommunicationError::from(EncodeError::TooLarge { size, max: m }).to_string();
            assert!(text.contains("larger lanes"), "{text}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(rx.peek().unwrap().is_none(), "nothing committed");
    assert_eq!(tx.position(), 0);
    // The lane still carries messages, including one that needs more than the first claim.
    let medium = Message::raw(agent("a", "feed"), MessageType::Notification, vec![1; 1500]);
    encode(&mut tx, &header_for(&medium, route(), 1), &medium).unwrap();
    let env = decode(rx.peek().unwrap().unwrap()).unwrap();
    assert_eq!(env.to_message().unwrap().payload, medium.payload);
}

#[test]
fn a_full_lane_reports_queue_full_and_commits_nothing() {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(4096)).unwrap().split();
    let m = Message::raw(agent("a", "feed"), MessageType::Notification, vec![3; 900]);
    let mut sent = 0;
    loop {
        match encode(&mut tx, &header_for(&m, route(), 1), &m) {
            Ok(()) => sent += 1,
            Err(EncodeError::QueueFull { needed, free }) => {
                assert!(needed > free);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent >= 1);
    let mut got = 0;
    while let Some(frame) = rx.peek().unwrap() {
        decode(frame).unwrap();
        rx.pop();
        got += 1;
    }
    assert_eq!(got, sent, "only whole messages were committed");
}
