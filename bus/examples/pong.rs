//! Echoes every message back to its sender, through agentd.
//!
//! `cargo run --release -p agentbus --example pong -- [BUS]` (with `agentd --bus BUS` running).

use std::time::Duration;

use agentbus::client::{Agent, AttachOptions};
use agentbus::{Message, MessageType};

fn main() {
    if let Err(e) = run() {
        eprintln!("pong: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let bus = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    let mut me = Agent::attach(AttachOptions::new(&bus, "pong", "echo"))?;
    eprintln!(
        "pong: attached to bus {bus:?} in slot {}; echoing (Ctrl-C to stop)",
        me.slot()
    );
    let mut echoed = 0u64;
    loop {
        // Copy out what the reply needs, then let the frame go before sending.
        let Some((from, id, payload)) = me.recv_timeout(Duration::from_secs(1))?.map(|d| {
            let m = d.to_message();
            (m.from.agent_id, m.id, m.payload)
        }) else {
            continue;
        };
        if from == "agentd" {
            continue; // an error report, not a ping
        }
        let reply = Message::new(MessageType::TaskResponse, me.identity(), payload).correlation(id);
        me.send_blocking(&from, &reply, Duration::from_secs(1))?;
        echoed += 1;
        if echoed % 10_000 == 0 {
            eprintln!("pong: {echoed} echoed");
        }
    }
}
