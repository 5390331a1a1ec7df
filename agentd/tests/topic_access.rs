//! Who may publish on and subscribe to a topic: refused with `Unauthorized`, by agent id or
//! type, whether the topic was configured by its creator or by agentd's configuration.

mod support;

use std::time::Duration;

use agentbus::client::{ClientError, Subscription};
use agentbus::codec::{encode, header_for, Route};
use agentbus::control::{Principal, Refusal, TopicConfig};
use agentbus::{CommunicationError, ErrorKind, Message, RouteKind};
use agentd::config::TopicRule;
use support::raw::raw_attach;
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// Only agents of type `execution` publish fills; only `risk-1` and strategies read them.
fn fills() -> TopicConfig {
    TopicConfig::default()
        .publishers([Principal::of_type("execution")])
        .subscribers([Principal::agent("risk-1"), Principal::of_type("strategy")])
}

fn expect_unauthorized<T: std::fmt::Debug>(
    got: Result<T, CommunicationError>,
    what: &str,
) -> String {
    match got {
        Err(CommunicationError::Unauthorized { what }) => what,
        Err(CommunicationError::Refused {
            refusal: Refusal::Unauthorized,
            message,
        }) => message,
        other => panic!("{what}: expected Unauthorized, got {other:?}"),
    }
}

/// The refusal of a subscription agentd does not allow.
fn expect_refused_subscription(got: Result<Subscription, ClientError>, what: &str) -> String {
    match got {
        Err(ClientError::Refused {
            kind: Refusal::Unauthorized,
            message,
        }) => message,
        other => panic!("{what}: expected Unauthorized, got {other:?}"),
    }
}

#[test]
fn only_allowed_publishers_publish_and_others_are_refused_before_sending() {
    let bus = start("acl-pub");
    let mut exec = bus.attach("exec-1", "execution");
    let mut strategy = bus.attach("strat-1", "strategy");
    let mut risk = bus.attach("risk-1", "risk");
    let topic = exec.create_topic("fills.AAPL", fills()).unwrap();
    assert!(topic.may_publish());
    let _reads = risk.subscribe("fills.AAPL").unwrap();
    let _reads_too = strategy.subscribe("fills.AAPL").unwrap();
    exec.send(&topic, &note(&exec, 1)).unwrap();
    assert_eq!(recv_seqs(&mut risk, 1, WAIT), vec![1]);
    assert_eq!(recv_seqs(&mut strategy, 1, WAIT), vec![1]);

    // The strategy may read the topic but not publish on it: its handle says so, and a send
    // is refused without reaching agentd.
    let theirs = strategy.topic("fills.AAPL").unwrap();
    assert_eq!(theirs.name(), topic.name());
    assert!(!theirs.may_publish());
    let why = expect_unauthorized(
        strategy.send(&theirs, &note(&strategy, 2)),
        "a strategy publishing fills",
    );
    assert!(why.contains("fills.AAPL"), "{why}");
    assert_quiet(&mut risk, Duration::from_millis(200));
    assert!(
        exec.dead_letters().unwrap().is_empty(),
        "refused before sending: nothing for agentd to dead-letter"
    );
}

#[test]
fn a_frame_written_past_the_client_is_refused_by_the_router_and_dead_lettered() {
    let bus = start("acl-rogue");
    let exec = bus.attach("exec-1", "execution");
    let mut risk = bus.attach("risk-1", "risk");
    let topic = exec.create_topic("fills.MSFT", fills()).unwrap();
    let _reads = risk.subscribe("fills.MSFT").unwrap();
    let id = exec
        .list_topics()
        .unwrap()
        .into_iter()
        .find(|t| t.name == "fills.MSFT")
        .unwrap()
        .id;
    // A rogue writes a fill straight into its lane, as the client never would.
    let (_conn, seg, layout) = raw_attach(&bus, "rogue");
    let mut lane = layout
        .outbound_ring(&seg.region())
        .next()
        .unwrap()
        .unwrap()
        .into_producer();
    let m = Message::raw(
        exec.identity(),
        agentbus::MessageType::Notification,
        b"forged fill".to_vec(),
    );
    let route = Route {
        kind: RouteKind::Topic,
        destination: id,
    };
    let mut header = header_for(&m, route, 0);
    header.timestamp_ns = agentbus_ipc::clock::realtime_ns();
    encode(&mut lane, &header, &m).unwrap();
    eventually("the forged fill is dead-lettered", || {
        exec.dead_letters()
            .unwrap()
            .iter()
            .any(|l| l.reason.contains("may not publish"))
    });
    assert_quiet(&mut risk, Duration::from_millis(200));
    // The rogue is told why, as Unauthorized, on its own inbound lane.
    let mut inbound = layout
        .inbound_rings(&seg.region())
        .next()
        .unwrap()
        .unwrap()
        .into_consumer();
    let deadline = std::time::Instant::now() + WAIT;
    let error = loop {
        match inbound.peek() {
            Ok(Some(bytes)) => {
                break agentbus::codec::decode(bytes)
                    .unwrap()
                    .to_message()
                    .unwrap()
            }
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            other => panic!("no error back to the rogue: {other:?}"),
        }
    };
    match error.payload {
        agentbus::Payload::Error(e) => assert_eq!(e.kind, ErrorKind::Unauthorized),
        other => panic!("expected an error back, got {other:?}"),
    }
    drop(topic);
}

