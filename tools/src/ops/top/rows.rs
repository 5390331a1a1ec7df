//! What `top` shows, computed from two readings of the bus header: each rate is a counter's
//! difference between the readings divided by the time between them. Nothing here draws.

use agentd::bus_header::histogram::Latency;
use agentd::bus_header::{AgentMetrics, Snapshot, TopicMetrics};

use crate::ops::stat::PERCENTILES;

/// A heartbeat older than this marks its agent's row as stale.
pub const STALE_NS: u64 = 2_000_000_000;

/// A router beat older than this means the router stopped or stalled (it publishes about once
/// a millisecond while busy, and at least every 100 ms while idle).
pub const STALLED_NS: u64 = 1_000_000_000;

/// agentd and its router, for the header lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// agentd's pid.
    pub pid: u32,
    /// How long agentd has run, ns.
    pub uptime_ns: u64,
    /// How old the router's last publication was at the reading, ns.
    pub beat_age_ns: u64,
    /// Agents in slots.
    pub agents: usize,
    /// Whether the router keeps per-message metrics (latency, topics).
    pub metrics_on: bool,
    /// Seconds between the two readings; `None` on the first frame.
    pub interval_s: Option<f64>,
    /// Router passes per second.
    pub passes_s: Option<f64>,
    /// Passes that handled a frame, % of passes (over the interval; since start on the first
    /// frame).
    pub busy_pct: f64,
    /// Time the router spent idle, % of the interval.
    pub idle_pct: Option<f64>,
    /// Frames read from outbound lanes per second.
    pub frames_s: Option<f64>,
    /// Copies delivered per second.
    pub copies_s: Option<f64>,
    /// Routing-latency percentiles (label, ns) over the interval (since start on the first
    /// frame); `None` where nothing was routed.
    pub latency: Vec<(&'static str, Option<u64>)>,
    /// Messages the latency covers.
    pub latency_count: u64,
    /// Dead letters per second.
    pub dead_s: Option<f64>,
    /// Dead letters since start.
    pub dead_total: u64,
    /// Dead letters since start by kind, the kinds with any.
    pub dead_kinds: Vec<(&'static str, u64)>,
    /// Copies dropped under a topic's back-pressure policy since start.
    pub dropped: u64,
    /// Of those, per second.
    pub dropped_s: Option<f64>,
    /// Agents detached as faulty since start.
    pub faulted: u64,
}

/// One agent's row.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    /// Its slot.
    pub slot: u32,
    /// Its id.
    pub id: String,
    /// Its type.
    pub kind: String,
    /// Its process.
    pub pid: u32,
    /// The load it reports.
    pub load: u64,
    /// How old its heartbeat was at the router's last publication, ns.
    pub heartbeat_age_ns: u64,
    /// Whether that is older than [`STALE_NS`].
    pub stale: bool,
    /// Frames sent per second.
    pub sent_s: Option<f64>,
    /// Copies received per second.
    pub received_s: Option<f64>,
    /// Bytes written into its inbound lanes per second.
    pub bytes_in_s: Option<f64>,
    /// Bytes taken from its outbound lanes per second.
    pub bytes_out_s: Option<f64>,
    /// Frames sent since attach.
    pub sent: u64,
    /// Copies received since attach.
    pub received: u64,
    /// Bytes waiting in its inbound lanes, all priorities.
    pub depth: u64,
    /// Its fullest inbound lane, % of a lane's capacity.
    pub depth_pct: f64,
    /// The highest any inbound lane has been, % of a lane's capacity.
    pub high_pct: f64,
    /// Times one of its inbound lanes was found full.
    pub full_in: u64,
    /// Times it found one of its outbound lanes full.
    pub full_out: u64,
    /// Copies meant for it dropped under a topic's policy.
    pub lost: u64,
    /// Frames of its dead-lettered.
    pub dead: u64,
}

/// One topic's row.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRow {
    /// Its name.
    pub name: String,
    /// Subscribers now.
    pub subscribers: u64,
    /// Publishes per second.
    pub publishes_s: Option<f64>,
    /// Copies delivered per second.
    pub deliveries_s: Option<f64>,
    /// Copies dropped or dead-lettered per second.
    pub dead_s: Option<f64>,
    /// Publishes since start.
    pub publishes: u64,
    /// Copies delivered since start.
    pub deliveries: u64,
    /// Copies dropped or dead-lettered since start.
    pub dead: u64,
    /// Bytes published since start.
    pub bytes: u64,
}

