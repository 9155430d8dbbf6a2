//! `wua install` and `wua uninstall`. An installation accepts licences
//! when asked and downloads what is not downloaded yet first, as users
//! expect of an install command; then it installs what it could fetch.

use std::collections::HashSet;
use std::io::Write;

use openwua_client::blocking::{UpdateInstaller, UpdateSession};
use openwua_model::enums::{DownloadPriority, InstallationImpact, OperationResultCode};
use openwua_model::operation::{JobInfo, OperationResult};
use openwua_model::search::UpdateEntry;
use uuid::Uuid;

use crate::agent::Target;
use crate::args::{InstallArgs, UninstallArgs};
use crate::operation;
use crate::progress::Progress;
use crate::questions::Keyboard;
use crate::text;

/// How to install.
pub struct Options {
    /// Accept the licence terms not yet accepted.
    pub accept_eulas: bool,
    /// `ForceQuiet`.
    pub quiet: bool,
    /// `IsForced`, for the download and the installation.
    pub force: bool,
    /// Download what is not downloaded yet first.
    pub download: bool,
    /// Answer installers' questions here (wua runs at a terminal).
    pub keyboard: Option<Keyboard>,
}

/// What [`download_and_install`] did.
#[derive(serde::Serialize)]
pub struct Outcome {
    /// The download job, when one was needed.
    pub download: Option<JobInfo>,
    /// The installation jobs: one per update that must be installed alone
    /// (`RequiresExclusiveHandling`), then one for the rest.
    pub install: Vec<JobInfo>,
    /// Updates not installed because a restart must come first.
    pub deferred: Vec<Uuid>,
    /// Each update's last word, aggregated.
    #[serde(skip)]
    pub combined: OperationResult,
}

pub fn run(agent: &Target, args: &InstallArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let entries = operation::chosen(session, &args.ids, args.all)?;
        if entries.is_empty() {
            return operation::nothing_to_do("install", args.json, out);
        }
        let options = Options {
            accept_eulas: args.accept_eulas,
            quiet: args.quiet,
            force: args.force,
            download: !args.no_download,
            keyboard: Keyboard::unless_json(args.json),
        };
        let outcome = download_and_install(session, &entries, &options, args.json, out)?;
        if args.json {
            operation::write_json(&outcome, out)?;
        } else {
            operation::write_summary(&outcome.combined, out)?;
        }
        Ok(operation::exit_status(&outcome.combined))
    })
}

/// Accepts licences (or warns about them), downloads the updates not yet
/// downloaded, and installs those that are now; in text mode each job's
/// result goes to `out` as it ends.
pub fn download_and_install(
    session: &UpdateSession,
    entries: &[UpdateEntry],
    options: &Options,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    licences(session, entries, options.accept_eulas, json, out)?;
    let mut to_install = entries.to_vec();
    let mut download = None;
    let missing: Vec<UpdateEntry> = entries
        .iter()
        .filter(|entry| !entry.state.is_downloaded)
        .cloned()
        .collect();
    if options.download && !missing.is_empty() {
        let job = download_shown(session, &missing, options.force, json, out)?;
        match &job.result {
            // Stopped on purpose: install nothing.
            Some(result) if result.result_code == OperationResultCode::Aborted => {
                to_install.clear()
            }
            Some(result) => {
                let failed: HashSet<Uuid> = result
                    .updates
                    .iter()
                    .filter(|update| !operation::succeeded(update))
                    .map(|update| update.update_id)
                    .collect();
                to_install.retain(|entry| !failed.contains(&entry.update.identity.update_id));
            }
            None => to_install.clear(),
        }
        download = Some(job);
    }
    let mut install = Vec::new();
    let mut deferred: Vec<UpdateEntry> = Vec::new();
    for batch in batches(to_install) {
        // WUA installs nothing while a restart is pending; what is left
        // waits for it instead of failing.
        if session
            .installer_state()?
            .reboot_required_before_installation
        {
            deferred.extend(batch);
            continue;
        }
        let mut installer = session.create_update_installer();
        installer.updates = operation::ids(&batch);
        installer.force_quiet = options.quiet;
        installer.is_forced = options.force;
        let job = run_installer(&installer, &batch, options.keyboard.as_ref(), true)?;
        if !json {
            operation::write_job(&job, out)?;
            writeln!(out)?;
        }
        install.push(job);
    }
    if !deferred.is_empty() && !json {
        writeln!(
            out,
            "Waiting for a restart (a restart must come before these are installed):"
        )?;
        for entry in &deferred {
            writeln!(out, "  {}", text::line(&entry.update.title))?;
        }
        writeln!(out, "Restart the machine, then run the command again.")?;
        writeln!(out)?;
    }
    let deferred_ids = operation::ids(&deferred);
    let order: Vec<Uuid> = operation::ids(entries)
        .into_iter()
        .filter(|id| !deferred_ids.contains(id))
        .collect();
    let results: Vec<&OperationResult> = install
        .iter()
        .filter_map(|job| job.result.as_ref())
        .collect();
    let mut combined = operation::combine(
        &order,
        download.as_ref().and_then(|job| job.result.as_ref()),
        &results,
    );
    combined.reboot_required |= !deferred_ids.is_empty();
    Ok(Outcome {
        download,
        install,
        deferred: deferred_ids,
        combined,
    })
}

