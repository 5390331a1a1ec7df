//! An agent process killed with SIGKILL is found DEAD at once (its control connection closes),
//! `sys.agents` hears of it, what it never read becomes dead letters, its slot is reused, and
//! the other agents carry on.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions};
use agentbus::*;
use support::*;

const ROLE: &str = "AGENTBUS_TEST_ROLE";

fn victim() {
    let bus = std::env::var("AGENTBUS_TEST_BUS").unwrap();
    let dir = std::env::var("AGENTBUS_TEST_DIR").unwrap();
    let mut me =
        Agent::attach(AttachOptions::new(&bus, "victim", "strategy").socket_dir(dir)).unwrap();
    let watcher = me.peer("watcher").unwrap();
    me.send(&watcher, &note(&me, 42)).unwrap();
    // Never reads; waits to be killed (and gives up after a while so nothing is left behind).
    std::thread::sleep(Duration::from_secs(60));
}

/// Waits for a `sys.agents` status update about `agent_id` with `status`.
fn await_status(watcher: &mut Agent, agent_id: &str, status: AgentStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(d) = watcher.recv_timeout(Duration::from_millis(100)).unwrap() else {
            continue;
        };
        let m = d.to_message();
        if let Payload::StatusUpdate(s) = &m.payload {
            if m.metadata.get("agent_id").map(String::as_str) == Some(agent_id)
                && s.agent_status == status
            {
                return;
            }
        }
    }
    panic!("no sys.agents {status:?} for {agent_id}");
}

#[test]
fn a_killed_agent_is_dead_at_once_and_its_slot_is_reused() {
    if std::env::var(ROLE).as_deref() == Ok("victim") {
        return victim();
    }
    let bus = start("sigkill");
    let mut watcher = bus.attach("watcher", "ops");
    let mut bystander = bus.attach("bystander", "risk");
    let _agents = watcher.subscribe("sys.agents").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_killed_agent_is_dead_at_once_and_its_slot_is_reused",
            "--exact",
            "--nocapture",
        ])
        .env(ROLE, "victim")
        .env("AGENTBUS_TEST_BUS", &bus.bus)
        .env("AGENTBUS_TEST_DIR", &bus.dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    await_status(&mut watcher, "victim", AgentStatus::Active);
    // Its hello arrives; then give it mail it will never read.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = watcher.recv_timeout(Duration::from_millis(100)).unwrap();
        if d.is_some_and(|d| d.header().message_type == MessageType::Notification) {
            break;
        }
        assert!(Instant::now() < deadline, "the victim never said hello");
    }
    let victim_slot = watcher
        .list_agents()
        .unwrap()
        .into_iter()
        .find(|a| a.agent_id == "victim")
        .expect("listed")
        .slot;
    let to_victim = watcher.peer("victim").unwrap();
    let unread: Vec<u64> = (0..3)
        .map(|i| watcher.send(&to_victim, &note(&watcher, i)).unwrap().0)
        .collect();
    std::thread::sleep(Duration::from_millis(50));

    child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    child.wait().unwrap();
    await_status(&mut watcher, "victim", AgentStatus::Dead);
    let detected = killed.elapsed();
    eprintln!("SIGKILL to sys.agents DEAD notification: {detected:?}");
    assert!(detected < Duration::from_secs(5), "took {detected:?}");

    let dead = watcher.dead_letters().unwrap();
    for id in &unread {
        assert!(
            dead.iter()
                .any(|l| l.message_id == *id && l.reason.contains("left before reading")),
            "unread mail is dead-lettered: {dead:?}"
        );
    }
    // The slot is free again: the next agent gets it.
    let phoenix = bus.attach("phoenix", "strategy");
    assert_eq!(phoenix.slot(), victim_slot);
    // The others are unaffected.
    let to_bystander = watcher.peer("bystander").unwrap();
    watcher.send(&to_bystander, &note(&watcher, 7)).unwrap();
    assert_eq!(
        recv_seqs(&mut bystander, 1, Duration::from_secs(5)),
        vec![7]
    );
}

