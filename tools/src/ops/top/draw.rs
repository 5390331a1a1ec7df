//! Drawing a frame: the summary lines, the agents and topics tables and the footer, on any
//! ratatui backend (the terminal, or a buffer for `--once`). The numbers come ready from
//! [`rows`](super::rows); this file only lays them out.

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};

use super::format::{count, percent, rate, si, span};
use super::rows::{sort_agents, AgentRow, SortKey, Summary, TopicRow, View, STALLED_NS};
use crate::ops::stat::duration;

/// Lines of the summary above the tables.
const SUMMARY_LINES: u16 = 4;
/// Lines of the footer.
const FOOTER_LINES: u16 = 1;
/// A table's lines beyond its rows: the title rule and the column headers.
const TABLE_CHROME: u16 = 2;

const LABEL: Style = Style::new().add_modifier(Modifier::BOLD);
const HEADER: Style = Style::new().add_modifier(Modifier::REVERSED);
const STALE: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const PROBLEM: Style = Style::new().fg(Color::Red);

/// The agents table's columns.
const AGENT_COLUMNS: [&str; 16] = [
    "slot", "agent", "type", "pid", "load", "beat", "sent/s", "recv/s", "in B/s", "out B/s",
    "depth", "fill", "high", "full i/o", "lost", "dead",
];
/// The topics table's columns.
const TOPIC_COLUMNS: [&str; 9] = [
    "topic",
    "subs",
    "pub/s",
    "deliv/s",
    "dead/s",
    "published",
    "delivered",
    "dead",
    "bytes",
];

/// What the viewer chose, and how the frame is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ui {
    /// The column the agents are sorted by.
    pub sort: SortKey,
    /// Whether the topics table is shown.
    pub topics: bool,
    /// Milliseconds between readings.
    pub interval_ms: u64,
    /// Whether this is the live view (the footer lists keys) or one printed frame.
    pub live: bool,
}

/// What one frame shows: the bus's numbers, or why they could not be read.
pub type Reading<'a> = Result<&'a View, &'a str>;

/// Draws a frame of bus `bus` over the whole of `frame`.
pub fn draw(frame: &mut Frame, bus: &str, reading: Reading, ui: &Ui) {
    let area = frame.area();
    let [body, footer] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(FOOTER_LINES)]).areas(area);
    frame.render_widget(Paragraph::new(footer_line(ui)), footer);
    match reading {
        Ok(view) => draw_view(frame, body, bus, view, ui),
        Err(why) => frame.render_widget(Paragraph::new(problem_lines(bus, why, ui)), body),
    }
}

fn draw_view(frame: &mut Frame, area: Rect, bus: &str, view: &View, ui: &Ui) {
    let mut agents = view.agents.clone();
    sort_agents(&mut agents, ui.sort);
    let wanted = table_height(agents.len());
    let topics = ui.topics.then(|| table_height(view.topics.len()));
    let (agents_h, topics_h) = heights(area.height.saturating_sub(SUMMARY_LINES), wanted, topics);
    let [summary, agents_area, topics_area, _] = Layout::vertical([
        Constraint::Length(SUMMARY_LINES),
        Constraint::Length(agents_h),
        Constraint::Length(topics_h),
        Constraint::Min(0),
    ])
    .areas(area);
    let lines = summary_lines(bus, &view.summary);
    frame.render_widget(Paragraph::new(lines), summary);
    frame.render_widget(agents_table(&agents, ui.sort), agents_area);
    if ui.topics {
        frame.render_widget(topics_table(&view.topics), topics_area);
    }
}

/// A table's height for `rows` rows.
fn table_height(rows: usize) -> u16 {
    u16::try_from(rows)
        .unwrap_or(u16::MAX)
        .saturating_add(TABLE_CHROME)
}

/// Splits `available` lines between the agents table (wanting `agents`) and the topics table
/// (wanting `topics`, `None` when hidden): the topics get at most half while the agents need
/// more, and whatever the agents leave.
pub fn heights(available: u16, agents: u16, topics: Option<u16>) -> (u16, u16) {
    let Some(topics) = topics else {
        return (agents.min(available), 0);
    };
    let topics_floor = topics.min(available / 2).max(topics.min(TABLE_CHROME + 1));
    let agents = agents.min(available.saturating_sub(topics_floor));
    (agents, topics.min(available - agents))
}

