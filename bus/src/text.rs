//! Names agents chose, made safe to show.

use std::borrow::Cow;

/// `text` with its control characters replaced by `?`: an agent id, type or topic name is
/// whatever an agent chose, and printed raw its escape sequences would reach an operator's
/// terminal, or its line breaks end a NATS header and start a forged one.
///
/// ```
/// assert_eq!(agentbus::text::printable("feed-1"), "feed-1");
/// assert_eq!(agentbus::text::printable("a\u{1b}]0;x\u{7}\n"), "a?]0;x??");
/// ```
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}