#[test]
fn subscribers_are_checked_by_id_and_type_and_wildcards_leave_out_what_they_may_not_read() {
    let bus = start("acl-sub");
    let mut exec = bus.attach("exec-1", "execution");
    let mut risk = bus.attach("risk-1", "risk");
    let mut other_risk = bus.attach("risk-2", "risk");
    let restricted = exec.create_topic("orders.fills", fills()).unwrap();
    let open = exec.topic("orders.new").unwrap();

    // Exact: refused, naming who may.
    let why = expect_refused_subscription(
        other_risk.subscribe("orders.fills"),
        "risk-2 subscribing to fills",
    );
    assert!(
        why.contains("agent:risk-1") && why.contains("type:strategy"),
        "{why}"
    );
    // A wildcard takes the topics it may read and leaves the others out, including one
    // created after it.
    let _all = other_risk.subscribe("orders.>").unwrap();
    let _mine = risk.subscribe("orders.>").unwrap();
    let later = exec.create_topic("orders.cancels", fills()).unwrap();
    for (seq, topic) in [(1, &restricted), (2, &open), (3, &later)] {
        exec.send(topic, &note(&exec, seq)).unwrap();
    }
    assert_eq!(recv_seqs(&mut risk, 3, WAIT), vec![1, 2, 3]);
    assert_eq!(recv_seqs(&mut other_risk, 1, WAIT), vec![2]);
    assert_quiet(&mut other_risk, Duration::from_millis(200));
    let listed = exec.list_topics().unwrap();
    let subscribers = |name: &str| {
        listed
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.subscribers)
    };
    assert_eq!(subscribers("orders.fills"), Some(1));
    assert_eq!(subscribers("orders.new"), Some(2));
}

#[test]
fn agentds_rules_set_access_and_a_client_cannot_loosen_them() {
    let mut cfg = config("acl-rules");
    cfg.apply_toml(
        "[[topics]]\npattern = \"risk.>\"\npublishers = [\"agent:risk-engine\"]\n\
         subscribers = [\"type:risk\", \"type:execution\"]\n",
    )
    .unwrap();
    let rule = cfg.topics[0].clone();
    assert_eq!(
        rule,
        TopicRule {
            pattern: "risk.>".into(),
            config: TopicConfig::default()
                .publishers([Principal::agent("risk-engine")])
                .subscribers([Principal::of_type("risk"), Principal::of_type("execution")]),
        }
    );
    let bus = start_with(cfg);
    let mut engine = bus.attach("risk-engine", "risk");
    let mut strategy = bus.attach("strat-1", "strategy");
    // Asking for the name with other access lists is refused; without a configuration the
    // rule's apply.
    let why = expect_unauthorized(
        strategy.create_topic("risk.limits", TopicConfig::default()),
        "a strategy opening risk.limits to all",
    );
    assert!(why.contains("agent:risk-engine"), "{why}");
    let limits = strategy.topic("risk.limits").unwrap();
    assert!(!limits.may_publish());
    expect_refused_subscription(
        strategy.subscribe("risk.limits"),
        "a strategy reading risk limits",
    );
    let mine = engine.topic("risk.limits").unwrap();
    assert!(mine.may_publish());
    let _reads = engine.subscribe("risk.limits").unwrap();
    engine.send(&mine, &note(&engine, 7)).unwrap();
    assert_eq!(recv_seqs(&mut engine, 1, WAIT), vec![7]);
    // The same access lists with other delivery settings are the creator's to choose.
    engine
        .create_topic("risk.breaches", rule.config.clone().history(3))
        .unwrap();
    assert_quiet(&mut strategy, Duration::from_millis(100));
}

#[test]
fn bad_principals_in_agentds_configuration_are_named() {
    let mut cfg = config("acl-bad");
    let e = cfg
        .apply_toml("[[topics]]\npattern = \"x.>\"\npublishers = [\"risk-engine\"]\n")
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("topics.publishers") && msg.contains("agent:ID"),
        "{msg}"
    );
}
