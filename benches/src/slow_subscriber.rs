//! `slow-subscriber`: what one subscriber that stops reading costs another of the same topic,
//! per back-pressure policy.
//!
//! A publisher sends at a fixed rate ([`RATE`]) to a topic with a healthy subscriber (a thread
//! that parks between messages) and, beside it, one that never reads. The healthy subscriber's
//! one-way latency is measured from each message's intended send time (so a stalled publisher
//! shows in it instead of hiding: coordinated omission corrected): alone, then beside the stalled
//! one under `drop-oldest` and under `dead-letter-slow`. Under `block` the stalled subscriber's
//! lane fills, then the publisher's, and nothing more is sent: that case reports how many
//! messages went before the publisher was refused and how many the healthy one had by then.

use std::time::{Duration, Instant};

use agentbus::client::Raw;
use agentbus::control::{BackPressure, TopicConfig};
use agentbus::CommunicationError;
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::wait::{Park, Wait};
use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::bus_cases::bus_tuned;
use crate::cases::{on_core, Config};
use crate::report::{histogram, Row};

/// Messages a second the publisher sends (the rate of the feed in issue 13's measurement).
pub const RATE: u64 = 5_000;
/// The most messages one policy is measured over (at [`RATE`], 2 s).
pub const MAX_MESSAGES: u64 = 10_000;
/// Bytes per lane: the stalled subscriber fills its lane in a few hundred messages.
const LANE: usize = 1 << 16;

/// What the `block` case saw.
#[derive(Debug, Clone, Copy)]
pub struct Blocked {
    /// Messages the publisher sent before it was refused (`QueueFull`).
    pub sent: u64,
    /// Of those, messages the healthy subscriber had received 200 ms later.
    pub received: u64,
}

/// The healthy subscriber's latency alone and beside a stalled one under `drop-oldest` and
/// `dead-letter-slow`; and what `block` did.
pub fn slow_subscriber(cfg: Config) -> anyhow::Result<(Vec<Row>, Blocked)> {
    let warmup = cfg.warmup.min(MAX_MESSAGES / 10);
    let n = cfg.iters.min(MAX_MESSAGES) + warmup;
    let mut rows = Vec::new();
    for (id, name, policy, stalled) in [
        (
            "slow-subscriber-alone",
            "alone",
            BackPressure::DropOldest,
            false,
        ),
        (
            "slow-subscriber-drop-oldest",
            "+stalled, drop-oldest",
            BackPressure::DropOldest,
            true,
        ),
        (
            "slow-subscriber-dead-letter-slow",
            "+stalled, dl-slow",
            BackPressure::DeadLetterSlow,
            true,
        ),
    ] {
        let hist =
            healthy_latency(cfg, n, warmup, policy, stalled).with_context(|| name.to_string())?;
        rows.push(Row {
            id: id.into(),
            name: format!("slow-sub {name}"),
            hist,
        });
    }
    Ok((rows, blocked(cfg)?))
}

/// One publisher at [`RATE`] for `n` messages on a topic of `policy`, the healthy subscriber's
/// one-way latency from each intended send time (the first `warmup` not recorded); with a
/// subscriber that never reads if `stalled`.
fn healthy_latency(
    cfg: Config,
    n: u64,
    warmup: u64,
    policy: BackPressure,
    stalled: bool,
) -> anyhow::Result<Histogram<u64>> {
    let b = bus_tuned("slow-sub", Some(cfg.cores.0), cfg.wait, true, |c| {
        c.lane_capacity = LANE;
    })?;
    let park = Wait::Park(Park::default());
    let mut healthy = b.attach("healthy", park)?;
    healthy.subscribe("bench.slow")?.detach();
    let mut stalled_agent = None;
    if stalled {
        let mut agent = b.attach("stalled", park)?;
        agent.subscribe("bench.slow")?.detach();
        stalled_agent = Some(agent); // attached, subscribed, never read
    }
    let reader = std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        let mut hist = histogram();
        let mut got = 0u64;
        while got < n {
            let Some(d) = healthy.recv_timeout(Duration::from_secs(5))? else {
                bail!("the healthy subscriber got nothing for 5 s after {got} of {n} messages");
            };
            let now = monotonic_ns();
            let raw = d.raw().unwrap_or_default();
            let (Some(intended), Some(seq)) = (word(raw, 0), word(raw, 1)) else {
                bail!("a message without its send time");
            };
            if seq >= warmup {
                hist.record(now.saturating_sub(intended).max(1))?;
            }
            got += 1;
        }
        Ok(hist)
    });
    let interval = 1_000_000_000 / RATE;
    on_core(cfg.cores.1, || {
        let mut publisher = b.attach("publisher", cfg.wait)?;
        let topic = publisher.create_topic("bench.slow", TopicConfig::with(policy))?;
        let mut payload = vec![0u8; cfg.size.max(16)];
        let start = monotonic_ns() + 1_000_000;
        for seq in 0..n {
            let intended = start + seq * interval;
            // Sleep most of the gap (a spinning publisher would take a core the healthy
            // subscriber needs on a small machine), spin the last 60 us.
            let now = monotonic_ns();
            if intended > now + 100_000 {
                std::thread::sleep(Duration::from_nanos(intended - now - 60_000));
            }
            while monotonic_ns() < intended {
                std::hint::spin_loop();
            }
            payload[..8].copy_from_slice(&intended.to_le_bytes());
            payload[8..16].copy_from_slice(&seq.to_le_bytes());
            publisher.send_blocking(&topic, Raw(&payload), Duration::from_secs(5))?;
        }
        Ok(())
    })?;
    let hist = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the healthy subscriber panicked"))??;
    drop(stalled_agent);
    drop(b.daemon);
    Ok(hist)
}

/// `block`: how far the publisher gets before a subscriber that never reads stops it.
fn blocked(cfg: Config) -> anyhow::Result<Blocked> {
    let b = bus_tuned("slow-sub-block", Some(cfg.cores.0), cfg.wait, true, |c| {
        c.lane_capacity = LANE;
    })?;
    let park = Wait::Park(Park::default());
    let mut healthy = b.attach("healthy", park)?;
    healthy.subscribe("bench.slow")?.detach();
    let mut stalled = b.attach("stalled", park)?;
    stalled.subscribe("bench.slow")?.detach();
    let mut publisher = b.attach("publisher", cfg.wait)?;
    let topic = publisher.topic("bench.slow")?; // block, the default
    let payload = vec![0u8; cfg.size.max(16)];
    let interval = Duration::from_nanos(1_000_000_000 / RATE);
    let mut sent = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match publisher.send(&topic, Raw(&payload)) {
            Ok(_) => sent += 1,
            Err(CommunicationError::QueueFull { .. }) => break,
            Err(e) => return Err(e.into()),
        }
        if Instant::now() > deadline {
            bail!("block: the publisher was never refused in 10 s ({sent} sent)");
        }
        std::thread::sleep(interval);
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut received = 0;
    while healthy.try_recv()?.is_some() {
        received += 1;
    }
    drop((healthy, stalled, publisher));
    drop(b.daemon);
    Ok(Blocked { sent, received })
}

/// The `i`-th little-endian u64 of `bytes`.
fn word(bytes: &[u8], i: usize) -> Option<u64> {
    let b = bytes.get(i * 8..i * 8 + 8)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}
