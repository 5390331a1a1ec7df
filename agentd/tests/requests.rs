//! Request/response: correlated answers, many outstanding at once answered out of order,
//! timeouts and late replies, handler errors, capability- and type-routed requests.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, HandlerError, PendingRequest};
use agentbus::*;
use support::*;

/// Runs `agent`'s handlers on a thread until the returned flag is set.
fn serve(mut agent: Agent) -> (Arc<AtomicBool>, JoinHandle<Agent>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        agent
            .run_until(Instant::now() + Duration::from_secs(30), |_| {
                s.load(Ordering::Acquire)
            })
            .unwrap();
        agent
    });
    (stop, handle)
}

fn echo_handler(agent: &mut Agent) {
    agent.on_request(|env, _tx| match env.payload() {
        Some(ArchivedPayload::TaskRequest(t)) => Ok(Payload::TaskResponse(TaskResponse {
            task_id: t.task_id.to_string(),
            status: TaskStatus::Completed,
            ..Default::default()
        })),
        _ => Err(HandlerError::new(
            "only task requests are answered here: send a TaskRequest",
        )),
    });
}

fn task_id(m: &Message) -> String {
    match &m.payload {
        Payload::TaskResponse(r) => r.task_id.clone(),
        other => panic!("not a response: {other:?}"),
    }
}

#[test]
fn a_request_gets_its_correlated_response() {
    let bus = start("req");
    let mut client = bus.attach("client", "strategy");
    let mut risk = bus.attach("risk", "risk");
    let to_risk = client.peer("risk").unwrap();
    echo_handler(&mut risk);
    let (stop, h) = serve(risk);
    let req = task(&client, "t-1");
    let resp = client
        .request(&to_risk, &req, Duration::from_secs(5))
        .unwrap();
    assert_eq!(task_id(&resp), "t-1");
    assert_eq!(resp.message_type, MessageType::TaskResponse);
    assert!(resp.flags.contains(Flags::IS_REPLY));
    stop.store(true, Ordering::Release);
    h.join().unwrap();
}

#[test]
fn a_hundred_outstanding_requests_answered_out_of_order_each_get_their_own_answer() {
    let bus = start("req100");
    let mut client = bus.attach("client", "strategy");
    let mut slow = bus.attach("slow", "risk");
    let to_slow = client.peer("slow").unwrap();
    let pending: Vec<PendingRequest> = (0..100)
        .map(|i| {
            client
                .start_request(&to_slow, &task(&client, &format!("t-{i}")))
                .unwrap()
        })
        .collect();
    // The responder collects all hundred, then answers newest first.
    let mut requests = Vec::new();
    while requests.len() < 100 {
        let d = slow
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .expect("all requests arrive");
        assert!(d.header().flags.contains(Flags::EXPECTS_REPLY));
        let m = d.to_message();
        requests.push((*d.header(), task_id_of_request(&m)));
    }
    for (header, id) in requests.into_iter().rev() {
        slow.sender()
            .reply(
                &header,
                Payload::TaskResponse(TaskResponse {
                    task_id: id,
                    status: TaskStatus::Completed,
                    ..Default::default()
                }),
            )
            .unwrap();
    }
    for (i, request) in pending.into_iter().enumerate() {
        let id = request.id();
        let resp = request.wait(&mut client, Duration::from_secs(5)).unwrap();
        assert_eq!(task_id(&resp), format!("t-{i}"));
        assert_eq!(resp.correlation_id, id);
    }
    assert_eq!(client.counters().late_replies, 0);
}

