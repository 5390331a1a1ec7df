//! `agentbus`: the command line for agentbus. One file (or folder) per subcommand.
#![forbid(unsafe_code)]

mod demo;

use clap::{Parser, Subcommand};

/// The agentbus command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "agentbus: a shared-memory message bus for trading agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a trading demo on an embedded agentd: a market-data feed, two strategies, a risk
    /// agent and two execution agents, each its own process.
    Demo(demo::DemoArgs),
    /// (internal) Runs one agent of the demo; started by `demo`.
    #[command(name = "__agent", hide = true)]
    Agent(demo::roles::RoleArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Agent(args) => demo::roles::run(args),
    }
}
