//! What `wua download`, `install`, `uninstall`, `update` and `watch`
//! share: choosing updates, running a job with its progress, the result
//! table, the summary and the exit status.

use std::collections::HashMap;
use std::io::{self, Write};

use openwua_client::ClientError;
use openwua_client::blocking::UpdateSession;
use openwua_model::enums::{DownloadPriority, OperationResultCode};
use openwua_model::hresult::HResult;
use openwua_model::operation::{JobInfo, JobKind, OperationResult, UpdateResult};
use openwua_model::search::UpdateEntry;
use serde::Serialize;
use uuid::Uuid;

use crate::exit;
use crate::table::{Align, Table};

/// What `--all` and `wua update` take: every update this machine needs.
pub const ALL_CRITERIA: &str = "IsInstalled=0 and IsHidden=0";

/// The updates named on the command line, or with `all` every update a
/// default search finds. An unknown ID fails with the agent's code.
pub fn chosen(
    session: &UpdateSession,
    ids: &[Uuid],
    all: bool,
) -> Result<Vec<UpdateEntry>, ClientError> {
    if all {
        return session
            .create_update_searcher()
            .search(ALL_CRITERIA)?
            .updates
            .to_vec();
    }
    ids.iter()
        .map(|id| Ok(session.get_update(*id)?.entry))
        .collect()
}

/// Each update's title, for progress.
pub fn titles(entries: &[UpdateEntry]) -> HashMap<Uuid, String> {
    entries
        .iter()
        .map(|entry| (entry.update.identity.update_id, entry.update.title.clone()))
        .collect()
}

/// The updates' IDs, in order.
pub fn ids(entries: &[UpdateEntry]) -> Vec<Uuid> {
    entries
        .iter()
        .map(|entry| entry.update.identity.update_id)
        .collect()
}

/// Downloads the updates, showing progress; returns the completed job.
pub fn download(
    session: &UpdateSession,
    entries: &[UpdateEntry],
    priority: DownloadPriority,
    force: bool,
) -> Result<JobInfo, ClientError> {
    let mut downloader = session.create_update_downloader();
    downloader.updates = ids(entries);
    downloader.priority = priority;
    downloader.is_forced = force;
    let mut progress = crate::progress::Progress::new(titles(entries));
    downloader.download_with_progress(|job| progress.show(job))
}

/// Writes `value` as pretty JSON and a newline.
pub fn write_json(value: &impl Serialize, out: &mut dyn Write) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A finished job as the command that ran it reports it: JSON, or the
/// result table; the exit status follows the result.
pub fn report(job: &JobInfo, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    if json {
        write_json(job, out)?;
    } else {
        write_job(job, out)?;
    }
    Ok(job.result.as_ref().map_or(exit::ERROR, exit_status))
}

/// The exit status for an operation's result: 0 all succeeded (a restart
/// needed or not: WUA's result is Succeeded either way, as apt's is, and
/// the report says so), 4 some failed, 5 all failed or aborted.
pub fn exit_status(result: &OperationResult) -> u8 {
    match result.result_code {
        OperationResultCode::Succeeded => exit::SUCCESS,
        OperationResultCode::SucceededWithErrors => exit::PARTIAL,
        OperationResultCode::Failed | OperationResultCode::Aborted => exit::FAILED,
        // A completed job is never still running: the agent misspoke.
        OperationResultCode::NotStarted | OperationResultCode::InProgress => exit::ERROR,
    }
}

/// What `download --all` and `install --all` say when the search found
/// nothing: no failure, since the agent would refuse the empty list with
/// WU_E_NO_UPDATE only because there was nothing to do.
pub fn nothing_to_do(what: &str, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    if json {
        write_json(&serde_json::Value::Null, out)?;
    } else {
        writeln!(out, "No updates to {what}.")?;
    }
    Ok(exit::SUCCESS)
}