fn task_id_of_request(m: &Message) -> String {
    match &m.payload {
        Payload::TaskRequest(t) => t.task_id.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_request_times_out_and_its_late_reply_is_counted_not_delivered() {
    let bus = start("late");
    let mut client = bus.attach("client", "strategy");
    let mut sleepy = bus.attach("sleepy", "risk");
    let to_sleepy = client.peer("sleepy").unwrap();
    let req = task(&client, "t-late");
    let pending = client.start_request(&to_sleepy, &req).unwrap();
    match pending.wait(&mut client, Duration::from_millis(100)) {
        Err(CommunicationError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let header = *sleepy
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .header();
    sleepy
        .sender()
        .reply(&header, Payload::TaskResponse(TaskResponse::default()))
        .unwrap();
    // The late reply arrives: counted, dropped, never handed to recv.
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.counters().late_replies == 0 && Instant::now() < deadline {
        assert!(client
            .recv_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none());
    }
    assert_eq!(client.counters().late_replies, 1);
}

#[test]
fn a_failing_handler_answers_with_a_correlated_error() {
    let bus = start("handler-err");
    let mut client = bus.attach("client", "strategy");
    let mut risk = bus.attach("risk", "risk");
    let to_risk = client.peer("risk").unwrap();
    risk.on_request(|_, _| {
        Err(HandlerError::new(
            "insufficient margin for AAPL: reduce the order or add collateral",
        ))
    });
    let (stop, h) = serve(risk);
    match client.request(&to_risk, &task(&client, "t"), Duration::from_secs(5)) {
        Err(CommunicationError::RequestFailed { kind, details }) => {
            assert_eq!(kind, ErrorKind::HandlerError);
            assert!(details.contains("insufficient margin"), "{details}");
        }
        other => panic!("expected RequestFailed, got {other:?}"),
    }
    stop.store(true, Ordering::Release);
    h.join().unwrap();
}

#[test]
fn requests_route_by_capability_and_by_type() {
    let bus = start("req-routes");
    let mut client = bus.attach("client", "strategy");
    let mut risk =
        Agent::attach(bus.options("risk-1", "risk").capabilities(["risk_check"])).unwrap();
    echo_handler(&mut risk);
    let (stop, h) = serve(risk);
    let risk_check = client.capability(&["risk_check"]).unwrap();
    let risk_type = client.agent_type("risk").unwrap();
    let fx = client.capability(&["fx"]).unwrap();
    let r1 = client
        .request(&risk_check, &task(&client, "c"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(task_id(&r1), "c");
    let r2 = client
        .request(&risk_type, &task(&client, "t"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(task_id(&r2), "t");
    // Nobody has this capability: agentd answers at once, correlated.
    let started = Instant::now();
    match client.request(&fx, &task(&client, "x"), Duration::from_secs(5)) {
        Err(CommunicationError::AgentUnreachable { agent, reason }) => {
            assert_eq!(agent, "capabilities fx", "the destination as named");
            assert!(reason.contains("capabilit"), "{reason}")
        }
        other => panic!("expected AgentUnreachable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "failed fast, not by timeout"
    );
    stop.store(true, Ordering::Release);
    h.join().unwrap();
}

#[test]
fn while_waiting_other_messages_are_queued_for_recv() {
    let bus = start("req-queue");
    let mut client = bus.attach("client", "strategy");
    let mut risk = bus.attach("risk", "risk");
    let mut chatter = bus.attach("chatter", "feed");
    let to_risk = client.peer("risk").unwrap();
    let to_client = chatter.peer("client").unwrap();
    let pending = client.start_request(&to_risk, &task(&client, "q")).unwrap();
    for seq in 0..3 {
        chatter.send(&to_client, &note(&chatter, seq)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let header = *risk
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap()
        .header();
    risk.sender()
        .reply(
            &header,
            Payload::TaskResponse(TaskResponse {
                task_id: "q".into(),
                ..Default::default()
            }),
        )
        .unwrap();
    assert_eq!(
        task_id(&pending.wait(&mut client, Duration::from_secs(5)).unwrap()),
        "q"
    );
    assert_eq!(
        recv_seqs(&mut client, 3, Duration::from_secs(5)),
        vec![0, 1, 2]
    );
}
