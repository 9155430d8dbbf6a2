//! The agent's operations, independent of transport: what each Varlink
//! method does once the caller is known and authorized.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use jiff::Timestamp;
use nix::fcntl::{Flock, FlockArg};
use openwua_catalog::CatalogError;
use openwua_catalog::package;
use openwua_catalog::signing::PublicKey;
use openwua_catalog::snapshot::Snapshot;
use openwua_catalog::sync::{Response, SignedResponse};
use openwua_model::criteria::Criteria;
use openwua_model::enums::{OperationResultCode, ServerSelection};
use openwua_model::history::{HistoryEntry, SystemInfo};
use openwua_model::hresult::{
    E_INVALIDARG, WU_E_DS_INUSE, WU_E_DS_INVALIDOPERATION, WU_E_DS_NODATA, WU_E_DS_UNKNOWNSERVICE,
    WU_E_INVALID_OPERATION, WU_E_INVALIDINDEX, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
    WU_E_SERVICE_NOT_REGISTERED, WU_E_UNEXPECTED,
};
use openwua_model::search::{SearchOptions, SearchWarning, UpdateDetails};
use openwua_model::service::{ServiceInfo, ServiceKind};
use serde::Serialize;
use uuid::Uuid;

use crate::applicability::Machine;
use crate::cache::Cache;
use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::fetch::{FetchSettings, Fetcher};
use crate::index::{Index, Scope};
use crate::jobs::Jobs;
use crate::package_file::{PackageFile, PackageIdentity};
use crate::policy::{self, Action, Requester};
use crate::store::{ImportCounts, Store};

/// The Varlink protocol version this agent speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// What one sync did to one service's catalog (`SyncResult` in the interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// The service synced.
    pub service_id: Uuid,
    /// The catalog version before.
    pub previous_version: Option<u64>,
    /// The catalog version now.
    pub version: u64,
    /// Revision counts.
    #[serde(flatten)]
    pub counts: ImportCounts,
}

/// One machine's agent: the store, the in-memory index and the settings.
pub struct Agent {
    pub(crate) config: Config,
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) index: Arc<RwLock<Index>>,
    /// Downloaded content.
    pub(crate) cache: Cache,
    /// Fetches content over HTTP(S) and from files.
    pub(crate) fetcher: Arc<Fetcher>,
    /// Downloads, installs and uninstalls, running and finished.
    pub(crate) jobs: Arc<Jobs>,
    /// The job that holds the machine's one installation, if any.
    pub(crate) installing: Arc<Mutex<Option<Uuid>>>,
    /// One sync or service change at a time.
    pub(crate) catalog_writer: tokio::sync::Mutex<()>,
    /// Update servers that answered 503 with `Retry-After`: not asked
    /// again before this time.
    pub(crate) busy_until: Mutex<std::collections::HashMap<Uuid, Timestamp>>,
    /// Status reports to update servers: the sender's wake-up and backoff.
    pub(crate) reports: crate::reports::Reporter,
    /// Whether apt updates' packages are in apt's cache, as last checked.
    pub(crate) apt_downloads: Arc<crate::apt_service::AptDownloads>,
    /// What repairing dpkg's state found at start-up, after an
    /// interrupted installer (`GetInstallerState`).
    pub(crate) dpkg_repair: Option<openwua_model::operation::RepairReport>,
    /// Automatic Updates' scheduler state.
    pub(crate) automatic: crate::automatic::Automatic,
    /// Each service's package file as last imported or found current.
    package_identities: Mutex<std::collections::HashMap<Uuid, PackageIdentity>>,
    /// Held while the agent runs: one agent per state directory, since
    /// each keeps its own view of the store in memory.
    _state_lock: Flock<File>,
}

pub(crate) fn poisoned() -> AgentError {
    AgentError::new(
        WU_E_UNEXPECTED,
        "an earlier operation panicked; restart wua-agent",
    )
}

/// Locks a mutex whose data stays whole even if a holder panicked (job
/// state, progress): a panic elsewhere must not stop every later job.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await?
}

