//! Text a peer wrote, made safe to print: every control character is written as a
//! `\uXXXX` escape, so that one log event stays one line and nothing a sender, a client
//! or a next hop chose reaches a terminal as a command (screen clear, hidden text,
//! cursor moves) or starts a forged line. The escape is the one JSON uses, so escaped
//! text stays valid inside a JSON string too.

use std::borrow::Cow;
use std::fmt::Write as _;

pub use hermod_actors::protocol::text::is_unsafe;

/// `text` with every unsafe character escaped; with `keep_line_breaks`, `\n` and `\t`
/// stay as they are (for output made of several lines by hermod itself).
pub fn escape_controls(text: &str, keep_line_breaks: bool) -> Cow<'_, str> {
    let keep = |c: char| keep_line_breaks && (c == '\n' || c == '\t');
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) && !keep(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_kept() {
        assert!(matches!(
            escape_controls("plain é ✓", false),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_controls("a\r\nb\x1b[2J\x01\x7f\u{9b}\u{2028}", false),
            "a\\u000d\\u000ab\\u001b[2J\\u0001\\u007f\\u009b\\u2028"
        );
        assert_eq!(
            escape_controls("line\n\tnext\x1b", true),
            "line\n\tnext\\u001b"
        );
    }
}
