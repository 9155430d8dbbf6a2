//! The installation engine (`IUpdateInstaller.Install` and `Uninstall`).
//!
//! One call at a time on the machine (the agent holds the installation
//! lock around [`run`]; policy authorized the caller before). Each update
//! goes through the same checks, in order — already done, applicability, EULA, content,
//! prerequisites, quietness, an interactive user for an update that may
//! ask one something — and only then its handler (bundled
//! updates' handlers first). A refused update fails alone; the others
//! proceed. Every update gets one history entry, and the store records an
//! installer as running before it starts, so a killed agent leaves an
//! "interrupted" entry rather than nothing.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::Timestamp;
use openwua_model::enums::{OperationResultCode, UpdateOperation};
use openwua_model::history::HistoryEntry;
use openwua_model::hresult::{
    E_ABORT, HResult, S_OK, WU_E_DM_NOTDOWNLOADED, WU_E_EULAS_DECLINED, WU_E_NO_INTERACTIVE_USER,
    WU_E_NOT_APPLICABLE, WU_E_SERVICE_STOP, WU_E_UH_DOESNOTSUPPORTACTION, WU_S_ALREADY_INSTALLED,
    WU_S_ALREADY_UNINSTALLED,
};
use openwua_model::operation::{UpdateResult, percent};
use openwua_model::update::Update;
use uuid::Uuid;

use crate::agent::poisoned;
use crate::cache::Cache;
use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::jobs::Job;
use crate::store::{BootId, InstallRecord, Payload, Store};
use openwua_installer::handlers::{self, DpkgSettings, HandlerContext, Outcome};
use openwua_installer::prompts::Prompter;

/// One update of an install or uninstall call, as the agent resolved it.
#[derive(Debug, Clone)]
pub struct InstallTarget {
    /// The update.
    pub update: Update,
    /// The service whose catalog holds it.
    pub service_id: Uuid,
    /// Its installable rule holds here.
    pub installable: bool,
    /// Its licence is accepted (or it has none).
    pub eula_accepted: bool,
    /// Its content, and its bundled updates', is in the cache.
    pub downloaded: bool,
    /// Updates that must be installed first.
    pub prerequisites: Vec<Uuid>,
    /// Its installer and content.
    pub payload: Payload,
    /// Its bundled updates, in order, with their installers.
    pub bundled: Vec<(Update, Payload)>,
    /// How apt runs for it: its service's apt root; None for a service
    /// of another kind, whose catalog may not install through apt.
    pub apt: Option<handlers::AptSettings>,
}

/// What the call asked for.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Install or uninstall.
    pub operation: UpdateOperation,
    /// `ForceQuiet`: nothing may ask the user anything.
    pub force_quiet: bool,
    /// `IsForced`: install what is installed, uninstall what is not.
    pub is_forced: bool,
    /// The caller's `ClientApplicationID`, for history.
    pub client_application_id: String,
    /// Whether anyone answers the questions of updates that may ask some.
    pub interaction: Interaction,
}

/// Whether the updates of a call that may ask the user something
/// (`CanRequestUserInput`) can run.
#[derive(Debug, Clone)]
pub enum Interaction {
    /// An interactive user's client answers them, through this prompter.
    Answered(Prompter),
    /// Nobody can: they fail with `WU_E_NO_INTERACTIVE_USER`, for this
    /// reason, before anything of theirs runs.
    Refused(String),
}

/// What the engine works with.
pub struct Context<'a> {
    /// The job it runs as.
    pub job: &'a Job,
    /// Its ID (staging directories and logs are named by it).
    pub job_id: Uuid,
    /// The agent's settings.
    pub config: &'a Config,
    /// The content cache.
    pub cache: &'a Cache,
    /// The store, for history, state and the journal.
    pub store: &'a Mutex<Store>,
    /// How dpkg is run.
    pub dpkg: &'a DpkgSettings,
    /// This boot, against which restarts are recorded.
    pub boot_id: BootId,
    /// The updates installed on the machine before the call.
    pub installed: HashSet<Uuid>,
}

