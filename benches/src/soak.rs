//! `soak`: many agents churning for a while, to show a leak in agentd.
//!
//! agentd runs in a child process of its own (this binary with a hidden role), so its resident
//! memory and descriptors are its alone. `agents` agents (threads of this process, parking)
//! each send to a partner, publish on a topic the others subscribe to, and re-attach every 1 to
//! 3 s (a new slot, new lanes, new subscriptions: what a leak would grow with). A probe pair
//! measures the routed round trip for two seconds at the start and two at the end. agentd's
//! RSS and descriptors are read with every agent attached and idle, before the churn and after
//! it, so the two readings are comparable. The churn makes dead letters (messages left unread
//! by an agent that re-attaches, sends to a partner's old address); agentd's queue of them is
//! bounded to 1 MiB here, so that what it holds does not pass for a leak.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, Raw};
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::wait::{Park, Wait};
use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::child::{ParentWatch, Peer};
use crate::report::{histogram, Row};

/// The child role that runs agentd.
pub const AGENTD_CASE: &str = "soak-agentd";

/// What the soak measured.
#[derive(Debug)]
pub struct Soak {
    /// Agents churning.
    pub agents: usize,
    /// Seconds of churn.
    pub seconds: f64,
    /// agentd's resident memory (KiB) and open descriptors before the churn.
    pub start: (u64, usize),
    /// The same after it.
    pub end: (u64, usize),
    /// Messages the agents sent.
    pub messages: u64,
    /// Re-attaches.
    pub reattaches: u64,
    /// Dead letters made during the soak, and held at its end (bytes).
    pub dead_letters: (u64, u64),
    /// The probe's round trips at the start and at the end.
    pub rows: Vec<Row>,
}

/// The child: an embedded agentd on `bus` in `dir` with room for `max_agents`, until SIGTERM
/// (a clean stop: socket and bus header removed) or the parent is gone.
pub fn agentd_child(args: &[String]) -> anyhow::Result<()> {
    let [bus, dir, max_agents, ..] = args else {
        bail!("soak agentd: expected bus, socket dir and max agents, got {args:?}");
    };
    let mut config = agentd::Config::new(bus);
    config.socket_dir = dir.into();
    config.max_agents = max_agents.parse()?;
    config.dead_letter_persist = false;
    // Churning agents leave messages unread and peers stale: dead letters, bounded to 1 MiB
    // here so that the memory readings show leaks, not a filling queue.
    config.dead_letter_bytes = 1 << 20;
    let term = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&term))?;
    let mut daemon = agentd::Daemon::start(config)?;
    let mut parent = ParentWatch::new();
    while !term.load(Ordering::Relaxed) && parent.check_alive().is_ok() {
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.stop();
    Ok(())
}

/// agentd's resident memory (KiB) and open descriptors.
fn resources(pid: u32) -> (u64, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (rss, fds)
}

fn options(bus: &str, dir: &std::path::Path, id: &str) -> AttachOptions {
    AttachOptions::new(bus, id, "soak")
        .socket_dir(dir)
        .wait(Wait::Park(Park::default()))
}

/// Attaches, retrying while agentd frees a slot or starts.
fn attach(bus: &str, dir: &std::path::Path, id: &str) -> anyhow::Result<Agent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Agent::attach(options(bus, dir, id)) {
            Ok(a) => return Ok(a),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e).with_context(|| format!("attaching {id}")),
        }
    }
}

/// The probe: `a` asks `b` (echoing in a thread) for `window`; the round trips, in ns.
fn probe(bus: &str, dir: &std::path::Path, window: Duration) -> anyhow::Result<Histogram<u64>> {
    let mut a = attach(bus, dir, "probe-a")?;
    let mut b = attach(bus, dir, "probe-b")?;
    let to_a = b.peer("probe-a")?;
    let to_b = a.peer("probe-b")?;
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> anyhow::Result<()> {
            while !stop.load(Ordering::Acquire) {
                let raw = match b.recv_timeout(Duration::from_millis(20))? {
                    Some(d) => d.raw().unwrap_or_default().to_vec(),
                    None => continue,
                };
                b.send_blocking(&to_a, Raw(&raw), Duration::from_secs(1))?;
            }
            Ok(())
        })
    };
    let mut hist = histogram();
    let end = Instant::now() + window;
    let payload = [0u8; 64];
    while Instant::now() < end {
        let t0 = monotonic_ns();
        a.send_blocking(&to_b, Raw(&payload), Duration::from_secs(1))?;
        if a.recv_timeout(Duration::from_secs(1))?.is_none() {
            bail!("soak probe: no echo within 1 s");
        }
        hist.record(monotonic_ns().saturating_sub(t0).max(1))?;
        std::thread::sleep(Duration::from_micros(200));
    }
    stop.store(true, Ordering::Release);
    echo.join()
        .map_err(|_| anyhow::anyhow!("the probe's echo panicked"))??;
    Ok(hist)
}

