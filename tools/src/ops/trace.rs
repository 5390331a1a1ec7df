//! `agentbus trace TRACE_ID`: the messages of one trace, from the trace log agentd keeps in the
//! bus header when started with `--trace-log N` (read-only, like `stat`).

use anyhow::{bail, Context};
use serde_json::json;

use agentbus::header::Hex;
use agentbus::RouteKind;
use agentd::bus_header::{HeaderReader, Snapshot, TraceRecord};

use super::stat::{duration, open};
use super::BusArgs;

/// `agentbus trace TRACE_ID`.
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// The trace id: 32 hex digits (W3C trace-context size), as the sender set it.
    pub trace_id: String,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Parses 32 hex digits (dashes allowed, as some tools print them).
pub(super) fn parse_trace_id(text: &str) -> anyhow::Result<[u8; 16]> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    agentbus::header::parse_hex(&digits).with_context(|| {
        format!("trace id {text:?} is not 32 hex digits (a W3C trace id, such as 4bf92f3577b34da6a3ce929d0e0e4736)")
    })
}

fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// The sender's agent id, if the slot still holds the agent that sent it.
fn sender(s: &Snapshot, r: &TraceRecord) -> String {
    s.agents
        .iter()
        .find(|a| a.entry.slot == r.slot && a.entry.epoch == r.epoch)
        .map_or_else(
            || format!("a {} (gone)", r.from_type),
            |a| a.entry.agent_id.clone(),
        )
}

/// Where it went, in words.
fn destination(s: &Snapshot, r: &TraceRecord) -> String {
    match r.route {
        Some(RouteKind::Topic) => s.topics.iter().find(|t| t.id == r.destination).map_or_else(
            || format!("topic {}", r.destination),
            |t| format!("topic {}", t.name),
        ),
        Some(RouteKind::Agent) => {
            let to = agentbus::control::AgentAddress::from_destination(r.destination);
            s.agents
                .iter()
                .find(|a| a.entry.slot == to.slot && a.entry.epoch == to.epoch)
                .map_or_else(
                    || format!("slot {} (gone)", to.slot),
                    |a| a.entry.agent_id.clone(),
                )
        }
        Some(route) => format!("{route} {}", r.destination),
        None => format!("route ? {}", r.destination),
    }
}

/// Prints the messages of one trace, oldest first.
pub fn trace(args: &TraceArgs) -> anyhow::Result<()> {
    let id = parse_trace_id(&args.trace_id)?;
    let reader: HeaderReader = open(&args.bus)?;
    let s = reader.snapshot();
    if s.trace_capacity == 0 {
        bail!(
            "agentd of bus {:?} keeps no trace log: start it with --trace-log N (or trace_log = N in its configuration) to keep the last N traced messages",
            args.bus.bus
        );
    }
    let records = reader.trace(Some(id));
    if args.bus.json {
        let list: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "trace_id": hex(&r.trace.trace_id), "span_id": hex(&r.trace.span_id),
                    "message_id": r.message_id, "correlation_id": r.correlation_id,
                    "from": sender(&s, r), "to": destination(&s, r),
                    "type": r.message_type.map(|t| t.to_string()),
                    "priority": r.priority.map(|p| p.to_string()),
                    "sent_ns": r.sent_ns, "routed_ns": r.routed_ns,
                    "copies": r.copies, "dead": r.dead, "bytes": r.bytes,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if records.is_empty() {
        println!(
            "no message of trace {} in the log (it keeps the last {} traced messages)",
            hex(&id),
            s.trace_capacity
        );
        return Ok(());
    }
    println!(
        "{:<17} {:<16} {:<18} {:<24} {:<14} {:>9} {:>6}",
        "span", "from", "to", "type/priority", "message", "routed in", "copies"
    );
    for r in &records {
        let kind = format!(
            "{}/{}",
            r.message_type.map_or("?".into(), |t| t.to_string()),
            r.priority.map_or("?".into(), |p| p.to_string())
        );
        let copies = if r.dead > 0 {
            format!("{} +{} dead", r.copies, r.dead)
        } else {
            r.copies.to_string()
        };
        println!(
            "{:<17} {:<16} {:<18} {:<24} {:<14} {:>9} {:>6}",
            hex(&r.trace.span_id),
            sender(&s, r),
            destination(&s, r),
            kind,
            format!("#{}", r.message_id),
            duration(r.routed_ns.saturating_sub(r.sent_ns)),
            copies
        );
    }
    println!("{} messages of trace {}", records.len(), hex(&id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_parse_from_hex_and_refuse_anything_else() {
        let id = parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(hex(&id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parse_trace_id("4bf92f35-77b3-4da6-a3ce-929d0e0e4736").is_ok());
        let e = parse_trace_id("xyz").unwrap_err().to_string();
        assert!(e.contains("32 hex digits"), "{e}");
    }
}
