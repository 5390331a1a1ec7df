//! Chain of responsibility across a local step and real agents: the first two decline, the
//! third takes the message; a silent one times out and passes it on; when all pass, the error
//! names the message type and why each passed.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, HandlerError};
use agentbus::patterns::chain::{self, Chain, ChainError};
use agentbus::{Message, MessageType, Payload, TaskRequest};
use support::*;

/// An agent answering requests with `answer` from its handler loop until `stop`.
fn responder(
    mut agent: Agent,
    answer: fn(&Message) -> Result<Payload, HandlerError>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    agent.on_request(move |req, _tx| answer(&req.to_message().unwrap()));
    std::thread::spawn(move || {
        agent
            .run_until(Instant::now() + Duration::from_secs(30), |_| {
                stop.load(Ordering::Acquire)
            })
            .unwrap();
    })
}

fn order(from: &agentbus::AgentIdentifier, qty: i64) -> Message {
    Message::task_request(
        from.clone(),
        TaskRequest {
            task_type: "authorize".into(),
            parameters: agentbus::record! { "qty" => qty },
            ..Default::default()
        },
    )
}

fn qty(m: &Message) -> i64 {
    match &m.payload {
        Payload::TaskRequest(t) => match t.parameters.get("qty") {
            Some(agentbus::Value::Int(q)) => *q,
            _ => 0,
        },
        _ => 0,
    }
}

#[test]
fn an_authorization_chain_passes_a_message_on_until_one_takes_it() {
    let bus = start("chain");
    let stop = Arc::new(AtomicBool::new(false));
    // The desk declines orders over 100; risk declines over 10,000; compliance takes the rest
    // and refuses over 1,000,000 (a failure: it took the message).
    let risk = responder(
        bus.attach("risk", "risk"),
        |m| {
            Ok(if qty(m) > 10_000 {
                chain::declined()
            } else {
                Payload::Raw(b"risk ok".to_vec())
            })
        },
        Arc::clone(&stop),
    );
    let compliance = responder(
        bus.attach("compliance", "compliance"),
        |m| {
            if qty(m) > 1_000_000 {
                Err(HandlerError::new("over the firm's hard limit"))
            } else {
                Ok(Payload::Raw(b"compliance ok".to_vec()))
            }
        },
        Arc::clone(&stop),
    );
    let _silent = bus.attach("silent", "x"); // never answers
    let mut desk = bus.attach("desk", "desk");
    let me = desk.identity();
    let mut authorize = Chain::new()
        .local(
            "desk",
            |m| qty(m) <= 100,
            |_| Ok(Payload::Raw(b"desk ok".to_vec())),
        )
        .remote(desk.peer("silent").unwrap(), Duration::from_millis(200))
        .remote(desk.peer("risk").unwrap(), Duration::from_secs(5))
        .remote(
            desk.agent_type("compliance").unwrap(),
            Duration::from_secs(5),
        );

    let small = authorize.process(&mut desk, &order(&me, 50)).unwrap();
    assert_eq!(small.handled_by, "desk");
    assert!(small.passed.is_empty());

    let medium = authorize.process(&mut desk, &order(&me, 5_000)).unwrap();
    assert_eq!(medium.handled_by, "risk");
    assert_eq!(medium.answer.payload, Payload::Raw(b"risk ok".to_vec()));
    let passed: Vec<&str> = medium.passed.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(passed, ["desk", "silent"], "{:?}", medium.passed);
    assert!(
        medium.passed[1].1.contains("timed out"),
        "{:?}",
        medium.passed
    );

    // The first two decline (and the silent one times out): the third takes it.
    let large = authorize.process(&mut desk, &order(&me, 50_000)).unwrap();
    assert_eq!(large.handled_by, "type compliance");
    assert_eq!(large.passed.len(), 3, "{:?}", large.passed);
    assert_eq!(
        large.passed[2],
        ("risk".to_string(), "declined".to_string())
    );

    // Compliance takes it and fails: the chain fails, naming it.
    match authorize.process(&mut desk, &order(&me, 5_000_000)) {
        Err(ChainError::Failed { by, reason, .. }) => {
            assert_eq!(by, "type compliance");
            assert!(reason.contains("hard limit"), "{reason}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    // Nobody takes it: NoHandler names the message type and why each step passed.
    let mut nobody = Chain::new()
        .local("desk", |_| false, |_| Ok(Payload::Raw(Vec::new())))
        .remote(desk.peer("risk").unwrap(), Duration::from_secs(5));
    match nobody.process(&mut desk, &order(&me, 50_000)) {
        Err(e @ ChainError::NoHandler { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&MessageType::TaskRequest.to_string()),
                "{text}"
            );
            assert!(text.contains("risk declined"), "{text}");
        }
        other => panic!("expected NoHandler, got {other:?}"),
    }
    stop.store(true, Ordering::Release);
    risk.join().unwrap();
    compliance.join().unwrap();
}