/// One churning agent: `index` of `n`, until `stop`.
fn churn(
    bus: String,
    dir: std::path::PathBuf,
    index: usize,
    n: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    reattaches: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut rng = Xorshift::new(index as u64);
    let partner = format!("soak-{}", index ^ 1);
    let me = format!("soak-{index}");
    while !stop.load(Ordering::Acquire) {
        let mut agent = attach(&bus, &dir, &me)?;
        let _sub = agent.subscribe("soak.>")?;
        let topic = agent.topic(&format!("soak.{}", index % 8))?;
        let life = Instant::now() + Duration::from_millis(1000 + rng.next() % 2000);
        let mut to_partner = None;
        let mut seq = 0u64;
        while Instant::now() < life && !stop.load(Ordering::Acquire) {
            if to_partner.is_none() && index ^ 1 < n {
                to_partner = agent.peer(&partner).ok();
            }
            let payload = seq.to_le_bytes();
            if let Some(p) = &to_partner {
                match agent.send(p, Raw(&payload)) {
                    Ok(_) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    // The partner re-attached: resolve it again.
                    Err(_) => to_partner = None,
                }
            }
            if seq % 10 == 0 && agent.send(&topic, Raw(&payload)).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            seq += 1;
            // Read what came, then wait a little (parked).
            while agent.recv_timeout(Duration::from_millis(2))?.is_some() {}
        }
        drop(_sub);
        agent.detach()?;
        reattaches.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// A tiny xorshift generator (no dependency needed for jitter).
struct Xorshift(u64);

impl Xorshift {
    fn new(seed: u64) -> Xorshift {
        Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs the soak: `agents` churning agents for `seconds`, agentd's router on `router_core`.
pub fn soak(agents: usize, seconds: f64, router_core: usize) -> anyhow::Result<Soak> {
    let bus = format!("soak-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("agentbus-bench-soak-{}", std::process::id()));
    let max_agents = (agents + 8).min(256);
    let mut daemon = Peer::spawn_plain(&[
        AGENTD_CASE.into(),
        "0".into(),
        "0".into(),
        router_core.to_string(),
        bus.clone(),
        dir.display().to_string(),
        max_agents.to_string(),
    ])?;
    let pid = daemon.id();
    let result = run(&bus, &dir, agents, seconds, pid, &mut daemon);
    // A clean stop: agentd removes its socket and bus header.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let stopped = daemon.finish();
    let _ = std::fs::remove_dir_all(&dir);
    let soak = result?;
    stopped?;
    Ok(soak)
}

fn run(
    bus: &str,
    dir: &std::path::Path,
    agents: usize,
    seconds: f64,
    pid: u32,
    daemon: &mut Peer,
) -> anyhow::Result<Soak> {
    // Until agentd answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(agentbus::paths::socket_path(dir, bus)).is_err() {
        daemon.check_alive()?;
        if Instant::now() > deadline {
            bail!("soak: agentd did not come up");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let start_probe = probe(bus, dir, Duration::from_secs(2))?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let reattaches = Arc::new(AtomicU64::new(0));
    // Every agent attached and idle once before the churn, for the first reading.
    let idle: Vec<Agent> = (0..agents)
        .map(|i| attach(bus, dir, &format!("soak-{i}")))
        .collect::<anyhow::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(300));
    let start = resources(pid);
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let threads: Vec<_> = (0..agents)
        .map(|i| {
            let (bus, dir) = (bus.to_string(), dir.to_path_buf());
            let (stop, sent, re) = (
                Arc::clone(&stop),
                Arc::clone(&sent),
                Arc::clone(&reattaches),
            );
            std::thread::spawn(move || churn(bus, dir, i, agents, stop, sent, re))
        })
        .collect();
    let churn_end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < churn_end {
        daemon.check_alive()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a soak agent panicked"))??;
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<Agent> = (0..agents)
        .map(|i| attach(bus, dir, &format!("soak-{i}")))
        .collect::<anyhow::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(300));
    let end = resources(pid);
    let stats = idle[0].stats()?;
    drop(idle);
    // As at the start: the probe alone on the bus, once agentd has freed the idle agents.
    std::thread::sleep(Duration::from_millis(1000));
    let end_probe = probe(bus, dir, Duration::from_secs(2))?;
    Ok(Soak {
        agents,
        seconds,
        start,
        end,
        messages: sent.load(Ordering::Relaxed),
        reattaches: reattaches.load(Ordering::Relaxed),
        dead_letters: (stats.dead_lettered, stats.dead_letter_bytes),
        rows: vec![
            Row {
                id: "soak-start".into(),
                name: "routed, soak start".into(),
                hist: start_probe,
            },
            Row {
                id: "soak-end".into(),
                name: "routed, soak end".into(),
                hist: end_probe,
            },
        ],
    })
}
