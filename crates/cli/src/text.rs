//! Text from catalogs and the agent, made safe to print on a terminal.
//!
//! Titles, descriptions, details and licence terms come from whoever signed
//! a catalog; printed raw, an escape sequence in one could move the cursor,
//! erase lines and forge `wua search` or `wua history` output. Every such
//! string the CLI prints in text mode goes through [`line`] or
//! [`paragraphs`] (tables do it for their cells and notes); `--json` output
//! is left as it is, JSON escapes control characters itself.

use std::borrow::Cow;

/// `text` for one line: every control character (C0 with ESC, newline,
/// carriage return and tab among them, DEL, and C1) shown as `\u{…}`.
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// `text` over several lines (licence terms, descriptions): newlines and
/// tabs are kept, a carriage return ending a line is dropped (CRLF text),
/// every other control character is shown as `\u{…}`.
pub fn paragraphs(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, multiline: bool) -> Cow<'_, str> {
    let kept = |c: char, next: Option<char>| {
        !c.is_control()
            || (multiline && (c == '\n' || c == '\t' || (c == '\r' && next == Some('\n'))))
    };
    let mut chars = text.chars().peekable();
    let mut clean = true;
    while let Some(c) = chars.next() {
        if !kept(c, chars.peek().copied()) || (multiline && c == '\r') {
            clean = false;
            break;
        }
    }
    if clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        if multiline && c == '\r' && next == Some('\n') {
            continue;
        }
        if kept(c, next) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert_eq!(line("plain title"), "plain title");
        assert_eq!(
            line("a\u{1b}[2K\rFAKE\nline\tx\u{7f}\u{9b}2J"),
            "a\\u{1b}[2K\\u{d}FAKE\\u{a}line\\u{9}x\\u{7f}\\u{9b}2J"
        );
        assert_eq!(
            paragraphs("terms\r\n\tclause\u{1b}]0;title\u{7}\rover"),
            "terms\n\tclause\\u{1b}]0;title\\u{7}\\u{d}over"
        );
        assert!(matches!(paragraphs("a\nb\tc"), Cow::Borrowed(_)));
    }
}
