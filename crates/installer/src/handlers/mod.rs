//! Installation handlers: what actually installs or uninstalls an update.
//!
//! The install engine stages an update's content files and calls [`run`]
//! with a [`HandlerContext`]; the catalog's [`Handler`] picks one of three
//! ways: a `command` ([`command`]), `dpkg` ([`dpkg`]) or placed `files`
//! ([`files`]). Every run ends in a [`HandlerOutcome`] with WUA's code and a
//! one-sentence detail; nothing here panics on what programs or the file
//! system do. Behaviour and codes: `docs/handlers.md`.
//!
//! With a [`Prompter`] in the context (an interactive install), programs
//! run on a pseudo-terminal the agent relays, and can ask questions (fd 3
//! for `command`, debconf's passthrough socket for `dpkg`):
//! `docs/prompts.md`.

pub mod apt;
mod command;
mod dpkg;
mod files;
mod orphans;

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use openwua_catalog::revision::Handler;
use openwua_model::enums::UpdateOperation;
use openwua_model::hresult::{HResult, S_OK, WU_E_UH_INSTALLERFAILURE};
use uuid::Uuid;

use crate::prompts::{AbortFlag, Prompter, Terminal};
pub use apt::AptSettings;
pub use orphans::stop_orphaned_group;

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
    /// Where interactive runs get their private (0700) directory for
    /// debconf's passthrough socket.
    pub prompt_dir: PathBuf,
}

impl Default for DpkgSettings {
    fn default() -> Self {
        DpkgSettings {
            program: PathBuf::from("dpkg"),
            admindir: PathBuf::from("/var/lib/dpkg"),
            instdir: None,
            extra_args: Vec::new(),
            reboot_required_file: PathBuf::from("/run/reboot-required"),
            prompt_dir: PathBuf::from(DEFAULT_PROMPT_DIR),
        }
    }
}

/// The system agent's [`DpkgSettings::prompt_dir`].
pub const DEFAULT_PROMPT_DIR: &str = "/run/openwua/prompts";

/// Everything one handler run needs.
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
    /// How apt is run (the `apt` handler).
    pub apt: &'a AptSettings,
    /// `ForceQuiet`: no interaction at all.
    pub quiet: bool,
    /// `RequestAbort`: set from another thread to stop the run.
    pub abort: &'a AtomicBool,
    /// How long an aborted program may take to stop before it is killed.
    pub grace: Duration,
    /// The connection that answers this run's questions, when the install
    /// is interactive (the engine decides); None: no terminal, stdin
    /// `/dev/null`, dpkg non-interactive. Ignored when `quiet`.
    pub prompter: Option<&'a Prompter>,
    /// Where a running program's process group is recorded, so that an
    /// agent started after this one died stops what is left of it
    /// ([`stop_orphaned_group`]); None: not recorded.
    pub group_record: Option<&'a Path>,
    /// Told how far this update's run is, in percent, as the handler
    /// learns it (the `apt` handler, from apt's `pmstatus:` lines); None:
    /// nobody listens. The other handlers say nothing until they end.
    pub progress: Option<&'a (dyn Fn(u8) + Sync)>,
}

impl HandlerContext<'_> {
    /// The prompter, unless the run must be quiet.
    fn interactive(&self) -> Option<&Prompter> {
        self.prompter.filter(|_| !self.quiet)
    }
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
        Handler::Apt { .. } => apt::run(context),
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
    /// More descriptors it inherits (apt's status pipe).
    fds: Vec<FdMapping>,
}

/// How a program ended.
enum Ended {
    /// It exited (or was killed by a signal of its own).
    Exited(ExitStatus),
    /// It outlived its timeout and was killed.
    TimedOut,
    /// The abort flag was set and it was stopped.
    Aborted,
    /// A question got no answer (or the client went away) and it was
    /// stopped.
    Unanswered,
    /// It could not be run; the outcome says why.
    NotRun(HandlerOutcome),
}

/// What an interactive run adds to a program: the pseudo-terminal it runs
/// on, more descriptors (fd 3), and the flag a question's abort sets.
struct Interaction {
    prompter: Prompter,
    terminal: Terminal,
    fds: Vec<FdMapping>,
    aborted: AbortFlag,
}

