//! `agentbus bench`: runs cases, prints percentiles beside the floor, and writes JSON,
//! HdrHistogram percentile files and an SVG plot on request.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use agentbus_ipc::wait::Wait;
use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::bus_cases::{ChannelPayload, Fanout};
use crate::cases::{self, Config};
use crate::report::{machine, print_table, Row};
use crate::{bus_cases, peers};

/// The cases `agentbus bench` knows (`all` runs every one but `router-wait`, `route-changes`
/// and `tail`, which take about a minute, a few seconds and half a minute, and `sweep`, which
/// runs floor, channel and routed at each of [`SWEEP_SIZES`]).
pub const CASES: [&str; 23] = [
    "floor",
    "ring",
    "channel",
    "typed",
    "plain",
    "routed",
    "throughput",
    "fanout",
    "slow-subscriber",
    "priority",
    "rate",
    "uds",
    "crossbeam",
    "iceoryx2",
    "router-wait",
    "route-changes",
    "tail",
    "sweep",
    "soak",
    "patterns",
    "metrics",
    "bridge",
    "all",
];

/// The most messages `fanout-spin` measures when its spinning threads outnumber the cores.
const SPIN_FANOUT_CROWDED: u64 = 1000;

/// The payload sizes of `agentbus bench sweep`, in bytes.
pub const SWEEP_SIZES: [usize; 5] = [8, 64, 256, 1024, 4096];

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A case of [`CASES`].
    pub case: String,
    /// The two cores: the measuring side (or the router) and the other side.
    pub cores: (usize, usize),
    /// Payload bytes.
    pub size: usize,
    /// Measured round trips (throughput: messages) per case.
    pub count: u64,
    /// How each side waits.
    pub wait: Wait,
    /// Subscribers for `fanout`.
    pub subscribers: usize,
    /// Messages per second for `rate`.
    pub rate: u64,
    /// Where to write machine-readable results.
    pub json: Option<PathBuf>,
    /// A directory for HdrHistogram percentile-distribution files.
    pub hgrm: Option<PathBuf>,
    /// Where to draw latency-by-percentile curves (SVG).
    pub plot: Option<PathBuf>,
    /// Seconds measured per cell of `router-wait`, per clock loop of `tail`, and of churn in
    /// `soak`.
    pub seconds: f64,
    /// Agents churning in `soak`.
    pub agents: usize,
}

/// One throughput case's rate (routed, routed in batches, channel, bare ring), as reported.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// A stable machine name for the JSON (kebab-case, unique in a run).
    pub id: String,
    /// What was measured, for people.
    pub name: String,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Payload bytes per second.
    pub bytes_per_s: f64,
}

fn progress(name: &str, started: Instant) {
    eprintln!("  {name}: done in {:.1} s", started.elapsed().as_secs_f64());
}

/// Runs the cases `opts.case` names and reports them.
pub fn run(opts: &BenchOptions) -> anyhow::Result<()> {
    let result = run_cases(opts);
    bus_cases::remove_socket_dir();
    result
}

