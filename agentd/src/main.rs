//! `agentd`: serve a bus until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentd::{Config, Daemon};
use anyhow::Context;
use clap::Parser;

/// agentd's flags: those given override the configuration file (`--bus` always does).
#[derive(Debug, Parser)]
#[command(
    version,
    about = "The agentbus daemon: owns a bus's shared memory and routes its messages"
)]
struct Args {
    /// Bus name: it names the control socket (`<bus>.sock`) and the shared-memory header.
    #[arg(long, default_value = "default")]
    bus: String,
    /// TOML configuration file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Core to pin the router thread to.
    #[arg(long)]
    router_core: Option<usize>,
    /// How the router waits when idle: spin, backoff or park.
    #[arg(long)]
    wait: Option<String>,
    /// With `--wait park`: microseconds the router spins after its last frame before it
    /// sleeps (default 5; 0 sleeps at once; longer catches bursts sooner, at a core burning that
    /// long after every message: see the README, "Choosing the router's wait").
    #[arg(long)]
    router_spin_us: Option<u64>,
    /// Bytes per lane (a power of two).
    #[arg(long)]
    lane_capacity: Option<usize>,
    /// Directory for the control socket.
    #[arg(long)]
    socket_dir: Option<PathBuf>,
    /// Most agents attached at once (1 to 256; default 64).
    #[arg(long)]
    max_agents: Option<usize>,
    /// Where dead letters are kept across restarts (default: `<socket dir>/<bus>.dlq`).
    #[arg(long)]
    dead_letter_file: Option<PathBuf>,
    /// Keep dead letters in memory only: they are lost when agentd stops.
    #[arg(long)]
    no_dead_letter_file: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9464; off by
    /// default).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Do not record per-message metrics (routing latency, messages by type, topics): saves a
    /// few nanoseconds a message; per-agent counters are kept.
    #[arg(long)]
    no_metrics: bool,
    /// Keep the last N traced messages (those sent with a trace context) for `agentbus trace`.
    #[arg(long, value_name = "N")]
    trace_log: Option<usize>,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Log format: `text` (for people) or `json` (one object per line, for log collectors).
    #[arg(long, default_value = "text")]
    log_format: String,
    /// Checks this configuration file (with the flags given) and exits: 0 and a summary when it
    /// is valid, 1 and what is wrong (with the key and what to write) when it is not.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::new(&args.log_level);
    match args.log_format.as_str() {
        "json" => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
        "text" => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
        other => anyhow::bail!("--log-format {other:?}: use text or json"),
    }
    let mut config = Config::new(&args.bus);
    if let Some(path) = args.check_config.as_ref().or(args.config.as_ref()) {
        config.apply_file(path).map_err(anyhow::Error::msg)?;
    }
    config.bus = args.bus.clone();
    if let Some(v) = args.router_core {
        config.router_core = Some(v);
    }
    if let Some(v) = &args.wait {
        config.wait = v.parse().map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = args.router_spin_us {
        config.router_spin = Duration::from_micros(v);
    }
    if let Some(v) = args.lane_capacity {
        config.lane_capacity = v;
    }
    if let Some(v) = args.socket_dir {
        config.socket_dir = v;
    }
    if let Some(v) = args.max_agents {
        config.max_agents = v;
    }
    if let Some(v) = args.dead_letter_file {
        config.dead_letter_file = Some(v);
    }
    if args.no_dead_letter_file {
        config.dead_letter_persist = false;
    }
    if let Some(addr) = args.metrics {
        config.metrics_addr = Some(addr);
    }
    if args.no_metrics {
        config.metrics = false;
    }
    if let Some(n) = args.trace_log {
        config.trace_log = n;
    }
    if let Some(path) = &args.check_config {
        config
            .validate()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{} is not a valid agentd configuration", path.display()))?;
        println!(
            "{}: valid. bus {:?}, socket dir {}, lanes of {} bytes, up to {} agents, {} topic rules, dead letters {}",
            path.display(),
            config.bus,
            config.socket_dir.display(),
            config.lane_capacity,
            config.max_agents,
            config.topics.len(),
            config
                .dead_letter_path()
                .map_or("in memory only".into(), |p| format!("kept in {}", p.display()))
        );
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let mut daemon = Daemon::start(config)?;
    eprintln!(
        "agentd: bus {:?} on {} (Ctrl-C to stop)",
        daemon.bus(),
        daemon.socket_path().display()
    );
    if let Some(addr) = daemon.metrics_addr() {
        eprintln!("agentd: metrics at http://{addr}/metrics");
    }
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.stop();
    Ok(())
}
