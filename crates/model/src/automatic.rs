//! Automatic Updates (`IAutomaticUpdates`, `IAutomaticUpdatesSettings`) and
//! the agent's restarts: the settings an administrator sets, and what the
//! agent's scheduler reports about itself.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::enums::{AutomaticUpdatesNotificationLevel, AutomaticUpdatesScheduledInstallationDay};
use crate::history::HistoryEntry;

/// `IAutomaticUpdatesSettings3`: what Automatic Updates does on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutomaticUpdatesSettings {
    /// `NotificationLevel`.
    pub notification_level: AutomaticUpdatesNotificationLevel,
    /// `ScheduledInstallationDay`.
    pub scheduled_installation_day: AutomaticUpdatesScheduledInstallationDay,
    /// `ScheduledInstallationTime`: the hour (0–23, the agent's time zone).
    pub scheduled_installation_time: u8,
    /// `IncludeRecommendedUpdates`: recommended updates (not auto-selected,
    /// not browse-only) are treated like important ones.
    pub include_recommended_updates: bool,
    /// `NonAdministratorsElevated`: users who are not administrators may
    /// install updates from their own interactive login.
    pub non_administrators_elevated: bool,
}

impl Default for AutomaticUpdatesSettings {
    fn default() -> Self {
        AutomaticUpdatesSettings {
            notification_level: AutomaticUpdatesNotificationLevel::NotifyBeforeDownload,
            scheduled_installation_day: AutomaticUpdatesScheduledInstallationDay::EveryDay,
            scheduled_installation_time: 3,
            include_recommended_updates: false,
            non_administrators_elevated: false,
        }
    }
}

/// `IAutomaticUpdates2.Results`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutomaticUpdatesResults {
    /// `LastSearchSuccessDate`: the last detection that synced and scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_search_success_date: Option<Timestamp>,
    /// `LastInstallationSuccessDate`: the last automatic installation that
    /// installed something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub last_installation_success_date: Option<Timestamp>,
}

/// How Automatic Updates stands: `IAutomaticUpdates` with its settings,
/// results and the agent's own schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutomaticUpdatesState {
    /// `Settings`.
    pub settings: AutomaticUpdatesSettings,
    /// `ServiceEnabled`: the notification level is not `aunlDisabled`.
    pub service_enabled: bool,
    /// Paused (`Pause`) until this time; absent when not paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub paused_until: Option<Timestamp>,
    /// `Results`.
    pub results: AutomaticUpdatesResults,
    /// When the next detection (sync and scan) is due; absent when none
    /// will run (disabled, or detection off in the configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub next_detection: Option<Timestamp>,
    /// When the next scheduled installation is (`aunlScheduledInstallation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub next_scheduled_installation: Option<Timestamp>,
    /// The updates Automatic Updates would install now, with their
    /// deadlines: what the level allows, quiet or not.
    pub pending_updates: Vec<PendingUpdate>,
    /// Updates that may ask the user something: never run unattended,
    /// they wait for an administrator at a terminal (the history entry of
    /// their latest refusal).
    pub awaiting_interactive_user: Vec<HistoryEntry>,
    /// The restart policy and the agent's restarts.
    pub restart: RestartState,
}

/// An update Automatic Updates will install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingUpdate {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// `Title`.
    pub title: String,
    /// `Deadline`: installed then, whatever the notification level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub deadline: Option<Timestamp>,
    /// `InstallationBehavior.CanRequestUserInput`: it waits for an
    /// administrator at a terminal instead.
    pub may_ask: bool,
    /// Its content is in the cache.
    pub is_downloaded: bool,
}

/// The restart policy and where the agent stands with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartState {
    /// The configured policy, in words (`never`, or the window and how
    /// logged-in users are treated).
    pub policy: String,
    /// An installed update waits for a restart.
    pub pending: bool,
    /// When the agent means to restart the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub scheduled_for: Option<Timestamp>,
    /// A deadline's limit: the restart happens then at the latest,
    /// whatever the window and whoever is logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub deadline: Option<Timestamp>,
    /// Users logged in when the agent last looked, when they hold the
    /// restart back (`users = "wait"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by_users: Vec<String>,
    /// The agent's restarts, newest first.
    pub history: Vec<RestartRecord>,
}

/// One restart the agent ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartRecord {
    /// When the agent ran the restart command.
    #[schemars(with = "String")]
    pub requested: Timestamp,
    /// Why: the window, or a deadline.
    pub reason: String,
    /// The command that was run.
    pub command: Vec<String>,
    /// The kernel's boot ID before.
    pub boot_id: Uuid,
    /// What became of it.
    pub outcome: RestartOutcome,
    /// Why the command failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the agent, started again, saw another boot ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub confirmed: Option<Timestamp>,
}

/// What became of a restart the agent ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestartOutcome {
    /// The command ran; the machine has not come back yet.
    Requested,
    /// The agent started again in another boot: the machine restarted.
    Confirmed,
    /// The command and its fallback failed: nothing restarted.
    Failed,
    /// The agent started again in the same boot: the restart did not
    /// happen.
    NotRestarted,
}