/// Runs the call; returns the results in the call's order and whether it
/// was aborted.
pub fn run(
    targets: &[InstallTarget],
    options: &InstallOptions,
    context: &Context<'_>,
) -> Result<(Vec<UpdateResult>, bool)> {
    let order = execution_order(targets);
    let mut installed = context.installed.clone();
    let mut results: Vec<Option<UpdateResult>> = vec![None; targets.len()];
    let mut aborted = false;
    let mut last_finished: Option<UpdateResult> = None;
    for (step, &position) in order.iter().enumerate() {
        let target = &targets[position];
        // Changed in place: copying the growing list of results at every
        // step would make a long call quadratic. The previous update's
        // result is published with this step, one change per update.
        context.job.change_installation_progress(|progress| {
            progress.finished.extend(last_finished.take());
            progress.current_update_index = u32::try_from(position).unwrap_or(u32::MAX);
            progress.current_update_id = Some(target.update.identity.update_id);
            progress.current_update_percent_complete = 0;
            progress.percent_complete = percent(step as u64, targets.len() as u64);
        });
        aborted = aborted || context.job.abort_flag().load(Ordering::SeqCst);
        // Only an update whose installer ran, or that needed none, leaves
        // the list of updates waiting for an interactive user.
        let mut attempted = false;
        let result = if aborted {
            finish(
                target,
                Verdict::aborted("the call was aborted before this update started"),
            )
        } else {
            let verdict = match check(target, options, &installed) {
                Some(refusal) => {
                    attempted = refusal.result_code == OperationResultCode::Succeeded;
                    refusal
                }
                None => {
                    attempted = true;
                    execute(target, options, context)?
                }
            };
            aborted = aborted || verdict.result_code == OperationResultCode::Aborted;
            finish(target, verdict)
        };
        record(target, options, context, &result, attempted)?;
        if result.hresult == S_OK {
            match options.operation {
                UpdateOperation::Installation => installed.insert(target.update.identity.update_id),
                UpdateOperation::Uninstallation => {
                    installed.remove(&target.update.identity.update_id)
                }
            };
        }
        last_finished = Some(result.clone());
        results[position] = Some(result);
    }
    context.job.change_installation_progress(|progress| {
        progress.finished.extend(last_finished);
        progress.percent_complete = 100;
        progress.current_update_percent_complete = 100;
    });
    context.cache.unstage(context.job_id);
    Ok((results.into_iter().flatten().collect(), aborted))
}

/// The call's updates, each after its prerequisites that are in the call;
/// otherwise in the call's order.
fn execution_order(targets: &[InstallTarget]) -> Vec<usize> {
    fn visit(
        position: usize,
        targets: &[InstallTarget],
        positions: &HashMap<Uuid, usize>,
        seen: &mut [bool],
        order: &mut Vec<usize>,
    ) {
        if seen[position] {
            return;
        }
        seen[position] = true;
        for prerequisite in &targets[position].prerequisites {
            if let Some(&other) = positions.get(prerequisite) {
                visit(other, targets, positions, seen, order);
            }
        }
        order.push(position);
    }
    // Looked up by ID, so the order is linear in the call's updates and
    // their prerequisites.
    let positions: HashMap<Uuid, usize> = targets
        .iter()
        .enumerate()
        .map(|(position, target)| (target.update.identity.update_id, position))
        .collect();
    let mut seen = vec![false; targets.len()];
    let mut order = Vec::with_capacity(targets.len());
    for position in 0..targets.len() {
        visit(position, targets, &positions, &mut seen, &mut order);
    }
    order
}

/// How one update ended.
struct Verdict {
    result_code: OperationResultCode,
    hresult: HResult,
    reboot_required: bool,
    exit_code: Option<i32>,
    detail: Option<String>,
}

impl Verdict {
    fn failed(hresult: HResult, detail: impl Into<String>) -> Verdict {
        Verdict {
            result_code: OperationResultCode::Failed,
            hresult,
            reboot_required: false,
            exit_code: None,
            detail: Some(detail.into()),
        }
    }

    fn nothing_to_do(hresult: HResult, detail: &str) -> Verdict {
        Verdict {
            result_code: OperationResultCode::Succeeded,
            hresult,
            reboot_required: false,
            exit_code: None,
            detail: Some(detail.to_owned()),
        }
    }

    fn aborted(detail: &str) -> Verdict {
        Verdict {
            result_code: OperationResultCode::Aborted,
            hresult: E_ABORT,
            reboot_required: false,
            exit_code: None,
            detail: Some(detail.to_owned()),
        }
    }
}

fn finish(target: &InstallTarget, verdict: Verdict) -> UpdateResult {
    UpdateResult {
        update_id: target.update.identity.update_id,
        title: target.update.title.clone(),
        result_code: verdict.result_code,
        hresult: verdict.hresult,
        reboot_required: verdict.reboot_required,
        unmapped_result_code: verdict.exit_code,
        detail: verdict.detail,
    }
}

