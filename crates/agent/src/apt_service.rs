//! The apt service: the Debian repositories the machine's apt already
//! knows, as an update service beside scan packages and update servers.
//!
//! A sync reads, on a blocking thread, the lists apt downloaded and
//! verified and dpkg's status (`openwua_apt::scan_machine`), and replaces
//! the service's revisions in one store transaction; `online` runs
//! `apt-get update` first. Downloads go to apt's own cache and installs
//! through the installer's `apt` handler. Behaviour and codes:
//! `docs/apt.md`, "The apt service".

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use openwua_apt::{AptError, AptPaths, MachineScan};
use openwua_catalog::revision::AptPackage;
use openwua_installer::handlers::apt as apt_handler;
use openwua_installer::handlers::{AptSettings, DpkgSettings};
use openwua_model::hresult::{
    E_INVALIDARG, WU_E_DS_INVALIDOPERATION, WU_E_PT_UNEXPECTED, WU_E_TIME_OUT,
};
use openwua_model::search::{AptPackageVersions, AptUpdateDetails};
use openwua_model::service::{ServiceInfo, ServiceKind};
use uuid::Uuid;

use crate::agent::{Agent, SyncPhase, SyncResult, blocking, lock, poisoned, unknown_service};
use crate::config::InstallSettings;
use crate::error::{AgentError, Result};
use crate::policy::{self, Action, Requester};

/// How long `apt-get update` may run before it is stopped.
const APT_UPDATE_TIMEOUT: Duration = Duration::from_secs(600);

/// How much of `apt-get update`'s output a failure quotes, from its end.
const APT_MESSAGE_BYTES: u64 = 2048;

/// What `AddAptService` asks for.
#[derive(Debug, Clone, Default)]
pub struct AptServiceRequest {
    /// The service's name; `Debian` when absent.
    pub name: Option<String>,
    /// apt's root directory; `/` when absent.
    pub apt_root: Option<PathBuf>,
    /// Make it the default service.
    pub set_default: bool,
}

/// The ServiceID of the apt service for `root`: the same root is the same
/// service, so adding it again after a removal finds the same updates.
pub fn apt_service_id(root: &Path) -> Uuid {
    let namespace = Uuid::from_u128(0x6f70_656e_7775_6121_8000_6170_7473_7663);
    Uuid::new_v5(&namespace, root.as_os_str().as_encoded_bytes())
}

/// The apt settings of an apt service (its root), for the handler.
pub(crate) fn apt_settings(service: &ServiceInfo, install: &InstallSettings) -> AptSettings {
    AptSettings {
        root: PathBuf::from(service.apt_root.as_deref().unwrap_or("/")),
        lock_wait: Duration::from_secs(install.apt_lock_wait_seconds),
        ..AptSettings::default()
    }
}

/// How apt runs for an update server's apt update, whose `.deb`s come as
/// content: the agent's `server_apt_root`. None for any other payload.
pub(crate) fn server_apt_settings(
    payload: &crate::store::Payload,
    install: &InstallSettings,
) -> Option<AptSettings> {
    (matches!(
        payload.handler,
        openwua_catalog::revision::Handler::Apt { .. }
    ) && !payload.content.is_empty())
    .then(|| AptSettings {
        root: install.server_apt_root.clone(),
        lock_wait: Duration::from_secs(install.apt_lock_wait_seconds),
        ..AptSettings::default()
    })
}

/// `IsDownloaded` of apt updates, remembered per update until the
/// archive directory of its service changes (apt renames every finished
/// download into it, and removes files from it, so its modification time
/// moves whenever what it holds does): searches stay as fast as the index.
#[derive(Debug, Default)]
pub(crate) struct AptDownloads {
    known: Mutex<HashMap<Uuid, (Option<SystemTime>, bool)>>,
}

