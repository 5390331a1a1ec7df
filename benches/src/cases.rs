//! The cases: the floor, ring ping-pongs, one-way throughput. Each has a parent half (which
//! measures) and a child half (which echoes or streams), selected by name in the child.

use std::time::{Duration, Instant};

use agentbus_ipc::affinity::pin_current_thread;
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::mailbox::Mailbox;
use agentbus_ipc::ring::{Consumer, Producer, Ring, RingOptions};
use agentbus_ipc::segment::MemfdSegment;
use agentbus_ipc::wait::{BusySpin, Park, Wait};
use anyhow::{bail, Context};

use crate::bus_cases::ChannelPayload;
use crate::child::{receive_segment, ParentWatch, Peer};
use crate::report::{histogram, Row};

const PINGPONG_CAPACITY: usize = 1 << 16;
const STREAM_CAPACITY: usize = 1 << 22;

/// What every latency case shares.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Measured round trips.
    pub iters: u64,
    /// Round trips run first and not recorded.
    pub warmup: u64,
    /// Payload bytes.
    pub size: usize,
    /// The parent's core and the child's core.
    pub cores: (usize, usize),
    /// How each side waits.
    pub wait: Wait,
}

impl Config {
    /// Round trips in all, warm-up included.
    pub fn total(&self) -> u64 {
        self.iters + self.warmup
    }

    /// Arguments for a child: the case, the size, the count and its core.
    pub fn child_args(&self, case: &str) -> Vec<String> {
        vec![
            case.into(),
            self.size.to_string(),
            self.total().to_string(),
            self.cores.1.to_string(),
        ]
    }
}

/// Pins this thread to `core`.
pub fn pin(core: usize) -> anyhow::Result<()> {
    pin_current_thread(core).with_context(|| format!("pinning to core {core}"))
}

/// Polls between liveness checks of the other process: about a millisecond of spinning.
pub const POLLS_PER_CHECK: u32 = 1 << 20;

/// Times `cfg.total()` round trips of `round_trip` (given each one's number, from 1) and
/// records those after the warm-up. The clock is read twice per round trip, alike for every case.
/// While `tail` watches, the kernel's counts are read around the loop
/// and the slow round trips noted ([`crate::tail::Window`]).
pub fn measure(
    cfg: &Config,
    mut round_trip: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let mut hist = histogram();
    let mut window = crate::tail::Window::start();
    for i in 1..=cfg.total() {
        let t0 = monotonic_ns();
        round_trip(i)?;
        let t1 = monotonic_ns();
        if i > cfg.warmup {
            let ns = t1.saturating_sub(t0).max(1);
            hist.record(ns)?;
            if let Some(w) = &mut window {
                w.round_trip(t0, ns);
            }
        }
    }
    crate::tail::Window::end(window);
    Ok(hist)
}

/// Runs `f` on a scoped thread pinned to `core`, so the thread that starts child processes is
/// never pinned (children inherit their parent thread's affinity).
pub fn on_core<T: Send>(
    core: usize,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(core)?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the measuring thread panicked"))?
    })
}

/// The floor: the payload carried in two bare mailboxes, one each way; the row is `id`, `name`.
pub fn floor(cfg: Config, id: &str, name: &str) -> anyhow::Result<Row> {
    let slot = Mailbox::size_for(cfg.size);
    let segment = MemfdSegment::create("agentbus-bench-floor", 2 * slot)?;
    segment.region().mapping().prefault();
    let mut peer = Peer::spawn(&cfg.child_args("floor"), &segment)?;
    let ping = Mailbox::new(segment.region().sub(0, slot).context("layout")?, cfg.size)
        .context("layout")?;
    let pong = Mailbox::new(
        segment.region().sub(slot, slot).context("layout")?,
        cfg.size,
    )
    .context("layout")?;
    let payload = vec![0xA5u8; cfg.size];
    let mut back = vec![0u8; cfg.size];
    let hist = on_core(cfg.cores.0, || {
        measure(&cfg, |i| {
            ping.send(i, &payload);
            while !pong.receive(i, &mut back, POLLS_PER_CHECK as u64) {
                peer.check_alive()?;
            }
            Ok(())
        })
    })?;
    peer.finish()?;
    Ok(Row {
        id: id.into(),
        name: name.into(),
        hist,
    })
}

