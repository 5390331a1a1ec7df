//! Circuit breakers per request destination, across real agents: closed, open, half-open.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, BreakerConfig, CircuitState};
use agentbus::*;
use support::*;

const CONFIG: BreakerConfig = BreakerConfig {
    failure_threshold: 3,
    reset_timeout: Duration::from_millis(400),
};

#[test]
fn a_destination_that_stops_answering_is_failed_fast_then_tried_again() {
    let bus = start("breaker");
    let mut strategy =
        Agent::attach(bus.options("strategy", "strategy").breaker(Some(CONFIG))).unwrap();
    let mut risk = bus.attach("risk", "risk"); // attached, not answering yet
    risk.on_request(|_, _| Ok(Payload::TaskResponse(TaskResponse::default())));
    let to_risk = strategy.peer("risk").unwrap();
    let short = Duration::from_millis(60);
    for i in 0..3 {
        match strategy.request(&to_risk, &task(&strategy, &format!("t{i}")), short) {
            Err(CommunicationError::Timeout { .. }) => {}
            other => panic!("request {i}: expected a timeout, got {other:?}"),
        }
    }
    let status = strategy.breakers();
    assert_eq!(status.len(), 1);
    assert_eq!(
        (
            status[0].destination.as_str(),
            status[0].state,
            status[0].failures
        ),
        ("risk", CircuitState::Open, 3)
    );
    // Open: refused at once, without waiting out a timeout, and nothing is sent.
    let started = Instant::now();
    match strategy.request(&to_risk, &task(&strategy, "fast"), Duration::from_secs(5)) {
        Err(e @ CommunicationError::CircuitOpen { .. }) => {
            assert_eq!(e.kind(), ErrorKind::AgentUnreachable);
            assert!(e.to_string().contains("risk"), "{e}");
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    // The destination recovers; after the rest one trial goes through and closes the breaker.
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let served = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(10);
        risk.run_until(until, |_| stopped.load(Ordering::Acquire))
            .unwrap();
    });
    std::thread::sleep(CONFIG.reset_timeout);
    let answer = strategy
        .request(&to_risk, &task(&strategy, "trial"), Duration::from_secs(2))
        .expect("the trial is answered");
    assert!(matches!(answer.payload, Payload::TaskResponse(_)));
    let s = &strategy.breakers()[0];
    assert_eq!(
        (s.state, s.failures, s.opened),
        (CircuitState::Closed, 0, 1)
    );
    stop.store(true, Ordering::Release);
    served.join().expect("risk served");
}

#[test]
fn breakers_can_be_turned_off() {
    let bus = start("breaker-off");
    let mut strategy = Agent::attach(bus.options("strategy", "strategy").breaker(None)).unwrap();
    let _risk = bus.attach("risk", "risk");
    let to_risk = strategy.peer("risk").unwrap();
    for i in 0..6 {
        assert!(matches!(
            strategy.request(
                &to_risk,
                &task(&strategy, &format!("t{i}")),
                Duration::from_millis(20)
            ),
            Err(CommunicationError::Timeout { .. })
        ));
    }
    assert!(strategy.breakers().is_empty());
}