impl Agent {
    /// Opens the store, loads the catalog and scans the machine.
    pub fn open(config: Config) -> Result<Agent> {
        crate::automatic::check_config(&config)?;
        crate::store::prepare_state_dir(&config.state_dir)?;
        let state_lock = lock_state_dir(&config)?;
        let mut store = Store::open(&config.store_path())?;
        // What is left of an installer the previous agent was running
        // stops before anything else can start one beside it.
        if let Some(stopped) =
            openwua_installer::handlers::stop_orphaned_group(&config.installer_group_record())
        {
            tracing::warn!("{stopped}");
        }
        // Installers that were running when the previous agent stopped:
        // their history says so, and their update's state is whatever the
        // scan now finds.
        let interrupted_installers = store.recover_interrupted()?;
        for entry in &interrupted_installers {
            tracing::warn!(
                update = %entry.update_identity,
                title = entry.title,
                "an installer was interrupted when the agent stopped; recorded in history"
            );
        }
        // dpkg may have been cut short with it: finish what it left
        // half-configured before anything else installs.
        let dpkg_repair = if interrupted_installers.is_empty() {
            None
        } else {
            repair_dpkg(&config)
        };
        let boot = crate::operations::current_boot(&config.install.boot_id_file);
        store.clear_stale_reboots(boot)?;
        // A restart the agent ran is confirmed by another boot ID.
        store.confirm_restarts(boot, config.clock.now())?;
        let (jobs, interrupted) = Jobs::restore(store.jobs()?);
        for job in interrupted {
            tracing::warn!(job = %job.job_id, "a job was cut short when the agent stopped");
            store.save_job(&job, crate::jobs::FINISHED_KEPT)?;
        }
        let cache = Cache::new(&config.cache_dir);
        cache.prepare()?;
        cache.clear_staging();
        let mut index = load_index(&store, &config, &cache)?;
        let apt_downloads = Arc::new(crate::apt_service::AptDownloads::default());
        let apt_updates = index.apt_updates();
        if !apt_updates.is_empty() {
            let roots = crate::apt_service::apt_roots_of(&store.services()?, &config.install);
            index.set_apt_downloaded(apt_downloads.check(
                &apt_updates,
                &roots,
                &crate::operations::dpkg_settings_of(&config),
            ));
        }
        let fetcher = Fetcher::new(FetchSettings {
            connect_timeout: std::time::Duration::from_secs(config.install.connect_timeout_seconds),
            read_timeout: std::time::Duration::from_secs(config.install.read_timeout_seconds),
            ..FetchSettings::default()
        });
        Ok(Agent {
            config,
            store: Arc::new(Mutex::new(store)),
            index: Arc::new(RwLock::new(index)),
            cache,
            fetcher: Arc::new(fetcher),
            jobs: Arc::new(jobs),
            installing: Arc::new(Mutex::new(None)),
            catalog_writer: tokio::sync::Mutex::new(()),
            busy_until: Mutex::new(std::collections::HashMap::new()),
            reports: crate::reports::Reporter::default(),
            apt_downloads,
            dpkg_repair,
            automatic: crate::automatic::Automatic::default(),
            package_identities: Mutex::new(std::collections::HashMap::new()),
            _state_lock: state_lock,
        })
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(&self.store);
        blocking(move || work(&mut *store.lock().map_err(|_| poisoned())?)).await
    }

    /// Reloads the index from the store and rescans.
    pub(crate) async fn reload(&self) -> Result<()> {
        let store = Arc::clone(&self.store);
        let config = self.config.clone();
        let cache = self.cache.clone();
        let index = blocking(move || {
            // The facts (files, dpkg-query) are read without the store's
            // lock, so a slow one holds up no other store user.
            let machine = Machine::read(&config.facts);
            let (revisions, states) = {
                let store = store.lock().map_err(|_| poisoned())?;
                (store.revisions()?, store.states()?)
            };
            Index::build(revisions, &states, &machine, |sha256| cache.has(sha256))
        })
        .await?;
        *self.index.write().map_err(|_| poisoned())? = index;
        // New updates may bring deadlines: the scheduler looks again.
        self.automatic.wake.notify_one();
        self.refresh_apt_downloads().await
    }

