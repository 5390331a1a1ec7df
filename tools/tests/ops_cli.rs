//! The one-shot commands against a running bus (`--json` parsed back), and against none.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, Raw};
use agentbus::Payload;

/// Removes the test's directory, even when it fails.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cli(bus: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(args)
        .args(["--bus", bus, "--socket-dir"])
        .arg(dir)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn one_shot_commands_against_a_running_bus_and_against_none() {
    let pid = std::process::id();
    let dir = Dir(std::env::temp_dir().join(format!("agentbus-test-{pid}-ops")));
    let sock = dir.0.join("sock");
    let bus = format!("ops-{pid}");
    let mut config = agentd::Config::new(&bus);
    config.socket_dir = sock.clone();
    config.dead_letter_persist = false;
    config.trace_log = 64;
    let daemon = agentd::Daemon::start(config).unwrap();
    let options = |id: &str, kind: &str| AttachOptions::new(&bus, id, kind).socket_dir(&sock);
    // An echo agent answering requests with their own bytes.
    let stop = Arc::new(AtomicBool::new(false));
    let mut echo = Agent::attach(options("echo", "echo")).unwrap();
    echo.on_request(|req, _| Ok(Payload::Raw(req.raw().unwrap_or_default().to_vec())));
    let s = Arc::clone(&stop);
    let serving = std::thread::spawn(move || {
        echo.run_until(Instant::now() + Duration::from_secs(60), |_| {
            s.load(Ordering::Acquire)
        })
        .unwrap()
    });

    let agents = json(&cli(&bus, &sock, &["agents", "--json"]));
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["agent_id"] == "echo"),
        "{agents}"
    );
    let topics = json(&cli(&bus, &sock, &["topics", "--json"]));
    assert!(topics
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "sys.agents"));

    // sub in a child while pub publishes.
    let sub = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args([
            "sub",
            "market.>",
            "--count",
            "1",
            "--seconds",
            "20",
            "--json",
            "--bus",
            &bus,
            "--socket-dir",
        ])
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the subscription is in place (the topic has a subscriber).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let topics = json(&cli(&bus, &sock, &["topics", "--json"]));
        let subscribed = topics
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "market.AAPL" && t["subscribers"] == 1);
        if subscribed {
            break;
        }
        // Creates the topic, so the wildcard picks it up.
        let probe = Agent::attach(options("probe", "x")).unwrap();
        probe.topic("market.AAPL").unwrap();
        drop(probe);
        assert!(Instant::now() < deadline, "sub never subscribed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let published = json(&cli(
        &bus,
        &sock,
        &["pub", "market.AAPL", "101.25", "--json"],
    ));
    assert_eq!(published["topic"], "market.AAPL");
    let out = sub.wait_with_output().unwrap();
    let line = json(&out);
    assert_eq!(line["body"], "101.25", "{line}");

    let answer = json(&cli(&bus, &sock, &["request", "echo", "hello", "--json"]));
    assert_eq!(answer["body"], "hello");
    let answer = json(&cli(
        &bus,
        &sock,
        &["request", "type:echo", "again", "--json"],
    ));
    assert_eq!(answer["body"], "again");

    // A traced publish, then the trace, from the header's trace log.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    json(&cli(
        &bus,
        &sock,
        &["pub", "market.MSFT", "1", "--trace", trace_id, "--json"],
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    let traced = loop {
        let traced = json(&cli(&bus, &sock, &["trace", trace_id, "--json"]));
        if !traced.as_array().unwrap().is_empty() || Instant::now() > deadline {
            break traced;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(traced[0]["trace_id"], trace_id, "{traced}");
    assert_eq!(traced[0]["to"], "topic market.MSFT", "{traced}");
    // The one-shot publisher is gone by now: named by its type.
    assert_eq!(traced[0]["from"], "a cli (gone)", "{traced}");
    let text = cli(&bus, &sock, &["trace", trace_id]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 messages of trace"));
    let stat = cli(&bus, &sock, &["stat"]);
    let stat = String::from_utf8_lossy(&stat.stdout);
    assert!(stat.contains("latency") && stat.contains("p99.9"), "{stat}");

    // A dead letter: a message to a capability nobody has.
    let mut a = Agent::attach(options("lonely", "x")).unwrap();
    let nobody = a.capability(&["nobody"]).unwrap();
    a.send(&nobody, Raw(b"lost")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let capability_letter = |letters: &serde_json::Value| {
        letters.as_array().unwrap().iter().any(|l| {
            l["reason"]
                .as_str()
                .is_some_and(|r| r.contains("capabilit"))
        })
    };
    let letters = loop {
        let letters = json(&cli(&bus, &sock, &["dlq", "list", "--json"]));
        if capability_letter(&letters) || Instant::now() > deadline {
            break letters;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(capability_letter(&letters), "{letters}");
    let stat = json(&cli(&bus, &sock, &["stat", "--json"]));
    assert!(
        stat["router"]["dead_lettered"].as_u64().unwrap() >= 1,
        "{stat}"
    );
    assert!(
        stat["dead_letters"]["no_route"].as_u64().unwrap() >= 1,
        "{stat}"
    );
    assert!(stat["latency_ns"]["count"].as_u64().unwrap() >= 1, "{stat}");
    let purged = json(&cli(&bus, &sock, &["dlq", "purge", "--json"]));
    assert!(purged["purged"].as_u64().unwrap() >= 1);

    stop.store(true, Ordering::Release);
    serving.join().unwrap();
    drop(a);
    drop(daemon);

    // No agentd: a clear error and a non-zero exit, for every command.
    for args in [
        &["agents"][..],
        &["topics"],
        &["stat"],
        &["dlq", "list"],
        &["pub", "x", "y"],
        &["sub", "x", "--count", "1"],
        &["request", "echo", "hi"],
        &["trace", "4bf92f3577b34da6a3ce929d0e0e4736"],
    ] {
        let out = cli(&bus, &sock, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded with no agentd");
        assert!(
            stderr.contains("no agentd is listening") || stderr.contains("no agentd serves bus"),
            "{args:?}: {stderr}"
        );
    }
}
