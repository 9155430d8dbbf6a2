//! The same objects for programs without an async runtime: each session
//! owns a small current-thread runtime and blocks on every call.
//!
//! ```no_run
//! # fn main() -> Result<(), openwua_client::ClientError> {
//! let session = openwua_client::blocking::UpdateSession::connect_default()?;
//! let result = session.create_update_searcher().search("IsInstalled=0")?;
//! println!("{} updates", result.updates.len());
//! # Ok(())
//! # }
//! ```
//!
//! Do not use it from inside an async runtime: blocking there panics. Use
//! the async [`crate::UpdateSession`] instead.

use std::path::Path;

use openwua_model::caller::CallerContext;
use openwua_model::enums::{DownloadPriority, ServerSelection};
use openwua_model::history::{HistoryEntry, SystemInfo};
use openwua_model::operation::{InstallerState, JobInfo};
use openwua_model::search::UpdateDetails;
use openwua_model::service::ServiceInfo;
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::error::ClientError;
use crate::interactive::{InstallEvent, UserReplyReceiver};
use crate::search::SearchResult;
use crate::services::{AddedService, SyncProgress, SyncResult};
use crate::session::{AgentInfo, default_socket};

/// [`crate::UpdateSession`], blocking.
#[derive(Debug)]
pub struct UpdateSession {
    // Declared first so the connection goes before the runtime it uses.
    session: crate::UpdateSession,
    runtime: Runtime,
}