/// One frame's worth of numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The header lines.
    pub summary: Summary,
    /// The agents, in slot order until [`sort_agents`] sorts them.
    pub agents: Vec<AgentRow>,
    /// The topics, busiest first.
    pub topics: Vec<TopicRow>,
}

/// The column the agents are sorted by (`s` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Frames sent per second, highest first.
    #[default]
    Sent,
    /// Copies received per second, highest first.
    Received,
    /// Inbound depth, deepest first.
    Depth,
    /// Agent id, A to Z.
    Name,
}

impl SortKey {
    /// The key after this one.
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Sent => SortKey::Received,
            SortKey::Received => SortKey::Depth,
            SortKey::Depth => SortKey::Name,
            SortKey::Name => SortKey::Sent,
        }
    }

    /// Its name in the footer.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Sent => "sent/s",
            SortKey::Received => "recv/s",
            SortKey::Depth => "depth",
            SortKey::Name => "agent",
        }
    }
}

/// Two readings of the same agentd and the seconds between them.
struct Interval<'a> {
    before: &'a Snapshot,
    seconds: f64,
}

impl Interval<'_> {
    fn per_s(&self, now: u64, before: u64) -> f64 {
        now.saturating_sub(before) as f64 / self.seconds
    }
}

/// `prev` as the start of the interval ending at `now`, if it was read earlier from the same
/// agentd (a restarted agentd starts its counters again).
fn interval<'a>(prev: Option<&'a Snapshot>, now: &Snapshot) -> Option<Interval<'a>> {
    let before = prev?;
    let same = before.pid == now.pid && before.started_ns == now.started_ns;
    let ns = now.read_at.checked_sub(before.read_at)?;
    (same && ns > 0).then_some(Interval {
        before,
        seconds: ns as f64 / 1e9,
    })
}

/// The frame for reading `now`, with rates since `prev` (`None`, or a reading of another
/// agentd: totals only); `realtime_ns` is the wall clock, for the uptime.
pub fn view(prev: Option<&Snapshot>, now: &Snapshot, realtime_ns: u64) -> View {
    let iv = interval(prev, now);
    let mut topics: Vec<TopicRow> = now.topics.iter().map(|t| topic_row(t, &iv)).collect();
    sort_topics(&mut topics);
    View {
        summary: summary(now, &iv, realtime_ns),
        agents: now.agents.iter().map(|a| agent_row(a, &iv)).collect(),
        topics,
    }
}

fn summary(now: &Snapshot, iv: &Option<Interval>, realtime_ns: u64) -> Summary {
    let r = &now.router;
    let rate = |pick: fn(&Snapshot) -> u64| iv.as_ref().map(|i| i.per_s(pick(now), pick(i.before)));
    let b = iv.as_ref().map(|i| &i.before.router);
    let passes = r.passes.saturating_sub(b.map_or(0, |b| b.passes));
    let busy = r.busy_passes.saturating_sub(b.map_or(0, |b| b.busy_passes));
    let latency = match iv {
        Some(i) => now.latency.since(&i.before.latency),
        None => now.latency.clone(),
    };
    Summary {
        pid: now.pid,
        uptime_ns: realtime_ns.saturating_sub(now.started_ns),
        beat_age_ns: now.read_at.saturating_sub(r.beat),
        agents: now.agents.len(),
        metrics_on: now.metrics_on,
        interval_s: iv.as_ref().map(|i| i.seconds),
        passes_s: rate(|s| s.router.passes),
        busy_pct: pct(busy, passes),
        idle_pct: iv.as_ref().map(|i| idle_pct(now, i)),
        frames_s: rate(|s| s.router.frames_in),
        copies_s: rate(|s| s.router.delivered),
        latency: percentiles(&latency),
        latency_count: latency.count(),
        dead_s: rate(|s| s.router.dead),
        dead_total: r.dead,
        dead_kinds: now
            .dead_by_kind
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.name(), *n))
            .collect(),
        dropped: r.dropped,
        dropped_s: rate(|s| s.router.dropped),
        faulted: r.faulted,
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The router's idle time over the interval, % of it. The router adds an idle stretch to its
/// total only when work ends it, so a router that handled nothing in the interval was idle
/// throughout though its total did not move; a stretch that began before the interval counts
/// whole when it ends inside it, hence the cap.
fn idle_pct(now: &Snapshot, iv: &Interval) -> f64 {
    let (r, b) = (&now.router, &iv.before.router);
    if r.busy_passes == b.busy_passes {
        return 100.0;
    }
    let idle_s = r.idle_ns.saturating_sub(b.idle_ns) as f64 / 1e9;
    (100.0 * idle_s / iv.seconds).min(100.0)
}

