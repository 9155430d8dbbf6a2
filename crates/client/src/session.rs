//! `UpdateSession` and `UpdateSearcher`: WUA's entry points, one connection
//! to the agent each session.

use std::path::{Path, PathBuf};

use openwua_model::automatic::AutomaticUpdatesState;
use openwua_model::caller::CallerContext;
use openwua_model::enums::ServerSelection;
use openwua_model::history::{HistoryEntry, SystemInfo};
use openwua_model::operation::{InstallerState, JobInfo};
use openwua_model::search::{SearchOptions, UpdateDetails};
use openwua_model::service::ReportingState;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::PROTOCOL_VERSION;
use crate::error::ClientError;
use crate::interactive::{InstallEvent, InteractiveReply, UserReply, UserReplyReceiver};
use crate::operations::{UpdateDownloader, UpdateInstaller};
use crate::search::SearchResult;
use crate::services::{SyncProgress, SyncResult, UpdateServiceManager};
use crate::varlink::Connection;
pub use openwua_varlink::parameters::SetAutomaticUpdatesParameters;
use openwua_varlink::parameters::{
    AnswerParameters, HistoryParameters, JobParameters, MAX_HISTORY_COUNT, PauseParameters,
    ResizeParameters, SearchParameters, SetHiddenParameters, TerminalInputParameters,
    UpdateParameters,
};
pub(crate) use openwua_varlink::parameters::{NoParameters, ServiceParameters, SyncParameters};

/// Where the agent listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/openwua/agent.sock";

/// The environment variable that overrides [`DEFAULT_SOCKET`].
pub const SOCKET_ENV: &str = "OPENWUA_SOCKET";

/// The interface whose methods the session calls.
const INTERFACE: &str = "org.openwua.Agent";

/// The socket [`UpdateSession::connect_default`] uses: `$OPENWUA_SOCKET`
/// when set and not empty, else [`DEFAULT_SOCKET`].
pub fn default_socket() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// The agent's versions (`GetAgentInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// The Varlink protocol version it speaks; this client speaks
    /// [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The agent's own version.
    pub agent_version: String,
}

/// WUA's `IUpdateSession`: one connection to the agent, and the objects
/// that work through it.
///
/// Calls made through one session run one at a time; open several
/// sessions for calls at the same time.
#[derive(Debug)]
pub struct UpdateSession {
    connection: Mutex<Connection>,
    agent: AgentInfo,
    client_application_id: Option<String>,
}

/// A reply with nothing in it.
#[derive(Deserialize)]
pub(crate) struct Done {}

#[derive(Deserialize)]
struct InfoReply<T> {
    info: T,
}

#[derive(Deserialize)]
struct ContextReply {
    context: CallerContext,
}

#[derive(Deserialize)]
struct ResultReply {
    result: SearchResult,
}

#[derive(Deserialize)]
struct EntriesReply {
    entries: Vec<HistoryEntry>,
}

#[derive(Deserialize)]
struct CountReply {
    count: u64,
}

#[derive(Deserialize)]
struct ProgressReply {
    progress: SyncProgress,
}

#[derive(Deserialize)]
struct JobReply {
    job: JobInfo,
}

#[derive(Deserialize)]
struct JobsReply {
    jobs: Vec<JobInfo>,
}

#[derive(Deserialize)]
struct StateReply {
    state: InstallerState,
}

#[derive(Deserialize)]
struct AutomaticReply {
    state: AutomaticUpdatesState,
}

#[derive(Deserialize)]
struct ReportingReply {
    servers: Vec<ReportingState>,
}

#[derive(Deserialize)]
struct ExportReply {
    report: Box<serde_json::value::RawValue>,
}

impl UpdateSession {
    /// Connects to the agent at `socket` and checks that it speaks this
    /// client's protocol (`WU_E_INVALID_SERIALIZATION_VERSION` if not).
    pub async fn connect(socket: impl AsRef<Path>) -> Result<UpdateSession, ClientError> {
        let mut connection = Connection::connect(socket.as_ref()).await?;
        let InfoReply { info } = connection
            .call::<_, InfoReply<AgentInfo>>(&method("GetAgentInfo"), &NoParameters {})
            .await?;
        if info.protocol_version != PROTOCOL_VERSION {
            return Err(ClientError::ProtocolVersion {
                agent: info.protocol_version,
            });
        }
        Ok(UpdateSession {
            connection: Mutex::new(connection),
            agent: info,
            client_application_id: None,
        })
    }

