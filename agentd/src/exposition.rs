//! The bus header as Prometheus metrics: a [`Collector`] over a [`Snapshot`], encoded by
//! `prometheus-client` in the OpenMetrics text format, which Prometheus asks for; a scraper
//! that does not (`curl`, `promtool check metrics`) gets the classic text format 0.0.4, in
//! which a counter's `# HELP`/`# TYPE` name carries its `_total`.
//!
//! The spec's names come first (`agent_messages_total{from,to,type,priority}`,
//! `agent_message_latency_seconds`, `agent_connections_active`); the rest are `agentbus_*`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::bus_header::histogram::Latency;
use crate::bus_header::{AgentMetrics, Snapshot};

type Labels = Vec<(&'static str, String)>;

/// The latency histogram's bucket bounds: powers of two from 256 ns to 8.6 s (exact bucket
/// boundaries of the header's histogram, so each count is exact).
const LE_EXPONENTS: std::ops::RangeInclusive<u32> = 8..=33;

/// The two text formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`# EOF` at the end).
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// The format a scraper's `Accept` header asks for.
    pub fn negotiate(accept: Option<&str>) -> Format {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Renders `snapshot` of bus `bus` in `format`.
pub fn render(bus: &str, snapshot: Snapshot, format: Format) -> String {
    let open_metrics = render_open_metrics(bus, snapshot);
    match format {
        Format::OpenMetrics => open_metrics,
        Format::Prometheus => to_prometheus_text(&open_metrics),
    }
}

/// OpenMetrics text as the classic text format: a counter family's `# HELP` and `# TYPE` name
/// it with `_total` (its samples already do), and `# UNIT` and `# EOF` go (the classic format
/// has neither).
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn render_open_metrics(bus: &str, snapshot: Snapshot) -> String {
    let mut registry = Registry::with_labels(
        [(
            std::borrow::Cow::Borrowed("bus"),
            std::borrow::Cow::Owned(label(bus)),
        )]
        .into_iter(),
    );
    registry.register_collector(Box::new(BusCollector { s: snapshot }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct BusCollector {
    s: Snapshot,
}

/// One metric family: its name, help, unit and type, and its samples.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    unit: Option<Unit>,
    kind: MetricType,
}

impl Family<'_> {
    fn write(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) -> Result<(), std::fmt::Error> {
        let mut m =
            encoder.encode_descriptor(self.name, self.help, self.unit.as_ref(), self.kind)?;
        for (labels, v) in samples {
            let fam = m.encode_family(&labels)?;
            match self.kind {
                MetricType::Counter => ConstCounter::new(v).encode(fam)?,
                _ => ConstGauge::new(v).encode(fam)?,
            }
        }
        Ok(())
    }
}

fn counter<'a>(name: &'a str, help: &'a str) -> Family<'a> {
    Family {
        name,
        help,
        unit: None,
        kind: MetricType::Counter,
    }
}

fn gauge<'a>(name: &'a str, help: &'a str) -> Family<'a> {
    Family {
        name,
        help,
        unit: None,
        kind: MetricType::Gauge,
    }
}

/// A label value as the text formats need it: backslash, double quote and line feed escaped.
/// The encoder writes values as they are, and agent ids, types and topic names are whatever
/// agents chose: unescaped, one could end a series' labels and forge others.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn agent_labels(a: &AgentMetrics) -> Labels {
    vec![
        ("agent", label(&a.entry.agent_id)),
        ("type", label(&a.entry.agent_type)),
    ]
}

const PRIORITIES: [&str; 4] = ["critical", "high", "normal", "low"];

impl Collector for BusCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.s;
        let none = || Labels::new();
        counter(
            "agent_messages",
            "Messages routed, by sender type, destination type (multicast: several; none: unrouted), message type and priority.",
        )
        .write(
            &mut e,
            s.messages.iter().map(|m| {
                (
                    vec![
                        ("from", label(&m.from)),
                        ("to", label(&m.to)),
                        ("type", m.message_type.to_string()),
                        ("priority", m.priority.to_string()),
                    ],
                    m.count as f64,
                )
            }),
        )?;
        latency_histogram(&mut e, &s.latency)?;
        gauge("agent_connections_active", "Agents attached.")
            .write(&mut e, [(none(), s.agents.len() as f64)])?;
        counter(
            "agentbus_dead_letters",
            "Dead letters recorded by the router, by kind.",
        )
        .write(
            &mut e,
            s.dead_by_kind
                .iter()
                .map(|(k, n)| (vec![("kind", k.name().to_string())], *n as f64)),
        )?;
        let r = &s.router;
        for (name, help, v) in [
            (
                "agentbus_router_passes",
                "Passes the router made over the lanes.",
                r.passes,
            ),
            (
                "agentbus_router_busy_passes",
                "Passes that routed at least one frame.",
                r.busy_passes,
            ),
            (
                "agentbus_router_frames",
                "Frames taken from outbound lanes.",
                r.frames_in,
            ),
            (
                "agentbus_router_bytes",
                "Bytes of the frames taken from outbound lanes.",
                r.bytes_in,
            ),
            (
                "agentbus_router_copies",
                "Copies written into destination lanes.",
                r.delivered,
            ),
            (
                "agentbus_dropped",
                "Copies dropped or dead-lettered under a topic's back-pressure policy.",
                r.dropped,
            ),
            (
                "agentbus_agents_faulted",
                "Agents detached for breaking the protocol.",
                r.faulted,
            ),
        ] {
            counter(name, help).write(&mut e, [(none(), v as f64)])?;
        }
        Family {
            name: "agentbus_router_idle",
            help: "Time the router spent idle.",
            unit: Some(Unit::Seconds),
            kind: MetricType::Counter,
        }
        .write(&mut e, [(none(), r.idle_ns as f64 / 1e9)])?;
        gauge(
            "agentbus_router_heartbeat_age_seconds",
            "How long ago the router last published its counters (it does so every millisecond while busy and before each sleep).",
        )
        .write(&mut e, [(none(), s.read_at.saturating_sub(r.beat) as f64 / 1e9)])?;
        self.agents(&mut e)?;
        self.topics(&mut e)
    }
}

