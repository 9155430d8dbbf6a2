//! Answering installers' questions at the user's terminal.
//!
//! When wua's standard input and output are terminals, `wua install`,
//! `uninstall` and `update` tell the agent that this client answers. The
//! agent still decides, from what the kernel says of the caller, whether
//! anyone here may be asked (`wua context`). Questions are printed with
//! their choices and default and answered with a line; an installer that
//! just talks to a terminal gets a pseudo-terminal of the agent's, whose
//! output is copied here and to which typed lines are sent. Our own
//! terminal is never handed to the (root) installer. The relay is
//! line-based: our terminal stays in cooked mode and echoes what is typed
//! (the agent's pty does not echo); while a password question waits, that
//! echo is off.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};

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
    echo: Arc<Echo>,
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
            echo: Arc::default(),
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
                Some(question_id) => {
                    // Answered: what is typed next is seen again.
                    self.echo.show();
                    UserReply::Answer {
                        question_id,
                        answer: (!text.is_empty()).then(|| text.to_owned()),
                    }
                }
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
        // However the call ends (an error, a panic), the echo comes back.
        let _echo = EchoBack(&self.echo);
        *self.lock() = Some(Listener {
            replies: sender.clone(),
            question: None,
        });
        // Each terminal the agent opens gets our size with its first output.
        let mut terminal_sized = false;
        let mut on_event = |event: InstallEvent<'_>| match event {
            InstallEvent::Progress(job) => progress.show(job),
            InstallEvent::Question(question) => {
                if question.kind == QuestionKind::Password {
                    self.echo.hide();
                } else {
                    // A password question that timed out is not waiting now.
                    self.echo.show();
                }
                progress.give_way(|| ask(question));
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
            InstallEvent::TerminalOutput(bytes) => {
                if !terminal_sized {
                    terminal_sized = true;
                    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdout()) {
                        let _ = sender.send(UserReply::ResizeTerminal {
                            rows: size.ws_row,
                            columns: size.ws_col,
                        });
                    }
                }
                progress.give_way(|| {
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout.write_all(bytes);
                    let _ = stdout.flush();
                })
            }
            InstallEvent::AnswerRefused(why) => progress.give_way(|| println!("{why}")),
            InstallEvent::TerminalClosed => terminal_sized = false,
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
        (QuestionKind::Password, _) => write!(
            stdout,
            "Answer (not shown as you type; within {} s): ",
            question.timeout_seconds
        ),
        (_, Some(default)) => write!(
            stdout,
            "Answer (Enter for {default:?}; within {} s): ",
            question.timeout_seconds
        ),
        (_, None) => write!(stdout, "Answer (within {} s): ", question.timeout_seconds),
    };
    let _ = stdout.flush();
}

/// Echo on wua's own terminal (standard input), turned off while a
/// password question waits. `saved` holds the modes to go back to.
#[derive(Default)]
struct Echo {
    saved: Mutex<Option<Termios>>,
}

impl Echo {
    /// Stops echoing typed characters; Enter still moves to a new line
    /// (ECHONL). A terminal that refuses keeps echoing: the answer is
    /// still read.
    fn hide(self: &Arc<Self>) {
        let mut saved = self.lock();
        if saved.is_some() {
            return;
        }
        let stdin = std::io::stdin();
        let Ok(modes) = tcgetattr(&stdin) else {
            return;
        };
        watch_signals(self);
        let mut quiet = modes.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        if tcsetattr(&stdin, OptionalActions::Now, &quiet).is_ok() {
            *saved = Some(modes);
        }
    }

    /// Puts the saved modes back, if echo was turned off.
    fn show(&self) {
        if let Some(modes) = self.lock().take() {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &modes);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Termios>> {
        self.saved.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Turns the echo back on when dropped.
struct EchoBack<'a>(&'a Echo);

impl Drop for EchoBack<'_> {
    fn drop(&mut self) {
        self.0.show();
    }
}

/// From the first hidden answer on, Ctrl-C (and Ctrl-\\, SIGTERM) no
/// longer kill wua outright: a thread turns the echo back on first, then
/// exits as the signal would have (status 128 + signal). Without it, a
/// user who gives up at a password prompt is left at a shell that does
/// not echo. Returns once the handlers are in place.
fn watch_signals(echo: &Arc<Echo>) {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    // One watcher for the whole command (there is one keyboard).
    static WATCHING: AtomicBool = AtomicBool::new(false);
    if WATCHING.swap(true, Ordering::SeqCst) {
        return;
    }
    /// The next delivery of `stream`; never, for a signal we could not
    /// catch (it keeps its default action).
    async fn delivery(stream: &mut Option<Signal>) {
        match stream {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let echo = echo.clone();
    let (ready, registered) = std::sync::mpsc::channel();
    let watcher = move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = ready.send(());
            return;
        };
        let number = runtime.block_on(async {
            let mut interrupt = signal(SignalKind::interrupt()).ok();
            let mut quit = signal(SignalKind::quit()).ok();
            let mut terminate = signal(SignalKind::terminate()).ok();
            let _ = ready.send(());
            tokio::select! {
                () = delivery(&mut interrupt) => 2,
                () = delivery(&mut quit) => 3,
                () = delivery(&mut terminate) => 15,
            }
        });
        echo.show();
        // Off the "Answer" line. Not on stdout: `main` holds its lock.
        let _ = std::io::stderr().write_all(b"\n");
        std::process::exit(128 + number);
    };
    if std::thread::Builder::new()
        .name("signals".into())
        .spawn(watcher)
        .is_ok()
    {
        let _ = registered.recv();
    }
}
