//! `UpdateDownloader` and `UpdateInstaller`: downloads, installations and
//! uninstallations, each run by the agent as a job.
//!
//! A job keeps running when its client goes away; any client may find it
//! again with [`UpdateSession::jobs`] and follow it with
//! [`UpdateSession::watch_job`]. Each method here returns the completed job,
//! whose `result` is always set: the call as a whole succeeded even when
//! updates failed, which the result tells update by update.

use openwua_model::enums::DownloadPriority;
use openwua_model::operation::JobInfo;
use openwua_varlink::parameters::{DownloadParameters, InstallParameters};
use uuid::Uuid;

use crate::error::ClientError;
use crate::interactive::{InstallEvent, UserReplyReceiver};
use crate::session::UpdateSession;

/// WUA's `IUpdateDownloader`: fetches updates' content into the agent's
/// cache. Made by [`UpdateSession::create_update_downloader`]. Needs an
/// administrator.
///
/// ```no_run
/// # async fn example(ids: Vec<uuid::Uuid>) -> Result<(), openwua_client::ClientError> {
/// let session = openwua_client::UpdateSession::connect_default().await?;
/// let mut downloader = session.create_update_downloader();
/// downloader.updates = ids;
/// let job = downloader
///     .download_with_progress(|job| {
///         if let Some(progress) = &job.download_progress {
///             eprintln!("{}%", progress.percent_complete);
///         }
///     })
///     .await?;
/// if let Some(result) = &job.result {
///     println!("{:?}", result.result_code);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct UpdateDownloader<'a> {
    session: &'a UpdateSession,
    /// `Updates`: the updates to download, in order. The agent refuses an
    /// empty list with `WU_E_NO_UPDATE`.
    pub updates: Vec<Uuid>,
    /// `Priority`.
    pub priority: DownloadPriority,
    /// `IsForced`: also download updates that are installed or do not
    /// apply here.
    pub is_forced: bool,
}

impl<'a> UpdateDownloader<'a> {
    pub(crate) fn new(session: &'a UpdateSession) -> Self {
        UpdateDownloader {
            session,
            updates: Vec::new(),
            priority: DownloadPriority::Normal,
            is_forced: false,
        }
    }

    /// `Download`: waits for the job to complete and returns it, with its
    /// result.
    pub async fn download(&self) -> Result<JobInfo, ClientError> {
        self.session.run_job("Download", &self.parameters()).await
    }

    /// `BeginDownload`, followed to its end: calls `progress` with the job
    /// as it starts (state Running, which gives its ID), at each step
    /// (`download_progress`) and completed; returns the completed job.
    pub async fn download_with_progress(
        &self,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.session
            .stream_job("Download", &self.parameters(), progress)
            .await
    }

    fn parameters(&self) -> DownloadParameters {
        DownloadParameters {
            update_ids: self.updates.clone(),
            priority: Some(self.priority),
            is_forced: Some(self.is_forced),
            client_application_id: self.session.client_application_id().map(str::to_owned),
        }
    }
}

/// WUA's `IUpdateInstaller`: installs and uninstalls updates, one
/// installation at a time on the machine. Made by
/// [`UpdateSession::create_update_installer`]. Installing and uninstalling
/// need an administrator.
///
/// An update is installed only once downloaded and with its licence terms
/// accepted ([`UpdateSession::accept_eula`]); otherwise its result says why
/// not (`WU_E_EULAS_DECLINED`, …).
#[derive(Debug)]
pub struct UpdateInstaller<'a> {
    session: &'a UpdateSession,
    /// `Updates`: the updates to install or uninstall, in order. The agent
    /// refuses an empty list with `WU_E_NO_UPDATE`.
    pub updates: Vec<Uuid>,
    /// `ForceQuiet`: installers must not ask the user anything.
    pub force_quiet: bool,
    /// `AllowSourcePrompts`: installers may ask for their source media
    /// (installations only).
    pub allow_source_prompts: bool,
    /// `IsForced`: install updates already installed again, or uninstall
    /// updates that do not say they can be.
    pub is_forced: bool,
}