impl BusCollector {
    fn agents(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let agents = &self.s.agents;
        type Pick = fn(&AgentMetrics) -> u64;
        let per_agent: [(&str, &str, Pick); 7] = [
            (
                "agentbus_agent_sent",
                "Frames the router took from the agent's lanes.",
                |a| a.sent,
            ),
            ("agentbus_agent_sent_bytes", "Bytes of those frames.", |a| {
                a.lanes.bytes_sent
            }),
            (
                "agentbus_agent_received",
                "Copies written into the agent's lanes.",
                |a| a.received,
            ),
            (
                "agentbus_agent_received_bytes",
                "Bytes of those copies.",
                |a| a.lanes.bytes_received,
            ),
            (
                "agentbus_agent_dead",
                "Frames of the agent dead-lettered.",
                |a| a.dead,
            ),
            (
                "agentbus_agent_lost",
                "Copies meant for the agent dropped because its lane was full.",
                |a| a.lost,
            ),
            (
                "agentbus_agent_throttled",
                "Times the agent was throttled for making dead letters.",
                |a| a.throttled,
            ),
        ];
        for (name, help, pick) in per_agent {
            counter(name, help)
                .write(e, agents.iter().map(|a| (agent_labels(a), pick(a) as f64)))?;
        }
        gauge("agentbus_agent_load", "The load the agent reports.").write(
            e,
            agents
                .iter()
                .map(|a| (agent_labels(a), a.lanes.load as f64)),
        )?;
        gauge(
            "agentbus_agent_heartbeat_age_seconds",
            "How long ago the agent last beat, as of the router's last publication.",
        )
        .write(
            e,
            agents
                .iter()
                .map(|a| (agent_labels(a), a.heartbeat_age_ns as f64 / 1e9)),
        )?;
        let per_lane = |pick: fn(&AgentMetrics, usize) -> u64| {
            agents.iter().flat_map(move |a| {
                (0..4).map(move |p| {
                    let mut l = agent_labels(a);
                    l.push(("priority", PRIORITIES[p].into()));
                    (l, pick(a, p) as f64)
                })
            })
        };
        gauge(
            "agentbus_lane_depth_bytes",
            "Bytes waiting in the agent's inbound lane of a priority.",
        )
        .write(e, per_lane(|a, p| a.lanes.in_depth[p]))?;
        gauge(
            "agentbus_lane_high_water_bytes",
            "The most bytes seen waiting in the agent's inbound lane (sampled each millisecond; a full lane counts whole).",
        )
        .write(e, per_lane(|a, p| a.lanes.in_high[p]))?;
        counter(
            "agentbus_lane_full",
            "Times a lane was found full: inbound by the router, outbound by the agent.",
        )
        .write(
            e,
            per_lane(|a, p| a.lanes.in_full[p])
                .map(|(mut l, v)| {
                    l.push(("direction", "inbound".into()));
                    (l, v)
                })
                .chain(per_lane(|a, p| a.lanes.out_full[p]).map(|(mut l, v)| {
                    l.push(("direction", "outbound".into()));
                    (l, v)
                })),
        )
    }

