//! The download engine (`IUpdateDownloader.Download`): fetches each
//! update's missing content files into the cache, several at a time,
//! publishing WUA's `DownloadProgress` as it goes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openwua_catalog::package;
use openwua_catalog::revision::{AptPackage, ContentFile};
use openwua_installer::handlers::apt::{self as apt_handler, AptDownload};
use openwua_installer::handlers::{AptSettings, DpkgSettings, HandlerOutcome, Outcome};
use openwua_model::enums::{DownloadPhase, OperationResultCode};
use openwua_model::hresult::{
    E_ABORT, S_OK, WU_E_DM_URLNOTAVAILABLE, WU_E_NOT_APPLICABLE, WU_S_ALREADY_DOWNLOADED,
    WU_S_ALREADY_INSTALLED,
};
use openwua_model::operation::{DownloadProgress, UpdateResult, percent};
use openwua_model::update::Update;

use crate::agent::lock;
use crate::cache::Cache;
use crate::error::{AgentError, Result};
use crate::fetch::{FetchEvent, FetchRequest, Fetcher};
use crate::jobs::Job;
use crate::package_file::PackageFile;

/// Where a content file comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An absolute `http://`, `https://` or `file://` URL.
    Url(String),
    /// An `https://` (or `http://`) URL of an update server's service that
    /// trusts a CA of its own: fetched with that service's fetcher.
    ServerUrl(String, Arc<Fetcher>),
    /// The offline scan package the service was registered with.
    Package(PathBuf),
}

/// One update of a download call, as the agent resolved it.
#[derive(Debug, Clone)]
pub struct DownloadTarget {
    /// The update.
    pub update: Update,
    /// Installed on this machine.
    pub is_installed: bool,
    /// Applies to this machine.
    pub applicable: bool,
    /// Its content files and those of its bundled updates, with sources.
    pub files: Vec<(ContentFile, Source)>,
    /// For an apt update: its packages, fetched by apt into apt's cache
    /// rather than into the content cache.
    pub apt: Option<AptTarget>,
}

/// An apt update's packages and where apt keeps them.
#[derive(Debug, Clone)]
pub struct AptTarget {
    /// apt, with its service's root.
    pub settings: AptSettings,
    /// The update's binary packages.
    pub packages: Vec<AptPackage>,
}

/// What downloading apt updates needs besides each target.
pub struct AptRun<'a> {
    /// dpkg's database: which packages the machine has.
    pub dpkg: &'a DpkgSettings,
    /// Where apt's output is logged, one file per update and job.
    pub log_dir: &'a Path,
}

