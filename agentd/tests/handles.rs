//! The client's guards and halves do what their drop (or split) promises: a dropped
//! `Subscription` receives nothing more and its handler is never called again, a detached one
//! keeps receiving, a dropped `PendingRequest` leaves no entry and counts its late reply, a
//! dropped `Batch` publishes, a request held in place can be answered through the other half,
//! and a blocking publish waits for room (or times out) instead of failing at once.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, Raw, Topic};
use agentbus::*;
use support::*;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(200);

/// Runs `agent`'s handlers until `done` holds, failing after `WAIT`.
fn pump_until(agent: &mut Agent, done: impl Fn() -> bool) {
    agent
        .run_until(Instant::now() + WAIT, |_| done())
        .expect("run handlers");
    assert!(done(), "the handlers did not see what was sent in {WAIT:?}");
}

/// Runs `agent`'s handlers for `for_`, whatever arrives.
fn pump_for(agent: &mut Agent, for_: Duration) {
    agent
        .run_until(Instant::now() + for_, |_| false)
        .expect("run handlers");
}

#[test]
fn a_dropped_subscription_receives_nothing_more() {
    let bus = start("h-sub-drop");
    let mut feed = bus.attach("feed", "market_data");
    let mut s = bus.attach("s", "strategy");
    let eurusd = feed.topic("fx.EURUSD").unwrap();
    let sub = s.subscribe("fx.>").unwrap();
    assert_eq!(sub.pattern(), "fx.>");
    feed.send(&eurusd, &note(&feed, 1)).unwrap();
    assert_eq!(recv_seqs(&mut s, 1, WAIT), vec![1]);
    drop(sub);
    // Published after the drop returned: agentd routes it to nobody.
    feed.send(&eurusd, &note(&feed, 2)).unwrap();
    assert_quiet(&mut s, QUIET);
    let topic = s
        .list_topics()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "fx.EURUSD")
        .expect("the topic is listed");
    assert_eq!(topic.subscribers, 0, "{topic:?}");
}

