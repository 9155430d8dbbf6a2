//! The `command` handler's answer channel: fd 3 of the installer, one JSON
//! question line out, one plain answer line back, end of file on abort
//! (`docs/handlers.md`).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use openwua_model::prompt::QuestionKind;
use serde::Deserialize;
use uuid::Uuid;

use super::{AbortFlag, Answer, Prompter, QuestionSpec};

/// How often a waiting reader looks whether the run is over.
const READ_TICK: Duration = Duration::from_millis(100);

/// The longest question line read; more is a broken installer.
const MAX_LINE: usize = 64 * 1024;

/// One question line as an installer writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallerQuestion {
    text: String,
    #[serde(default)]
    kind: Option<QuestionKind>,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    default: Option<String>,
}

/// Serves one installer's questions on a thread until the installer
/// closes its end or [`AnswerChannel::finish`] is called.
pub(crate) struct AnswerChannel {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AnswerChannel {
    /// Starts serving `ours` (the installer has the other end as fd 3);
    /// notes go to `log`; an abort sets `aborted` and closes the channel.
    pub(crate) fn start(
        ours: UnixStream,
        prompter: Prompter,
        update_id: Uuid,
        log: std::fs::File,
        aborted: AbortFlag,
    ) -> io::Result<AnswerChannel> {
        ours.set_read_timeout(Some(READ_TICK))?;
        let done = Arc::new(AtomicBool::new(false));
        let server = Server {
            stream: ours,
            asker: Asker::new(prompter, update_id, log, "", aborted, done.clone()),
        };
        let thread = std::thread::Builder::new()
            .name("prompt-installer".into())
            .spawn(move || server.run())?;
        Ok(AnswerChannel {
            done,
            thread: Some(thread),
        })
    }

    /// Stops serving (a question still waiting is given up) and waits for
    /// the thread.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AnswerChannel {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Server {
    stream: UnixStream,
    asker: Asker,
}

impl Server {
    fn run(mut self) {
        let reader = match self.stream.try_clone() {
            Ok(reader) => reader,
            Err(error) => {
                self.asker.note(&format!("fd 3 could not be read: {error}"));
                return;
            }
        };
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            if self.asker.done() {
                return;
            }
            match reader.read_until(b'\n', &mut line) {
                // End of file: the installer closed fd 3.
                Ok(0) => return,
                Ok(_) if line.ends_with(b"\n") => {}
                // A last line without a newline, then end of file.
                Ok(_) => {}
                Err(error) if read_again(&error) => {
                    // What was read so far stays in `line`.
                    if line.len() > MAX_LINE {
                        self.asker
                            .note("a question on fd 3 was longer than 64 KiB: fd 3 is closed");
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
            let question: InstallerQuestion = match serde_json::from_slice(&line) {
                Ok(question) => question,
                Err(error) => {
                    // Closing says "no answers here"; the installer decides.
                    self.asker.note(&format!(
                        "a question on fd 3 was not a JSON question line ({error}): fd 3 is closed"
                    ));
                    let _ = self.stream.shutdown(std::net::Shutdown::Both);
                    return;
                }
            };
            line.clear();
            if !self.answer(question) {
                return;
            }
        }
    }

    /// Asks and writes the answer back; false when the channel is closed.
    fn answer(&mut self, question: InstallerQuestion) -> bool {
        let spec = QuestionSpec {
            kind: question.kind.unwrap_or(QuestionKind::Text),
            text: question.text,
            choices: question.choices,
            default: question.default,
            source: "installer".into(),
        };
        match self.asker.ask(spec) {
            Answer::Given(value) | Answer::Defaulted { value, .. } => {
                let mut reply = value.into_bytes();
                reply.push(b'\n');
                self.stream.write_all(&reply).is_ok()
            }
            Answer::Abort { .. } => {
                self.asker.abort();
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                false
            }
        }
    }
}

/// What the two answer servers (fd 3 here, debconf's socket) share: the
/// run's questions go to the prompter until the run is over, each is
/// logged with its answer, and an abort is flagged for the handler.
pub(crate) struct Asker {
    prompter: Prompter,
    update_id: Uuid,
    log: std::fs::File,
    /// Before each log line of this server's questions (`"debconf "`).
    label: &'static str,
    aborted: AbortFlag,
    done: Arc<AtomicBool>,
}

impl Asker {
    pub(crate) fn new(
        prompter: Prompter,
        update_id: Uuid,
        log: std::fs::File,
        label: &'static str,
        aborted: AbortFlag,
        done: Arc<AtomicBool>,
    ) -> Asker {
        Asker {
            prompter,
            update_id,
            log,
            label,
            aborted,
            done,
        }
    }

    /// Whether the run is over and the server should stop.
    pub(crate) fn done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Asks `spec` until it is answered or the run is over, and logs it.
    pub(crate) fn ask(&mut self, spec: QuestionSpec) -> Answer {
        let (text, kind) = (spec.text.clone(), spec.kind);
        let done = self.done.clone();
        let answer = self
            .prompter
            .ask_while(self.update_id, spec, &|| !done.load(Ordering::SeqCst));
        self.note(&format!("{}{}", self.label, describe(&text, kind, &answer)));
        answer
    }

    /// Tells the handler the run was aborted for want of an answer.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }

    pub(crate) fn note(&mut self, text: &str) {
        let _ = writeln!(self.log, "openwua: {text}");
    }
}

/// A read that only timed out (the tick to look whether the run is over)
/// or was interrupted: read again.
pub(crate) fn read_again(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// The log line for one question: never a password.
fn describe(text: &str, kind: QuestionKind, answer: &Answer) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    let shown = |value: &str| {
        if kind == QuestionKind::Password {
            "(hidden)".to_owned()
        } else {
            format!("{value:?}")
        }
    };
    match answer {
        Answer::Given(value) => format!("asked {first_line:?}: answered {}", shown(value)),
        Answer::Defaulted { value, why } => {
            format!(
                "asked {first_line:?}: default {} used ({why})",
                shown(value)
            )
        }
        Answer::Abort { why } => format!("asked {first_line:?}: no answer, aborting ({why})"),
    }
}
