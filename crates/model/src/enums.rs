//! WUA's enumerations, with WUA's numeric values and member names.
//!
//! Rust names drop WUA's member prefixes (`orcSucceeded` is
//! [`OperationResultCode::Succeeded`]); [`WuaEnum`] gives back WUA's names,
//! and JSON uses the Rust variant names (`"Succeeded"`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What every WUA enumeration offers.
pub trait WuaEnum: Sized + Copy + 'static {
    /// WUA's name for the enumeration (`OperationResultCode`).
    const WUA_NAME: &'static str;
    /// Every member, in value order.
    const ALL: &'static [Self];
    /// WUA's numeric value.
    fn value(self) -> i32;
    /// WUA's member name (`orcSucceeded`).
    fn wua_name(self) -> &'static str;
    /// The member with this numeric value.
    fn from_value(value: i32) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|member| member.value() == value)
    }
    /// The member a person or a configuration file names: its numeric
    /// value (`4`), WUA's name (`aunlScheduledInstallation`) or the JSON
    /// name (`ScheduledInstallation`), in any case.
    fn parse(text: &str) -> Option<Self>
    where
        Self: std::fmt::Debug,
    {
        let text = text.trim();
        if let Ok(value) = text.parse::<i32>() {
            return Self::from_value(value);
        }
        // The JSON name is the variant's name, as Debug writes it.
        Self::ALL.iter().copied().find(|member| {
            member.wua_name().eq_ignore_ascii_case(text)
                || format!("{member:?}").eq_ignore_ascii_case(text)
        })
    }
}

/// One enumeration as a table of WUA member names and values, for looking
/// members up by name (`wua explain orcFailed`).
#[derive(Debug)]
pub struct EnumTable {
    /// WUA's name for the enumeration.
    pub name: &'static str,
    /// WUA's member names and values, in value order.
    pub members: &'static [(&'static str, i32)],
}

impl EnumTable {
    /// The enumeration and member with this WUA member name, in any case.
    pub fn find_member(name: &str) -> Option<(&'static EnumTable, &'static str, i32)> {
        ENUM_TABLES.iter().find_map(|table| {
            table
                .members
                .iter()
                .find(|(member, _)| member.eq_ignore_ascii_case(name))
                .map(|&(member, value)| (table, member, value))
        })
    }
}