impl Interaction {
    /// A terminal relayed to `prompter`, its output appended to the log.
    fn start(
        context: &HandlerContext<'_>,
        prompter: &Prompter,
        name: &str,
    ) -> Result<Interaction, HandlerOutcome> {
        let terminal = append_log(context.log_path).and_then(|log| prompter.terminal(log));
        match terminal {
            Ok(terminal) => Ok(Interaction {
                prompter: prompter.clone(),
                terminal,
                fds: Vec::new(),
                aborted: Arc::new(AtomicBool::new(false)),
            }),
            Err(error) => Err(HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!("{name} was not started: no terminal for its questions: {error}"),
            )),
        }
    }

    /// A question ended in an abort, or the client went away.
    fn abandoned(&self) -> bool {
        self.aborted.load(Ordering::SeqCst) || self.prompter.is_gone()
    }

    /// Why, in words.
    fn why(&self) -> &'static str {
        if self.prompter.is_gone() {
            "the client answering its questions went away"
        } else {
            "a question got no answer and has no default"
        }
    }

    /// Like [`unfinished`], for an interactive run: a program stopped (or
    /// killed by its hang-up), or that failed, after its questions were
    /// abandoned is aborted — the abandonment is why; one that succeeded
    /// anyway keeps its success.
    fn verdict(
        &self,
        context: &HandlerContext<'_>,
        name: &str,
        ended: Ended,
    ) -> Result<ExitStatus, HandlerOutcome> {
        let stopped = match &ended {
            Ended::Unanswered => Some(String::new()),
            Ended::Exited(status) if !status.success() && self.abandoned() => {
                Some(format!("; it {}", describe_status(*status)))
            }
            _ => None,
        };
        if let Some(how) = stopped {
            return Err(HandlerOutcome::aborted(format!(
                "{name} was stopped because {}{how} (see {})",
                self.why(),
                context.log_path.display()
            )));
        }
        unfinished(context, name, ended)
    }
}

/// The log, opened for appending (0640 when it is created).
fn append_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Runs `program` in its own process group with a clean environment, its
/// output appended to the log, until it exits, times out or is aborted.
/// With an interaction, it runs on the interaction's terminal instead, as
/// the leader of a session of its own.
fn run_program(
    context: &HandlerContext<'_>,
    program: Program<'_>,
    interaction: Option<&mut Interaction>,
) -> Ended {
    if context.abort.load(Ordering::SeqCst) {
        return Ended::Aborted;
    }
    let log = match open_log(context, &program) {
        Ok(log) => log,
        Err(outcome) => return Ended::NotRun(outcome),
    };
    let not_started = |error: std::io::Error| {
        Ended::NotRun(HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!(
                "{} was not started: its output could not be set up: {error}",
                program.name
            ),
        ))
    };
    let mut command;
    let interaction = match interaction {
        Some(interaction) => {
            let [stdin, stdout, stderr]: [OwnedFd; 3] = match interaction.terminal.take_stdio() {
                Ok(fds) => fds,
                Err(error) => return not_started(error),
            };
            // setsid --ctty: a new session whose controlling terminal is
            // stdin (the pty). Not a group leader here, setsid does not
            // fork, so the program's pid is its session and group: killpg
            // still reaches everything it started.
            command = Command::new("setsid");
            command
                .arg("--ctty")
                .arg(program.path)
                .args(program.args)
                .stdin(stdin)
                .stdout(stdout)
                .stderr(stderr);
            let mut fds = std::mem::take(&mut interaction.fds);
            fds.extend(program.fds);
            if command.fd_mappings(fds).is_err() {
                return not_started(std::io::Error::other("two descriptors for one number"));
            }
            Some(&*interaction)
        }
        None => {
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
            command = Command::new(program.path);
            command
                .args(program.args)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                // Its own group, so a timeout or abort reaches everything it started.
                .process_group(0);
            if command.fd_mappings(program.fds).is_err() {
                return not_started(std::io::Error::other("two descriptors for one number"));
            }
            None
        }
    };
    command
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        .env("HOME", context.work_dir)
        .env("OPENWUA_UPDATE_ID", context.update_id.to_string())
        .env("OPENWUA_OPERATION", operation_word(context.operation))
        .env("OPENWUA_CONTENT_DIR", context.content_dir)
        .envs(program.env.iter().copied())
        .envs(context.environment.iter().map(|(k, v)| (k, v)))
        .current_dir(context.work_dir);
    if interaction.is_some() {
        command.env("TERM", "xterm-256color");
    }
    let started = Instant::now();
    let spawned = command.spawn();
    // The parent's copies of the terminal's slave and of fd 3 close here,
    // so the relay and the answer channel see the end when the program's
    // copies close.
    drop(command);
    drop(log);
    let mut child = match spawned {
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
    // A killed agent's successor stops what is left of the group it
    // records (systemd's cgroup does the same for the unit); an installer
    // is not refused when the record cannot be written.
    let _recorded = context
        .group_record
        .and_then(|path| orphans::RecordedGroup::write(path, child.id()).ok());
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
    // When a question was aborted or the client went away: the program
    // gets `grace` to end on its own (its answer channel is closed, its
    // terminal hung up), then its group is stopped, since a program may
    // survive the hang-up (SIGHUP ignored, or a read that fails and goes
    // on).
    let mut unanswered_since: Option<Instant> = None;
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
                if let Some(interaction) = interaction
                    && interaction.abandoned()
                {
                    let since = *unanswered_since.get_or_insert_with(|| {
                        interaction.terminal.hang_up();
                        now
                    });
                    if now >= since + context.grace {
                        stop_group(group, &receiver, context.grace.min(TIMEOUT_GRACE));
                        return Ended::Unanswered;
                    }
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
    let mut log = append_log(context.log_path).map_err(fail)?;
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
        Ended::Unanswered => Err(HandlerOutcome::aborted(format!(
            "{name} was stopped because a question got no answer"
        ))),
        Ended::NotRun(outcome) => Err(outcome),
    }
}
