//! Questions from interactive installers, routed to the one connection
//! that asked for the install (`docs/prompts.md`).
//!
//! A [`Prompter`] belongs to one interactive install job; handlers ask
//! through it ([`Prompter::ask`]) and give installers a pseudo-terminal
//! ([`Prompter::terminal`], [`terminal`]) and debconf's passthrough socket
//! ([`debconf`]). The connection holds the matching [`PromptStream`]: it
//! reads the events, answers questions and types into the terminal.
//! Dropping the stream is a disconnect: every waiting question is answered
//! with an abort at once, and the terminal is hung up. Nothing here
//! waits for a person longer than the question timeout.

pub(crate) mod debconf;
pub(crate) mod installer;
pub mod terminal;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use openwua_model::hresult::{E_INVALIDARG, WU_E_UNKNOWN_ID};
use openwua_model::prompt::{PromptEvent, Question, QuestionKind};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use uuid::Uuid;

use crate::InstallerError;
pub use terminal::Terminal;
use terminal::TerminalInput;

/// Set by a question server when a question ended in an abort: the
/// handler then stops the installer.
pub(crate) type AbortFlag = Arc<AtomicBool>;

/// How often a waiting question looks whether its asker still waits.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What a handler asks; [`Prompter::ask`] adds the ID, the timeout and the
/// update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionSpec {
    /// What sort of answer it wants.
    pub kind: QuestionKind,
    /// The question.
    pub text: String,
    /// The possible answers (choice questions).
    pub choices: Vec<String>,
    /// What a timeout or "take the default" answers.
    pub default: Option<String>,
    /// `installer` or `debconf`.
    pub source: String,
}

/// How a question was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The client's answer (checked: one line; a choice is one of the
    /// choices; a boolean is `true` or `false`).
    Given(String),
    /// The question's default, and why it was used.
    Defaulted {
        /// The default.
        value: String,
        /// "no answer within 300 s", "the client chose the default".
        why: String,
    },
    /// No answer and no default, or the client went away: the installer
    /// has to stop.
    Abort {
        /// Why.
        why: String,
    },
}

/// One interactive install job's questions and terminals; cheap to clone,
/// shared by the handler threads that ask.
#[derive(Clone)]
pub struct Prompter {
    shared: Arc<Shared>,
    events: UnboundedSender<PromptEvent>,
}

/// The connection's side: the events to relay, and the way back. Dropping
/// it is a disconnect.
pub struct PromptStream {
    shared: Arc<Shared>,
    events: UnboundedReceiver<PromptEvent>,
}

struct Shared {
    timeout: Duration,
    next_id: AtomicU64,
    /// The stream is gone: nobody will answer again.
    gone: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    /// The live terminal's input, with the terminal's number.
    terminal: Option<(u64, mpsc::Sender<TerminalInput>)>,
    next_terminal: u64,
}

struct Pending {
    kind: QuestionKind,
    choices: Vec<String>,
    reply: mpsc::Sender<Reply>,
}

