//! `route-changes`: what one routing change costs as the number of topics grows, and on a
//! crowded bus (200 agents, 2,000 subscriptions).
//!
//! agentd sends the router only the routes a change touched, as one command followed by one
//! acknowledged barrier per request, and finds them without rescanning: a new topic is matched
//! against the subscriptions once, a new pattern against the topics once, an attach joins its
//! type and capability sets. So a `create_topic` costs time in proportion to the subscriptions,
//! a `subscribe` to the topics its pattern is matched against (and the routes it changes: the
//! wildcard here matches every topic), and an attach neither. (Before route deltas, every change
//! resent every route, one acknowledged command each: time in proportion to the topics, and
//! on the crowded bus to topics x subscriptions.) On one embedded agentd (defaults: parking
//! router, unpinned), the topics are grown to each count of [`TOPICS`] and, at each,
//! [`REPEATS`] times each: one more `create_topic`, one `subscribe` to a wildcard matching
//! every topic (undone, untimed, after each) and one `Agent::attach` (detached, untimed, after
//! each, and waited for until its slot is freed) are timed.

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
    /// Agents attached before the first timed change (the measuring agent included).
    pub agents: usize,
    /// Subscriptions on the bus before the first timed change.
    pub subscriptions: usize,
    /// `create_topic` of a new topic, ns.
    pub create: Histogram<u64>,
    /// `subscribe` to a wildcard matching every topic, ns.
    pub subscribe: Histogram<u64>,
    /// `Agent::attach` of a new agent, ns.
    pub attach: Histogram<u64>,
}

fn timed<T, E: std::error::Error + Send + Sync + 'static>(
    hist: &mut Histogram<u64>,
    f: impl FnOnce() -> Result<T, E>,
) -> anyhow::Result<T> {
    let t = Instant::now();
    let v = f()?;
    hist.record((t.elapsed().as_nanos() as u64).max(1))?;
    Ok(v)
}

/// Agents of the crowded step (the measuring agent comes on top).
pub const CROWD_AGENTS: usize = 200;
/// Topics each crowd agent creates and subscribes to: 2,000 subscriptions in all.
pub const CROWD_SUBSCRIPTIONS_EACH: usize = 10;
/// The longest the crowd may take to gather: past it, the step is measured with the agents
/// attached so far (and says so), so a control plane too slow to build the crowd still gives
/// numbers instead of running for many minutes (before route deltas, 90 s gathered 67-68).
pub const CROWD_SETUP_LIMIT: Duration = Duration::from_secs(90);

