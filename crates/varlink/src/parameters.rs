//! The parameters of every method, one struct each: the agent decodes them
//! and refuses unknown fields; clients encode them, leaving out what is
//! unset. Field names are camelCase on the wire, as in
//! `org.openwua.Agent.varlink`.

use std::path::PathBuf;

use openwua_model::enums::DownloadPriority;
use openwua_model::search::SearchOptions;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// The most history entries one `QueryHistory` reply carries: a larger
/// `count` is read as this one, so that a reply stays small enough to
/// build in memory. Clients page through longer histories.
pub const MAX_HISTORY_COUNT: i64 = 1000;

/// Methods without parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}

/// `org.varlink.service.GetInterfaceDescription`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceParameters {
    /// The interface's name.
    pub interface: String,
}

/// `Search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchParameters {
    /// WUA search criteria.
    pub criteria: String,
    /// Search options; the defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<SearchOptions>,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `GetUpdate` and `AcceptEula`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateParameters {
    /// The update.
    pub update_id: Uuid,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `SetHidden`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetHiddenParameters {
    /// The updates.
    pub update_ids: Vec<Uuid>,
    /// Hide (true) or unhide them.
    pub hidden: bool,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `QueryHistory`: WUA's `start` and `count` (signed, as WUA's `LONG`; a
/// negative one is the agent's `WU_E_INVALIDINDEX`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryParameters {
    /// Entries to skip, newest first.
    pub start: i64,
    /// Entries wanted; decoded as at most [`MAX_HISTORY_COUNT`].
    #[serde(deserialize_with = "at_most_max_history_count")]
    pub count: i64,
}

fn at_most_max_history_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    Ok(i64::deserialize(deserializer)?.min(MAX_HISTORY_COUNT))
}

/// `AddScanPackageService`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddPackageParameters {
    /// The service's name; the package's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The scan package, a path the agent reads.
    pub path: PathBuf,
    /// The Ed25519 key its signature must verify with.
    pub public_key: String,
    /// Make it the default service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_default: Option<bool>,
    /// Where its content is downloaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base: Option<String>,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `AddServerService`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddServerParameters {
    /// The update server's URL (`https://…`, or `http://` to loopback).
    pub url: String,
    /// The Ed25519 key its catalogs must be signed with.
    pub public_key: String,
    /// The computer group to ask for (client-side targeting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
    /// The service's name; the server's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Make it the default service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_default: Option<bool>,
    /// The CA (PEM text) that signed the server's certificate, trusted
    /// beside the system's roots for this service alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `AddAptService`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddAptParameters {
    /// The service's name; `Debian` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// apt's root directory (an absolute path); `/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt_root: Option<String>,
    /// Make it the default service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_default: Option<bool>,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `Sync`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncParameters {
    /// The service; every service when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Uuid>,
    /// WUA's `Online`: refresh from the network first (an apt service
    /// runs `apt-get update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `Download`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownloadParameters {
    /// The updates.
    pub update_ids: Vec<Uuid>,
    /// Accepted for WUA's API; one download queue serves every priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<DownloadPriority>,
    /// Download even what looks unneeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_forced: Option<bool>,
    /// The caller's `ClientApplicationID`, for the log and the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `Install` and `Uninstall`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallParameters {
    /// The updates.
    pub update_ids: Vec<Uuid>,
    /// Refuse updates that may ask the user something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_quiet: Option<bool>,
    /// Accepted for WUA's API; OpenWUA's installers never prompt for media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_source_prompts: Option<bool>,
    /// Install even what looks installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_forced: Option<bool>,
    /// The caller's `ClientApplicationID`, for the log and the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
    /// The client answers installers' questions on this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
}

/// `WatchJob` and `AbortJob`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobParameters {
    /// The job.
    pub job_id: Uuid,
}

/// `Sync`, `RemoveService` and `SetDefaultService`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceParameters {
    /// The service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Uuid>,
    /// The caller's `ClientApplicationID`, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_application_id: Option<String>,
}

/// `Answer`, during an interactive install.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerParameters {
    /// The question answered.
    pub question_id: String,
    /// The answer; none declines the question.
    #[serde(default)]
    pub answer: Option<String>,
}

/// `TerminalInput`, during an interactive install.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerminalInputParameters {
    /// Hexadecimal, as terminal output is sent.
    #[serde(with = "hex::serde")]
    pub data: Vec<u8>,
}

/// `ResizeTerminal`, during an interactive install.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResizeParameters {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub columns: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<JobParameters>(
            r#"{"jobId":"6e1b4c1e-0000-4000-8000-000000000001","extra":1}"#,
        );
        assert!(error.is_err());
    }

    #[test]
    fn a_history_count_is_read_as_at_most_the_maximum() {
        let huge: HistoryParameters =
            serde_json::from_str(r#"{"start":0,"count":9223372036854775807}"#).expect("decoded");
        assert_eq!(huge.count, MAX_HISTORY_COUNT);
        let negative: HistoryParameters =
            serde_json::from_str(r#"{"start":0,"count":-1}"#).expect("decoded");
        assert_eq!(negative.count, -1);
    }

    #[test]
    fn unset_options_are_left_out() {
        let json = serde_json::to_value(ServiceParameters::default()).expect("encoded");
        assert_eq!(json, serde_json::json!({}));
    }
}

/// `SetAutomaticUpdates`: the settings to change; absent ones stay.
/// Enumerations are given as a number or a name (`4`,
/// `aunlScheduledInstallation`, `ScheduledInstallation`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetAutomaticUpdatesParameters {
    /// `NotificationLevel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_level: Option<String>,
    /// `ScheduledInstallationDay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_installation_day: Option<String>,
    /// `ScheduledInstallationTime`: the hour, 0–23.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_installation_time: Option<i64>,
    /// `IncludeRecommendedUpdates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_recommended_updates: Option<bool>,
    /// `NonAdministratorsElevated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_administrators_elevated: Option<bool>,
}

/// `PauseAutomaticUpdates`: until when (RFC 3339); absent, 7 days.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseParameters {
    /// The pause's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}
