//! `/etc/openwua/agent.toml` and the command-line overrides.
//!
//! Every path can be changed, so the agent runs unprivileged for tests and
//! inside `wua --embedded` with a per-user state directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openwua_caller::CallerSettings;
use openwua_model::automatic::AutomaticUpdatesSettings;
use openwua_model::enums::{
    AutomaticUpdatesNotificationLevel, AutomaticUpdatesScheduledInstallationDay, WuaEnum,
};
use serde::Deserialize;

use crate::clock::Clock;

/// Where the system agent reads its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/openwua/agent.toml";

/// WUA's default detection frequency: 22 hours.
pub const DEFAULT_SYNC_INTERVAL_SECONDS: u64 = 22 * 60 * 60;

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The store (`agent.db`) and other state.
    pub state_dir: PathBuf,
    /// Downloaded content (used from the download issue on).
    pub cache_dir: PathBuf,
    /// The Varlink socket.
    pub socket: PathBuf,
    /// Members of this group may hide updates, accept EULAs and change
    /// services, besides root. None: only root.
    pub admin_group: Option<String>,
    /// The uid the agent runs as is an administrator too. For an agent a
    /// user runs for themself (`wua --embedded`); never for the system agent.
    pub owner_is_admin: bool,
    /// Where applicability rules read the machine.
    pub facts: FactSources,
    /// How downloads and installers run.
    pub install: InstallSettings,
    /// How callers' contexts are classified (`[caller]`).
    pub caller: CallerSettings,
    /// `[connections]`: what one local user may hold on the agent.
    pub connections: ConnectionSettings,
    /// Automatic Updates' detection frequency: seconds between two syncs
    /// of every update-server and apt service, each wait spread by up to
    /// 10 % more at random so a fleet does not arrive at once; 0 turns
    /// periodic detection off. Default 22 hours, as WUA's
    /// `DetectionFrequency`; off in `wua --embedded`.
    pub sync_interval_seconds: u64,
    /// `[reports]`: how status reports to update servers are retried.
    pub reports: ReportSettings,
    /// Update servers may be reached over plain http:// on a host other
    /// than loopback (the secret and catalog then cross the network
    /// unencrypted, though the catalog's signature still holds).
    pub allow_plain_http: bool,
    /// `[automatic_updates]`: Automatic Updates' first settings and time
    /// zone (docs/agent.md, "Automatic updates and restarts").
    pub automatic_updates: AutomaticUpdatesConfig,
    /// `[restart]`: when the agent restarts the machine itself.
    pub restart: RestartSettings,
    /// Wait for another agent on the same state directory to finish rather
    /// than refuse to start: for `wua --embedded`, whose runs may overlap.
    #[serde(skip)]
    pub wait_for_state_lock: bool,
    /// The time Automatic Updates and restarts are scheduled by: the
    /// system's, or a test's [`crate::clock::Clock::manual`].
    #[serde(skip)]
    pub clock: Clock,
}

/// `[automatic_updates]`: the settings Automatic Updates starts with, until
/// an administrator changes them (`wua auto set`, kept in the store).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutomaticUpdatesConfig {
    /// `NotificationLevel`: a number (1–4), WUA's name
    /// (`aunlScheduledInstallation`) or the JSON name.
    #[serde(deserialize_with = "wua_enum")]
    pub notification_level: AutomaticUpdatesNotificationLevel,
    /// `ScheduledInstallationDay`: 0 (every day) to 7 (Saturday), or a name.
    #[serde(deserialize_with = "wua_enum")]
    pub scheduled_installation_day: AutomaticUpdatesScheduledInstallationDay,
    /// `ScheduledInstallationTime`: the hour, 0–23.
    pub scheduled_installation_time: u8,
    /// `IncludeRecommendedUpdates`.
    pub include_recommended_updates: bool,
    /// `NonAdministratorsElevated`.
    pub non_administrators_elevated: bool,
    /// The time zone of the scheduled hour and the restart window (an IANA
    /// name such as `Europe/Paris`); None: the system's.
    pub time_zone: Option<String>,
}