/// How long between two progress publications, at most one per step.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Downloads `targets` in order; returns one result per target. Stops
/// between files when the job is asked to abort.
pub fn run(
    targets: &[DownloadTarget],
    is_forced: bool,
    cache: &Cache,
    fetcher: &Fetcher,
    parallel: usize,
    job: &Job,
    apt: &AptRun<'_>,
) -> (Vec<UpdateResult>, bool) {
    // Asked once, before anything is fetched: the totals are known upfront.
    let apt_missing: Vec<Option<u64>> = targets
        .iter()
        .map(|target| {
            target.apt.as_ref().and_then(|each| {
                (!apt_handler::is_downloaded(&each.settings, apt.dpkg, &each.packages))
                    .then(|| each.packages.iter().map(|package| package.size).sum())
            })
        })
        .collect();
    let missing: Vec<Vec<&(ContentFile, Source)>> = targets
        .iter()
        .map(|target| {
            target
                .files
                .iter()
                .filter(|(file, _)| !cache.has(&file.sha256))
                .collect()
        })
        .collect();
    let mut progress = DownloadProgress {
        total_bytes_to_download: missing
            .iter()
            .flatten()
            .map(|(file, _)| file.size)
            .sum::<u64>()
            + apt_missing.iter().flatten().sum::<u64>(),
        ..DownloadProgress::default()
    };
    let mut results = Vec::with_capacity(targets.len());
    let mut aborted = false;
    for (index, (target, missing)) in targets.iter().zip(&missing).enumerate() {
        let update = &target.update;
        let done = |code: OperationResultCode, hresult, detail: Option<String>| UpdateResult {
            update_id: update.identity.update_id,
            title: update.title.clone(),
            result_code: code,
            hresult,
            reboot_required: false,
            unmapped_result_code: None,
            detail,
        };
        if aborted || job.abort_flag().load(Ordering::SeqCst) {
            aborted = true;
            results.push(done(OperationResultCode::Aborted, E_ABORT, None));
            continue;
        }
        if !is_forced && target.is_installed {
            results.push(done(
                OperationResultCode::Succeeded,
                WU_S_ALREADY_INSTALLED,
                Some("installed already, so nothing was fetched (force to fetch anyway)".into()),
            ));
            continue;
        }
        if !is_forced && !target.applicable {
            results.push(done(
                OperationResultCode::Failed,
                WU_E_NOT_APPLICABLE,
                Some("it does not apply to this machine (`wua show` says why)".into()),
            ));
            continue;
        }
        if let Some(apt_target) = &target.apt {
            let Some(size) = apt_missing[index] else {
                results.push(done(
                    OperationResultCode::Succeeded,
                    WU_S_ALREADY_DOWNLOADED,
                    None,
                ));
                continue;
            };
            progress.current_update_index = u32::try_from(index).unwrap_or(u32::MAX);
            progress.current_update_id = Some(update.identity.update_id);
            progress.current_update_bytes_to_download = size;
            progress.current_update_bytes_downloaded = 0;
            progress.current_update_download_phase = Some(DownloadPhase::Downloading);
            job.download_progress(progress.clone());
            let outcome = fetch_apt(apt_target, apt, update, job, &mut progress);
            let result = match outcome.outcome {
                Outcome::Succeeded | Outcome::SucceededRebootRequired => {
                    done(OperationResultCode::Succeeded, S_OK, None)
                }
                Outcome::Aborted => {
                    aborted = true;
                    done(OperationResultCode::Aborted, E_ABORT, Some(outcome.detail))
                }
                Outcome::Failed => done(
                    OperationResultCode::Failed,
                    outcome.hresult,
                    Some(outcome.detail),
                ),
            };
            let base = progress.total_bytes_downloaded - progress.current_update_bytes_downloaded;
            progress.total_bytes_downloaded = base + progress.current_update_bytes_to_download;
            progress.finished.push(result.clone());
            progress.percent_complete = percent(
                progress.total_bytes_downloaded,
                progress.total_bytes_to_download,
            );
            job.download_progress(progress.clone());
            results.push(result);
            continue;
        }
        if missing.is_empty() {
            results.push(done(
                OperationResultCode::Succeeded,
                WU_S_ALREADY_DOWNLOADED,
                None,
            ));
            continue;
        }
        progress.current_update_index = u32::try_from(index).unwrap_or(u32::MAX);
        progress.current_update_id = Some(update.identity.update_id);
        progress.current_update_bytes_to_download = missing.iter().map(|(file, _)| file.size).sum();
        progress.current_update_bytes_downloaded = 0;
        progress.current_update_download_phase = Some(DownloadPhase::Initializing);
        job.download_progress(progress.clone());
        let outcome = fetch_all(missing, cache, fetcher, parallel, job, &mut progress);
        let result = match outcome {
            Ok(()) => done(OperationResultCode::Succeeded, S_OK, None),
            Err(error) if error.hresult == E_ABORT => {
                aborted = true;
                done(OperationResultCode::Aborted, E_ABORT, Some(error.detail))
            }
            Err(error) => done(
                OperationResultCode::Failed,
                error.hresult,
                Some(error.detail),
            ),
        };
        // Count what this update was to fetch as done, whatever happened,
        // so the overall percentage moves on.
        let base = progress.total_bytes_downloaded - progress.current_update_bytes_downloaded;
        progress.total_bytes_downloaded = base + progress.current_update_bytes_to_download;
        progress.finished.push(result.clone());
        progress.percent_complete = percent(
            progress.total_bytes_downloaded,
            progress.total_bytes_to_download,
        );
        job.download_progress(progress.clone());
        results.push(result);
    }
    (results, aborted)
}

/// Has apt fetch one update's packages into its cache, publishing its
/// progress as the update's.
fn fetch_apt(
    target: &AptTarget,
    apt: &AptRun<'_>,
    update: &Update,
    job: &Job,
    progress: &mut DownloadProgress,
) -> HandlerOutcome {
    let log_path = apt.log_dir.join(format!(
        "{}-download-{}.log",
        update.identity.update_id,
        job.info().job_id
    ));
    if let Err(error) = std::fs::create_dir_all(apt.log_dir) {
        return HandlerOutcome {
            outcome: Outcome::Failed,
            hresult: openwua_model::hresult::WU_E_DM_UNEXPECTED,
            exit_code: None,
            detail: format!("{}: {error}", apt.log_dir.display()),
        };
    }
    let start_total = progress.total_bytes_downloaded;
    let mut last = Instant::now();
    apt_handler::download(
        &AptDownload {
            apt: &target.settings,
            dpkg: apt.dpkg,
            packages: &target.packages,
            log_path: &log_path,
            abort: job.abort_flag(),
        },
        &mut |bytes, total| {
            if total > 0 {
                progress.current_update_bytes_to_download = total;
            }
            progress.current_update_bytes_downloaded = bytes;
            progress.current_update_percent_complete =
                percent(bytes, progress.current_update_bytes_to_download);
            progress.total_bytes_downloaded = start_total + bytes;
            progress.percent_complete = percent(
                progress.total_bytes_downloaded,
                progress
                    .total_bytes_to_download
                    .max(progress.total_bytes_downloaded),
            );
            if last.elapsed() >= PROGRESS_INTERVAL {
                last = Instant::now();
                job.download_progress(progress.clone());
            }
        },
    )
}