fn two_rings(parking: bool) -> anyhow::Result<MemfdSegment> {
    let size = Ring::size_for(PINGPONG_CAPACITY);
    let segment = MemfdSegment::create("agentbus-bench-rings", 2 * size)?;
    for i in 0..2 {
        let region = segment.region().sub(i * size, size).context("layout")?;
        Ring::create(region, RingOptions::new(PINGPONG_CAPACITY).parking(parking))?;
    }
    segment.region().mapping().prefault();
    Ok(segment)
}

fn ring_at(segment: &MemfdSegment, i: usize) -> anyhow::Result<Ring> {
    let size = Ring::size_for(PINGPONG_CAPACITY);
    Ok(Ring::attach(
        segment.region().sub(i * size, size).context("layout")?,
    )?)
}

fn send(tx: &mut Producer, payload: &[u8]) -> anyhow::Result<()> {
    let mut claim = tx.try_claim(payload.len())?;
    claim.payload().copy_from_slice(payload);
    claim.commit(payload.len());
    Ok(())
}

/// Receives one frame into `out`. Busy-spins by polling `peek` (checking `alive` every
/// [`POLLS_PER_CHECK`] polls, so no clock is read per message), or parks with `wait`.
fn receive(
    rx: &mut Consumer,
    wait: &Wait,
    out: &mut [u8],
    alive: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut polls = 0u32;
    loop {
        if let Some(payload) = rx.peek()? {
            out.copy_from_slice(payload);
            break;
        }
        match wait {
            Wait::BusySpin(_) => {
                std::hint::spin_loop();
                polls = polls.wrapping_add(1);
                if polls % POLLS_PER_CHECK == 0 {
                    alive()?;
                }
            }
            _ => match rx.wait(wait, Some(Instant::now() + Duration::from_millis(100))) {
                Ok(()) => {}
                Err(agentbus_ipc::wait::WaitError::TimedOut) => alive()?,
                Err(e) => return Err(e.into()),
            },
        }
    }
    rx.pop();
    rx.release();
    Ok(())
}

/// Ping-pong over two frame rings with `wait` on both sides; the row is `id`, `name`.
pub fn ring_pingpong(cfg: Config, wait: Wait, id: &str, name: &str) -> anyhow::Result<Row> {
    let parking = matches!(wait, Wait::Park(_));
    let segment = two_rings(parking)?;
    let case = if parking { "ring-park" } else { "ring-spin" };
    let mut peer = Peer::spawn(&cfg.child_args(case), &segment)?;
    let mut tx = ring_at(&segment, 0)?.into_producer();
    let mut rx = ring_at(&segment, 1)?.into_consumer();
    let payload = vec![0xA5u8; cfg.size];
    let mut back = vec![0u8; cfg.size];
    let hist = on_core(cfg.cores.0, || {
        let mut alive = || peer.check_alive();
        measure(&cfg, |_| {
            send(&mut tx, &payload)?;
            receive(&mut rx, &wait, &mut back, &mut alive)?;
            Ok(())
        })
    })?;
    peer.finish()?;
    Ok(Row {
        id: id.into(),
        name: name.into(),
        hist,
    })
}

/// One-way throughput: the child streams `frames` frames of `size` bytes in batches of 32; the
/// parent reads them in batches. Returns (frames per second, bytes per second).
pub fn throughput(cfg: Config, frames: u64) -> anyhow::Result<(f64, f64)> {
    let size = Ring::size_for(STREAM_CAPACITY);
    let segment = MemfdSegment::create("agentbus-bench-stream", size)?;
    Ring::create(
        segment.region().sub(0, size).context("layout")?,
        RingOptions::new(STREAM_CAPACITY).parking(false),
    )?;
    segment.region().mapping().prefault();
    let child_cfg = Config {
        iters: frames,
        warmup: 0,
        ..cfg
    };
    let mut peer = Peer::spawn(&child_cfg.child_args("stream"), &segment)?;
    let mut rx = Ring::attach(segment.region())?.into_consumer();
    let (got, check, secs) = on_core(cfg.cores.0, || {
        let mut got = 0u64;
        let mut check = 0u64;
        let mut start = None;
        let mut idle = 0u32;
        while got < frames {
            let n = rx.read_batch(256, |p| {
                // Touch both ends of the payload, as a reader of the message would.
                check = check.wrapping_add(p[0] as u64 + p[p.len() - 1] as u64);
            })? as u64;
            if n == 0 {
                std::hint::spin_loop();
                idle = idle.wrapping_add(1);
                if idle % POLLS_PER_CHECK == 0 {
                    peer.check_alive()?;
                }
                continue;
            }
            start.get_or_insert_with(Instant::now);
            got += n;
        }
        let secs = start.map_or(f64::MIN_POSITIVE, |s| s.elapsed().as_secs_f64());
        Ok((got, check, secs))
    })?;
    peer.finish()?;
    if check == 0 {
        bail!("throughput: payloads arrived empty");
    }
    Ok((got as f64 / secs, (got * cfg.size as u64) as f64 / secs))
}

