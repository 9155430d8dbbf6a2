//! Installation handlers: what actually installs or uninstalls an update.
//!
//! The install engine stages an update's content files and calls [`run`]
//! with a [`HandlerContext`]; the catalog's [`Handler`] picks one of three
//! ways: a `command` ([`command`]), `dpkg` ([`dpkg`]) or placed `files`
//! ([`files`]). Every run ends in a [`HandlerOutcome`] with WUA's code and a
//! one-sentence detail; nothing here panics on what programs or the file
//! system do. Behaviour and codes: `docs/handlers.md`.

mod command;
mod dpkg;
mod files;

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use openwua_catalog::revision::Handler;
use openwua_model::enums::UpdateOperation;
use openwua_model::hresult::{HResult, S_OK, WU_E_UH_INSTALLERFAILURE};
use uuid::Uuid;

/// How the `dpkg` handler runs dpkg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgSettings {
    /// The dpkg program (`dpkg`, found on the handlers' `PATH`).
    pub program: PathBuf,
    /// dpkg's database directory (`--admindir`).
    pub admindir: PathBuf,
    /// The root packages are unpacked into (`--instdir`); none for `/`.
    pub instdir: Option<PathBuf>,
    /// More arguments before the action (`--force-not-root`, `--log=…`).
    pub extra_args: Vec<String>,
    /// Debian's "a restart is needed" flag file; created or touched during a
    /// run, it makes the outcome [`Outcome::SucceededRebootRequired`].
    pub reboot_required_file: PathBuf,
}

impl Default for DpkgSettings {
    fn default() -> Self {
        DpkgSettings {
            program: PathBuf::from("dpkg"),
            admindir: PathBuf::from("/var/lib/dpkg"),
            instdir: None,
            extra_args: Vec::new(),
            reboot_required_file: PathBuf::from("/run/reboot-required"),
        }
    }
}

/// Everything one handler run needs.
#[derive(Debug)]
pub struct HandlerContext<'a> {
    /// The update being installed or uninstalled.
    pub update_id: Uuid,
    /// Installation or uninstallation.
    pub operation: UpdateOperation,
    /// The catalog's handler for the update.
    pub handler: &'a Handler,
    /// The update's content files under their file names, mode 0755.
    pub content_dir: &'a Path,
    /// An empty directory for this run: a program's cwd and `HOME`.
    pub work_dir: &'a Path,
    /// Where the output of every program run is appended.
    pub log_path: &'a Path,
    /// A per-update directory that survives until uninstall: what the
    /// `files` handler replaced.
    pub backup_dir: &'a Path,
    /// Extra environment variables for programs (`OPENWUA_SANDBOX`, …).
    pub environment: &'a [(String, String)],
    /// How dpkg is run.
    pub dpkg: &'a DpkgSettings,
    /// `ForceQuiet`: no interaction at all.
    pub quiet: bool,
    /// `RequestAbort`: set from another thread to stop the run.
    pub abort: &'a AtomicBool,
    /// How long an aborted program may take to stop before it is killed.
    pub grace: Duration,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Succeeded,
    /// Done; a restart finishes it.
    SucceededRebootRequired,
    /// Not done.
    Failed,
    /// Stopped by `RequestAbort`.
    Aborted,
}

/// The result of a run: what the install engine records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerOutcome {
    /// How it ended.
    pub outcome: Outcome,
    /// `S_OK` on success, else WUA's code for the failure.
    pub hresult: HResult,
    /// The program's exit code, when one exited.
    pub exit_code: Option<i32>,
    /// What ran and what happened, in one sentence.
    pub detail: String,
}

impl HandlerOutcome {
    /// A success (with or without a restart).
    fn success(reboot: bool, exit_code: Option<i32>, detail: String) -> Self {
        HandlerOutcome {
            outcome: if reboot {
                Outcome::SucceededRebootRequired
            } else {
                Outcome::Succeeded
            },
            hresult: S_OK,
            exit_code,
            detail,
        }
    }