/// Waits until agentd has freed every slot but the `agents` that stay, so each timed attach
/// finds the same slots taken and the router is not still draining the last one.
fn settle(admin: &mut Agent, agents: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.list_agents()?.len() > agents {
        if Instant::now() > deadline {
            bail!("route-changes: a detached agent's slot was not freed in 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

impl Step {
    fn new(topics: usize, agents: usize, subscriptions: usize) -> Step {
        Step {
            topics,
            agents,
            subscriptions,
            create: histogram(),
            subscribe: histogram(),
            attach: histogram(),
        }
    }
}

/// What one round of timed changes does.
struct Changes<'a> {
    /// The name of the topic created in round `j`.
    topic: &'a dyn Fn(usize) -> String,
    /// The pattern subscribed to (and unsubscribed, untimed).
    pattern: &'a str,
    /// Agent ids of the agents attached (and detached, untimed) are this, `-`, the round.
    joiner: &'a str,
    /// Agents that stay attached: a detached one is waited for until its slot is freed.
    stay: usize,
}

/// Times [`REPEATS`] rounds of one topic creation, one subscription and one attach into
/// `step`; returns the topics created.
fn time_changes(
    b: &crate::bus_cases::Bus,
    admin: &mut Agent,
    wait: Wait,
    changes: &Changes<'_>,
    step: &mut Step,
) -> anyhow::Result<usize> {
    for j in 0..REPEATS {
        let name = (changes.topic)(j);
        timed(&mut step.create, || admin.topic(&name))?;
        let sub = timed(&mut step.subscribe, || admin.subscribe(changes.pattern))?;
        sub.unsubscribe()?;
        let opts = agentbus::client::AttachOptions::new(
            &b.name,
            &format!("{}-{j}", changes.joiner),
            "bench",
        )
        .socket_dir(&b.dir)
        .wait(wait);
        let joined = timed(&mut step.attach, || Agent::attach(opts))?;
        joined.detach()?;
        settle(admin, changes.stay)?;
    }
    Ok(REPEATS)
}

/// Measures every step of [`TOPICS`].
pub fn route_changes() -> anyhow::Result<Vec<Step>> {
    let defaults = agentd::Config::new("defaults");
    let wait = Wait::Park(Park::default());
    let b = bus_tuned("route-changes", None, wait, true, |c| {
        c.lane_capacity = defaults.lane_capacity;
        // Room for the crowded step's agents.
        c.max_agents = 256;
        c.router_spin = defaults.router_spin;
    })?;
    let mut admin = b.attach("churn-admin", wait)?;
    let mut topics = 0usize;
    let mut steps = Vec::new();
    for target in TOPICS {
        let t = Instant::now();
        while topics < target {
            admin.topic(&format!("bench.route.{topics}"))?;
            topics += 1;
        }
        let mut step = Step::new(topics, 1, 0);
        let first = topics;
        let changes = Changes {
            topic: &|j| format!("bench.route.{}", first + j),
            pattern: "bench.route.>",
            joiner: &format!("churn-{target}"),
            stay: 1,
        };
        topics += time_changes(&b, &mut admin, wait, &changes, &mut step)?;
        eprintln!(
            "  route-changes at {target} topics: {:.1} s (growing the topics included)",
            t.elapsed().as_secs_f64()
        );
        steps.push(step);
    }
    steps.push(crowd(&b, &mut admin, topics, wait)?);
    drop(admin);
    drop(b.daemon);
    let _ = std::fs::remove_dir(&b.dir);
    Ok(steps)
}

/// The crowded step: [`CROWD_AGENTS`] more agents, each creating and subscribing to
/// [`CROWD_SUBSCRIPTIONS_EACH`] topics of its own, then [`REPEATS`] timed topic creations,
/// subscriptions (to one crowd topic) and attaches.
fn crowd(
    b: &crate::bus_cases::Bus,
    admin: &mut Agent,
    mut topics: usize,
    wait: Wait,
) -> anyhow::Result<Step> {
    let t = Instant::now();
    let mut crowd = Vec::with_capacity(CROWD_AGENTS);
    for i in 0..CROWD_AGENTS {
        if t.elapsed() > CROWD_SETUP_LIMIT {
            eprintln!(
                "  route-changes: gathering the crowd passed {} s at {i} agents: measuring with those",
                CROWD_SETUP_LIMIT.as_secs()
            );
            break;
        }
        let mut agent = b.attach(&format!("crowd-{i}"), wait)?;
        for k in 0..CROWD_SUBSCRIPTIONS_EACH {
            let name = format!("crowd.{i}.{k}");
            agent.topic(&name)?;
            agent.subscribe(&name)?.detach();
            topics += 1;
        }
        crowd.push(agent);
        if (i + 1) % 20 == 0 {
            eprintln!(
                "  route-changes: crowd of {} agents, {} subscriptions after {:.1} s",
                i + 1,
                (i + 1) * CROWD_SUBSCRIPTIONS_EACH,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let agents = crowd.len() + 1;
    if crowd.is_empty() {
        bail!("route-changes: not one crowd agent attached");
    }
    let mut step = Step::new(topics, agents, crowd.len() * CROWD_SUBSCRIPTIONS_EACH);
    let changes = Changes {
        topic: &|j| format!("bench.crowd.{j}"),
        pattern: "crowd.0.0",
        joiner: "crowd-join",
        stay: agents,
    };
    time_changes(b, admin, wait, &changes, &mut step)?;
    eprintln!(
        "  route-changes with {} agents and {} subscriptions: {:.1} s (attaching and subscribing them included)",
        crowd.len(),
        step.subscriptions,
        t.elapsed().as_secs_f64()
    );
    drop(crowd);
    Ok(step)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The steps as a text table: p50 and max per kind of change, in ms.
pub fn table(steps: &[Step]) -> String {
    let mut out = format!(
        "{:>7}{:>7}{:>8}{:>13}{:>12}{:>13}{:>12}{:>13}{:>12}\n",
        "topics",
        "agents",
        "subscr.",
        "create p50",
        "create max",
        "subscr. p50",
        "subscr. max",
        "attach p50",
        "attach max"
    );
    for s in steps {
        let _ = write!(out, "{:>7}{:>7}{:>8}", s.topics, s.agents, s.subscriptions);
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
            // Stable ids: the crowd's topic count depends on how far it got in its time limit.
            let id = if s.agents > 1 {
                "crowd".to_string()
            } else {
                s.topics.to_string()
            };
            cases.push(format!(
                "{{\"id\": \"route-changes-{}-{id}\", \"case\": \"route-changes {op} at {} topics, {} agents, {} subscriptions\", \"unit\": \"ns\", \"kind\": \"control\", \"op\": \"{op}\", \"topics\": {}, \"agents\": {}, \"subscriptions\": {}, \"count\": {}, \"p50\": {}, \"max\": {}}}",
                op.replace('_', "-"),
                s.topics,
                s.agents,
                s.subscriptions,
                s.topics,
                s.agents,
                s.subscriptions,
                h.len(),
                h.value_at_quantile(0.5),
                h.max()
            ));
        }
    }
    cases
}