/// Each update's last word in a download followed by installations: an
/// installation's result, or the download's for an update that did not
/// get that far; aggregated as WUA aggregates one call.
pub fn combine(
    order: &[Uuid],
    download: Option<&OperationResult>,
    installs: &[&OperationResult],
) -> OperationResult {
    fn find(result: &OperationResult, id: Uuid) -> Option<&UpdateResult> {
        result.updates.iter().find(|update| update.update_id == id)
    }
    let updates: Vec<UpdateResult> = order
        .iter()
        .filter_map(|id| {
            installs
                .iter()
                .find_map(|install| find(install, *id))
                .or_else(|| download.and_then(|download| find(download, *id)))
                .cloned()
        })
        .collect();
    let aborted = download
        .into_iter()
        .chain(installs.iter().copied())
        .any(|result| result.result_code == OperationResultCode::Aborted);
    OperationResult::aggregate(updates, aborted)
}

/// True when this update's step succeeded, so the next step may take it.
pub fn succeeded(update: &UpdateResult) -> bool {
    matches!(
        update.result_code,
        OperationResultCode::Succeeded | OperationResultCode::SucceededWithErrors
    )
}

/// The result of one job: a heading, then one row per update, failures
/// with what the code means and what went wrong.
pub fn write_job(job: &JobInfo, out: &mut dyn Write) -> io::Result<()> {
    let heading = match job.kind {
        JobKind::Download => "Download",
        JobKind::Install => "Installation",
        JobKind::Uninstall => "Uninstallation",
    };
    let Some(result) = &job.result else {
        return writeln!(out, "{heading} {}: {:?}", job.job_id, job.state);
    };
    let restart = if result.reboot_required {
        ", restart required"
    } else {
        ""
    };
    writeln!(out, "{heading}: {:?}{restart}", result.result_code)?;
    // A code for the call as a whole, beyond the updates' own.
    if result.hresult.is_failure() && result.updates.iter().all(succeeded) {
        writeln!(out, "  {}", result.hresult)?;
    }
    if result.updates.is_empty() {
        return Ok(());
    }
    let installs = job.kind != JobKind::Download;
    let mut headers = vec![
        ("TITLE", Align::Left),
        ("RESULT", Align::Left),
        ("CODE", Align::Left),
    ];
    if installs {
        headers.push(("RESTART", Align::Left));
    }
    let mut table = Table::new(&headers, 0);
    for update in &result.updates {
        let mut cells = vec![
            update.title.clone(),
            format!("{:?}", update.result_code),
            code(update.hresult),
        ];
        if installs {
            cells.push(if update.reboot_required { "yes" } else { "no" }.to_owned());
        }
        table.row(cells, failure_note(update));
    }
    table.write(out)
}

/// A code with its name, when WUA defines it.
pub fn code(hresult: HResult) -> String {
    match hresult.name() {
        Some(name) => format!("{hresult:#} {name}"),
        None => format!("{hresult:#}"),
    }
}

