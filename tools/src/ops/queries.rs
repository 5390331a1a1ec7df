//! `agentbus agents`, `topics` and `dlq`: what agentd knows, one request each.

use anyhow::{bail, Context};

use super::{json, printable, BusArgs};

/// Every agent in a slot, with its status and router counters.
pub fn agents(args: &BusArgs) -> anyhow::Result<()> {
    let agent = args.attach()?;
    let mut list = agent.list_agents()?;
    list.retain(|a| a.agent_id != agent.identity().agent_id);
    if args.json {
        println!(
            "{}",
            serde_json::Value::Array(list.iter().map(json::agent).collect())
        );
        return Ok(());
    }
    println!(
        "{:<5} {:<20} {:<14} {:<13} {:>5} {:>10} {:>10} {:>8} {:>8}",
        "slot", "agent", "type", "status", "load", "sent", "received", "dead", "lost"
    );
    for a in &list {
        println!(
            "{:<5} {:<20} {:<14} {:<13} {:>5} {:>10} {:>10} {:>8} {:>8}",
            a.slot,
            printable(&a.agent_id),
            printable(&a.agent_type),
            format!("{:?}", a.status),
            a.load,
            a.frames_sent,
            a.copies_received,
            a.frames_dead,
            a.copies_lost
        );
    }
    Ok(())
}

/// Every topic, with its subscribers and configuration.
pub fn topics(args: &BusArgs) -> anyhow::Result<()> {
    let agent = args.attach()?;
    let list = agent.list_topics()?;
    if args.json {
        println!(
            "{}",
            serde_json::Value::Array(list.iter().map(json::topic).collect())
        );
        return Ok(());
    }
    println!(
        "{:<5} {:<28} {:>11} {:<17} {:>8}  publishers",
        "id", "topic", "subscribers", "back-pressure", "history"
    );
    for t in &list {
        println!(
            "{:<5} {:<28} {:>11} {:<17} {:>8}  {}",
            t.id,
            printable(&t.name),
            t.subscribers,
            t.config.back_pressure.name(),
            t.config.history,
            printable(&t.config.publishers.to_string())
        );
    }
    Ok(())
}

/// `agentbus dlq list|retry SEQ|purge`.
#[derive(Debug, Clone, clap::Args)]
pub struct DlqArgs {
    /// `list`, `retry` or `purge`.
    pub action: String,
    /// The letter to retry (its sequence number, as `list` shows).
    pub sequence: Option<u64>,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// The dead-letter queue: list, retry one, or purge.
pub fn dlq(args: &DlqArgs) -> anyhow::Result<()> {
    let agent = args.bus.attach()?;
    match args.action.as_str() {
        "list" => {
            let letters = agent.dead_letters()?;
            if args.bus.json {
                println!(
                    "{}",
                    serde_json::Value::Array(letters.iter().map(json::letter).collect())
                );
                return Ok(());
            }
            println!(
                "{:<8} {:<14} {:<10} {:>7}  reason",
                "seq", "type", "route", "retries"
            );
            for l in &letters {
                println!(
                    "{:<8} {:<14} {:<10} {:>7}  {}",
                    l.sequence,
                    l.message_type.to_string(),
                    l.route.to_string(),
                    l.retries,
                    printable(&l.reason)
                );
            }
            println!("{} dead letters", letters.len());
        }
        "retry" => {
            let seq = args
                .sequence
                .context("dlq retry needs the letter's sequence number (from `dlq list`)")?;
            agent.retry_dead_letter(seq)?;
            println!("dead letter {seq} routed again");
        }
        "purge" => {
            let n = agent.purge_dead_letters()?;
            if args.bus.json {
                println!("{}", serde_json::json!({ "purged": n }));
            } else {
                println!("{n} dead letters purged");
            }
        }
        other => bail!("unknown dlq action {other:?}: use list, retry SEQ or purge"),
    }
    Ok(())
}
