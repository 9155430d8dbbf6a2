//! Starting downloads, installs and uninstalls as jobs, and the jobs'
//! calls: the call-level checks WUA makes before anything runs (who asks,
//! an empty list, unknown updates, a busy installer, a pending restart, an
//! exclusive update in company),
//! resolving each update's content and installer, and bringing the index
//! up to date when a job ends.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use openwua_catalog::revision::Handler;
use openwua_model::enums::{InstallationImpact, UpdateOperation};
use openwua_model::hresult::{
    E_INVALIDARG, WU_E_EXCLUSIVE_INSTALL_CONFLICT, WU_E_INSTALL_NOT_ALLOWED,
    WU_E_INVALID_OPERATION, WU_E_NO_UPDATE, WU_E_UH_DOESNOTSUPPORTACTION,
};
use openwua_model::operation::{InstallerState, JobInfo, JobKind, OperationResult};
use openwua_model::service::{ServiceInfo, ServiceKind};
use openwua_model::update::Sha256Digest;
use uuid::Uuid;

use crate::agent::{Agent, blocking, lock, poisoned, rescan_index, unknown_update};
use crate::applicability::Machine;
use crate::download::{self, AptTarget, DownloadTarget, Source};
use crate::error::{AgentError, Result};
use crate::fetch::Fetcher;
use crate::install::{self, InstallOptions, InstallTarget};
use crate::jobs::{Job, NewJob};
use crate::policy::{self, Action, Requester};
use crate::store::BootId;
use openwua_installer::handlers::DpkgSettings;
use openwua_installer::prompts::PromptStream;

/// What an install or uninstall call asks for.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    /// Install or uninstall.
    pub operation: UpdateOperation,
    /// The updates, in the caller's order.
    pub update_ids: Vec<Uuid>,
    /// `ForceQuiet`.
    pub force_quiet: bool,
    /// `IsForced`.
    pub is_forced: bool,
    /// The client offered to answer installers' questions on its
    /// connection (`interactive`) and reads the streamed replies (`more`).
    pub client_answers: bool,
}

/// A started install or uninstall: its job and, when its caller answers
/// questions, the connection's end of the job's prompter.
pub struct StartedInstall {
    /// The job.
    pub job: Arc<Job>,
    /// Questions and terminal output for the caller's connection.
    pub prompts: Option<PromptStream>,
}

/// The kernel's boot ID. Unreadable (no /proc), it is the nil UUID: a
/// pending restart is then kept until an administrator clears it by
/// restarting the agent on a machine that has one.
pub fn current_boot(path: &Path) -> BootId {
    let boot = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| Uuid::parse_str(text.trim()).ok());
    if boot.is_none() {
        tracing::warn!("cannot read the boot ID from {}", path.display());
    }
    BootId(boot.unwrap_or_default())
}

/// A service's content base must be an absolute URL ending in `/`.
pub fn check_content_base(base: &str) -> Result<()> {
    let scheme_ok = ["http://", "https://", "file:///"]
        .iter()
        .any(|scheme| base.starts_with(scheme));
    if !scheme_ok || !base.ends_with('/') {
        return Err(AgentError::new(
            E_INVALIDARG,
            format!(
                "content base {base:?} must be an http://, https:// or file:/// URL ending in /"
            ),
        ));
    }
    Ok(())
}

/// How dpkg runs: the same database every handler and rule sees.
pub(crate) fn dpkg_settings_of(config: &crate::config::Config) -> DpkgSettings {
    DpkgSettings {
        program: "dpkg".into(),
        admindir: config.facts.dpkg_admindir.clone(),
        instdir: config.install.dpkg_instdir.clone(),
        extra_args: config.install.dpkg_extra_args.clone(),
        reboot_required_file: config.install.reboot_required_file.clone(),
        prompt_dir: config.install.prompt_dir.clone(),
    }
}

/// Where a content file of `service` comes from; `own_fetcher` is the
/// service's when it trusts a CA of its own.
fn source_of(url: &str, service: &ServiceInfo, own_fetcher: Option<&Arc<Fetcher>>) -> Source {
    let absolute = if url.contains("://") {
        url.to_owned()
    } else {
        match &service.content_base {
            Some(base) => format!("{base}{url}"),
            None => return Source::Package(service.source.clone().into()),
        }
    };
    match own_fetcher {
        Some(fetcher) if !absolute.starts_with("file:") => {
            Source::ServerUrl(absolute, Arc::clone(fetcher))
        }
        _ => Source::Url(absolute),
    }
}