impl AptDownloads {
    /// Whether each update's packages (those the machine has) are in its
    /// service's apt cache. Blocking: it may hash `.deb` files.
    pub(crate) fn check(
        &self,
        updates: &[(Uuid, Uuid, Vec<AptPackage>)],
        roots: &HashMap<Uuid, AptSettings>,
        dpkg: &DpkgSettings,
    ) -> HashMap<Uuid, bool> {
        let mut stamps: HashMap<Uuid, Option<SystemTime>> = HashMap::new();
        let mut answers = HashMap::with_capacity(updates.len());
        for (update_id, service_id, packages) in updates {
            let Some(apt) = roots.get(service_id) else {
                continue;
            };
            let stamp = *stamps
                .entry(*service_id)
                .or_insert_with(|| archive_stamp(&apt.root));
            let known = lock(&self.known).get(update_id).copied();
            let downloaded = match known {
                Some((seen, downloaded)) if seen.is_some() && seen == stamp => downloaded,
                _ => {
                    // Most updates have no package in the cache at all: a
                    // stat each says so without reading dpkg's database.
                    let downloaded = packages
                        .iter()
                        .any(|package| apt_handler::cached_deb(apt, package).exists())
                        && apt_handler::is_downloaded(apt, dpkg, packages);
                    lock(&self.known).insert(*update_id, (stamp, downloaded));
                    downloaded
                }
            };
            answers.insert(*update_id, downloaded);
        }
        answers
    }
}

/// The modification time of apt's archive directory beneath `root`.
fn archive_stamp(root: &Path) -> Option<SystemTime> {
    std::fs::metadata(root.join("var/cache/apt/archives"))
        .and_then(|metadata| metadata.modified())
        .ok()
}

