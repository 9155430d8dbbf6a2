//! `wua sync`: sync update services' catalogs and rescan, one line per
//! phase as the agent reports it, or (`--json`) each service's
//! `SyncResult` in an array once done.

use std::io::{self, Write};

use openwua_client::{SyncPhase, SyncProgress, SyncResult};
use uuid::Uuid;

use crate::agent::Target;
use crate::exit;

pub fn run(
    agent: &Target,
    service: Option<Uuid>,
    online: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    agent.run(|session| {
        // The callback cannot return an error; the first one is kept.
        let mut failed: Option<io::Error> = None;
        let mut synced: Vec<SyncResult> = Vec::new();
        session.sync_with(service, online, |progress| {
            if json {
                synced.extend(progress.result.clone());
            } else if failed.is_none()
                && let Err(error) = write_progress(progress, out)
            {
                failed = Some(error);
            }
        })?;
        if let Some(error) = failed {
            return Err(error.into());
        }
        if json {
            serde_json::to_writer_pretty(&mut *out, &synced)?;
            writeln!(out)?;
        }
        Ok(exit::SUCCESS)
    })
}

fn write_progress(progress: &SyncProgress, out: &mut dyn Write) -> io::Result<()> {
    let what = match (progress.phase, &progress.result) {
        (SyncPhase::Verifying, _) => "verifying the catalog".to_owned(),
        (SyncPhase::Importing, _) => "importing updates".to_owned(),
        (SyncPhase::Scanning, _) => "scanning this machine".to_owned(),
        (SyncPhase::Done, Some(result)) => format!("done: {}", describe(result)),
        (SyncPhase::Done, None) => "done".to_owned(),
        (SyncPhase::Other, _) => "working".to_owned(),
    };
    writeln!(out, "{}: {what}", progress.service_id)?;
    // Each line as it happens, even into a pipe.
    out.flush()
}

/// What a sync did, in one line.
pub fn describe(result: &SyncResult) -> String {
    let version = match result.previous_version {
        Some(previous) if previous == result.version => {
            format!("catalog version {previous} (no new version)")
        }
        Some(previous) => format!("catalog version {} (was {previous})", result.version),
        None => format!("catalog version {}", result.version),
    };
    format!(
        "{version}: {} added, {} changed, {} removed, {} unchanged",
        result.added, result.changed, result.removed, result.unchanged
    )
}
