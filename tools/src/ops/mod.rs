//! One-shot commands for ops and debugging: `agents`, `topics`, `stat`, `dlq`, `pub`, `sub`,
//! `request`. Each attaches to the bus as a short-lived agent (`cli-<pid>`), does one thing,
//! prints it (as JSON with `--json`), and detaches; with no agentd on the bus it says so and
//! exits non-zero.

mod json;
mod messages;
mod queries;

use std::path::PathBuf;

use agentbus::client::{Agent, AttachOptions};
use anyhow::Context;

pub use messages::{pub_cmd, request_cmd, sub_cmd, PubArgs, RequestArgs, SubArgs};
pub use queries::{agents, dlq, stat, topics, DlqArgs};

/// Which bus, where, and how to print.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// The bus.
    #[arg(long, default_value = "default")]
    pub bus: String,
    /// Where the bus's socket is (default: the standard directory).
    #[arg(long)]
    pub socket_dir: Option<PathBuf>,
    /// Print JSON (one document; `sub` prints one per line).
    #[arg(long)]
    pub json: bool,
}

impl BusArgs {
    /// Attaches as `cli-<pid>` of type `cli`, without re-attaching if agentd restarts.
    pub fn attach(&self) -> anyhow::Result<Agent> {
        let mut options =
            AttachOptions::new(&self.bus, &format!("cli-{}", std::process::id()), "cli")
                .reconnect(None);
        if let Some(dir) = &self.socket_dir {
            options = options.socket_dir(dir);
        }
        Agent::attach(options).with_context(|| format!("attaching to bus {:?}", self.bus))
    }
}
