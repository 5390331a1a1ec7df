//! One-shot commands for ops and debugging. `stat` and `trace` read the bus header (read-only
//! shared memory: they work while agentd's control thread is wedged); `agents`, `topics`,
//! `dlq`, `pub`, `sub` and `request` attach to the bus as a short-lived agent (`cli-<pid>`), do
//! one thing, and detach. Each prints JSON with `--json`; with no agentd on the bus each says
//! so and exits non-zero.

mod json;
mod messages;
mod queries;
pub mod stat;
mod top;
mod trace;

use std::path::PathBuf;

use agentbus::client::{Agent, AttachOptions};
use anyhow::Context;

pub use messages::{pub_cmd, request_cmd, sub_cmd, PubArgs, RequestArgs, SubArgs};
pub use queries::{agents, dlq, topics, DlqArgs};
pub use stat::stat;
pub use top::{top, TopArgs};
pub use trace::{trace, TraceArgs};

pub use agentbus::text::printable;

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
