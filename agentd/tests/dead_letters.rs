//! Frames that cannot be delivered end as dead letters with their reasons; nothing vanishes:
//! sent = delivered + dead-lettered.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use agentbus::client::{Agent, Peer};
use agentbus::{CommunicationError, Payload, Value};
use support::*;

/// Sends notes to `to` until `n` were accepted or the sender's lane stays full for 50 ms (the
/// receiver's lane is full too, so the router holds frames back); returns the ids.
fn flood(from: &mut Agent, to: &Peer, n: i64, ttl: Option<Duration>) -> Vec<u64> {
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

fn account(receiver: &mut Agent, observer: &mut Agent, sent: &[u64], reason: &str) {
    let mut received = HashSet::new();
    while let Some(d) = receiver.recv_timeout(Duration::from_millis(300)).unwrap() {
        received.insert(d.header().message_id.0);
    }
    let dead: HashSet<u64> = observer
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
    let to_receiver = sender.peer("receiver").unwrap();
    let sent = flood(
        &mut sender,
        &to_receiver,
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
    let to_receiver = sender.peer("receiver").unwrap();
    let sent = flood(&mut sender, &to_receiver, 500, None);
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
    let to_receiver = sender.peer("receiver").unwrap();
    let sent = flood(
        &mut sender,
        &to_receiver,
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

/// Makes `n` dead letters: publishes to a topic nobody subscribes to.
fn make_dead_letters(agent: &mut Agent, n: u64) {
    let m = note(agent, 0);
    let nobody = agent.topic("nobody.listens").unwrap();
    let mut made = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while made < n {
        match agent.send(&nobody, &m) {
            Ok(_) => made += 1,
            Err(CommunicationError::QueueFull { .. }) => {
                assert!(std::time::Instant::now() < deadline);
                // Its errors come back to its lanes: take them.
                while agent.try_recv().unwrap().is_some() {}
                std::thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    }
    eventually("every publish is a dead letter", || {
        agent.stats().unwrap().dead_lettered >= n
    });
}

fn unlimited_dead_letters(name: &str) -> TestBus {
    let mut cfg = config(name);
    cfg.dead_letter_rate = 10_000_000;
    cfg.dead_letter_burst = 10_000_000;
    start_with(cfg)
}

#[test]
fn listing_twelve_thousand_dead_letters_keeps_the_caller_attached() {
    let bus = unlimited_dead_letters("dl-many");
    let mut agent = bus.attach("lister", "ops");
    let mut peer = bus.attach("peer", "ops");
    make_dead_letters(&mut agent, 12_000);
    let letters = agent.dead_letters().unwrap();
    assert!(letters.len() >= 12_000, "{} letters listed", letters.len());
    let seqs: Vec<u64> = letters.iter().map(|l| l.sequence).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "pages neither skip nor repeat"
    );
    // Still attached: it sends, and it is listed.
    let to_peer = agent.peer("peer").unwrap();
    agent.send(&to_peer, &note(&agent, 5)).unwrap();
    assert_eq!(recv_seqs(&mut peer, 1, Duration::from_secs(5)), vec![5]);
    assert!(agent
        .list_agents()
        .unwrap()
        .iter()
        .any(|a| a.agent_id == "lister"));
}

#[test]
fn a_control_peer_that_reads_slowly_gets_every_reply_and_stays_attached() {
    use std::io::{Read, Write};

    use agentbus::control::{
        decode_response, encode_frame, FrameReader, PageRequest, Request, Response,
    };

    let bus = unlimited_dead_letters("dl-slow");
    let mut agent = bus.attach("maker", "ops");
    make_dead_letters(&mut agent, 5_000);
    let (mut conn, _seg, _layout) = support::raw::raw_attach(&bus, "slow-reader");
    // Thirty big pages asked for at once: megabytes of replies, far past the socket's buffer.
    let asks = 30;
    for _ in 0..asks {
        conn.write_all(&encode_frame(&Request::DeadLetters(PageRequest {
            from: 0,
            max: 1024,
        })))
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300)); // not reading
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = FrameReader::default();
    let mut pages = 0;
    let mut bytes = 0;
    let mut buf = vec![0u8; 1 << 16];
    while pages < asks {
        match reader.next_frame().unwrap() {
            Some(frame) => match decode_response(&frame).unwrap() {
                Response::DeadLetters(page) => {
                    assert!(page.letters.len() > 500, "{} letters", page.letters.len());
                    assert!(page.more, "5,000 letters do not fit one page");
                    pages += 1;
                    bytes += frame.len();
                }
                other => panic!("unexpected {other:?}"),
            },
            None => {
                let n = conn.read(&mut buf).expect("agentd keeps the connection");
                assert!(n > 0, "agentd closed the slow reader's connection");
                reader.push(&buf[..n]);
            }
        }
    }
    assert!(
        bytes > 2 << 20,
        "{bytes} bytes of replies: more than a socket buffer"
    );
    assert!(agent
        .list_agents()
        .unwrap()
        .iter()
        .any(|a| a.agent_id == "slow-reader"));
}

/// Every dead letter is announced on `sys.alerts`, coalesced: the notices' counts add up to
/// the letters made, and a flood makes few notices.
#[test]
fn dead_letters_are_announced_on_sys_alerts_coalesced() {
    let bus = start("dl-alerts");
    let mut ops = bus.attach("ops", "ops");
    let _alerts = ops.subscribe("sys.alerts").unwrap();
    let mut a = bus.attach("a", "x");
    let nobody = a.capability(&["nobody-has-this"]).unwrap();
    const LETTERS: i64 = 300;
    for seq in 0..LETTERS {
        a.send_blocking(&nobody, &note(&a, seq), Duration::from_secs(5))
            .unwrap();
    }
    let mut counted = 0;
    let mut notices = 0;
    let mut first_reason = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counted < LETTERS && std::time::Instant::now() < deadline {
        let Some(d) = ops.recv_timeout(Duration::from_millis(200)).unwrap() else {
            continue;
        };
        assert_eq!(d.from().agent_id, "agentd");
        let Payload::Notification(n) = d.to_message().payload else {
            panic!("not a notice");
        };
        assert_eq!(n.event, "dead_letters");
        if let Some(Value::Int(c)) = n.data.get("count") {
            counted += c;
        }
        if let Some(Value::String(r)) = n.data.get("first_reason") {
            if first_reason.is_empty() {
                first_reason = r.clone();
            }
        }
        notices += 1;
    }
    assert_eq!(counted, LETTERS, "every dead letter announced once");
    assert!(
        notices < LETTERS / 3,
        "a flood is coalesced: {notices} notices"
    );
    assert!(
        first_reason.contains("nobody-has-this") || first_reason.contains("capabilit"),
        "{first_reason}"
    );
}

/// The next `sys.alerts` notice: its count and first reason.
fn next_alert(ops: &mut Agent) -> (i64, String) {
    let d = ops
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("a sys.alerts notice");
    let Payload::Notification(n) = d.to_message().payload else {
        panic!("not a notice");
    };
    let count = match n.data.get("count") {
        Some(Value::Int(c)) => *c,
        other => panic!("no count: {other:?}"),
    };
    let reason = match n.data.get("first_reason") {
        Some(Value::String(r)) => r.clone(),
        other => panic!("no reason: {other:?}"),
    };
    (count, reason)
}

/// Dead letters made outside the router's routing are announced too: the unread frames of a
/// recipient that left, a message a client gave up on, a retry that failed again.
#[test]
fn every_kind_of_dead_letter_is_announced_on_sys_alerts() {
    let bus = start("dl-alerts-all");
    let mut ops = bus.attach("ops", "ops");
    let _alerts = ops.subscribe("sys.alerts").unwrap();
    let mut a = bus.attach("a", "x");

    // A recipient that never reads detaches: what it left unread is dead-lettered.
    let quitter = bus.attach("quitter", "x");
    let to_quitter = a.peer("quitter").unwrap();
    for seq in 0..3 {
        a.send(&to_quitter, &note(&a, seq)).unwrap();
    }
    eventually("the notes reached the quitter", || {
        agent_info(&mut ops, "quitter").copies_received == 3
    });
    drop(quitter);
    let (count, reason) = next_alert(&mut ops);
    assert_eq!(count, 3, "{reason}");
    assert!(
        reason.contains("left") || reason.contains("unread"),
        "{reason}"
    );

    // A message whose at-least-once attempts were spent, reported by its sender.
    let mut sender = Agent::attach(bus.options("sender", "x").delivery(
        agentbus::client::DeliveryConfig {
            attempts: 2,
            retry_delay: Duration::from_millis(30),
            ..Default::default()
        },
    ))
    .unwrap();
    let mut deaf = bus.attach("deaf", "x"); // reads, never acknowledges
    let to_deaf = sender.peer("deaf").unwrap();
    let delivery = sender.send_acked(&to_deaf, &note(&sender, 9)).unwrap();
    let reader = std::thread::spawn(move || {
        while deaf
            .recv_timeout(Duration::from_millis(500))
            .unwrap()
            .is_some()
        {}
        deaf
    });
    assert!(matches!(
        delivery.wait(&mut sender),
        Err(CommunicationError::DeliveryFailed { .. })
    ));
    let (count, reason) = next_alert(&mut ops);
    assert_eq!(count, 1, "{reason}");
    drop(reader.join().unwrap());

    // An operator's retry that fails again.
    let letters = ops.dead_letters().unwrap();
    let first = letters.first().expect("letters held");
    ops.retry_dead_letter(first.sequence).unwrap();
    let (count, reason) = next_alert(&mut ops);
    assert_eq!(count, 1);
    assert!(reason.starts_with("retry 1"), "{reason}");
}

/// A dead letter retried goes where its header says now: dead-lettered anew (retries counted)
/// while nobody can take it, delivered once somebody can; an unknown number is refused.
#[test]
fn a_dead_letter_is_retried_to_its_destination_counting_retries() {
    let bus = start("dl-retry");
    let observer = bus.attach("observer", "ops");
    let mut a = bus.attach("a", "x");
    let gpu = a.capability(&["gpu"]).unwrap();
    a.send(&gpu, &note(&a, 77)).unwrap();
    let first = {
        let mut letters = Vec::new();
        eventually("the note was dead-lettered", || {
            letters = observer.dead_letters().unwrap();
            !letters.is_empty()
        });
        letters.remove(0)
    };
    assert_eq!(first.retries, 0);
    // Nobody has the capability yet: dead again, one retry counted.
    observer.retry_dead_letter(first.sequence).unwrap();
    let letters = observer.dead_letters().unwrap();
    assert_eq!(letters.len(), 1, "taken out, then made anew: {letters:?}");
    let second = &letters[0];
    assert_eq!((second.message_id, second.retries), (first.message_id, 1));
    assert!(second.sequence > first.sequence);
    assert!(second.reason.starts_with("retry 1: "), "{}", second.reason);
    // Now somebody has it: delivered, from its original sender, and gone from the queue.
    let mut g = Agent::attach(bus.options("g", "worker").capabilities(["gpu"])).unwrap();
    observer.retry_dead_letter(second.sequence).unwrap();
    let d = g
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("redelivered");
    assert_eq!(seq_of(&d), 77);
    assert_eq!(d.from().agent_id, "a");
    drop(d);
    assert!(observer.dead_letters().unwrap().is_empty());
    match observer.retry_dead_letter(12345) {
        Err(agentbus::client::ClientError::Refused { message, .. }) => {
            assert!(message.contains("12345"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// An agent reporting dead letters itself (`Request::DeadLetter`) is held to the same budget as
/// the dead letters the router makes for it: past `dead_letter_burst`, refused with `NoRoom`.
#[test]
fn an_agent_cannot_fill_the_queue_by_reporting_dead_letters() {
    use std::io::{Read, Write};

    use agentbus::control::{
        decode_response, encode_frame, ClientDeadLetter, FrameReader, Refusal, Request, Response,
    };
    use agentbus_ipc::ring::{Ring, RingOptions};

    let mut cfg = config("dl-client-budget");
    cfg.dead_letter_rate = 1;
    cfg.dead_letter_burst = 5;
    let bus = start_with(cfg);
    let observer = bus.attach("observer", "ops");
    let (mut conn, _seg, _layout) = support::raw::raw_attach(&bus, "reporter");
    // One valid frame to report.
    let m = agentbus::Message::raw(
        observer.identity(),
        agentbus::MessageType::Notification,
        b"x".to_vec(),
    );
    let header = agentbus::codec::header_for(
        &m,
        agentbus::Route {
            kind: agentbus::RouteKind::Broadcast,
            destination: 0,
        },
        0,
    );
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 12)).unwrap().split();
    agentbus::codec::encode(&mut tx, &header, &m).unwrap();
    let bytes = rx.peek().unwrap().unwrap();
    let len = agentbus::FrameHeader::parse(bytes).unwrap().frame_len();
    let frame = bytes[..len].to_vec();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = FrameReader::default();
    let mut answers = Vec::new();
    for _ in 0..20 {
        conn.write_all(&encode_frame(&Request::DeadLetter(ClientDeadLetter {
            frame: frame.clone(),
            reason: "given up".into(),
        })))
        .unwrap();
        let response = loop {
            if let Some(f) = reader.next_frame().unwrap() {
                break decode_response(&f).unwrap();
            }
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "agentd closed the connection");
            reader.push(&buf[..n]);
        };
        answers.push(response);
    }
    let done = answers.iter().filter(|r| **r == Response::Done).count();
    let refused = answers
        .iter()
        .filter(|r| matches!(r, Response::Refused(f) if f.kind == Refusal::NoRoom && f.message.contains("dead_letter_rate")))
        .count();
    assert_eq!((done, refused), (5, 15), "{answers:?}");
    assert_eq!(observer.dead_letters().unwrap().len(), 5);
}
