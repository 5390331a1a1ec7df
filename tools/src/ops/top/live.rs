//! The live view: a frame each interval, redrawn at once when a key changes what it shows.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::draw::{draw, Ui};
use super::rows::View;
use super::source::HeaderFeed;
use super::terminal::{Screen, TerminalGuard};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave (`q`, Esc, Ctrl-C).
    Quit,
    /// Sort the agents by the next column (`s`).
    NextSort,
    /// Show or hide the topics (`t`).
    ToggleTopics,
    /// Draw again (the terminal changed size).
    Redraw,
    /// Nothing.
    Ignore,
}

/// The action of key `key`.
pub fn action(key: KeyEvent) -> Action {
    if key.kind != KeyEventKind::Press {
        return Action::Ignore;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Action::Quit,
        KeyCode::Char('s' | 'S') => Action::NextSort,
        KeyCode::Char('t' | 'T') => Action::ToggleTopics,
        _ => Action::Ignore,
    }
}

/// Runs the live view until a key quits it; the terminal is put back however it ends.
pub fn run(mut feed: HeaderFeed, mut ui: Ui) -> anyhow::Result<()> {
    let (_guard, mut screen) = TerminalGuard::enter()?;
    let interval = Duration::from_millis(ui.interval_ms);
    loop {
        let reading = feed.next_view().map_err(|e| e.to_string());
        let next = Instant::now() + interval;
        loop {
            redraw(&mut screen, feed.bus(), &reading, &ui)?;
            match next_action(next)? {
                None => break,
                Some(Action::Quit) => return Ok(()),
                Some(Action::NextSort) => ui.sort = ui.sort.next(),
                Some(Action::ToggleTopics) => ui.topics = !ui.topics,
                Some(Action::Redraw | Action::Ignore) => {}
            }
        }
    }
}

fn redraw(
    screen: &mut Screen,
    bus: &str,
    reading: &Result<View, String>,
    ui: &Ui,
) -> std::io::Result<()> {
    let reading = reading.as_ref().map_err(String::as_str);
    screen.draw(|frame| draw(frame, bus, reading, ui))?;
    Ok(())
}

/// Waits until `deadline` for a key that does something (or a resize); `None` at the deadline.
fn next_action(deadline: Instant) -> std::io::Result<Option<Action>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(None);
        }
        let action = match event::read()? {
            Event::Key(key) => action(key),
            Event::Resize(..) => Action::Redraw,
            _ => Action::Ignore,
        };
        if action != Action::Ignore {
            return Ok(Some(action));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn keys_quit_sort_and_toggle() {
        let none = KeyModifiers::NONE;
        assert_eq!(action(key(KeyCode::Char('q'), none)), Action::Quit);
        assert_eq!(action(key(KeyCode::Esc, none)), Action::Quit);
        assert_eq!(
            action(key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Action::Quit
        );
        assert_eq!(action(key(KeyCode::Char('c'), none)), Action::Ignore);
        assert_eq!(action(key(KeyCode::Char('s'), none)), Action::NextSort);
        assert_eq!(action(key(KeyCode::Char('t'), none)), Action::ToggleTopics);
        let mut release = key(KeyCode::Char('q'), none);
        release.kind = KeyEventKind::Release;
        assert_eq!(action(release), Action::Ignore);
    }
}
