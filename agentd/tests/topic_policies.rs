//! Topic back-pressure policies: what a subscriber whose lane is full costs the others.

mod support;

use std::time::Duration;

use agentbus::client::{Agent, Raw, Subscription};
use agentbus::control::{BackPressure, Refusal, TopicConfig};
use agentbus::CommunicationError;
use agentd::config::TopicRule;
use support::*;

const WAIT: Duration = Duration::from_secs(5);
const DEAD_LETTER_SLOW: TopicConfig = TopicConfig::with(BackPressure::DeadLetterSlow);

/// A bus whose lanes hold a few hundred notes (a reader that stops fills its lane in a fraction
/// of a second at [`RATE`], one that keeps reading has a quarter of a second of slack for the
/// scheduler), with a tight dead-letter budget (a publisher charged for its subscribers' dead
/// letters would be throttled at once).
fn bus_with_lanes(name: &str, lane_capacity: usize) -> TestBus {
    let mut cfg = config(name);
    cfg.lane_capacity = lane_capacity;
    cfg.dead_letter_burst = 20;
    cfg.dead_letter_rate = 1;
    start_with(cfg)
}

/// Messages a second the publishers send: a rate a reader keeps up with on a loaded 2-core
/// machine (the test counts messages received, not time).
const RATE_GAP: Duration = Duration::from_micros(400);

/// Messages each stalled-subscriber case publishes.
const N: i64 = 3_000;

/// A publisher ("feed") sends [`N`] notes at [`RATE_GAP`] to `md.AAPL`, configured as `config`,
/// with a healthy subscriber that reads them all (checked: every one, in order) and "slow",
/// which never reads; returns them all, still attached.
fn publish_beside_a_stalled_subscriber(name: &str, config: TopicConfig) -> Stalled {
    let bus = bus_with_lanes(name, 1 << 16);
    let mut publisher = bus.attach("feed", "market_data");
    let mut healthy = bus.attach("healthy", "strategy");
    let mut slow = bus.attach("slow", "strategy");
    let topic = publisher.create_topic("md.AAPL", config).unwrap();
    let healthy_sub = healthy.subscribe("md.>").unwrap();
    let slow_sub = slow.subscribe("md.AAPL").unwrap();
    let reader = std::thread::spawn(move || {
        let seqs = recv_seqs(&mut healthy, N as usize, WAIT);
        (healthy, seqs)
    });
    for seq in 0..N {
        publisher
            .send_blocking(&topic, &note(&publisher, seq), WAIT)
            .unwrap_or_else(|e| panic!("publish {seq} held up: {e}"));
        std::thread::sleep(RATE_GAP);
    }
    let (healthy, seqs) = reader.join().expect("reader");
    assert_eq!(
        seqs,
        (0..N).collect::<Vec<_>>(),
        "the healthy subscriber got every message, in order, while the other stalled"
    );
    let mut observer = bus.attach("observer", "ops");
    eventually("the router counted every copy", || {
        agent_info(&mut observer, "feed").destinations == 2 * N as u64
    });
    Stalled {
        _agents: (publisher, healthy, healthy_sub, slow_sub),
        slow,
        observer,
        _bus: bus,
    }
}

/// What [`publish_beside_a_stalled_subscriber`] leaves: everyone still attached (fields drop in
/// order: the agents before the bus).
struct Stalled {
    _agents: (Agent, Agent, Subscription, Subscription),
    slow: Agent,
    observer: Agent,
    _bus: TestBus,
}

