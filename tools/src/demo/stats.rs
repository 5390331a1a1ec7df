//! What demo agents count and report, and the summary the demo prints.

use std::collections::BTreeMap;

use agentbus::control::AgentInfo;
use agentbus::{Record, RouteKind, Value};
use hdrhistogram::Histogram;

/// A latency histogram in ns (1 ns .. 60 s, 3 significant figures).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// A histogram as a value: (value, count) pairs as little-endian u64s.
pub fn encode_histogram(h: &Histogram<u64>) -> Value {
    let mut bytes = Vec::new();
    for v in h.iter_recorded() {
        bytes.extend_from_slice(&v.value_iterated_to().to_le_bytes());
        bytes.extend_from_slice(&v.count_at_value().to_le_bytes());
    }
    Value::Bytes(bytes)
}

/// Adds a histogram encoded by [`encode_histogram`] into `into`.
pub fn merge_histogram(into: &mut Histogram<u64>, value: &Value) {
    if let Value::Bytes(b) = value {
        for pair in b.chunks_exact(16) {
            let v = u64::from_le_bytes(pair[..8].try_into().expect("8 bytes"));
            let n = u64::from_le_bytes(pair[8..].try_into().expect("8 bytes"));
            let _ = into.record_n(v.max(1), n);
        }
    }
}

/// An integer field of a record (0 if absent).
pub fn int(r: &Record, key: &str) -> i64 {
    match r.get(key) {
        Some(Value::Int(v)) => *v,
        _ => 0,
    }
}

/// The route kinds latency is reported for, in table order.
pub const ROUTES: [RouteKind; 6] = [
    RouteKind::Topic,
    RouteKind::Agent,
    RouteKind::Capability,
    RouteKind::LoadBalanced,
    RouteKind::Multicast,
    RouteKind::Broadcast,
];

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// Prints the end-of-run summary; returns whether every agent's accounting balances.
pub fn print_summary(
    finals: &BTreeMap<String, Record>,
    agents: &[AgentInfo],
    dead_letters: usize,
) -> bool {
    let mut by_kind: BTreeMap<String, i64> = BTreeMap::new();
    let mut latency: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
    for r in finals.values() {
        if let Some(Value::Map(kinds)) = r.get("by_kind") {
            for (k, v) in kinds {
                if let Value::Int(n) = v {
                    *by_kind.entry(k.clone()).or_default() += n;
                }
            }
        }
        for route in ROUTES {
            if let Some(v) = r.get(&format!("lat.{route}")) {
                merge_histogram(latency.entry(route.as_str()).or_insert_with(histogram), v);
            }
        }
    }
    println!("\n== messages sent, by type and route");
    for (k, n) in &by_kind {
        println!("  {k:<34}{n:>10}");
    }
    println!("\n== one-way latency by route kind (send to receipt, µs)");
    println!(
        "  {:<16}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "route", "count", "p50", "p99", "p99.9", "max"
    );
    for (route, h) in &latency {
        if h.is_empty() {
            continue;
        }
        println!(
            "  {:<16}{:>10}{:>10}{:>10}{:>10}{:>10}",
            route,
            h.len(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max())
        );
    }
    println!("\n== accounting per agent: sent = delivered + dead-lettered; copies = destinations");
    println!(
        "  {:<12}{:>12}{:>10}{:>11}{:>15}{:>10}{:>14}{:>12}{:>12}  balance",
        "agent",
        "sent",
        "routed",
        "delivered",
        "dead-lettered",
        "copies",
        "destinations",
        "read",
        "received"
    );
    let mut all = true;
    for (id, r) in finals {
        let sent = int(r, "sent") as u64;
        let read = int(r, "received") as u64;
        let Some(a) = agents.iter().find(|a| &a.agent_id == id) else {
            println!("  {id:<12} not attached at the end: no router counters");
            all = false;
            continue;
        };
        let copies = a.copies_delivered + a.copies_dead;
        let ok = sent == a.frames_sent
            && a.frames_sent == a.frames_delivered + a.frames_dead
            && copies == a.destinations;
        all &= ok;
        println!(
            "  {:<12}{:>12}{:>10}{:>11}{:>15}{:>10}{:>14}{:>12}{:>12}  {}",
            id,
            sent,
            a.frames_sent,
            a.frames_delivered,
            a.frames_dead,
            copies,
            a.destinations,
            read,
            a.copies_received,
            if ok { "ok" } else { "IMBALANCE" }
        );
    }
    println!(
        "  (sent: counted by the agent; routed, delivered, dead-lettered, copies, destinations, received: counted by\n   agentd's router; copies: written or dead-lettered per destination, which a duplicate would push past\n   destinations; read: messages the agent read; the rest were still in its lanes when it stopped reading)"
    );
    print_coordination(finals);
    println!("\ndead letters: {dead_letters}");
    if all {
        println!("accounting: every agent balances (sent = delivered + dead-lettered, copies = destinations)");
    } else {
        println!("accounting: IMBALANCE (see the rows above)");
    }
    all
}

/// The coordination the agents did: who held the primary execution lease, and the risk
/// agent's consensus round on its limit change.
fn print_coordination(finals: &BTreeMap<String, Record>) {
    println!("\n== coordination");
    for (id, r) in finals.iter().filter(|(id, _)| id.starts_with("exec")) {
        if int(r, "lease_primary") > 0 {
            println!(
                "  lease primary.execution: {id} primary (fencing token {}), renewed every 500 ms",
                int(r, "lease_token")
            );
        } else {
            println!("  lease primary.execution: {id} standby (takes over if the primary dies)");
        }
    }
    for (id, r) in finals
        .iter()
        .filter(|(_, r)| int(r, "consensus_rounds") > 0)
    {
        println!(
            "  consensus: {id} proposed a position limit of 2,000,000: {} ({} of {} votes yes, threshold 0.67, {} µs)",
            if int(r, "consensus_accepted") > 0 { "accepted" } else { "rejected" },
            int(r, "consensus_yes"),
            int(r, "consensus_total"),
            int(r, "consensus_us")
        );
    }
}
