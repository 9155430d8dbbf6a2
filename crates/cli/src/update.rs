//! `wua update`: the main job. Syncs every service, searches for what this
//! machine needs, downloads and installs it, saying what it found and what
//! each step did, and sums up.

use std::io::Write;

use openwua_client::{SearchResult, SyncResult};
use serde::Serialize;

use crate::agent::Target;
use crate::args::UpdateArgs;
use crate::install::{self, Options};
use crate::questions::Keyboard;
use crate::text;
use crate::{exit, operation, sync};

/// `--json`: every step's outcome; a step not needed is `null`.
#[derive(Serialize)]
struct Report<'a> {
    /// One per service synced.
    sync: &'a [SyncResult],
    search: &'a SearchResult,
    /// The download and installation jobs, and what waits for a restart.
    #[serde(flatten)]
    steps: Option<&'a install::Outcome>,
}

pub fn run(agent: &Target, args: &UpdateArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        if !args.json {
            writeln!(out, "Syncing the update services.")?;
            // Said before the wait, even into a pipe.
            out.flush()?;
        }
        let mut synced = Vec::new();
        session.sync(None, |progress| {
            if let Some(result) = &progress.result {
                synced.push(result.clone());
            }
        })?;
        if !args.json {
            for result in &synced {
                writeln!(out, "  {}: {}", result.service_id, sync::describe(result))?;
            }
        }
        let found = session
            .create_update_searcher()
            .search(operation::ALL_CRITERIA)?;
        for warning in &found.warnings {
            eprintln!("wua: warning: {}", warning.hresult);
            eprintln!("  {}", text::line(&warning.message));
        }
        if found.updates.is_empty() {
            if args.json {
                let report = Report {
                    sync: &synced,
                    search: &found,
                    steps: None,
                };
                operation::write_json(&report, out)?;
            } else {
                writeln!(out, "No updates to install: this machine is up to date.")?;
            }
            return Ok(exit::SUCCESS);
        }
        if !args.json {
            let count = found.updates.len();
            writeln!(
                out,
                "Found {count} update{}:",
                if count == 1 { "" } else { "s" }
            )?;
            for entry in &found.updates {
                writeln!(out, "  {}", entry?.update.title)?;
            }
            writeln!(out)?;
        }
        let options = Options {
            accept_eulas: args.accept_eulas,
            quiet: args.quiet,
            force: false,
            download: true,
            keyboard: Keyboard::unless_json(args.json),
        };
        let outcome = install::download_and_install(
            session,
            &found.updates.to_vec()?,
            &options,
            args.json,
            out,
        )?;
        if args.json {
            let report = Report {
                sync: &synced,
                search: &found,
                steps: Some(&outcome),
            };
            operation::write_json(&report, out)?;
        } else {
            operation::write_summary(&outcome.combined, out)?;
        }
        Ok(operation::exit_status(&outcome.combined))
    })
}