impl UpdateSession {
    /// Connects to the agent at `socket` and checks its protocol version.
    pub fn connect(socket: impl AsRef<Path>) -> Result<UpdateSession, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(ClientError::Io)?;
        let session = runtime.block_on(crate::UpdateSession::connect(socket))?;
        Ok(UpdateSession { session, runtime })
    }

    /// Connects to the agent at [`crate::default_socket`].
    pub fn connect_default() -> Result<UpdateSession, ClientError> {
        UpdateSession::connect(default_socket())
    }

    /// `ClientApplicationID`.
    pub fn client_application_id(&self) -> Option<&str> {
        self.session.client_application_id()
    }

    /// Sets `ClientApplicationID`, sent with every call that takes it.
    pub fn set_client_application_id(&mut self, id: impl Into<String>) {
        self.session.set_client_application_id(id);
    }

    /// The agent's versions, as it gave them when the session connected.
    pub fn agent_info(&self) -> &AgentInfo {
        self.session.agent_info()
    }

    /// `CreateUpdateSearcher`: a searcher with WUA's default options.
    pub fn create_update_searcher(&self) -> UpdateSearcher<'_> {
        let defaults = self.session.create_update_searcher();
        UpdateSearcher {
            session: self,
            server_selection: defaults.server_selection,
            service_id: defaults.service_id,
            online: defaults.online,
            include_potentially_superseded_updates: defaults.include_potentially_superseded_updates,
        }
    }

    /// WUA's `UpdateServiceManager`, working through this session.
    pub fn create_update_service_manager(&self) -> UpdateServiceManager<'_> {
        UpdateServiceManager { session: self }
    }

    /// `CreateUpdateDownloader`: a downloader for no updates yet, at normal
    /// priority.
    pub fn create_update_downloader(&self) -> UpdateDownloader<'_> {
        let defaults = self.session.create_update_downloader();
        UpdateDownloader {
            session: self,
            updates: defaults.updates,
            priority: defaults.priority,
            is_forced: defaults.is_forced,
        }
    }

    /// `CreateUpdateInstaller`: an installer for no updates yet, with WUA's
    /// defaults.
    pub fn create_update_installer(&self) -> UpdateInstaller<'_> {
        let defaults = self.session.create_update_installer();
        UpdateInstaller {
            session: self,
            updates: defaults.updates,
            force_quiet: defaults.force_quiet,
            allow_source_prompts: defaults.allow_source_prompts,
            is_forced: defaults.is_forced,
        }
    }

    /// One update by `UpdateID`, with its state and its EULA text.
    pub fn get_update(&self, update_id: Uuid) -> Result<UpdateDetails, ClientError> {
        self.runtime.block_on(self.session.get_update(update_id))
    }

    /// `IUpdate.IsHidden = hidden` for each update. Needs an administrator.
    pub fn set_hidden(&self, update_ids: &[Uuid], hidden: bool) -> Result<(), ClientError> {
        self.runtime
            .block_on(self.session.set_hidden(update_ids, hidden))
    }

    /// `IUpdate.AcceptEula`. Needs an administrator.
    pub fn accept_eula(&self, update_id: Uuid) -> Result<(), ClientError> {
        self.runtime.block_on(self.session.accept_eula(update_id))
    }

    /// How the agent sees this session's caller (`GetCallerContext`).
    pub fn caller_context(&self) -> Result<CallerContext, ClientError> {
        self.runtime.block_on(self.session.caller_context())
    }

    /// Machine-wide state: `RebootRequired` and the agent's counts.
    pub fn system_info(&self) -> Result<SystemInfo, ClientError> {
        self.runtime.block_on(self.session.system_info())
    }

    /// Syncs one service (`None`: all of them), calling `progress` at each
    /// phase; returns the last service's result.
    pub fn sync(
        &self,
        service_id: Option<Uuid>,
        progress: impl FnMut(&SyncProgress),
    ) -> Result<SyncResult, ClientError> {
        self.runtime
            .block_on(self.session.sync(service_id, progress))
    }

    /// [`UpdateSession::sync`], `online` refreshing from the network
    /// first (an apt service runs `apt-get update`).
    pub fn sync_with(
        &self,
        service_id: Option<Uuid>,
        online: bool,
        progress: impl FnMut(&SyncProgress),
    ) -> Result<SyncResult, ClientError> {
        self.runtime
            .block_on(self.session.sync_with(service_id, online, progress))
    }

    /// `IsBusy` and `RebootRequiredBeforeInstallation`, with the busy job
    /// and the updates waiting for a restart.
    pub fn installer_state(&self) -> Result<InstallerState, ClientError> {
        self.runtime.block_on(self.session.installer_state())
    }

    /// How status reports to each update server stand.
    pub fn reporting_state(
        &self,
    ) -> Result<Vec<openwua_model::service::ReportingState>, ClientError> {
        self.runtime.block_on(self.session.reporting_state())
    }

    /// The machine's status report for an offline scan package service,
    /// as the JSON document `wua-server import-reports` reads.
    pub fn export_reports(&self, service_id: Option<Uuid>) -> Result<String, ClientError> {
        self.runtime
            .block_on(self.session.export_reports(service_id))
    }

    /// `IAutomaticUpdates`: settings, results, schedule and restarts.
    pub fn automatic_updates(
        &self,
    ) -> Result<openwua_model::automatic::AutomaticUpdatesState, ClientError> {
        self.runtime.block_on(self.session.automatic_updates())
    }

    /// `IAutomaticUpdatesSettings.Save`.
    pub fn set_automatic_updates(
        &self,
        change: &crate::SetAutomaticUpdatesParameters,
    ) -> Result<openwua_model::automatic::AutomaticUpdatesState, ClientError> {
        self.runtime
            .block_on(self.session.set_automatic_updates(change))
    }

    /// `IAutomaticUpdates.DetectNow`.
    pub fn detect_now(&self) -> Result<(), ClientError> {
        self.runtime.block_on(self.session.detect_now())
    }

    /// `IAutomaticUpdates.Pause` until `until` (RFC 3339; None: 7 days).
    pub fn pause_automatic_updates(
        &self,
        until: Option<String>,
    ) -> Result<openwua_model::automatic::AutomaticUpdatesState, ClientError> {
        self.runtime
            .block_on(self.session.pause_automatic_updates(until))
    }

    /// `IAutomaticUpdates.Resume`.
    pub fn resume_automatic_updates(
        &self,
    ) -> Result<openwua_model::automatic::AutomaticUpdatesState, ClientError> {
        self.runtime
            .block_on(self.session.resume_automatic_updates())
    }

    /// The agent's jobs: those running and the newest finished ones.
    pub fn jobs(&self) -> Result<Vec<JobInfo>, ClientError> {
        self.runtime.block_on(self.session.jobs())
    }

    /// Re-attaches to a job, calling `progress` as it goes; returns it
    /// completed.
    pub fn watch_job(
        &self,
        job_id: Uuid,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.runtime
            .block_on(self.session.watch_job(job_id, progress))
    }

    /// `RequestAbort`. Needs an administrator or the user who started it.
    pub fn abort_job(&self, job_id: Uuid) -> Result<(), ClientError> {
        self.runtime.block_on(self.session.abort_job(job_id))
    }
}

