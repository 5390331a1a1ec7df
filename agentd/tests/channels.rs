//! Direct channels: opened by one agent and accepted by the other, messages both ways with no
//! router hop, closed from either side, and closed for the survivor when an end dies.

mod support;

use std::time::{Duration, Instant};

use agentbus::client::Channel;
use agentbus::*;
use support::*;

const WAIT: Duration = Duration::from_secs(5);

fn msg(ch: &Channel, seq: i64) -> Message {
    Message::notification(
        ch.identity(),
        Notification {
            event: "ch".into(),
            data: record! { "seq" => seq },
        },
    )
}

fn seq(ch: &mut Channel) -> i64 {
    let d = ch.recv_timeout(WAIT).unwrap().expect("a message");
    seq_of(&d)
}

fn pair(
    bus: &TestBus,
) -> (
    agentbus::client::Agent,
    agentbus::client::Agent,
    Channel,
    Channel,
) {
    let mut a = bus.attach("a", "strategy");
    let mut b = bus.attach("b", "execution");
    let ca = a.channel("b").unwrap();
    let cb = b.accept_channel(WAIT).unwrap().expect("an offer");
    assert_eq!(ca.id(), cb.id());
    assert_eq!(ca.peer(), "b");
    assert_eq!(cb.peer(), "a");
    (a, b, ca, cb)
}

#[test]
fn a_channel_carries_messages_both_ways_without_the_router() {
    let bus = start("chan");
    let (a, _b, mut ca, mut cb) = pair(&bus);
    let before = a.stats().unwrap().frames_in;
    for i in 0..100 {
        ca.send(&msg(&ca, i)).unwrap();
    }
    for i in 0..100 {
        assert_eq!(seq(&mut cb), i);
    }
    cb.send(&msg(&cb, 7)).unwrap();
    assert_eq!(seq(&mut ca), 7);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        a.stats().unwrap().frames_in,
        before,
        "no frame went through the router"
    );
}

#[test]
fn closing_from_either_side_ends_it_for_both() {
    let bus = start("chan-close");
    for closer in 0..2 {
        let mut a = bus.attach(&format!("a{closer}"), "x");
        let mut b = bus.attach(&format!("b{closer}"), "x");
        let ca = a.channel(&format!("b{closer}")).unwrap();
        let cb = b.accept_channel(WAIT).unwrap().unwrap();
        let (closing, mut other) = if closer == 0 { (ca, cb) } else { (cb, ca) };
        closing.close();
        assert!(other.is_closed());
        match other.send(&msg(&other, 1)) {
            Err(CommunicationError::AgentUnreachable { reason, .. }) => {
                assert!(reason.contains("closed"), "{reason}")
            }
            r => panic!("a closed channel's send must fail, got {r:?}"),
        }
        assert!(other.recv_timeout(Duration::from_millis(10)).is_err());
    }
}

#[test]
fn messages_sent_before_the_close_are_still_received() {
    let bus = start("chan-drain");
    let (_a, _b, mut ca, mut cb) = pair(&bus);
    ca.send(&msg(&ca, 1)).unwrap();
    ca.send(&msg(&ca, 2)).unwrap();
    ca.close();
    assert_eq!(seq(&mut cb), 1);
    assert_eq!(seq(&mut cb), 2);
    assert!(cb.try_recv().is_err(), "then the close");
}

#[test]
fn a_waiting_receiver_wakes_when_the_other_side_closes() {
    let bus = start("chan-wake");
    let (_a, _b, ca, mut cb) = pair(&bus);
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        ca.close();
    });
    let start = Instant::now();
    let r = cb.recv_timeout(Duration::from_secs(10));
    assert!(r.is_err(), "the close ends the wait");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "woken, not timed out: {:?}",
        start.elapsed()
    );
    closer.join().unwrap();
}

#[test]
fn when_one_end_dies_agentd_closes_the_channel_for_the_other() {
    let bus = start("chan-death");
    let (a, _b, ca, mut cb) = pair(&bus);
    drop(a); // its control connection closes, as when its process dies
    let start = Instant::now();
    let err = loop {
        match cb.recv_timeout(Duration::from_millis(100)) {
            Err(e) => break e,
            Ok(_) => assert!(start.elapsed() < WAIT, "never closed"),
        }
    };
    assert!(err.to_string().contains("left or died"), "{err}");
    assert!(ca.is_closed());
}

#[test]
fn opening_a_channel_to_nobody_is_refused() {
    let bus = start("chan-nobody");
    let mut a = bus.attach("a", "x");
    let err = a.channel("ghost").unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");
    assert!(a.channel("a").is_err(), "not to itself");
}

#[test]
fn raw_bytes_are_read_in_place_and_archives_from_a_checked_copy() {
    let bus = start("ch-raw");
    let (_a, _b, mut ca, mut cb) = pair(&bus);
    for i in 0..100u8 {
        let bytes = vec![i; 64 + i as usize];
        ca.send(&Message::raw(
            ca.identity(),
            MessageType::Notification,
            bytes.clone(),
        ))
        .unwrap();
        let d = cb.recv_timeout(WAIT).unwrap().expect("raw");
        assert!(d.header().flags.contains(Flags::RAW));
        assert_eq!(d.raw(), Some(&bytes[..]));
        assert!(d.payload().is_none());
        assert_eq!(d.from().agent_id, "a");
        drop(d);
        // An archived message between raw ones is still validated and read.
        ca.send(&msg(&ca, i as i64)).unwrap();
        assert_eq!(seq(&mut cb), i as i64);
    }
}
