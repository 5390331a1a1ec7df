//! `agentbus`: the command line for agentbus. One file (or folder) per subcommand.
#![forbid(unsafe_code)]

mod bench;
mod bridge;
mod demo;
mod ops;
mod workflow;

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
    /// Measures tail latency and throughput beside the hardware floor and the alternatives
    /// (Unix sockets, crossbeam), in one run.
    Bench(bench::BenchArgs),
    /// Runs a workflow defined in a TOML file (`agentbus workflow run FILE --bus BUS`), a line
    /// per step as it runs, retries, skips or fails.
    Workflow(workflow::WorkflowArgs),
    /// Lists the agents attached, with their status and router counters.
    Agents(ops::BusArgs),
    /// Lists the topics, with their subscribers and configuration.
    Topics(ops::BusArgs),
    /// Prints the bus's counters and routing-latency percentiles (read from shared memory:
    /// works while agentd's control thread is wedged).
    Stat(ops::BusArgs),
    /// A live monitor of the bus, like htop: agentd, the router, each agent and each topic,
    /// with rates, read from shared memory (`--once` prints one frame).
    Top(ops::TopArgs),
    /// Prints the messages of one trace from agentd's trace log (agentd --trace-log N).
    Trace(ops::TraceArgs),
    /// The dead-letter queue: `dlq list`, `dlq retry SEQ`, `dlq purge`.
    Dlq(ops::DlqArgs),
    /// Publishes one message on a topic (raw bytes).
    Pub(ops::PubArgs),
    /// Prints messages on topics matching a pattern as they come.
    Sub(ops::SubArgs),
    /// Sends a request (to an agent id, `cap:a,b` or `type:t`) and prints the answer.
    Request(ops::RequestArgs),
    /// Carries this bus's topics and requests to and from other hosts over NATS
    /// (`--export 'market.>' --import 'orders.>' --serve TYPE --remote TYPE`).
    Bridge(bridge::BridgeArgs),
    /// (internal) Runs one agent of the demo; started by `demo`.
    #[command(name = "__agent", hide = true)]
    Agent(demo::roles::RoleArgs),
}

fn main() -> anyhow::Result<()> {
    // The benchmark re-executes this binary for the other side of a case.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(agentbus_benches::child::CHILD_FLAG) {
        let path = argv.get(2).map(String::as_str).unwrap_or("-");
        return agentbus_benches::cases::run_child(path, argv.get(3..).unwrap_or(&[]));
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Agent(args) => demo::roles::run(args),
        Command::Workflow(args) => workflow::run(args),
        Command::Bridge(args) => bridge::run(args),
        Command::Agents(args) => ops::agents(&args),
        Command::Topics(args) => ops::topics(&args),
        Command::Stat(args) => ops::stat(&args),
        Command::Top(args) => ops::top(&args),
        Command::Trace(args) => ops::trace(&args),
        Command::Dlq(args) => ops::dlq(&args),
        Command::Pub(args) => ops::pub_cmd(&args),
        Command::Sub(args) => ops::sub_cmd(&args),
        Command::Request(args) => ops::request_cmd(&args),
    }
}
