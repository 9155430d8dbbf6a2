//! The Overview's chart: one stacked bar per computer group, drawn as
//! inline SVG on the server (no script, no library). Each bar carries its
//! counts as `data-` attributes, and the page repeats them in a table, for
//! screen readers and for the browser test.

use maud::{Markup, html};

use crate::store::GroupHealth;

/// One of the overview's states: label, CSS class, and how to read its
/// count from a group's health.
pub type Segment = (&'static str, &'static str, fn(&GroupHealth) -> u64);

/// The overview's states, in the order bars stack them.
pub const SEGMENTS: [Segment; 5] = [
    ("Up to date", "up-to-date", |health| health.up_to_date),
    ("Needs updates", "needs-updates", |health| {
        health.needs_updates
    }),
    ("Failed", "failed", |health| health.failed),
    ("Waiting for restart", "pending-reboot", |health| {
        health.pending_reboot
    }),
    ("Not reported", "not-reported", |health| health.not_reported),
];

// Small enough that its text stays readable when a phone scales it down.
const WIDTH: f64 = 400.0;
const LABEL: f64 = 125.0;
const BAR: f64 = 22.0;
const GAP: f64 = 14.0;

/// The chart of `groups`' health.
pub fn health_chart(groups: &[GroupHealth], days: u64) -> Markup {
    let height = (groups.len() as f64) * (BAR + GAP) + GAP;
    let span = WIDTH - LABEL - 40.0;
    html! {
        svg.chart role="img" viewBox=(format!("0 0 {WIDTH} {height}"))
            aria-labelledby="chart-title" {
            title #chart-title {
                "Computers per group: up to date, needing updates, failed, waiting for a restart, not reported for "
                (days) " days"
            }
            @for (row, health) in groups.iter().enumerate() {
                @let y = GAP + (row as f64) * (BAR + GAP);
                g.bar data-group=(health.group) data-computers=(health.computers())
                    data-up-to-date=(health.up_to_date) data-needs-updates=(health.needs_updates)
                    data-failed=(health.failed) data-pending-reboot=(health.pending_reboot)
                    data-not-reported=(health.not_reported) {
                    text.label x="0" y=(y + BAR * 0.7) { (truncated(&health.group)) }
                    @for (label, class, count, x, width) in segments(health, span) {
                        rect class=(class) x=(fmt(x)) y=(y) width=(fmt(width)) height=(BAR) {
                            title { (health.group) ": " (count) " " (label.to_lowercase()) }
                        }
                    }
                    text.total x=(fmt(LABEL + span + 6.0)) y=(y + BAR * 0.7) { (health.computers()) }
                }
            }
        }
        ul.legend {
            @for (label, class, _) in SEGMENTS {
                li { span class=(format!("swatch {class}")) {} (label) }
            }
        }
    }
}

/// The bar's pieces: label, class, count, where it starts and how wide.
fn segments(health: &GroupHealth, span: f64) -> Vec<(&'static str, &'static str, u64, f64, f64)> {
    let total = health.computers().max(1) as f64;
    let mut x = LABEL;
    let mut pieces = Vec::new();
    for (label, class, read) in SEGMENTS {
        let count = read(health);
        if count > 0 {
            let width = span * (count as f64) / total;
            pieces.push((label, class, count, x, width));
            x += width;
        }
    }
    pieces
}

fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

/// A group's name cut to what fits beside its bar.
fn truncated(name: &str) -> String {
    match name.char_indices().nth(16) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}