/// The checks before anything runs; `Some` refuses (or skips) the update.
fn check(
    target: &InstallTarget,
    options: &InstallOptions,
    installed: &HashSet<Uuid>,
) -> Option<Verdict> {
    let update = &target.update;
    let installing = options.operation == UpdateOperation::Installation;
    let is_installed = installed.contains(&update.identity.update_id);
    if !options.is_forced {
        if installing && is_installed {
            return Some(Verdict::nothing_to_do(
                WU_S_ALREADY_INSTALLED,
                "installed already; nothing ran",
            ));
        }
        if !installing && !is_installed {
            return Some(Verdict::nothing_to_do(
                WU_S_ALREADY_UNINSTALLED,
                "not installed; nothing ran",
            ));
        }
    }
    let apt_handler = std::iter::once(&target.payload)
        .chain(target.bundled.iter().map(|(_, payload)| payload))
        .any(|payload| {
            matches!(
                payload.handler,
                openwua_catalog::revision::Handler::Apt { .. }
            )
        });
    if apt_handler && target.apt.is_none() {
        return Some(Verdict::failed(
            WU_E_UH_DOESNOTSUPPORTACTION,
            "only an apt service's updates install through apt, and this one comes from another service",
        ));
    }
    let behavior = if installing {
        update.installation_behavior
    } else {
        match update.uninstallation_behavior {
            Some(behavior) => behavior,
            None => {
                return Some(Verdict::failed(
                    WU_E_UH_DOESNOTSUPPORTACTION,
                    "this update cannot be uninstalled (it has no uninstaller)",
                ));
            }
        }
    };
    if installing {
        if !target.installable && !options.is_forced {
            return Some(Verdict::failed(
                WU_E_NOT_APPLICABLE,
                "its installable rule does not hold on this machine (`wua show` says why)",
            ));
        }
        if !target.eula_accepted {
            return Some(Verdict::failed(
                WU_E_EULAS_DECLINED,
                "its licence terms have not been accepted",
            ));
        }
    }
    if needs_content(target, options.operation) && !target.downloaded {
        return Some(Verdict::failed(
            WU_E_DM_NOTDOWNLOADED,
            "its content is not in the cache; download it first",
        ));
    }
    if installing {
        let missing: Vec<String> = target
            .prerequisites
            .iter()
            .filter(|id| !installed.contains(id))
            .map(Uuid::to_string)
            .collect();
        if !missing.is_empty() {
            return Some(Verdict::failed(
                WU_E_NOT_APPLICABLE,
                format!("prerequisites not installed: {}", missing.join(", ")),
            ));
        }
    }
    let asks = behavior.can_request_user_input
        || target
            .bundled
            .iter()
            .any(|(bundled, _)| may_ask(bundled, options.operation));
    if asks {
        if options.force_quiet {
            return Some(Verdict::failed(
                WU_E_UH_DOESNOTSUPPORTACTION,
                "its installer may ask a question, so it cannot run with ForceQuiet (--quiet)",
            ));
        }
        if let Interaction::Refused(why) = &options.interaction {
            return Some(Verdict::failed(WU_E_NO_INTERACTIVE_USER, why.clone()));
        }
    }
    None
}

/// Whether `update`'s installer may ask the user something during
/// `operation` (`CanRequestUserInput`).
fn may_ask(update: &Update, operation: UpdateOperation) -> bool {
    match operation {
        UpdateOperation::Installation => update.installation_behavior.can_request_user_input,
        UpdateOperation::Uninstallation => update
            .uninstallation_behavior
            .is_some_and(|behavior| behavior.can_request_user_input),
    }
}

/// Whether running the handlers reads content files: every install does;
/// an uninstall only when it runs a program of the payload.
fn needs_content(target: &InstallTarget, operation: UpdateOperation) -> bool {
    use openwua_catalog::revision::Handler;
    operation == UpdateOperation::Installation
        || std::iter::once(&target.payload)
            .chain(target.bundled.iter().map(|(_, payload)| payload))
            .any(|payload| match &payload.handler {
                Handler::Command { uninstall, .. } => uninstall
                    .as_ref()
                    .and_then(|command| command.first())
                    .is_some_and(|program| !program.starts_with('/')),
                Handler::Dpkg { .. } | Handler::Files { .. } | Handler::Apt { .. } => false,
            })
}

/// Runs the update's handlers (bundled updates first when installing,
/// last when uninstalling), with the journal entry open meanwhile.
fn execute(
    target: &InstallTarget,
    options: &InstallOptions,
    context: &Context<'_>,
) -> Result<Verdict> {
    let update_id = target.update.identity.update_id;
    let interrupted = history_entry(
        target,
        options,
        OperationResultCode::Aborted,
        WU_E_SERVICE_STOP,
        None,
    );
    context
        .store
        .lock()
        .map_err(|_| poisoned())?
        .begin_install(update_id, context.job_id, &interrupted)?;
    let mut parts: Vec<(&Update, &Payload)> = target
        .bundled
        .iter()
        .map(|(update, payload)| (update, payload))
        .collect();
    parts.push((&target.update, &target.payload));
    if options.operation == UpdateOperation::Uninstallation {
        parts.reverse();
    }
    let mut reboot_required = false;
    let mut exit_code = None;
    for (update, payload) in parts {
        let apt = target.apt.clone().unwrap_or_default();
        let outcome = run_handler(update, payload, &apt, options, context)?;
        exit_code = outcome.exit_code;
        match outcome.outcome {
            Outcome::Succeeded => {}
            Outcome::SucceededRebootRequired => reboot_required = true,
            Outcome::Failed | Outcome::Aborted => {
                let part = if update.identity.update_id == update_id {
                    String::new()
                } else {
                    format!("bundled update {}: ", update.title)
                };
                return Ok(Verdict {
                    result_code: if outcome.outcome == Outcome::Aborted {
                        OperationResultCode::Aborted
                    } else {
                        OperationResultCode::Failed
                    },
                    hresult: outcome.hresult,
                    reboot_required: false,
                    exit_code: outcome.exit_code,
                    detail: Some(format!("{part}{}", outcome.detail)),
                });
            }
        }
    }
    Ok(Verdict {
        result_code: OperationResultCode::Succeeded,
        hresult: S_OK,
        reboot_required,
        exit_code,
        detail: None,
    })
}