/// Label-value pairs as one line, labels bold.
fn fields(parts: Vec<(&'static str, String)>) -> Line<'static> {
    styled_fields(
        parts
            .into_iter()
            .map(|(l, v)| (l, v, Style::new()))
            .collect(),
    )
}

/// Label-value pairs as one line, labels bold and each value in its style.
fn styled_fields(parts: Vec<(&'static str, String, Style)>) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, (label, value, style)) in parts.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled(label, LABEL));
        spans.push(Span::styled(format!(" {value}"), style));
    }
    Line::from(spans)
}

/// The summary: agentd, the router, routing latency, dead letters.
pub fn summary_lines(bus: &str, s: &Summary) -> Vec<Line<'static>> {
    let stalled = s.beat_age_ns > STALLED_NS;
    let plain = Style::new();
    vec![
        styled_fields(vec![
            ("bus", bus.to_string(), plain),
            ("agentd pid", s.pid.to_string(), plain),
            ("up", span(s.uptime_ns), plain),
            (
                "router beat",
                format!(
                    "{} ago{}",
                    span(s.beat_age_ns),
                    if stalled { "!" } else { "" }
                ),
                if stalled { STALE } else { plain },
            ),
            ("agents", s.agents.to_string(), plain),
            ("faulted", count(s.faulted), plain),
            (
                "metrics",
                if s.metrics_on { "on" } else { "off" }.into(),
                plain,
            ),
        ]),
        fields(vec![
            ("router", format!("{} passes/s", rate(s.passes_s))),
            ("busy", format!("{} of passes", percent(s.busy_pct))),
            (
                "idle",
                s.idle_pct.map_or("-".into(), |p| percent(p) + " of time"),
            ),
            ("frames", format!("{}/s", rate(s.frames_s))),
            ("copies", format!("{}/s", rate(s.copies_s))),
            (
                "dropped",
                format!("{}/s, {} in all", rate(s.dropped_s), count(s.dropped)),
            ),
        ]),
        latency_line(s),
        dead_line(s),
    ]
}

fn latency_line(s: &Summary) -> Line<'static> {
    let over = s
        .interval_s
        .map_or("since start".into(), |secs| format!("last {secs:.1} s"));
    if !s.metrics_on {
        return fields(vec![("latency", "per-message metrics are off".into())]);
    }
    if s.latency_count == 0 {
        return fields(vec![("latency", format!("nothing routed ({over})"))]);
    }
    let mut parts = vec![(
        "latency",
        format!("{over}, {} routed:", count(s.latency_count)),
    )];
    for (label, ns) in &s.latency {
        parts.push((label, ns.map_or("-".into(), duration)));
    }
    fields(parts)
}

fn dead_line(s: &Summary) -> Line<'static> {
    let kinds: Vec<String> = s
        .dead_kinds
        .iter()
        .map(|(k, n)| format!("{k} {}", count(*n)))
        .collect();
    let all = if kinds.is_empty() {
        count(s.dead_total)
    } else {
        format!("{} ({})", count(s.dead_total), kinds.join(", "))
    };
    fields(vec![
        ("dead letters", format!("{}/s", rate(s.dead_s))),
        ("in all", all),
    ])
}

/// An agent's cells, in [`AGENT_COLUMNS`] order.
pub fn agent_cells(a: &AgentRow) -> Vec<String> {
    let beat = span(a.heartbeat_age_ns) + if a.stale { "!" } else { "" };
    vec![
        a.slot.to_string(),
        a.id.clone(),
        a.kind.clone(),
        a.pid.to_string(),
        count(a.load),
        beat,
        rate(a.sent_s),
        rate(a.received_s),
        rate(a.bytes_in_s),
        rate(a.bytes_out_s),
        si(a.depth as f64),
        percent(a.depth_pct),
        percent(a.high_pct),
        format!("{}/{}", count(a.full_in), count(a.full_out)),
        count(a.lost),
        count(a.dead),
    ]
}

/// A topic's cells, in [`TOPIC_COLUMNS`] order.
pub fn topic_cells(t: &TopicRow) -> Vec<String> {
    vec![
        t.name.clone(),
        t.subscribers.to_string(),
        rate(t.publishes_s),
        rate(t.deliveries_s),
        rate(t.dead_s),
        count(t.publishes),
        count(t.deliveries),
        count(t.dead),
        si(t.bytes as f64),
    ]
}

/// Each column as wide as its widest cell or header, text columns at most `cap`.
fn widths(headers: &[&str], rows: &[Vec<String>], text: &[usize], cap: usize) -> Vec<Constraint> {
    (0..headers.len())
        .map(|i| {
            let widest = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0);
            let w = if text.contains(&i) {
                widest.min(cap)
            } else {
                widest
            };
            Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX))
        })
        .collect()
}

/// A table: text columns (`text`) left-aligned, numbers right-aligned.
fn table(
    title: String,
    headers: &[&'static str],
    rows: Vec<(Vec<String>, Style)>,
    text: &[usize],
) -> Table<'static> {
    let cells: Vec<Vec<String>> = rows.iter().map(|(c, _)| c.clone()).collect();
    let widths = widths(headers, &cells, text, 24);
    let align = |i: usize, s: String| {
        if text.contains(&i) {
            Line::from(s)
        } else {
            Line::from(s).right_aligned()
        }
    };
    let header = Row::new(
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| align(i, (*h).to_string())),
    )
    .style(HEADER);
    let body = rows.into_iter().map(|(cells, style)| {
        Row::new(cells.into_iter().enumerate().map(|(i, c)| align(i, c))).style(style)
    });
    Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::new().borders(Borders::TOP).title(title))
}

