//! Strict priority: CRITICAL overtakes thousands of queued LOW messages.

mod support;

use std::time::Duration;

use agentbus::MessagePriority;
use support::*;

#[test]
fn a_critical_message_sent_after_thousands_of_low_ones_is_received_first() {
    let mut cfg = config("priority");
    cfg.lane_capacity = 4 << 20; // room for thousands of queued messages
    let bus = start_with(cfg);
    let mut sender = bus.attach("sender", "strategy");
    let mut receiver = bus.attach("receiver", "risk");
    let to_receiver = sender.peer("receiver").unwrap();
    const LOW: i64 = 3000;
    for seq in 0..LOW {
        sender
            .send(
                &to_receiver,
                &note(&sender, seq).priority(MessagePriority::Low),
            )
            .unwrap();
    }
    sender
        .send(
            &to_receiver,
            &note(&sender, -1).priority(MessagePriority::Critical),
        )
        .unwrap();
    // Let the router move everything it can before the receiver looks.
    std::thread::sleep(Duration::from_millis(200));
    let first = receiver
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("a message");
    assert_eq!(first.header().priority, MessagePriority::Critical);
    assert_eq!(seq_of(&first), -1);
    drop(first);
    let rest = recv_seqs(&mut receiver, LOW as usize, Duration::from_secs(5));
    assert_eq!(
        rest,
        (0..LOW).collect::<Vec<_>>(),
        "every LOW message, in order"
    );
}
