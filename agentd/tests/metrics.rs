//! The metrics in the bus header: counters match a known traffic mix exactly, as read
//! read-only from the header; `/metrics` serves them over HTTP in a form `promtool` accepts; the
//! trace log keeps traced messages; a bus without agentd is a clear error.

mod support;

use std::time::Duration;

use agentbus::control::{BackPressure, TopicConfig};
use agentbus::{Message, MessagePriority, MessageType};
use agentd::bus_header::{DeadKind, HeaderReader, ReadError, Snapshot};
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// Messages published to the topic whose subscriber never reads.
const SLOW: u64 = 100;

fn agent<'a>(s: &'a Snapshot, id: &str) -> &'a agentd::bus_header::AgentMetrics {
    s.agents
        .iter()
        .find(|a| a.entry.agent_id == id)
        .unwrap_or_else(|| panic!("{id} not in the header"))
}

fn topic<'a>(s: &'a Snapshot, name: &str) -> &'a agentd::bus_header::TopicMetrics {
    s.topics
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("topic {name} not in the header: {:?}", s.topics))
}

fn messages(s: &Snapshot, from: &str, to: &str, t: MessageType) -> u64 {
    s.messages
        .iter()
        .filter(|m| m.from == from && m.to == to && m.message_type == t)
        .map(|m| m.count)
        .sum()
}

/// The header once the router has routed `frames` frames in all.
fn settled(bus: &str, frames: u64) -> Snapshot {
    let mut last = None;
    eventually("the router published every frame", || {
        let s = Snapshot::read(bus).expect("header");
        let done = s.router.frames_in == frames;
        last = Some(s);
        done
    });
    last.unwrap()
}

#[test]
fn counters_match_a_known_traffic_mix_exactly() {
    let mut cfg = config("metrics-mix");
    cfg.lane_capacity = 4096;
    cfg.dead_letter_burst = 1_000;
    let bus = start_with(cfg);
    let mut feed = bus.attach("feed", "market_data");
    let mut strat = bus.attach("strat", "strategy");
    let mut exec = bus.attach("exec", "execution");
    let mut slow = bus.attach("slow", "strategy");
    let _strat_sub = strat.subscribe("md.>").unwrap();
    let _slow_sub = slow.subscribe("slow.q").unwrap();
    let aapl = feed.topic("md.AAPL").unwrap();
    let slow_q = feed
        .create_topic("slow.q", TopicConfig::with(BackPressure::DeadLetterSlow))
        .unwrap();
    let nobody = feed.topic("nobody.here").unwrap();
    let to_exec = feed.peer("exec").unwrap();

    for seq in 0..10 {
        feed.send_blocking(&aapl, &note(&feed, seq), WAIT).unwrap();
    }
    for i in 0..5 {
        let mut t = task(&feed, &format!("t{i}"));
        t.priority = MessagePriority::High;
        feed.send_blocking(&to_exec, &t, WAIT).unwrap();
    }
    for seq in 0..3 {
        feed.send_blocking(&nobody, &note(&feed, seq), WAIT)
            .unwrap();
    }
    for seq in 0..SLOW as i64 {
        feed.send_blocking(&slow_q, &note(&feed, seq), WAIT)
            .unwrap();
    }
    let total = 10 + 5 + 3 + SLOW;
    assert_eq!(recv_seqs(&mut strat, 10, WAIT), (0..10).collect::<Vec<_>>());
    let mut tasks = 0;
    while tasks < 5 {
        exec.recv_timeout(WAIT).unwrap().expect("a task");
        tasks += 1;
    }
    let s = settled(&bus.bus, total);
    // What slow's 4 KiB lane took before it filled: it reads them now.
    let kept = recv_seqs(&mut slow, SLOW as usize, Duration::from_millis(300)).len() as u64;
    assert!(kept > 0 && kept < SLOW, "the lane took {kept} of {SLOW}");
    let dropped = SLOW - kept;

    assert!(s.metrics_on);
    assert_eq!(s.agents.len(), 4, "{:?}", s.agents);
    let f = agent(&s, "feed");
    assert_eq!(f.sent, total);
    assert_eq!(f.lanes.bytes_sent, s.router.bytes_in);
    assert_eq!(agent(&s, "strat").received, 10);
    assert_eq!(agent(&s, "exec").received, 5);
    let sl = agent(&s, "slow");
    assert_eq!(sl.received, kept);
    assert_eq!(sl.lost, dropped);
    assert!(sl.lanes.in_full[MessagePriority::Normal as usize] >= dropped);
    assert_eq!(sl.lanes.in_high[MessagePriority::Normal as usize], 4096);
    assert!(agent(&s, "strat").lanes.bytes_received > 0);

    assert_eq!(s.dead_of(DeadKind::NoRoute), 3);
    assert_eq!(s.dead_of(DeadKind::SlowSubscriber), dropped);
    assert_eq!(s.router.dropped, dropped);
    assert_eq!(s.dead_of(DeadKind::Expired), 0);

    let md = topic(&s, "md.AAPL");
    assert_eq!(
        (md.publishes, md.deliveries, md.dead, md.subscribers),
        (10, 10, 0, 1)
    );
    let q = topic(&s, "slow.q");
    assert_eq!((q.publishes, q.deliveries, q.dead), (SLOW, kept, dropped));
    let n = topic(&s, "nobody.here");
    assert_eq!(
        (n.publishes, n.deliveries, n.dead, n.subscribers),
        (3, 0, 3, 0)
    );

    let note = MessageType::Notification;
    assert_eq!(messages(&s, "market_data", "multicast", note), 10 + SLOW);
    assert_eq!(messages(&s, "market_data", "none", note), 3);
    assert_eq!(
        messages(&s, "market_data", "execution", MessageType::TaskRequest),
        5
    );
    assert!(s
        .messages
        .iter()
        .any(|m| m.to == "execution" && m.priority == MessagePriority::High && m.count == 5));
    assert_eq!(s.latency.count(), total);
    assert!(s.latency.quantile(0.5).is_some());
    assert_eq!(s.batches.iter().sum::<u64>(), s.router.busy_passes);
}

