//! Errors say what really happened: agentd gone is `Disconnected` (or `BusNotRunning` before
//! attaching), never an unreachable agent with no name; a wait that runs out is `Timeout`, never
//! a full queue; a refused control request is `Refused`; an unroutable request names where it
//! went. Every wait here is bounded, and agents park (the default) rather than spin.

mod support;

use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, Responder};
use agentbus::control::Refusal;
use agentbus::*;
use support::*;

/// The longest any step here may take on a loaded machine.
const BOUND: Duration = Duration::from_secs(5);

/// Asserts `e` is this agent's `Disconnected` from bus `bus`, telling how to start agentd.
fn assert_disconnected(e: &CommunicationError, bus: &str) -> u64 {
    match e {
        CommunicationError::Disconnected {
            bus: b,
            unsent: Some(unsent),
        } => {
            assert_eq!(b, bus);
            assert_eq!(e.kind(), ErrorKind::AgentUnreachable);
            let text = e.to_string();
            assert!(text.contains(&format!("agentd --bus {bus}")), "{text}");
            *unsent
        }
        other => panic!("expected Disconnected from {bus}, got {other:?}"),
    }
}

#[test]
fn after_agentd_stops_sends_requests_and_receives_report_disconnected() {
    let mut bus = start("gone");
    let mut sender = bus.attach("sender", "feed");
    let fresh = bus.attach("fresh", "feed");
    let mut asker = bus.attach("asker", "strategy");
    let mut receiver = bus.attach("receiver", "strategy");
    // Resolve the receiver while agentd runs, so later sends need no control call.
    let sender_to_receiver = sender.peer("receiver").unwrap();
    let asker_to_receiver = asker.peer("receiver").unwrap();
    sender.send(&sender_to_receiver, &note(&sender, 0)).unwrap();
    asker.send(&asker_to_receiver, &note(&asker, 0)).unwrap();
    assert_eq!(recv_seqs(&mut receiver, 2, BOUND), vec![0, 0]);

    bus.daemon.stop();
    let stopped = Instant::now();

    // A name never resolved needs agentd: the control call finds the connection closed.
    let e = fresh.peer("never-resolved").unwrap_err();
    assert_eq!(assert_disconnected(&e, &bus.bus), 0, "fresh sent nothing");
    // So does a topic never published to, and it keeps saying the same.
    let e = fresh.topic("market.AAPL").unwrap_err();
    assert_disconnected(&e, &bus.bus);
    let e = fresh.topic("market.AAPL").unwrap_err();
    assert_disconnected(&e, &bus.bus);

    // A resolved name needs no control call: the router's beat stops, then the socket's EOF.
    let mut accepted = 0u64;
    let e = loop {
        match sender.send(&sender_to_receiver, &note(&sender, 3)) {
            Ok(_) => accepted += 1,
            Err(CommunicationError::QueueFull { .. }) => {}
            Err(e) => break e,
        }
        assert!(stopped.elapsed() < BOUND, "the sender never noticed");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(assert_disconnected(&e, &bus.bus), accepted);

    // A request waiting for its answer hears of it instead of waiting out its timeout.
    let waited = Instant::now();
    let e = asker
        .request(
            &asker_to_receiver,
            &task(&asker, "t"),
            Duration::from_secs(30),
        )
        .unwrap_err();
    assert_disconnected(&e, &bus.bus);
    assert!(waited.elapsed() < BOUND, "waited {:?}", waited.elapsed());

    // So does a receiver.
    let waited = Instant::now();
    match receiver.recv_timeout(Duration::from_secs(30)) {
        Err(e) => {
            assert_disconnected(&e, &bus.bus);
        }
        Ok(d) => panic!("expected Disconnected, got a delivery: {:?}", d.is_some()),
    }
    assert!(waited.elapsed() < BOUND, "waited {:?}", waited.elapsed());
}

#[test]
fn attaching_where_no_agentd_runs_is_bus_not_running() {
    let bus = start("notrunning");
    let options = AttachOptions::new("t-nobody-runs-this-bus", "a", "feed").socket_dir(&bus.dir);
    let e: CommunicationError = match Agent::attach(options) {
        Err(e) => e.into(),
        Ok(_) => panic!("attached to a bus nobody serves"),
    };
    match &e {
        CommunicationError::BusNotRunning { bus, reason } => {
            assert_eq!(bus, "t-nobody-runs-this-bus");
            assert!(reason.contains("t-nobody-runs-this-bus.sock"), "{reason}");
        }
        other => panic!("expected BusNotRunning, got {other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::AgentUnreachable);
    let text = e.to_string();
    assert!(
        text.contains("agentd --bus t-nobody-runs-this-bus"),
        "{text}"
    );
}

#[test]
fn a_request_nobody_answers_is_a_timeout_with_its_real_wait() {
    let bus = start("reqtimeout");
    let mut client = bus.attach("client", "strategy");
    let _silent = bus.attach("silent", "risk"); // attached, never answers
    let silent = client.peer("silent").unwrap();
    let wait = Duration::from_millis(200);
    let started = Instant::now();
    let e = client
        .request(&silent, &task(&client, "t"), wait)
        .unwrap_err();
    match &e {
        CommunicationError::Timeout { what, after } => {
            assert_eq!(*after, wait);
            assert!(what.contains("response"), "{what}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() >= wait);
    assert!(started.elapsed() < BOUND);
    // The agent is still connected: a timeout is not a lost agentd.
    assert!(client.sender().is_connected());
}

#[test]
fn an_unroutable_request_names_its_destination() {
    let bus = start("reqnames");
    let mut client = bus.attach("client", "strategy");
    let nobody_type = client.agent_type("nobody-has-this-type").unwrap();
    let fx_rates = client.capability(&["fx", "rates"]).unwrap();
    for (destination, named) in [
        (Responder::Type(&nobody_type), "type nobody-has-this-type"),
        (Responder::Capability(&fx_rates), "capabilities fx,rates"),
    ] {
        match client.request(destination, &task(&client, "t"), BOUND) {
            Err(CommunicationError::AgentUnreachable { agent, reason }) => {
                assert_eq!(agent, named);
                assert!(reason.contains("could not be routed"), "{reason}");
            }
            other => panic!("expected AgentUnreachable for {named}, got {other:?}"),
        }
    }
    match client.peer("nobody") {
        Err(CommunicationError::AgentUnreachable { agent, .. }) => assert_eq!(agent, "nobody"),
        other => panic!("expected AgentUnreachable, got {other:?}"),
    }
}

#[test]
fn a_refused_control_request_is_refused_with_agentd_s_reason() {
    let bus = start("refused");
    let mut a = bus.attach("a", "feed");
    let e = a.topic("market..AAPL").unwrap_err();
    match &e {
        CommunicationError::Refused { refusal, message } => {
            assert_eq!(*refusal, Refusal::BadRequest);
            assert!(message.contains("not valid"), "{message}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::InvalidFormat);
    // The agent is fine afterwards.
    assert!(a.sender().is_connected());
    let aapl = a.topic("market.AAPL").unwrap();
    a.send(&aapl, &note(&a, 1)).unwrap();
}
