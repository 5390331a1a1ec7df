//! One agent cannot exhaust agentd: dead letters it causes are rate-limited (over the limit it
//! is throttled, named in the log), the dead-letter queue is bounded in bytes, the
//! per-dead-letter log line is rate-limited, and the other agents keep talking meanwhile.

mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use agentbus::client::Agent;
use agentbus::*;
use support::process::AgentdProcess;
use support::*;

/// Publishes `size`-byte messages to a topic nobody subscribes to, for `for_`, as fast as the
/// lane takes them; returns how many were accepted.
fn flood_nobody(agent: &mut Agent, size: usize, for_: Duration) -> u64 {
    let m = Message::raw(agent.identity(), MessageType::Notification, vec![1; size]);
    let nobody = agent.topic("nobody.listens").unwrap();
    let end = Instant::now() + for_;
    let mut accepted = 0;
    while Instant::now() < end {
        match agent.send(&nobody, &m) {
            Ok(_) => accepted += 1,
            Err(CommunicationError::QueueFull { .. }) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    accepted
}

#[test]
fn a_dead_letter_flood_is_throttled_and_bounded_in_bytes() {
    let mut cfg = config("dlflood");
    cfg.dead_letter_rate = 200;
    cfg.dead_letter_burst = 400;
    cfg.dead_letter_bytes = 2 << 20;
    let bus = start_with(cfg);
    let mut flooder = bus.attach("flooder", "rogue");
    let mut client = bus.attach("client", "strategy");
    let mut echo = bus.attach("echo", "risk");
    echo.on_request(|_, _| Ok(Payload::TaskResponse(TaskResponse::default())));
    let served = std::thread::spawn(move || {
        let mut n = 0;
        echo.run_until(Instant::now() + Duration::from_secs(20), |a| {
            n += 1;
            n > 1_000_000 || !a.sender().is_connected()
        })
        .unwrap();
        echo
    });
    let started = Instant::now();
    let flood = std::thread::spawn(move || {
        let n = flood_nobody(&mut flooder, 30_000, Duration::from_millis(1500));
        (flooder, n)
    });
    // The others keep talking while it floods.
    let to_echo = client.peer("echo").unwrap();
    let mut answered = 0;
    while !flood.is_finished() {
        let req = Message::task_request(client.identity(), TaskRequest::default());
        client
            .request(&to_echo, &req, Duration::from_secs(5))
            .expect("a request during the flood is answered");
        answered += 1;
    }
    let (flooder, accepted) = flood.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let stats = client.stats().unwrap();
    eprintln!(
        "flood: {accepted} accepted in {elapsed:.2} s, {} dead letters ({} held, {} bytes, {} evicted); {answered} requests answered meanwhile",
        stats.dead_lettered, stats.dead_letters_held, stats.dead_letter_bytes, stats.dead_letters_evicted
    );
    assert!(answered > 0);
    let allowed = 400.0 + 200.0 * (elapsed + 0.5);
    assert!(
        (stats.dead_lettered as f64) <= allowed,
        "{} dead letters in {elapsed:.2} s: more than the limit allows ({allowed})",
        stats.dead_lettered
    );
    assert!(stats.dead_letter_bytes <= 2 << 20, "{stats:?}");
    let me = agent_info(&mut client, "flooder"); // throttled, not detached
    assert!(me.throttled >= 1, "{me:?}");
    drop(flooder);
    drop(served);
}

#[test]
fn the_dead_letter_log_is_rate_limited_and_says_what_it_held_back() {
    let mut agentd = AgentdProcess::start("dllog", &[]);
    let mut stderr = agentd.child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut flooder = agentd.attach("flooder", "rogue");
    let started = Instant::now();
    let accepted = flood_nobody(&mut flooder, 16, Duration::from_millis(2500));
    std::thread::sleep(Duration::from_millis(1100)); // a new second: the summary line
    flood_nobody(&mut flooder, 16, Duration::from_millis(10));
    let elapsed = started.elapsed().as_secs_f64();
    drop(flooder);
    agentd.kill();
    let log = log.join().unwrap();
    let lines = log
        .lines()
        .filter(|l| l.contains("dead letter") && !l.contains("throttl") && !l.contains("held back"))
        .count();
    let held_back = log.lines().filter(|l| l.contains("held back")).count();
    let throttling = log.lines().filter(|l| l.contains("throttling")).count();
    eprintln!(
        "{accepted} publishes in {elapsed:.1} s: {lines} dead-letter lines, {held_back} summaries, {throttling} throttling lines, {} bytes of log",
        log.len()
    );
    assert!(accepted > 10_000, "the flood made more than the burst");
    assert!(
        // Whole seconds of the clock: a run of t seconds touches at most t + 2 of them.
        lines as f64 <= 10.0 * (elapsed + 2.0),
        "{lines} dead-letter lines in {elapsed:.1} s"
    );
    assert!(held_back >= 1, "the held-back lines are counted:\n{log}");
    assert!(throttling >= 1, "the throttled agent is named:\n{log}");
    assert!(log.contains("flooder"), "named in the log");
}
