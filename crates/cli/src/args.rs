//! The command line, as clap reads it. The doc comments are the help text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use openwua_model::enums::DownloadPriority;
use uuid::Uuid;

/// What `wua --help` says after the commands.
const EXIT_STATUSES: &str = "\
Exit status: 0 done; 1 invalid input; 2 could not run; 3 access denied;
4 some updates failed; 5 all failed, or aborted; 6 (`wua status` only) a
restart is pending. A restart needed by an installation is reported, not
its exit status: `wua status` says it, and its `--json` has `rebootRequired`.";

/// OpenWUA: the Windows Update Agent for Linux.
#[derive(Debug, Parser)]
#[command(
    name = "wua",
    version,
    about,
    propagate_version = true,
    after_help = EXIT_STATUSES
)]
pub struct Args {
    /// The agent's socket [default: $OPENWUA_SOCKET, else
    /// /run/openwua/agent.sock].
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Run an agent inside wua instead of connecting to wua-agent.
    #[arg(long, global = true, conflicts_with = "socket")]
    pub embedded: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain result codes: 0x80240020, 2149842976, -2145124320,
    /// WU_E_NO_INTERACTIVE_USER (any case), or an enum member such as orcFailed.
    Explain {
        /// The codes or names to explain. Options may follow them; a
        /// negative decimal code is a code, not an option (or put it after
        /// `--`).
        #[arg(
            required = true,
            value_name = "CODE|NAME",
            allow_negative_numbers = true
        )]
        codes: Vec<String>,
        /// Print JSON (one array) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Work with WUA search criteria.
    Criteria {
        #[command(subcommand)]
        command: CriteriaCommand,
    },
    /// Search for updates with WUA criteria.
    Search(SearchArgs),
    /// Show everything about one update.
    Show {
        /// The update's UpdateID.
        #[arg(value_name = "UPDATE-ID")]
        id: Uuid,
        /// Print the update and its state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hide updates from default searches (needs an administrator).
    Hide {
        /// The updates' UpdateIDs.
        #[arg(required = true, value_name = "UPDATE-ID")]
        ids: Vec<Uuid>,
    },
    /// Show hidden updates in default searches again (needs an administrator).
    Unhide {
        /// The updates' UpdateIDs.
        #[arg(required = true, value_name = "UPDATE-ID")]
        ids: Vec<Uuid>,
    },
    /// Read or accept an update's licence terms (EULA).
    Eula {
        #[command(subcommand)]
        command: EulaCommand,
    },
    /// The machine's update history, newest first.
    History(HistoryArgs),
    /// The update services the agent syncs from.
    Services {
        #[command(subcommand)]
        command: ServicesCommand,
    },
    /// Download updates' content into the agent's cache (needs an
    /// administrator).
    Download(DownloadArgs),
    /// Install updates: accept their licences if asked, download what is
    /// missing, then install (needs an administrator).
    #[command(after_help = EXIT_STATUSES)]
    Install(InstallArgs),
    /// Uninstall updates (needs an administrator).
    Uninstall(UninstallArgs),
    /// Sync every service, then download and install every update this
    /// machine needs (IsInstalled=0 and IsHidden=0).
    #[command(after_help = EXIT_STATUSES)]
    Update(UpdateArgs),
    /// The agent's download, install and uninstall jobs, running or
    /// finished.
    Jobs {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Follow a job to its end, with the output of the command that
    /// started it.
    Watch {
        /// The job's ID, from `wua jobs`.
        #[arg(value_name = "JOB-ID")]
        id: Uuid,
        /// Print the completed job as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a job to stop before its next update; the rest end Aborted
    /// (needs an administrator or the user who started it).
    Abort {
        /// The job's ID, from `wua jobs`.
        #[arg(value_name = "JOB-ID")]
        id: Uuid,
    },
    /// Sync update services' catalogs and rescan the machine.
    Sync {
        /// Sync only this service [default: all].
        #[arg(long, value_name = "SERVICE-ID")]
        service: Option<Uuid>,
        /// Refresh from the network first (WUA's Online): an apt service
        /// runs `apt-get update`.
        #[arg(long)]
        online: bool,
        /// Print the services' SyncResults as a JSON array, once done.
        #[arg(long)]
        json: bool,
    },
    /// How the agent sees this process: its class (interactive, elevated,
    /// secondary logon, …), the facts with their sources, and what it may
    /// do — with what to do instead when updates that ask questions are
    /// refused (0x80240020 WU_E_NO_INTERACTIVE_USER).
    Context {
        /// Print the agent's CallerContext as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The agent, the machine's update state and the services. Exit
    /// status 6 when a restart is pending.
    #[command(after_help = EXIT_STATUSES)]
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// At most two lines, only when a restart is pending or updates wait
        /// for an administrator at a terminal; nothing otherwise (for login
        /// messages).
        #[arg(long, conflicts_with = "json")]
        brief: bool,
    },
    /// Automatic Updates: what the agent downloads and installs on its
    /// own, on which schedule, and its restarts.
    Auto {
        #[command(subcommand)]
        command: AutoCommand,
    },
    /// Make signing keys, and build and verify offline scan packages.
    Package {
        #[command(subcommand)]
        command: PackageCommand,
    },
    /// Air gap: write this machine's status report for an offline scan
    /// package service (one `wua-server export` wrote) for its update
    /// server's `wua-server import-reports`: the state of every update of
    /// that service, in the shape the agent posts to a server, with this
    /// machine's ID and host name (needs an administrator).
    ExportReports {
        /// The scan package service [default: the only one].
        #[arg(long, value_name = "SERVICE-ID")]
        service: Option<Uuid>,
        /// The file to write [default: standard output].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// WUA search criteria, e.g. "IsInstalled=0 and Type='Software'".
    #[arg(
        value_name = "CRITERIA",
        default_value = "IsInstalled=0 and IsHidden=0",
        allow_hyphen_values = true
    )]
    pub criteria: OsString,
    /// Print the search result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Search this service instead of the default one.
    #[arg(long, value_name = "SERVICE-ID")]
    pub service: Option<Uuid>,
    /// Sync with the service before searching.
    #[arg(long)]
    pub online: bool,
    /// Keep updates that a newer applicable update replaces.
    #[arg(long)]
    pub include_superseded: bool,
}

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// The updates' UpdateIDs.
    #[arg(value_name = "UPDATE-ID", required_unless_present = "all")]
    pub ids: Vec<Uuid>,
    /// Every update this machine needs (IsInstalled=0 and IsHidden=0).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// How urgently to download.
    #[arg(long, value_enum, default_value_t = Priority::Normal)]
    pub priority: Priority,
    /// Also download updates that are installed or do not apply here.
    #[arg(long)]
    pub force: bool,
    /// Print the completed job as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--priority`: WUA's `DownloadPriority`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Priority {
    /// dpLow.
    Low,
    /// dpNormal.
    Normal,
    /// dpHigh.
    High,
    /// dpExtraHigh.
    ExtraHigh,
}

