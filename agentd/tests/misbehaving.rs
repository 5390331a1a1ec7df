//! An agent that writes garbage into its outbound lane, an impossible position into its
//! inbound lane, or frames for destinations agentd never handed out, is detached; the router
//! goes on and the other agents' traffic continues.

mod support;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agentbus::codec::{encode, header_for, Route};
use agentbus::control::AgentAddress;
use agentbus::{Message, RouteKind};
use agentbus_ipc::words::WordTable;
use support::raw::raw_attach;
use support::*;

/// Waits for agentd to close the rogue's connection.
fn await_eof(s: &mut UnixStream) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) => panic!("agentd did not detach the rogue: {e}"),
        }
    }
}

/// The rogue's CRITICAL outbound lane, to write into as it likes.
fn critical_outbound(
    seg: &agentbus_ipc::segment::MemfdSegment,
    layout: &agentbus::lanes::LaneLayout,
) -> agentbus_ipc::ring::Producer {
    layout
        .outbound_ring(&seg.region())
        .next()
        .unwrap()
        .unwrap()
        .into_producer()
}

fn others_still_talk(bus: &TestBus) {
    let mut a = bus.attach("after-a", "x");
    let mut b = bus.attach("after-b", "x");
    let to_b = a.peer("after-b").unwrap();
    a.send(&to_b, &note(&a, 3)).unwrap();
    assert_eq!(recv_seqs(&mut b, 1, Duration::from_secs(5)), vec![3]);
}

#[test]
fn garbage_in_an_outbound_lane_detaches_the_agent_and_nothing_else() {
    let bus = start("garbage");
    let mut good = bus.attach("good", "x");
    let mut peer = bus.attach("peer", "x");
    let (mut conn, seg, layout) = raw_attach(&bus, "rogue");
    let mut lane = critical_outbound(&seg, &layout);
    let mut claim = lane.try_claim(300).unwrap();
    claim.payload().fill(0xEE); // no valid routing header
    claim.commit(300);
    let took = await_eof(&mut conn);
    eprintln!("garbage frame to detach: {took:?}");
    let agents = good.list_agents().unwrap();
    assert!(agents.iter().all(|a| a.agent_id != "rogue"), "{agents:?}");
    eventually("the fault is counted", || {
        good.stats().unwrap().faulted >= 1
    });
    let to_peer = good.peer("peer").unwrap();
    good.send(&to_peer, &note(&good, 1)).unwrap();
    assert_eq!(recv_seqs(&mut peer, 1, Duration::from_secs(5)), vec![1]);
    others_still_talk(&bus);
}

#[test]
fn an_impossible_head_in_an_inbound_lane_detaches_the_agent() {
    let bus = start("badhead");
    let mut sender = bus.attach("sender", "x");
    let (mut conn, seg, layout) = raw_attach(&bus, "rogue");
    // The rogue claims to have read far more than was ever written to it.
    let ring_start = layout.inbound(3); // LOW
    let header = WordTable::new(seg.region().sub(ring_start, 512).unwrap()).unwrap();
    header.store(128 / 8, 1 << 40, Ordering::Release);
    let to_rogue = sender.peer("rogue").unwrap();
    // Fill its LOW lane until the router has to look at that head.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 0;
    loop {
        let m = note(&sender, seq).priority(agentbus::MessagePriority::Low);
        match sender.send(&to_rogue, &m) {
            Ok(_) => seq += 1,
            Err(agentbus::CommunicationError::QueueFull { .. }) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(_) => break, // detached already
        }
        conn.set_nonblocking(true).unwrap();
        let mut b = [0u8; 8];
        if matches!(conn.read(&mut b), Ok(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "the rogue was never detached");
    }
    conn.set_nonblocking(false).unwrap();
    eventually("the fault is counted", || {
        sender.stats().unwrap().faulted >= 1
    });
    others_still_talk(&bus);
}

/// A rogue fills its outbound lane with frames for `route`; agentd detaches it after the first
/// and makes one dead letter of it, not one per frame.
fn impossible_route_detaches(name: &str, route: Route) {
    let bus = start(name);
    let good = bus.attach("good", "x");
    let (mut conn, seg, layout) = raw_attach(&bus, "rogue");
    let mut lane = critical_outbound(&seg, &layout);
    let m = Message::raw(
        good.identity(),
        agentbus::MessageType::Notification,
        vec![7; 30_000],
    );
    let header = header_for(&m, route, 0);
    let mut written = 0;
    while encode(&mut lane, &header, &m).is_ok() {
        written += 1;
    }
    assert!(written > 0);
    let took = await_eof(&mut conn);
    eprintln!("{written} frames to an impossible {route:?}: detached in {took:?}");
    let agents = good.list_agents().unwrap();
    assert!(agents.iter().all(|a| a.agent_id != "rogue"), "{agents:?}");
    let letters = good.dead_letters().unwrap();
    assert_eq!(
        letters.len(),
        1,
        "one dead letter, not one per frame: {letters:?}"
    );
    assert!(
        letters[0].reason.contains("impossible"),
        "{:?}",
        letters[0].reason
    );
    others_still_talk(&bus);
}

#[test]
fn frames_to_a_slot_past_max_agents_detach_the_sender() {
    impossible_route_detaches(
        "noslot",
        Route {
            kind: RouteKind::Agent,
            destination: AgentAddress {
                slot: 9999,
                epoch: 1,
            }
            .destination(),
        },
    );
}

#[test]
fn frames_to_a_topic_never_created_detach_the_sender() {
    impossible_route_detaches(
        "notopic",
        Route {
            kind: RouteKind::Topic,
            destination: 1 << 40,
        },
    );
}
