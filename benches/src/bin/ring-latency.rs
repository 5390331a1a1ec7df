//! Round-trip latency of the frame ring between two pinned processes, beside the floor, and
//! one-way throughput.
//!
//! `cargo run --release -p agentbus-benches --bin ring-latency -- [--iters N] [--size BYTES]
//! [--cores A,B]`

use agentbus_benches::cases::{self, Config};
use agentbus_benches::child::CHILD_FLAG;
use agentbus_benches::report::{machine, print_table};
use agentbus_ipc::wait::{BusySpin, Park, Wait};
use anyhow::{bail, Context};

fn parse() -> anyhow::Result<Config> {
    let mut cfg = Config {
        iters: 1_000_000,
        warmup: 50_000,
        size: 64,
        cores: (0, 1),
        wait: Wait::BusySpin(BusySpin),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--iters" => cfg.iters = value()?.parse().context("--iters takes a count")?,
            "--size" => cfg.size = value()?.parse().context("--size takes bytes")?,
            "--cores" => {
                let v = value()?;
                let (a, b) = v.split_once(',').context("--cores takes A,B")?;
                cfg.cores = (a.parse()?, b.parse()?);
            }
            "-h" | "--help" => {
                println!("ring-latency [--iters N] [--size BYTES] [--cores A,B]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}: try --help"),
        }
    }
    cfg.warmup = (cfg.iters / 20).max(1_000);
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(CHILD_FLAG) {
        let path = argv.get(2).context("child: rendezvous path")?;
        return cases::run_child(path, &argv[3..]);
    }
    let cfg = parse()?;
    let (ncores, cpu) = machine();
    println!(
        "ring-latency: {} round trips (+{} warm-up) of {} B between cores {} and {}; machine: {ncores} cores, {cpu}",
        cfg.iters, cfg.warmup, cfg.size, cfg.cores.0, cfg.cores.1
    );
    let bare = cases::floor(
        Config { size: 0, ..cfg },
        "floor-signal",
        "floor 8 B signal",
    )?;
    let floor = cases::floor(cfg, "floor", &format!("floor {} B", cfg.size))?;
    let spin = cases::ring_pingpong(
        cfg,
        Wait::BusySpin(BusySpin),
        "ring-spin",
        &format!("ring {} B spin", cfg.size),
    )?;
    let park_cfg = Config {
        iters: (cfg.iters / 10).max(1_000),
        warmup: (cfg.warmup / 10).max(100),
        ..cfg
    };
    let park = cases::ring_pingpong(
        park_cfg,
        Wait::Park(Park::default()),
        "ring-park",
        &format!("ring {} B park", cfg.size),
    )?;
    println!();
    let rows = [bare, floor, spin, park];
    print_table(&rows, &rows[1]);
    println!();
    println!("one-way throughput, batches of 32 frames, busy-spin:");
    for size in [64usize, 4096] {
        let frames = if size <= 64 { 20_000_000 } else { 2_000_000 };
        let (fps, bps) = cases::throughput(Config { size, ..cfg }, frames)?;
        println!(
            "  {size:>5} B frames: {:>7.2} M frames/s  {:>6.2} GB/s",
            fps / 1e6,
            bps / 1e9
        );
    }
    Ok(())
}
