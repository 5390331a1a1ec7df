//! Agents exchange unicast, multicast, topic (exact and wildcard), capability, load-balanced
//! and broadcast messages through an embedded agentd; each receives exactly what it should.

mod support;

use std::time::Duration;

use agentbus::client::Destination;
use agentbus::*;
use support::*;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(150);

#[test]
fn unicast_reaches_only_its_recipient_in_order() {
    let bus = start("unicast");
    let mut a = bus.attach("a", "strategy");
    let mut b = bus.attach("b", "risk");
    let mut c = bus.attach("c", "risk");
    let to_b = a.peer("b").unwrap();
    for seq in 0..200 {
        a.send_blocking(&to_b, &note(&a, seq), WAIT).unwrap();
    }
    assert_eq!(recv_seqs(&mut b, 200, WAIT), (0..200).collect::<Vec<_>>());
    assert_quiet(&mut c, QUIET);
    assert_quiet(&mut b, QUIET);
}

#[test]
fn the_router_stamps_the_true_source_slot() {
    let bus = start("source");
    let mut a = bus.attach("a", "strategy");
    let mut b = bus.attach("b", "risk");
    let to_b = a.peer("b").unwrap();
    a.send(&to_b, &note(&a, 1)).unwrap();
    let d = b.recv_timeout(WAIT).unwrap().expect("a message");
    assert_eq!(d.header().source_slot, a.slot());
    assert_eq!(d.header().route, RouteKind::Agent);
}

#[test]
fn multicast_reaches_each_listed_agent_once() {
    let bus = start("multicast");
    let mut a = bus.attach("a", "strategy");
    let mut b = bus.attach("b", "risk");
    let mut c = bus.attach("c", "risk");
    let mut d = bus.attach("d", "risk");
    let peers = [a.peer("b").unwrap(), a.peer("c").unwrap()];
    let id = a.send(Destination::Peers(&peers), &note(&a, 5)).unwrap();
    for agent in [&mut b, &mut c] {
        let got = agent.recv_timeout(WAIT).unwrap().expect("a copy");
        assert_eq!(got.header().message_id, id);
        assert_eq!(seq_of(&got), 5);
    }
    assert_quiet(&mut d, QUIET);
}

#[test]
fn topics_deliver_to_exact_and_wildcard_subscribers_only() {
    let bus = start("topics");
    let mut feed = bus.attach("feed", "market_data");
    let mut exact = bus.attach("exact", "strategy");
    let mut star = bus.attach("star", "strategy");
    let mut tail = bus.attach("tail", "strategy");
    let mut none = bus.attach("none", "strategy");
    let _exact = exact.subscribe("market.AAPL").unwrap();
    let _star = star.subscribe("market.*").unwrap();
    let _tail = tail.subscribe("market.>").unwrap();
    let aapl = feed.topic("market.AAPL").unwrap();
    let aapl_bid = feed.topic("market.AAPL.bid").unwrap();
    let msft = feed.topic("market.MSFT").unwrap();
    feed.send(&aapl, &note(&feed, 1)).unwrap();
    feed.send(&aapl_bid, &note(&feed, 2)).unwrap();
    feed.send(&msft, &note(&feed, 3)).unwrap();
    assert_eq!(recv_seqs(&mut exact, 1, WAIT), vec![1]);
    assert_eq!(recv_seqs(&mut star, 2, WAIT), vec![1, 3]);
    assert_eq!(recv_seqs(&mut tail, 3, WAIT), vec![1, 2, 3]);
    for agent in [&mut exact, &mut star, &mut tail, &mut none] {
        assert_quiet(agent, QUIET);
    }
}

#[test]
fn an_unsubscribed_agent_gets_nothing_more() {
    let bus = start("unsub");
    let mut feed = bus.attach("feed", "market_data");
    let mut s = bus.attach("s", "strategy");
    let sub = s.subscribe("fx.>").unwrap();
    let eurusd = feed.topic("fx.EURUSD").unwrap();
    feed.send(&eurusd, &note(&feed, 1)).unwrap();
    assert_eq!(recv_seqs(&mut s, 1, WAIT), vec![1]);
    sub.unsubscribe().unwrap();
    feed.send(&eurusd, &note(&feed, 2)).unwrap();
    assert_quiet(&mut s, QUIET);
}

