//! `agentbus bridge`: this bus's topics and requests over NATS, until Ctrl-C.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus_bridge::{Bridge, BridgeConfig};
use anyhow::Context;

/// Options of `agentbus bridge` (flags add to, or override, the configuration file's).
#[derive(Debug, Clone, clap::Args)]
pub struct BridgeArgs {
    /// The local bus.
    #[arg(long)]
    pub bus: Option<String>,
    /// The NATS server, such as nats://127.0.0.1:4222.
    #[arg(long)]
    pub nats: Option<String>,
    /// A TOML file with the same settings (bus, nats, export, import, jetstream, serve, remote, prefix,
    /// origin, buffer, request_timeout_ms, socket_dir).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Topic patterns sent out to NATS (repeatable).
    #[arg(long)]
    pub export: Vec<String>,
    /// Topic patterns brought in from NATS (repeatable).
    #[arg(long)]
    pub import: Vec<String>,
    /// Exported or imported patterns that travel at least once, over JetStream (repeatable;
    /// nats-server runs with -js).
    #[arg(long)]
    pub jetstream: Vec<String>,
    /// Agent types on this bus that answer requests from other hosts (repeatable).
    #[arg(long)]
    pub serve: Vec<String>,
    /// Agent types served on other hosts, reachable from here (repeatable).
    #[arg(long)]
    pub remote: Vec<String>,
    /// The first subject token(s) of everything exchanged (default agentbus).
    #[arg(long)]
    pub prefix: Option<String>,
    /// This bus's id on NATS (default `<hostname>/<bus>`).
    #[arg(long)]
    pub origin: Option<String>,
    /// Where the bus's socket is.
    #[arg(long)]
    pub socket_dir: Option<PathBuf>,
    /// Print the bridge's counters every this many seconds (0: only at the end).
    #[arg(long, default_value_t = 10)]
    pub stats_every: u64,
}

fn config(args: &BridgeArgs) -> anyhow::Result<BridgeConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            BridgeConfig::from_toml(&text)?
        }
        None => {
            let bus = args
                .bus
                .as_deref()
                .context("name the bus: --bus NAME (or bus = \"NAME\" in --config FILE)")?;
            let nats = args.nats.as_deref().context("name the NATS server: --nats nats://HOST:PORT (or nats = \"...\" in --config FILE)")?;
            BridgeConfig::new(bus, nats)
        }
    };
    if let Some(v) = &args.bus {
        cfg.bus = v.clone();
    }
    if let Some(v) = &args.nats {
        cfg.nats = v.clone();
    }
    if let Some(v) = &args.prefix {
        cfg.prefix = v.clone();
    }
    if let Some(v) = &args.origin {
        cfg.origin = v.clone();
    }
    if let Some(v) = &args.socket_dir {
        cfg.socket_dir = Some(v.clone());
    }
    cfg.export.extend(args.export.iter().cloned());
    cfg.import.extend(args.import.iter().cloned());
    cfg.jetstream.extend(args.jetstream.iter().cloned());
    cfg.serve.extend(args.serve.iter().cloned());
    cfg.remote.extend(args.remote.iter().cloned());
    Ok(cfg)
}

/// Runs the bridge until SIGINT or SIGTERM.
pub fn run(args: BridgeArgs) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let bus = cfg.bus.clone();
    let nats = cfg.nats.clone();
    let mut bridge = Bridge::start(cfg)?;
    eprintln!(
        "agentbus bridge: bus {bus:?} <-> {nats} as {:?} (Ctrl-C stops)",
        bridge.origin()
    );
    let every = Duration::from_secs(args.stats_every);
    let mut last = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        if !every.is_zero() && last.elapsed() >= every {
            eprintln!("bridge: {}", bridge.stats());
            last = Instant::now();
        }
    }
    bridge.stop();
    eprintln!("bridge stopped: {}", bridge.stats());
    Ok(())
}