#[test]
fn metrics_off_keeps_the_agent_counters_and_skips_the_rest() {
    let mut cfg = config("metrics-off");
    cfg.metrics = false;
    let bus = start_with(cfg);
    let mut a = bus.attach("a", "x");
    let mut b = bus.attach("b", "y");
    let to_b = a.peer("b").unwrap();
    for seq in 0..7 {
        a.send_blocking(&to_b, &note(&a, seq), WAIT).unwrap();
    }
    assert_eq!(recv_seqs(&mut b, 7, WAIT).len(), 7);
    let s = settled(&bus.bus, 7);
    assert!(!s.metrics_on);
    assert_eq!(agent(&s, "a").sent, 7);
    assert_eq!(agent(&s, "b").received, 7);
    assert_eq!(s.latency.count(), 0);
    assert!(s.messages.is_empty());
}

#[test]
fn the_trace_log_keeps_the_messages_of_a_trace() {
    let mut cfg = config("metrics-trace");
    cfg.trace_log = 16;
    let bus = start_with(cfg);
    let mut a = bus.attach("a", "x");
    let b = bus.attach("b", "y");
    let to_b = a.peer("b").unwrap();
    let trace_id = [0x5a; 16];
    for i in 0..20u8 {
        let m = Message::raw(a.identity(), MessageType::Notification, vec![i])
            .trace(if i % 2 == 0 { trace_id } else { [i; 16] }, [i; 8]);
        a.send_blocking(&to_b, &m, WAIT).unwrap();
    }
    a.send_blocking(&to_b, &note(&a, 1), WAIT).unwrap(); // untraced: not logged
    let s = settled(&bus.bus, 21);
    assert_eq!(s.trace_capacity, 16);
    let reader = HeaderReader::open(&bus.bus).unwrap();
    let all = reader.trace(None);
    assert_eq!(all.len(), 16, "the log keeps its last 16");
    let mine = reader.trace(Some(trace_id));
    // Messages 4, 6, ..., 18 of the trace are among the last 16 logged (4..=19).
    assert_eq!(mine.len(), 8, "{mine:?}");
    assert!(mine.iter().all(|r| r.copies == 1 && r.dead == 0));
    assert!(mine.windows(2).all(|w| w[0].routed_ns <= w[1].routed_ns));
    assert_eq!(mine[0].trace.span_id, [4; 8]);
    assert_eq!(mine[0].message_type, Some(MessageType::Notification));
    drop(b);
}