impl<'a> UpdateInstaller<'a> {
    pub(crate) fn new(session: &'a UpdateSession) -> Self {
        UpdateInstaller {
            session,
            updates: Vec::new(),
            force_quiet: false,
            allow_source_prompts: true,
            is_forced: false,
        }
    }

    /// `Install`: waits for the job to complete and returns it, with its
    /// result. `WU_E_INSTALL_NOT_ALLOWED` while another installation runs
    /// or a restart must come first.
    pub async fn install(&self) -> Result<JobInfo, ClientError> {
        self.session
            .run_job("Install", &self.parameters(true))
            .await
    }

    /// `BeginInstall`, followed to its end: calls `progress` with the job
    /// as it starts, at each step (`installation_progress`) and completed;
    /// returns the completed job.
    pub async fn install_with_progress(
        &self,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.session
            .stream_job("Install", &self.parameters(true), progress)
            .await
    }

    /// `Uninstall`: waits for the job to complete and returns it.
    pub async fn uninstall(&self) -> Result<JobInfo, ClientError> {
        self.session
            .run_job("Uninstall", &self.parameters(false))
            .await
    }

    /// `BeginUninstall`, followed to its end, as
    /// [`UpdateInstaller::install_with_progress`].
    pub async fn uninstall_with_progress(
        &self,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.session
            .stream_job("Uninstall", &self.parameters(false), progress)
            .await
    }

    /// `Install`, declaring that this client answers the installers'
    /// questions: `events` gets the job's progress, the questions and any
    /// installer terminal's output, and `user_replies` carries the answers
    /// and keystrokes back (see [`crate::interactive`]). Returns the
    /// completed job.
    pub async fn install_interactive(
        &self,
        events: impl FnMut(InstallEvent<'_>),
        user_replies: UserReplyReceiver,
    ) -> Result<JobInfo, ClientError> {
        self.interactive(true, events, user_replies).await
    }

    /// `Uninstall`, answering questions as
    /// [`UpdateInstaller::install_interactive`] does.
    pub async fn uninstall_interactive(
        &self,
        events: impl FnMut(InstallEvent<'_>),
        user_replies: UserReplyReceiver,
    ) -> Result<JobInfo, ClientError> {
        self.interactive(false, events, user_replies).await
    }

    async fn interactive(
        &self,
        install: bool,
        events: impl FnMut(InstallEvent<'_>),
        user_replies: UserReplyReceiver,
    ) -> Result<JobInfo, ClientError> {
        let parameters = InstallParameters {
            interactive: Some(true),
            ..self.parameters(install)
        };
        let method = if install { "Install" } else { "Uninstall" };
        self.session
            .stream_interactive_job(method, &parameters, events, user_replies)
            .await
    }

    /// `IsBusy`: an installation or uninstallation runs now. Only a hint:
    /// it reserves nothing.
    pub async fn is_busy(&self) -> Result<bool, ClientError> {
        Ok(self.session.installer_state().await?.is_busy)
    }

    /// `RebootRequiredBeforeInstallation`: a restart must come before the
    /// next installation.
    pub async fn reboot_required_before_installation(&self) -> Result<bool, ClientError> {
        Ok(self
            .session
            .installer_state()
            .await?
            .reboot_required_before_installation)
    }

    fn parameters(&self, install: bool) -> InstallParameters {
        InstallParameters {
            update_ids: self.updates.clone(),
            force_quiet: Some(self.force_quiet),
            // Uninstall takes no source prompts.
            allow_source_prompts: install.then_some(self.allow_source_prompts),
            is_forced: Some(self.is_forced),
            client_application_id: self.session.client_application_id().map(str::to_owned),
            interactive: None,
        }
    }
}