/// The child's half of every case; `args` are what [`Config::child_args`] produced after the
/// rendezvous path.
pub fn run_child(path: &str, args: &[String]) -> anyhow::Result<()> {
    let [case, size, total, core, ..] = args else {
        bail!("child: expected case, size, count and core, got {args:?}");
    };
    let size: usize = size.parse()?;
    let total: u64 = total.parse()?;
    pin(core.parse()?)?;
    if matches!(
        case.as_str(),
        "channel"
            | "typed"
            | "plain"
            | "channel-sink"
            | "uds"
            | "iceoryx2"
            | crate::router_wait::SENDER_CASE
            | crate::soak::AGENTD_CASE
    ) {
        return match case.as_str() {
            crate::soak::AGENTD_CASE => crate::soak::agentd_child(&args[4..]),
            crate::router_wait::SENDER_CASE => {
                crate::router_wait::sender_child(&args[4..], size, total)
            }
            "channel" => {
                crate::bus_cases::channel_child(&args[4..], size, total, ChannelPayload::Raw)
            }
            "typed" => {
                crate::bus_cases::channel_child(&args[4..], size, total, ChannelPayload::Typed)
            }
            "plain" => {
                crate::bus_cases::channel_child(&args[4..], size, total, ChannelPayload::Plain)
            }
            "channel-sink" => crate::bus_cases::channel_sink_child(&args[4..], size, total),
            #[cfg(feature = "peers")]
            "iceoryx2" => crate::iceoryx2_peer::iceoryx2_child(&args[4..]),
            #[cfg(not(feature = "peers"))]
            "iceoryx2" => bail!("this build has no iceoryx2: build with --features peers"),
            _ => crate::peers::uds_child(path, size, total),
        };
    }
    let segment = receive_segment(path)?;
    let mut parent = ParentWatch::new();
    let mut buf = vec![0u8; size];
    match case.as_str() {
        "floor" => {
            let slot = Mailbox::size_for(size);
            let ping = Mailbox::new(segment.region().sub(0, slot).context("layout")?, size)
                .context("layout")?;
            let pong = Mailbox::new(segment.region().sub(slot, slot).context("layout")?, size)
                .context("layout")?;
            for i in 1..=total {
                while !ping.receive(i, &mut buf, POLLS_PER_CHECK as u64) {
                    parent.check_alive()?;
                }
                pong.send(i, &buf);
            }
        }
        "ring-spin" | "ring-park" => {
            let wait = if case == "ring-park" {
                Wait::Park(Park::default())
            } else {
                Wait::BusySpin(BusySpin)
            };
            let mut rx = ring_at(&segment, 0)?.into_consumer();
            let mut tx = ring_at(&segment, 1)?.into_producer();
            let mut alive = || parent.check_alive();
            for _ in 0..total {
                receive(&mut rx, &wait, &mut buf, &mut alive)?;
                send(&mut tx, &buf)?;
            }
        }
        "stream" => {
            let mut tx = Ring::attach(segment.region())?.into_producer();
            let payload = vec![0x5Au8; size];
            let mut sent = 0;
            let mut full = 0u32;
            while sent < total {
                tx.begin_batch();
                let mut n = 0;
                while n < 32.min(total - sent) {
                    match tx.try_claim(size) {
                        Ok(mut claim) => {
                            claim.payload().copy_from_slice(&payload);
                            claim.commit(size);
                            n += 1;
                        }
                        Err(agentbus_ipc::ring::ClaimError::Full { .. }) => {
                            // Publish what we have so the reader can make room.
                            tx.publish();
                            tx.begin_batch();
                            std::hint::spin_loop();
                            full = full.wrapping_add(1);
                            if full % POLLS_PER_CHECK == 0 {
                                parent.check_alive()?;
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                sent += n;
                tx.publish();
            }
        }
        other => bail!("child: unknown case {other:?}"),
    }
    Ok(())
}