fn agents_table(agents: &[AgentRow], sort: SortKey) -> Table<'static> {
    let rows = agents
        .iter()
        .map(|a| {
            let style = if a.stale { STALE } else { Style::new() };
            (agent_cells(a), style)
        })
        .collect();
    let title = format!(" agents: {}, by {} ", agents.len(), sort.label());
    table(title, &AGENT_COLUMNS, rows, &[1, 2])
}

fn topics_table(topics: &[TopicRow]) -> Table<'static> {
    let rows = topics
        .iter()
        .map(|t| (topic_cells(t), Style::new()))
        .collect();
    let title = format!(" topics: {}, busiest first ", topics.len());
    table(title, &TOPIC_COLUMNS, rows, &[0])
}

fn footer_line(ui: &Ui) -> Line<'static> {
    let shown = if ui.topics { "shown" } else { "hidden" };
    if !ui.live {
        return Line::from(format!(
            "one frame, rates over {} ms (agentbus top for the live view: q quits, s sorts, t topics)",
            ui.interval_ms
        ));
    }
    let key = |k: &'static str| Span::styled(k, HEADER);
    Line::from(vec![
        key("q"),
        Span::raw(" quit  "),
        key("s"),
        Span::raw(format!(" sort: {}  ", ui.sort.label())),
        key("t"),
        Span::raw(format!(" topics: {shown}  ")),
        Span::raw(format!("every {} ms", ui.interval_ms)),
    ])
}

fn problem_lines(bus: &str, why: &str, ui: &Ui) -> Vec<Line<'static>> {
    vec![
        fields(vec![("bus", bus.to_string())]),
        Line::styled(why.to_string(), PROBLEM),
        Line::from(format!("trying again every {} ms", ui.interval_ms)),
    ]
}

/// One frame as plain text, `width` columns wide and as tall as it needs.
pub fn frame_text(bus: &str, view: &View, ui: &Ui, width: u16) -> std::io::Result<String> {
    let topics = if ui.topics {
        table_height(view.topics.len())
    } else {
        0
    };
    let height = SUMMARY_LINES
        .saturating_add(table_height(view.agents.len()))
        .saturating_add(topics)
        .saturating_add(FOOTER_LINES);
    let mut terminal = Terminal::new(TestBackend::new(width, height))?;
    terminal.draw(|frame| draw(frame, bus, Ok(view), ui))?;
    Ok(text(terminal.backend().buffer()))
}

/// A buffer's characters, one line per row, without trailing blanks.
pub fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            if let Some(cell) = buffer.cell((x, y)) {
                line.push_str(cell.symbol());
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::top::rows::tests::{agent, snapshot};
    use crate::ops::top::rows::view;

    fn ui(live: bool) -> Ui {
        Ui {
            sort: SortKey::Sent,
            topics: true,
            interval_ms: 1000,
            live,
        }
    }

    fn sample() -> View {
        let mut a = snapshot(1_000);
        let mut b = snapshot(2_000);
        for (slot, id, sent) in [(0, "strategy-1", 1_500), (1, "exec-1", 20)] {
            a.agents.push(agent(slot, id, 0));
            b.agents.push(agent(slot, id, sent));
        }
        b.agents[1].heartbeat_age_ns = 3_000_000_000;
        view(Some(&a), &b, 0)
    }

    #[test]
    fn a_printed_frame_fits_120_columns_and_shows_every_agent() {
        let text = frame_text("demo", &sample(), &ui(false), 120).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
        let row = |id: &str| text.lines().find(|l| l.contains(id)).unwrap().to_string();
        assert!(row("strategy-1").contains("1.50k"), "{text}");
        assert!(row("exec-1").contains("3.0s!"), "{text}");
        assert!(text.starts_with("bus demo  agentd pid 42"), "{text}");
        assert!(text.contains("router beat 0ms ago  agents 2"), "{text}");
        assert!(text.contains("topics: 0"), "{text}");
    }

    #[test]
    fn the_live_footer_lists_the_keys() {
        let line = footer_line(&ui(true)).to_string();
        assert!(
            line.contains("q quit") && line.contains("s sort: sent/s"),
            "{line}"
        );
        assert!(line.contains("t topics: shown"), "{line}");
    }

    #[test]
    fn an_unreadable_bus_says_why() {
        let mut terminal = Terminal::new(TestBackend::new(80, 10)).unwrap();
        terminal
            .draw(|f| draw(f, "b", Err("no agentd serves bus \"b\""), &ui(true)))
            .unwrap();
        let text = text(terminal.backend().buffer());
        assert!(text.contains("no agentd serves bus"), "{text}");
        assert!(text.contains("trying again every 1000 ms"), "{text}");
    }

    #[test]
    fn topics_get_at_most_half_while_agents_need_more() {
        assert_eq!(heights(40, 10, Some(5)), (10, 5));
        assert_eq!(heights(20, 50, Some(30)), (10, 10));
        assert_eq!(heights(20, 50, None), (20, 0));
        assert_eq!(heights(20, 4, Some(30)), (4, 16));
        assert_eq!(heights(2, 4, Some(5)), (0, 2));
    }
}
