//! `tail`: is the ~10 us tail of the channel and routed round trips ours or the machine's?
//!
//! (a) The machine's own interruptions: on both cores at once (one thread pinned to each), a
//! loop that only reads `CLOCK_MONOTONIC` for `seconds`, recording every gap over 1 us between
//! two consecutive reads; run before and after (b). (b) The round trips of `floor`, `ring`,
//! `channel` and `routed` (the harness's own cases) and the share of them over 1, 5 and 10 us.
//! (c) A model: a gap of length d on either core that starts during a round trip delays it by
//! about d (the measuring side stops; an echoing side answers late), and a spinning round-trip
//! loop is inside a round trip nearly all the time, so the machine alone puts a share of about
//! `r(> X - p50) * mean` of the round trips over X, where r is the rate of gaps on either core
//! (gaps overlapping on both cores counted once) longer than X - p50 and `mean` is the mean
//! round trip; context switches beyond the clock loops' own (another thread on a busy core)
//! are shown beside it. (d) When in `CLOCK_MONOTONIC`'s millisecond the slow events (over 5 us)
//! start, clock gaps and round trips alike: events of the machine's periodic ticks fall in the
//! same tenths. Around every clock loop and every timed loop of round trips the kernel's own
//! counts (interrupts per core, context switches, steal time) are read from `/proc`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use agentbus_ipc::clock::monotonic_ns;
use anyhow::Context;
use hdrhistogram::Histogram;

use crate::cases::{self, pin, Config};
use crate::report::{histogram, Row};

/// Gaps between two clock reads longer than this are recorded, ns.
pub const GAP_NS: u64 = 1_000;

/// The thresholds reported, ns.
const OVER: [u64; 4] = [1_000, 5_000, 10_000, 20_000];

/// Gap events kept per core (the histogram counts every gap); written once up front, so that
/// recording one never faults a page in.
const MAX_EVENTS: usize = 1 << 20;

/// What one core's clock loop saw.
#[derive(Debug)]
pub struct Gaps {
    /// The core the loop ran on: [`clock_loop`] pins its thread there first.
    pub core: usize,
    /// Clock reads made.
    pub reads: u64,
    /// Gaps over [`GAP_NS`], ns.
    pub hist: Histogram<u64>,
    /// Each such gap: (start, length) in `CLOCK_MONOTONIC` ns, up to `MAX_EVENTS`.
    pub events: Vec<(u64, u64)>,
}

/// One clock-loop phase: every core's gaps, over the same wall time.
#[derive(Debug)]
pub struct Phase {
    /// Wall seconds.
    pub seconds: f64,
    /// One entry per core.
    pub cores: Vec<Gaps>,
}

