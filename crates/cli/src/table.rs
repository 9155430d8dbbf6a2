//! A plain text table for people: a header, columns padded to their widest
//! cell, and one flexible column cut short so that the table fits
//! [`WIDTH`] columns. A row may carry a note, printed on the next lines
//! (one per line of the note) under the flexible column (or indented less,
//! to fit) and never cut: it holds IDs and codes.

use std::io::{self, Write};

use crate::text;

/// The width tables fit in.
pub const WIDTH: usize = 80;

/// Space between columns.
const GAP: usize = 2;

/// The flexible column is never cut narrower than this.
const MIN_FLEXIBLE: usize = 12;

/// A note too long to go under the flexible column starts here.
const NOTE_INDENT: usize = 4;

/// How a column's cells line up.
#[derive(Clone, Copy)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers and sizes.
    Right,
}

pub struct Table {
    headers: Vec<(&'static str, Align)>,
    flexible: usize,
    rows: Vec<(Vec<String>, Option<String>)>,
}

impl Table {
    /// A table with these column headers; the column at `flexible` (the
    /// title, say) is the one cut to fit.
    pub fn new(headers: &[(&'static str, Align)], flexible: usize) -> Table {
        Table {
            headers: headers.to_vec(),
            flexible,
            rows: Vec::new(),
        }
    }

    /// Adds a row, with one cell per column, and its note if any.
    pub fn row(&mut self, cells: Vec<String>, note: Option<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push((cells, note));
    }

    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(header, _)| header.chars().count())
            .collect();
        // Cells and notes hold catalog text: escaped before they are measured.
        let rows: Vec<(Vec<String>, Option<String>)> = self
            .rows
            .iter()
            .map(|(cells, note)| {
                let cells = cells.iter().map(|cell| text::line(cell).into_owned());
                let note = note.as_ref().map(|note| {
                    let lines: Vec<String> = note
                        .lines()
                        .map(|line| text::line(line).into_owned())
                        .collect();
                    lines.join("\n")
                });
                (cells.collect(), note)
            })
            .collect();
        for (cells, _) in &rows {
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let total = widths.iter().sum::<usize>() + GAP * (widths.len().saturating_sub(1));
        if total > WIDTH {
            let flexible = &mut widths[self.flexible];
            *flexible = flexible
                .saturating_sub(total - WIDTH)
                .max(MIN_FLEXIBLE.min(*flexible));
        }
        let note_indent: usize = widths[..self.flexible]
            .iter()
            .map(|width| width + GAP)
            .sum();

        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(header, _)| (*header).to_owned())
            .collect();
        self.write_line(&headers, &widths, out)?;
        for (cells, note) in &rows {
            self.write_line(cells, &widths, out)?;
            for line in note.iter().flat_map(|note| note.lines()) {
                let indent = if note_indent + line.chars().count() <= WIDTH {
                    note_indent
                } else {
                    NOTE_INDENT.min(note_indent)
                };
                writeln!(out, "{:indent$}{line}", "")?;
            }
        }
        Ok(())
    }

    fn write_line(
        &self,
        cells: &[String],
        widths: &[usize],
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let mut line = String::new();
        for (index, ((cell, width), (_, align))) in
            cells.iter().zip(widths).zip(&self.headers).enumerate()
        {
            if index > 0 {
                line.push_str(&" ".repeat(GAP));
            }
            let cell = cut(cell, *width);
            let padding = " ".repeat(width - cell.chars().count());
            match align {
                Align::Left => {
                    line.push_str(&cell);
                    line.push_str(&padding);
                }
                Align::Right => {
                    line.push_str(&padding);
                    line.push_str(&cell);
                }
            }
        }
        writeln!(out, "{}", line.trim_end())
    }
}

/// The text, cut to `width` characters with an ellipsis if it is longer.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A size in bytes for people: `512 B`, `1.5 KiB`, `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time for people, to the minute, in UTC.
pub fn time(timestamp: jiff::Timestamp) -> String {
    timestamp.strftime("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flexible_column_is_cut_to_fit() {
        let mut table = Table::new(
            &[
                ("ID", Align::Left),
                ("TITLE", Align::Left),
                ("SIZE", Align::Right),
            ],
            1,
        );
        table.row(
            vec!["a".into(), "x".repeat(200), "1 B".into()],
            Some("note".into()),
        );
        table.row(vec!["b".into(), "short".into(), "10.0 KiB".into()], None);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].trim_end().chars().count(), WIDTH);
        assert!(lines[1].chars().count() == WIDTH && lines[1].contains('…'));
        assert!(lines[1].ends_with("     1 B"), "{text}");
        assert_eq!(lines[2], "    note");
        assert!(lines[3].starts_with("b   short   "), "{text}");
    }

    #[test]
    fn sizes_read_like_sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 << 20), "12.0 MiB");
    }
}