impl Agent {
    /// `Download`: checks the call, then runs it as a job.
    pub async fn start_download(
        self: &Arc<Self>,
        requester: &Requester,
        update_ids: Vec<Uuid>,
        is_forced: bool,
    ) -> Result<Arc<Job>> {
        self.authorize_elevated(requester, Action::Download).await?;
        policy::check_update_ids(&update_ids)?;
        if update_ids.is_empty() {
            return Err(no_update());
        }
        let services = self.services(requester).await?;
        let store = Arc::clone(&self.store);
        let wanted = self.resolve(&update_ids)?;
        let fetcher = Arc::clone(&self.fetcher);
        let install_settings = self.config.install.clone();
        let targets = blocking(move || {
            let store = store.lock().map_err(|_| poisoned())?;
            // Update servers with a CA of their own: one fetcher each.
            let mut own_fetchers = std::collections::HashMap::new();
            for service in &services {
                if let Some(ca_pem) = store.server_ca(service.service_id)? {
                    own_fetchers.insert(service.service_id, Arc::new(fetcher.trusting(&ca_pem)?));
                }
            }
            let mut targets = Vec::with_capacity(wanted.len());
            for resolved in wanted {
                let mut files = Vec::new();
                let mut apt = None;
                for (service_id, update_id) in resolved.parts() {
                    let service = services
                        .iter()
                        .find(|service| service.service_id == service_id)
                        .ok_or_else(|| unknown_update(update_id))?;
                    let payload = store.payload(service_id, update_id)?;
                    if let (ServiceKind::Apt, Handler::Apt { packages, .. }) =
                        (service.kind, payload.handler)
                    {
                        apt = Some(AptTarget {
                            settings: crate::apt_service::apt_settings(service, &install_settings),
                            packages,
                        });
                    }
                    for file in payload.content {
                        let source = source_of(&file.url, service, own_fetchers.get(&service_id));
                        files.push((file, source));
                    }
                }
                targets.push(DownloadTarget {
                    update: resolved.update,
                    is_installed: resolved.is_installed,
                    applicable: resolved.applicable,
                    files,
                    apt,
                });
            }
            Ok(targets)
        })
        .await?;
        let job = self.jobs.start(NewJob {
            kind: JobKind::Download,
            update_ids,
            caller_uid: requester.uid,
            client_application_id: requester.client_application_id.clone(),
        });
        self.record_job(&job).await;
        // What this job fetches stays through the eviction that follows it,
        // even an installed update's (a forced download, say to uninstall).
        let fetched: HashSet<Sha256Digest> = targets
            .iter()
            .flat_map(|target| target.files.iter().map(|(file, _)| file.sha256))
            .collect();
        let agent = Arc::clone(self);
        let running = Arc::clone(&job);
        tokio::spawn(async move {
            let worker = Arc::clone(&agent);
            let job = Arc::clone(&running);
            let outcome = blocking(move || {
                Ok(download::run(
                    &targets,
                    is_forced,
                    &worker.cache,
                    &worker.fetcher,
                    worker.config.install.parallel_downloads,
                    &job,
                    &download::AptRun {
                        dpkg: &worker.dpkg_settings(),
                        log_dir: &worker.config.log_dir(),
                    },
                ))
            })
            .await;
            let result = match outcome {
                Ok((results, aborted)) => OperationResult::aggregate(results, aborted),
                Err(error) => failed_call(&error),
            };
            if let Err(error) = agent.refresh_after_job(fetched).await {
                tracing::warn!("refreshing after a download: {error}");
            }
            agent.queue_reports(None, false).await;
            // Stored before anyone hears of it, so a stop right after cannot
            // lose it.
            let completed = running.completion(result);
            agent.save_job(&completed).await;
            running.complete(completed);
        });
        Ok(job)
    }