#[test]
fn metrics_are_served_over_http_and_pass_promtool() {
    let mut cfg = config("metrics-http");
    cfg.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    let bus = start_with(cfg);
    let addr = bus.daemon.metrics_addr().expect("serving metrics");
    let mut a = bus.attach("a", "x");
    let mut b = bus.attach("b", "y");
    // An agent whose id tries to end its series' labels and forge one of its own.
    let _hostile = bus.attach("evil\"} 1\nagent_connections_active{bus=\"x", "y\\");
    let to_b = a.peer("b").unwrap();
    for seq in 0..3 {
        a.send_blocking(&to_b, &note(&a, seq), WAIT).unwrap();
    }
    assert_eq!(recv_seqs(&mut b, 3, WAIT).len(), 3);
    settled(&bus.bus, 3);
    let response = ureq::get(&format!("http://{addr}/metrics"))
        .timeout(WAIT)
        .call()
        .expect("scrape");
    assert!(response
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let body = response.into_string().unwrap();
    let b = &bus.bus;
    for expected in [
        format!("agent_messages_total{{bus=\"{b}\",from=\"x\",to=\"y\",type=\"notification\",priority=\"normal\"}} 3"),
        format!("agent_message_latency_seconds_count{{bus=\"{b}\"}} 3"),
        format!("agent_connections_active{{bus=\"{b}\"}} 3"),
        format!("agentbus_agent_sent_total{{bus=\"{b}\",agent=\"a\",type=\"x\"}} 3"),
        "# TYPE agent_messages_total counter".to_string(),
    ] {
        assert!(body.contains(&expected), "{expected:?} not in:\n{body}");
    }
    let missing = ureq::get(&format!("http://{addr}/nothing"))
        .timeout(WAIT)
        .call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
    assert!(
        !body.contains("\nagent_connections_active{bus=\"x"),
        "a label forged a series:\n{body}"
    );
    // Nor does a name carry control characters (terminal escapes) to the tools.
    let names = Snapshot::read(&bus.bus).unwrap();
    assert!(names
        .agents
        .iter()
        .any(|a| a.entry.agent_id == "evil\"} 1?agent_connections_active{bus=\"x"));
    promtool_accepts(&body);
    // Prometheus itself asks for OpenMetrics, and gets it.
    let open = ureq::get(&format!("http://{addr}/metrics"))
        .set(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .timeout(WAIT)
        .call()
        .expect("scrape");
    assert!(open
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let open = open.into_string().unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE agent_messages counter"), "{open}");
}

/// Runs `promtool check metrics` on `body` (Debian's `prometheus` package; `.ci/run` installs
/// it). Without it, the check is skipped here, but not in CI.
fn promtool_accepts(body: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not run ({e}): install Debian's prometheus package");
            return;
        }
        Err(e) => panic!("promtool is needed in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scraped:\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reading_a_bus_without_agentd_says_so() {
    let e = Snapshot::read("metrics-nobody-here").unwrap_err();
    assert!(matches!(e, ReadError::NoAgentd { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("no agentd serves bus \"metrics-nobody-here\""),
        "{text}"
    );
    assert!(text.contains("agentd --bus metrics-nobody-here"), "{text}");
}

#[test]
fn an_idle_router_counts_its_idle_time_while_it_idles() {
    let bus = start("metrics-idle");
    let first = Snapshot::read(&bus.bus).unwrap().router.idle_ns;
    std::thread::sleep(Duration::from_millis(400));
    let later = Snapshot::read(&bus.bus).unwrap().router.idle_ns;
    // It publishes before each sleep (at most 100 ms long when nobody rings it): most of the
    // 400 ms shows, though no work ended the idle stretch.
    assert!(
        later.saturating_sub(first) >= 150_000_000,
        "idle grew by {} ns in 400 ms",
        later.saturating_sub(first)
    );
}

#[test]
fn a_stopped_agentd_marks_its_header_for_readers_still_mapping_it() {
    let bus = start("metrics-stopped");
    let reader = HeaderReader::open(&bus.bus).unwrap();
    assert!(reader.is_current());
    let name = bus.bus.clone();
    drop(bus);
    assert!(!reader.is_current(), "still current after agentd stopped");
    assert!(matches!(
        HeaderReader::open(&name),
        Err(ReadError::NoAgentd { .. })
    ));
}
