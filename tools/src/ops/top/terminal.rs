//! The terminal in `top`'s hands: raw mode and the alternate screen while it runs, and the
//! terminal as it was when it returns, fails or panics.

use std::io::{stdout, IsTerminal, Stdout};

use anyhow::{bail, Context};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;

/// The terminal `top` draws on.
pub type Screen = Terminal<CrosstermBackend<Stdout>>;

/// Holds the terminal in raw mode on the alternate screen; dropping it puts the terminal back.
#[derive(Debug)]
pub struct TerminalGuard(());

impl TerminalGuard {
    /// Switches to raw mode and the alternate screen, hides the cursor, and makes a panic put
    /// the terminal back before its message is printed (so the message stays readable).
    pub fn enter() -> anyhow::Result<(TerminalGuard, Screen)> {
        if !stdout().is_terminal() {
            bail!("agentbus top draws on a terminal and stdout is not one: use --once to print a frame");
        }
        enable_raw_mode().context("agentbus top needs a terminal (or use --once)")?;
        // From here on, dropping the guard undoes whatever succeeded.
        let guard = TerminalGuard(());
        restore_on_panic();
        execute!(stdout(), EnterAlternateScreen, Hide).context("switching screens")?;
        let screen = Terminal::new(CrosstermBackend::new(stdout()))?;
        Ok((guard, screen))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen and raw mode and shows the cursor; harmless when already done.
fn restore() {
    let _ = execute!(stdout(), LeaveAlternateScreen, Show);
    let _ = disable_raw_mode();
}

fn restore_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
