//! One agentd per bus: a second one refuses to start; what a dead one left is replaced; the
//! binary shuts down cleanly on SIGTERM.

mod support;

use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::{Duration, Instant};

use agentbus::client::Agent;
use agentbus::paths;
use agentbus_ipc::segment::NamedSegment;
use agentd::bus_header::BusHeader;
use agentd::{Daemon, StartError};
use support::*;

#[test]
fn a_second_agentd_on_the_same_bus_refuses_to_start() {
    let bus = start("second");
    match Daemon::start(config("second")) {
        Err(e @ StartError::AlreadyRunning { .. }) => {
            let text = e.to_string();
            assert!(text.contains("already served"), "{text}");
            assert!(
                text.contains(&format!("pid {}", std::process::id())),
                "{text}"
            );
        }
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    // The first is unharmed.
    let mut a = bus.attach("a", "x");
    let mut b = bus.attach("b", "x");
    let to_b = a.peer("b").unwrap();
    a.send(&to_b, &note(&a, 1)).unwrap();
    assert_eq!(recv_seqs(&mut b, 1, Duration::from_secs(5)), vec![1]);
}

#[test]
fn a_stale_socket_and_header_from_a_dead_agentd_are_replaced() {
    let cfg = config("stale");
    std::fs::create_dir_all(&cfg.socket_dir).unwrap();
    let socket = paths::socket_path(&cfg.socket_dir, &cfg.bus);
    let _ = std::fs::remove_file(&socket);
    drop(UnixListener::bind(&socket).unwrap()); // the file stays, nobody listens
    let name = paths::header_segment_name(&cfg.bus);
    let _ = NamedSegment::unlink(&name);
    {
        let mut dead = Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let header =
            BusHeader::create(&name, agentd::bus_header::HeaderOptions::for_slots(4)).unwrap();
        header.words().record_pid(dead_pid);
        // dropped without unlinking: what a crashed agentd leaves
    }
    let bus = start_with(cfg);
    let mut a = bus.attach("a", "x");
    let mut b = bus.attach("b", "x");
    let to_b = a.peer("b").unwrap();
    a.send(&to_b, &note(&a, 1)).unwrap();
    assert_eq!(recv_seqs(&mut b, 1, Duration::from_secs(5)), vec![1]);
}

#[test]
fn attaching_without_agentd_says_how_to_start_it() {
    let cfg = config("absent");
    let err = Agent::attach(
        agentbus::client::AttachOptions::new(&cfg.bus, "a", "x").socket_dir(&cfg.socket_dir),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("agentd --bus {}", cfg.bus)),
        "{text}"
    );
}

#[test]
fn the_agentd_binary_serves_and_cleans_up_on_sigterm() {
    let cfg = config("binary");
    let _dir = RemoveDir(cfg.socket_dir.clone());
    let socket = paths::socket_path(&cfg.socket_dir, &cfg.bus);
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["--bus", &cfg.bus, "--socket-dir"])
        .arg(&cfg.socket_dir)
        .args(["--log-level", "warn"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut agent = loop {
        match Agent::attach(
            agentbus::client::AttachOptions::new(&cfg.bus, "a", "x").socket_dir(&cfg.socket_dir),
        ) {
            Ok(a) => break a,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                panic!("agentd did not come up: {e}");
            }
        }
    };
    let _sub = agent.subscribe("x.>").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("agentd did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the socket file is removed");
    assert!(NamedSegment::open(&paths::header_segment_name(&cfg.bus), false, 1).is_err());
    // The agent learns the bus is gone.
    assert!(agent.subscribe("y").is_err());
}

#[test]
fn monitor_tools_read_the_registry_from_the_header_without_asking_agentd() {
    let bus = start("registry");
    let a = bus.attach("risk-engine-1", "risk");
    let b = bus.attach("exec-1", "execution");
    let entries = agentd::bus_header::read_registry(&bus.bus).unwrap();
    let ids: Vec<_> = entries
        .iter()
        .map(|e| (e.agent_id.as_str(), e.agent_type.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![("risk-engine-1", "risk"), ("exec-1", "execution")]
    );
    assert!(entries.iter().all(|e| e.pid == std::process::id()));
    assert_eq!(entries[0].slot, a.slot());
    b.detach().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let entries = agentd::bus_header::read_registry(&bus.bus).unwrap();
        if entries.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot is never cleared: {entries:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
