//! Jobs: every download, install and uninstall runs as one, with an ID,
//! apart from the connection that started it. A client that goes away
//! leaves it running; any client may watch it again or ask it to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use openwua_model::operation::{
    DownloadProgress, InstallationProgress, JobInfo, JobKind, JobState, OperationResult,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::agent::lock;

/// Finished jobs kept for `ListJobs` and `WatchJob`, newest kept (in
/// memory and in the store).
pub const FINISHED_KEPT: usize = 100;

/// One running or finished job.
pub struct Job {
    info: watch::Sender<JobInfo>,
    abort: AtomicBool,
}

impl Job {
    /// The job's current state.
    pub fn info(&self) -> JobInfo {
        self.info.borrow().clone()
    }

    /// Follows every change of the job's state.
    pub fn subscribe(&self) -> watch::Receiver<JobInfo> {
        self.info.subscribe()
    }

    /// Set once an abort was requested; the engines check it between steps.
    pub fn abort_flag(&self) -> &AtomicBool {
        &self.abort
    }

    /// `RequestAbort`: asks the job to stop (it does at its next safe point).
    pub fn request_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.info.send_modify(|info| {
            if info.state == JobState::Running {
                info.state = JobState::Aborting;
            }
        });
    }

    /// Publishes download progress.
    pub fn download_progress(&self, progress: DownloadProgress) {
        self.info
            .send_modify(|info| info.download_progress = Some(progress));
    }

    /// Publishes a change of installation progress, made in place.
    pub fn change_installation_progress(&self, change: impl FnOnce(&mut InstallationProgress)) {
        self.info
            .send_modify(|info| change(info.installation_progress.get_or_insert_default()));
    }

    /// The job as it will be once completed with `result`; nothing is
    /// published yet, so it can be stored first.
    pub fn completion(&self, result: OperationResult) -> JobInfo {
        let mut info = self.info();
        info.state = JobState::Completed;
        info.finished = Some(Timestamp::now());
        info.result = Some(result);
        info
    }

    /// Completes the job: everyone watching it gets its result.
    pub fn complete(&self, completed: JobInfo) {
        self.info.send_replace(completed);
    }
}

/// The running jobs and the newest finished ones, this run's and those an
/// earlier agent stored.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<Vec<Arc<Job>>>,
}

/// Who started a job and what it covers.
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// Its updates, in the call's order.
    pub update_ids: Vec<Uuid>,
    /// The caller's uid.
    pub caller_uid: u32,
    /// The caller's `ClientApplicationID`.
    pub client_application_id: String,
}

impl Jobs {
    /// The jobs an earlier agent recorded. One it left running was cut
    /// short when it stopped: it is completed here, as aborted by a
    /// shutdown (`WU_E_SERVICE_STOP`); history says what each update did.
    pub fn restore(recorded: Vec<JobInfo>) -> (Jobs, Vec<JobInfo>) {
        let mut interrupted = Vec::new();
        let jobs = recorded
            .into_iter()
            .map(|mut info| {
                if info.state != JobState::Completed {
                    info.state = JobState::Completed;
                    info.finished = Some(Timestamp::now());
                    info.result = Some(OperationResult {
                        result_code: openwua_model::enums::OperationResultCode::Aborted,
                        hresult: openwua_model::hresult::WU_E_SERVICE_STOP,
                        reboot_required: false,
                        updates: Vec::new(),
                    });
                    interrupted.push(info.clone());
                }
                let (sender, _) = watch::channel(info);
                Arc::new(Job {
                    info: sender,
                    abort: AtomicBool::new(false),
                })
            })
            .collect();
        (
            Jobs {
                jobs: Mutex::new(jobs),
            },
            interrupted,
        )
    }

    /// The jobs not completed yet.
    pub fn unfinished(&self) -> Vec<Arc<Job>> {
        let jobs = lock(&self.jobs);
        jobs.iter()
            .filter(|job| job.info.borrow().state != JobState::Completed)
            .cloned()
            .collect()
    }

    /// Registers a new running job.
    pub fn start(&self, new: NewJob) -> Arc<Job> {
        let (info, _) = watch::channel(JobInfo {
            job_id: Uuid::new_v4(),
            kind: new.kind,
            state: JobState::Running,
            update_ids: new.update_ids,
            caller_uid: new.caller_uid,
            client_application_id: new.client_application_id,
            started: Timestamp::now(),
            finished: None,
            download_progress: None,
            installation_progress: None,
            result: None,
        });
        let job = Arc::new(Job {
            info,
            abort: AtomicBool::new(false),
        });
        let mut jobs = lock(&self.jobs);
        jobs.push(Arc::clone(&job));
        // Forget the oldest finished jobs beyond the limit.
        let finished = jobs
            .iter()
            .filter(|job| job.info.borrow().state == JobState::Completed)
            .count();
        if finished > FINISHED_KEPT {
            let mut excess = finished - FINISHED_KEPT;
            jobs.retain(|job| {
                let drop = excess > 0 && job.info.borrow().state == JobState::Completed;
                excess -= usize::from(drop);
                !drop
            });
        }
        job
    }

    /// A job by ID.
    pub fn get(&self, job_id: Uuid) -> Option<Arc<Job>> {
        let jobs = lock(&self.jobs);
        jobs.iter()
            .find(|job| job.info.borrow().job_id == job_id)
            .cloned()
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        let jobs = lock(&self.jobs);
        jobs.iter().map(|job| job.info()).collect()
    }
}
