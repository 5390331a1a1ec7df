//! Sends pings to the `pong` example through agentd and reports the round trips.
//!
//! `cargo run --release -p agentbus --example ping -- [BUS] [COUNT]`

use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions};
use agentbus::{Message, MessageType};

fn main() {
    if let Err(e) = run() {
        eprintln!("ping: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let bus = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    let count: usize = std::env::args().nth(2).map_or(Ok(10_000), |c| c.parse())?;
    let mut me = Agent::attach(AttachOptions::new(&bus, "ping", "echo-client"))?;
    let pong = me.peer("pong")?;
    let mut rtts = Vec::with_capacity(count);
    for i in 0..count {
        let msg = Message::raw(
            me.identity(),
            MessageType::TaskRequest,
            (i as u64).to_le_bytes().to_vec(),
        );
        let start = Instant::now();
        let id = me.send_blocking(&pong, &msg, Duration::from_secs(1))?;
        let reply = me
            .recv_timeout(Duration::from_secs(5))?
            .ok_or("no reply within 5 s: is the pong example running?")?;
        if reply.header().correlation_id != id {
            return Err(format!(
                "reply to {} while waiting for {id}",
                reply.header().correlation_id
            )
            .into());
        }
        rtts.push(start.elapsed());
    }
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize];
    println!(
        "ping: {count} round trips ping -> agentd -> pong -> agentd -> ping: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.99),
        rtts[rtts.len() - 1]
    );
    me.detach()?;
    Ok(())
}