/// For a failed update: what its code means and what to do, then what
/// exactly went wrong.
fn failure_note(update: &UpdateResult) -> Option<String> {
    if succeeded(update) && update.hresult.is_success() {
        return None;
    }
    // Indented: the note goes under the title, the first column.
    let lines: Vec<String> = [
        update.hresult.info().map(|info| info.message),
        update.detail.as_deref(),
    ]
    .into_iter()
    .flatten()
    .flat_map(str::lines)
    .map(|line| format!("  {line}"))
    .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// One line over every update: how many succeeded and failed, and whether
/// a restart is required.
pub fn write_summary(result: &OperationResult, out: &mut dyn Write) -> io::Result<()> {
    let done = result
        .updates
        .iter()
        .filter(|update| succeeded(update))
        .count();
    let failed = result.updates.len() - done;
    write!(out, "Summary: {done} succeeded, {failed} failed")?;
    if result.result_code == OperationResultCode::Aborted {
        write!(out, " (aborted)")?;
    }
    writeln!(out, ".")?;
    if result.reboot_required {
        writeln!(out, "Restart the machine to finish.")?;
    }
    if failed > 0 {
        writeln!(out, "`wua explain CODE` says more about a code.")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openwua_model::hresult::{S_OK, WU_E_EULAS_DECLINED};

    fn update(id: u128, code: OperationResultCode, reboot: bool) -> UpdateResult {
        UpdateResult {
            update_id: Uuid::from_u128(id),
            title: format!("update {id}"),
            result_code: code,
            hresult: if succeeded_code(code) {
                S_OK
            } else {
                WU_E_EULAS_DECLINED
            },
            reboot_required: reboot,
            unmapped_result_code: None,
            detail: None,
        }
    }

    fn succeeded_code(code: OperationResultCode) -> bool {
        matches!(
            code,
            OperationResultCode::Succeeded | OperationResultCode::SucceededWithErrors
        )
    }

    fn result(updates: Vec<UpdateResult>, aborted: bool) -> OperationResult {
        OperationResult::aggregate(updates, aborted)
    }

    #[test]
    fn exit_statuses_follow_the_result() {
        use OperationResultCode::*;
        let all = result(vec![update(1, Succeeded, false)], false);
        assert_eq!(exit_status(&all), exit::SUCCESS);
        let restart = result(vec![update(1, Succeeded, true)], false);
        assert_eq!(exit_status(&restart), exit::SUCCESS);
        let partial = result(
            vec![update(1, Succeeded, true), update(2, Failed, false)],
            false,
        );
        assert_eq!(exit_status(&partial), exit::PARTIAL);
        let failed = result(vec![update(1, Failed, false)], false);
        assert_eq!(exit_status(&failed), exit::FAILED);
        let aborted = result(
            vec![update(1, Succeeded, true), update(2, Aborted, false)],
            true,
        );
        assert_eq!(exit_status(&aborted), exit::FAILED);
    }

    #[test]
    fn combine_takes_each_updates_last_step() {
        use OperationResultCode::*;
        let order = [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)];
        let download = result(
            vec![update(2, Succeeded, false), update(3, Failed, false)],
            false,
        );
        let install = result(
            vec![update(1, Succeeded, true), update(2, Succeeded, false)],
            false,
        );
        let combined = combine(&order, Some(&download), &[&install]);
        let codes: Vec<_> = combined
            .updates
            .iter()
            .map(|update| update.result_code)
            .collect();
        assert_eq!(codes, [Succeeded, Succeeded, Failed]);
        assert_eq!(combined.result_code, SucceededWithErrors);
        assert_eq!(exit_status(&combined), exit::PARTIAL);
        let only_download = combine(&order[1..], Some(&download), &[]);
        assert_eq!(exit_status(&only_download), exit::PARTIAL);
    }

    #[test]
    fn a_failure_says_what_to_do_and_what_went_wrong() {
        let mut failed = update(1, OperationResultCode::Failed, false);
        failed.detail = Some("the licence terms are not accepted".into());
        let job = JobInfo {
            job_id: Uuid::nil(),
            kind: JobKind::Install,
            state: openwua_model::operation::JobState::Completed,
            update_ids: vec![failed.update_id],
            caller_uid: 0,
            client_application_id: "wua".into(),
            started: jiff::Timestamp::UNIX_EPOCH,
            finished: None,
            download_progress: None,
            installation_progress: None,
            result: Some(result(vec![failed], false)),
        };
        let mut out = Vec::new();
        write_job(&job, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Installation: Failed");
        assert!(lines[1].starts_with("TITLE"), "{text}");
        assert!(
            lines[2].contains("Failed") && lines[2].contains("WU_E_EULAS_DECLINED"),
            "{text}"
        );
        assert_eq!(
            lines[3].trim(),
            WU_E_EULAS_DECLINED.info().unwrap().message,
            "{text}"
        );
        assert_eq!(lines[4].trim(), "the licence terms are not accepted");
    }
}
