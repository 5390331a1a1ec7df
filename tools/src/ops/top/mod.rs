//! `agentbus top`: a live monitor of a bus, like `htop` (or Aeron's AeronStat), read from the
//! bus header (read-only shared memory: nothing asked of agentd). A summary of agentd and its
//! router, a table of agents and one of topics, with rates over each interval; `--once` prints
//! one frame as text.
//!
//! The pieces: [`source`] reads the header (again after agentd restarts), [`rows`] turns two
//! readings into rows and rates, [`mod@format`] writes the numbers, [`draw`] lays out a frame,
//! [`live`] runs the keys and the interval, [`terminal`] holds the terminal.

mod draw;
mod format;
mod live;
mod rows;
mod source;
mod terminal;

use std::time::Duration;

use anyhow::Context;

use draw::Ui;
use source::HeaderFeed;

/// The width of a frame printed by `--once`.
const ONCE_WIDTH: u16 = 120;

/// Options of `agentbus top`.
#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// The bus.
    #[arg(long, default_value = "default")]
    pub bus: String,
    /// Milliseconds between readings of the header; rates are per second over this interval.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub interval_ms: u64,
    /// Print one frame as text and exit (two readings --interval-ms apart, for the rates).
    #[arg(long)]
    pub once: bool,
}

/// Runs `agentbus top`: fails at once if the bus's header cannot be read; later failures
/// (agentd stopped or restarting) show on screen until it can be read again.
pub fn top(args: &TopArgs) -> anyhow::Result<()> {
    let feed = HeaderFeed::open(&args.bus)?;
    let ui = Ui {
        sort: rows::SortKey::default(),
        topics: true,
        interval_ms: args.interval_ms,
        live: !args.once,
    };
    if args.once {
        once(feed, &ui)
    } else {
        live::run(feed, ui)
    }
}

/// Prints one frame, with rates over one interval.
fn once(mut feed: HeaderFeed, ui: &Ui) -> anyhow::Result<()> {
    feed.next_view()?;
    std::thread::sleep(Duration::from_millis(ui.interval_ms));
    let view = feed.next_view()?;
    let text = draw::frame_text(feed.bus(), &view, ui, ONCE_WIDTH).context("drawing the frame")?;
    print!("{text}");
    Ok(())
}