impl Default for AutomaticUpdatesConfig {
    fn default() -> Self {
        let settings = AutomaticUpdatesSettings::default();
        AutomaticUpdatesConfig {
            notification_level: settings.notification_level,
            scheduled_installation_day: settings.scheduled_installation_day,
            scheduled_installation_time: settings.scheduled_installation_time,
            include_recommended_updates: settings.include_recommended_updates,
            non_administrators_elevated: settings.non_administrators_elevated,
            time_zone: None,
        }
    }
}

impl AutomaticUpdatesConfig {
    /// The settings these values make.
    pub fn settings(&self) -> AutomaticUpdatesSettings {
        AutomaticUpdatesSettings {
            notification_level: self.notification_level,
            scheduled_installation_day: self.scheduled_installation_day,
            scheduled_installation_time: self.scheduled_installation_time,
            include_recommended_updates: self.include_recommended_updates,
            non_administrators_elevated: self.non_administrators_elevated,
        }
    }

    /// The configured time zone, or the system's.
    pub fn time_zone(&self) -> anyhow::Result<jiff::tz::TimeZone> {
        match &self.time_zone {
            Some(name) => jiff::tz::TimeZone::get(name)
                .map_err(|error| anyhow::anyhow!("automatic_updates.time_zone {name:?}: {error}")),
            None => Ok(jiff::tz::TimeZone::system()),
        }
    }
}

/// A WUA enumeration's member from a number or a name.
fn wua_enum<'de, D, E>(deserializer: D) -> Result<E, D::Error>
where
    D: serde::Deserializer<'de>,
    E: WuaEnum + std::fmt::Debug,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spelling {
        Number(i32),
        Name(String),
    }
    let text = match Spelling::deserialize(deserializer)? {
        Spelling::Number(number) => number.to_string(),
        Spelling::Name(name) => name,
    };
    E::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("{text:?} is not a member of {}", E::WUA_NAME))
    })
}

/// `[restart]`: whether and when the agent restarts the machine after an
/// installation needs it (docs/agent.md, "Automatic updates and restarts").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartSettings {
    /// `never` (the default: an administrator restarts), or `window`:
    /// restart inside [`RestartSettings::window`], at a random time in it.
    pub policy: RestartPolicy,
    /// The maintenance window: days and hours in the configured time zone,
    /// `Mon-Fri 02:00-04:00`, `Sat,Sun 01:00-05:00` or `daily 03:00-04:00`.
    pub window: String,
    /// Logged-in users: `ignore` them, `wait` for them to leave (the
    /// window after), or `warn` them `warn_minutes` ahead on their
    /// terminals and restart then.
    pub users: UsersPolicy,
    /// Minutes between the warning and the restart.
    pub warn_minutes: u32,
    /// The restart command.
    pub command: Vec<String>,
    /// Run when the command cannot start or fails.
    pub fallback_command: Vec<String>,
    /// The utmp file logged-in users are read from; without it, from the
    /// processes on terminals in `/proc` (audit login uid and session).
    pub utmp: PathBuf,
}

/// [`RestartSettings::policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart; `wua status` says a restart is pending.
    Never,
    /// Restart inside the maintenance window, or at a deadline.
    Window,
}

/// [`RestartSettings::users`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsersPolicy {
    /// Restart whoever is logged in.
    Ignore,
    /// Not while anyone is logged in.
    Wait,
    /// Warn them on their terminals, then restart.
    Warn,
}

impl Default for RestartSettings {
    fn default() -> Self {
        RestartSettings {
            policy: RestartPolicy::Never,
            window: "daily 02:00-04:00".into(),
            users: UsersPolicy::Wait,
            warn_minutes: 15,
            command: vec!["systemctl".into(), "reboot".into()],
            fallback_command: vec!["shutdown".into(), "-r".into(), "now".into()],
            utmp: PathBuf::from("/var/run/utmp"),
        }
    }
}

