//! deb822 paragraphs: `Packages`, `Release`, dpkg's `status`, `.sources`.
//!
//! A small zero-copy reader over text already in memory: a paragraph is a
//! list of `(name, value)` slices of the input; nothing is copied and the
//! only allocation is one field list per paragraph. Written instead of
//! taking a deb822 crate because of speed and shape: `deb822-lossless`
//! builds a lossless syntax tree (it is made for editing files) and
//! `deb822-fast` owns a `String` per field, where the apt scan reads Debian
//! bookworm's main `Packages` (63,440 paragraphs, 50 MB) on every sync and
//! the whole sync goal is ≤ 1 s including decompression and hashing. This
//! reader, with the `Packages` fields the scan needs, parses the host's
//! 52.7 MB of lists (66,575 packages) in 85 ms of CPU on the 2-core test
//! machine (`BENCHMARKS.md`, "Issue 13: apt lists"); the crates were not
//! measured.
//!
//! Tolerated: continuation lines (a leading space or tab), `#` comment
//! lines (deb822 `.sources` files have them), CRLF line ends, several
//! blank lines between paragraphs. Bounded: [`MAX_FIELD_BYTES`],
//! [`MAX_FIELDS`] per paragraph, [`MAX_PARAGRAPHS`] per file; the input's
//! own size is bounded by whoever read it.

use std::fmt;

/// The longest field value, in bytes (dpkg's `status` has long
/// `Conffiles` lists; nothing real comes near this).
pub const MAX_FIELD_BYTES: usize = 4 << 20;
/// The most fields one paragraph may have.
pub const MAX_FIELDS: usize = 1024;
/// The most paragraphs one file may have (Debian's largest index has
/// about 65,000).
pub const MAX_PARAGRAPHS: usize = 2_000_000;

/// Why a file is not deb822, with the line (1-based; 0 for the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The line where reading stopped; 0 when it is about the whole text.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl FormatError {
    /// An error at `line`.
    pub fn at(line: usize, reason: impl Into<String>) -> Self {
        FormatError {
            line,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for FormatError {}

/// Checks that `bytes` is UTF-8 text, the one encoding deb822 files use.
pub fn text(bytes: &[u8]) -> Result<&str, FormatError> {
    std::str::from_utf8(bytes).map_err(|error| {
        let line = bytes[..error.valid_up_to()]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            + 1;
        FormatError::at(line, "not UTF-8 text (a binary file?)")
    })
}

/// One paragraph: its fields in file order, borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paragraph<'a> {
    /// The line the paragraph starts on (1-based).
    pub line: usize,
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    /// The value of field `name` (compared without case, as deb822 does),
    /// with continuation lines still in it (joined by `\n`, each with its
    /// leading space) and surrounding whitespace trimmed.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }

    /// The first line of field `name`, trimmed.
    pub fn first_line(&self, name: &str) -> Option<&'a str> {
        self.get(name)
            .map(|value| value.split('\n').next().unwrap_or("").trim())
    }

    /// The fields in file order.
    pub fn fields(&self) -> &[(&'a str, &'a str)] {
        &self.fields
    }
}

/// The paragraphs of `text`, one at a time.
pub fn paragraphs(text: &str) -> Paragraphs<'_> {
    Paragraphs {
        text,
        position: 0,
        line: 0,
        count: 0,
    }
}

/// Iterator over the paragraphs of a text; stops after the first error.
#[derive(Debug, Clone)]
pub struct Paragraphs<'a> {
    text: &'a str,
    /// Where the next line starts.
    position: usize,
    line: usize,
    count: usize,
}

impl<'a> Paragraphs<'a> {
    /// The next line without its end (`\n` or `\r\n`), and where it starts.
    fn next_line(&mut self) -> Option<(&'a str, usize)> {
        let start = self.position;
        let rest = self.text.get(start..).filter(|rest| !rest.is_empty())?;
        let line = match rest.find('\n') {
            Some(end) => {
                self.position = start + end + 1;
                &rest[..end]
            }
            None => {
                self.position = self.text.len();
                rest
            }
        };
        self.line += 1;
        Some((line.strip_suffix('\r').unwrap_or(line), start))
    }

