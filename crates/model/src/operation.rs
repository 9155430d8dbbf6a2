//! Downloads, installations and uninstallations: their results
//! (`IDownloadResult`, `IInstallationResult`), their progress
//! (`IDownloadProgress`, `IInstallationProgress`) and the jobs that run them
//! (`IDownloadJob`, `IInstallationJob`).
//!
//! The agent runs every such operation as a job with an ID, which keeps
//! running when its client goes away; any client may watch it again.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::enums::{DownloadPhase, OperationResultCode};
use crate::hresult::HResult;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum JobKind {
    /// `IUpdateDownloader.Download`.
    Download,
    /// `IUpdateInstaller.Install`.
    Install,
    /// `IUpdateInstaller.Uninstall`.
    Uninstall,
}

impl JobKind {
    /// The verb, for people: "download", "install", "uninstall".
    pub fn verb(self) -> &'static str {
        match self {
            JobKind::Download => "download",
            JobKind::Install => "install",
            JobKind::Uninstall => "uninstall",
        }
    }
}

/// The result for one update of an operation (`IUpdateDownloadResult`,
/// `IUpdateInstallationResult`), with what OpenWUA adds for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateResult {
    /// The update's `UpdateID`.
    pub update_id: Uuid,
    /// Its title.
    pub title: String,
    /// `ResultCode`.
    pub result_code: OperationResultCode,
    /// `HResult`: 0 when it succeeded, else why it did not.
    pub hresult: HResult,
    /// `RebootRequired` (installations only).
    #[serde(default)]
    pub reboot_required: bool,
    /// The installer's own exit code, when it ran (history's `UnmappedResultCode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped_result_code: Option<i32>,
    /// What exactly happened, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An operation's result (`IDownloadResult`, `IInstallationResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationResult {
    /// `ResultCode`: Succeeded when every update succeeded,
    /// SucceededWithErrors when some did, Failed when none did, Aborted when
    /// it was stopped.
    pub result_code: OperationResultCode,
    /// `HResult`: 0, `WU_S_UPDATE_ERROR` with some failures,
    /// `WU_E_ALL_UPDATES_FAILED`, or why the whole call failed.
    pub hresult: HResult,
    /// `RebootRequired`: any update's (installations only).
    #[serde(default)]
    pub reboot_required: bool,
    /// One per update, in the order the call named them (`GetUpdateResult`).
    pub updates: Vec<UpdateResult>,
}

/// A download's progress (`IDownloadProgress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadProgress {
    /// `CurrentUpdateIndex`: 0-based, in the call's order.
    pub current_update_index: u32,
    /// The current update's `UpdateID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_update_id: Option<Uuid>,
    /// `CurrentUpdateBytesDownloaded`.
    pub current_update_bytes_downloaded: u64,
    /// `CurrentUpdateBytesToDownload`.
    pub current_update_bytes_to_download: u64,
    /// `CurrentUpdateDownloadPhase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_update_download_phase: Option<DownloadPhase>,
    /// `CurrentUpdatePercentComplete`.
    pub current_update_percent_complete: u32,
    /// `PercentComplete`, over the whole call.
    pub percent_complete: u32,
    /// `TotalBytesDownloaded`.
    pub total_bytes_downloaded: u64,
    /// `TotalBytesToDownload`.
    pub total_bytes_to_download: u64,
    /// Results of the updates finished so far (`GetUpdateResult`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished: Vec<UpdateResult>,
}

/// An installation's or uninstallation's progress (`IInstallationProgress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallationProgress {
    /// `CurrentUpdateIndex`: 0-based, in the call's order.
    pub current_update_index: u32,
    /// The current update's `UpdateID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_update_id: Option<Uuid>,
    /// `CurrentUpdatePercentComplete`.
    pub current_update_percent_complete: u32,
    /// `PercentComplete`, over the whole call.
    pub percent_complete: u32,
    /// Results of the updates finished so far (`GetUpdateResult`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished: Vec<UpdateResult>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JobState {
    /// Running (`IsCompleted` false).
    Running,
    /// Asked to stop (`RequestAbort`); it stops at the next safe point.
    Aborting,
    /// Finished (`IsCompleted` true); the result is set.
    Completed,
}

/// One job, as `ListJobs` and `WatchJob` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The job's ID.
    pub job_id: Uuid,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub state: JobState,
    /// The updates it covers, in order.
    pub update_ids: Vec<Uuid>,
    /// The uid that started it.
    pub caller_uid: u32,
    /// The caller's `ClientApplicationID`.
    pub client_application_id: String,
    /// When it started.
    #[schemars(with = "String")]
    pub started: Timestamp,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub finished: Option<Timestamp>,
    /// Its latest download progress (download jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_progress: Option<DownloadProgress>,
    /// Its latest installation progress (install and uninstall jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_progress: Option<InstallationProgress>,
    /// The result, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<OperationResult>,
}

