//! `router-wait`: what the router's idle wait costs in CPU and in latency at low, evenly paced
//! rates.
//!
//! For each `router_spin` of [`SPINS`] (and a busy-spinning router, `--wait spin`, for
//! comparison) and each rate of [`RATES`], an embedded agentd (router pinned to the first core,
//! parking wait) carries 64-byte raw messages from a sender in a child process to a receiver
//! thread in this process (both on the second core, both parking). The sender paces its sends
//! by absolute deadlines (`clock_nanosleep`, timer slack 1 ns) and stamps each payload with
//! `CLOCK_MONOTONIC` just before sending; the receiver records one-way latency (arrival - stamp).
//! The router thread's CPU time over the measured window comes from
//! `/proc/self/task/<tid>/schedstat` (nanoseconds on CPU).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agentbus::{CommunicationError, Message, MessageType};
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::wait::{BusySpin, Park, Wait};
use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use nix::sys::time::TimeSpec;
use nix::time::{clock_nanosleep, ClockId, ClockNanosleepFlags};

use crate::bus_cases::bus_tuned;
use crate::cases::{pin, Config};
use crate::child::{ParentWatch, Peer};
use crate::report::histogram;

/// The `router_spin` settings measured (with the parking wait).
pub const SPINS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_micros(5),
    Duration::from_micros(20),
    Duration::from_micros(50),
    Duration::from_micros(200),
    Duration::from_millis(1),
];

/// The send rates measured, messages per second.
pub const RATES: [u64; 4] = [1000, 2000, 5000, 20000];

/// The child case name of the sender.
pub const SENDER_CASE: &str = "router-wait-sender";

const RECEIVER: &str = "rw-rx";
const SENDER: &str = "rw-tx";

/// One measured cell: a router wait at one rate.
#[derive(Debug)]
pub struct Cell {
    /// The router's spin before parking; `None`: a busy-spinning router (`--wait spin`).
    pub spin: Option<Duration>,
    /// Messages per second sent.
    pub rate: u64,
    /// The router thread's CPU time over the measured window, in percent of one core.
    pub router_cpu_pct: f64,
    /// One-way latencies in nanoseconds.
    pub hist: Histogram<u64>,
}

impl Cell {
    /// The spin column's text: `busy` for a busy-spinning router.
    pub fn spin_label(&self) -> String {
        match self.spin {
            None => "busy".into(),
            Some(d) if d >= Duration::from_millis(1) => format!("{} ms", d.as_millis()),
            Some(d) => format!("{} us", d.as_micros()),
        }
    }
}

/// The id of this process's thread named `agentd-router` (there must be exactly one). A new
/// thread names itself once it runs, and an ended one lingers a moment: this retries for 1 s.
pub fn router_tid() -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task").context("listing /proc/self/task")? {
            let entry = entry?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == "agentd-router" {
                found.push(entry.file_name().to_string_lossy().parse::<u32>()?);
            }
        }
        match found[..] {
            [tid] => return Ok(tid),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => bail!("expected one agentd-router thread, found {}", found.len()),
        }
    }
}

/// Nanoseconds thread `tid` of this process has spent on a CPU (schedstat's first field).
pub fn cpu_ns(tid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/self/task/{tid}/schedstat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .with_context(|| format!("{path}: no CPU time in {text:?}"))
}

/// Measures every cell, `seconds` each (plus a tenth of a second of warm-up).
pub fn router_wait(cfg: Config, seconds: f64) -> anyhow::Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for spin in SPINS.iter().copied().map(Some).chain([None]) {
        for rate in RATES {
            let t = Instant::now();
            let c = cell(cfg, spin, rate, seconds)?;
            eprintln!(
                "  router-wait spin {} at {rate}/s: {:.1} s",
                c.spin_label(),
                t.elapsed().as_secs_f64()
            );
            cells.push(c);
        }
    }
    Ok(cells)
}