    /// `Install` and `Uninstall`: checks the call, takes the machine's
    /// installation, then runs it as a job.
    pub async fn start_install(
        self: &Arc<Self>,
        requester: &Requester,
        request: InstallRequest,
    ) -> Result<StartedInstall> {
        self.authorize_elevated(
            requester,
            match request.operation {
                UpdateOperation::Installation => Action::Install,
                UpdateOperation::Uninstallation => Action::Uninstall,
            },
        )
        .await?;
        policy::check_update_ids(&request.update_ids)?;
        if request.update_ids.is_empty() {
            return Err(no_update());
        }
        let resolved = self.resolve(&request.update_ids)?;
        if request.operation == UpdateOperation::Uninstallation
            && let Some(apt) = resolved.iter().find(|resolved| resolved.is_apt)
        {
            return Err(AgentError::new(
                WU_E_UH_DOESNOTSUPPORTACTION,
                format!(
                    "{} comes from the machine's Debian repositories, and Debian packages cannot \
                     be downgraded safely; install a newer version instead",
                    apt.update.title
                ),
            ));
        }
        let exclusive = resolved.iter().find(|resolved| {
            resolved.update.installation_behavior.impact
                == InstallationImpact::RequiresExclusiveHandling
        });
        if let Some(exclusive) = exclusive
            && resolved.len() > 1
        {
            return Err(AgentError::new(
                WU_E_EXCLUSIVE_INSTALL_CONFLICT,
                format!(
                    "{} must be installed on its own; call again with it alone, then with the others",
                    exclusive.update.title
                ),
            ));
        }
        let reboot_pending = self.index.read().map_err(|_| poisoned())?.reboot_pending();
        if !reboot_pending.is_empty() {
            return Err(AgentError::new(
                WU_E_INSTALL_NOT_ALLOWED,
                format!(
                    "a restart is pending for {} update(s); restart the machine, then install",
                    reboot_pending.len()
                ),
            ));
        }
        let kind = match request.operation {
            UpdateOperation::Installation => JobKind::Install,
            UpdateOperation::Uninstallation => JobKind::Uninstall,
        };
        // The machine's one installation is taken and the job registered
        // together, so no second caller slips in between.
        let job = {
            let mut installing = self.installing.lock().map_err(|_| poisoned())?;
            if let Some(busy) = *installing {
                return Err(AgentError::new(
                    WU_E_INSTALL_NOT_ALLOWED,
                    format!("installation job {busy} is running; wait for it (`wua watch {busy}`)"),
                ));
            }
            let job = self.jobs.start(NewJob {
                kind,
                update_ids: request.update_ids.clone(),
                caller_uid: requester.uid,
                client_application_id: requester.client_application_id.clone(),
            });
            *installing = Some(job.info().job_id);
            job
        };
        let job_id = job.info().job_id;
        let (interaction, prompts) = policy::interaction(
            requester,
            request.client_answers,
            std::time::Duration::from_secs(self.config.install.question_timeout_seconds),
        );
        let client_application_id = requester.client_application_id.clone();
        self.record_job(&job).await;
        let agent = Arc::clone(self);
        let running = Arc::clone(&job);
        tokio::spawn(async move {
            // Frees the installation even if the work panics.
            let release = Release(Arc::clone(&agent.installing));
            let worker = Arc::clone(&agent);
            let job = Arc::clone(&running);
            let outcome = blocking(move || {
                let targets = worker.install_targets(resolved)?;
                let installed = worker.index.read().map_err(|_| poisoned())?.installed();
                let dpkg = worker.dpkg_settings();
                let options = InstallOptions {
                    operation: request.operation,
                    force_quiet: request.force_quiet,
                    is_forced: request.is_forced,
                    client_application_id,
                    interaction,
                };
                install::run(
                    &targets,
                    &options,
                    &install::Context {
                        job: &job,
                        job_id,
                        config: &worker.config,
                        cache: &worker.cache,
                        store: &worker.store,
                        dpkg: &dpkg,
                        boot_id: current_boot(&worker.config.install.boot_id_file),
                        installed,
                    },
                )
            })
            .await;
            let result = match outcome {
                Ok((results, aborted)) => OperationResult::aggregate(results, aborted),
                Err(error) => failed_call(&error),
            };
            if let Err(error) = agent.refresh_after_job(HashSet::new()).await {
                tracing::warn!("refreshing after an installation: {error}");
            }
            agent.queue_reports(None, false).await;
            drop(release);
            // Stored before anyone hears of it, so a stop right after cannot
            // lose it.
            let completed = running.completion(result);
            agent.save_job(&completed).await;
            running.complete(completed);
        });
        Ok(StartedInstall { job, prompts })
    }

    /// `GetInstallerState`.
    pub async fn installer_state(&self, requester: &Requester) -> Result<InstallerState> {
        policy::authorize(requester, Action::Search, None)?;
        // The store's lock may be held by a running installer's commit:
        // waited for on a blocking thread.
        let awaiting = self
            .with_store(|store| store.awaiting_interactive_user())
            .await?;
        let busy = *self.installing.lock().map_err(|_| poisoned())?;
        let pending = self.index.read().map_err(|_| poisoned())?.reboot_pending();
        Ok(InstallerState {
            is_busy: busy.is_some(),
            busy_job_id: busy,
            reboot_required_before_installation: !pending.is_empty(),
            reboot_pending_updates: pending,
            awaiting_interactive_user: awaiting,
            dpkg_repair: self.dpkg_repair.clone(),
        })
    }

