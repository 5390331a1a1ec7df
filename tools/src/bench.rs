//! `agentbus bench`: the latency and throughput harness (in `agentbus-benches`).

use std::path::PathBuf;

use agentbus_benches::harness::{self, BenchOptions};
use anyhow::Context;

/// Options of `agentbus bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// floor, ring, channel, typed (a 64-byte user struct, rkyv, over a channel), plain (a
    /// 64-byte `Pod` struct written in a loan, over a channel), routed, throughput, fanout (parked
    /// subscribers on a default topic and on one with an access list and a history, and
    /// spinning ones), slow-subscriber (a healthy subscriber beside one that never
    /// reads, per back-pressure policy), priority, rate, uds, crossbeam, metrics (routed and
    /// channel with agentd's per-message metrics on and off), all (all of those), or bridge (a topic
    /// ping-pong on one bus and across two through NATS; needs nats-server), router-wait, route-changes, tail, patterns
    /// (a consensus round among 4 voters and a lease handover), soak
    /// (agentd's memory and descriptors before and after --agents agents churn for --seconds) or
    /// sweep (each on its own: about a minute, a few seconds (topics grown, then a crowd of up to 200 agents) and half a minute; tail: is the round
    /// trips' tail ours or the machine's?; sweep: floor, channel and routed at 8, 64, 256, 1024
    /// and 4096 B, each against the floor of its size; --size does not apply).
    pub case: String,
    /// Two cores: the measuring side (the router, for routed cases) and the other side.
    #[arg(long, default_value = "0,1")]
    pub cores: String,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Measured round trips per case (default 200000; tail: 2000000).
    #[arg(long)]
    pub count: Option<u64>,
    /// How each side waits: spin, backoff or park.
    #[arg(long, default_value = "spin")]
    pub wait: String,
    /// Subscribers for fanout.
    #[arg(long, default_value_t = 2)]
    pub subscribers: usize,
    /// Messages per second for rate.
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// Write machine-readable results here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write HdrHistogram percentile-distribution files into this directory.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Draw latency-by-percentile curves into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Seconds measured per cell of router-wait (a spin setting at a rate; default 2), per
    /// clock loop of tail (default 10), and of churn in soak (default 60).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Agents churning in soak.
    #[arg(long, default_value_t = 64)]
    pub agents: usize,
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (a, b) = args
        .cores
        .split_once(',')
        .context("--cores takes two cores, like 0,1")?;
    let cores = (
        a.trim().parse().context("--cores: not a core number")?,
        b.trim().parse().context("--cores: not a core number")?,
    );
    let tail = args.case == "tail";
    let count = args.count.unwrap_or(if tail { 2_000_000 } else { 200_000 });
    if count < 10 {
        anyhow::bail!("--count must be at least 10");
    }
    let seconds = args.seconds.unwrap_or(match args.case.as_str() {
        "tail" => 10.0,
        "soak" => 60.0,
        _ => 2.0,
    });
    harness::run(&BenchOptions {
        case: args.case,
        cores,
        size: args.size,
        count,
        wait: args.wait.parse().map_err(anyhow::Error::msg)?,
        subscribers: args.subscribers.max(1),
        rate: args.rate.max(1),
        json: args.json,
        hgrm: args.hgrm,
        plot: args.plot,
        seconds: seconds.clamp(0.01, 3600.0),
        agents: args.agents.clamp(2, 248),
    })
}
