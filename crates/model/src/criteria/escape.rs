//! WUA's string escapes (`IUpdateSearcher::EscapeString`, MS-UAMG §3.38.4.9).

use std::borrow::Cow;

/// Makes a string safe inside a criteria literal: `'` becomes `[']`, `[`
/// becomes `[[]` and `]` becomes `[]]`; nothing else changes.
///
/// ```
/// use openwua_model::criteria::escape_string;
/// assert_eq!(escape_string("it's [x]"), "it[']s [[]x[]]");
/// ```
pub fn escape_string(text: &str) -> Cow<'_, str> {
    if !text.contains(['\'', '[', ']']) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\'' | '[' | ']' => {
                escaped.push('[');
                escaped.push(c);
                escaped.push(']');
            }
            _ => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}