    /// `GetCallerContext`: how the agent sees `requester`.
    pub fn caller_context(
        &self,
        requester: &Requester,
    ) -> Result<openwua_model::caller::CallerContext> {
        policy::authorize(requester, Action::Search, None)?;
        Ok(requester.context.clone())
    }

    /// `ListJobs`: the jobs `requester` may see, oldest first.
    pub fn list_jobs(&self, requester: &Requester) -> Vec<JobInfo> {
        self.jobs
            .list()
            .into_iter()
            .filter(|job| policy::may_see_job(requester, job))
            .collect()
    }

    /// `WatchJob`: a job `requester` may see.
    pub fn watch_job(&self, requester: &Requester, job_id: Uuid) -> Result<Arc<Job>> {
        let job = self.jobs.get(job_id).ok_or_else(|| unknown_job(job_id))?;
        policy::authorize(requester, Action::Job, Some(job.info().caller_uid))?;
        Ok(job)
    }

    /// `AbortJob` (`RequestAbort`): asks a job `requester` may see to stop.
    pub fn abort_job(&self, requester: &Requester, job_id: Uuid) -> Result<()> {
        self.watch_job(requester, job_id)?.request_abort();
        Ok(())
    }

    /// Stores a job as it is now, so it outlives the agent.
    async fn record_job(&self, job: &Job) {
        self.save_job(&job.info()).await;
    }

    /// Stores a job's state. A failure is logged: the job itself goes on.
    async fn save_job(&self, info: &openwua_model::operation::JobInfo) {
        let info = info.clone();
        let saved = self
            .with_store(move |store| store.save_job(&info, crate::jobs::FINISHED_KEPT))
            .await;
        if let Err(error) = saved {
            tracing::warn!("recording job: {error}");
        }
    }

