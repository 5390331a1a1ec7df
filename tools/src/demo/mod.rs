//! `agentbus demo`: a trading desk on an embedded agentd, each agent its own process.
//!
//! A feed publishes ticks on `market.<symbol>`; two strategies subscribe to `market.>`, ask the
//! risk agent (request/response, routed by capability) before each order, and send orders to
//! the execution type (load-balanced between two execution agents), which answer with fills;
//! the risk agent raises CRITICAL alerts on `alerts.risk` when it denies. Every agent reports
//! its counters each second on `demo.stats`; at the end the demo prints messages by type and
//! route, latency by route kind, and each agent's accounting against the router's counters.

pub mod roles;
mod stats;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, Topic};
use agentbus::*;
use anyhow::{bail, Context};

use roles::{CONTROL, STATS};
use stats::{int, print_summary};

/// Options of `agentbus demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long to trade, in seconds (Ctrl-C stops it early, with the same summary).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// How many symbols the feed quotes (1 to 8).
    #[arg(long, default_value_t = 4)]
    pub symbols: usize,
    /// Ticks per second the feed publishes, in all.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Microseconds agentd's router spins after its last message before it sleeps (agentd's
    /// `--router-spin-us`; default: agentd's).
    #[arg(long)]
    pub router_spin_us: Option<u64>,
}

const AGENTS: [(&str, &str); 6] = [
    ("execution", "exec-1"),
    ("execution", "exec-2"),
    ("risk", "risk-1"),
    ("strategy", "strategy-1"),
    ("strategy", "strategy-2"),
    ("feed", "feed-1"),
];

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

fn control(monitor: &mut Agent, control: &Topic, event: &str) -> anyhow::Result<()> {
    let m = Message::notification(
        monitor.identity(),
        Notification {
            event: event.into(),
            data: Record::new(),
        },
    )
    .priority(MessagePriority::High);
    monitor
        .send_blocking(control, &m, Duration::from_secs(1))
        .with_context(|| format!("telling the agents to {event}"))?;
    Ok(())
}