/// [`crate::UpdateSearcher`], blocking.
#[derive(Debug)]
pub struct UpdateSearcher<'a> {
    session: &'a UpdateSession,
    /// `ServerSelection`: which service to search (`Others` searches
    /// `service_id`).
    pub server_selection: ServerSelection,
    /// `ServiceID`: the service searched when `server_selection` is `Others`.
    pub service_id: Option<Uuid>,
    /// `Online`: sync with the service before searching.
    pub online: bool,
    /// `IncludePotentiallySupersededUpdates`.
    pub include_potentially_superseded_updates: bool,
}

impl<'a> UpdateSearcher<'a> {
    /// `Search`: the updates that match WUA criteria.
    pub fn search(&self, criteria: &str) -> Result<SearchResult, ClientError> {
        self.session
            .runtime
            .block_on(self.searcher().search(criteria))
    }

    /// `QueryHistory`: up to `count` entries, newest first, skipping `start`.
    pub fn query_history(&self, start: u64, count: u64) -> Result<Vec<HistoryEntry>, ClientError> {
        self.session
            .runtime
            .block_on(self.searcher().query_history(start, count))
    }

    /// `GetTotalHistoryCount`.
    pub fn get_total_history_count(&self) -> Result<u64, ClientError> {
        self.session
            .runtime
            .block_on(self.searcher().get_total_history_count())
    }

    /// The async searcher with this one's options.
    fn searcher(&self) -> crate::UpdateSearcher<'a> {
        let mut searcher = self.session.session.create_update_searcher();
        searcher.server_selection = self.server_selection;
        searcher.service_id = self.service_id;
        searcher.online = self.online;
        searcher.include_potentially_superseded_updates =
            self.include_potentially_superseded_updates;
        searcher
    }
}

/// [`crate::UpdateServiceManager`], blocking.
#[derive(Debug)]
pub struct UpdateServiceManager<'a> {
    session: &'a UpdateSession,
}

impl UpdateServiceManager<'_> {
    /// `Services`: every registered service.
    pub fn services(&self) -> Result<Vec<ServiceInfo>, ClientError> {
        self.session.runtime.block_on(self.manager().services())
    }

    /// `AddScanPackageService`: registers the package at `path`, pinning
    /// `public_key`, and syncs it; content comes from `content_base` when
    /// given, else from the package. Needs an administrator.
    pub fn add_scan_package_service(
        &self,
        name: Option<&str>,
        path: &Path,
        public_key: &str,
        set_default: bool,
        content_base: Option<&str>,
    ) -> Result<AddedService, ClientError> {
        self.session
            .runtime
            .block_on(self.manager().add_scan_package_service(
                name,
                path,
                public_key,
                set_default,
                content_base,
            ))
    }

    /// `AddServerService`: checks that the server at `url` signs with
    /// `public_key`, registers this computer (asking for `target_group`)
    /// and syncs it. Needs an administrator.
    pub fn add_server_service(
        &self,
        url: &str,
        public_key: &str,
        target_group: Option<&str>,
        name: Option<&str>,
        set_default: bool,
    ) -> Result<AddedService, ClientError> {
        self.add_server_service_with_ca(url, public_key, target_group, name, set_default, None)
    }

    /// `AddServerService` for a server whose certificate the operator's
    /// own CA signed: `ca_pem` (PEM text) is trusted beside the system's
    /// roots for this service's requests.
    pub fn add_server_service_with_ca(
        &self,
        url: &str,
        public_key: &str,
        target_group: Option<&str>,
        name: Option<&str>,
        set_default: bool,
        ca_pem: Option<&str>,
    ) -> Result<AddedService, ClientError> {
        self.session
            .runtime
            .block_on(self.manager().add_server_service_with_ca(
                url,
                public_key,
                target_group,
                name,
                set_default,
                ca_pem,
            ))
    }

    /// Registers the machine's apt configuration beneath `apt_root` as a
    /// service and syncs it. Needs an administrator.
    pub fn add_apt_service(
        &self,
        name: Option<&str>,
        apt_root: Option<&std::path::Path>,
        set_default: bool,
    ) -> Result<AddedService, ClientError> {
        self.session
            .runtime
            .block_on(self.manager().add_apt_service(name, apt_root, set_default))
    }

    /// `RemoveService`. Needs an administrator.
    pub fn remove_service(&self, service_id: Uuid) -> Result<(), ClientError> {
        self.session
            .runtime
            .block_on(self.manager().remove_service(service_id))
    }

    /// Makes `service_id` the default service. Needs an administrator.
    pub fn set_default_service(&self, service_id: Uuid) -> Result<(), ClientError> {
        self.session
            .runtime
            .block_on(self.manager().set_default_service(service_id))
    }

    fn manager(&self) -> crate::UpdateServiceManager<'_> {
        self.session.session.create_update_service_manager()
    }
}

