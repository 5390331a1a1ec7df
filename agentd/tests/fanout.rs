//! Fan-out through full lanes: a topic message whose subscribers' lanes fill at different
//! times reaches each subscriber exactly once, and the router's books count copies as well as
//! frames, so a duplicate could not hide in them.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agentbus::client::Agent;
use agentbus::CommunicationError;
use support::*;

const N: i64 = 4000;

/// Reads notes until `N` arrived or nothing came for 3 s; stalls for `stall` every 50 notes.
fn collect(mut agent: Agent, stall: Duration) -> BTreeMap<i64, u32> {
    let mut seen = BTreeMap::new();
    let mut count = 0;
    while count < N {
        let Some(d) = agent.recv_timeout(Duration::from_secs(3)).expect("recv") else {
            break;
        };
        *seen.entry(seq_of(&d)).or_insert(0u32) += 1;
        drop(d);
        count += 1;
        if count % 50 == 0 && !stall.is_zero() {
            std::thread::sleep(stall);
        }
    }
    // Anything more would be a duplicate.
    while let Some(d) = agent
        .recv_timeout(Duration::from_millis(200))
        .expect("recv")
    {
        *seen.entry(seq_of(&d)).or_insert(0u32) += 1;
    }
    seen
}

#[test]
fn every_subscriber_sees_each_message_once_through_full_lanes() {
    let mut cfg = config("fanout-once");
    cfg.lane_capacity = 4096; // the smallest lanes: a lap every dozen frames
    let bus = start_with(cfg);
    let mut publisher = bus.attach("publisher", "feed");
    let mut readers = Vec::new();
    for (name, pattern, stall) in [
        ("fast", "ticks.x", Duration::ZERO),
        ("stalling", "ticks.>", Duration::from_millis(3)),
        ("wildcard", "ticks.*", Duration::from_micros(300)),
    ] {
        let mut a = bus.attach(name, "strategy");
        a.subscribe(pattern).unwrap().detach();
        readers.push((name, std::thread::spawn(move || collect(a, stall))));
    }
    let ticks = publisher.topic("ticks.x").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for seq in 0..N {
        let m = note(&publisher, seq);
        loop {
            match publisher.send(&ticks, &m) {
                Ok(_) => break,
                Err(CommunicationError::QueueFull { .. }) => {
                    assert!(Instant::now() < deadline, "the publisher stayed blocked");
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => panic!("publish {seq}: {e}"),
            }
        }
    }
    for (name, reader) in readers {
        let seen = reader.join().expect("reader thread");
        let dups: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).take(5).collect();
        assert!(
            dups.is_empty(),
            "{name} saw duplicates (seq, copies): {dups:?}"
        );
        assert_eq!(
            seen.len() as i64,
            N,
            "{name} saw {} of {N} sequence numbers",
            seen.len()
        );
    }
    // The books: every copy counted, and the copies match the destinations they were for.
    eventually("the router's counters cover every frame", || {
        let me = agent_info(&mut publisher, "publisher");
        me.frames_sent == N as u64 && me.destinations == 3 * N as u64
    });
    let me = agent_info(&mut publisher, "publisher");
    assert_eq!(me.frames_delivered, N as u64, "{me:?}");
    assert_eq!(me.copies_delivered, 3 * N as u64, "{me:?}");
    assert_eq!(me.copies_dead, 0, "{me:?}");
    assert_eq!(
        me.copies_delivered + me.copies_dead,
        me.destinations,
        "copies = destinations: {me:?}"
    );
}
