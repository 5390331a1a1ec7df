//! History for late joiners: a topic's last messages, delivered first to each new subscriber.

mod support;

use std::time::Duration;

use agentbus::client::Agent;
use agentbus::control::{BackPressure, Refusal, TopicConfig, MAX_HISTORY};
use agentbus::{CommunicationError, Message};
use agentd::config::TopicRule;
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// Waits until the router has taken `n` frames from `feed`'s lanes: a send returns once its
/// frame is in the sender's lane, and only what the router took is in a topic's history.
fn routed(feed: &mut Agent, n: u64) {
    eventually("the router took every frame sent", || {
        agent_info(feed, "feed").frames_sent >= n
    });
}

#[test]
fn a_late_joiner_gets_the_last_n_first_then_the_live_ones_in_order() {
    let bus = start("hist-late");
    let mut feed = bus.attach("feed", "market_data");
    let mut early = bus.attach("early", "strategy");
    let mut late = bus.attach("late", "strategy");
    let topic = feed
        .create_topic("md.AAPL", TopicConfig::default().history(5))
        .unwrap();
    // Published while nobody listens: kept for the next subscriber, not dead-lettered.
    for seq in 0..3 {
        feed.send(&topic, &note(&feed, seq)).unwrap();
    }
    let _early = early.subscribe("md.AAPL").unwrap();
    assert_eq!(recv_seqs(&mut early, 3, WAIT), vec![0, 1, 2]);
    for seq in 3..8 {
        feed.send(&topic, &note(&feed, seq)).unwrap();
    }
    assert_eq!(recv_seqs(&mut early, 5, WAIT), vec![3, 4, 5, 6, 7]);
    // The late joiner: the last five, at once (visible when subscribe returns), then live.
    let _late = late.subscribe("md.*").unwrap();
    let mut first = Vec::new();
    while let Some(d) = late.try_recv().unwrap() {
        first.push(seq_of(&d));
    }
    assert_eq!(first, vec![3, 4, 5, 6, 7], "the history, oldest first");
    feed.send(&topic, &note(&feed, 8)).unwrap();
    assert_eq!(recv_seqs(&mut late, 1, WAIT), vec![8]);
    assert_eq!(recv_seqs(&mut early, 1, WAIT), vec![8]);
    // A second pattern of a subscriber already there is not a new subscriber: no replay.
    let _again = late.subscribe("md.>").unwrap();
    assert_quiet(&mut late, Duration::from_millis(200));
    assert!(
        feed.dead_letters().unwrap().is_empty(),
        "nothing dead-lettered: the messages with no subscriber were kept"
    );
    // Leaving and coming back is joining again.
    drop(_late);
    drop(_again);
    let _back = late.subscribe("md.AAPL").unwrap();
    assert_eq!(recv_seqs(&mut late, 5, WAIT), vec![4, 5, 6, 7, 8]);
}

#[test]
fn a_message_whose_ttl_ran_out_is_not_replayed_and_one_without_a_ttl_is() {
    let bus = start("hist-ttl");
    let mut feed = bus.attach("feed", "market_data");
    let mut late = bus.attach("late", "strategy");
    let topic = feed
        .create_topic("md.EUR", TopicConfig::default().history(10))
        .unwrap();
    let short: Message = note(&feed, 1).ttl(Duration::from_millis(50));
    feed.send(&topic, &short).unwrap();
    feed.send(&topic, &note(&feed, 2)).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _sub = late.subscribe("md.EUR").unwrap();
    assert_eq!(recv_seqs(&mut late, 1, WAIT), vec![2]);
    assert_quiet(&mut late, Duration::from_millis(200));
}