    /// A failure with its code.
    fn failed(hresult: HResult, detail: impl Into<String>) -> Self {
        HandlerOutcome {
            outcome: Outcome::Failed,
            hresult,
            exit_code: None,
            detail: detail.into(),
        }
    }

    /// An abort.
    fn aborted(detail: impl Into<String>) -> Self {
        HandlerOutcome {
            outcome: Outcome::Aborted,
            hresult: openwua_model::hresult::WU_E_UH_OPERATIONCANCELLED,
            exit_code: None,
            detail: detail.into(),
        }
    }
}

/// Runs the handler for `context.operation`, blocking until it ends.
pub fn run(context: &HandlerContext<'_>) -> HandlerOutcome {
    match context.handler {
        Handler::Command { .. } => command::run(context),
        Handler::Dpkg { .. } => dpkg::run(context),
        Handler::Files { .. } => files::run(context),
    }
}

/// `install` or `uninstall`, for `OPENWUA_OPERATION` and details.
fn operation_word(operation: UpdateOperation) -> &'static str {
    match operation {
        UpdateOperation::Installation => "install",
        UpdateOperation::Uninstallation => "uninstall",
    }
}

/// The `PATH` every program gets: the system's, nothing from the agent's.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a timed-out program may take to stop after SIGTERM.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// How often a waiting run looks at the abort flag.
const ABORT_POLL: Duration = Duration::from_millis(50);

/// One program for a handler to run.
struct Program<'p> {
    /// What details call it (`install.sh`, `dpkg --install`).
    name: &'p str,
    /// The executable.
    path: &'p Path,
    /// Its arguments.
    args: &'p [String],
    /// Variables on top of the standard set.
    env: &'p [(&'p str, &'p str)],
    /// When it is stopped and fails.
    timeout: Duration,
}

/// How a program ended.
enum Ended {
    /// It exited (or was killed by a signal of its own).
    Exited(ExitStatus),
    /// It outlived its timeout and was killed.
    TimedOut,
    /// The abort flag was set and it was stopped.
    Aborted,
    /// It could not be run; the outcome says why.
    NotRun(HandlerOutcome),
}