/// The files and tools applicability reads; overridable for tests and for
/// checking another root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactSources {
    /// The directory `file_exists` and `file_sha256` paths are resolved in.
    pub root: PathBuf,
    /// dpkg's database directory (`dpkg --admindir`).
    pub dpkg_admindir: PathBuf,
    /// The os-release file.
    pub os_release: PathBuf,
    /// The machine's ID, sent when registering with an update server.
    pub machine_id: PathBuf,
}

/// Downloads, installers and the cache.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstallSettings {
    /// The cache's size limit in bytes: past it, content of installed
    /// updates is evicted, oldest first.
    pub cache_max_bytes: u64,
    /// Content files fetched at the same time.
    pub parallel_downloads: usize,
    /// Seconds to connect to a content server.
    pub connect_timeout_seconds: u64,
    /// Seconds a content server may stay silent mid-download.
    pub read_timeout_seconds: u64,
    /// Seconds a running installer gets to finish after an abort.
    pub abort_grace_seconds: u64,
    /// `command` installers get `OPENWUA_SANDBOX` set to this directory
    /// (the sample service's installers write only there). None: unset.
    pub sandbox_dir: Option<PathBuf>,
    /// dpkg's `--instdir`, for installing into another root (tests).
    pub dpkg_instdir: Option<PathBuf>,
    /// Extra dpkg arguments (tests: `--force-not-root`).
    pub dpkg_extra_args: Vec<String>,
    /// The file Debian packages touch when they need a restart.
    pub reboot_required_file: PathBuf,
    /// The kernel's boot ID: a recorded pending restart holds only while
    /// it is unchanged, so a real reboot clears it.
    pub boot_id_file: PathBuf,
    /// Seconds an interactive installer's question waits for an answer;
    /// then its default is used, or the installer is stopped.
    pub question_timeout_seconds: u64,
    /// Where interactive dpkg runs get a private (0700) directory for
    /// debconf's passthrough socket.
    pub prompt_dir: PathBuf,
    /// Seconds an apt install waits for dpkg's lock held by another
    /// program before it fails with `WU_E_OPERATIONINPROGRESS`.
    pub apt_lock_wait_seconds: u64,
    /// apt's root (`Dir`) for the apt updates an update server delivers as
    /// `.deb` files: apt installs them from the job's content and resolves
    /// their dependencies from this root's sources.
    pub server_apt_root: PathBuf,
}

impl Default for InstallSettings {
    fn default() -> Self {
        InstallSettings {
            cache_max_bytes: 10 << 30,
            parallel_downloads: 4,
            connect_timeout_seconds: 30,
            read_timeout_seconds: 60,
            abort_grace_seconds: 30,
            sandbox_dir: Some(PathBuf::from("/var/lib/openwua/sandbox")),
            dpkg_instdir: None,
            dpkg_extra_args: Vec::new(),
            reboot_required_file: PathBuf::from("/run/reboot-required"),
            boot_id_file: PathBuf::from("/proc/sys/kernel/random/boot_id"),
            question_timeout_seconds: 300,
            prompt_dir: PathBuf::from(openwua_installer::handlers::DEFAULT_PROMPT_DIR),
            apt_lock_wait_seconds: 120,
            server_apt_root: PathBuf::from("/"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/openwua"),
            cache_dir: PathBuf::from("/var/cache/openwua"),
            socket: PathBuf::from("/run/openwua/agent.sock"),
            admin_group: None,
            owner_is_admin: false,
            facts: FactSources::default(),
            install: InstallSettings::default(),
            caller: CallerSettings::default(),
            connections: ConnectionSettings::default(),
            sync_interval_seconds: DEFAULT_SYNC_INTERVAL_SECONDS,
            reports: ReportSettings::default(),
            allow_plain_http: false,
            automatic_updates: AutomaticUpdatesConfig::default(),
            restart: RestartSettings::default(),
            wait_for_state_lock: false,
            clock: Clock::system(),
        }
    }
}

/// How status reports are retried when an update server cannot take them
/// (`docs/agent.md`, "Reporting"): the wait doubles from `retry_base_millis`
/// up to `retry_max_millis`, each wait a random amount between half of it
/// and all of it; a server's `Retry-After` is obeyed when longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSettings {
    /// The first wait after a failure, in milliseconds.
    pub retry_base_millis: u64,
    /// The longest wait, in milliseconds.
    pub retry_max_millis: u64,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            retry_base_millis: 30_000,
            retry_max_millis: 60 * 60 * 1000,
        }
    }
}