    /// Connects to the agent at [`default_socket`].
    pub async fn connect_default() -> Result<UpdateSession, ClientError> {
        UpdateSession::connect(default_socket()).await
    }

    /// `ClientApplicationID`: who is calling, for the agent's history and
    /// logs (the agent identifies the caller itself; this is only a label).
    pub fn client_application_id(&self) -> Option<&str> {
        self.client_application_id.as_deref()
    }

    /// Sets `ClientApplicationID`, sent with every call that takes it.
    pub fn set_client_application_id(&mut self, id: impl Into<String>) {
        self.client_application_id = Some(id.into());
    }

    /// The agent's versions, as it gave them when the session connected.
    pub fn agent_info(&self) -> &AgentInfo {
        &self.agent
    }

    /// `CreateUpdateSearcher`: a searcher with WUA's default options.
    pub fn create_update_searcher(&self) -> UpdateSearcher<'_> {
        UpdateSearcher {
            session: self,
            server_selection: ServerSelection::Default,
            service_id: None,
            online: false,
            include_potentially_superseded_updates: false,
        }
    }

    /// WUA's `UpdateServiceManager`, working through this session.
    pub fn create_update_service_manager(&self) -> UpdateServiceManager<'_> {
        UpdateServiceManager::new(self)
    }

    /// `CreateUpdateDownloader`: a downloader for no updates yet, at normal
    /// priority.
    pub fn create_update_downloader(&self) -> UpdateDownloader<'_> {
        UpdateDownloader::new(self)
    }

    /// `CreateUpdateInstaller`: an installer for no updates yet, with
    /// WUA's defaults (source prompts allowed, not forced, not quiet).
    pub fn create_update_installer(&self) -> UpdateInstaller<'_> {
        UpdateInstaller::new(self)
    }

    /// One update by `UpdateID`, with its state, its EULA text and whether
    /// it applies to this machine.
    pub async fn get_update(&self, update_id: Uuid) -> Result<UpdateDetails, ClientError> {
        // GetUpdate takes no ClientApplicationID: it changes nothing.
        let parameters = UpdateParameters {
            update_id,
            client_application_id: None,
        };
        self.call("GetUpdate", &parameters).await
    }

    /// `IUpdate.IsHidden = hidden` for each update. Needs an administrator.
    pub async fn set_hidden(&self, update_ids: &[Uuid], hidden: bool) -> Result<(), ClientError> {
        let parameters = SetHiddenParameters {
            update_ids: update_ids.to_vec(),
            hidden,
            client_application_id: self.client_application_id.clone(),
        };
        let Done {} = self.call("SetHidden", &parameters).await?;
        Ok(())
    }

    /// `IUpdate.AcceptEula`. Needs an administrator.
    pub async fn accept_eula(&self, update_id: Uuid) -> Result<(), ClientError> {
        let parameters = UpdateParameters {
            update_id,
            client_application_id: self.client_application_id.clone(),
        };
        let Done {} = self.call("AcceptEula", &parameters).await?;
        Ok(())
    }

    /// How the agent sees this session's caller (`GetCallerContext`): its
    /// class, the facts with their sources, what it may do and, when it may
    /// not install updates that ask questions, what to do instead.
    pub async fn caller_context(&self) -> Result<CallerContext, ClientError> {
        let ContextReply { context } = self.call("GetCallerContext", &NoParameters {}).await?;
        Ok(context)
    }

    /// Machine-wide state: `RebootRequired` and the agent's counts.
    pub async fn system_info(&self) -> Result<SystemInfo, ClientError> {
        let InfoReply { info } = self.call("GetSystemInfo", &NoParameters {}).await?;
        Ok(info)
    }

    /// Syncs one service (`None`: all of them) and rescans, calling
    /// `progress` as each phase starts and ends; returns the last service's
    /// result.
    pub async fn sync(
        &self,
        service_id: Option<Uuid>,
        progress: impl FnMut(&SyncProgress),
    ) -> Result<SyncResult, ClientError> {
        self.sync_with(service_id, false, progress).await
    }

    /// [`UpdateSession::sync`], `online` (WUA's `Online`) refreshing from
    /// the network first: an apt service runs `apt-get update`.
    pub async fn sync_with(
        &self,
        service_id: Option<Uuid>,
        online: bool,
        mut progress: impl FnMut(&SyncProgress),
    ) -> Result<SyncResult, ClientError> {
        let parameters = SyncParameters {
            service_id,
            online: online.then_some(true),
            client_application_id: self.client_application_id.clone(),
        };
        let name = method("Sync");
        let mut connection = self.connection.lock().await;
        let mut replies = connection.call_more(&name, &parameters).await?;
        let mut last = None;
        while let Some(ProgressReply { progress: phase }) = replies.next().await? {
            progress(&phase);
            last = Some(phase);
        }
        last.and_then(|phase| phase.result)
            .ok_or_else(|| ClientError::Protocol(format!("the last reply to {name} has no result")))
    }

    /// `IUpdateInstaller.IsBusy` and `RebootRequiredBeforeInstallation`,
    /// with the job that keeps the installer busy and the updates waiting
    /// for a restart.
    pub async fn installer_state(&self) -> Result<InstallerState, ClientError> {
        let StateReply { state } = self.call("GetInstallerState", &NoParameters {}).await?;
        Ok(state)
    }

    /// How status reports to each update server stand: the sequence it
    /// acknowledged, the parts waiting and the last failure to send.
    pub async fn reporting_state(&self) -> Result<Vec<ReportingState>, ClientError> {
        let ReportingReply { servers } = self.call("GetReportingState", &NoParameters {}).await?;
        Ok(servers)
    }

    /// The machine's status report for an offline scan package service
    /// (`service_id`, or the only one), as the JSON document a server's
    /// `wua-server import-reports` reads (docs/agent.md, "Reporting").
    /// Needs an administrator.
    pub async fn export_reports(&self, service_id: Option<Uuid>) -> Result<String, ClientError> {
        let parameters = ServiceParameters {
            service_id,
            client_application_id: self.client_application_id.clone(),
        };
        let ExportReply { report } = self.call("ExportReports", &parameters).await?;
        Ok(report.get().to_owned())
    }

    /// `IAutomaticUpdates`: the settings, results, schedule, the updates
    /// it looks after and the agent's restarts.
    pub async fn automatic_updates(&self) -> Result<AutomaticUpdatesState, ClientError> {
        let AutomaticReply { state } = self.call("GetAutomaticUpdates", &NoParameters {}).await?;
        Ok(state)
    }

    /// `IAutomaticUpdatesSettings.Save`: changes the settings given.
    pub async fn set_automatic_updates(
        &self,
        change: &SetAutomaticUpdatesParameters,
    ) -> Result<AutomaticUpdatesState, ClientError> {
        let AutomaticReply { state } = self.call("SetAutomaticUpdates", change).await?;
        Ok(state)
    }

    /// `IAutomaticUpdates.DetectNow`.
    pub async fn detect_now(&self) -> Result<(), ClientError> {
        let Done {} = self.call("DetectNow", &NoParameters {}).await?;
        Ok(())
    }

    /// `IAutomaticUpdates.Pause` until `until` (RFC 3339; None: 7 days).
    pub async fn pause_automatic_updates(
        &self,
        until: Option<String>,
    ) -> Result<AutomaticUpdatesState, ClientError> {
        let AutomaticReply { state } = self
            .call("PauseAutomaticUpdates", &PauseParameters { until })
            .await?;
        Ok(state)
    }

    /// `IAutomaticUpdates.Resume`.
    pub async fn resume_automatic_updates(&self) -> Result<AutomaticUpdatesState, ClientError> {
        let AutomaticReply { state } = self
            .call("ResumeAutomaticUpdates", &NoParameters {})
            .await?;
        Ok(state)
    }

    /// The agent's jobs: those running and the newest finished ones.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>, ClientError> {
        let JobsReply { jobs } = self.call("ListJobs", &NoParameters {}).await?;
        Ok(jobs)
    }

    /// Re-attaches to a job, which may have been started by another
    /// client: calls `progress` with the job as it is now, then at each
    /// step, then completed; returns the completed job, whose `result` is
    /// set. A job already completed is reported once.
    pub async fn watch_job(
        &self,
        job_id: Uuid,
        progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        self.stream_job("WatchJob", &JobParameters { job_id }, progress)
            .await
    }

    /// `RequestAbort`: the job stops before its next update and the rest
    /// become Aborted; watch it to see it end. Needs an administrator or
    /// the user who started it.
    pub async fn abort_job(&self, job_id: Uuid) -> Result<(), ClientError> {
        let Done {} = self.call("AbortJob", &JobParameters { job_id }).await?;
        Ok(())
    }

    /// Calls a method that runs a job (Download, Install, Uninstall,
    /// WatchJob) with `more`, calling `progress` with every reply; returns
    /// the last one, which must carry the result.
    pub(crate) async fn stream_job<P: Serialize>(
        &self,
        name: &str,
        parameters: &P,
        mut progress: impl FnMut(&JobInfo),
    ) -> Result<JobInfo, ClientError> {
        let name = method(name);
        let mut connection = self.connection.lock().await;
        let mut replies = connection.call_more(&name, parameters).await?;
        let mut last = None;
        while let Some(JobReply { job }) = replies.next().await? {
            progress(&job);
            last = Some(job);
        }
        completed(&name, last)
    }

    /// Calls `Install` or `Uninstall` with `more` and `interactive`: each
    /// reply becomes an [`InstallEvent`], and each [`UserReply`] a oneway
    /// call on the same connection; returns the completed job.
    pub(crate) async fn stream_interactive_job<P: Serialize>(
        &self,
        name: &str,
        parameters: &P,
        mut events: impl FnMut(InstallEvent<'_>),
        mut user_replies: UserReplyReceiver,
    ) -> Result<JobInfo, ClientError> {
        let name = method(name);
        let answer = method("Answer");
        let terminal_input = method("TerminalInput");
        let resize_terminal = method("ResizeTerminal");
        let mut connection = self.connection.lock().await;
        let mut replies = connection.call_more(&name, parameters).await?;
        let mut last = None;
        let mut listening = true;
        loop {
            tokio::select! {
                reply = replies.next::<InteractiveReply>() => {
                    let Some(reply) = reply? else { break };
                    if let Some(job) = reply.job {
                        events(InstallEvent::Progress(&job));
                        last = Some(job);
                    }
                    if let Some(why) = &reply.answer_refused {
                        events(InstallEvent::AnswerRefused(why));
                    }
                    if let Some(question) = &reply.question {
                        events(InstallEvent::Question(question));
                    }
                    if !reply.terminal_output.is_empty() {
                        events(InstallEvent::TerminalOutput(&reply.terminal_output));
                    }
                    if reply.terminal_closed {
                        events(InstallEvent::TerminalClosed);
                    }
                }
                user_reply = user_replies.recv(), if listening => match user_reply {
                    None => listening = false,
                    Some(UserReply::Answer { question_id, answer: text }) => {
                        let parameters = AnswerParameters { question_id, answer: text };
                        replies.send_oneway(&answer, &parameters).await?;
                    }
                    Some(UserReply::TerminalInput(bytes)) => {
                        let parameters = TerminalInputParameters { data: bytes };
                        replies.send_oneway(&terminal_input, &parameters).await?;
                    }
                    Some(UserReply::ResizeTerminal { rows, columns }) => {
                        let parameters = ResizeParameters { rows, columns };
                        replies.send_oneway(&resize_terminal, &parameters).await?;
                    }
                },
            }
        }
        completed(&name, last)
    }

    /// Calls a method that runs a job without `more`: the agent answers
    /// once, when the job has completed.
    pub(crate) async fn run_job<P: Serialize>(
        &self,
        name: &str,
        parameters: &P,
    ) -> Result<JobInfo, ClientError> {
        let JobReply { job } = self.call(name, parameters).await?;
        completed(&method(name), Some(job))
    }

    /// Calls one of the agent's methods, named without the interface.
    pub(crate) async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        name: &str,
        parameters: &P,
    ) -> Result<R, ClientError> {
        let mut connection = self.connection.lock().await;
        connection.call(&method(name), parameters).await
    }

    /// [`Connection::call_with`] on the session's connection.
    pub(crate) async fn call_with<P: Serialize, R: DeserializeOwned>(
        &self,
        name: &str,
        parameters: &P,
        success: impl FnOnce(Vec<u8>) -> Result<R, Vec<u8>>,
    ) -> Result<R, ClientError> {
        let mut connection = self.connection.lock().await;
        connection
            .call_with(&method(name), parameters, success)
            .await
    }
}

