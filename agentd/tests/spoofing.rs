//! Replies cannot be forged: a request completes only with the reply of the agent it was
//! delivered to, however many forged replies a third agent sends, whether it guesses the
//! request's id from ids it has seen or knows it.

mod support;

use std::time::Duration;

use agentbus::client::{Agent, AttachOptions, Destination};
use agentbus::*;
use support::*;

fn answer(task_id: &str) -> Payload {
    Payload::TaskResponse(TaskResponse {
        task_id: task_id.into(),
        status: TaskStatus::Completed,
        ..Default::default()
    })
}

fn forged_reply(forger: &Agent, correlation: MessageId) -> Message {
    Message::new(
        MessageType::TaskResponse,
        forger.identity(),
        answer("forged"),
    )
    .correlation(correlation)
    .flags(Flags::IS_REPLY)
}

/// Sends `m` from the forger to the victim, letting the victim take its mail while the lanes
/// are full; the victim's request `id` must never complete meanwhile.
fn forge(forger: &mut Agent, victim: &mut Agent, id: MessageId, m: &Message) {
    for _ in 0..1000 {
        match forger.send("victim", m) {
            Ok(_) => return,
            Err(CommunicationError::QueueFull { .. }) => {
                assert!(
                    victim.try_response(id).is_none(),
                    "a forged reply completed the request"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the forger's lane stayed full");
}

/// The forger has read one of the victim's messages and floods replies naming every id near it
/// (the ids the victim would hand out next, were they predictable); the victim's request `id`
/// never completes.
fn flood_guesses(forger: &mut Agent, victim: &mut Agent, id: MessageId, seen: MessageId) {
    for k in 1..=300u64 {
        for guess in [MessageId(seen.0 + k), MessageId(seen.0.wrapping_sub(k))] {
            forge(forger, victim, id, &forged_reply(forger, guess));
        }
    }
    std::thread::sleep(Duration::from_millis(50)); // let the router deliver the last ones
    for _ in 0..20 {
        assert!(
            victim.try_response(id).is_none(),
            "a guessed reply completed the request"
        );
    }
}

fn task_id(m: &Message) -> String {
    match &m.payload {
        Payload::TaskResponse(r) => r.task_id.clone(),
        other => panic!("not a response: {other:?}"),
    }
}

/// The responder answers the one request waiting for it with `real`.
fn respond(responder: &mut Agent) {
    let d = responder
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("the request arrived");
    let header = *d.header();
    drop(d);
    assert!(header.flags.contains(Flags::EXPECTS_REPLY));
    responder.reply(&header, answer("real")).unwrap();
}

struct Cast {
    _bus: TestBus,
    victim: Agent,
    responder: Agent,
    forger: Agent,
    seen: MessageId,
}

fn cast(name: &str) -> Cast {
    let bus = start(name);
    let mut victim = bus.attach("victim", "strategy");
    let responder = Agent::attach(
        AttachOptions::new(&bus.bus, "risk", "risk")
            .socket_dir(&bus.dir)
            .capabilities(["risk_check"]),
    )
    .unwrap();
    let mut forger = bus.attach("forger", "rogue");
    forger.subscribe("victim.news").unwrap();
    victim.publish("victim.news", &note(&victim, 1)).unwrap();
    let seen = forger
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("the forger sees one of the victim's ids")
        .header()
        .message_id;
    Cast {
        _bus: bus,
        victim,
        responder,
        forger,
        seen,
    }
}

impl Cast {
    /// The victim asks `to`; the forger floods guessed replies, and with `exact`, one naming
    /// the request's id exactly (as if it had leaked). Returns the request's id.
    fn flooded_request(&mut self, to: Destination<'_>, exact: bool) -> MessageId {
        let req = Message::task_request(self.victim.identity(), TaskRequest::default());
        let id = self.victim.start_request(to, &req).unwrap();
        flood_guesses(&mut self.forger, &mut self.victim, id, self.seen);
        if exact {
            let m = forged_reply(&self.forger, id);
            forge(&mut self.forger, &mut self.victim, id, &m);
        }
        id
    }
}

#[test]
fn guessed_replies_never_complete_a_request_to_an_agent() {
    let mut c = cast("spoof-agent");
    // Even knowing the id exactly, the forger is not the agent asked.
    let id = c.flooded_request(Destination::Agent("risk"), true);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        c.victim.try_response(id).is_none(),
        "no forged reply completes the request"
    );
    respond(&mut c.responder);
    let reply = c.victim.wait_response(id, Duration::from_secs(5)).unwrap();
    assert_eq!(task_id(&reply), "real");
    assert_eq!(
        c.victim.forged_replies(),
        1,
        "the exact-id forgery was dropped and counted"
    );
}

#[test]
fn guessed_replies_never_complete_a_capability_routed_request() {
    let mut c = cast("spoof-cap");
    let id = c.flooded_request(Destination::Capability(&["risk_check"]), false);
    respond(&mut c.responder);
    let reply = c.victim.wait_response(id, Duration::from_secs(5)).unwrap();
    assert_eq!(task_id(&reply), "real");
}

#[test]
fn a_request_nobody_answers_times_out_however_many_forgeries_arrive() {
    let mut c = cast("spoof-timeout");
    let id = c.flooded_request(Destination::Agent("risk"), true);
    match c.victim.wait_response(id, Duration::from_millis(300)) {
        Err(CommunicationError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}