/// Installs (or uninstalls) `entries` with `installer`, showing progress;
/// at a terminal (`keyboard`) the installers' questions are answered there.
fn run_installer(
    installer: &UpdateInstaller<'_>,
    entries: &[UpdateEntry],
    keyboard: Option<&Keyboard>,
    install: bool,
) -> anyhow::Result<JobInfo> {
    let mut progress = Progress::new(operation::titles(entries));
    Ok(match keyboard {
        Some(keyboard) => keyboard.converse(&mut progress, |events, replies| {
            if install {
                installer.install_interactive(events, replies)
            } else {
                installer.uninstall_interactive(events, replies)
            }
        })?,
        None if install => installer.install_with_progress(|job| progress.show(job))?,
        None => installer.uninstall_with_progress(|job| progress.show(job))?,
    })
}

/// The installation calls to make: each update that must be installed
/// alone (`RequiresExclusiveHandling`, which WUA refuses in company with
/// `WU_E_EXCLUSIVE_INSTALL_CONFLICT`) in a call of its own, first; then
/// the others together.
fn batches(updates: Vec<UpdateEntry>) -> Vec<Vec<UpdateEntry>> {
    let (exclusive, rest): (Vec<_>, Vec<_>) = updates.into_iter().partition(|entry| {
        entry.update.installation_behavior.impact == InstallationImpact::RequiresExclusiveHandling
    });
    let mut batches: Vec<Vec<UpdateEntry>> =
        exclusive.into_iter().map(|entry| vec![entry]).collect();
    if !rest.is_empty() {
        batches.push(rest);
    }
    batches
}

/// Downloads `entries` as a step of a larger command: in text mode the
/// job's result table follows at once.
fn download_shown(
    session: &UpdateSession,
    entries: &[UpdateEntry],
    force: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<JobInfo> {
    let job = operation::download(session, entries, DownloadPriority::Normal, force)?;
    if !json {
        operation::write_job(&job, out)?;
        writeln!(out)?;
    }
    Ok(job)
}

/// Accepts the licence terms not yet accepted, or says which updates
/// will fail for them and how to accept.
fn licences(
    session: &UpdateSession,
    entries: &[UpdateEntry],
    accept: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    // The agent counts an update without licence terms as accepted.
    for entry in entries.iter().filter(|entry| !entry.state.eula_accepted) {
        let id = entry.update.identity.update_id;
        let title = text::line(&entry.update.title);
        if accept {
            session.accept_eula(id)?;
            if !json {
                writeln!(out, "Accepted the licence terms of {title}.")?;
            }
        } else {
            eprintln!(
                "wua: {title} has licence terms to accept, or it fails with WU_E_EULAS_DECLINED"
            );
            eprintln!("  hint: read them with `wua eula show {id}`, then add --accept-eulas");
        }
    }
    Ok(())
}

pub fn uninstall(agent: &Target, args: &UninstallArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let entries = operation::chosen(session, &args.ids, false)?;
        // An uninstaller that is a program of the payload needs the
        // content, which the cache may have evicted once the update was
        // installed: fetch it again first (forced, since it is installed).
        let missing: Vec<UpdateEntry> = entries
            .iter()
            .filter(|entry| entry.state.is_installed && !entry.state.is_downloaded)
            .cloned()
            .collect();
        if !missing.is_empty() {
            download_shown(session, &missing, true, args.json, out)?;
        }
        let mut installer = session.create_update_installer();
        installer.updates = operation::ids(&entries);
        installer.force_quiet = args.quiet;
        installer.is_forced = args.force;
        let keyboard = Keyboard::unless_json(args.json);
        let job = run_installer(&installer, &entries, keyboard.as_ref(), false)?;
        operation::report(&job, args.json, out)
    })
}
