//! `wua criteria check`: the normalized criteria, or where and why they are
//! invalid.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use openwua_model::criteria::{Criteria, ParseCriteriaError};
use openwua_model::enums::DeploymentAction;
use openwua_model::hresult::HResult;
use serde::Serialize;

use crate::exit;

/// Characters of context shown on each side of an error.
const CONTEXT_CHARS: usize = 60;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Valid {
    valid: bool,
    normalized: String,
    groups: Vec<Group>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    terms: Vec<String>,
    /// The deployment action the group selects, its own or the implied
    /// `Installation`; absent for `*`.
    deployment_action: Option<DeploymentAction>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invalid {
    valid: bool,
    hresult: HResult,
    name: Option<&'static str>,
    offset: usize,
    message: String,
}

pub fn run(criteria: &OsStr, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut from_stdin = Vec::new();
    let bytes = if criteria == "-" {
        io::stdin()
            .read_to_end(&mut from_stdin)
            .context("reading the criteria from standard input")?;
        &from_stdin[..]
    } else {
        criteria.as_bytes()
    };
    match Criteria::parse_bytes(bytes) {
        Ok(parsed) if json => {
            let groups = parsed
                .groups()
                .iter()
                .map(|group| Group {
                    terms: group.terms().iter().map(ToString::to_string).collect(),
                    deployment_action: group.deployment_action(),
                })
                .collect();
            let valid = Valid {
                valid: true,
                normalized: parsed.to_string(),
                groups,
            };
            serde_json::to_writer_pretty(&mut *out, &valid)?;
            writeln!(out)?;
            Ok(exit::SUCCESS)
        }
        Ok(parsed) => {
            writeln!(out, "{parsed}")?;
            Ok(exit::SUCCESS)
        }
        Err(error) if json => {
            let invalid = Invalid {
                valid: false,
                hresult: error.hresult(),
                name: error.hresult().name(),
                offset: error.offset(),
                message: error.detail().to_string(),
            };
            serde_json::to_writer_pretty(&mut *out, &invalid)?;
            writeln!(out)?;
            Ok(exit::INVALID)
        }
        Err(error) => {
            eprintln!("{}", render_error(bytes, &error));
            Ok(exit::INVALID)
        }
    }
}

/// The error, then the line it is on (cut to a window around it) with a
/// caret under the offending character. `wua search` shows it too.
pub fn render_error(bytes: &[u8], error: &ParseCriteriaError) -> String {
    let offset = error.offset().min(bytes.len());
    let line_start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line_end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |newline| offset + newline);
    let line_number = bytes[..line_start].iter().filter(|&&b| b == b'\n').count() + 1;
    let before: Vec<char> = printable(&bytes[line_start..offset]);
    let after: Vec<char> = printable(&bytes[offset..line_end]);

    let shown_before = &before[before.len().saturating_sub(CONTEXT_CHARS)..];
    let shown_after = &after[..after.len().min(CONTEXT_CHARS)];
    let mut line = String::new();
    if shown_before.len() < before.len() {
        line.push('…');
    }
    let caret_column = line.chars().count() + shown_before.len();
    line.extend(shown_before);
    line.extend(shown_after);
    if shown_after.len() < after.len() {
        line.push('…');
    }
    let position = if line_number > 1 {
        format!(" (line {line_number}, column {})", before.len() + 1)
    } else {
        String::new()
    };
    format!(
        "wua: {error}{position}\n  {line}\n  {caret:>width$}",
        caret = "^",
        width = caret_column + 1
    )
}

/// The bytes as characters one column wide: invalid UTF-8 becomes U+FFFD,
/// tabs and other control characters a space, so the caret lines up.
fn printable(bytes: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
