//! Replies cannot be forged: a request completes only with the reply of the agent it was
//! delivered to, however many forged replies a third agent sends, whether it guesses the
//! request's id from ids it has seen or knows it.

mod support;

use std::time::Duration;

use agentbus::client::{Agent, AttachOptions, Peer, PendingRequest, Responder};
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

/// Sends `m` from the forger to the victim (`to_victim`), letting the victim take its mail
/// while the lanes are full; the victim's request `pending` must never complete meanwhile.
fn forge(
    forger: &mut Agent,
    to_victim: &Peer,
    victim: &mut Agent,
    pending: &mut PendingRequest,
    m: &Message,
) {
    for _ in 0..1000 {
        match forger.send(to_victim, m) {
            Ok(_) => return,
            Err(CommunicationError::QueueFull { .. }) => {
                assert!(
                    pending.try_wait(victim).is_none(),
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
fn flood_guesses(
    forger: &mut Agent,
    to_victim: &Peer,
    victim: &mut Agent,
    pending: &mut PendingRequest,
    seen: MessageId,
) {
    for k in 1..=300u64 {
        for guess in [MessageId(seen.0 + k), MessageId(seen.0.wrapping_sub(k))] {
            let m = forged_reply(forger, guess);
            forge(forger, to_victim, victim, pending, &m);
        }
    }
    std::thread::sleep(Duration::from_millis(50)); // let the router deliver the last ones
    for _ in 0..20 {
        assert!(
            pending.try_wait(victim).is_none(),
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
    responder.sender().reply(&header, answer("real")).unwrap();
}

struct Cast {
    _bus: TestBus,
    victim: Agent,
    responder: Agent,
    forger: Agent,
    /// The victim, as the forger addresses it.
    to_victim: Peer,
    /// The responder, as the victim addresses it.
    risk: Peer,
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
    forger.subscribe("victim.news").unwrap().detach();
    let news = victim.topic("victim.news").unwrap();
    victim.send(&news, &note(&victim, 1)).unwrap();
    let to_victim = forger.peer("victim").unwrap();
    let risk = victim.peer("risk").unwrap();
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
        to_victim,
        risk,
        seen,
    }
}

impl Cast {
    /// The victim asks `to`; the forger floods guessed replies, and with `exact`, one naming
    /// the request's id exactly (as if it had leaked). Returns the pending request.
    fn flooded_request(&mut self, to: Responder<'_>, exact: bool) -> PendingRequest {
        let req = Message::task_request(self.victim.identity(), TaskRequest::default());
        let mut pending = self.victim.start_request(to, &req).unwrap();
        flood_guesses(
            &mut self.forger,
            &self.to_victim,
            &mut self.victim,
            &mut pending,
            self.seen,
        );
        if exact {
            let m = forged_reply(&self.forger, pending.id());
            forge(
                &mut self.forger,
                &self.to_victim,
                &mut self.victim,
                &mut pending,
                &m,
            );
        }
        pending
    }
}

#[test]
fn guessed_replies_never_complete_a_request_to_an_agent() {
    let mut c = cast("spoof-agent");
    // Even knowing the id exactly, the forger is not the agent asked.
    let risk = c.risk.clone();
    let mut pending = c.flooded_request(Responder::Peer(&risk), true);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        pending.try_wait(&mut c.victim).is_none(),
        "no forged reply completes the request"
    );
    respond(&mut c.responder);
    let reply = pending.wait(&mut c.victim, Duration::from_secs(5)).unwrap();
    assert_eq!(task_id(&reply), "real");
    assert_eq!(
        c.victim.counters().forged_replies,
        1,
        "the exact-id forgery was dropped and counted"
    );
}

#[test]
fn guessed_replies_never_complete_a_capability_routed_request() {
    let mut c = cast("spoof-cap");
    let risk_check = c.victim.capability(&["risk_check"]).unwrap();
    let pending = c.flooded_request(Responder::Capability(&risk_check), false);
    respond(&mut c.responder);
    let reply = pending.wait(&mut c.victim, Duration::from_secs(5)).unwrap();
    assert_eq!(task_id(&reply), "real");
}

#[test]
fn a_request_nobody_answers_times_out_however_many_forgeries_arrive() {
    let mut c = cast("spoof-timeout");
    let risk = c.risk.clone();
    let pending = c.flooded_request(Responder::Peer(&risk), true);
    match pending.wait(&mut c.victim, Duration::from_millis(300)) {
        Err(CommunicationError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}