fn run_cases(opts: &BenchOptions) -> anyhow::Result<()> {
    if !CASES.contains(&opts.case.as_str()) {
        bail!(
            "unknown case {:?}: use one of {}",
            opts.case,
            CASES.join(", ")
        );
    }
    let tail = opts.case == "tail";
    if tail && (opts.json.is_some() || opts.hgrm.is_some() || opts.plot.is_some()) {
        bail!("tail prints its tables only: --json, --hgrm and --plot are for the other cases");
    }
    let sweep = opts.case == "sweep";
    if sweep && (opts.hgrm.is_some() || opts.plot.is_some()) {
        bail!("sweep prints its table and writes --json only: --hgrm and --plot are for the other cases");
    }
    let (ncores, cpu) = machine();
    if opts.case == "router-wait" || opts.case == "route-changes" {
        return control_cases(opts, ncores, &cpu);
    }
    if opts.case == "soak" {
        return soak_case(opts, ncores, &cpu);
    }
    if opts.case == "patterns" {
        return patterns_case(opts, ncores, &cpu);
    }
    if opts.case == "bridge" {
        return bridge_case(opts, ncores, &cpu);
    }
    let cfg = Config {
        iters: opts.count,
        warmup: (opts.count / 20).max(100),
        size: opts.size,
        cores: opts.cores,
        wait: opts.wait,
    };
    if sweep {
        return sweep_cases(opts, cfg, ncores, &cpu);
    }
    println!(
        "agentbus bench {}: {} B payloads, {} measured round trips per case (+{} warm-up), cores {} and {} of {ncores}, wait {}; machine: {cpu}",
        opts.case, cfg.size, cfg.iters, cfg.warmup, cfg.cores.0, cfg.cores.1, cfg.wait
    );
    if tail {
        return crate::tail::run(cfg, opts.seconds);
    }
    if ncores < 3 {
        println!("  routed, throughput, priority and rate use the loop-back form (one agent sends to itself through the router): {ncores} cores leave no third for a second agent");
        println!("  priority: the LOW lanes are kept full (an agent flooding LOW traffic), not flooded live");
    }
    let all = opts.case == "all";
    let want = |c: &str| all || opts.case == c;
    let mut rows: Vec<Row> = Vec::new();
    let mut tput: Vec<Throughput> = Vec::new();
    let step = |name: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        eprintln!("  {name}: measuring...");
        let t = Instant::now();
        f().with_context(|| format!("case {name}"))?;
        progress(name, t);
        Ok(())
    };
    // The floor is always measured: every row is a ratio to it.
    step("floor", &mut || {
        rows.push(cases::floor(
            cfg,
            "floor",
            &format!("floor {} B", cfg.size),
        )?);
        Ok(())
    })?;
    if want("floor") {
        step("floor 8 B signal", &mut || {
            rows.push(cases::floor(
                Config { size: 0, ..cfg },
                "floor-signal",
                "floor 8 B signal",
            )?);
            Ok(())
        })?;
    }
    if want("ring") {
        step("ring", &mut || {
            rows.push(cases::ring_pingpong(cfg, cfg.wait, "ring", "ring")?);
            Ok(())
        })?;
    }
    for kind in [
        ChannelPayload::Raw,
        ChannelPayload::Typed,
        ChannelPayload::Plain,
    ] {
        if want(kind.id()) {
            step(kind.id(), &mut || {
                rows.push(bus_cases::channel(cfg, kind)?);
                Ok(())
            })?;
        }
    }
    if want("routed") {
        step("routed", &mut || {
            rows.push(bus_cases::routed(cfg)?);
            Ok(())
        })?;
    }
    // What the per-message metrics cost: the same cases on an agentd started with
    // --no-metrics, in the same run (`all` and `metrics`).
    if all || opts.case == "metrics" {
        step("routed, metrics off", &mut || {
            rows.push(bus_cases::routed_without_metrics(cfg)?);
            Ok(())
        })?;
        if opts.case == "metrics" {
            step("routed", &mut || {
                rows.push(bus_cases::routed(cfg)?);
                Ok(())
            })?;
            step("channel", &mut || {
                rows.push(bus_cases::channel(cfg, ChannelPayload::Raw)?);
                Ok(())
            })?;
        }
        step("channel, metrics off", &mut || {
            rows.push(bus_cases::channel_without_metrics(cfg)?);
            Ok(())
        })?;
    }
    if want("priority") {
        step("priority", &mut || {
            let (idle, flood) = bus_cases::priority(cfg)?;
            rows.push(idle);
            rows.push(flood);
            Ok(())
        })?;
    }
    if want("rate") {
        step("rate", &mut || {
            rows.push(bus_cases::rate(cfg, opts.rate)?);
            Ok(())
        })?;
    }
    if want("fanout") {
        step("fanout", &mut || {
            rows.push(bus_cases::fanout(cfg, opts.subscribers, Fanout::Parked)?);
            Ok(())
        })?;
        step("fanout, acl+history", &mut || {
            rows.push(bus_cases::fanout(cfg, opts.subscribers, Fanout::Policed)?);
            Ok(())
        })?;
        // Spinning threads beyond the cores wait for the scheduler to switch (milliseconds per
        // message): fewer messages keep the case to seconds.
        let crowded = ncores < opts.subscribers + 2;
        let spin_cfg = if crowded {
            Config {
                iters: cfg.iters.min(SPIN_FANOUT_CROWDED),
                warmup: cfg.warmup.min(100),
                ..cfg
            }
        } else {
            cfg
        };
        if crowded {
            println!(
                "  fanout-spin: {} spinning subscribers, the router and the publisher share {ncores} cores, so they take turns on them (scheduler ticks, not the bus); {} messages",
                opts.subscribers, spin_cfg.iters
            );
        }
        step("fanout, spinning", &mut || {
            rows.push(bus_cases::fanout(
                spin_cfg,
                opts.subscribers,
                Fanout::Spinning,
            )?);
            Ok(())
        })?;
    }
    let mut blocked = None;
    if want("slow-subscriber") {
        step("slow-subscriber", &mut || {
            let (slow_rows, block) = crate::slow_subscriber::slow_subscriber(cfg)?;
            rows.extend(slow_rows);
            blocked = Some(block);
            Ok(())
        })?;
    }
    if want("uds") {
        step("unix socket", &mut || {
            rows.push(peers::uds(cfg)?);
            Ok(())
        })?;
    }
    if want("crossbeam") {
        step("crossbeam", &mut || {
            rows.push(peers::crossbeam(cfg)?);
            Ok(())
        })?;
    }
    if want("iceoryx2") {
        #[cfg(feature = "peers")]
        step("iceoryx2", &mut || {
            if cfg.size != crate::iceoryx2_peer::PAYLOAD {
                eprintln!(
                    "  iceoryx2 carries {} B payloads whatever --size says",
                    crate::iceoryx2_peer::PAYLOAD
                );
            }
            rows.push(crate::iceoryx2_peer::iceoryx2(cfg)?);
            Ok(())
        })?;
        #[cfg(not(feature = "peers"))]
        if !all {
            bail!("this build has no iceoryx2 peer: build with `--features peers`");
        } else {
            println!("  (iceoryx2: not in this build; `--features peers` adds it)");
        }
    }
    if want("throughput") {
        let count = opts.count.max(1000) * 4;
        step("throughput", &mut || {
            for batch in [false, true] {
                let (m, b) = bus_cases::throughput(cfg, count, batch)?;
                tput.push(Throughput {
                    id: if batch {
                        "throughput-routed-batched"
                    } else {
                        "throughput-routed"
                    }
                    .into(),
                    name: format!(
                        "routed, {}",
                        if batch {
                            "sender batches of 32"
                        } else {
                            "no batching"
                        }
                    ),
                    msgs_per_s: m,
                    bytes_per_s: b,
                });
            }
            let (m, b) = bus_cases::channel_throughput(cfg, count)?;
            tput.push(Throughput {
                id: "throughput-channel".into(),
                name: "channel (direct, one hop)".into(),
                msgs_per_s: m,
                bytes_per_s: b,
            });
            let (m, b) = cases::throughput(cfg, count)?;
            tput.push(Throughput {
                id: "throughput-ring".into(),
                name: "bare ring, batches of 32".into(),
                msgs_per_s: m,
                bytes_per_s: b,
            });
            Ok(())
        })?;
    }
    println!();
    let floor = &rows[0];
    print_table(&rows, floor);
    if !tput.is_empty() {
        println!("\none-way throughput ({} B payloads):", cfg.size);
        for t in &tput {
            println!(
                "  {:<32}{:>10.2} M msgs/s {:>9.1} MB/s",
                t.name,
                t.msgs_per_s / 1e6,
                t.bytes_per_s / 1e6
            );
        }
    }
    if let Some(b) = blocked {
        println!(
            "\nslow-sub rows: a healthy subscriber's one-way latency at {} msg/s, from each intended send time: alone, and beside one that never reads (+stalled) under drop-oldest and dead-letter-slow (dl-slow).\nUnder block, the one that never reads stopped the publisher after {} messages (refused: QueueFull), and the healthy subscriber had {} of them 200 ms later (head-of-line blocking).",
            crate::slow_subscriber::RATE,
            b.sent,
            b.received
        );
    }
    if let Some(path) = &opts.json {
        std::fs::write(path, json(&rows, &tput, ncores, &cpu))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    if let Some(dir) = &opts.hgrm {
        std::fs::create_dir_all(dir)?;
        for r in &rows {
            let file = dir.join(format!("{}.hgrm", slug(&r.name)));
            std::fs::write(&file, hgrm(&r.hist))
                .with_context(|| format!("writing {}", file.display()))?;
        }
        println!("wrote {} percentile files to {}", rows.len(), dir.display());
    }
    if let Some(path) = &opts.plot {
        crate::plot::draw(path, &rows)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `sweep`: the floor, `channel` and `routed` at each of [`SWEEP_SIZES`], each against the floor
/// of its own size.
fn sweep_cases(opts: &BenchOptions, cfg: Config, ncores: usize, cpu: &str) -> anyhow::Result<()> {
    println!(
        "agentbus bench sweep: floor, channel and routed (loop-back form) at {SWEEP_SIZES:?} B, {} measured round trips per case (+{} warm-up), cores {} and {} of {ncores}, wait {}; machine: {cpu}",
        cfg.iters, cfg.warmup, cfg.cores.0, cfg.cores.1, cfg.wait
    );
    // Each size's rows, the floor first.
    let mut sizes: Vec<(usize, Vec<Row>)> = Vec::new();
    for size in SWEEP_SIZES {
        let c = Config { size, ..cfg };
        let started = Instant::now();
        eprintln!("  sweep {size} B: measuring...");
        let floor = cases::floor(
            c,
            &format!("sweep-floor-{size}"),
            &format!("floor {size} B"),
        )
        .with_context(|| format!("case sweep floor {size} B"))?;
        let mut channel = bus_cases::channel(c, ChannelPayload::Raw)
            .with_context(|| format!("case sweep channel {size} B"))?;
        channel.id = format!("sweep-channel-{size}");
        channel.name = format!("channel {size} B");
        let mut routed =
            bus_cases::routed(c).with_context(|| format!("case sweep routed {size} B"))?;
        routed.id = format!("sweep-routed-{size}");
        routed.name = format!("routed {size} B");
        progress(&format!("sweep {size} B"), started);
        sizes.push((size, vec![floor, channel, routed]));
    }
    println!();
    println!(
        "{:>6} {:<8}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}",
        "bytes", "case", "p50", "p99", "p99.9", "p50/fl", "p99/fl", "p99.9/fl"
    );
    let q = |r: &Row, q: f64| r.hist.value_at_quantile(q);
    for (size, rows) in &sizes {
        let floor = &rows[0];
        for r in rows {
            let case = r.id.split('-').nth(1).unwrap_or("");
            println!(
                "{size:>6} {case:<8}{:>9}{:>9}{:>9}{:>8.2}x{:>8.2}x{:>9.2}x",
                q(r, 0.5),
                q(r, 0.99),
                q(r, 0.999),
                q(r, 0.5) as f64 / q(floor, 0.5).max(1) as f64,
                q(r, 0.99) as f64 / q(floor, 0.99).max(1) as f64,
                q(r, 0.999) as f64 / q(floor, 0.999).max(1) as f64
            );
        }
    }
    println!("(ns per round trip; each ratio is to the floor of the same size)");
    if let Some(path) = &opts.json {
        let mut cases = Vec::new();
        for (_, rows) in &sizes {
            for r in rows {
                cases.push(rtt_json(r, &rows[0]));
            }
        }
        std::fs::write(path, json_doc(&cases, ncores, cpu))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// The floor for the cases that report beside it without a size of their own: 64 B, 20,000
/// round trips.
fn floor_64(opts: &BenchOptions) -> anyhow::Result<Row> {
    let cfg = Config {
        iters: 20_000,
        warmup: 1_000,
        size: 64,
        cores: opts.cores,
        wait: opts.wait,
    };
    cases::floor(cfg, "floor", "floor 64 B")
}

/// `patterns`: a consensus round among 4 voters and a lease handover, beside the floor.
fn patterns_case(opts: &BenchOptions, ncores: usize, cpu: &str) -> anyhow::Result<()> {
    let rounds = opts.count.min(20_000);
    println!(
        "agentbus bench patterns: {rounds} consensus rounds among {} parked voters (all must answer), {rounds} 3-step workflows and {} lease handovers (release to grant), one embedded agentd (router on core {}); machine: {ncores} cores, {cpu}",
        crate::patterns::VOTERS,
        rounds.min(2000),
        opts.cores.0
    );
    let started = Instant::now();
    let mut rows = vec![floor_64(opts)?];
    rows.extend(crate::patterns::patterns(rounds, opts.cores.0)?);
    progress("patterns", started);
    println!();
    print_table(&rows, &rows[0]);
    Ok(())
}

/// `bridge`: a topic ping-pong on one bus beside the same across two buses through NATS.
fn bridge_case(opts: &BenchOptions, ncores: usize, cpu: &str) -> anyhow::Result<()> {
    let rounds = opts.count.min(20_000);
    println!(
        "agentbus bench bridge: {rounds} topic ping-pongs of {} B on one bus, then across two buses (agentd each) through a bridge each and nats-server on loopback; every agent parks; machine: {ncores} cores, {cpu}",
        opts.size
    );
    let started = Instant::now();
    let mut rows = vec![floor_64(opts)?];
    rows.extend(crate::bridge::bridge(rounds, opts.size)?);
    progress("bridge", started);
    println!();
    print_table(&rows, &rows[0]);
    Ok(())
}

/// `soak`: agentd's memory, descriptors and routed round trip before and after `opts.agents`
/// agents churn for `opts.seconds`, beside the floor.
fn soak_case(opts: &BenchOptions, ncores: usize, cpu: &str) -> anyhow::Result<()> {
    println!(
        "agentbus bench soak: {} agents, each re-attaching every 1-3 s while sending to a partner and publishing, for {} s; agentd in its own process (router on core {}); machine: {ncores} cores, {cpu}",
        opts.agents, opts.seconds, opts.cores.0
    );
    let started = Instant::now();
    let floor = floor_64(opts)?;
    let soak = crate::soak::soak(opts.agents, opts.seconds, opts.cores.0)?;
    progress("soak", started);
    let mut rows = vec![floor];
    rows.extend(soak.rows);
    println!();
    print_table(&rows, &rows[0]);
    println!(
        "\nagentd, every agent attached and idle:  RSS {} -> {} KiB ({:+} KiB), descriptors {} -> {} ({:+})",
        soak.start.0,
        soak.end.0,
        soak.end.0 as i64 - soak.start.0 as i64,
        soak.start.1,
        soak.end.1,
        soak.end.1 as i64 - soak.start.1 as i64
    );
    println!(
        "churn: {} messages sent ({:.0}/s), {} re-attaches, {} dead letters made ({} bytes held at the end, bounded to 1 MiB)",
        soak.messages,
        soak.messages as f64 / soak.seconds,
        soak.reattaches,
        soak.dead_letters.0,
        soak.dead_letters.1
    );
    Ok(())
}

/// `router-wait` and `route-changes`: their own tables (no floor), and JSON in the same shape.
fn control_cases(opts: &BenchOptions, ncores: usize, cpu: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let (table, cases) = if opts.case == "router-wait" {
        let cfg = Config {
            iters: 0,
            warmup: 0,
            size: opts.size.max(16),
            cores: opts.cores,
            wait: opts.wait,
        };
        println!(
            "agentbus bench router-wait: {} B messages, sender (child process) and receiver on core {}, router on core {}, both agents parking, {} s per cell; machine: {ncores} cores, {cpu}",
            cfg.size, cfg.cores.1, cfg.cores.0, opts.seconds
        );
        let pass = crate::router_wait::empty_pass_ns(cfg)?;
        let cells = crate::router_wait::router_wait(cfg, opts.seconds)?;
        let mut table = crate::router_wait::table(&cells);
        let _ = write!(
            table,
            "one empty router pass (2 agents, max_agents 64, busy-spinning): {pass:.0} ns; the old fixed spin of 256 passes: about {:.0} us",
            pass * 256.0 / 1000.0
        );
        (table, crate::router_wait::json_cases(&cells))
    } else {
        println!("agentbus bench route-changes: latency of one routing change by topics on the bus; machine: {ncores} cores, {cpu}");
        let steps = crate::control_churn::route_changes()?;
        let table = crate::control_churn::table(&steps);
        (table, crate::control_churn::json_cases(&steps))
    };
    eprintln!(
        "  {}: done in {:.1} s",
        opts.case,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("{table}");
    if let Some(path) = &opts.json {
        let text = format!(
            "{{\"machine\": {{\"cores\": {ncores}, \"cpu\": \"{}\"}}, \"cases\": [\n  {}\n]}}\n",
            escape(cpu),
            cases.join(",\n  ")
        );
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One round-trip row as a JSON case; the ratio is to `floor`'s p50.
fn rtt_json(r: &Row, floor: &Row) -> String {
    let floor = floor.hist.value_at_quantile(0.5).max(1) as f64;
    let h = &r.hist;
    format!(
        "{{\"id\": \"{}\", \"case\": \"{}\", \"unit\": \"ns\", \"kind\": \"rtt\", \"count\": {}, \"p50\": {}, \"p90\": {}, \"p99\": {}, \"p999\": {}, \"p9999\": {}, \"max\": {}, \"ratio_p50_to_floor\": {:.3}}}",
        escape(&r.id),
        escape(&r.name),
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max(),
        h.value_at_quantile(0.5) as f64 / floor
    )
}

fn json_doc(cases: &[String], cores: usize, cpu: &str) -> String {
    format!(
        "{{\"machine\": {{\"cores\": {cores}, \"cpu\": \"{}\"}}, \"cases\": [\n  {}\n]}}\n",
        escape(cpu),
        cases.join(",\n  ")
    )
}

/// The results as JSON, in the shape the issue gives.
pub fn json(rows: &[Row], tput: &[Throughput], cores: usize, cpu: &str) -> String {
    let mut cases = Vec::new();
    if let Some(floor) = rows.first() {
        for r in rows {
            cases.push(rtt_json(r, floor));
        }
    }
    for t in tput {
        cases.push(format!(
            "{{\"id\": \"{}\", \"case\": \"{}\", \"unit\": \"msgs\", \"kind\": \"throughput\", \"msgs_per_s\": {:.0}, \"bytes_per_s\": {:.0}}}",
            escape(&t.id),
            escape(&t.name),
            t.msgs_per_s,
            t.bytes_per_s
        ));
    }
    json_doc(&cases, cores, cpu)
}

/// A percentile distribution in HdrHistogram's text format (values in ns).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::from("       Value     Percentile TotalCount 1/(1-Percentile)\n\n");
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let inv = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            f64::INFINITY
        };
        let _ = writeln!(
            out,
            "{:12.3} {:14.12} {:10} {:14.2}",
            v.value_iterated_to() as f64,
            q,
            v.count_since_last_iteration(),
            inv
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n#[Max     = {:12.3}, Total count    = {:12}]",
        h.mean(),
        h.stdev(),
        h.max() as f64,
        h.len()
    );
    out
}