/// Machine-wide installation state (`IUpdateInstaller.IsBusy`,
/// `RebootRequiredBeforeInstallation`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallerState {
    /// An install or uninstall runs now (a hint: it reserves nothing).
    pub is_busy: bool,
    /// The job that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_job_id: Option<Uuid>,
    /// A restart must come before the next installation.
    pub reboot_required_before_installation: bool,
    /// The updates whose installation or uninstallation waits for a restart.
    #[serde(default)]
    pub reboot_pending_updates: Vec<Uuid>,
    /// Updates that may ask the user something and were refused with
    /// `WU_E_NO_INTERACTIVE_USER`: they wait for an administrator at a
    /// terminal. Each is the history entry of its latest refusal.
    #[serde(default)]
    pub awaiting_interactive_user: Vec<crate::history::HistoryEntry>,
    /// What the agent found when it started after an installer had been
    /// interrupted, and what repairing dpkg's state (`dpkg --configure
    /// -a`) did; absent when nothing was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpkg_repair: Option<RepairReport>,
}

/// The repair of dpkg's state after an interrupted installer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepairReport {
    /// When it ran.
    #[schemars(with = "String")]
    pub date: Timestamp,
    /// `S_OK` when dpkg's state is whole again, else WUA's code.
    pub hresult: HResult,
    /// What ran and what happened, in one sentence.
    pub detail: String,
}

/// Percent of `done` in `total`, 0–100; an empty total is complete.
pub fn percent(done: u64, total: u64) -> u32 {
    if total == 0 {
        return 100;
    }
    let percent = (u128::from(done.min(total)) * 100) / u128::from(total);
    u32::try_from(percent).unwrap_or(100)
}

impl OperationResult {
    /// Aggregates per-update results the way WUA does: all succeeded →
    /// Succeeded; some failed → SucceededWithErrors (`WU_S_UPDATE_ERROR`);
    /// all failed → Failed (`WU_E_ALL_UPDATES_FAILED`); any aborted (and the
    /// call was aborted) → Aborted.
    pub fn aggregate(updates: Vec<UpdateResult>, aborted: bool) -> OperationResult {
        use crate::hresult::{S_OK, WU_E_ALL_UPDATES_FAILED, WU_S_UPDATE_ERROR};
        let succeeded = updates
            .iter()
            .filter(|update| {
                matches!(
                    update.result_code,
                    OperationResultCode::Succeeded | OperationResultCode::SucceededWithErrors
                )
            })
            .count();
        let reboot_required = updates.iter().any(|update| update.reboot_required);
        let (result_code, hresult) = if aborted {
            (OperationResultCode::Aborted, crate::hresult::E_ABORT)
        } else if succeeded == updates.len() {
            (OperationResultCode::Succeeded, S_OK)
        } else if succeeded > 0 {
            (OperationResultCode::SucceededWithErrors, WU_S_UPDATE_ERROR)
        } else {
            (OperationResultCode::Failed, WU_E_ALL_UPDATES_FAILED)
        };
        OperationResult {
            result_code,
            hresult,
            reboot_required,
            updates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hresult::{WU_E_ALL_UPDATES_FAILED, WU_E_EULAS_DECLINED, WU_S_UPDATE_ERROR};

    fn result(code: OperationResultCode) -> UpdateResult {
        UpdateResult {
            update_id: Uuid::nil(),
            title: String::new(),
            result_code: code,
            hresult: if code == OperationResultCode::Failed {
                WU_E_EULAS_DECLINED
            } else {
                crate::hresult::S_OK
            },
            reboot_required: false,
            unmapped_result_code: None,
            detail: None,
        }
    }

    #[test]
    fn aggregate_follows_wua() {
        use OperationResultCode::*;
        let all = OperationResult::aggregate(vec![result(Succeeded), result(Succeeded)], false);
        assert_eq!(all.result_code, Succeeded);
        let some = OperationResult::aggregate(vec![result(Succeeded), result(Failed)], false);
        assert_eq!(
            (some.result_code, some.hresult),
            (SucceededWithErrors, WU_S_UPDATE_ERROR)
        );
        let none = OperationResult::aggregate(vec![result(Failed), result(Failed)], false);
        assert_eq!(
            (none.result_code, none.hresult),
            (Failed, WU_E_ALL_UPDATES_FAILED)
        );
        let aborted = OperationResult::aggregate(vec![result(Succeeded), result(Aborted)], true);
        assert_eq!(aborted.result_code, Aborted);
    }

    #[test]
    fn percent_is_bounded() {
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 3), 100);
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
    }
}
