//! `wua history`: what happened to updates on this machine, newest first.

use std::io::Write;

use openwua_model::history::HistoryEntry;

use crate::agent::Target;
use crate::args::HistoryArgs;
use crate::exit;
use crate::table::{self, Align, Table};

pub fn run(agent: &Target, args: &HistoryArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let searcher = session.create_update_searcher();
        let count = match args.count {
            Some(count) => count,
            None => searcher
                .get_total_history_count()?
                .saturating_sub(args.start),
        };
        // The agent wants a positive count; nothing asked, nothing to ask.
        let entries = if count == 0 {
            Vec::new()
        } else {
            searcher.query_history(args.start, count)?
        };
        if args.json {
            serde_json::to_writer_pretty(&mut *out, &entries)?;
            writeln!(out)?;
        } else {
            write_text(&entries, out)?;
        }
        Ok(exit::SUCCESS)
    })
}

fn write_text(entries: &[HistoryEntry], out: &mut dyn Write) -> std::io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "No history.");
    }
    let mut table = Table::new(
        &[
            ("DATE (UTC)", Align::Left),
            ("OPERATION", Align::Left),
            ("RESULT", Align::Left),
            ("TITLE", Align::Left),
        ],
        3,
    );
    for entry in entries {
        // The code says why an operation failed; a success needs none.
        let note = entry.hresult.is_failure().then(|| {
            let name = entry.hresult.name().unwrap_or("unknown code");
            match entry.unmapped_result_code {
                Some(code) => format!(
                    "{:#} {name} (the installer exited with {code})",
                    entry.hresult
                ),
                None => format!("{:#} {name}", entry.hresult),
            }
        });
        table.row(
            vec![
                table::time(entry.date),
                format!("{:?}", entry.operation),
                format!("{:?}", entry.result_code),
                entry.title.clone(),
            ],
            note,
        );
    }
    table.write(out)?;
    if entries.iter().any(|entry| entry.hresult.is_failure()) {
        writeln!(
            out,
            "\n`wua explain CODE` says what a code means and what to do."
        )?;
    }
    Ok(())
}