impl Agent {
    /// `AddAptService`: registers the apt configuration beneath the apt
    /// root as a service and runs its first sync. A failure (an
    /// unverified list, say) leaves nothing registered.
    pub async fn add_apt_service(
        &self,
        requester: &Requester,
        request: AptServiceRequest,
    ) -> Result<(ServiceInfo, SyncResult)> {
        policy::authorize(requester, Action::ChangeServices, None)?;
        let name = request.name.unwrap_or_else(|| "Debian".to_owned());
        policy::check_length("name", &name, policy::MAX_NAME_BYTES)?;
        let root = request.apt_root.unwrap_or_else(|| PathBuf::from("/"));
        policy::check_length("aptRoot", &root.to_string_lossy(), policy::MAX_PATH_BYTES)?;
        if !root.is_absolute() {
            return Err(AgentError::new(
                E_INVALIDARG,
                format!(
                    "{} is not an absolute path; the agent does not share your working directory",
                    root.display()
                ),
            ));
        }
        let Some(root_text) = root.to_str().map(str::to_owned) else {
            return Err(AgentError::new(
                E_INVALIDARG,
                format!(
                    "{} is not UTF-8; give apt's root as a UTF-8 path",
                    root.display()
                ),
            ));
        };
        let service_id = apt_service_id(&root);
        // Read before taking the writer lock: a slow scan holds up nobody.
        let scan = self.scan_apt(root.clone()).await?;
        let _writer = self.catalog_writer.lock().await;
        let services = self.with_store(|store| store.services()).await?;
        if services
            .iter()
            .any(|service| service.service_id == service_id)
        {
            return Err(AgentError::new(
                WU_E_DS_INVALIDOPERATION,
                format!(
                    "the apt service for {root_text} is registered already ({service_id}); sync it or remove it first"
                ),
            ));
        }
        let service = ServiceInfo {
            service_id,
            name,
            is_scan_package_service: false,
            source: root_text.clone(),
            public_key: String::new(),
            content_base: None,
            // The first service becomes the default, so a search finds it.
            is_default: request.set_default || services.is_empty(),
            catalog_version: None,
            issue_date: None,
            expiration_date: None,
            last_sync: None,
            update_count: 0,
            kind: ServiceKind::Apt,
            apt_root: Some(root_text),
        };
        let stored = service.clone();
        let counts = self
            .with_store(move |store| store.add_apt_service(&stored, &scan.revisions))
            .await?;
        tracing::info!(service = %service_id, root = %root.display(), "registered the apt service");
        self.reload().await?;
        let service = self
            .with_store(move |store| store.service(service_id))
            .await?
            .unwrap_or(service);
        let version = service.catalog_version.unwrap_or(1);
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

    /// One sync of an apt service: `apt-get update` first when `online`,
    /// then the lists and dpkg's status read again and the service's
    /// revisions replaced in one transaction. A refused list changes
    /// nothing.
    pub(crate) async fn sync_apt(
        &self,
        service: &ServiceInfo,
        online: bool,
        progress: &mut impl FnMut(SyncPhase<'_>),
    ) -> Result<SyncResult> {
        let service_id = service.service_id;
        let apt = apt_settings(service, &self.config.install);
        if online {
            let log = self.config.log_dir().join("apt-get-update.log");
            let settings = apt.clone();
            let admindir = self.config.facts.dpkg_admindir.clone();
            blocking(move || apt_get_update(&settings, &admindir, &log, APT_UPDATE_TIMEOUT))
                .await?;
        }
        progress(SyncPhase::Verifying(service_id));
        let scan = self.scan_apt(apt.root.clone()).await?;
        let _writer = self.catalog_writer.lock().await;
        let previous_version = self
            .with_store(move |store| store.service(service_id))
            .await?
            .ok_or_else(|| unknown_service(service_id))?
            .catalog_version;
        progress(SyncPhase::Importing(service_id));
        let counts = self
            .with_store(move |store| store.apply_apt_scan(service_id, &scan.revisions))
            .await?;
        progress(SyncPhase::Scanning(service_id));
        self.reload().await?;
        let version = self
            .with_store(move |store| store.service(service_id))
            .await?
            .and_then(|service| service.catalog_version)
            .unwrap_or(0);
        Ok(SyncResult {
            service_id,
            previous_version,
            version,
            counts,
        })
    }

    /// `scan_machine` on a blocking thread, with the agent's dpkg database.
    async fn scan_apt(&self, root: PathBuf) -> Result<MachineScan> {
        let paths = AptPaths::new(&root, &self.config.facts.dpkg_admindir);
        blocking(move || {
            let started = Instant::now();
            let scan = openwua_apt::scan_machine(&paths, Timestamp::now()).map_err(apt_error)?;
            tracing::info!(
                root = %paths.root.display(),
                lists = scan.lists.len(),
                revisions = scan.revisions.len(),
                elapsed_ms = started.elapsed().as_millis(),
                "read apt's lists"
            );
            Ok(scan)
        })
        .await
    }

    /// Each apt service's settings, by ServiceID.
    pub(crate) async fn apt_roots(&self) -> Result<HashMap<Uuid, AptSettings>> {
        let services = self.with_store(|store| store.services()).await?;
        Ok(apt_roots_of(&services, &self.config.install))
    }

    /// Checks, on a blocking thread, whether the index's apt updates are
    /// in apt's cache, and records it in the index.
    pub(crate) async fn refresh_apt_downloads(&self) -> Result<()> {
        let roots = self.apt_roots().await?;
        let updates = self.index.read().map_err(|_| poisoned())?.apt_updates();
        if updates.is_empty() {
            return Ok(());
        }
        let downloads = Arc::clone(&self.apt_downloads);
        let dpkg = self.dpkg_settings();
        let answers = blocking(move || Ok(downloads.check(&updates, &roots, &dpkg))).await?;
        self.index
            .write()
            .map_err(|_| poisoned())?
            .set_apt_downloaded(answers);
        Ok(())
    }
}

/// An apt update's packages with the versions dpkg has, the suites that
/// offer it, and once they are in apt's cache the CVE IDs their changelogs
/// name. Blocking.
pub(crate) fn apt_details(
    packages: &[AptPackage],
    suites: Vec<String>,
    apt: &AptSettings,
    dpkg_admindir: &Path,
    downloaded: bool,
) -> AptUpdateDetails {
    let installed = crate::applicability::installed_packages(dpkg_admindir);
    let mut cves: Vec<String> = Vec::new();
    if downloaded {
        for package in packages {
            let deb = apt_handler::cached_deb(apt, package);
            if deb.is_file() {
                for cve in apt_handler::changelog_cves(&deb) {
                    if !cves.contains(&cve) {
                        cves.push(cve);
                    }
                }
            }
        }
    }
    AptUpdateDetails {
        packages: packages
            .iter()
            .map(|package| AptPackageVersions {
                name: package.name.clone(),
                architecture: package.architecture.clone(),
                installed_version: installed
                    .get(&format!("{}:{}", package.name, package.architecture))
                    .or_else(|| installed.get(&package.name))
                    .map(ToString::to_string),
                version: package.version.clone(),
            })
            .collect(),
        pockets: suites,
        cves,
    }
}

/// Each apt service's settings, by ServiceID.
pub(crate) fn apt_roots_of(
    services: &[ServiceInfo],
    install: &InstallSettings,
) -> HashMap<Uuid, AptSettings> {
    services
        .iter()
        .filter(|service| service.kind == ServiceKind::Apt)
        .map(|service| (service.service_id, apt_settings(service, install)))
        .collect()
}

/// An apt list refused: its code, naming the file.
fn apt_error(error: AptError) -> AgentError {
    AgentError::new(
        error.hresult(),
        format!("{error} (or `wua sync --online`); nothing was changed"),
    )
}

/// Runs `apt-get update` for `apt`'s root, its output appended to `log`,
/// for at most `timeout`. Blocking. A failure is `WU_E_PT_UNEXPECTED`
/// with the end of apt's output; a timeout `WU_E_TIME_OUT`.
pub(crate) fn apt_get_update(
    apt: &AptSettings,
    dpkg_admindir: &Path,
    log: &Path,
    timeout: Duration,
) -> Result<()> {
    let io = |error: std::io::Error| {
        AgentError::new(WU_E_PT_UNEXPECTED, format!("{}: {error}", log.display()))
    };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    let start = output.metadata().map_err(io)?.len();
    let mut command = Command::new(&apt.program);
    command.env_clear();
    if apt.root != Path::new("/") {
        // apt's own configuration beneath the root, read instead of the
        // machine's when there is one.
        let conf = apt.root.join("etc/apt/apt.conf");
        if conf.is_file() {
            command.env("APT_CONFIG", conf);
        }
        command
            .arg("-o")
            .arg(format!("Dir={}/", apt.root.display()));
    }
    command
        // dpkg's database is the agent's, as every handler and rule sees it.
        .arg("-o")
        .arg(format!(
            "Dir::State::status={}",
            dpkg_admindir.join("status").display()
        ))
        .args(["-q", "update"])
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(output.try_clone().map_err(io)?)
        .stderr(output)
        // Its own process group, so a timeout stops its methods too.
        .process_group(0);
    let mut child = command.spawn().map_err(|error| {
        AgentError::new(
            WU_E_PT_UNEXPECTED,
            format!("cannot run {}: {error}", apt.program.display()),
        )
    })?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if started.elapsed() >= timeout {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait();
            return Err(AgentError::new(
                WU_E_TIME_OUT,
                format!(
                    "apt-get update did not finish within {} s and was stopped; its output is in {}",
                    timeout.as_secs(),
                    log.display()
                ),
            ));
        }
        // A process exit has no descriptor to wait on here: look again soon.
        std::thread::sleep(Duration::from_millis(50));
    };
    // apt-get update exits 0 even when a source could not be fetched (the
    // old list stays); its "W: Failed to fetch" lines say so.
    let message = tail(log, start);
    let fetch_failed = message.lines().any(|line| {
        line.starts_with("E:")
            || (line.starts_with("W:")
                && (line.contains("Failed to fetch") || line.contains("failed to download")))
    });
    if status.success() && !fetch_failed {
        return Ok(());
    }
    Err(AgentError::new(
        WU_E_PT_UNEXPECTED,
        format!(
            "apt-get update failed ({status}): {}",
            message
                .lines()
                .filter(|line| line.starts_with("E:") || line.starts_with("W:"))
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(APT_MESSAGE_BYTES as usize)
                .collect::<String>()
        ),
    ))
}

/// What was appended to `log` after `start`, at most its last
/// [`APT_MESSAGE_BYTES`] bytes, as text.
fn tail(log: &Path, start: u64) -> String {
    let Ok(mut file) = File::open(log) else {
        return String::new();
    };
    let end = file
        .metadata()
        .map(|metadata| metadata.len())
        .unwrap_or(start);
    let from = start.max(end.saturating_sub(APT_MESSAGE_BYTES));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err()
        || file
            .take(APT_MESSAGE_BYTES)
            .read_to_end(&mut bytes)
            .is_err()
    {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