    /// `GetSystemInfo`.
    pub async fn system_info(&self, requester: &Requester) -> Result<SystemInfo> {
        policy::authorize(requester, Action::Search, None)?;
        let (services, history_count) = self
            .with_store(|store| Ok((store.services()?, store.history_count()?)))
            .await?;
        let index = self.index.read().map_err(|_| poisoned())?;
        Ok(SystemInfo {
            reboot_required: index.reboot_required(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            default_service_id: services
                .iter()
                .find(|service| service.is_default)
                .map(|service| service.service_id),
            update_count: index.len() as u64,
            history_count,
        })
    }

    /// The services a search with `options` covers.
    async fn search_scope(&self, options: &SearchOptions) -> Result<Vec<ServiceInfo>> {
        let services = self.with_store(|store| store.services()).await?;
        let scope: Vec<ServiceInfo> = match options.server_selection {
            ServerSelection::Others => {
                let wanted = options.service_id.ok_or_else(|| {
                    AgentError::new(E_INVALIDARG, "ServerSelection Others needs a ServiceID")
                })?;
                let service = services
                    .into_iter()
                    .find(|service| service.service_id == wanted)
                    .ok_or_else(|| unknown_service(wanted))?;
                vec![service]
            }
            ServerSelection::Default => match options.service_id {
                Some(wanted) => {
                    return Err(AgentError::new(
                        E_INVALIDARG,
                        format!("ServiceID {wanted} needs ServerSelection Others"),
                    ));
                }
                None => services
                    .into_iter()
                    .filter(|service| service.is_default)
                    .collect(),
            },
            // Every service that is not a scan package is an update server.
            ServerSelection::ManagedServer | ServerSelection::WindowsUpdate => services
                .into_iter()
                .filter(|service| !service.is_scan_package_service)
                .collect(),
        };
        if scope.is_empty() {
            return Err(AgentError::new(
                WU_E_SERVICE_NOT_REGISTERED,
                "no update service is registered for this selection; add one with `wua services add-server` or `wua services add-package`",
            ));
        }
        Ok(scope)
    }

    /// `Search`: the reply's parameters, `{"result": SearchResult}`, as
    /// JSON text, built without re-encoding each update.
    pub async fn search(
        &self,
        requester: &Requester,
        criteria: &str,
        options: &SearchOptions,
    ) -> Result<String> {
        policy::authorize(requester, Action::Search, None)?;
        policy::check_length("criteria", criteria, policy::MAX_CRITERIA_BYTES)?;
        // Up to 64 KiB of criteria: parsed off the async workers.
        let text = criteria.to_owned();
        let criteria = blocking(move || {
            Criteria::parse(&text)
                .map_err(|error| AgentError::new(error.hresult(), error.to_string()))
        })
        .await?;
        let mut services = self.search_scope(options).await?;
        let mut warnings = Vec::new();
        if options.online {
            for service_id in services.iter().map(|service| service.service_id) {
                if let Err(error) = self.sync(requester, Some(service_id), true, |_| {}).await {
                    // WUA keeps searching the cached catalog when the service
                    // cannot be reached; say so instead of failing.
                    warnings.push(SearchWarning {
                        hresult: error.hresult,
                        message: format!(
                            "sync of {service_id} failed, so the stored catalog was searched: {}",
                            error.detail
                        ),
                    });
                }
            }
            // The syncs changed the services' catalogs and their dates.
            let searched: Vec<Uuid> = services.iter().map(|service| service.service_id).collect();
            services = self
                .with_store(|store| store.services())
                .await?
                .into_iter()
                .filter(|service| searched.contains(&service.service_id))
                .collect();
        }
        let fresh_until = self.with_store(|store| store.fresh_until()).await?;
        warnings.extend(expiry_warnings(&services, &fresh_until, Timestamp::now()));
        let services: Vec<Uuid> = services.iter().map(|service| service.service_id).collect();
        let index = Arc::clone(&self.index);
        let include_superseded = options.include_potentially_superseded_updates;
        blocking(move || {
            let index = index.read().map_err(|_| poisoned())?;
            let scope = Scope {
                services: &services,
                include_superseded,
            };
            let mut out = Vec::with_capacity(1 << 20);
            out.extend_from_slice(br#"{"result":{"resultCode":""#);
            out.extend_from_slice(format!("{:?}", OperationResultCode::Succeeded).as_bytes());
            out.extend_from_slice(br#"","updates":["#);
            for (position, entry) in index.search(&criteria, &scope).enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                entry.write_json(&mut out)?;
            }
            out.extend_from_slice(br#"],"warnings":"#);
            serde_json::to_writer(&mut out, &warnings)
                .map_err(|error| AgentError::new(WU_E_UNEXPECTED, error.to_string()))?;
            out.extend_from_slice(b"}}");
            // Every piece above is UTF-8 JSON.
            let out = String::from_utf8(out)
                .map_err(|error| AgentError::new(WU_E_UNEXPECTED, error.to_string()))?;
            Ok(out)
        })
        .await
    }

    /// `GetUpdate`; for an apt update, with its packages as dpkg has them.
    pub async fn get_update(
        &self,
        requester: &Requester,
        update_id: Uuid,
    ) -> Result<UpdateDetails> {
        policy::authorize(requester, Action::Search, None)?;
        let (mut details, apt_packages, suites) = {
            let index = self.index.read().map_err(|_| poisoned())?;
            let entry = index
                .get(update_id)
                .ok_or_else(|| unknown_update(update_id))?;
            (
                entry.details(),
                entry.apt_packages.clone(),
                entry.apt_suites.clone(),
            )
        };
        if let Some(packages) = apt_packages {
            let roots = self.apt_roots().await?;
            if let Some(apt) = roots.get(&details.entry.service_id).cloned() {
                let admindir = self.config.facts.dpkg_admindir.clone();
                let downloaded = details.entry.state.is_downloaded;
                details.apt = Some(
                    blocking(move || {
                        Ok(crate::apt_service::apt_details(
                            &packages, suites, &apt, &admindir, downloaded,
                        ))
                    })
                    .await?,
                );
            }
        }
        Ok(details)
    }

    /// `SetHidden` (WUA's `IsHidden` setter), for all the updates or none.
    pub async fn set_hidden(
        &self,
        requester: &Requester,
        update_ids: Vec<Uuid>,
        hidden: bool,
    ) -> Result<()> {
        policy::authorize(requester, Action::Hide, None)?;
        policy::check_update_ids(&update_ids)?;
        {
            let index = self.index.read().map_err(|_| poisoned())?;
            for id in &update_ids {
                let entry = index.get(*id).ok_or_else(|| unknown_update(*id))?;
                // WUA: "An attempt to mark a mandatory update as hidden
                // causes an error."
                if hidden && entry.update.is_mandatory {
                    return Err(AgentError::new(
                        WU_E_INVALID_OPERATION,
                        format!("update {id} is mandatory and cannot be hidden"),
                    ));
                }
            }
        }
        let ids = update_ids.clone();
        self.with_store(move |store| store.set_hidden(&ids, hidden))
            .await?;
        let mut index = self.index.write().map_err(|_| poisoned())?;
        for id in update_ids {
            index.update_stored(id, |stored| stored.is_hidden = hidden);
        }
        Ok(())
    }

    /// `AcceptEula`.
    pub async fn accept_eula(&self, requester: &Requester, update_id: Uuid) -> Result<()> {
        policy::authorize(requester, Action::AcceptEula, None)?;
        let has_eula = {
            let index = self.index.read().map_err(|_| poisoned())?;
            let entry = index
                .get(update_id)
                .ok_or_else(|| unknown_update(update_id))?;
            entry.update.eula_text.is_some()
        };
        if !has_eula {
            return Err(AgentError::new(
                WU_E_DS_INVALIDOPERATION,
                format!("update {update_id} has no licence terms to accept"),
            ));
        }
        self.with_store(move |store| store.accept_eula(update_id))
            .await?;
        let mut index = self.index.write().map_err(|_| poisoned())?;
        index.update_stored(update_id, |stored| stored.eula_accepted = true);
        Ok(())
    }

    /// `QueryHistory`.
    pub async fn query_history(
        &self,
        requester: &Requester,
        start: i64,
        count: i64,
    ) -> Result<Vec<HistoryEntry>> {
        policy::authorize(requester, Action::ReadHistory, None)?;
        let (Ok(start), Ok(count)) = (u64::try_from(start), u64::try_from(count)) else {
            return Err(AgentError::new(
                WU_E_INVALIDINDEX,
                "start and count must not be negative",
            ));
        };
        if count == 0 {
            return Err(AgentError::new(WU_E_INVALIDINDEX, "count must be positive"));
        }
        self.with_store(move |store| store.history(start, count))
            .await
    }

    /// `GetTotalHistoryCount`.
    pub async fn history_count(&self, requester: &Requester) -> Result<u64> {
        policy::authorize(requester, Action::ReadHistory, None)?;
        self.with_store(|store| store.history_count()).await
    }

    /// `ListServices`.
    pub async fn services(&self, requester: &Requester) -> Result<Vec<ServiceInfo>> {
        policy::authorize(requester, Action::Search, None)?;
        self.with_store(|store| store.services()).await
    }

    /// `AddScanPackageService`: verifies the package against `public_key`,
    /// then registers the service and imports its catalog in one step.
    pub async fn add_scan_package_service(
        &self,
        requester: &Requester,
        name: Option<String>,
        path: PathBuf,
        public_key: &str,
        set_default: bool,
        content_base: Option<String>,
    ) -> Result<(ServiceInfo, SyncResult)> {
        policy::authorize(requester, Action::ChangeServices, None)?;
        policy::check_length(
            "name",
            name.as_deref().unwrap_or(""),
            policy::MAX_NAME_BYTES,
        )?;
        policy::check_length("publicKey", public_key, policy::MAX_NAME_BYTES)?;
        policy::check_length("path", &path.to_string_lossy(), policy::MAX_PATH_BYTES)?;
        policy::check_length(
            "contentBase",
            content_base.as_deref().unwrap_or(""),
            policy::MAX_PATH_BYTES,
        )?;
        if let Some(base) = &content_base {
            crate::operations::check_content_base(base)?;
        }
        let key: PublicKey =
            public_key
                .parse()
                .map_err(|error: openwua_catalog::CatalogError| {
                    AgentError::new(E_INVALIDARG, error.to_string())
                })?;
        if !path.is_absolute() {
            return Err(AgentError::new(
                E_INVALIDARG,
                format!(
                    "{} is not an absolute path; the agent does not share your working directory",
                    path.display()
                ),
            ));
        }
        // Read before taking the writer lock: a slow file holds up nobody.
        let PackageRead::Read(snapshot, identity) = read_package(path.clone(), key, None).await?
        else {
            return Err(AgentError::new(
                WU_E_UNEXPECTED,
                "a package read as unchanged",
            ));
        };
        let _writer = self.catalog_writer.lock().await;
        snapshot.check_not_expired(Timestamp::now())?;
        let service_id = snapshot.service_id;
        let services = self.with_store(|store| store.services()).await?;
        if services
            .iter()
            .any(|service| service.service_id == service_id)
        {
            return Err(AgentError::new(
                WU_E_DS_INVALIDOPERATION,
                format!("service {service_id} is already registered; remove it first or sync it"),
            ));
        }
        let service = ServiceInfo {
            service_id,
            name: name.unwrap_or_else(|| snapshot.service_name.clone()),
            is_scan_package_service: true,
            source: path.display().to_string(),
            public_key: key.to_string(),
            content_base,
            // The first service becomes the default, so a search finds it.
            is_default: set_default || services.is_empty(),
            catalog_version: None,
            issue_date: None,
            expiration_date: None,
            last_sync: None,
            update_count: 0,
            kind: ServiceKind::ScanPackage,
            apt_root: None,
        };
        let version = snapshot.version;
        let registered = service.clone();
        let counts = self
            .with_store(move |store| store.add_service(&registered, &snapshot))
            .await?;
        self.remember_package(service_id, identity);
        self.reload().await?;
        let service = self
            .with_store(move |store| store.service(service_id))
            .await?
            .unwrap_or(service);
        Ok((
            service,
            SyncResult {
                service_id,
                previous_version: None,
                version,
                counts,
            },
        ))
    }

    /// `RemoveService`.
    pub async fn remove_service(&self, requester: &Requester, service_id: Uuid) -> Result<()> {
        policy::authorize(requester, Action::ChangeServices, None)?;
        let _writer = self.catalog_writer.lock().await;
        if !self
            .with_store(move |store| store.remove_service(service_id))
            .await?
        {
            return Err(unknown_service(service_id));
        }
        self.reload().await
    }

    /// `SetDefaultService`.
    pub async fn set_default_service(&self, requester: &Requester, service_id: Uuid) -> Result<()> {
        policy::authorize(requester, Action::ChangeServices, None)?;
        let _writer = self.catalog_writer.lock().await;
        if !self
            .with_store(move |store| store.set_default_service(service_id))
            .await?
        {
            return Err(unknown_service(service_id));
        }
        Ok(())
    }

    /// `Sync`: re-reads one service's source (or every service's) and imports
    /// it if it is newer; `progress` hears each phase. `online` (WUA's
    /// `Online`): an apt service runs `apt-get update` first.
    pub async fn sync(
        &self,
        requester: &Requester,
        service_id: Option<Uuid>,
        online: bool,
        progress: impl FnMut(SyncPhase<'_>),
    ) -> Result<Vec<SyncResult>> {
        policy::authorize(requester, Action::Sync, None)?;
        self.sync_services(service_id, online, progress).await
    }

    /// [`Agent::sync`] once the caller is authorized.
    pub(crate) async fn sync_services(
        &self,
        service_id: Option<Uuid>,
        online: bool,
        mut progress: impl FnMut(SyncPhase<'_>),
    ) -> Result<Vec<SyncResult>> {
        let services = self.with_store(|store| store.services()).await?;
        let selected: Vec<ServiceInfo> = match service_id {
            Some(id) => vec![
                services
                    .into_iter()
                    .find(|service| service.service_id == id)
                    .ok_or_else(|| unknown_service(id))?,
            ],
            None if services.is_empty() => {
                return Err(AgentError::new(
                    WU_E_SERVICE_NOT_REGISTERED,
                    "no update service is registered; add one with `wua services add-server` or `wua services add-package`",
                ));
            }
            None => services,
        };
        let mut results = Vec::new();
        for service in selected {
            let service_id = service.service_id;
            if service.kind == ServiceKind::Apt {
                let result = self.sync_apt(&service, online, &mut progress).await?;
                progress(SyncPhase::Done(&result));
                results.push(result);
                continue;
            }
            progress(SyncPhase::Verifying(service_id));
            if !service.is_scan_package_service {
                let result = self.sync_server(&service).await?;
                progress(SyncPhase::Done(&result));
                results.push(result);
                continue;
            }
            let key: PublicKey = service.public_key.parse()?;
            let known = lock(&self.package_identities).get(&service_id).copied();
            // Read before taking the writer lock: a slow file holds up nobody.
            let read = read_package(PathBuf::from(&service.source), key, known).await?;
            let _writer = self.catalog_writer.lock().await;
            // What the store holds now: another sync may have run meanwhile.
            let service = self
                .with_store(move |store| store.service(service_id))
                .await?
                .ok_or_else(|| unknown_service(service_id))?;
            let previous_version = service.catalog_version;
            let (newer, version, identity) = match read {
                PackageRead::Read(snapshot, identity) => {
                    check_sync(&service, &snapshot)?;
                    let version = snapshot.version;
                    let newer = (previous_version != Some(version)).then_some(snapshot);
                    (newer, version, identity)
                }
                PackageRead::Unchanged(identity) => {
                    (None, check_still_current(&service)?, identity)
                }
            };
            progress(SyncPhase::Importing(service_id));
            let unchanged = newer.is_none();
            let counts = match newer {
                Some(snapshot) => {
                    self.with_store(move |store| store.import_snapshot(&snapshot))
                        .await?
                }
                None => {
                    self.with_store(move |store| store.mark_synced(service_id))
                        .await?;
                    ImportCounts {
                        unchanged: service.update_count,
                        ..ImportCounts::default()
                    }
                }
            };
            self.remember_package(service_id, identity);
            progress(SyncPhase::Scanning(service.service_id));
            // An unchanged catalog needs no reload from the store, only the
            // machine's facts read again.
            if unchanged {
                self.rescan().await?;
            } else {
                self.reload().await?;
            }
            let result = SyncResult {
                service_id: service.service_id,
                previous_version,
                version,
                counts,
            };
            progress(SyncPhase::Done(&result));
            results.push(result);
        }
        Ok(results)
    }

    /// Applies an update server's signed response (`frame`, as
    /// [`SignedResponse::to_bytes`] writes it) to a registered service: it
    /// is verified with the service's pinned key, checked against the
    /// stored anchor, and applied in one store transaction. A refused
    /// response changes nothing. The server-sync transport calls this; it
    /// does no I/O of its own besides the store.
    pub async fn apply_sync_response(
        &self,
        service_id: Uuid,
        frame: Vec<u8>,
    ) -> Result<SyncResult> {
        let service = self
            .with_store(move |store| store.service(service_id))
            .await?
            .ok_or_else(|| unknown_service(service_id))?;
        let key: PublicKey = service.public_key.parse()?;
        // Up to 128 MiB to verify and parse: off the async workers.
        let response =
            blocking(move || Ok(SignedResponse::from_bytes(&frame)?.verify(&key)?)).await?;
        if response.service_id() != service_id {
            return Err(AgentError::new(
                WU_E_DS_INVALIDOPERATION,
                format!(
                    "the server answered with the catalog of service {}, not {service_id}",
                    response.service_id()
                ),
            ));
        }
        let _writer = self.catalog_writer.lock().await;
        let previous_version = self
            .with_store(move |store| store.service(service_id))
            .await?
            .and_then(|service| service.catalog_version);
        let version = response.version();
        let still_current = matches!(response, Response::StillCurrent(_));
        let counts = self
            .with_store(move |store| store.apply_response(&response, Timestamp::now()))
            .await?;
        if still_current {
            self.rescan().await?;
        } else {
            self.reload().await?;
        }
        Ok(SyncResult {
            service_id,
            previous_version,
            version,
            counts,
        })
    }

    /// Keeps the identity of the package file `service_id` was last synced
    /// from; a file that changed too recently to be told apart by its
    /// identity (none) is read again next time.
    fn remember_package(&self, service_id: Uuid, identity: Option<PackageIdentity>) {
        let mut identities = lock(&self.package_identities);
        match identity {
            Some(identity) => identities.insert(service_id, identity),
            None => identities.remove(&service_id),
        };
    }

    /// Re-reads the machine's facts and re-evaluates every rule.
    pub async fn rescan(&self) -> Result<()> {
        let sources = self.config.facts.clone();
        let index = Arc::clone(&self.index);
        blocking(move || rescan_index(&index, &Machine::read(&sources))).await
    }
}

/// Re-evaluates every rule against `machine` without holding the index
/// while files are read and hashed (searches go on meanwhile), then
/// applies the results under the write lock — again if a sync rebuilt the
/// index in between, and under the lock after three such races. Blocking.
pub(crate) fn rescan_index(index: &RwLock<Index>, machine: &Machine) -> Result<()> {
    for _ in 0..3 {
        let rules = index.read().map_err(|_| poisoned())?.rules();
        let evaluated = rules.evaluate(machine);
        if index
            .write()
            .map_err(|_| poisoned())?
            .apply_scan(&evaluated)
        {
            return Ok(());
        }
    }
    index.write().map_err(|_| poisoned())?.scan(machine);
    Ok(())
}

/// Where a sync is, for progress replies.
#[derive(Debug)]
pub enum SyncPhase<'a> {
    /// Reading and checking the signature.
    Verifying(Uuid),
    /// Writing the new catalog to the store.
    Importing(Uuid),
    /// Evaluating applicability.
    Scanning(Uuid),
    /// Finished with this service.
    Done(&'a SyncResult),
}

/// For a package that did not change since it was imported: its imported
/// version, unless that catalog has expired since (refused as reading the
/// package again would refuse it).
fn check_still_current(service: &ServiceInfo) -> Result<u64> {
    match (service.expiration_date, service.catalog_version) {
        (Some(expires), Some(version)) if Timestamp::now() >= expires => {
            Err(CatalogError::Stale(format!(
                "catalog version {version} of service {} expired at {expires}",
                service.service_id
            ))
            .into())
        }
        (_, Some(version)) => Ok(version),
        // Never imported: the package must be read.
        (_, None) => Err(AgentError::new(
            WU_E_UNEXPECTED,
            "a package without an imported catalog was found unchanged",
        )),
    }
}

/// Refuses a snapshot that is not the registered service's, that expired,
/// or that is older than the imported one.
fn check_sync(service: &ServiceInfo, snapshot: &Snapshot) -> Result<()> {
    if snapshot.service_id != service.service_id {
        return Err(AgentError::new(
            WU_E_DS_INVALIDOPERATION,
            format!(
                "{} now holds the catalog of service {}, not {}",
                service.source, snapshot.service_id, service.service_id
            ),
        ));
    }
    snapshot.check_not_expired(Timestamp::now())?;
    if let Some(current) = service.catalog_version
        && snapshot.version < current
    {
        return Err(AgentError::new(
            WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
            format!(
                "catalog version {} is older than the imported version {current}: refused as a rollback",
                snapshot.version
            ),
        ));
    }
    Ok(())
}

/// What reading a registered package found.
enum PackageRead {
    /// The very file read last time, so not read again.
    Unchanged(Option<PackageIdentity>),
    /// The verified catalog, and the file it came from.
    Read(Box<Snapshot>, Option<PackageIdentity>),
}

/// Opens the package at `path` (a regular file, no final symlink) and
/// reads and verifies it, unless it is still the file `known` identifies.
async fn read_package(
    path: PathBuf,
    key: PublicKey,
    known: Option<PackageIdentity>,
) -> Result<PackageRead> {
    blocking(move || {
        let file = PackageFile::open(&path)?;
        let identity = file.identity()?;
        if identity.is_some() && identity == known {
            return Ok(PackageRead::Unchanged(identity));
        }
        let snapshot = file
            .read(|path| package::open_package(path, &key))?
            .snapshot;
        Ok(PackageRead::Read(Box::new(snapshot), identity))
    })
    .await
}

/// Takes `state_dir/agent.lock`, or fails with `WU_E_DS_INUSE` when another
/// agent holds it (unless the configuration says to wait).
fn lock_state_dir(config: &Config) -> Result<Flock<File>> {
    let path = config.state_dir.join("agent.lock");
    // 0600 in the 0700 directory: nobody else can take a lock on it and
    // keep the agent from starting.
    let file = crate::store::open_private_file(&path)?;
    let mode = if config.wait_for_state_lock {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    Flock::lock(file, mode).map_err(|_| {
        AgentError::new(
            WU_E_DS_INUSE,
            format!(
                "another wua-agent is using {}; stop it, or give this one its own --state-dir",
                config.state_dir.display()
            ),
        )
    })
}

/// Finishes what an interrupted dpkg left half-done (`dpkg --configure
/// -a`), after an installer was interrupted; logged, and kept for
/// `GetInstallerState`.
fn repair_dpkg(config: &Config) -> Option<openwua_model::operation::RepairReport> {
    let log_dir = config.log_dir();
    if let Err(error) = std::fs::create_dir_all(&log_dir) {
        tracing::warn!("{}: {error}", log_dir.display());
    }
    let log = log_dir.join("dpkg-repair.log");
    let outcome = openwua_installer::handlers::apt::repair_interrupted(
        &crate::operations::dpkg_settings_of(config),
        &log,
    )?;
    if outcome.hresult == openwua_model::hresult::S_OK {
        tracing::warn!(
            "dpkg was interrupted with the installer; repaired: {}",
            outcome.detail
        );
    } else {
        tracing::error!(
            "dpkg was interrupted with the installer and could not be repaired ({}): {}",
            outcome.hresult,
            outcome.detail
        );
    }
    Some(openwua_model::operation::RepairReport {
        date: Timestamp::now(),
        hresult: outcome.hresult,
        detail: outcome.detail,
    })
}

fn load_index(store: &Store, config: &Config, cache: &Cache) -> Result<Index> {
    let machine = Machine::read(&config.facts);
    let states = store.states()?;
    Index::build(store.revisions()?, &states, &machine, |sha256| {
        cache.has(sha256)
    })
}

/// A warning for each searched service whose stored catalog has expired,
/// or whose server's last still-current statement (`fresh_until`) lapsed
/// with no newer one: its results may be out of date until it syncs.
fn expiry_warnings(
    searched: &[ServiceInfo],
    fresh_until: &std::collections::HashMap<Uuid, Timestamp>,
    now: Timestamp,
) -> Vec<SearchWarning> {
    searched
        .iter()
        .filter_map(|service| {
            let message = if let Some(expired) =
                service.expiration_date.filter(|expires| *expires <= now)
            {
                format!(
                    "the catalog of {} expired at {expired}; results may be out of date until it syncs a current one",
                    service.name
                )
            } else {
                let lapsed = fresh_until
                    .get(&service.service_id)
                    .filter(|until| **until <= now)?;
                format!(
                    "the server last confirmed the catalog of {} as current until {lapsed}; results may be out of date until it syncs again",
                    service.name
                )
            };
            Some(SearchWarning {
                hresult: WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
                message,
            })
        })
        .collect()
}

pub(crate) fn unknown_update(update_id: Uuid) -> AgentError {
    AgentError::new(
        WU_E_DS_NODATA,
        format!("no update {update_id} in any registered service's catalog"),
    )
}

pub(crate) fn unknown_service(service_id: Uuid) -> AgentError {
    AgentError::new(
        WU_E_DS_UNKNOWNSERVICE,
        format!("service {service_id} is not registered"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use jiff::{SignedDuration, Timestamp};
    use openwua_model::hresult::WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW;
    use openwua_model::service::ServiceInfo;
    use uuid::Uuid;

    use super::expiry_warnings;

    fn service(id: u128, expires: Timestamp) -> ServiceInfo {
        ServiceInfo {
            service_id: Uuid::from_u128(id),
            name: format!("Server {id}"),
            is_scan_package_service: false,
            source: "https://updates.example.org/".into(),
            public_key: String::new(),
            content_base: None,
            is_default: false,
            catalog_version: Some(1),
            issue_date: None,
            expiration_date: Some(expires),
            last_sync: None,
            update_count: 0,
            kind: openwua_model::service::ServiceKind::UpdateServer,
            apt_root: None,
        }
    }

    #[test]
    fn a_lapsed_freshness_statement_warns_like_an_expired_catalog() {
        let now = Timestamp::now();
        let hour = SignedDuration::from_hours(1);
        let services = [
            service(1, now + hour),
            service(2, now + hour),
            service(3, now + hour),
            service(4, now - hour),
        ];
        let fresh_until = HashMap::from([
            (Uuid::from_u128(1), now - hour),
            (Uuid::from_u128(2), now + hour),
        ]);
        let warnings = expiry_warnings(&services, &fresh_until, now);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|warning| warning.hresult == WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW)
        );
        assert!(warnings[0].message.contains("Server 1"));
        assert!(warnings[0].message.contains("confirmed"));
        assert!(warnings[1].message.contains("Server 4 expired"));
    }
}
