//! Answering installers' questions at the user's terminal.
//!
//! When wua's standard input and output are terminals, `wua install`,
//! `uninstall` and `update` tell the agent that this client answers. The
//! agent still decides, from what the kernel says of the caller, whether
//! anyone here may be asked (`wua context`). Questions are printed with
//! their choices and default and answered with a line; an installer that
//! just talks to a terminal gets a pseudo-terminal of the agent's, whose
//! output is copied here and to which typed lines are sent. Our own
//! terminal is never handed to the (root) installer.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};

use openwua_client::interactive::{InstallEvent, UserReply, UserReplySender, user_replies};
use openwua_model::operation::JobInfo;
use openwua_model::prompt::{Question, QuestionKind};

use crate::progress::Progress;

/// Where typed lines go during one installation.
struct Listener {
    replies: UserReplySender,
    /// The question waiting for its answer, if any; otherwise lines are
    /// keystrokes for the installer's terminal.
    question: Option<String>,
}

/// The user's keyboard, read by one thread for the whole command so that
/// no line is lost between two installation calls.
#[derive(Clone)]
pub struct Keyboard {
    listener: Arc<Mutex<Option<Listener>>>,
}

impl Keyboard {
    /// The keyboard, when wua runs at a terminal (standard input and output
    /// both), so that someone can see the questions and answer them.
    pub fn at_terminal() -> Option<Keyboard> {
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            return None;
        }
        let keyboard = Keyboard {
            listener: Arc::default(),
        };
        let reader = keyboard.clone();
        // Detached: it ends with the process, or at the end of input.
        std::thread::Builder::new()
            .name("keyboard".into())
            .spawn(move || reader.read_lines())
            .ok()?;
        Some(keyboard)
    }

    /// [`Keyboard::at_terminal`], except with `--json`: output meant for
    /// a program is not interleaved with questions.
    pub fn unless_json(json: bool) -> Option<Keyboard> {
        if json { None } else { Keyboard::at_terminal() }
    }

    fn read_lines(&self) {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = line.trim_end_matches(['\n', '\r']);
            let mut listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(listener) = listener.as_mut() else {
                continue;
            };
            let reply = match listener.question.take() {
                // An empty line takes the default.
                Some(question_id) => UserReply::Answer {
                    question_id,
                    answer: (!text.is_empty()).then(|| text.to_owned()),
                },
                None => UserReply::TerminalInput(format!("{text}\n").into_bytes()),
            };
            // The installation may have just ended; the line is moot then.
            let _ = listener.replies.send(reply);
        }
    }

    /// Runs one interactive installation (or uninstallation) call: progress
    /// goes to `progress`, questions and terminal output to standard
    /// output, typed lines back to the agent.
    pub fn converse<F>(&self, progress: &mut Progress, call: F) -> anyhow::Result<JobInfo>
    where
        F: FnOnce(
            &mut dyn FnMut(InstallEvent<'_>),
            openwua_client::interactive::UserReplyReceiver,
        ) -> Result<JobInfo, openwua_client::ClientError>,
    {
        let (sender, receiver) = user_replies();
        *self.lock() = Some(Listener {
            replies: sender.clone(),
            question: None,
        });
        let mut on_event = |event: InstallEvent<'_>| match event {
            InstallEvent::Progress(job) => progress.show(job),
            InstallEvent::Question(question) => {
                progress.suspend(|| ask(question));
                if question.kind == QuestionKind::Note {
                    // A note only wants to be seen.
                    let _ = sender.send(UserReply::Answer {
                        question_id: question.id.clone(),
                        answer: None,
                    });
                } else if let Some(listener) = self.lock().as_mut() {
                    listener.question = Some(question.id.clone());
                }
            }
            InstallEvent::TerminalOutput(bytes) => progress.suspend(|| {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(bytes);
                let _ = stdout.flush();
            }),
            InstallEvent::AnswerRefused(why) => progress.suspend(|| println!("{why}")),
            InstallEvent::TerminalClosed => {}
        };
        let job = call(&mut on_event, receiver);
        *self.lock() = None;
        Ok(job?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Listener>> {
        self.listener.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Prints a question and what answering takes.
fn ask(question: &Question) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "\n{}", question.text.trim_end());
    if !question.choices.is_empty() {
        let _ = writeln!(stdout, "  Choices: {}", question.choices.join(", "));
    }
    let _ = match (question.kind, &question.default) {
        (QuestionKind::Note, _) => Ok(()),
        (QuestionKind::Password, _) => write!(stdout, "Answer (typed text is shown): "),
        (_, Some(default)) => write!(
            stdout,
            "Answer (Enter for {default:?}; within {} s): ",
            question.timeout_seconds
        ),
        (_, None) => write!(stdout, "Answer (within {} s): ", question.timeout_seconds),
    };
    let _ = stdout.flush();
}