impl Phase {
    /// Gaps longer than `over` ns on any core, gaps that overlap merged: (start, end) each.
    pub fn merged(&self, over: u64) -> Vec<(u64, u64)> {
        let mut spans: Vec<(u64, u64)> = self
            .cores
            .iter()
            .flat_map(|g| g.events.iter())
            .filter(|e| e.1 > over)
            .map(|&(start, len)| (start, start + len))
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s < last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// Gaps longer than `over` ns on any core, gaps that overlap counted once: (count, ns).
    pub fn union_over(&self, over: u64) -> (u64, u64) {
        let m = self.merged(over);
        (m.len() as u64, m.iter().map(|(s, e)| e - s).sum())
    }
}

/// Reads the clock in a tight loop on `core` for `seconds`, recording the gaps over [`GAP_NS`].
pub fn clock_loop(core: usize, seconds: f64) -> anyhow::Result<Gaps> {
    pin(core)?;
    let mut hist = histogram();
    let mut events = vec![(u64::MAX, u64::MAX); MAX_EVENTS];
    let (mut kept, mut reads) = (0, 0u64);
    let mut last = monotonic_ns();
    let end = last + (seconds * 1e9) as u64;
    while last < end {
        let now = monotonic_ns();
        let gap = now.saturating_sub(last);
        if gap > GAP_NS {
            hist.saturating_record(gap);
            if kept < MAX_EVENTS {
                events[kept] = (last, gap);
                kept += 1;
            }
        }
        last = now;
        reads += 1;
    }
    events.truncate(kept);
    Ok(Gaps {
        core,
        reads,
        hist,
        events,
    })
}

/// Runs [`clock_loop`] on every core of `cores` at once.
pub fn clock_phase(cores: &[usize], seconds: f64) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let cores = std::thread::scope(|s| {
        let threads: Vec<_> = cores
            .iter()
            .map(|&c| s.spawn(move || clock_loop(c, seconds)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a clock loop panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok(Phase {
        seconds: started.elapsed().as_secs_f64(),
        cores,
    })
}

/// The kernel's counts at one moment: interrupts by source and CPU, context switches, and steal
/// time per CPU (USER_HZ ticks).
#[derive(Debug, Clone)]
pub struct Counters {
    at: Instant,
    irqs: HashMap<String, Vec<u64>>,
    ctxt: u64,
    steal: Vec<u64>,
}

impl Counters {
    /// Reads `/proc/interrupts` and `/proc/stat` (empty counts where they cannot be read).
    pub fn read() -> Self {
        let mut irqs = HashMap::new();
        let text = std::fs::read_to_string("/proc/interrupts").unwrap_or_default();
        let mut lines = text.lines();
        let ncpu = lines.next().map_or(0, |h| h.split_whitespace().count());
        for line in lines {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let counts: Vec<u64> = rest
                .split_whitespace()
                .take(ncpu)
                .map_while(|c| c.parse().ok())
                .collect();
            if counts.len() == ncpu {
                irqs.insert(name.trim().to_string(), counts);
            }
        }
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let field = |l: &str, i: usize| l.split_whitespace().nth(i).and_then(|v| v.parse().ok());
        let ctxt = stat
            .lines()
            .find(|l| l.starts_with("ctxt "))
            .and_then(|l| field(l, 1))
            .unwrap_or(0);
        let steal = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .map(|l| field(l, 8).unwrap_or(0))
            .collect();
        Counters {
            at: Instant::now(),
            irqs,
            ctxt,
            steal,
        }
    }

    /// Context switches per second (whole machine) from `self` to `later`.
    pub fn switches_per_s(&self, later: &Counters) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        later.ctxt.saturating_sub(self.ctxt) as f64 / secs
    }

    /// From `self` to `later` on `cores`, as one table line: seconds, interrupts per second per
    /// core with the three busiest sources, context switches per second, steal time (ms/s) per
    /// core.
    pub fn line(&self, later: &Counters, cores: &[usize]) -> String {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let mut out = format!("{secs:>6.2}");
        for &c in cores {
            let mut by: Vec<(f64, &str)> = later
                .irqs
                .iter()
                .filter_map(|(name, n)| {
                    let d = n.get(c)?.saturating_sub(*self.irqs.get(name)?.get(c)?);
                    (d > 0).then(|| (d as f64 / secs, name.as_str()))
                })
                .collect();
            by.sort_by(|a, b| b.0.total_cmp(&a.0));
            let total: f64 = by.iter().map(|b| b.0).sum();
            let top: Vec<String> = by
                .iter()
                .take(3)
                .map(|(r, n)| format!("{n} {r:.0}"))
                .collect();
            out += &format!("{:>9.0} ({:<26})", total, top.join(", "));
        }
        out += &format!("{:>9.0}", self.switches_per_s(later));
        for &c in cores {
            let d = match (self.steal.get(c), later.steal.get(c)) {
                (Some(a), Some(b)) => b.saturating_sub(*a),
                _ => 0,
            };
            // USER_HZ is 100 on Linux: one tick is 10 ms.
            out += &format!("{:>8.1}", d as f64 * 10.0 / secs);
        }
        out
    }
}

/// Round trips longer than this are slow: their starts are kept, ns.
pub const SLOW_NS: u64 = 5_000;

/// Slow round trips kept per timed loop.
const MAX_SLOW: usize = 1 << 16;

/// A stretch of time watched: the kernel's counts at its start, and the start of each slow
/// event in it (a round trip over [`SLOW_NS`], or a clock gap over it on either core).
#[derive(Debug)]
pub struct Window {
    from: Counters,
    starts: Vec<u64>,
}

/// Each watched stretch that has ended, with the counts at its end, while `tail` watches.
static WINDOWS: Mutex<Option<Vec<(Window, Counters)>>> = Mutex::new(None);

impl Window {
    /// Called by [`cases::measure`] before its timed loop: a window, if `tail` is watching.
    pub fn start() -> Option<Window> {
        WINDOWS.lock().ok()?.as_ref()?;
        Some(Window {
            from: Counters::read(),
            starts: Vec::with_capacity(MAX_SLOW),
        })
    }

    /// Notes a round trip that started at `t0` and took `ns` (no allocation).
    #[inline]
    pub fn round_trip(&mut self, t0: u64, ns: u64) {
        if ns > SLOW_NS && self.starts.len() < self.starts.capacity() {
            self.starts.push(t0);
        }
    }

    /// Called by [`cases::measure`] after its timed loop with what [`Window::start`] returned.
    pub fn end(window: Option<Window>) {
        if let (Some(window), Ok(mut w)) = (window, WINDOWS.lock()) {
            if let Some(w) = w.as_mut() {
                w.push((window, Counters::read()));
            }
        }
    }
}

/// How `starts` fall in CLOCK_MONOTONIC's millisecond: the share in each tenth, in percent.
fn in_the_millisecond(starts: &[u64]) -> [f64; 10] {
    let mut bins = [0u64; 10];
    for t in starts {
        bins[(t % 1_000_000 / 100_000) as usize] += 1;
    }
    bins.map(|n| n as f64 * 100.0 / starts.len().max(1) as f64)
}

fn per_s(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

/// Values in `h` over `ns`.
fn count_over(h: &Histogram<u64>, ns: u64) -> u64 {
    h.len() - h.count_between(0, ns)
}

/// Parts per million.
fn ppm(n: u64, of: u64) -> f64 {
    n as f64 * 1e6 / of.max(1) as f64
}

/// Runs the experiment with `cfg` for the round trips and `seconds` per clock loop, and prints
/// its tables.
pub fn run(cfg: Config, seconds: f64) -> anyhow::Result<()> {
    let cores = [cfg.cores.0, cfg.cores.1];
    let mut kernel: Vec<(String, Window, Counters)> = Vec::new();
    let mut phases = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    // The kernel's counts and slow events: around the clock loops, and around each timed loop
    // of round trips.
    let mut measured = |label: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| {
        eprintln!("  {label}: measuring...");
        *WINDOWS.lock().expect("not poisoned") = Some(Vec::new());
        let around = Window::start();
        let result = f();
        Window::end(around);
        let windows = WINDOWS.lock().expect("not poisoned").take();
        result?;
        // The innermost window: the timed loop's where there was one.
        let (window, to) = windows
            .and_then(|w| w.into_iter().next())
            .context("no window was watched")?;
        kernel.push((label.to_string(), window, to));
        anyhow::Ok(())
    };
    measured("clock loops, before", &mut || {
        phases.push(clock_phase(&cores, seconds)?);
        Ok(())
    })?;
    for id in ["floor", "ring", "channel", "routed"] {
        measured(id, &mut || {
            rows.push(match id {
                "floor" => cases::floor(cfg, id, &format!("floor {} B", cfg.size))?,
                "ring" => cases::ring_pingpong(cfg, cfg.wait, id, "ring")?,
                "channel" => crate::bus_cases::channel(cfg, crate::bus_cases::ChannelPayload::Raw)?,
                _ => crate::bus_cases::routed(cfg)?,
            });
            Ok(())
        })?;
    }
    measured("clock loops, after", &mut || {
        phases.push(clock_phase(&cores, seconds)?);
        Ok(())
    })?;

    println!("\n(a) the machine: gaps between consecutive clock reads (a loop that only reads CLOCK_MONOTONIC, on both cores at once)");
    println!(
        "{:<26}{:>7}{:>9}{:>10}{:>10}{:>10}{:>10}{:>9}{:>9}{:>9}{:>9}",
        "phase, core",
        "s",
        "read ns",
        ">1us/s",
        ">5us/s",
        ">10us/s",
        ">20us/s",
        "gap p50",
        "gap p99",
        "max us",
        "lost %"
    );
    for (p, when) in phases.iter().zip(["before", "after"]) {
        for g in &p.cores {
            print!(
                "{:<26}{:>7.1}{:>9.1}",
                format!("{when}, core {}", g.core),
                p.seconds,
                p.seconds * 1e9 / g.reads.max(1) as f64
            );
            for o in OVER {
                print!("{:>10.1}", per_s(count_over(&g.hist, o), p.seconds));
            }
            let lost: f64 = g.events.iter().map(|e| e.1 as f64).sum();
            println!(
                "{:>9.1}{:>9.1}{:>9.1}{:>8.3}%",
                g.hist.value_at_quantile(0.5) as f64 / 1e3,
                g.hist.value_at_quantile(0.99) as f64 / 1e3,
                g.hist.max() as f64 / 1e3,
                lost * 100.0 / (p.seconds * 1e9)
            );
        }
        print!(
            "{:<26}{:>7.1}{:>9}",
            format!("{when}, either core"),
            p.seconds,
            ""
        );
        for o in OVER {
            print!("{:>10.1}", per_s(p.union_over(o).0, p.seconds));
        }
        let max = p.cores.iter().map(|g| g.hist.max()).max().unwrap_or(0);
        println!(
            "{:>9}{:>9}{:>9.1}{:>8.3}%",
            "",
            "",
            max as f64 / 1e3,
            p.union_over(GAP_NS).1 as f64 * 100.0 / (p.seconds * 1e9)
        );
    }
    let both = |over: u64| {
        let (sum, n) = phases.iter().fold((0u64, 0u64), |(s, n), p| {
            let each: u64 = p.cores.iter().map(|g| count_over(&g.hist, over)).sum();
            (s + each, n + p.union_over(over).0)
        });
        100.0 * (sum.saturating_sub(n)) as f64 / n.max(1) as f64
    };
    println!(
        "  gaps on both cores at once (share of the either-core gaps): >1us {:.1}%, >5us {:.1}%, >10us {:.1}%",
        both(1_000),
        both(5_000),
        both(10_000)
    );

    println!(
        "\n(b) the round trips ({} B, {} measured each)",
        cfg.size, cfg.iters
    );
    println!(
        "{:<12}{:>8}{:>8}{:>9}{:>9}{:>9}{:>11}{:>11}{:>11}",
        "path", "p50", "mean", "p99.9", "p99.99", "max", "ppm >1us", "ppm >5us", "ppm >10us"
    );
    for r in &rows {
        let h = &r.hist;
        print!(
            "{:<12}{:>8}{:>8.0}{:>9}{:>9}{:>9}",
            r.id,
            h.value_at_quantile(0.5),
            h.mean(),
            h.value_at_quantile(0.999),
            h.value_at_quantile(0.9999),
            h.max()
        );
        for o in [1_000, 5_000, 10_000] {
            print!("{:>11.0}", ppm(count_over(h, o), h.len()));
        }
        println!();
    }

    let secs: f64 = phases.iter().map(|p| p.seconds).sum();
    let rate = |over: u64| per_s(phases.iter().map(|p| p.union_over(over).0).sum(), secs);
    // Context switches beyond the clock loops' own (which their gaps already hold), in pairs:
    // another thread comes onto one of the two busy cores and leaves again.
    let switches = |label: &str| {
        let rate = |l: &str| {
            let k: Vec<f64> = kernel
                .iter()
                .filter(|k| k.0.starts_with(l))
                .map(|k| k.1.from.switches_per_s(&k.2))
                .collect();
            k.iter().sum::<f64>() / k.len().max(1) as f64
        };
        ((rate(label) - rate("clock loops")) / 2.0).max(0.0)
    };
    println!("\n(c) the model: share over X the machine alone explains = r(gap > X - p50, either core) x mean round trip");
    println!("    extra preemptions/s: (context switches/s in the timed loop - in the clock loops) / 2; as ppm: if each delays one round trip");
    println!(
        "{:<12}{:>10}{:>13}{:>11}{:>11}{:>13}{:>11}{:>14}{:>8}",
        "path",
        "ppm >5us",
        "machine ppm",
        "explained",
        "ppm >10us",
        "machine ppm",
        "explained",
        "preemptions/s",
        "as ppm"
    );
    for r in &rows {
        let h = &r.hist;
        print!("{:<12}", r.id);
        for x in [5_000, 10_000] {
            let got = ppm(count_over(h, x), h.len());
            let over = x.saturating_sub(h.value_at_quantile(0.5)).max(GAP_NS);
            let model = rate(over) * h.mean() * 1e-9 * 1e6;
            let share = if got > 0.0 {
                format!("{:.0}%", model * 100.0 / got)
            } else {
                "-".into()
            };
            print!("{got:>10.0}{model:>13.0}{share:>11}");
        }
        let extra = switches(&r.id);
        println!("{extra:>14.0}{:>8.0}", extra * h.mean() * 1e-3);
    }

    // The clock loops' slow events: their merged gaps over SLOW_NS.
    for (k, p) in kernel
        .iter_mut()
        .filter(|k| k.0.starts_with("clock loops"))
        .zip(&phases)
    {
        k.1.starts = p.merged(SLOW_NS).iter().map(|m| m.0).collect();
    }
    println!("\n(d) when in the millisecond of CLOCK_MONOTONIC the slow events start (>{} us: clock gaps on either core, round trips), % in each tenth", SLOW_NS / 1000);
    print!("{:<20}{:>8}", "events", "n");
    for t in 0..10 {
        print!("{:>6}", format!(".{t}"));
    }
    println!("{:>12}", "busiest 3");
    for (label, w, _) in &kernel {
        let bins = in_the_millisecond(&w.starts);
        print!("{label:<20}{:>8}", w.starts.len());
        for b in bins {
            print!("{b:>6.1}");
        }
        let mut top = bins;
        top.sort_by(|a, b| b.total_cmp(a));
        println!("{:>11.1}%", top[..3].iter().sum::<f64>());
    }

    println!("\nthe kernel's counts in each clock loop and timed loop of round trips: interrupts/s on core {} and core {} (the busiest sources), context switches/s (whole machine), steal ms/s per core; s: the window", cores[0], cores[1]);
    for (label, w, to) in &kernel {
        println!("{label:<20}{}", w.from.line(to, &cores));
    }
    Ok(())
}