impl From<Priority> for DownloadPriority {
    fn from(priority: Priority) -> Self {
        match priority {
            Priority::Low => DownloadPriority::Low,
            Priority::Normal => DownloadPriority::Normal,
            Priority::High => DownloadPriority::High,
            Priority::ExtraHigh => DownloadPriority::ExtraHigh,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The updates' UpdateIDs.
    #[arg(value_name = "UPDATE-ID", required_unless_present = "all")]
    pub ids: Vec<Uuid>,
    /// Every update this machine needs (IsInstalled=0 and IsHidden=0).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Accept the licence terms (EULAs) of the updates that have some;
    /// without it they fail with WU_E_EULAS_DECLINED.
    #[arg(long)]
    pub accept_eulas: bool,
    /// Installers must not ask anything (ForceQuiet).
    #[arg(long)]
    pub quiet: bool,
    /// Install again what is installed already (IsForced).
    #[arg(long)]
    pub force: bool,
    /// Do not download first: updates not downloaded yet fail.
    #[arg(long)]
    pub no_download: bool,
    /// Print the completed installation job as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// The updates' UpdateIDs.
    #[arg(required = true, value_name = "UPDATE-ID")]
    pub ids: Vec<Uuid>,
    /// Uninstallers must not ask anything (ForceQuiet).
    #[arg(long)]
    pub quiet: bool,
    /// Uninstall even updates that do not say they can be (IsForced).
    #[arg(long)]
    pub force: bool,
    /// Print the completed job as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Accept the licence terms (EULAs) of the updates found; without it
    /// those updates fail with WU_E_EULAS_DECLINED.
    #[arg(long)]
    pub accept_eulas: bool,
    /// Installers must not ask anything (ForceQuiet).
    #[arg(long)]
    pub quiet: bool,
    /// Print {sync, search, download, install} as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EulaCommand {
    /// Print an update's licence terms.
    Show {
        /// The update's UpdateID.
        #[arg(value_name = "UPDATE-ID")]
        id: Uuid,
    },
    /// Accept an update's licence terms (needs an administrator).
    Accept {
        /// The update's UpdateID.
        #[arg(value_name = "UPDATE-ID")]
        id: Uuid,
    },
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Skip this many of the newest entries.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub start: u64,
    /// Show at most this many entries [default: all].
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// List the registered update services.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Register an offline scan package as a service and sync it (needs an
    /// administrator).
    AddPackage(AddPackageArgs),
    /// Register this computer with an update server (wua-server) and sync
    /// it (needs an administrator).
    AddServer(AddServerArgs),
    /// Register this machine's own Debian repositories, as apt knows them,
    /// and sync them (needs an administrator).
    AddApt(AddAptArgs),
    /// Unregister a service (needs an administrator).
    Remove {
        /// The service's ServiceID.
        #[arg(value_name = "SERVICE-ID")]
        id: Uuid,
    },
    /// Make a service the default one, searched when none is named (needs
    /// an administrator).
    Default {
        /// The service's ServiceID.
        #[arg(value_name = "SERVICE-ID")]
        id: Uuid,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddAptArgs {
    /// The service's name [default: Debian].
    #[arg(long)]
    pub name: Option<String>,
    /// apt's root directory: its configuration, lists and cache beneath
    /// [default: /]. dpkg's database is the agent's own.
    #[arg(long, value_name = "DIR")]
    pub apt_root: Option<PathBuf>,
    /// Make it the default service.
    #[arg(long)]
    pub default: bool,
    /// Print the service and its first sync as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct AddPackageArgs {
    /// The scan package file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The key that signs the package: ed25519:<hex>, or a .pub file
    /// holding it.
    #[arg(long, value_name = "KEY|FILE")]
    pub pubkey: OsString,
    /// The service's name [default: the agent's choice].
    #[arg(long)]
    pub name: Option<String>,
    /// Make it the default service.
    #[arg(long)]
    pub default: bool,
    /// Fetch content from this URL (http://, https:// or file:/// ending
    /// in /) instead of from the package.
    #[arg(long, value_name = "URL")]
    pub content_base: Option<String>,
    /// Print the service and its first sync as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct AddServerArgs {
    /// The server's URL: https://…, or http:// to a loopback host.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The key the server signs its catalogs with: ed25519:<hex>, or a
    /// .pub file holding it.
    #[arg(long, value_name = "KEY|FILE")]
    pub pubkey: OsString,
    /// The computer group to ask for (client-side targeting) [default: the
    /// server's choice].
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// The service's name [default: the server's].
    #[arg(long)]
    pub name: Option<String>,
    /// Make it the default service.
    #[arg(long)]
    pub default: bool,
    /// The CA (PEM) that signed the server's certificate, trusted beside
    /// the system's roots for this service.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Print the service and its first sync as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CriteriaCommand {
    /// Check a criteria string: print its normalized form, or the error with
    /// a caret under its position (exit status 1).
    Check {
        /// The criteria, e.g. "IsInstalled=0 and Type='Software'"; `-` reads
        /// them from standard input. Empty means the default,
        /// IsInstalled=0 and IsHidden=0.
        #[arg(value_name = "CRITERIA", allow_hyphen_values = true)]
        criteria: OsString,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Make a signing key pair: PREFIX.key (secret, owner-only) and
    /// PREFIX.pub (the public key agents pin). Never replaces a file.
    Keygen {
        /// Where to write, without the .key and .pub suffixes.
        #[arg(value_name = "PREFIX")]
        prefix: PathBuf,
    },
    /// Build a service directory (service.toml and one directory per
    /// update) into a signed offline scan package.
    #[command(disable_version_flag = true)]
    Build {
        /// The service directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The package file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// The signing key file (from `wua package keygen`).
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The catalog version; agents refuse one older than they have
        /// [default: the current Unix time in seconds].
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        /// Days until agents refuse the package as expired.
        #[arg(
            long,
            value_name = "D",
            default_value_t = 30,
            value_parser = clap::value_parser!(u32).range(1..=36_500)
        )]
        valid_days: u32,
        /// Leave the payload files out: agents fetch content elsewhere.
        #[arg(long)]
        no_content: bool,
    },
    /// Check a package as an agent would import it: signature, structure,
    /// expiry. Exit status 1 with the WUA code when it is refused.
    Verify {
        /// The package file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The key that signs the package: ed25519:<hex>, or a .pub file
        /// holding it.
        #[arg(long, value_name = "KEY|FILE")]
        pubkey: OsString,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `wua auto`.
#[derive(Debug, Subcommand)]
pub enum AutoCommand {
    /// The settings, the schedule, the updates it will install, those
    /// waiting for an administrator at a terminal, and the restarts.
    Show {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change the settings (needs an administrator).
    Set(AutoSetArgs),
    /// Detect (sync and scan) now, then do what the level allows.
    DetectNow,
    /// Stop detecting, downloading and installing, deadlines included,
    /// until a time (needs an administrator).
    Pause {
        /// The end, as an RFC 3339 time (2030-01-31T00:00:00Z).
        #[arg(long, value_name = "TIME", conflicts_with = "days")]
        until: Option<String>,
        /// The end, in days from now [default: 7; at most 35].
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u16).range(1..=35))]
        days: Option<u16>,
        /// Print the new state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume after a pause (needs an administrator).
    Resume {
        /// Print the new state as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `wua auto set`.
#[derive(Debug, clap::Args)]
#[command(arg_required_else_help = true)]
pub struct AutoSetArgs {
    /// NotificationLevel: 1 or aunlDisabled, 2 or aunlNotifyBeforeDownload,
    /// 3 or aunlNotifyBeforeInstallation, 4 or aunlScheduledInstallation.
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<String>,
    /// ScheduledInstallationDay: 0 or ausidEveryDay, 1 (Sunday) to 7
    /// (Saturday), or ausidEveryMonday and the like.
    #[arg(long, value_name = "DAY")]
    pub day: Option<String>,
    /// ScheduledInstallationTime: the hour, 0 to 23.
    #[arg(long, value_name = "HOUR", value_parser = clap::value_parser!(i64).range(0..=23))]
    pub hour: Option<i64>,
    /// IncludeRecommendedUpdates.
    #[arg(long, value_name = "BOOL")]
    pub include_recommended: Option<bool>,
    /// NonAdministratorsElevated.
    #[arg(long, value_name = "BOOL")]
    pub non_administrators_elevated: Option<bool>,
    /// Print the new state as JSON.
    #[arg(long)]
    pub json: bool,
}