macro_rules! wua_enums {
    ($(
        $(#[$enum_doc:meta])*
        $enum_name:ident {
            $( $(#[$variant_doc:meta])* $variant:ident = $value:literal => $wua:literal, )+
        }
    )+) => {
        $(
            $(#[$enum_doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
            #[repr(i32)]
            pub enum $enum_name {
                $( $(#[$variant_doc])* $variant = $value, )+
            }

            impl WuaEnum for $enum_name {
                const WUA_NAME: &'static str = stringify!($enum_name);
                const ALL: &'static [Self] = &[$($enum_name::$variant),+];

                fn value(self) -> i32 {
                    self as i32
                }

                fn wua_name(self) -> &'static str {
                    match self {
                        $($enum_name::$variant => $wua,)+
                    }
                }
            }
        )+

        /// Every enumeration of WUA's API, as tables.
        pub static ENUM_TABLES: &[EnumTable] = &[
            $(EnumTable {
                name: stringify!($enum_name),
                members: &[$(($wua, $value)),+],
            }),+
        ];
    };
}

wua_enums! {
    /// How `IUpdateServiceManager2::AddService2` may register a service
    /// (flags, combined by OR).
    AddServiceFlag {
        /// Register later if registering now is impossible.
        AllowPendingRegistration = 1 => "asfAllowPendingRegistration",
        /// Register now, online.
        AllowOnlineRegistration = 2 => "asfAllowOnlineRegistration",
        /// Also register the service with Automatic Updates.
        RegisterServiceWithAu = 4 => "asfRegisterServiceWithAU",
    }

    /// Whether an update is downloaded automatically.
    AutoDownloadMode {
        /// The agent decides.
        LetWindowsUpdateDecide = 0 => "adLetWindowsUpdateDecide",
        /// Never downloaded automatically.
        NeverAutoDownload = 1 => "adNeverAutoDownload",
        /// Always downloaded automatically.
        AlwaysAutoDownload = 2 => "adAlwaysAutoDownload",
    }

    /// Whether an update is selected automatically.
    AutoSelectionMode {
        /// The agent decides.
        LetWindowsUpdateDecide = 0 => "asLetWindowsUpdateDecide",
        /// Selected if already downloaded.
        AutoSelectIfDownloaded = 1 => "asAutoSelectIfDownloaded",
        /// Never selected automatically.
        NeverAutoSelect = 2 => "asNeverAutoSelect",
        /// Always selected automatically.
        AlwaysAutoSelect = 3 => "asAlwaysAutoSelect",
    }

    /// What Automatic Updates does on its own.
    AutomaticUpdatesNotificationLevel {
        /// Not configured.
        NotConfigured = 0 => "aunlNotConfigured",
        /// Automatic Updates is off.
        Disabled = 1 => "aunlDisabled",
        /// Notify before downloading.
        NotifyBeforeDownload = 2 => "aunlNotifyBeforeDownload",
        /// Download, then notify before installing.
        NotifyBeforeInstallation = 3 => "aunlNotifyBeforeInstallation",
        /// Download and install on a schedule.
        ScheduledInstallation = 4 => "aunlScheduledInstallation",
    }

    /// A permission `IAutomaticUpdatesSettings2::CheckPermission` asks about.
    AutomaticUpdatesPermissionType {
        /// May set the notification level.
        SetNotificationLevel = 1 => "auptSetNotificationLevel",
        /// May turn Automatic Updates off.
        DisableAutomaticUpdates = 2 => "auptDisableAutomaticUpdates",
        /// May include recommended updates.
        SetIncludeRecommendedUpdates = 3 => "auptSetIncludeRecommendedUpdates",
        /// May turn featured updates on or off.
        SetFeaturedUpdatesEnabled = 4 => "auptSetFeaturedUpdatesEnabled",
        /// May let non-administrators install updates.
        SetNonAdministratorsElevated = 5 => "auptSetNonAdministratorsElevated",
    }

    /// The day of a scheduled installation.
    AutomaticUpdatesScheduledInstallationDay {
        /// Every day.
        EveryDay = 0 => "ausidEveryDay",
        /// Every Sunday.
        EverySunday = 1 => "ausidEverySunday",
        /// Every Monday.
        EveryMonday = 2 => "ausidEveryMonday",
        /// Every Tuesday.
        EveryTuesday = 3 => "ausidEveryTuesday",
        /// Every Wednesday.
        EveryWednesday = 4 => "ausidEveryWednesday",
        /// Every Thursday.
        EveryThursday = 5 => "ausidEveryThursday",
        /// Every Friday.
        EveryFriday = 6 => "ausidEveryFriday",
        /// Every Saturday.
        EverySaturday = 7 => "ausidEverySaturday",
    }

    /// Whose permission `CheckPermission` asks about.
    AutomaticUpdatesUserType {
        /// The calling user.
        CurrentUser = 1 => "auutCurrentUser",
        /// A local administrator.
        LocalAdministrator = 2 => "auutLocalAdministrator",
    }

    /// What an update is deployed for.
    DeploymentAction {
        /// No action of its own: a bundled update inherits its bundle's.
        None = 0 => "daNone",
        /// To be installed.
        Installation = 1 => "daInstallation",
        /// To be uninstalled.
        Uninstallation = 2 => "daUninstallation",
        /// Detection only: reported, never installed.
        Detection = 3 => "daDetection",
        /// Optional: installed only when someone chooses it.
        OptionalInstallation = 4 => "daOptionalInstallation",
    }

    /// The phase of an update's download.
    DownloadPhase {
        /// Preparing the download.
        Initializing = 1 => "dphInitializing",
        /// Fetching content.
        Downloading = 2 => "dphDownloading",
        /// Checking the fetched content.
        Verifying = 3 => "dphVerifying",
    }

    /// How urgently content is downloaded.
    DownloadPriority {
        /// Low priority.
        Low = 1 => "dpLow",
        /// Normal priority.
        Normal = 2 => "dpNormal",
        /// High priority.
        High = 3 => "dpHigh",
        /// Extra-high priority.
        ExtraHigh = 4 => "dpExtraHigh",
    }

    /// How an installation affects the machine.
    InstallationImpact {
        /// A normal installation.
        Normal = 0 => "iiNormal",
        /// A minor installation.
        Minor = 1 => "iiMinor",
        /// Must be installed alone, in a call of its own.
        RequiresExclusiveHandling = 2 => "iiRequiresExclusiveHandling",
    }

    /// Whether an installation needs a restart.
    InstallationRebootBehavior {
        /// Never needs a restart.
        NeverReboots = 0 => "irbNeverReboots",
        /// Always needs a restart.
        AlwaysRequiresReboot = 1 => "irbAlwaysRequiresReboot",
        /// May need a restart.
        CanRequestReboot = 2 => "irbCanRequestReboot",
    }

    /// The result of an operation, or of one update in it.
    OperationResultCode {
        /// Not started.
        NotStarted = 0 => "orcNotStarted",
        /// Running.
        InProgress = 1 => "orcInProgress",
        /// Succeeded.
        Succeeded = 2 => "orcSucceeded",
        /// Finished, with some failures.
        SucceededWithErrors = 3 => "orcSucceededWithErrors",
        /// Failed.
        Failed = 4 => "orcFailed",
        /// Stopped before it finished.
        Aborted = 5 => "orcAborted",
    }

    /// Whose updates a search returns.
    SearchScope {
        /// The default: machine-wide updates.
        Default = 0 => "searchScopeDefault",
        /// Machine-wide updates only.
        MachineOnly = 1 => "searchScopeMachineOnly",
        /// The calling user's per-user updates only.
        CurrentUserOnly = 2 => "searchScopeCurrentUserOnly",
        /// Machine-wide and the calling user's (not supported).
        MachineAndCurrentUser = 3 => "searchScopeMachineAndCurrentUser",
        /// Machine-wide and every user's (not supported).
        MachineAndAllUsers = 4 => "searchScopeMachineAndAllUsers",
        /// Every user's (not supported).
        AllUsers = 5 => "searchScopeAllUsers",
    }

    /// Which update service a search, download or install uses.
    ServerSelection {
        /// The default service.
        Default = 0 => "ssDefault",
        /// The managed (update server) service.
        ManagedServer = 1 => "ssManagedServer",
        /// The public Windows Update service.
        WindowsUpdate = 2 => "ssWindowsUpdate",
        /// The service named by `ServiceID`.
        Others = 3 => "ssOthers",
    }

    /// Where an update exception (a search warning) comes from.
    UpdateExceptionContext {
        /// General.
        General = 1 => "uecGeneral",
        /// A driver.
        WindowsDriver = 2 => "uecWindowsDriver",
        /// The Windows Installer.
        WindowsInstaller = 3 => "uecWindowsInstaller",
        /// The search is incomplete.
        SearchIncomplete = 4 => "uecSearchIncomplete",
    }

    /// Lock-down options of update objects.
    UpdateLockdownOption {
        /// Locked down for access from web sites.
        ForWebsiteAccess = 1 => "uloForWebsiteAccess",
    }

    /// The operation a history entry or result records.
    UpdateOperation {
        /// An installation.
        Installation = 1 => "uoInstallation",
        /// An uninstallation.
        Uninstallation = 2 => "uoUninstallation",
    }

    /// Options of an update service.
    UpdateServiceOption {
        /// The service survives a restart of the agent.
        NonVolatileService = 1 => "usoNonVolatileService",
    }

    /// Where a service's registration stands.
    UpdateServiceRegistrationState {
        /// Not registered.
        NotRegistered = 1 => "usrsNotRegistered",
        /// Registration will be completed later.
        RegistrationPending = 2 => "usrsRegistrationPending",
        /// Registered.
        Registered = 3 => "usrsRegistered",
    }

    /// The kind of update.
    UpdateType {
        /// Software.
        Software = 1 => "utSoftware",
        /// A driver.
        Driver = 2 => "utDriver",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trait_and_table_agree() {
        assert_eq!(
            OperationResultCode::from_value(3),
            Some(OperationResultCode::SucceededWithErrors)
        );
        assert_eq!(OperationResultCode::Failed.wua_name(), "orcFailed");
        assert_eq!(UpdateType::from_value(0), None);
        let (table, member, value) = EnumTable::find_member("ORCFAILED").unwrap();
        assert_eq!(
            (table.name, member, value),
            ("OperationResultCode", "orcFailed", 4)
        );
    }

    #[test]
    fn json_uses_variant_names() {
        let json = serde_json::to_string(&DeploymentAction::OptionalInstallation).unwrap();
        assert_eq!(json, "\"OptionalInstallation\"");
    }
}