    /// Ends the iteration with an error.
    fn fail(
        &mut self,
        line: usize,
        reason: impl Into<String>,
    ) -> Option<Result<Paragraph<'a>, FormatError>> {
        self.position = self.text.len();
        Some(Err(FormatError::at(line, reason)))
    }

    fn push(
        &mut self,
        paragraph: &mut Paragraph<'a>,
        (name, start, end): (&'a str, usize, usize),
    ) -> Result<(), FormatError> {
        let value = self.text[start..end].trim();
        if value.len() > MAX_FIELD_BYTES {
            self.position = self.text.len();
            return Err(FormatError::at(
                self.line,
                format!("field {name} is longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        if paragraph.fields.len() >= MAX_FIELDS {
            self.position = self.text.len();
            return Err(FormatError::at(
                paragraph.line,
                format!("a paragraph with more than {MAX_FIELDS} fields"),
            ));
        }
        paragraph.fields.push((name, value));
        Ok(())
    }
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Packages paragraphs have about 20 fields: one allocation each.
        let mut paragraph = Paragraph {
            line: 0,
            fields: Vec::with_capacity(32),
        };
        // The field being read: its name, where its value starts in the
        // text, and where it ends so far (continuation lines extend it).
        let mut open: Option<(&'a str, usize, usize)> = None;
        while let Some((line, start)) = self.next_line() {
            if line.trim().is_empty() {
                if open.is_some() {
                    break;
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let Some((_, _, end)) = open.as_mut() else {
                    return self.fail(self.line, "a continuation line with no field before it");
                };
                *end = start + line.len();
                continue;
            }
            if let Some(field) = open.take()
                && let Err(error) = self.push(&mut paragraph, field)
            {
                return Some(Err(error));
            }
            let Some(colon) = line.find(':') else {
                return self.fail(
                    self.line,
                    "a line that is neither `Field: value` nor a continuation",
                );
            };
            let name = &line[..colon];
            if name.is_empty() || name.bytes().any(|byte| byte.is_ascii_whitespace()) {
                return self.fail(self.line, format!("{name:?} is not a field name"));
            }
            if paragraph.fields.is_empty() {
                paragraph.line = self.line;
            }
            open = Some((name, start + colon + 1, start + line.len()));
        }
        let field = open?;
        if let Err(error) = self.push(&mut paragraph, field) {
            return Some(Err(error));
        }
        self.count += 1;
        if self.count > MAX_PARAGRAPHS {
            return self.fail(
                paragraph.line,
                format!("more than {MAX_PARAGRAPHS} paragraphs"),
            );
        }
        Some(Ok(paragraph))
    }
}

/// The lines of a multi-line field value (continuation lines without
/// their leading space; deb822's ` .` for an empty line kept as is).
pub fn value_lines(value: &str) -> impl Iterator<Item = &str> {
    value
        .split('\n')
        .map(|line| line.trim_end_matches('\r').trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Paragraph<'_>>, FormatError> {
        paragraphs(text).collect()
    }

    #[test]
    fn reads_fields_paragraphs_and_continuations() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n more\n\n\n\
                    Package: b\r\nversion:2\r\n\r\n";
        let found = all(text).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].get("package"), Some("a"));
        assert_eq!(found[0].first_line("Description"), Some("short"));
        let lines: Vec<_> = value_lines(found[0].get("Description").unwrap()).collect();
        assert_eq!(lines, ["short", "long line", ".", "more"]);
        assert_eq!(found[1].get("Version"), Some("2"));
        assert_eq!(found[1].line, 9);
        assert_eq!(found[1].get("Missing"), None);
    }

    #[test]
    fn folded_field_starting_on_the_next_line() {
        let text = "SHA256:\n abc 1 main/Packages\n def 2 Packages\nOther: x\n";
        let found = all(text).unwrap();
        let lines: Vec<_> = value_lines(found[0].get("SHA256").unwrap()).collect();
        assert_eq!(lines, ["abc 1 main/Packages", "def 2 Packages"]);
        assert_eq!(found[0].get("Other"), Some("x"));
    }

    #[test]
    fn comments_are_skipped_even_inside_a_paragraph() {
        let text = "# header\nTypes: deb\n# a note\nURIs: http://x/\n#Enabled: no\n";
        let found = all(text).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].fields().len(), 2);
    }

    #[test]
    fn no_trailing_newline_and_empty_text() {
        assert_eq!(all("A: 1").unwrap()[0].get("A"), Some("1"));
        assert!(all("").unwrap().is_empty());
        assert!(all("\n\n  \n").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let error = all("A: 1\nno colon here\n").unwrap_err();
        assert_eq!(error.line, 2);
        let error = all(" continuation first\n").unwrap_err();
        assert_eq!(error.line, 1);
        assert!(error.to_string().contains("continuation"), "{error}");
        assert!(all("bad name: 1\n").is_err());
    }

    #[test]
    fn a_huge_field_is_refused() {
        let text = format!("A: {}\n", "x".repeat(MAX_FIELD_BYTES + 1));
        let error = all(&text).unwrap_err();
        assert!(error.reason.contains("longer than"), "{error}");
    }

    #[test]
    fn too_many_fields_are_refused() {
        let text: String = (0..=MAX_FIELDS).map(|n| format!("F{n}: x\n")).collect();
        assert!(all(&text).unwrap_err().reason.contains("fields"));
    }

    #[test]
    fn binary_garbage_is_not_text() {
        let error = text(b"Package: a\n\xff\xfe\x00garbage").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(text(b"Package: a\n").is_ok());
    }
}