#[test]
fn a_wildcard_late_joiner_gets_each_topics_history_and_the_config_names_it() {
    let mut cfg = config("hist-rules");
    cfg.topics = vec![TopicRule {
        pattern: "md.>".into(),
        config: TopicConfig::with(BackPressure::DropOldest).history(2),
    }];
    let bus = start_with(cfg);
    let mut feed = bus.attach("feed", "market_data");
    let mut late = bus.attach("late", "strategy");
    let a = feed.topic("md.A").unwrap();
    let b = feed.topic("md.B").unwrap();
    for seq in 0..4 {
        feed.send(&a, &note(&feed, seq)).unwrap();
        feed.send(&b, &note(&feed, 10 + seq)).unwrap();
    }
    routed(&mut feed, 8);
    let _all = late.subscribe("md.>").unwrap();
    let mut got = recv_seqs(&mut late, 4, WAIT);
    got.sort_unstable();
    assert_eq!(got, vec![2, 3, 12, 13], "the last two of each topic");
    let listed = feed.list_topics().unwrap();
    let config = &listed.iter().find(|t| t.name == "md.A").unwrap().config;
    assert_eq!(config.history, 2);
    // Asking for more history than agentd keeps is refused, naming the most.
    match feed.create_topic("big", TopicConfig::default().history(MAX_HISTORY + 1)) {
        Err(CommunicationError::Refused {
            refusal: Refusal::BadRequest,
            message,
        }) => assert!(message.contains(&MAX_HISTORY.to_string()), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn history_is_bounded_by_a_lane_and_what_a_full_lane_cannot_take_is_counted_lost() {
    let mut cfg = config("hist-bytes");
    cfg.lane_capacity = 1 << 14;
    let bus = start_with(cfg);
    let mut feed = bus.attach("feed", "market_data");
    let mut late = bus.attach("late", "strategy");
    let mut observer = bus.attach("observer", "ops");
    let topic = feed
        .create_topic("md.big", TopicConfig::default().history(MAX_HISTORY))
        .unwrap();
    // 200 messages of 1 KiB: far more than a 16 KiB lane.
    for seq in 0..200 {
        let m = note(&feed, seq).metadata("pad", "x".repeat(1000));
        feed.send_blocking(&topic, &m, WAIT).unwrap();
    }
    routed(&mut feed, 200);
    let _sub = late.subscribe("md.big").unwrap();
    let mut got = Vec::new();
    while let Some(d) = late.try_recv().unwrap() {
        got.push(seq_of(&d));
    }
    assert!(
        !got.is_empty() && got.len() < 16,
        "a lane's worth at most: {got:?}"
    );
    assert_eq!(*got.last().unwrap(), 199, "the newest: {got:?}");
    assert!(
        got.windows(2).all(|w| w[1] == w[0] + 1),
        "in order: {got:?}"
    );
    eventually("the replayed copies are counted as received", || {
        agent_info(&mut observer, "late").copies_received == got.len() as u64
    });
    let info = agent_info(&mut observer, "late");
    assert_eq!(info.copies_lost, 0, "an empty lane takes the whole history");

    // A joiner whose lane is full already: the history it cannot take is counted lost.
    let mut full = bus.attach("full", "strategy");
    let to_full = feed.peer("full").unwrap();
    let mut sent = 0;
    // Until the feed's own lane stays full: the router holds a message for the full lane.
    for seq in 0..64 {
        let m = note(&feed, 1000 + seq).metadata("pad", "x".repeat(1000));
        match feed.send_blocking(&to_full, &m, Duration::from_millis(200)) {
            Ok(_) => sent += 1,
            Err(CommunicationError::Timeout { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    eventually("the joiner's lane is full", || {
        agent_info(&mut observer, "full").copies_received >= 10
    });
    std::thread::sleep(Duration::from_millis(100));
    let _sub = full.subscribe("md.big").unwrap();
    eventually("what the full lane could not take is counted lost", || {
        agent_info(&mut observer, "full").copies_lost > 0
    });
    let info = agent_info(&mut observer, "full");
    eprintln!(
        "{sent} direct messages sent; history replayed into a full lane: {} lost",
        info.copies_lost
    );
}

/// On a `Block` topic, a message waiting for a stalled subscriber is already in the history: a
/// subscriber joining meanwhile gets it once, when it goes on, not from the history too.
#[test]
fn a_joiner_gets_a_message_still_waiting_for_a_full_lane_once() {
    let mut cfg = config("hist-block");
    cfg.lane_capacity = 1 << 14;
    let bus = start_with(cfg);
    let mut feed = bus.attach("feed", "market_data");
    let mut stalled = bus.attach("stalled", "strategy");
    let mut late = bus.attach("late", "strategy");
    let topic = feed
        .create_topic("md.blk", TopicConfig::default().history(5))
        .unwrap();
    let _stalled = stalled.subscribe("md.blk").unwrap();
    // Until the stalled subscriber's lane is full and a message waits for it in the feed's lane.
    // Full for good: still full after the router has had 200 ms to take what it can.
    let mut sent = 0;
    let mut full_for = 0;
    while sent < 10_000 && full_for < 4 {
        match feed.send(&topic, &note(&feed, sent)) {
            Ok(_) => {
                sent += 1;
                full_for = 0;
            }
            Err(CommunicationError::QueueFull { .. }) => {
                full_for += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(sent < 10_000, "the feed was never held up");
    let _late = late.subscribe("md.blk").unwrap();
    // The stalled one reads everything; the joiner, reading too, ends up with every message
    // once, in order per the feed, from the history's oldest on.
    let reader = std::thread::spawn(move || recv_seqs(&mut stalled, sent as usize, WAIT));
    let mut got = Vec::new();
    while let Some(d) = late.recv_timeout(Duration::from_millis(300)).unwrap() {
        got.push(seq_of(&d));
    }
    assert_eq!(reader.join().unwrap(), (0..sent).collect::<Vec<_>>());
    let first = *got.first().expect("the history at least");
    assert!(
        first > 0 && first + 5 < sent,
        "the history, then the rest: {got:?}"
    );
    assert_eq!(
        got,
        (first..sent).collect::<Vec<_>>(),
        "each once, in order, the last one included"
    );
}
