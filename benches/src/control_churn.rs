//! `route-changes`: what one routing change costs as the number of topics grows.
//!
//! agentd resends every route to the router on each topic creation, subscription and attach
//! (one acknowledged command per topic), so one change costs time in proportion to the topics
//! there are. On one embedded agentd (defaults: parking router, unpinned), the topics are
//! grown to each count of [`TOPICS`] and, at each, [`REPEATS`] times each: one more
//! `create_topic`, one `subscribe` to a wildcard matching every topic (undone, untimed, after
//! each) and one `Agent::attach` (detached, untimed, after each, and waited for until its
//! slot is freed) are timed.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agentbus::client::Agent;
use agentbus_ipc::wait::{Park, Wait};
use anyhow::bail;
use hdrhistogram::Histogram;

use crate::bus_cases::bus_tuned;
use crate::report::histogram;

/// The topic counts before each measured change.
pub const TOPICS: [usize; 4] = [0, 500, 1000, 2000];

/// Changes timed per kind and topic count.
pub const REPEATS: usize = 20;

/// The timed changes at one topic count.
#[derive(Debug)]
pub struct Step {
    /// Topics on the bus before the first timed change.
    pub topics: usize,
    /// `create_topic` of a new topic, ns.
    pub create: Histogram<u64>,
    /// `subscribe` to a wildcard matching every topic, ns.
    pub subscribe: Histogram<u64>,
    /// `Agent::attach` of a new agent, ns.
    pub attach: Histogram<u64>,
}

fn timed<T>(
    hist: &mut Histogram<u64>,
    f: impl FnOnce() -> Result<T, agentbus::client::ClientError>,
) -> anyhow::Result<T> {
    let t = Instant::now();
    let v = f()?;
    hist.record((t.elapsed().as_nanos() as u64).max(1))?;
    Ok(v)
}

/// Waits until agentd has freed every slot but `admin`'s: freeing one resends the routes, and
/// that must not land in the next timed change (answers come after the resend).
fn settle(admin: &mut Agent) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.list_agents()?.len() > 1 {
        if Instant::now() > deadline {
            bail!("route-changes: a detached agent's slot was not freed in 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Measures every step of [`TOPICS`].
pub fn route_changes() -> anyhow::Result<Vec<Step>> {
    let defaults = agentd::Config::new("defaults");
    let wait = Wait::Park(Park::default());
    let b = bus_tuned("route-changes", None, wait, true, |c| {
        c.lane_capacity = defaults.lane_capacity;
        c.router_spin = defaults.router_spin;
    })?;
    let mut admin = b.attach("churn-admin", wait)?;
    let mut topics = 0usize;
    let mut steps = Vec::new();
    for target in TOPICS {
        let t = Instant::now();
        while topics < target {
            admin.create_topic(&format!("bench.route.{topics}"))?;
            topics += 1;
        }
        let mut step = Step {
            topics,
            create: histogram(),
            subscribe: histogram(),
            attach: histogram(),
        };
        for j in 0..REPEATS {
            let name = format!("bench.route.{topics}");
            timed(&mut step.create, || admin.create_topic(&name))?;
            topics += 1;
            let sub = timed(&mut step.subscribe, || admin.subscribe("bench.route.>"))?;
            admin.unsubscribe(sub)?;
            let opts = agentbus::client::AttachOptions::new(
                &b.name,
                &format!("churn-{target}-{j}"),
                "bench",
            )
            .socket_dir(&b.dir)
            .wait(wait);
            let joined = timed(&mut step.attach, || Agent::attach(opts))?;
            joined.detach()?;
            settle(&mut admin)?;
        }
        eprintln!(
            "  route-changes at {target} topics: {:.1} s (growing the topics included)",
            t.elapsed().as_secs_f64()
        );
        steps.push(step);
    }
    drop(admin);
    drop(b.daemon);
    let _ = std::fs::remove_dir(&b.dir);
    Ok(steps)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The steps as a text table: p50 and max per kind of change, in ms.
pub fn table(steps: &[Step]) -> String {
    let mut out = format!(
        "{:>7}{:>13}{:>12}{:>13}{:>12}{:>13}{:>12}\n",
        "topics",
        "create p50",
        "create max",
        "subscr. p50",
        "subscr. max",
        "attach p50",
        "attach max"
    );
    for s in steps {
        let _ = write!(out, "{:>7}", s.topics);
        for h in [&s.create, &s.subscribe, &s.attach] {
            let _ = write!(
                out,
                "{:>13.2}{:>12.2}",
                ms(h.value_at_quantile(0.5)),
                ms(h.max())
            );
        }
        out.push('\n');
    }
    out
}

/// The steps as JSON entries for the harness's `cases` list.
pub fn json_cases(steps: &[Step]) -> Vec<String> {
    let mut cases = Vec::new();
    for s in steps {
        for (op, h) in [
            ("create_topic", &s.create),
            ("subscribe", &s.subscribe),
            ("attach", &s.attach),
        ] {
            cases.push(format!(
                "{{\"id\": \"route-changes-{}-{}\", \"case\": \"route-changes {op} at {} topics\", \"unit\": \"ns\", \"kind\": \"control\", \"op\": \"{op}\", \"topics\": {}, \"count\": {}, \"p50\": {}, \"max\": {}}}",
                op.replace('_', "-"),
                s.topics,
                s.topics,
                s.topics,
                h.len(),
                h.value_at_quantile(0.5),
                h.max()
            ));
        }
    }
    cases
}