#[test]
fn capability_routing_picks_an_agent_with_every_capability_least_loaded_first() {
    let bus = start("caps");
    let mut strat = bus.attach("strat", "strategy");
    let mut both = agentbus::client::Agent::attach(
        bus.options("both", "execution")
            .capabilities(["execution", "equities"])
            .max_capacity(10),
    )
    .unwrap();
    let mut exec_only = agentbus::client::Agent::attach(
        bus.options("exec-only", "execution")
            .capabilities(["execution"])
            .max_capacity(10),
    )
    .unwrap();
    let equities_execution = strat.capability(&["equities", "execution"]).unwrap();
    let execution = strat.capability(&["execution"]).unwrap();
    // Only `both` has equities.
    strat.send(&equities_execution, &note(&strat, 1)).unwrap();
    assert_eq!(recv_seqs(&mut both, 1, WAIT), vec![1]);
    assert_quiet(&mut exec_only, QUIET);
    // Both have execution: the least loaded wins.
    both.sender().set_load(5);
    exec_only.sender().set_load(1);
    strat.send(&execution, &note(&strat, 2)).unwrap();
    assert_eq!(recv_seqs(&mut exec_only, 1, WAIT), vec![2]);
    exec_only.sender().set_load(9);
    strat.send(&execution, &note(&strat, 3)).unwrap();
    assert_eq!(recv_seqs(&mut both, 1, WAIT), vec![3]);
    assert_quiet(&mut exec_only, QUIET);
}

#[test]
fn load_balanced_routing_keeps_agents_under_capacity_and_prefers_the_least_loaded() {
    let bus = start("lb");
    let mut strat = bus.attach("strat", "strategy");
    let mut e1 =
        agentbus::client::Agent::attach(bus.options("e1", "execution").max_capacity(4)).unwrap();
    let mut e2 =
        agentbus::client::Agent::attach(bus.options("e2", "execution").max_capacity(4)).unwrap();
    let mut other = bus.attach("risk", "risk");
    let execution = strat.agent_type("execution").unwrap();
    e1.sender().set_load(3);
    e2.sender().set_load(1);
    strat.send(&execution, &note(&strat, 1)).unwrap();
    assert_eq!(recv_seqs(&mut e2, 1, WAIT), vec![1]);
    e2.sender().set_load(4); // at capacity
    strat.send(&execution, &note(&strat, 2)).unwrap();
    assert_eq!(recv_seqs(&mut e1, 1, WAIT), vec![2]);
    assert_quiet(&mut e2, QUIET);
    assert_quiet(&mut other, QUIET);
}

#[test]
fn broadcast_reaches_every_other_agent() {
    let bus = start("broadcast");
    let mut a = bus.attach("a", "ops");
    let mut others: Vec<_> = (0..3)
        .map(|i| bus.attach(&format!("o{i}"), "strategy"))
        .collect();
    a.send(Destination::Broadcast, &note(&a, 9)).unwrap();
    for o in &mut others {
        assert_eq!(recv_seqs(o, 1, WAIT), vec![9]);
    }
    assert_quiet(&mut a, QUIET);
}

#[test]
fn each_sender_and_priority_keeps_its_order() {
    let bus = start("order");
    let mut s1 = bus.attach("s1", "strategy");
    let mut s2 = bus.attach("s2", "strategy");
    let mut r = bus.attach("r", "risk");
    let prios = [
        MessagePriority::High,
        MessagePriority::Normal,
        MessagePriority::Low,
    ];
    let s1_to_r = s1.peer("r").unwrap();
    let s2_to_r = s2.peer("r").unwrap();
    for seq in 0..300 {
        let p = prios[seq as usize % 3];
        s1.send_blocking(&s1_to_r, &note(&s1, seq).priority(p), WAIT)
            .unwrap();
        s2.send_blocking(&s2_to_r, &note(&s2, 1000 + seq).priority(p), WAIT)
            .unwrap();
    }
    let mut last = std::collections::HashMap::new();
    let mut n = 0;
    while n < 600 {
        let d = r.recv_timeout(WAIT).unwrap().expect("all 600 arrive");
        let key = (d.header().source_slot, d.header().priority);
        let seq = seq_of(&d);
        if let Some(prev) = last.insert(key, seq) {
            assert!(seq > prev, "{key:?}: {seq} after {prev}");
        }
        n += 1;
    }
    assert_quiet(&mut r, QUIET);
}