/// [`crate::UpdateDownloader`], blocking.
#[derive(Debug)]
pub struct UpdateDownloader<'a> {
    session: &'a UpdateSession,
    /// `Updates`: the updates to download, in order.
    pub updates: Vec<Uuid>,
    /// `Priority`.
    pub priority: DownloadPriority,
    /// `IsForced`: also download updates that are installed or do not
    /// apply here.
    pub is_forced: bool,
}

impl<'a> UpdateDownloader<'a> {
    /// `Download`: waits for the job and returns it completed.
    pub fn download(&self) -> Result<JobInfo, ClientError> {
        self.session.runtime.block_on(self.downloader().download())
    }

    /// `Download`, calling `progress` as the job starts, at each step and
    /// completed; returns the completed job.
    pub fn download_with_progress(
        &self,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.session
            .runtime
            .block_on(self.downloader().download_with_progress(progress))
    }

    /// The async downloader with this one's options.
    fn downloader(&self) -> crate::UpdateDownloader<'a> {
        let mut downloader = self.session.session.create_update_downloader();
        downloader.updates.clone_from(&self.updates);
        downloader.priority = self.priority;
        downloader.is_forced = self.is_forced;
        downloader
    }
}

/// [`crate::UpdateInstaller`], blocking.
#[derive(Debug)]
pub struct UpdateInstaller<'a> {
    session: &'a UpdateSession,
    /// `Updates`: the updates to install or uninstall, in order.
    pub updates: Vec<Uuid>,
    /// `ForceQuiet`: installers must not ask the user anything.
    pub force_quiet: bool,
    /// `AllowSourcePrompts` (installations only).
    pub allow_source_prompts: bool,
    /// `IsForced`.
    pub is_forced: bool,
}

impl<'a> UpdateInstaller<'a> {
    /// `Install`: waits for the job and returns it completed.
    pub fn install(&self) -> Result<JobInfo, ClientError> {
        self.session.runtime.block_on(self.installer().install())
    }

    /// `Install`, calling `progress` as the job starts, at each step and
    /// completed; returns the completed job.
    pub fn install_with_progress(
        &self,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.session
            .runtime
            .block_on(self.installer().install_with_progress(progress))
    }

    /// `Install`, answering the installers' questions (see
    /// [`crate::interactive`]); `user_replies`' sender may be used from
    /// another thread, for example one reading the user's terminal.
    pub fn install_interactive(
        &self,
        events: impl FnMut(InstallEvent<'_>),
        user_replies: UserReplyReceiver,
    ) -> Result<JobInfo, ClientError> {
        self.session
            .runtime
            .block_on(self.installer().install_interactive(events, user_replies))
    }

    /// `Uninstall`, answering the installers' questions.
    pub fn uninstall_interactive(
        &self,
        events: impl FnMut(InstallEvent<'_>),
        user_replies: UserReplyReceiver,
    ) -> Result<JobInfo, ClientError> {
        self.session
            .runtime
            .block_on(self.installer().uninstall_interactive(events, user_replies))
    }

    /// `Uninstall`: waits for the job and returns it completed.
    pub fn uninstall(&self) -> Result<JobInfo, ClientError> {
        self.session.runtime.block_on(self.installer().uninstall())
    }

    /// `Uninstall`, calling `progress` as it goes; returns the completed job.
    pub fn uninstall_with_progress(
        &self,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.session
            .runtime
            .block_on(self.installer().uninstall_with_progress(progress))
    }

    /// `IsBusy`: an installation or uninstallation runs now (a hint).
    pub fn is_busy(&self) -> Result<bool, ClientError> {
        self.session.runtime.block_on(self.installer().is_busy())
    }

    /// `RebootRequiredBeforeInstallation`.
    pub fn reboot_required_before_installation(&self) -> Result<bool, ClientError> {
        self.session
            .runtime
            .block_on(self.installer().reboot_required_before_installation())
    }

    /// The async installer with this one's options.
    fn installer(&self) -> crate::UpdateInstaller<'a> {
        let mut installer = self.session.session.create_update_installer();
        installer.updates.clone_from(&self.updates);
        installer.force_quiet = self.force_quiet;
        installer.allow_source_prompts = self.allow_source_prompts;
        installer.is_forced = self.is_forced;
        installer
    }
}
