//! agentd restarts: agents find out within about 100 ms (`Disconnected`), re-attach when it is
//! back (same id, subscriptions, topics, handles), fail their outstanding requests with a clear
//! error, send again what the dead agentd never read, and say so (`ConnectionEvent`).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::client::{Agent, ConnectionEvent, ReconnectPolicy};
use agentbus::control::TopicConfig;
use agentbus::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::process::AgentdProcess;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// Attaches `id`, recording its connection events.
fn attach_watched(
    agentd: &AgentdProcess,
    id: &str,
    kind: &str,
) -> (Agent, Arc<Mutex<Vec<ConnectionEvent>>>) {
    let mut agent = agentd.attach(id, kind);
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    agent.on_connection(move |e| seen.lock().unwrap().push(e.clone()));
    (agent, events)
}

/// Waits until `agent` is attached to the restarted agentd.
fn reattach(agent: &mut Agent) {
    let start = Instant::now();
    while let Err(e) = agent.ensure_connected() {
        assert!(matches!(e, CommunicationError::Disconnected { .. }), "{e}");
        assert!(start.elapsed() < WAIT, "never re-attached");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends until the send goes through (the agent re-attaches on the way); returns how long.
fn send_until_through(agent: &mut Agent, to: &client::Topic, seq: i64) -> Duration {
    let start = Instant::now();
    loop {
        let m = note(agent, seq);
        match agent.send(to, &m) {
            Ok(_) => return start.elapsed(),
            Err(CommunicationError::Disconnected { .. }) => {
                assert!(start.elapsed() < WAIT, "never re-attached");
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("send {seq}: {e}"),
        }
    }
}

fn reconnected(events: &Mutex<Vec<ConnectionEvent>>) -> ConnectionEvent {
    events
        .lock()
        .unwrap()
        .iter()
        .find(|e| matches!(e, ConnectionEvent::Reconnected { .. }))
        .cloned()
        .unwrap_or_else(|| panic!("no Reconnected event: {:?}", events.lock().unwrap()))
}

#[test]
fn agents_reattach_after_agentd_restarts_with_their_subscriptions_topics_and_handles() {
    let mut agentd = AgentdProcess::start("reconnect", &[]);
    let (mut feed, feed_events) = attach_watched(&agentd, "feed", "market_data");
    let (mut strategy, strategy_events) = attach_watched(&agentd, "strategy", "strategy");
    let mut silent = agentd.attach("silent", "silent"); // never answers
    let topic = feed
        .create_topic("md.AAPL", TopicConfig::default().history(2))
        .unwrap();
    let _md = strategy.subscribe("md.>").unwrap();
    let to_silent = strategy.peer("silent").unwrap();
    feed.send(&topic, &note(&feed, 1)).unwrap();
    assert_eq!(recv_seqs(&mut strategy, 1, WAIT), vec![1]);
    let pending = strategy
        .start_request(&to_silent, &note(&strategy, 99))
        .unwrap();

    // agentd dies: a waiting receiver hears of it at once, a sender on its next send.
    agentd.kill();
    let died = Instant::now();
    match strategy.recv_timeout(WAIT) {
        Err(CommunicationError::Disconnected { .. }) => {}
        other => panic!(
            "expected Disconnected, got {:?}",
            other.map(|d| d.is_some())
        ),
    }
    let detected = died.elapsed();
    assert!(matches!(
        feed.send(&topic, &note(&feed, 2)),
        Err(CommunicationError::Disconnected { .. })
    ));

    // A new agentd: each agent re-attaches on its next call.
    agentd.restart(&[]);
    let restarted = Instant::now();
    // The subscriber's wait re-attaches it (subscription restored) and then waits for mail.
    let strategy_thread = std::thread::spawn(move || {
        let got = recv_seqs(&mut strategy, 1, WAIT);
        (strategy, got)
    });
    // The feed re-attaches on a send; its topic handle is resolved again by name, and the
    // topic is created again with its history.
    std::thread::sleep(Duration::from_millis(300)); // the subscriber is back first
    let through = send_until_through(&mut feed, &topic, 3);
    let feed_back = restarted.elapsed();
    let (mut strategy, got) = strategy_thread.join().unwrap();
    assert_eq!(
        got,
        vec![3],
        "the message after the restart reaches the restored subscription"
    );
    let listed = feed.list_topics().unwrap();
    let md = listed
        .iter()
        .find(|t| t.name == "md.AAPL")
        .expect("created again");
    assert_eq!(md.config.history, 2);
    assert_eq!(md.subscribers, 1);
    // The request outstanding across the restart failed, saying why.
    match pending.wait(&mut strategy, WAIT) {
        Err(CommunicationError::RequestFailed { details, .. }) => {
            assert!(details.contains("restarted"), "{details}")
        }
        other => panic!("expected the request to fail, got {other:?}"),
    }
    // Handles of before the restart keep working: a peer resolved again by name.
    reattach(&mut silent);
    strategy.send(&to_silent, &note(&strategy, 4)).unwrap();
    // Before it, maybe the request it had not read when agentd died (kept across its
    // re-attach), if the old router had delivered it (else the strategy counted it not resent:
    // silent was not back when the strategy re-attached).
    let mut got = recv_seqs(&mut silent, 1, WAIT);
    if got == [99] {
        got = recv_seqs(&mut silent, 1, WAIT);
    }
    assert_eq!(got, vec![4]);
    // Each agent said what happened.
    match reconnected(&strategy_events) {
        ConnectionEvent::Reconnected {
            subscriptions,
            requests_failed,
            ..
        } => {
            assert_eq!(subscriptions, 1);
            assert_eq!(requests_failed, 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        feed_events.lock().unwrap()[0],
        ConnectionEvent::Lost { .. }
    ));
    let _ = reconnected(&feed_events);
    eprintln!(
        "agentd's death detected by a waiting receiver in {detected:?}; the feed re-attached {feed_back:?} after the restart (its send went through after {through:?} of trying)"
    );
    assert!(detected < Duration::from_secs(1), "{detected:?}");
}

#[test]
fn messages_the_dead_agentd_never_read_are_sent_again_after_reattaching() {
    let mut agentd = AgentdProcess::start("resend", &[]);
    let (mut sender, events) = attach_watched(&agentd, "sender", "feed");
    let mut receiver = agentd.attach("receiver", "strategy");
    let to_receiver = sender.peer("receiver").unwrap();
    sender.send(&to_receiver, &note(&sender, 0)).unwrap();
    assert_eq!(recv_seqs(&mut receiver, 1, WAIT), vec![0]);
    // agentd stops reading (SIGSTOP), takes 20 more into the sender's lanes, and dies.
    let pid = agentd.child.id();
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
    // Stopped for sure before sending (a signal takes effect asynchronously): else the router
    // may route some before it stops, and they are in the receiver's lanes instead.
    eventually("agentd is stopped", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('T'))
        })
    });
    for seq in 1..=20 {
        sender.send(&to_receiver, &note(&sender, seq)).unwrap();
    }
    agentd.kill();
    agentd.restart(&[]);
    // The receiver comes back first; the sender's next call re-attaches it and sends the 20
    // again, to the receiver resolved again by name.
    reattach(&mut receiver);
    reattach(&mut sender);
    assert_eq!(
        recv_seqs(&mut receiver, 20, WAIT),
        (1..=20).collect::<Vec<_>>(),
        "every message the dead agentd never read, once, in order"
    );
    match reconnected(&events) {
        ConnectionEvent::Reconnected {
            resent, not_resent, ..
        } => {
            assert_eq!((resent, not_resent), (20, 0));
        }
        other => panic!("{other:?}"),
    }
    let first = events.lock().unwrap()[0].clone();
    assert_eq!(first, ConnectionEvent::Lost { unsent: 20 });
}

