//! An agent that writes garbage into its outbound lane, or an impossible position into its
//! inbound lane, is detached; the router goes on and the other agents' traffic continues.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agentbus::control::{
    decode_response, encode_frame, AttachRequest, FrameReader, Request, Response, PROTOCOL_VERSION,
};
use agentbus::lanes::{self, LaneLayout};
use agentbus::paths;
use agentbus_ipc::segment::fdpass::recv_fds;
use agentbus_ipc::segment::MemfdSegment;
use agentbus_ipc::words::WordTable;
use support::*;

/// Attaches by speaking the control protocol directly, keeping the raw lane segment.
fn raw_attach(bus: &TestBus, id: &str) -> (UnixStream, MemfdSegment, LaneLayout) {
    let mut s = UnixStream::connect(paths::socket_path(&bus.dir, &bus.bus)).unwrap();
    s.write_all(&encode_frame(&Request::Attach(AttachRequest {
        protocol: PROTOCOL_VERSION,
        agent_id: id.into(),
        agent_type: "rogue".into(),
        instance_id: None,
        capabilities: vec![],
        max_capacity: 10,
    })))
    .unwrap();
    let mut buf = [0u8; 4096];
    let (n, mut fds) = recv_fds(&s, &mut buf).unwrap();
    let mut reader = FrameReader::default();
    reader.push(&buf[..n]);
    let frame = reader.next_frame().unwrap().expect("one whole reply");
    assert!(matches!(
        decode_response(&frame).unwrap(),
        Response::Attached(_)
    ));
    fds.truncate(1);
    let seg = MemfdSegment::open(fds.pop().unwrap(), lanes::CONTROL_BLOCK).unwrap();
    let layout = lanes::check(&seg.region()).unwrap();
    (s, seg, layout)
}

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

fn others_still_talk(bus: &TestBus) {
    let mut a = bus.attach("after-a", "x");
    let mut b = bus.attach("after-b", "x");
    a.send("after-b", &note(&a, 3)).unwrap();
    assert_eq!(recv_seqs(&mut b, 1, Duration::from_secs(5)), vec![3]);
}

#[test]
fn garbage_in_an_outbound_lane_detaches_the_agent_and_nothing_else() {
    let bus = start("garbage");
    let mut good = bus.attach("good", "x");
    let mut peer = bus.attach("peer", "x");
    let (mut conn, seg, layout) = raw_attach(&bus, "rogue");
    let mut lane = layout
        .outbound_ring(&seg.region())
        .next()
        .unwrap()
        .unwrap()
        .into_producer();
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
    good.send("peer", &note(&good, 1)).unwrap();
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
    // Fill its LOW lane until the router has to look at that head.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 0;
    loop {
        let m = note(&sender, seq).priority(agentbus::MessagePriority::Low);
        match sender.send("rogue", &m) {
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