fn run_handler(
    update: &Update,
    payload: &Payload,
    apt: &handlers::AptSettings,
    options: &InstallOptions,
    context: &Context<'_>,
) -> Result<handlers::HandlerOutcome> {
    let update_id = update.identity.update_id;
    let needs_files = options.operation == UpdateOperation::Installation
        || matches!(
            payload.handler,
            openwua_catalog::revision::Handler::Command { .. }
        );
    let files: &[_] = if needs_files { &payload.content } else { &[] };
    let staging = context.cache.stage(context.job_id, update_id, files)?;
    let log_dir = context.config.log_dir();
    let backup_dir = context.config.backup_dir().join(update_id.to_string());
    for dir in [&log_dir, &backup_dir] {
        std::fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?;
    }
    let log_path = log_dir.join(format!(
        "{update_id}-{}-{}.log",
        match options.operation {
            UpdateOperation::Installation => "install",
            UpdateOperation::Uninstallation => "uninstall",
        },
        context.job_id
    ));
    let mut environment = Vec::new();
    if let Some(sandbox) = &context.config.install.sandbox_dir {
        std::fs::create_dir_all(sandbox).map_err(|error| io_error(sandbox, error))?;
        environment.push(("OPENWUA_SANDBOX".to_owned(), sandbox.display().to_string()));
    }
    let progress = |percent: u8| {
        context.job.change_installation_progress(|progress| {
            progress.current_update_percent_complete = percent.into();
        });
    };
    Ok(handlers::run(&HandlerContext {
        update_id,
        operation: options.operation,
        handler: &payload.handler,
        content_dir: &staging.join("content"),
        work_dir: &staging.join("work"),
        log_path: &log_path,
        backup_dir: &backup_dir,
        environment: &environment,
        dpkg: context.dpkg,
        apt,
        quiet: options.force_quiet,
        abort: context.job.abort_flag(),
        grace: Duration::from_secs(context.config.install.abort_grace_seconds),
        prompter: match &options.interaction {
            Interaction::Answered(prompter) if may_ask(update, options.operation) => Some(prompter),
            Interaction::Answered(_) | Interaction::Refused(_) => None,
        },
        group_record: Some(&context.config.installer_group_record()),
        progress: Some(&progress),
    }))
}

fn history_entry(
    target: &InstallTarget,
    options: &InstallOptions,
    result_code: OperationResultCode,
    hresult: HResult,
    exit_code: Option<i32>,
) -> HistoryEntry {
    HistoryEntry {
        operation: options.operation,
        result_code,
        hresult,
        unmapped_result_code: exit_code,
        date: Timestamp::now(),
        update_identity: target.update.identity,
        title: target.update.title.clone(),
        client_application_id: options.client_application_id.clone(),
        service_id: target.service_id,
    }
}

/// Writes the update's history entry and, if its installer succeeded, its
/// new state; both in one transaction with closing its journal entry.
/// `attempted`: its installer ran, or none was needed.
fn record(
    target: &InstallTarget,
    options: &InstallOptions,
    context: &Context<'_>,
    result: &UpdateResult,
    attempted: bool,
) -> Result<()> {
    let entry = history_entry(
        target,
        options,
        result.result_code,
        result.hresult,
        result.unmapped_result_code,
    );
    let ran_and_succeeded = result.hresult == S_OK;
    let state = ran_and_succeeded.then(|| InstallRecord {
        installed: options.operation == UpdateOperation::Installation,
        reboot_in_boot: result.reboot_required.then_some(context.boot_id),
    });
    context
        .store
        .lock()
        .map_err(|_| poisoned())?
        .record_result(&entry, state, attempted)
}

fn io_error(path: &Path, error: std::io::Error) -> AgentError {
    AgentError::new(
        openwua_model::hresult::WU_E_UH_UNEXPECTED,
        format!("{}: {error}", path.display()),
    )
}