fn percentiles(latency: &Latency) -> Vec<(&'static str, Option<u64>)> {
    PERCENTILES
        .iter()
        .map(|(label, q)| (*label, latency.quantile(*q)))
        .collect()
}

fn agent_row(a: &AgentMetrics, iv: &Option<Interval>) -> AgentRow {
    let before = iv.as_ref().and_then(|i| {
        i.before
            .agents
            .iter()
            .find(|b| same_agent(a, b))
            .map(|b| (b, i))
    });
    let rate = |pick: fn(&AgentMetrics) -> u64| before.map(|(b, i)| i.per_s(pick(a), pick(b)));
    let l = &a.lanes;
    let cap = l.lane_capacity.max(1);
    AgentRow {
        slot: a.entry.slot,
        id: a.entry.agent_id.clone(),
        kind: a.entry.agent_type.clone(),
        pid: a.entry.pid,
        load: l.load,
        heartbeat_age_ns: a.heartbeat_age_ns,
        stale: a.heartbeat_age_ns > STALE_NS,
        sent_s: rate(|a| a.sent),
        received_s: rate(|a| a.received),
        bytes_in_s: rate(|a| a.lanes.bytes_received),
        bytes_out_s: rate(|a| a.lanes.bytes_sent),
        sent: a.sent,
        received: a.received,
        depth: l.in_depth.iter().sum(),
        depth_pct: pct(l.in_depth.iter().copied().max().unwrap_or(0), cap),
        high_pct: pct(l.in_high.iter().copied().max().unwrap_or(0), cap),
        full_in: l.in_full.iter().sum(),
        full_out: l.out_full.iter().sum(),
        lost: a.lost,
        dead: a.dead,
    }
}

/// The same occupant of the same slot (a slot's epoch changes when another agent takes it).
fn same_agent(a: &AgentMetrics, b: &AgentMetrics) -> bool {
    a.entry.slot == b.entry.slot
        && a.entry.epoch == b.entry.epoch
        && a.entry.agent_id == b.entry.agent_id
}

fn topic_row(t: &TopicMetrics, iv: &Option<Interval>) -> TopicRow {
    let before = iv.as_ref().and_then(|i| {
        i.before
            .topics
            .iter()
            .find(|b| b.id == t.id && b.name == t.name)
            .map(|b| (b, i))
    });
    let rate = |pick: fn(&TopicMetrics) -> u64| before.map(|(b, i)| i.per_s(pick(t), pick(b)));
    TopicRow {
        name: t.name.clone(),
        subscribers: t.subscribers,
        publishes_s: rate(|t| t.publishes),
        deliveries_s: rate(|t| t.deliveries),
        dead_s: rate(|t| t.dead),
        publishes: t.publishes,
        deliveries: t.deliveries,
        dead: t.dead,
        bytes: t.bytes,
    }
}

/// A rate for sorting: a missing one below any other.
fn rank(rate: Option<f64>) -> f64 {
    rate.unwrap_or(-1.0)
}

/// Sorts agents by `key`, ties by id.
pub fn sort_agents(rows: &mut [AgentRow], key: SortKey) {
    rows.sort_by(|a, b| {
        let by = match key {
            SortKey::Sent => rank(b.sent_s)
                .total_cmp(&rank(a.sent_s))
                .then(b.sent.cmp(&a.sent)),
            SortKey::Received => rank(b.received_s)
                .total_cmp(&rank(a.received_s))
                .then(b.received.cmp(&a.received)),
            SortKey::Depth => b.depth.cmp(&a.depth),
            SortKey::Name => std::cmp::Ordering::Equal,
        };
        by.then_with(|| a.id.cmp(&b.id))
    });
}