#[test]
fn a_slow_subscriber_under_dead_letter_slow_never_holds_up_the_others() {
    // Bound by name, not `..`: the agents and the bus must live to the end of the test.
    let Stalled {
        mut slow,
        mut observer,
        _agents,
        _bus,
    } = publish_beside_a_stalled_subscriber("tp-dls", DEAD_LETTER_SLOW);
    // What the slow one lost is counted against it, dead-lettered naming it, and never charged
    // to the publisher.
    let slow_slot = agent_info(&mut observer, "slow").slot;
    let lost = agent_info(&mut observer, "slow").copies_lost;
    let kept = recv_seqs(&mut slow, N as usize, Duration::from_millis(200));
    assert!(
        lost > 0,
        "the slow subscriber lost nothing: its lane never filled?"
    );
    assert_eq!(
        lost + kept.len() as u64,
        N as u64,
        "every copy kept or counted lost"
    );
    assert_eq!(
        kept,
        (0..kept.len() as i64).collect::<Vec<_>>(),
        "the slow one keeps the oldest its lane held"
    );
    let letters: Vec<_> = observer
        .dead_letters()
        .unwrap()
        .into_iter()
        .filter(|l| l.destination_slot == Some(slow_slot))
        .collect();
    assert_eq!(letters.len() as u64, lost, "one dead letter per lost copy");
    assert!(
        letters[0].reason.contains("\"slow\"") && letters[0].reason.contains("dead-letter-slow"),
        "{}",
        letters[0].reason
    );
    let feed = agent_info(&mut observer, "feed");
    assert_eq!(
        feed.throttled, 0,
        "the publisher was charged for its subscriber's slowness"
    );
    assert_eq!(feed.copies_delivered + feed.copies_dead, feed.destinations);
    assert_eq!(agent_info(&mut observer, "healthy").copies_lost, 0);
}

#[test]
fn a_slow_subscriber_under_drop_oldest_loses_the_oldest_and_catches_up_on_the_newest() {
    // Bound by name, not `..`: the agents and the bus must live to the end of the test.
    let Stalled {
        mut slow,
        mut observer,
        _agents,
        _bus,
    } = publish_beside_a_stalled_subscriber("tp-drop", TopicConfig::with(BackPressure::DropOldest));
    // The slow one reads at last: its lane's oldest, then (as it makes room) the newest the
    // hold kept, the very last included; what is missing in between is counted lost.
    let kept = recv_seqs(&mut slow, N as usize, Duration::from_millis(500));
    let lost = agent_info(&mut observer, "slow").copies_lost;
    assert!(
        lost > 0,
        "the slow subscriber lost nothing: its lane and hold never filled?"
    );
    assert_eq!(
        lost + kept.len() as u64,
        N as u64,
        "every copy kept or counted lost"
    );
    assert_eq!(kept.last(), Some(&(N - 1)), "it catches up on the newest");
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order: {kept:?}");
    let gap = kept.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert_eq!(
        gap, 1,
        "one run of oldest (its lane), one of newest (the hold): {kept:?}"
    );
    let feed = agent_info(&mut observer, "feed");
    assert_eq!(feed.copies_dead, 0, "drops are counted, not dead-lettered");
    assert_eq!(feed.throttled, 0);
    assert_eq!(agent_info(&mut observer, "healthy").copies_lost, 0);
}

#[test]
fn under_block_a_slow_subscriber_holds_up_the_publisher_and_loses_nothing() {
    let bus = bus_with_lanes("tp-block", 4096);
    let mut publisher = bus.attach("feed", "market_data");
    let mut healthy = bus.attach("healthy", "strategy");
    let mut slow = bus.attach("slow", "strategy");
    let topic = publisher.topic("orders.new").unwrap(); // the default: block
    let _h = healthy.subscribe("orders.new").unwrap();
    let _s = slow.subscribe("orders.new").unwrap();
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&got);
    let reader = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        // Until 3 s of silence: the slow one is read after the publisher is held up.
        while let Some(d) = healthy.recv_timeout(Duration::from_secs(3)).unwrap() {
            seqs.push(seq_of(&d));
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        seqs
    });
    // The slow lane fills, then the publisher's: the publisher is refused.
    let mut sent = 0;
    let held_up = loop {
        match publisher.send(&topic, &note(&publisher, sent)) {
            Ok(_) => sent += 1,
            Err(CommunicationError::QueueFull { .. }) => break true,
            Err(e) => panic!("{e}"),
        }
        if sent > 10_000 {
            break false;
        }
        std::thread::sleep(RATE_GAP);
    };
    assert!(
        held_up,
        "a slow subscriber under block never held the publisher up"
    );
    // And the healthy subscriber waits with it (head-of-line blocking): it has not had them all.
    std::thread::sleep(Duration::from_millis(300));
    let before = got.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        before < sent as usize,
        "the healthy one got all {sent} while the slow one slept"
    );
    let mut observer = bus.attach("observer", "ops");
    assert_eq!(agent_info(&mut observer, "slow").copies_lost, 0);
    // Once the slow one reads, everything arrives at both: nothing lost.
    let got_slow = recv_seqs(&mut slow, sent as usize, WAIT);
    let got_healthy = reader.join().expect("reader");
    assert_eq!(got_slow, (0..sent).collect::<Vec<_>>());
    assert_eq!(got_healthy, (0..sent).collect::<Vec<_>>());
}