#[test]
fn an_agent_gives_up_as_its_policy_says_and_one_without_a_policy_never_tries() {
    let mut agentd = AgentdProcess::start("give-up", &[]);
    let policy = ReconnectPolicy {
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        give_up_after: Some(Duration::from_millis(300)),
    };
    let mut patient =
        Agent::attach(agentd.options("patient", "x").reconnect(Some(policy))).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    patient.on_connection(move |e| seen.lock().unwrap().push(e.clone()));
    let mut never = Agent::attach(agentd.options("never", "x").reconnect(None)).unwrap();
    agentd.kill();
    let died = Instant::now();
    // Waits out its give-up, trying meanwhile, then reports Disconnected for good.
    let mut tries = 0;
    loop {
        match patient.recv_timeout(Duration::from_millis(100)) {
            Err(CommunicationError::Disconnected { .. }) => tries += 1,
            other => panic!(
                "expected Disconnected, got {:?}",
                other.map(|d| d.is_some())
            ),
        }
        if events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ConnectionEvent::GaveUp { .. }))
        {
            break;
        }
        assert!(died.elapsed() < WAIT, "never gave up");
    }
    assert!(tries >= 2, "{tries}");
    // Even with agentd back, neither re-attaches.
    agentd.restart(&[]);
    std::thread::sleep(Duration::from_millis(100));
    for agent in [&mut patient, &mut never] {
        for _ in 0..3 {
            assert!(matches!(
                agent.ensure_connected(),
                Err(CommunicationError::Disconnected { .. })
            ));
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let listed = agentd.attach("observer", "x").list_agents().unwrap();
    assert!(
        listed
            .iter()
            .all(|a| a.agent_id != "patient" && a.agent_id != "never"),
        "{listed:?}"
    );
}

#[test]
fn messages_delivered_but_unread_when_agentd_dies_are_kept_for_recv() {
    let mut agentd = AgentdProcess::start("keep-unread", &[]);
    let mut sender = agentd.attach("sender", "feed");
    let (mut receiver, events) = attach_watched(&agentd, "receiver", "strategy");
    let mut observer = agentd.attach("observer", "ops");
    let to_receiver = sender.peer("receiver").unwrap();
    for seq in 0..5 {
        sender.send(&to_receiver, &note(&sender, seq)).unwrap();
    }
    // In the receiver's lanes, unread, when agentd dies.
    eventually("delivered", || {
        agent_info(&mut observer, "receiver").copies_received == 5
    });
    agentd.kill();
    agentd.restart(&[]);
    reattach(&mut receiver);
    assert_eq!(
        recv_seqs(&mut receiver, 5, WAIT),
        (0..5).collect::<Vec<_>>(),
        "kept across the re-attach, in order"
    );
    match reconnected(&events) {
        ConnectionEvent::Reconnected { kept_unread, .. } => assert_eq!(kept_unread, 5),
        other => panic!("{other:?}"),
    }
}