/// Sorts topics busiest first (deliveries per second, then publishes), ties by name.
fn sort_topics(rows: &mut [TopicRow]) {
    rows.sort_by(|a, b| {
        rank(b.deliveries_s)
            .total_cmp(&rank(a.deliveries_s))
            .then(b.publishes.cmp(&a.publishes))
            .then_with(|| a.name.cmp(&b.name))
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use agentd::bus_header::histogram::bucket;
    use agentd::bus_header::{DeadKind, RegistryEntry, RouterTotals, SlotMetrics};

    /// A reading of agentd 42 at `at_ms`, with no agents or topics.
    pub(crate) fn snapshot(at_ms: u64) -> Snapshot {
        Snapshot {
            pid: 42,
            started_ns: 1_000,
            read_at: at_ms * 1_000_000,
            metrics_on: true,
            router: RouterTotals {
                beat: at_ms * 1_000_000,
                ..RouterTotals::default()
            },
            agents_attached: 0,
            dead_by_kind: DeadKind::ALL.iter().map(|&k| (k, 0)).collect(),
            batches: [0; 8],
            latency: Latency::empty(),
            agents: Vec::new(),
            topics: Vec::new(),
            messages: Vec::new(),
            messages_uncounted: 0,
            trace_capacity: 0,
        }
    }

    /// Agent `id` in `slot`, with `sent` frames sent and lanes of 1000 bytes.
    pub(crate) fn agent(slot: u32, id: &str, sent: u64) -> AgentMetrics {
        AgentMetrics {
            entry: RegistryEntry {
                slot,
                epoch: 1,
                pid: 7,
                uid: 0,
                capacity: 1,
                agent_id: id.into(),
                agent_type: "t".into(),
            },
            sent,
            dead: 0,
            received: 0,
            lost: 0,
            throttled: 0,
            wakes_ignored: 0,
            lanes: SlotMetrics {
                lane_capacity: 1_000,
                ..SlotMetrics::default()
            },
            heartbeat_age_ns: 1_000_000,
        }
    }

    fn topic(id: u64, name: &str, publishes: u64) -> TopicMetrics {
        TopicMetrics {
            id,
            name: name.into(),
            publishes,
            deliveries: publishes * 2,
            dead: 0,
            bytes: publishes * 10,
            subscribers: 2,
        }
    }

    #[test]
    fn rates_are_differences_over_the_time_between_readings() {
        let mut a = snapshot(1_000);
        a.router.passes = 100;
        a.router.frames_in = 50;
        a.agents.push(agent(0, "alpha", 10));
        a.topics.push(topic(3, "prices", 5));
        let mut b = snapshot(1_500);
        b.router.passes = 600;
        b.router.frames_in = 250;
        b.agents.push(agent(0, "alpha", 110));
        b.topics.push(topic(3, "prices", 55));
        let v = view(Some(&a), &b, 0);
        assert_eq!(v.summary.interval_s, Some(0.5));
        assert_eq!(v.summary.passes_s, Some(1_000.0));
        assert_eq!(v.summary.frames_s, Some(400.0));
        assert_eq!(v.agents[0].sent_s, Some(200.0));
        assert_eq!(v.topics[0].publishes_s, Some(100.0));
        assert_eq!(v.topics[0].deliveries_s, Some(200.0));
    }

    #[test]
    fn the_first_frame_has_totals_and_no_rates() {
        let mut s = snapshot(1_000);
        s.router.passes = 10;
        s.router.busy_passes = 5;
        s.latency.counts[bucket(1_000)] += 4;
        s.agents.push(agent(0, "alpha", 10));
        let v = view(None, &s, 0);
        assert_eq!(v.summary.passes_s, None);
        assert_eq!(v.summary.idle_pct, None);
        assert_eq!(v.summary.busy_pct, 50.0);
        assert_eq!(v.summary.latency_count, 4);
        assert_eq!(v.agents[0].sent_s, None);
        assert_eq!(v.agents[0].sent, 10);
    }

    #[test]
    fn a_restarted_agentd_is_not_compared_with_the_old_one() {
        let a = snapshot(1_000);
        let mut b = snapshot(2_000);
        b.pid = 43;
        assert_eq!(view(Some(&a), &b, 0).summary.passes_s, None);
    }

    #[test]
    fn a_new_occupant_of_a_slot_has_no_rate_yet() {
        let mut a = snapshot(1_000);
        a.agents.push(agent(0, "alpha", 500));
        let mut b = snapshot(2_000);
        b.agents.push(agent(0, "beta", 3));
        assert_eq!(view(Some(&a), &b, 0).agents[0].sent_s, None);
    }

    #[test]
    fn latency_covers_the_interval_only() {
        let mut a = snapshot(1_000);
        a.latency.counts[bucket(1_000_000)] = 100;
        let mut b = a.clone();
        b.read_at += 1_000_000_000;
        b.latency.counts[bucket(2_000)] += 10;
        let v = view(Some(&a), &b, 0);
        assert_eq!(v.summary.latency_count, 10);
        let max = v.summary.latency.iter().find(|(l, _)| *l == "max");
        assert!(matches!(max, Some((_, Some(ns))) if *ns < 3_000), "{max:?}");
    }

    #[test]
    fn an_idle_router_is_idle_all_interval() {
        let a = snapshot(1_000);
        let mut b = snapshot(2_000);
        b.router.passes = 10;
        assert_eq!(view(Some(&a), &b, 0).summary.idle_pct, Some(100.0));
        b.router.busy_passes = 5;
        b.router.idle_ns = 250_000_000;
        assert_eq!(view(Some(&a), &b, 0).summary.idle_pct, Some(25.0));
    }

    #[test]
    fn lanes_show_their_sum_and_their_fullest() {
        let mut s = snapshot(1_000);
        let mut a = agent(0, "alpha", 0);
        a.lanes.in_depth = [100, 300, 0, 0];
        a.lanes.in_high = [200, 900, 0, 0];
        a.lanes.in_full = [1, 2, 0, 0];
        a.lanes.out_full = [0, 0, 3, 0];
        a.heartbeat_age_ns = STALE_NS + 1;
        s.agents.push(a);
        let row = &view(None, &s, 0).agents[0];
        assert_eq!(row.depth, 400);
        assert_eq!(row.depth_pct, 30.0);
        assert_eq!(row.high_pct, 90.0);
        assert_eq!((row.full_in, row.full_out), (3, 3));
        assert!(row.stale);
    }

    #[test]
    fn dead_letters_list_the_kinds_with_any() {
        let mut s = snapshot(1_000);
        s.router.dead = 3;
        s.dead_by_kind[1].1 = 3;
        let v = view(None, &s, 0);
        assert_eq!(v.summary.dead_kinds, vec![("no_route", 3)]);
    }

    #[test]
    fn sorting_cycles_through_the_columns() {
        let mut a = snapshot(1_000);
        let mut b = snapshot(2_000);
        for (slot, id, sent) in [(0, "zed", 10), (1, "amy", 0), (2, "bob", 0)] {
            a.agents.push(agent(slot, id, 0));
            b.agents.push(agent(slot, id, sent));
        }
        b.agents[2].lanes.in_depth[0] = 50;
        b.agents[1].received = 9;
        let mut rows = view(Some(&a), &b, 0).agents;
        let ids = |rows: &[AgentRow]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        let mut key = SortKey::default();
        sort_agents(&mut rows, key);
        assert_eq!(ids(&rows), ["zed", "amy", "bob"]);
        key = key.next();
        sort_agents(&mut rows, key);
        assert_eq!(ids(&rows), ["amy", "bob", "zed"]);
        key = key.next();
        sort_agents(&mut rows, key);
        assert_eq!(ids(&rows), ["bob", "amy", "zed"]);
        key = key.next();
        sort_agents(&mut rows, key);
        assert_eq!(ids(&rows), ["amy", "bob", "zed"]);
        assert_eq!(key.next(), SortKey::Sent);
    }

    #[test]
    fn topics_come_busiest_first() {
        let mut s = snapshot(1_000);
        s.topics.push(topic(1, "quiet", 1));
        s.topics.push(topic(2, "busy", 100));
        let names: Vec<_> = view(None, &s, 0)
            .topics
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["busy", "quiet"]);
    }
}