/// What one local user may make the agent hold (`docs/agent.md`, "Limits").
/// Every local user may connect, so these bound what one of them can take
/// from everyone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// Connections one user may hold open at once (root too).
    pub per_user: usize,
    /// Connections all users but root may hold open at once.
    pub total: usize,
    /// A connection with no call for this long, none running, is closed.
    pub idle_timeout_seconds: u64,
    /// A call must arrive whole within this long of its first byte.
    pub call_timeout_seconds: u64,
    /// A reply that makes no progress for this long closes its connection.
    pub write_stall_timeout_seconds: u64,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            per_user: 32,
            total: 512,
            idle_timeout_seconds: 60,
            call_timeout_seconds: 30,
            write_stall_timeout_seconds: 30,
        }
    }
}

impl ConnectionSettings {
    /// [`ConnectionSettings::idle_timeout_seconds`].
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_seconds)
    }

    /// [`ConnectionSettings::call_timeout_seconds`].
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_seconds)
    }

    /// [`ConnectionSettings::write_stall_timeout_seconds`].
    pub fn write_stall_timeout(&self) -> Duration {
        Duration::from_secs(self.write_stall_timeout_seconds)
    }
}

impl Default for FactSources {
    fn default() -> Self {
        FactSources {
            root: PathBuf::from("/"),
            dpkg_admindir: PathBuf::from("/var/lib/dpkg"),
            os_release: PathBuf::from("/etc/os-release"),
            machine_id: PathBuf::from("/etc/machine-id"),
        }
    }
}

impl Config {
    /// Reads a config file. A missing file at the default path means the
    /// defaults; any other missing file is an error.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(error) => Err(anyhow::anyhow!("{}: {error}", path.display())),
        }
    }

    /// A configuration whose every path lies under `dir`: for tests and the
    /// embedded agent.
    pub fn under(dir: &Path) -> Config {
        Config {
            state_dir: dir.join("state"),
            cache_dir: dir.join("cache"),
            socket: dir.join("agent.sock"),
            install: InstallSettings {
                sandbox_dir: Some(dir.join("sandbox")),
                reboot_required_file: dir.join("reboot-required"),
                prompt_dir: dir.join("prompts"),
                ..InstallSettings::default()
            },
            // A per-user or test agent syncs when asked, not on its own.
            sync_interval_seconds: 0,
            ..Config::default()
        }
    }

    /// [`Config::sync_interval_seconds`], or None when periodic sync is off.
    pub fn sync_interval(&self) -> Option<Duration> {
        (self.sync_interval_seconds > 0).then(|| Duration::from_secs(self.sync_interval_seconds))
    }

    /// The SQLite store.
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("agent.db")
    }

    /// The running installer's process group, while one runs.
    pub fn installer_group_record(&self) -> PathBuf {
        self.state_dir.join("installer.group")
    }

    /// Installer logs, one per update per run.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// What `files` handlers replaced, per update, for uninstall.
    pub fn backup_dir(&self) -> PathBuf {
        self.state_dir.join("backups")
    }
}
