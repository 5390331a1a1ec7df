//! `agentbus stat`: the bus's counters and routing-latency percentiles, read from the bus
//! header (read-only shared memory): no attach, nothing asked of agentd, so it answers while
//! agentd's control thread is wedged.

use agentd::bus_header::{HeaderReader, Snapshot};
use serde_json::json;

use super::BusArgs;

/// Formats `ns` for people: `850 ns`, `12.3 us`, `4.56 ms`, `1.20 s`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// The percentiles `stat` and `top` show, with their labels.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

/// Opens bus `args.bus`'s header.
pub fn open(args: &BusArgs) -> anyhow::Result<HeaderReader> {
    Ok(HeaderReader::open(&args.bus)?)
}

/// Prints the counters and percentiles.
pub fn stat(args: &BusArgs) -> anyhow::Result<()> {
    let s = open(args)?.snapshot();
    if args.json {
        println!("{}", to_json(&s));
        return Ok(());
    }
    let r = &s.router;
    let up_ns = agentbus_ipc::clock::realtime_ns().saturating_sub(s.started_ns);
    println!(
        "bus {:?}: agentd pid {}, up {}, router beat {} ago, per-message metrics {}",
        args.bus,
        s.pid,
        duration(up_ns),
        duration(s.read_at.saturating_sub(r.beat)),
        if s.metrics_on { "on" } else { "off" }
    );
    let busy = 100.0 * r.busy_passes as f64 / r.passes.max(1) as f64;
    println!(
        "router      {} passes ({busy:.1}% busy), idle {} in all",
        r.passes,
        duration(r.idle_ns)
    );
    println!(
        "frames      {} in ({} bytes), {} copies delivered, {} dropped by topic policy",
        r.frames_in, r.bytes_in, r.delivered, r.dropped
    );
    let dead: Vec<String> = s
        .dead_by_kind
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect();
    println!(
        "dead        {} letters{}",
        r.dead,
        if dead.is_empty() {
            String::new()
        } else {
            format!(" ({})", dead.join(", "))
        }
    );
    println!(
        "agents      {} attached, {} faulted since start",
        s.agents.len(),
        r.faulted
    );
    let n = s.latency.count();
    if n == 0 {
        println!("latency     no routed message measured yet");
    } else {
        let cols: Vec<String> = PERCENTILES
            .iter()
            .map(|(label, q)| format!("{label} {}", duration(s.latency.quantile(*q).unwrap_or(0))))
            .collect();
        println!("latency     {} (routing, {n} messages)", cols.join("  "));
    }
    Ok(())
}

/// The snapshot as `stat --json` prints it.
pub fn to_json(s: &Snapshot) -> serde_json::Value {
    let r = &s.router;
    let percentiles: serde_json::Map<String, serde_json::Value> = PERCENTILES
        .iter()
        .map(|(label, q)| ((*label).to_string(), json!(s.latency.quantile(*q))))
        .collect();
    json!({
        "pid": s.pid,
        "started_ns": s.started_ns,
        "metrics_on": s.metrics_on,
        "router": {
            "passes": r.passes, "busy_passes": r.busy_passes, "idle_ns": r.idle_ns,
            "frames_in": r.frames_in, "bytes_in": r.bytes_in, "delivered": r.delivered,
            "dead_lettered": r.dead, "dropped": r.dropped, "faulted": r.faulted,
            "beat_age_ns": s.read_at.saturating_sub(r.beat),
        },
        "dead_letters": s.dead_by_kind.iter().map(|(k, n)| (k.name().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "latency_ns": {
            "count": s.latency.count(), "sum": s.latency.sum_ns, "percentiles": percentiles,
        },
        "agents": s.agents.iter().map(|a| json!({
            "slot": a.entry.slot, "agent_id": a.entry.agent_id, "agent_type": a.entry.agent_type,
            "pid": a.entry.pid, "sent": a.sent, "received": a.received, "dead": a.dead,
            "lost": a.lost, "bytes_sent": a.lanes.bytes_sent,
            "bytes_received": a.lanes.bytes_received, "load": a.lanes.load,
            "heartbeat_age_ns": a.heartbeat_age_ns, "inbound_depth": a.lanes.in_depth,
            "inbound_high_water": a.lanes.in_high, "inbound_full": a.lanes.in_full,
            "outbound_full": a.lanes.out_full,
        })).collect::<Vec<_>>(),
        "topics": s.topics.iter().map(|t| json!({
            "id": t.id, "name": t.name, "publishes": t.publishes, "deliveries": t.deliveries,
            "dead": t.dead, "bytes": t.bytes, "subscribers": t.subscribers,
        })).collect::<Vec<_>>(),
        "messages": s.messages.iter().map(|m| json!({
            "from": m.from, "to": m.to, "type": m.message_type.to_string(),
            "priority": m.priority.to_string(), "count": m.count,
        })).collect::<Vec<_>>(),
    })
}