#[test]
fn an_agent_whose_heartbeat_is_stale_is_avoided_until_it_beats_again() {
    let mut cfg = config("stale-beat");
    cfg.heartbeat_interval = Duration::from_millis(20);
    cfg.heartbeat_timeout = Duration::from_millis(100);
    let bus = start_with(cfg);
    let mut strat = bus.attach("strat", "strategy");
    let mut sleepy = bus.attach("sleepy", "execution");
    let mut awake = bus.attach("awake", "execution");
    let execution = strat.agent_type("execution").unwrap();
    sleepy.sender().set_load(0);
    awake.sender().set_load(5); // would lose to sleepy on load alone
                                // `sleepy` does not call into the client for a while: its heartbeat goes stale.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        awake.receiver().beat();
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = strat
        .list_agents()
        .unwrap()
        .into_iter()
        .find(|a| a.agent_id == "sleepy")
        .unwrap()
        .status;
    assert_eq!(status, AgentStatus::Unresponsive);
    strat.send(&execution, &note(&strat, 1)).unwrap();
    assert_eq!(recv_seqs(&mut awake, 1, Duration::from_secs(5)), vec![1]);
    // It beats again and is chosen again.
    sleepy.receiver().beat();
    strat.send(&execution, &note(&strat, 2)).unwrap();
    assert_eq!(recv_seqs(&mut sleepy, 1, Duration::from_secs(5)), vec![2]);
}

fn status_of(observer: &mut Agent, id: &str) -> AgentStatus {
    agent_info(observer, id).status
}

#[test]
fn an_agent_that_only_sends_stays_active() {
    let mut cfg = config("sendonly");
    cfg.heartbeat_interval = Duration::from_millis(20);
    cfg.heartbeat_timeout = Duration::from_millis(100);
    let bus = start_with(cfg);
    let mut feed =
        Agent::attach(bus.options("feed", "market_data").capabilities(["ticks"])).unwrap();
    let mut sink = bus.attach("sink", "strategy");
    let mut quiet = bus.attach("quiet", "strategy");
    let to_sink = feed.peer("sink").unwrap();
    // The feed sends every 10 ms for half a second and never receives (so never beats).
    let until = Instant::now() + Duration::from_millis(500);
    let mut seq = 0;
    while Instant::now() < until {
        feed.send(&to_sink, &note(&feed, seq)).unwrap();
        seq += 1;
        while sink.try_recv().unwrap().is_some() {}
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(status_of(&mut sink, "feed"), AgentStatus::Active);
    // Capability routing still picks it.
    let m = note(&sink, 1);
    let ticks = sink.capability(&["ticks"]).unwrap();
    sink.send(&ticks, &m).unwrap();
    assert_eq!(recv_seqs(&mut feed, 1, Duration::from_secs(5)), vec![1]);
    // An agent that neither sends nor receives is found UNRESPONSIVE as before.
    let _ = &mut quiet;
    assert_eq!(status_of(&mut sink, "quiet"), AgentStatus::Unresponsive);
}

#[test]
fn a_reused_slot_starts_from_zero_counters() {
    let mut cfg = config("slotreuse");
    // A router that never parks publishes its counters only every millisecond, so a listing
    // right after an attach would see the old numbers unless the reset is published at once.
    cfg.wait = "backoff".parse().unwrap();
    let bus = start_with(cfg);
    let mut observer = bus.attach("observer", "ops");
    let old = bus.attach("old", "x");
    let slot = old.slot();
    let mut old = old;
    let to_observer = old.peer("observer").unwrap();
    for seq in 0..20 {
        old.send(&to_observer, &note(&old, seq)).unwrap();
    }
    assert_eq!(
        recv_seqs(&mut observer, 20, Duration::from_secs(5)).len(),
        20
    );
    eventually("the router counted the old agent's frames", || {
        observer
            .list_agents()
            .unwrap()
            .iter()
            .any(|a| a.agent_id == "old" && a.frames_sent == 20)
    });
    old.detach().unwrap();
    eventually("the old agent's slot is free", || {
        observer
            .list_agents()
            .unwrap()
            .iter()
            .all(|a| a.agent_id != "old")
    });
    let new = bus.attach("new", "x");
    assert_eq!(new.slot(), slot, "the slot is reused");
    // At once, not after the router's next publication of its counters.
    let listed = agent_info(&mut observer, "new");
    assert_eq!(
        (
            listed.frames_sent,
            listed.frames_delivered,
            listed.copies_delivered,
            listed.destinations
        ),
        (0, 0, 0, 0),
        "{listed:?}"
    );
}