enum Reply {
    Given(String),
    TakeDefault,
    Gone,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicked holder left plain data behind; it is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Prompter {
    /// A prompter for one job whose questions wait up to `question_timeout`,
    /// and the stream its connection reads.
    pub fn new(question_timeout: Duration) -> (Prompter, PromptStream) {
        let (sender, receiver) = unbounded_channel();
        let shared = Arc::new(Shared {
            timeout: question_timeout,
            next_id: AtomicU64::new(1),
            gone: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        (
            Prompter {
                shared: shared.clone(),
                events: sender,
            },
            PromptStream {
                shared,
                events: receiver,
            },
        )
    }

    /// True once the stream side is gone (the client disconnected).
    pub fn is_gone(&self) -> bool {
        self.shared.gone.load(Ordering::SeqCst)
    }

    /// Asks the connection `spec` for `update_id` and blocks until it
    /// answers (or takes the default), the timeout passes (then the default
    /// if there is one, else [`Answer::Abort`]) or it goes away (then
    /// [`Answer::Abort`]: its installer's terminal hangs up too, so an
    /// answer nobody gave would only be acted on half-way).
    pub fn ask(&self, update_id: Uuid, spec: QuestionSpec) -> Answer {
        self.ask_while(update_id, spec, &|| true)
    }

    /// [`Prompter::ask`] that gives up (abort) as soon as `still_wanted`
    /// says the asker is gone.
    pub(crate) fn ask_while(
        &self,
        update_id: Uuid,
        mut spec: QuestionSpec,
        still_wanted: &dyn Fn() -> bool,
    ) -> Answer {
        if spec.kind == QuestionKind::Note && spec.default.is_none() {
            // A note needs only an acknowledgement; nobody reading it is fine.
            spec.default = Some(String::new());
        }
        if spec.kind != QuestionKind::Choice {
            spec.choices.clear();
        }
        let fallback = |why: String| match &spec.default {
            Some(value) => Answer::Defaulted {
                value: value.clone(),
                why,
            },
            None => Answer::Abort { why },
        };
        let went_away = || Answer::Abort {
            why: "the client answering the questions went away".to_owned(),
        };
        if self.is_gone() {
            return went_away();
        }
        let id = format!("q{}", self.shared.next_id.fetch_add(1, Ordering::SeqCst));
        let (reply, replies) = mpsc::channel();
        self.shared.state().pending.insert(
            id.clone(),
            Pending {
                kind: spec.kind,
                choices: spec.choices.clone(),
                reply,
            },
        );
        let question = Question {
            id: id.clone(),
            kind: spec.kind,
            text: spec.text.clone(),
            choices: spec.choices.clone(),
            default: spec.default.clone(),
            timeout_seconds: self.shared.timeout.as_secs(),
            source: spec.source.clone(),
            update_id,
        };
        // The stream may have gone between the check and the insert: its
        // drop then missed this question, so look again after sending.
        if self.events.send(PromptEvent::Question(question)).is_err() || self.is_gone() {
            self.shared.state().pending.remove(&id);
            return went_away();
        }
        let deadline = Instant::now() + self.shared.timeout;
        let answer = loop {
            let now = Instant::now();
            if now >= deadline {
                break fallback(format!(
                    "no answer within {} s",
                    self.shared.timeout.as_secs()
                ));
            }
            match replies.recv_timeout(WAIT_SLICE.min(deadline - now)) {
                Ok(Reply::Given(value)) => break Answer::Given(value),
                Ok(Reply::TakeDefault) => {
                    break Answer::Defaulted {
                        value: spec.default.clone().unwrap_or_default(),
                        why: "the client chose the default".to_owned(),
                    };
                }
                Ok(Reply::Gone) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break went_away();
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !still_wanted() => {
                    break Answer::Abort {
                        why: "the installer stopped waiting for it".to_owned(),
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };
        self.shared.state().pending.remove(&id);
        answer
    }

    /// Sends an event; false when nobody reads them any more.
    fn emit(&self, event: PromptEvent) -> bool {
        self.events.send(event).is_ok()
    }

    /// Makes `input` the live terminal's input; returns its number.
    fn attach_terminal(&self, input: mpsc::Sender<TerminalInput>) -> u64 {
        let mut state = self.shared.state();
        state.next_terminal += 1;
        let number = state.next_terminal;
        state.terminal = Some((number, input));
        number
    }

    /// Forgets terminal `number` if it is still the live one.
    fn detach_terminal(&self, number: u64) {
        let mut state = self.shared.state();
        if state.terminal.as_ref().is_some_and(|(n, _)| *n == number) {
            state.terminal = None;
        }
    }
}

impl fmt::Debug for Prompter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompter")
            .field("timeout", &self.shared.timeout)
            .field("gone", &self.is_gone())
            .finish_non_exhaustive()
    }
}

impl PromptStream {
    /// The next event; None once the job is over (every [`Prompter`] clone
    /// is gone) and every event was read.
    pub async fn next(&mut self) -> Option<PromptEvent> {
        self.events.recv().await
    }

    /// Answers question `question_id` with `value`, or with its default
    /// when None. Errors: no such question is waiting (`WU_E_UNKNOWN_ID`),
    /// or the answer does not fit the question (`E_INVALIDARG`).
    pub fn answer(&self, question_id: &str, value: Option<String>) -> Result<(), InstallerError> {
        let mut state = self.shared.state();
        let Some(pending) = state.pending.get(question_id) else {
            return Err(InstallerError::new(
                WU_E_UNKNOWN_ID,
                format!("no question {question_id:?} is waiting for an answer"),
            ));
        };
        let reply = match value {
            None => Reply::TakeDefault,
            Some(value) => Reply::Given(check_answer(pending.kind, &pending.choices, value)?),
        };
        if let Some(pending) = state.pending.remove(question_id) {
            // The asker may have just timed out; then the answer is moot.
            let _ = pending.reply.send(reply);
        }
        Ok(())
    }

    /// Types `bytes` into the installer's terminal (dropped when none is
    /// open).
    pub fn terminal_input(&self, bytes: Vec<u8>) {
        self.send_terminal(TerminalInput::Bytes(bytes));
    }

    /// Sets the installer's terminal size (the installer gets SIGWINCH).
    pub fn terminal_resize(&self, rows: u16, columns: u16) {
        self.send_terminal(TerminalInput::Resize { rows, columns });
    }

    fn send_terminal(&self, input: TerminalInput) {
        if let Some((_, sender)) = &self.shared.state().terminal {
            // A terminal that just closed takes no input; nothing to tell.
            let _ = sender.send(input);
        }
    }
}

impl Drop for PromptStream {
    fn drop(&mut self) {
        self.shared.gone.store(true, Ordering::SeqCst);
        let mut state = self.shared.state();
        for (_, pending) in state.pending.drain() {
            let _ = pending.reply.send(Reply::Gone);
        }
        // The relay sees the flag and hangs the terminal up.
        state.terminal = None;
    }
}

impl fmt::Debug for PromptStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptStream").finish_non_exhaustive()
    }
}

/// The answer as the installer gets it, or why it does not fit.
fn check_answer(
    kind: QuestionKind,
    choices: &[String],
    value: String,
) -> Result<String, InstallerError> {
    if value.contains(['\n', '\r', '\0']) {
        return Err(InstallerError::new(
            E_INVALIDARG,
            "an answer is one line: no line breaks or NUL characters",
        ));
    }
    match kind {
        QuestionKind::Choice if !choices.contains(&value) => Err(InstallerError::new(
            E_INVALIDARG,
            format!(
                "{value:?} is not one of the choices: {}",
                choices.join(", ")
            ),
        )),
        QuestionKind::Boolean => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Ok("true".to_owned()),
            "false" | "no" | "n" | "0" => Ok("false".to_owned()),
            _ => Err(InstallerError::new(
                E_INVALIDARG,
                format!("{value:?} is not an answer to a yes/no question: use true or false"),
            )),
        },
        _ => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: QuestionKind, default: Option<&str>) -> QuestionSpec {
        QuestionSpec {
            kind,
            text: "Which?".into(),
            choices: vec!["a".into(), "b".into()],
            default: default.map(str::to_owned),
            source: "installer".into(),
        }
    }

    fn question(stream: &mut PromptStream) -> Question {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match runtime.block_on(stream.next()) {
            Some(PromptEvent::Question(question)) => question,
            other => panic!("expected a question, got {other:?}"),
        }
    }

    #[test]
    fn an_answer_reaches_the_asker_and_is_checked() {
        let (prompter, mut stream) = Prompter::new(Duration::from_secs(30));
        let asker = std::thread::spawn(move || {
            prompter.ask(Uuid::nil(), spec(QuestionKind::Choice, Some("a")))
        });
        let q = question(&mut stream);
        assert_eq!((q.id.as_str(), q.timeout_seconds), ("q1", 30));
        let wrong = stream.answer(&q.id, Some("c".into())).unwrap_err();
        assert_eq!(wrong.hresult, E_INVALIDARG);
        assert!(stream.answer(&q.id, Some("a\nb".into())).is_err());
        assert_eq!(
            stream.answer("q9", None).unwrap_err().hresult,
            WU_E_UNKNOWN_ID
        );
        stream.answer(&q.id, Some("b".into())).unwrap();
        assert_eq!(asker.join().unwrap(), Answer::Given("b".into()));
        // Answered questions are gone.
        assert!(stream.answer(&q.id, None).is_err());
    }

    #[test]
    fn booleans_are_normalized_and_the_default_can_be_chosen() {
        let (prompter, mut stream) = Prompter::new(Duration::from_secs(30));
        let p = prompter.clone();
        let asker =
            std::thread::spawn(move || p.ask(Uuid::nil(), spec(QuestionKind::Boolean, None)));
        let q = question(&mut stream);
        assert!(q.choices.is_empty());
        assert!(stream.answer(&q.id, Some("maybe".into())).is_err());
        stream.answer(&q.id, Some("Yes".into())).unwrap();
        assert_eq!(asker.join().unwrap(), Answer::Given("true".into()));

        let asker = std::thread::spawn(move || {
            prompter.ask(Uuid::nil(), spec(QuestionKind::Text, Some("x")))
        });
        let q = question(&mut stream);
        assert_eq!(q.id, "q2");
        stream.answer(&q.id, None).unwrap();
        assert!(matches!(asker.join().unwrap(), Answer::Defaulted { value, .. } if value == "x"));
    }

    #[test]
    fn a_timeout_gives_the_default_or_an_abort() {
        let (prompter, _stream) = Prompter::new(Duration::from_millis(150));
        let started = Instant::now();
        assert!(matches!(
            prompter.ask(Uuid::nil(), spec(QuestionKind::Text, Some("d"))),
            Answer::Defaulted { value, why } if value == "d" && why.contains("no answer")
        ));
        assert!(matches!(
            prompter.ask(Uuid::nil(), spec(QuestionKind::Text, None)),
            Answer::Abort { .. }
        ));
        // Notes never abort.
        assert!(matches!(
            prompter.ask(Uuid::nil(), spec(QuestionKind::Note, None)),
            Answer::Defaulted { .. }
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_disconnect_aborts_waiting_and_later_questions_at_once() {
        let (prompter, mut stream) = Prompter::new(Duration::from_secs(600));
        let p = prompter.clone();
        let asker = std::thread::spawn(move || p.ask(Uuid::nil(), spec(QuestionKind::Text, None)));
        question(&mut stream);
        let started = Instant::now();
        drop(stream);
        assert!(
            matches!(asker.join().unwrap(), Answer::Abort { why } if why.contains("went away"))
        );
        // Even with a default: the installer's terminal hangs up as well,
        // so it is not told to go on.
        assert!(matches!(
            prompter.ask(Uuid::nil(), spec(QuestionKind::Choice, Some("b"))),
            Answer::Abort { why } if why.contains("went away")
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(prompter.is_gone());
    }

    #[test]
    fn the_stream_ends_when_the_job_drops_its_prompters() {
        let (prompter, mut stream) = Prompter::new(Duration::from_secs(1));
        drop(prompter);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(stream.next()), None);
    }
}