/// Reads stats reports for up to `wait`, keeping the latest of each agent.
fn collect(
    monitor: &mut Agent,
    wait: Duration,
    latest: &mut BTreeMap<String, Record>,
    finals: &mut BTreeMap<String, Record>,
    ready: &mut usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    while let Some(d) = monitor.recv_timeout(deadline.saturating_duration_since(Instant::now()))? {
        let m = d.to_message();
        drop(d);
        let Payload::Notification(n) = m.payload else {
            continue;
        };
        let agent = match n.data.get("agent") {
            Some(Value::String(a)) => a.clone(),
            _ => continue,
        };
        match n.event.as_str() {
            "ready" => *ready += 1,
            "stats" => {
                latest.insert(agent, n.data);
            }
            "final" => {
                latest.insert(agent.clone(), n.data.clone());
                finals.insert(agent, n.data);
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok(())
}

fn total(latest: &BTreeMap<String, Record>, key: &str, role_prefix: &str) -> i64 {
    latest
        .iter()
        .filter(|(a, _)| a.starts_with(role_prefix))
        .map(|(_, r)| int(r, key))
        .sum()
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if !(1..=8).contains(&args.symbols) {
        bail!("--symbols must be 1 to 8 (got {})", args.symbols);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&stop))?;
    }
    let bus = format!("demo-{}", std::process::id());
    let mut config = agentd::Config::new(&bus);
    config.socket_dir = std::env::temp_dir().join(format!("agentbus-demo-{}", std::process::id()));
    // A demo keeps nothing across runs: its dead letters are in its summary.
    config.dead_letter_persist = false;
    config.lane_capacity = 1 << 18;
    if let Some(us) = args.router_spin_us {
        config.router_spin = std::time::Duration::from_micros(us);
    }
    let socket_dir = config.socket_dir.clone();
    let mut daemon = agentd::Daemon::start(config).context("starting the embedded agentd")?;
    println!(
        "agentbus demo: embedded agentd on bus {bus:?}; {} agents; {} symbols at {} ticks/s for {} s",
        AGENTS.len(),
        args.symbols,
        args.rate,
        args.seconds
    );
    let mut monitor =
        Agent::attach(AttachOptions::new(&bus, "monitor", "ops").socket_dir(&socket_dir))?;
    monitor.subscribe(STATS)?.detach();
    let control_topic = monitor.topic(CONTROL)?;
    let exe = std::env::current_exe()?;
    let mut children = Children(Vec::new());
    for (role, id) in AGENTS {
        let child = Command::new(&exe)
            .args(["__agent", role, id, "--bus", &bus, "--socket-dir"])
            .arg(&socket_dir)
            .args([
                "--symbols",
                &args.symbols.to_string(),
                "--rate",
                &args.rate.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting agent {id}"))?;
        children.0.push(child);
    }
    let (mut latest, mut finals) = (BTreeMap::new(), BTreeMap::new());
    let mut ready = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready < AGENTS.len() {
        if Instant::now() > deadline {
            bail!(
                "only {ready} of {} agents became ready in 30 s",
                AGENTS.len()
            );
        }
        for c in &mut children.0 {
            if let Some(status) = c.try_wait()? {
                bail!("an agent process exited early: {status}");
            }
        }
        collect(
            &mut monitor,
            Duration::from_millis(100),
            &mut latest,
            &mut finals,
            &mut ready,
        )?;
    }
    control(&mut monitor, &control_topic, "start")?;
    let started = Instant::now();
    let mut prev: BTreeMap<&str, i64> = BTreeMap::new();
    let mut second = 0;
    while started.elapsed() < Duration::from_secs(args.seconds) && !stop.load(Ordering::Acquire) {
        collect(
            &mut monitor,
            Duration::from_millis(1000),
            &mut latest,
            &mut finals,
            &mut ready,
        )?;
        second += 1;
        let now: BTreeMap<&str, i64> = [
            ("ticks", total(&latest, "ticks", "feed")),
            ("checks", total(&latest, "checks", "risk")),
            ("orders", total(&latest, "orders", "strategy")),
            ("fills", total(&latest, "fills", "exec")),
            ("alerts", total(&latest, "alerts", "strategy")),
        ]
        .into_iter()
        .collect();
        let p99 = latest.values().map(|r| int(r, "p99_ns")).max().unwrap_or(0);
        let rate = |k: &str| now[k] - prev.get(k).copied().unwrap_or(0);
        println!(
            "t={second:>3}s  ticks {:>6}/s  risk checks {:>5}/s  orders {:>5}/s  fills {:>5}/s  alerts {:>4}  p99 receive latency {:>8.1} µs",
            rate("ticks"),
            rate("checks"),
            rate("orders"),
            rate("fills"),
            rate("alerts"),
            p99 as f64 / 1000.0
        );
        prev = now;
    }
    if stop.load(Ordering::Acquire) {
        println!("interrupted: stopping the agents");
    }
    control(&mut monitor, &control_topic, "stop")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while finals.len() < AGENTS.len() && Instant::now() < deadline {
        collect(
            &mut monitor,
            Duration::from_millis(200),
            &mut latest,
            &mut finals,
            &mut ready,
        )?;
    }
    if finals.len() < AGENTS.len() {
        println!(
            "warning: only {} of {} agents sent final reports",
            finals.len(),
            AGENTS.len()
        );
    }
    // Let the router publish its counters for the last frames (it does so every millisecond).
    std::thread::sleep(Duration::from_millis(100));
    let agents = monitor.list_agents()?;
    let dead = monitor.dead_letters()?.len();
    let balanced = print_summary(&finals, &agents, dead);
    control(&mut monitor, &control_topic, "exit")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in &mut children.0 {
        while c.try_wait()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(children);
    monitor.detach()?;
    daemon.stop();
    let _ = std::fs::remove_dir(&socket_dir);
    if !balanced || finals.len() < AGENTS.len() {
        bail!("the demo's accounting did not balance");
    }
    Ok(())
}
