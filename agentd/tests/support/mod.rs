//! An embedded agentd per test (its own bus name and socket directory) and agents attached to it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use agentbus::client::{Agent, AttachOptions};
use agentbus::*;
use agentd::{Config, Daemon};

pub mod process;
pub mod raw;

/// Field order matters: `daemon` drops (closing its socket) before `_dir` removes the directory.
pub struct TestBus {
    pub daemon: Daemon,
    pub bus: String,
    pub dir: PathBuf,
    _dir: RemoveDir,
}

/// Removes a test's socket directory when dropped, also when the test panics.
pub struct RemoveDir(pub PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bus name and a socket directory of this test's own, both named for `name` (tests running
/// at once use different names, so they never share or remove each other's directory).
pub fn config(name: &str) -> Config {
    let pid = std::process::id();
    let mut cfg = Config::new(&format!("t-{name}-{pid}"));
    cfg.socket_dir = std::env::temp_dir().join(format!("agentbus-test-{pid}-{name}"));
    cfg
}

pub fn start(name: &str) -> TestBus {
    start_with(config(name))
}

pub fn start_with(cfg: Config) -> TestBus {
    let bus = cfg.bus.clone();
    let dir = cfg.socket_dir.clone();
    let cleanup = RemoveDir(dir.clone());
    let daemon = Daemon::start(cfg).expect("agentd starts");
    TestBus {
        daemon,
        bus,
        dir,
        _dir: cleanup,
    }
}

impl TestBus {
    pub fn options(&self, id: &str, kind: &str) -> AttachOptions {
        AttachOptions::new(&self.bus, id, kind).socket_dir(&self.dir)
    }

    pub fn attach(&self, id: &str, kind: &str) -> Agent {
        Agent::attach(self.options(id, kind)).expect("attach")
    }
}

pub fn note(from: &Agent, seq: i64) -> Message {
    Message::notification(
        from.identity(),
        Notification {
            event: "test".into(),
            data: record! { "seq" => seq },
        },
    )
}

/// A `risk_check` task request with id `id`.
pub fn task(from: &Agent, id: &str) -> Message {
    Message::task_request(
        from.identity(),
        TaskRequest {
            task_id: id.into(),
            task_type: "risk_check".into(),
            ..Default::default()
        },
    )
}

/// The `seq` of a received test note.
pub fn seq_of(d: &agentbus::client::Delivery<'_>) -> i64 {
    match d.to_message().payload {
        Payload::Notification(n) => match n.data.get("seq") {
            Some(Value::Int(s)) => *s,
            other => panic!("no seq: {other:?}"),
        },
        other => panic!("not a note: {other:?}"),
    }
}

/// Receives up to `n` notes' seqs, waiting at most `timeout` for each.
pub fn recv_seqs(agent: &mut Agent, n: usize, timeout: Duration) -> Vec<i64> {
    let mut out = Vec::new();
    while out.len() < n {
        match agent.recv_timeout(timeout).expect("recv") {
            Some(d) => out.push(seq_of(&d)),
            None => break,
        }
    }
    out
}

/// Asserts nothing more arrives within `wait`.
pub fn assert_quiet(agent: &mut Agent, wait: Duration) {
    if let Some(d) = agent.recv_timeout(wait).expect("recv") {
        panic!("unexpected message: {:?}", d.to_message());
    }
}

/// Polls `cond` until it holds, failing after 5 s with `what`: for numbers agentd publishes
/// asynchronously (counters, registry).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How agentd lists agent `id` now (asked through `observer`); panics if it is not attached.
pub fn agent_info(observer: &mut Agent, id: &str) -> agentbus::control::AgentInfo {
    observer
        .list_agents()
        .expect("list agents")
        .into_iter()
        .find(|a| a.agent_id == id)
        .unwrap_or_else(|| panic!("{id} is not listed"))
}