#[test]
fn a_message_to_nobody_comes_back_as_an_error_and_a_dead_letter() {
    let bus = start("unreachable");
    let mut a = bus.attach("a", "strategy");
    let b = bus.attach("b", "risk");
    let id = {
        // Resolve b, then let it go: the resolved peer is now stale.
        let to_b = a.peer("b").unwrap();
        a.send(&to_b, &note(&a, 0)).unwrap();
        b.detach().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        a.send(&to_b, &note(&a, 1)).unwrap()
    };
    {
        let err = a.recv_timeout(WAIT).unwrap().expect("an error back");
        assert_eq!(err.header().message_type, MessageType::Error);
        assert_eq!(err.header().correlation_id, id);
        match err.to_message().payload {
            Payload::Error(e) => assert_eq!(e.kind, ErrorKind::AgentUnreachable),
            other => panic!("{other:?}"),
        }
    }
    let dead = a.dead_letters().unwrap();
    assert!(
        dead.iter()
            .any(|l| l.message_id == id.0 && l.reason.contains("no such agent")),
        "{dead:?}"
    );
    // Sending to an id nobody has fails at once: it cannot even be resolved.
    match a.peer("nobody") {
        Err(CommunicationError::AgentUnreachable { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bus_without_lane_doorbells_routes_for_agents_that_do_not_park() {
    let mut cfg = config("nobells");
    cfg.lane_parking = false;
    let bus = start_with(cfg);
    let spin = agentbus_ipc::wait::Wait::Backoff(agentbus_ipc::wait::Backoff::default());
    let mut a = agentbus::client::Agent::attach(bus.options("a", "x").wait(spin)).unwrap();
    let mut b = agentbus::client::Agent::attach(bus.options("b", "x").wait(spin)).unwrap();
    let to_b = a.peer("b").unwrap();
    for seq in 0..50 {
        a.send_blocking(&to_b, &note(&a, seq), WAIT).unwrap();
    }
    assert_eq!(recv_seqs(&mut b, 50, WAIT), (0..50).collect::<Vec<_>>());
    let mut ch = a.channel("b").unwrap();
    let mut cb = b.accept_channel(WAIT).unwrap().unwrap();
    ch.send(&Message::raw(
        ch.identity(),
        MessageType::Notification,
        vec![1],
    ))
    .unwrap();
    assert!(cb.recv_timeout(WAIT).unwrap().is_some());
}

#[test]
fn a_parking_agent_on_a_bus_without_lane_doorbells_still_receives_promptly() {
    let mut cfg = config("nobells-park");
    cfg.lane_parking = false;
    let bus = start_with(cfg);
    let mut a = bus.attach("a", "x");
    let mut b = bus.attach("b", "x"); // parks by default
    let to_b = a.peer("b").unwrap();
    let start = std::time::Instant::now();
    for seq in 0..20 {
        a.send(&to_b, &note(&a, seq)).unwrap();
        assert_eq!(recv_seqs(&mut b, 1, WAIT), vec![seq]);
    }
    // Polling in short sleeps, not waiting out a heartbeat slice per message.
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_message_keeps_its_trace_metadata_reply_to_and_ids_through_the_router() {
    let bus = start("trace");
    let mut a = bus.attach("a", "x");
    let mut b = bus.attach("b", "x");
    let m = note(&a, 9)
        .trace([7; 16], [9; 8])
        .metadata("desk", "equities")
        .metadata("venue", "XNAS")
        .reply_to("replies.a")
        .correlation(MessageId(0xC0FFEE));
    let to_b = a.peer("b").unwrap();
    let id = a.send(&to_b, &m).unwrap();
    let d = b
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("delivered");
    let h = *d.header();
    let ext = d.extensions();
    assert_eq!(ext.trace().trace_id, [7; 16]);
    assert_eq!(ext.trace().span_id, [9; 8]);
    assert_eq!(ext.reply_to(), Some("replies.a"));
    assert_eq!(
        ext.metadata().collect::<Vec<_>>(),
        [("desk", "equities"), ("venue", "XNAS")]
    );
    assert_eq!(d.metadata("venue"), Some("XNAS"));
    let copy = d.to_message();
    assert_eq!(
        (copy.metadata, copy.reply_to),
        (m.metadata.clone(), m.reply_to.clone())
    );
    assert_eq!(h.message_id, id);
    assert_eq!(h.correlation_id, MessageId(0xC0FFEE));
    assert_eq!(h.source_slot, a.slot());
    assert_eq!(seq_of(&d), 9);
    // Untraced messages carry no extension block.
    drop(d);
    a.send(&to_b, &note(&a, 10)).unwrap();
    let d = b
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("delivered");
    assert!(d.extensions().trace().is_empty());
    assert_eq!(d.header().prefix_len(), agentbus::HEADER_LEN);
}

#[test]
fn the_sender_a_receiver_sees_is_the_attached_identity_whatever_the_body_claims() {
    let bus = start("forgedfrom");
    let mut liar =
        agentbus::client::Agent::attach(bus.options("liar", "strategy").capabilities(["x"]))
            .unwrap();
    let mut b = bus.attach("b", "risk");
    // The body names someone else as the sender.
    let forged = Message::notification(
        AgentIdentifier::new("ceo", "boss"),
        Notification {
            event: "approve everything".into(),
            ..Default::default()
        },
    );
    let to_b = liar.peer("b").unwrap();
    for _ in 0..2 {
        liar.send(&to_b, &forged).unwrap();
    }
    let d = b.recv_timeout(WAIT).unwrap().expect("delivered");
    // The claim does not even travel; the sender is the liar's attached identity.
    assert_eq!(d.from(), &AgentIdentifier::new("liar", "strategy"));
    assert_eq!(
        d.to_message().from,
        AgentIdentifier::new("liar", "strategy")
    );
    drop(d);
    // The second comes from the cache, with the same answer.
    let d = b.recv_timeout(WAIT).unwrap().expect("delivered");
    assert_eq!(d.from().agent_id, "liar");
    drop(d);
    // Queued by `poll` (no handler takes it), then received: the same.
    liar.send(&to_b, &forged).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while b.poll(16).unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
    let d = b.try_recv().unwrap().expect("queued");
    assert_eq!(d.from().agent_id, "liar");
    drop(d);
    // What agentd itself sends is from agentd.
    let _agents = b.subscribe("sys.agents").unwrap();
    let _late = bus.attach("late", "x");
    let d = b
        .recv_timeout(WAIT)
        .unwrap()
        .expect("a sys.agents notification");
    assert_eq!(d.from().agent_id, "agentd");
    drop(d);
    // Over a channel: the peer agentd connected.
    let mut ch = liar.channel("b").unwrap();
    let mut cb = b.accept_channel(WAIT).unwrap().unwrap();
    ch.send(&forged).unwrap();
    let d = cb.recv_timeout(WAIT).unwrap().expect("over the channel");
    assert_eq!(d.from(), &AgentIdentifier::new("liar", "strategy"));
}

#[test]
fn routes_follow_changes_made_in_any_order() {
    let bus = start("deltas");
    let mut feed = bus.attach("feed", "market_data");
    let mut a = bus.attach("a", "strategy");
    // Two patterns of one agent match one topic, created only after both: one copy each.
    let wide = a.subscribe("px.>").unwrap();
    let _exact = a.subscribe("px.EUR").unwrap();
    let eur = feed.topic("px.EUR").unwrap();
    feed.send(&eur, &note(&feed, 1)).unwrap();
    assert_eq!(recv_seqs(&mut a, 1, WAIT), vec![1]);
    assert_quiet(&mut a, QUIET);
    // Dropping one of them leaves the other routing.
    wide.unsubscribe().unwrap();
    feed.send(&eur, &note(&feed, 2)).unwrap();
    assert_eq!(recv_seqs(&mut a, 1, WAIT), vec![2]);
    // A capability set and a type interned before any agent has them: an agent attaching
    // later joins both, and is routed to as soon as its attach returned.
    let gpu = feed.capability(&["gpu"]).unwrap();
    let auditor = feed.agent_type("auditor").unwrap();
    let _ = feed.send(&gpu, &note(&feed, 3));
    let _ = feed.send(&auditor, &note(&feed, 4));
    // Both dead-lettered (nobody had them) before the agent that has them attaches: were they
    // still in the feed's lane then, they would reach it.
    eventually("the router dead-lettered the two unroutable notes", || {
        agent_info(&mut feed, "feed").frames_dead >= 2
    });
    let mut g = agentbus::client::Agent::attach(
        bus.options("g", "auditor")
            .capabilities(["gpu"])
            .max_capacity(10),
    )
    .unwrap();
    feed.send(&gpu, &note(&feed, 5)).unwrap();
    feed.send(&auditor, &note(&feed, 6)).unwrap();
    assert_eq!(recv_seqs(&mut g, 2, WAIT), vec![5, 6]);
}
