//! Echoes every message back to its sender, through agentd.
//!
//! `cargo run --release -p agentbus --example pong -- [BUS]` (with `agentd --bus BUS` running).

use std::time::Duration;

use agentbus::client::{Agent, AttachOptions, Raw};
use agentbus::header::AGENTD_SLOT;

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
    let (tx, rx) = me.split();
    let mut echoed = 0u64;
    loop {
        let Some(ping) = rx.recv_timeout(Duration::from_secs(1))? else {
            continue;
        };
        if ping.header().source_slot == AGENTD_SLOT {
            continue; // an error report, not a ping
        }
        let Some(bytes) = ping.raw() else {
            continue; // not a ping
        };
        // Echoed from the ping's own bytes, read in place, while it is still held.
        tx.reply(ping.header(), Raw(bytes))?;
        echoed += 1;
        if echoed % 10_000 == 0 {
            eprintln!("pong: {echoed} echoed");
        }
    }
}