/// One cell: a fresh daemon with `spin` (`None`: busy-spinning router), `rate` msg/s.
fn cell(cfg: Config, spin: Option<Duration>, rate: u64, seconds: f64) -> anyhow::Result<Cell> {
    let wait = spin.map_or(Wait::BusySpin(BusySpin), |_| Wait::Park(Park::default()));
    let b = bus_tuned("router-wait", Some(cfg.cores.0), wait, true, |c| {
        c.router_spin = spin.unwrap_or_default();
    })?;
    let tid = router_tid()?;
    let warmup = (rate / 10).max(50);
    let total = warmup + ((rate as f64 * seconds) as u64).max(10);
    let mut rx = b.attach(RECEIVER, Wait::Park(Park::default()))?;
    let args = [
        SENDER_CASE.to_string(),
        cfg.size.max(16).to_string(),
        total.to_string(),
        cfg.cores.1.to_string(),
        b.name.clone(),
        b.dir.display().to_string(),
        rate.to_string(),
    ];
    let sender_done = AtomicBool::new(false);
    let (hist, window) = std::thread::scope(|s| -> anyhow::Result<_> {
        let done = &sender_done;
        let receiver = s.spawn(move || -> anyhow::Result<_> {
            pin(cfg.cores.1)?;
            let mut hist = histogram();
            let mut first = None;
            loop {
                let Some(d) = rx.recv_timeout(Duration::from_millis(50))? else {
                    if done.load(Ordering::Acquire) {
                        bail!("router-wait: the sender ended, its last message did not arrive");
                    }
                    continue;
                };
                let now = monotonic_ns();
                let (stamp, seq) = stamp_and_seq(d.raw())?;
                drop(d);
                if seq < warmup {
                    continue;
                }
                hist.record(now.saturating_sub(stamp).max(1))?;
                if seq == warmup {
                    first = Some((now, cpu_ns(tid)?));
                }
                if seq + 1 == total {
                    let (t1, c1) = (monotonic_ns(), cpu_ns(tid)?);
                    let (t0, c0) =
                        first.context("router-wait: the first measured message was lost")?;
                    if hist.len() != total - warmup {
                        bail!(
                            "router-wait: {} of {} messages arrived",
                            hist.len(),
                            total - warmup
                        );
                    }
                    return Ok((hist, (t1 - t0, c1.saturating_sub(c0))));
                }
            }
        });
        let sender = Peer::spawn_plain(&args).and_then(Peer::finish);
        sender_done.store(true, Ordering::Release);
        let got = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the receiver panicked"))?;
        sender?;
        got
    })?;
    drop(b.daemon);
    let _ = std::fs::remove_dir(&b.dir);
    Ok(Cell {
        spin,
        rate,
        router_cpu_pct: window.1 as f64 * 100.0 / window.0.max(1) as f64,
        hist,
    })
}

/// The send stamp and sequence number in a payload's first 16 bytes.
fn stamp_and_seq(raw: Option<&[u8]>) -> anyhow::Result<(u64, u64)> {
    let Some(b) = raw else {
        bail!("router-wait: a message without a raw payload");
    };
    let word = |i: usize| b.get(i * 8..i * 8 + 8).and_then(|w| w.try_into().ok());
    match (word(0), word(1)) {
        (Some(s), Some(q)) => Ok((u64::from_le_bytes(s), u64::from_le_bytes(q))),
        _ => bail!("router-wait: a payload of {} bytes, under 16", b.len()),
    }
}