#[test]
fn a_topic_keeps_one_configuration() {
    let bus = start("tp-config");
    let a = bus.attach("a", "x");
    let topic = a.create_topic("md.MSFT", DEAD_LETTER_SLOW).unwrap();
    // Asked for as it is, or without a configuration: the same topic.
    assert_eq!(a.create_topic("md.MSFT", DEAD_LETTER_SLOW).unwrap(), topic);
    assert_eq!(a.topic("md.MSFT").unwrap(), topic);
    match a.create_topic("md.MSFT", TopicConfig::default()) {
        Err(CommunicationError::Refused {
            refusal: Refusal::BadRequest,
            message,
        }) => assert!(
            message.contains("dead-letter-slow") && message.contains("block"),
            "{message}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let listed = a.list_topics().unwrap();
    let t = listed.iter().find(|t| t.name == "md.MSFT").unwrap();
    assert_eq!(t.config, DEAD_LETTER_SLOW);
}

#[test]
fn agentd_configures_new_topics_by_name() {
    let mut cfg = config("tp-rules");
    cfg.topics = vec![TopicRule {
        pattern: "md.>".into(),
        config: DEAD_LETTER_SLOW,
    }];
    let bus = start_with(cfg);
    let a = bus.attach("a", "x");
    a.topic("md.EUR.USD").unwrap();
    a.topic("orders.new").unwrap();
    let listed = a.list_topics().unwrap();
    let config_of = |name: &str| {
        listed
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .config
            .clone()
    };
    assert_eq!(config_of("md.EUR.USD"), DEAD_LETTER_SLOW);
    assert_eq!(config_of("orders.new"), TopicConfig::default());
    // A client's own configuration wins over the rule.
    let own = a
        .create_topic("md.GBP", TopicConfig::default())
        .and_then(|_| a.list_topics().map_err(Into::into))
        .unwrap();
    assert_eq!(
        own.iter().find(|t| t.name == "md.GBP").unwrap().config,
        TopicConfig::default()
    );
}

#[test]
fn a_message_over_the_topics_maximum_is_dead_lettered_and_its_sender_told() {
    let bus = start("tp-max");
    let mut publisher = bus.attach("feed", "x");
    let mut reader = bus.attach("reader", "x");
    let topic = publisher
        .create_topic(
            "fills",
            TopicConfig::with(BackPressure::Block).max_message_size(200),
        )
        .unwrap();
    let _sub = reader.subscribe("fills").unwrap();
    publisher.send(&topic, Raw(&[1u8; 100])).unwrap(); // 148 bytes with its header
    publisher.send(&topic, Raw(&[2u8; 300])).unwrap(); // 348: over
    let d = reader.recv_timeout(WAIT).unwrap().expect("the small one");
    assert_eq!(d.raw().map(<[u8]>::len), Some(100));
    drop(d);
    assert_quiet(&mut reader, Duration::from_millis(200));
    // The sender hears why, as MessageTooLarge.
    let e = publisher
        .recv_timeout(WAIT)
        .unwrap()
        .expect("an error back")
        .to_message();
    match e.payload {
        agentbus::Payload::Error(err) => {
            assert_eq!(err.kind, agentbus::ErrorKind::MessageTooLarge);
            assert!(
                err.details.contains("maximum message size"),
                "{}",
                err.details
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let letters = publisher.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].frame_len, 348);
    // The limit is part of the topic's one configuration.
    match publisher.create_topic("fills", TopicConfig::default()) {
        Err(CommunicationError::Refused { message, .. }) => {
            assert!(message.contains("up to 200 bytes"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