/// Runs `program` in its own process group with a clean environment, its
/// output appended to the log, until it exits, times out or is aborted.
fn run_program(context: &HandlerContext<'_>, program: &Program<'_>) -> Ended {
    if context.abort.load(Ordering::SeqCst) {
        return Ended::Aborted;
    }
    let log = match open_log(context, program) {
        Ok(log) => log,
        Err(outcome) => return Ended::NotRun(outcome),
    };
    let (stdout, stderr) = match (log.try_clone(), log.try_clone()) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(error), _) | (_, Err(error)) => {
            return Ended::NotRun(HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!(
                    "{} was not started: the log {} could not be shared: {error}",
                    program.name,
                    context.log_path.display()
                ),
            ));
        }
    };
    let mut command = Command::new(program.path);
    command
        .args(program.args)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        .env("HOME", context.work_dir)
        .env("OPENWUA_UPDATE_ID", context.update_id.to_string())
        .env("OPENWUA_OPERATION", operation_word(context.operation))
        .env("OPENWUA_CONTENT_DIR", context.content_dir)
        .envs(program.env.iter().copied())
        .envs(context.environment.iter().map(|(k, v)| (k, v)))
        .current_dir(context.work_dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own group, so a timeout or abort reaches everything it started.
        .process_group(0);
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            return Ended::NotRun(HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!(
                    "{} ({}) could not be started: {error}",
                    program.name,
                    program.path.display()
                ),
            ));
        }
    };
    let group = Pid::from_raw(child.id() as i32);
    // A waiter thread wakes us the moment the child exits; the channel's
    // timeout is only for the abort flag and the deadline.
    let (sender, receiver) = mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("handler-wait".into())
        .spawn(move || {
            let _ = sender.send(child.wait());
        });
    if let Err(error) = waiter {
        // The child was moved into the closure that failed to start; it
        // is dropped unreaped, so stop its group before reporting.
        let _ = killpg(group, Signal::SIGKILL);
        return Ended::NotRun(HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!(
                "{} was stopped: no thread to wait for it: {error}",
                program.name
            ),
        ));
    }
    let deadline = started + program.timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            stop_group(
                group,
                &receiver,
                TIMEOUT_GRACE.min(context.grace.max(ABORT_POLL)),
            );
            return Ended::TimedOut;
        }
        match receiver.recv_timeout(ABORT_POLL.min(deadline - now)) {
            Ok(Ok(status)) => return Ended::Exited(status),
            Ok(Err(error)) => {
                let _ = killpg(group, Signal::SIGKILL);
                return Ended::NotRun(HandlerOutcome::failed(
                    WU_E_UH_INSTALLERFAILURE,
                    format!("{} could not be waited for: {error}", program.name),
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if context.abort.load(Ordering::SeqCst) {
                    stop_group(group, &receiver, context.grace);
                    return Ended::Aborted;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = killpg(group, Signal::SIGKILL);
                return Ended::NotRun(HandlerOutcome::failed(
                    WU_E_UH_INSTALLERFAILURE,
                    format!("{} could not be waited for", program.name),
                ));
            }
        }
    }
}

/// SIGTERM to the group, `grace` for the leader to exit, then SIGKILL to
/// whatever is left of the group either way (its children may ignore TERM).
fn stop_group(group: Pid, receiver: &mpsc::Receiver<std::io::Result<ExitStatus>>, grace: Duration) {
    let _ = killpg(group, Signal::SIGTERM);
    let _ = receiver.recv_timeout(grace);
    let _ = killpg(group, Signal::SIGKILL);
    // Reaped (or at least dead) before we report, unless it is stuck in the
    // kernel; then the waiter thread reaps it later.
    let _ = receiver.recv_timeout(Duration::from_secs(2));
}

/// Opens the log for appending and writes a line saying what runs.
fn open_log(context: &HandlerContext<'_>, program: &Program<'_>) -> Result<File, HandlerOutcome> {
    let fail = |error: std::io::Error| {
        HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!(
                "{} was not started: its log {} could not be opened: {error}",
                program.name,
                context.log_path.display()
            ),
        )
    };
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(context.log_path)
        .map_err(fail)?;
    let mut line = format!(
        "openwua: {} {}: {}",
        operation_word(context.operation),
        context.update_id,
        program.path.display()
    );
    for arg in program.args {
        let _ = write!(line, " {arg}");
    }
    line.push('\n');
    log.write_all(line.as_bytes()).map_err(fail)?;
    Ok(log)
}

/// "exited with 3" or "was killed by SIGSEGV".
fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("was killed by {}", signal.as_str()),
            Err(_) => format!("was killed by signal {signal}"),
        },
        (None, None) => format!("ended ({status})"),
    }
}

/// The outcome of a timed-out or aborted program, or the one that stopped
/// it from running; the exit status when it exited.
fn unfinished(
    context: &HandlerContext<'_>,
    name: &str,
    ended: Ended,
) -> Result<ExitStatus, HandlerOutcome> {
    match ended {
        Ended::Exited(status) => Ok(status),
        Ended::TimedOut => Err(HandlerOutcome::failed(
            openwua_model::hresult::WU_E_UH_INSTALLERHUNG,
            format!(
                "{name} did not finish in time and was stopped (see {})",
                context.log_path.display()
            ),
        )),
        Ended::Aborted => Err(HandlerOutcome::aborted(format!(
            "{name} was stopped because the {} was aborted",
            match context.operation {
                UpdateOperation::Installation => "installation",
                UpdateOperation::Uninstallation => "uninstallation",
            }
        ))),
        Ended::NotRun(outcome) => Err(outcome),
    }
}