/// The child's half: attach as the sender and send `total` messages of `size` bytes to the
/// receiver at `rate` a second; `args` are the bus, its socket directory and the rate.
pub fn sender_child(args: &[String], size: usize, total: u64) -> anyhow::Result<()> {
    let [bus, dir, rate, ..] = args else {
        bail!("router-wait sender: expected bus, socket dir and rate, got {args:?}");
    };
    let interval = 1_000_000_000 / rate.parse::<u64>()?.max(1);
    // Wake at the deadline, not up to 50 us after it (the default timer slack).
    nix::sys::prctl::set_timerslack(1).context("setting the timer slack")?;
    let mut me = agentbus::client::Agent::attach(
        agentbus::client::AttachOptions::new(bus, SENDER, "bench")
            .socket_dir(dir)
            .wait(Wait::Park(Park::default())),
    )?;
    let receiver = me.peer(RECEIVER)?;
    let mut parent = ParentWatch::new();
    let start = monotonic_ns() + 1_000_000;
    for seq in 0..total {
        let deadline = start + seq * interval;
        let at = TimeSpec::new(
            (deadline / 1_000_000_000) as _,
            (deadline % 1_000_000_000) as _,
        );
        while clock_nanosleep(
            ClockId::CLOCK_MONOTONIC,
            ClockNanosleepFlags::TIMER_ABSTIME,
            &at,
        )
        .is_err()
        {}
        let mut payload = vec![0u8; size];
        payload[8..16].copy_from_slice(&seq.to_le_bytes());
        let stamp = monotonic_ns();
        payload[..8].copy_from_slice(&stamp.to_le_bytes());
        let msg = Message::raw(me.identity(), MessageType::Notification, payload);
        match me.send(&receiver, &msg) {
            Ok(_) => {}
            Err(CommunicationError::QueueFull { .. }) => bail!("router-wait: the lane filled up"),
            Err(e) => return Err(e.into()),
        }
        if seq % 1024 == 0 {
            parent.check_alive()?;
        }
    }
    Ok(())
}

/// Nanoseconds one empty router pass takes with two agents attached (a busy-spinning router
/// counted over 300 ms): what the old fixed spin of 256 empty passes lasted is 256 of these.
pub fn empty_pass_ns(cfg: Config) -> anyhow::Result<f64> {
    let b = bus_tuned(
        "router-pass",
        Some(cfg.cores.0),
        Wait::BusySpin(BusySpin),
        true,
        |_| {},
    )?;
    let a = b.attach(RECEIVER, Wait::Park(Park::default()))?;
    let _tx = b.attach(SENDER, Wait::Park(Park::default()))?;
    std::thread::sleep(Duration::from_millis(50));
    let (p0, t0) = (a.stats()?.passes, Instant::now());
    std::thread::sleep(Duration::from_millis(300));
    let (p1, secs) = (a.stats()?.passes, t0.elapsed().as_secs_f64());
    drop((a, _tx));
    drop(b.daemon);
    let _ = std::fs::remove_dir(&b.dir);
    Ok(secs * 1e9 / (p1.saturating_sub(p0)).max(1) as f64)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The cells as a text table: spin, rate, router CPU and one-way latency percentiles (us).
pub fn table(cells: &[Cell]) -> String {
    let mut out = format!(
        "{:>8}{:>9}{:>12}{:>10}{:>10}{:>10}{:>10}\n",
        "spin", "rate/s", "router CPU", "p50 us", "p99 us", "p99.9 us", "max us"
    );
    for c in cells {
        let h = &c.hist;
        let _ = writeln!(
            out,
            "{:>8}{:>9}{:>11.1}%{:>10.1}{:>10.1}{:>10.1}{:>10.1}",
            c.spin_label(),
            c.rate,
            c.router_cpu_pct,
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max())
        );
    }
    out
}

/// The cells as JSON entries for the harness's `cases` list.
pub fn json_cases(cells: &[Cell]) -> Vec<String> {
    cells
        .iter()
        .map(|c| {
            let h = &c.hist;
            format!(
                "{{\"id\": \"router-wait-{}-{}\", \"case\": \"router-wait spin {} at {}/s\", \"unit\": \"ns\", \"kind\": \"one-way\", \"router_spin_ns\": {}, \"rate\": {}, \"router_cpu_pct\": {:.2}, \"count\": {}, \"p50\": {}, \"p99\": {}, \"p999\": {}, \"max\": {}}}",
                c.spin_label().replace(' ', ""),
                c.rate,
                c.spin_label(),
                c.rate,
                c.spin.map_or("null".into(), |d| d.as_nanos().to_string()),
                c.rate,
                c.router_cpu_pct,
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_thread_is_found_and_its_cpu_time_read() {
        let b = bus_tuned("rw-test", None, Wait::Park(Park::default()), true, |_| {}).unwrap();
        let tid = router_tid().unwrap();
        let before = cpu_ns(tid).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(cpu_ns(tid).unwrap() >= before);
        drop(b.daemon);
        let _ = std::fs::remove_dir(&b.dir);
        assert!(
            router_tid().is_err(),
            "the router thread ended with its daemon"
        );
    }
}