fn method(name: &str) -> String {
    format!("{INTERFACE}.{name}")
}

/// The job a call's last reply carries, which callers may take to be
/// finished: it has its result.
fn completed(name: &str, last: Option<JobInfo>) -> Result<JobInfo, ClientError> {
    match last {
        Some(job) if job.result.is_some() => Ok(job),
        Some(_) => Err(ClientError::Protocol(format!(
            "the last reply to {name} has no result"
        ))),
        None => Err(ClientError::Protocol(format!("{name} sent no reply"))),
    }
}

/// WUA's `IUpdateSearcher`: searches with its options, and the history.
///
/// ```no_run
/// # async fn example() -> Result<(), openwua_client::ClientError> {
/// let session = openwua_client::UpdateSession::connect_default().await?;
/// let mut searcher = session.create_update_searcher();
/// searcher.online = true;
/// let result = searcher.search("IsInstalled=0 and Type='Software'").await?;
/// for entry in &result.updates {
///     println!("{}", entry?.update.title);
/// }
/// # Ok(())
/// # }
/// ```
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
    /// `IncludePotentiallySupersededUpdates`: keep updates that a newer
    /// applicable update replaces.
    pub include_potentially_superseded_updates: bool,
}

impl UpdateSearcher<'_> {
    /// `Search`: the updates that match WUA criteria (`""` means
    /// `IsInstalled=0 and IsHidden=0`). The agent checks the criteria;
    /// invalid ones fail with `WU_E_INVALID_CRITERIA`. The updates are
    /// decoded as they are read ([`crate::UpdateCollection`]).
    pub async fn search(&self, criteria: &str) -> Result<SearchResult, ClientError> {
        let parameters = SearchParameters {
            criteria: criteria.to_owned(),
            options: Some(SearchOptions {
                server_selection: self.server_selection,
                service_id: self.service_id,
                online: self.online,
                include_potentially_superseded_updates: self.include_potentially_superseded_updates,
            }),
            client_application_id: self.session.client_application_id.clone(),
        };
        // The reply is kept whole as the text of its updates.
        let ResultReply { result } = self
            .session
            .call_with("Search", &parameters, |reply| {
                SearchResult::from_reply(reply).map(|result| ResultReply { result })
            })
            .await?;
        Ok(result)
    }

    /// `QueryHistory`: up to `count` entries, newest first, skipping `start`.
    /// The agent answers with at most `MAX_HISTORY_COUNT` (1,000) entries a
    /// call, so a longer query is made of several calls; an entry recorded
    /// meanwhile shifts the later pages by one.
    pub async fn query_history(
        &self,
        start: u64,
        count: u64,
    ) -> Result<Vec<HistoryEntry>, ClientError> {
        let page_size = MAX_HISTORY_COUNT.unsigned_abs();
        let mut entries = Vec::new();
        let mut start = start;
        let mut left = count;
        loop {
            let wanted = left.min(page_size);
            let parameters = HistoryParameters {
                start: i64::try_from(start).unwrap_or(i64::MAX),
                // At most MAX_HISTORY_COUNT: it fits.
                count: i64::try_from(wanted).unwrap_or(MAX_HISTORY_COUNT),
            };
            let EntriesReply { entries: page } =
                self.session.call("QueryHistory", &parameters).await?;
            let received = page.len() as u64;
            entries.extend(page);
            left = left.saturating_sub(received);
            start = start.saturating_add(received);
            // A short page is the end of the history.
            if received < wanted || left == 0 {
                return Ok(entries);
            }
        }
    }

    /// `GetTotalHistoryCount`.
    pub async fn get_total_history_count(&self) -> Result<u64, ClientError> {
        let CountReply { count } = self
            .session
            .call("GetTotalHistoryCount", &NoParameters {})
            .await?;
        Ok(count)
    }
}