    /// Stopping: asks every running job to abort (a running installer gets
    /// its grace period), and waits for them to record their results, for
    /// at most the grace period and a little more.
    pub async fn shut_down(&self) {
        let unfinished = self.jobs.unfinished();
        if unfinished.is_empty() {
            return;
        }
        tracing::info!(
            jobs = unfinished.len(),
            "aborting running jobs before stopping"
        );
        for job in &unfinished {
            job.request_abort();
        }
        let limit = std::time::Duration::from_secs(self.config.install.abort_grace_seconds + 10);
        let all = async {
            for job in &unfinished {
                let mut changes = job.subscribe();
                // A dropped sender means the job is gone: nothing to wait for.
                let _ = changes
                    .wait_for(|info| info.state == openwua_model::operation::JobState::Completed)
                    .await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("jobs still running after the grace period; stopping anyway");
        }
    }

    pub(crate) fn dpkg_settings(&self) -> DpkgSettings {
        dpkg_settings_of(&self.config)
    }

    /// Looks the updates up in the index, in the call's order.
    fn resolve(&self, update_ids: &[Uuid]) -> Result<Vec<Resolved>> {
        let index = self.index.read().map_err(|_| poisoned())?;
        update_ids
            .iter()
            .map(|id| {
                let entry = index.get(*id).ok_or_else(|| unknown_update(*id))?;
                let bundled = entry
                    .update
                    .bundled_updates
                    .iter()
                    .map(|identity| {
                        index
                            .get(identity.update_id)
                            .map(|child| (child.service_id, child.update.clone()))
                            .ok_or_else(|| unknown_update(identity.update_id))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let downloaded = entry.state.is_downloaded
                    && entry.update.bundled_updates.iter().all(|identity| {
                        index
                            .get(identity.update_id)
                            .is_some_and(|child| child.state.is_downloaded)
                    });
                Ok(Resolved {
                    is_apt: entry.apt_packages.is_some(),
                    service_id: entry.service_id,
                    update: entry.update.clone(),
                    is_installed: entry.state.is_installed,
                    applicable: entry.applicable,
                    installable: entry.installable,
                    eula_accepted: entry.state.eula_accepted,
                    downloaded,
                    prerequisites: entry.prerequisites().to_vec(),
                    bundled,
                })
            })
            .collect()
    }

    /// Adds each update's installer, and its bundled updates', from the store.
    fn install_targets(&self, resolved: Vec<Resolved>) -> Result<Vec<InstallTarget>> {
        let store = self.store.lock().map_err(|_| poisoned())?;
        let roots = crate::apt_service::apt_roots_of(&store.services()?, &self.config.install);
        let mut targets = resolved
            .into_iter()
            .map(|resolved| {
                let payload =
                    store.payload(resolved.service_id, resolved.update.identity.update_id)?;
                let apt = roots.get(&resolved.service_id).cloned().or_else(|| {
                    crate::apt_service::server_apt_settings(&payload, &self.config.install)
                });
                let bundled = resolved
                    .bundled
                    .into_iter()
                    .map(|(service_id, update)| {
                        let payload = store.payload(service_id, update.identity.update_id)?;
                        Ok((update, payload))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(InstallTarget {
                    update: resolved.update,
                    service_id: resolved.service_id,
                    installable: resolved.installable,
                    eula_accepted: resolved.eula_accepted,
                    downloaded: resolved.downloaded,
                    prerequisites: resolved.prerequisites,
                    payload,
                    bundled,
                    apt,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        drop(store);
        // apt's cache may have changed since the index looked: asked again
        // now (without the store's lock: it may hash packages), as the
        // installer will find it.
        let dpkg = self.dpkg_settings();
        for target in &mut targets {
            // (An update server's apt update is downloaded as content.)
            if let (Handler::Apt { packages, .. }, Some(apt), true) = (
                &target.payload.handler,
                &target.apt,
                target.payload.content.is_empty(),
            ) {
                target.downloaded =
                    openwua_installer::handlers::apt::is_downloaded(apt, &dpkg, packages);
            }
        }
        Ok(targets)
    }

    /// Brings the index up to date with the store, the cache and the
    /// machine after a job, and keeps the cache within its limit, sparing
    /// `spare` besides what updates still to be installed need.
    async fn refresh_after_job(&self, spare: HashSet<Sha256Digest>) -> Result<()> {
        let store = Arc::clone(&self.store);
        let states = blocking(move || store.lock().map_err(|_| poisoned())?.states()).await?;
        self.index
            .write()
            .map_err(|_| poisoned())?
            .apply_states(&states, |sha256| self.cache.has(sha256));
        let sources = self.config.facts.clone();
        let index = Arc::clone(&self.index);
        let mut needed = blocking(move || {
            rescan_index(&index, &Machine::read(&sources))?;
            let needed = index.read().map_err(|_| poisoned())?.content_still_needed();
            Ok(needed)
        })
        .await?;
        needed.extend(spare);
        let cache = self.cache.clone();
        let limit = self.config.install.cache_max_bytes;
        let freed = blocking(move || cache.evict(limit, &needed)).await?;
        self.refresh_apt_downloads().await?;
        if freed > 0 {
            tracing::info!(
                bytes = freed,
                "evicted installed updates' content from the cache"
            );
            // Only IsDownloaded changed, which the scan does not read.
            let mut index = self.index.write().map_err(|_| poisoned())?;
            index.apply_states(&states, |sha256| self.cache.has(sha256));
        }
        Ok(())
    }
}

/// An update of a call, looked up in the index.
struct Resolved {
    /// An apt service's update.
    is_apt: bool,
    service_id: Uuid,
    update: openwua_model::update::Update,
    is_installed: bool,
    applicable: bool,
    installable: bool,
    eula_accepted: bool,
    downloaded: bool,
    prerequisites: Vec<Uuid>,
    bundled: Vec<(Uuid, openwua_model::update::Update)>,
}

impl Resolved {
    /// The update and its bundled updates, as (service, update) pairs.
    fn parts(&self) -> Vec<(Uuid, Uuid)> {
        self.bundled
            .iter()
            .map(|(service_id, update)| (*service_id, update.identity.update_id))
            .chain(std::iter::once((
                self.service_id,
                self.update.identity.update_id,
            )))
            .collect()
    }
}

/// Clears the machine's installation when the job ends, however it ends.
struct Release(Arc<std::sync::Mutex<Option<Uuid>>>);

impl Drop for Release {
    fn drop(&mut self) {
        *lock(&self.0) = None;
    }
}

/// A job whose engine failed as a whole (the store, say): no update
/// result can be trusted, so the call failed with that error.
fn failed_call(error: &AgentError) -> OperationResult {
    tracing::error!("a job failed: {error}");
    OperationResult {
        result_code: openwua_model::enums::OperationResultCode::Failed,
        hresult: error.hresult,
        reboot_required: false,
        updates: Vec::new(),
    }
}

fn unknown_job(job_id: Uuid) -> AgentError {
    AgentError::new(
        WU_E_INVALID_OPERATION,
        format!("no job {job_id}; `wua jobs` lists your jobs (the agent keeps the newest 100)"),
    )
}

fn no_update() -> AgentError {
    AgentError::new(
        WU_E_NO_UPDATE,
        "the call names no updates; name at least one UpdateID",
    )
}
