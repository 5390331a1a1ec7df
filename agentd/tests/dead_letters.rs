//! Frames that cannot be delivered end as dead letters with their reasons; nothing vanishes:
//! sent = delivered + dead-lettered.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use agentbus::client::Agent;
use agentbus::CommunicationError;
use support::*;

/// Sends notes to `to` until `n` were accepted or the sender's lane stays full for 50 ms (the
/// receiver's lane is full too, so the router holds frames back); returns the ids.
fn flood(from: &mut Agent, to: &str, n: i64, ttl: Option<Duration>) -> Vec<u128> {
    let mut ids = Vec::new();
    'sending: for seq in 0..n {
        let mut m = note(from, seq);
        if let Some(t) = ttl {
            m = m.ttl(t);
        }
        let mut tries = 0;
        loop {
            match from.send(to, &m) {
                Ok(id) => {
                    ids.push(id.0);
                    break;
                }
                Err(CommunicationError::QueueFull { .. }) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(CommunicationError::QueueFull { .. }) => break 'sending,
                Err(e) => panic!("{e}"),
            }
        }
    }
    ids
}

fn account(receiver: &mut Agent, observer: &mut Agent, sent: &[u128], reason: &str) {
    let mut received = HashSet::new();
    while let Some(d) = receiver.recv_timeout(Duration::from_millis(300)).unwrap() {
        received.insert(d.header().message_id.0);
    }
    let dead: HashSet<u128> = observer
        .dead_letters()
        .unwrap()
        .into_iter()
        .filter(|l| sent.contains(&l.message_id))
        .inspect(|l| assert!(l.reason.contains(reason), "reason {:?}", l.reason))
        .map(|l| l.message_id)
        .collect();
    assert!(!dead.is_empty(), "the full lane made some dead letters");
    assert!(
        !received.is_empty(),
        "some were delivered before the lane filled"
    );
    assert!(
        received.is_disjoint(&dead),
        "nothing is both delivered and dead"
    );
    assert_eq!(
        received.len() + dead.len(),
        sent.len(),
        "sent = delivered + dead-lettered ({} + {} of {})",
        received.len(),
        dead.len(),
        sent.len()
    );
}

#[test]
fn frames_held_by_a_full_lane_past_their_ttl_become_dead_letters() {
    let mut cfg = config("ttl");
    cfg.lane_capacity = 16 << 10;
    let bus = start_with(cfg);
    let mut sender = bus.attach("sender", "strategy");
    let mut receiver = bus.attach("receiver", "risk");
    let sent = flood(
        &mut sender,
        "receiver",
        500,
        Some(Duration::from_millis(100)),
    );
    assert!(sent.len() > 40, "more than the receiver's lane holds");
    std::thread::sleep(Duration::from_millis(400)); // past every ttl
    account(&mut receiver, &mut sender, &sent, "ttl");
}

#[test]
fn without_a_ttl_the_delivery_timeout_applies() {
    let mut cfg = config("timeout");
    cfg.lane_capacity = 16 << 10;
    cfg.delivery_timeout = Duration::from_millis(150);
    let bus = start_with(cfg);
    let mut sender = bus.attach("sender", "strategy");
    let mut receiver = bus.attach("receiver", "risk");
    let sent = flood(&mut sender, "receiver", 500, None);
    std::thread::sleep(Duration::from_millis(500));
    account(&mut receiver, &mut sender, &sent, "ttl");
}

#[test]
fn the_bus_counters_balance() {
    let mut cfg = config("counters");
    cfg.lane_capacity = 16 << 10;
    let bus = start_with(cfg);
    let mut sender = bus.attach("sender", "strategy");
    let mut receiver = bus.attach("receiver", "risk");
    let sent = flood(
        &mut sender,
        "receiver",
        300,
        Some(Duration::from_millis(50)),
    );
    std::thread::sleep(Duration::from_millis(300));
    while receiver
        .recv_timeout(Duration::from_millis(200))
        .unwrap()
        .is_some()
    {}
    // The router publishes its counters asynchronously: wait until they cover every frame.
    eventually("the router counted every frame", || {
        let s = sender.stats().unwrap();
        s.frames_in == sent.len() as u64 && s.delivered + s.dead_lettered == s.frames_in
    });
    let stats = sender.stats().unwrap();
    assert_eq!(stats.frames_in, sent.len() as u64, "{stats:?}");
    assert_eq!(
        stats.delivered + stats.dead_lettered,
        stats.frames_in,
        "{stats:?}"
    );
}