/// Fetches one update's files, `parallel` at a time; the first failure
/// stops the rest (after the files already in flight).
fn fetch_all(
    files: &[&(ContentFile, Source)],
    cache: &Cache,
    fetcher: &Fetcher,
    parallel: usize,
    job: &Job,
    progress: &mut DownloadProgress,
) -> Result<()> {
    cache.prepare()?;
    let start_total = progress.total_bytes_downloaded;
    let shared = Mutex::new((progress.clone(), vec![0u64; files.len()], Instant::now()));
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<AgentError>> = Mutex::new(None);
    let workers = parallel.clamp(1, files.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let position = next.fetch_add(1, Ordering::SeqCst);
                    let Some((file, source)) = files.get(position) else {
                        return;
                    };
                    if lock(&failure).is_some() {
                        return;
                    }
                    let mut report = |event: FetchEvent| {
                        let mut guard = lock(&shared);
                        let (progress, bytes, last) = &mut *guard;
                        match event {
                            FetchEvent::Verifying => {
                                progress.current_update_download_phase =
                                    Some(DownloadPhase::Verifying);
                            }
                            FetchEvent::Bytes(count) => {
                                bytes[position] = count;
                                progress.current_update_download_phase =
                                    Some(DownloadPhase::Downloading);
                            }
                        }
                        let current: u64 = bytes.iter().sum();
                        progress.current_update_bytes_downloaded = current;
                        progress.current_update_percent_complete =
                            percent(current, progress.current_update_bytes_to_download);
                        progress.total_bytes_downloaded = start_total + current;
                        progress.percent_complete = percent(
                            progress.total_bytes_downloaded,
                            progress.total_bytes_to_download,
                        );
                        if last.elapsed() >= PROGRESS_INTERVAL {
                            *last = Instant::now();
                            job.download_progress(progress.clone());
                        }
                    };
                    if let Err(error) = fetch_one(file, source, cache, fetcher, &mut report, job) {
                        lock(&failure).get_or_insert(error);
                        return;
                    }
                    report(FetchEvent::Bytes(file.size));
                }
            });
        }
    });
    let (latest, _, _) = shared
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *progress = latest;
    match failure
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
    {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn fetch_one(
    file: &ContentFile,
    source: &Source,
    cache: &Cache,
    fetcher: &Fetcher,
    report: &mut dyn FnMut(FetchEvent),
    job: &Job,
) -> Result<()> {
    let destination = cache.content_path(&file.sha256);
    match source {
        Source::Url(url) => fetcher.fetch(
            &FetchRequest {
                url,
                size: file.size,
                sha256: file.sha256,
                destination: &destination,
            },
            report,
            job.abort_flag(),
        ),
        Source::ServerUrl(url, fetcher) => fetcher.fetch(
            &FetchRequest {
                url,
                size: file.size,
                sha256: file.sha256,
                destination: &destination,
            },
            report,
            job.abort_flag(),
        ),
        Source::Package(path) => {
            report(FetchEvent::Verifying);
            PackageFile::open(path)
                .and_then(|package| {
                    package.read(|package| {
                        package::extract_content(package, &file.sha256, &destination)
                    })
                })
                .map_err(|error| {
                AgentError::new(
                    WU_E_DM_URLNOTAVAILABLE,
                    format!(
                        "{} ({}) could not be taken from the scan package {}: {}; register the service with a content base (`--content-base`) or build the package with its content",
                        file.file_name,
                        file.sha256,
                        path.display(),
                        error.detail
                    ),
                )
            })?;
            make_executable(&destination)
        }
    }
}

/// Installers run content files directly, as the fetcher leaves them.
fn make_executable(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(crate::cache::CONTENT_FILE_MODE),
    )
    .map_err(|error| {
        AgentError::new(
            openwua_model::hresult::WU_E_DM_UNEXPECTED,
            format!("{}: {error}", path.display()),
        )
    })
}