#[test]
fn a_dropped_subscription_handler_is_never_called_again() {
    let bus = start("h-sub-handler");
    let mut feed = bus.attach("feed", "market_data");
    let mut s = bus.attach("s", "strategy");
    let eurusd = feed.topic("fx.EURUSD").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let sub = s
        .subscribe_with("fx.>", None, move |_, _tx| {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    feed.send(&eurusd, &note(&feed, 1)).unwrap();
    pump_until(&mut s, || calls.load(Ordering::SeqCst) == 1);
    // Routed while subscribed, still in the lane when the subscription is dropped: received,
    // but not handled.
    feed.send(&eurusd, &note(&feed, 2)).unwrap();
    assert!(s.receiver().wait_ready(WAIT), "the second message arrives");
    drop(sub);
    // Published after the drop returned: not routed to `s` at all.
    feed.send(&eurusd, &note(&feed, 3)).unwrap();
    pump_for(&mut s, Duration::from_millis(300));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler ran after its subscription was dropped"
    );
    assert_eq!(
        recv_seqs(&mut s, 1, WAIT),
        vec![2],
        "queued for recv instead"
    );
    assert_quiet(&mut s, QUIET);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_detached_subscription_keeps_receiving() {
    let bus = start("h-sub-detach");
    let mut feed = bus.attach("feed", "market_data");
    let mut s = bus.attach("s", "strategy");
    let mut h = bus.attach("h", "strategy");
    let eurusd = feed.topic("fx.EURUSD").unwrap();
    s.subscribe("fx.>").unwrap().detach();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    h.subscribe_with("fx.*", None, move |_, _tx| {
        c.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap()
    .detach();
    // The handles are gone; the subscriptions are not.
    for seq in 0..3 {
        feed.send(&eurusd, &note(&feed, seq)).unwrap();
        assert_eq!(recv_seqs(&mut s, 1, WAIT), vec![seq]);
        pump_until(&mut h, || calls.load(Ordering::SeqCst) == seq as usize + 1);
    }
    let topic = feed
        .list_topics()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "fx.EURUSD")
        .expect("the topic is listed");
    assert_eq!(topic.subscribers, 2, "{topic:?}");
    pump_for(&mut h, QUIET);
    assert_eq!(calls.load(Ordering::SeqCst), 3, "each message handled once");
    assert_quiet(&mut s, QUIET);
}

#[test]
fn a_dropped_pending_request_leaves_no_entry_and_counts_its_late_reply() {
    let bus = start("h-pending-drop");
    let mut client = bus.attach("client", "strategy");
    let mut responder = bus.attach("responder", "risk");
    let to_responder = client.peer("responder").unwrap();
    let answer = || Payload::TaskResponse(TaskResponse::default());

    // Dropped before the reply comes: the reply is counted late, never received.
    let pending = client
        .start_request(&to_responder, &task(&client, "dropped"))
        .unwrap();
    let id = pending.id();
    drop(pending);
    let header = *responder
        .recv_timeout(WAIT)
        .unwrap()
        .expect("the request arrives")
        .header();
    assert_eq!(header.message_id, id);
    responder.sender().reply(&header, answer()).unwrap();
    let deadline = Instant::now() + WAIT;
    while client.counters().late_replies == 0 {
        assert!(
            client
                .recv_timeout(Duration::from_millis(20))
                .unwrap()
                .is_none(),
            "the reply to a dropped request came out of recv"
        );
        assert!(
            Instant::now() < deadline,
            "the late reply was never counted"
        );
    }
    assert_eq!(client.counters().late_replies, 1);
    assert_quiet(&mut client, QUIET);
    assert_eq!(client.counters().late_replies, 1);
    assert_eq!(client.counters().forged_replies, 0);

    // Its reply came and was filed, but never taken: dropping it counts it late too.
    let pending = client
        .start_request(&to_responder, &task(&client, "untaken"))
        .unwrap();
    let header = *responder
        .recv_timeout(WAIT)
        .unwrap()
        .expect("the request arrives")
        .header();
    assert_eq!(header.message_id, pending.id());
    responder.sender().reply(&header, answer()).unwrap();
    assert!(client.receiver().wait_ready(WAIT), "the reply arrives");
    assert!(
        client.try_recv().unwrap().is_none(),
        "a reply is filed for its request, not received"
    );
    assert_eq!(client.counters().late_replies, 1);
    drop(pending);
    assert_eq!(client.counters().late_replies, 2);
    assert_quiet(&mut client, QUIET);
    assert_eq!(client.counters().late_replies, 2);
}

#[test]
fn a_dropped_batch_publishes_what_was_sent_through_it() {
    let bus = start("h-batch");
    let mut a = bus.attach("a", "feed");
    let mut b = bus.attach("b", "strategy");
    let _sub = b.subscribe("batch.>").unwrap();
    let to_b = a.peer("b").unwrap();
    let topic = a.topic("batch.x").unwrap();
    let notes: Vec<Message> = (0..20).map(|seq| note(&a, seq)).collect();
    {
        let mut batch = a.sender().batch();
        for m in &notes[..10] {
            batch.send(&to_b, m).unwrap();
        }
        for m in &notes[10..] {
            batch.send(&topic, m).unwrap();
        }
        // The router has had time to move anything published: nothing was.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            b.try_recv().unwrap().is_none(),
            "a batched message was visible before the batch was dropped"
        );
    } // published here
    assert_eq!(recv_seqs(&mut b, 20, WAIT), (0..20).collect::<Vec<_>>());
    assert_quiet(&mut b, QUIET);

    // `publish` is the same as the drop, on every lane.
    let urgent = note(&a, 100).priority(MessagePriority::Critical);
    let normal = note(&a, 101);
    let mut batch = a.sender().batch();
    batch.send(&to_b, &normal).unwrap();
    batch.send(&to_b, &urgent).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(b.try_recv().unwrap().is_none(), "visible before publish");
    batch.publish();
    // Read once the router has written both (20 copies before these two), so that the order
    // seen is the receiver's, not the router's timing.
    eventually("the router delivered both", || {
        agent_info(&mut b, "a").copies_delivered == 22
    });
    assert_eq!(
        recv_seqs(&mut b, 2, WAIT),
        vec![100, 101],
        "most urgent first"
    );
    assert_quiet(&mut b, QUIET);
}

#[test]
fn a_request_held_in_place_is_answered_through_the_other_half() {
    let bus = start("h-split");
    let mut client = bus.attach("client", "strategy");
    let mut server = bus.attach("server", "risk");
    let to_server = client.peer("server").unwrap();

    let pending = client
        .start_request(&to_server, &task(&client, "held"))
        .unwrap();
    let id = pending.id();
    {
        let (tx, rx) = server.split();
        let d = rx.recv_timeout(WAIT).unwrap().expect("the request arrives");
        assert!(d.header().flags.contains(Flags::EXPECTS_REPLY));
        let task_id = match d.payload() {
            Some(ArchivedPayload::TaskRequest(t)) => t.task_id.to_string(),
            other => panic!("not a task request: {other:?}"),
        };
        tx.reply(
            d.header(),
            Payload::TaskResponse(TaskResponse {
                task_id,
                status: TaskStatus::Completed,
                ..Default::default()
            }),
        )
        .unwrap();
        // Still held, and still readable in place, after the reply went out.
        match d.payload() {
            Some(ArchivedPayload::TaskRequest(t)) => assert_eq!(t.task_id.as_str(), "held"),
            other => panic!("not a task request: {other:?}"),
        }
        assert_eq!(d.from().agent_id, "client");
        assert_eq!(d.header().message_id, id);
    }
    let reply = pending.wait(&mut client, WAIT).unwrap();
    assert_eq!(reply.correlation_id, id);
    assert!(reply.flags.contains(Flags::IS_REPLY));
    match &reply.payload {
        Payload::TaskResponse(r) => assert_eq!(r.task_id, "held"),
        other => panic!("not a response: {other:?}"),
    }

    // Raw bytes read in place, likewise.
    let pending = client.start_request(&to_server, Raw(b"ping")).unwrap();
    {
        let (tx, rx) = server.split();
        let d = rx
            .recv_timeout(WAIT)
            .unwrap()
            .expect("the raw request arrives");
        assert_eq!(d.raw(), Some(&b"ping"[..]));
        tx.reply(
            d.header(),
            Payload::TaskResponse(TaskResponse {
                task_id: "pong".into(),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(d.raw(), Some(&b"ping"[..]), "read after the reply");
    }
    match pending.wait(&mut client, WAIT).unwrap().payload {
        Payload::TaskResponse(r) => assert_eq!(r.task_id, "pong"),
        other => panic!("not a response: {other:?}"),
    }
    assert_eq!(client.counters().late_replies, 0);
    assert_quiet(&mut server, QUIET);
}

/// A bus whose lanes are as small as they go, a publisher, and a subscriber of `topic.x` that
/// has not read yet; the publisher sent until the route is full (its sends fail at once with
/// `QueueFull`, and still do three times over 150 ms in which the router could have made
/// room). Returns the bus, the
/// publisher, the subscriber (with its subscription), the topic and how many were accepted.
fn full_route(
    name: &str,
) -> (
    TestBus,
    Agent,
    Agent,
    agentbus::client::Subscription,
    Topic,
    i64,
) {
    let mut cfg = config(name);
    cfg.lane_capacity = 4096;
    cfg.delivery_timeout = Duration::from_secs(30); // nothing expires while the test waits
    let bus = start_with(cfg);
    let mut publisher = bus.attach("publisher", "feed");
    let mut subscriber = bus.attach("subscriber", "strategy");
    let sub = subscriber.subscribe("topic.x").unwrap();
    let topic = publisher.topic("topic.x").unwrap();
    let deadline = Instant::now() + WAIT;
    let mut accepted = 0;
    let mut full = 0;
    while full < 3 {
        match publisher.send(&topic, &note(&publisher, accepted)) {
            Ok(_) => {
                accepted += 1;
                full = 0;
            }
            Err(CommunicationError::QueueFull { .. }) => {
                // Give the router time to move what it can; full for good when it could not.
                full += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("send {accepted}: {e}"),
        }
        assert!(Instant::now() < deadline, "the route never filled");
    }
    assert!(accepted > 0);
    (bus, publisher, subscriber, sub, topic, accepted)
}

#[test]
fn a_blocking_publish_waits_for_room_instead_of_failing() {
    let (_bus, mut publisher, mut subscriber, _sub, topic, accepted) = full_route("h-block");
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let began = Instant::now(); // nothing was read before this
        let mut seqs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(d) = subscriber.recv_timeout(Duration::from_secs(1)).unwrap() {
            seqs.push(seq_of(&d));
            assert!(Instant::now() < deadline, "the reader never ran dry");
        }
        (subscriber, began, seqs)
    });
    let started = Instant::now();
    publisher
        .send_blocking(&topic, &note(&publisher, accepted), WAIT)
        .expect("room once the subscriber reads");
    let returned = Instant::now();
    let waited = returned - started;
    let (_subscriber, began, seqs) = reader.join().expect("reader thread");
    eprintln!("{accepted} publishes filled the route; the blocking one waited {waited:?}");
    assert!(
        returned >= began,
        "it returned {:?} before the reader began reading: it did not wait for room",
        began - returned
    );
    assert!(waited < WAIT, "{waited:?}");
    assert_eq!(
        seqs,
        (0..=accepted).collect::<Vec<_>>(),
        "every publish arrives once, in order, the blocking one last"
    );
}

#[test]
fn a_blocking_publish_nobody_makes_room_for_times_out() {
    let (_bus, mut publisher, _subscriber, _sub, topic, accepted) = full_route("h-block-timeout");
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = publisher
        .send_blocking(&topic, &note(&publisher, accepted), timeout)
        .unwrap_err();
    let waited = started.elapsed();
    match &e {
        CommunicationError::Timeout { after, .. } => assert_eq!(*after, timeout),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(waited >= timeout, "gave up early: {waited:?}");
    assert!(waited < timeout + Duration::from_secs(2), "{waited:?}");
    // The publisher is fine: still connected, and still full.
    assert!(publisher.sender().is_connected());
    assert!(matches!(
        publisher.send(&topic, &note(&publisher, accepted)),
        Err(CommunicationError::QueueFull { .. })
    ));
}

#[test]
fn timed_batching_publishes_at_its_size_or_after_its_delay() {
    use agentbus::client::BatchPolicy;
    let bus = start("h-timed-batch");
    let mut sender = bus.attach("sender", "x");
    let mut receiver = bus.attach("receiver", "x");
    let to = sender.peer("receiver").unwrap();
    // Size: nine are held, the tenth publishes all ten.
    sender.sender().set_batching(Some(BatchPolicy {
        max_messages: 10,
        max_delay: Duration::from_secs(60),
    }));
    for seq in 0..9 {
        sender.send(&to, &note(&sender, seq)).unwrap();
    }
    assert_quiet(&mut receiver, Duration::from_millis(100));
    sender.send(&to, &note(&sender, 9)).unwrap();
    assert_eq!(
        recv_seqs(&mut receiver, 10, WAIT),
        (0..10).collect::<Vec<_>>()
    );
    // Delay: three are held until `poll` finds the first older than 50 ms.
    sender.sender().set_batching(Some(BatchPolicy {
        max_messages: 1000,
        max_delay: Duration::from_millis(50),
    }));
    let first = Instant::now();
    for seq in 10..13 {
        sender.send(&to, &note(&sender, seq)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        receiver.receiver().try_recv().unwrap().is_none(),
        "published before its delay"
    );
    sender
        .run_until(Instant::now() + Duration::from_millis(200), |a| {
            a.sender().is_connected() && first.elapsed() > Duration::from_millis(60)
        })
        .unwrap();
    let got = recv_seqs(&mut receiver, 3, WAIT);
    assert!(first.elapsed() >= Duration::from_millis(50));
    assert_eq!(got, vec![10, 11, 12]);
    // Off: every send goes at once (and what was held went first).
    sender.send(&to, &note(&sender, 13)).unwrap();
    sender.sender().set_batching(None);
    sender.send(&to, &note(&sender, 14)).unwrap();
    assert_eq!(recv_seqs(&mut receiver, 2, WAIT), vec![13, 14]);
}