    fn topics(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let topics = &self.s.topics;
        let labels = |name: &str| vec![("topic", label(name))];
        type Pick = fn(&crate::bus_header::TopicMetrics) -> u64;
        let per_topic: [(&str, &str, Pick); 3] = [
            (
                "agentbus_topic_publishes",
                "Messages published on the topic.",
                |t| t.publishes,
            ),
            (
                "agentbus_topic_deliveries",
                "Copies delivered to the topic's subscribers.",
                |t| t.deliveries,
            ),
            (
                "agentbus_topic_dead",
                "Copies of the topic's messages dropped or dead-lettered.",
                |t| t.dead,
            ),
        ];
        for (name, help, pick) in per_topic {
            counter(name, help)
                .write(e, topics.iter().map(|t| (labels(&t.name), pick(t) as f64)))?;
        }
        gauge(
            "agentbus_topic_subscribers",
            "Agents subscribed to the topic.",
        )
        .write(
            e,
            topics
                .iter()
                .map(|t| (labels(&t.name), t.subscribers as f64)),
        )
    }
}

/// The routing latency as a Prometheus histogram in seconds.
fn latency_histogram(
    e: &mut DescriptorEncoder<'_>,
    latency: &Latency,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = LE_EXPONENTS
        .map(|exp| {
            let le = 1u64 << exp;
            (le as f64 / 1e9, latency.count_at_or_below(le - 1))
        })
        .collect();
    let count = latency.count();
    buckets.push((f64::MAX, count)); // the encoder writes f64::MAX as `+Inf`
                                     // Per-bucket counts: the encoder accumulates them into the cumulative `le` series.
    let mut previous = 0;
    for b in buckets.iter_mut() {
        let cumulative = b.1;
        b.1 = cumulative - previous;
        previous = cumulative;
    }
    let mut m = e.encode_descriptor(
        "agent_message_latency_seconds",
        "Routing latency: from the sender's timestamp to the router's pass that routed the message.",
        None,
        MetricType::Histogram,
    )?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        latency.sum_ns as f64 / 1e9,
        count,
        &buckets,
        None,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_cannot_end_their_series() {
        assert_eq!(super::label("plain-id"), "plain-id");
        assert_eq!(
            super::label("evil\"} 1\nforged{x=\"\\"),
            "evil\\\"} 1\\nforged{x=\\\"\\\\"
        );
    }
}
