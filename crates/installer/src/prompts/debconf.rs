//! A debconf passthrough frontend server: dpkg runs with
//! `DEBIAN_FRONTEND=passthrough DEBCONF_PIPE=<socket>`, and debconf's
//! frontend in each maintainer script connects to the socket and speaks
//! the line protocol of `/usr/share/perl5/Debconf/FrontEnd/Passthrough.pm`:
//! `DATA <tag> <field> <value>`, `SET <tag> <value>`, `SUBST …`,
//! `INPUT <priority> <tag>`, `GO`, `GET <tag>`, `CAPB`, `TITLE`,
//! `SETTITLE`, `PROGRESS …`, each answered by one line `<code> [value]`.
//! The questions INPUT queues become [`Prompter::ask`] questions at GO.
//!
//! The agent owns the socket: it lives in a fresh 0700 directory under the
//! configured prompt directory, so no path a user chose is opened as root.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use openwua_model::prompt::QuestionKind;
use uuid::Uuid;

use super::installer::{Asker, read_again};
use super::{AbortFlag, Answer, Prompter, QuestionSpec};

/// How often the server looks for a connection, or whether it should stop.
const TICK: Duration = Duration::from_millis(50);

/// One dpkg run's passthrough socket and the thread serving it. Dropping
/// it stops the thread and removes the directory.
pub(crate) struct DebconfServer {
    dir: PathBuf,
    socket: PathBuf,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DebconfServer {
    /// Creates `<prompt_dir>/<update>-<n>/debconf.sock` (directories 0700,
    /// the parent checked to be the agent's own) and serves it.
    pub(crate) fn start(
        prompt_dir: &Path,
        prompter: Prompter,
        update_id: Uuid,
        log: std::fs::File,
        aborted: AbortFlag,
    ) -> io::Result<DebconfServer> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(prompt_dir)?;
        let metadata = std::fs::symlink_metadata(prompt_dir)?;
        if !metadata.is_dir()
            || metadata.uid() != nix::unistd::geteuid().as_raw()
            || metadata.mode() & 0o022 != 0
        {
            return Err(io::Error::other(format!(
                "{} is not a directory only the agent's user can write",
                prompt_dir.display()
            )));
        }
        let dir = prompt_dir.join(format!(
            "{}-{}-{}",
            update_id.simple(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        // Fails if anything is there already: the directory is ours alone.
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let socket = dir.join("debconf.sock");
        let listener = UnixListener::bind(&socket).and_then(|listener| {
            listener.set_nonblocking(true)?;
            Ok(listener)
        });
        let listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(error);
            }
        };
        let done = Arc::new(AtomicBool::new(false));
        let server = Server {
            listener,
            asker: Asker::new(prompter, update_id, log, "debconf ", aborted, done.clone()),
        };
        let thread = std::thread::Builder::new()
            .name("prompt-debconf".into())
            .spawn(move || server.run());
        match thread {
            Ok(thread) => Ok(DebconfServer {
                dir,
                socket,
                done,
                thread: Some(thread),
            }),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(error)
            }
        }
    }

    /// The socket for `DEBCONF_PIPE`.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for DebconfServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Server {
    listener: UnixListener,
    asker: Asker,
}

impl Server {
    /// Serves frontends one after the other (dpkg runs one maintainer
    /// script at a time).
    fn run(mut self) {
        while !self.asker.done() {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if !self.serve(stream) {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(TICK);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.asker.note(&format!("debconf socket failed: {error}"));
                    return;
                }
            }
        }
    }

    /// One frontend's conversation; false after an abort.
    fn serve(&mut self, stream: UnixStream) -> bool {
        let setup = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(TICK)))
            .and_then(|()| stream.try_clone());
        let (mut writer, reader) = match setup {
            Ok(reader) => (stream, reader),
            Err(_) => return true,
        };
        let mut reader = BufReader::new(reader);
        let mut session = Session::default();
        let mut line = Vec::new();
        loop {
            if self.asker.done() {
                return true;
            }
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(error) if read_again(&error) => {
                    continue;
                }
                Err(_) => return true,
            }
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\n', '\r'])
                .to_owned();
            line.clear();
            let asker = &mut self.asker;
            let reply = session.handle(&text, &mut |spec| asker.ask(spec));
            match reply {
                Some(reply) => {
                    if writer.write_all(format!("{reply}\n").as_bytes()).is_err() {
                        return true;
                    }
                }
                None => {
                    // No answer and no default: the frontend reads end of
                    // file and the maintainer script fails.
                    self.asker.abort();
                    let _ = writer.shutdown(std::net::Shutdown::Both);
                    return false;
                }
            }
        }
    }
}

/// What DATA said about one template.
#[derive(Debug, Default, Clone)]
struct Template {
    kind: String,
    description: String,
    extended: String,
    choices: String,
}

/// One frontend connection's state.
#[derive(Debug, Default)]
pub(crate) struct Session {
    templates: HashMap<String, Template>,
    values: HashMap<String, String>,
    inputs: Vec<String>,
}

impl Session {
    /// The reply to one command line, asking through `ask` at GO; None
    /// when a question was aborted.
    pub(crate) fn handle(
        &mut self,
        line: &str,
        ask: &mut dyn FnMut(QuestionSpec) -> Answer,
    ) -> Option<String> {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let ok = || Some("0".to_owned());
        match command.to_ascii_uppercase().as_str() {
            "DATA" => {
                let mut parts = rest.splitn(3, ' ');
                let (Some(tag), Some(field)) = (parts.next(), parts.next()) else {
                    return Some("20 DATA needs a tag and a field".to_owned());
                };
                let value = unescape_newlines(parts.next().unwrap_or_default());
                let template = self.templates.entry(tag.to_owned()).or_default();
                match field {
                    "type" => template.kind = value,
                    "description" => template.description = value,
                    "extended_description" => template.extended = value,
                    "choices" => template.choices = value,
                    _ => {}
                }
                ok()
            }
            "SET" => {
                let (tag, value) = rest.split_once(' ').unwrap_or((rest, ""));
                self.values.insert(tag.to_owned(), value.to_owned());
                ok()
            }
            "INPUT" => {
                if let Some((_priority, tag)) = rest.split_once(' ') {
                    self.inputs.push(tag.to_owned());
                }
                ok()
            }
            "GO" => {
                for tag in std::mem::take(&mut self.inputs) {
                    let template = self.templates.get(&tag).cloned().unwrap_or_default();
                    let Some(spec) = self.spec(&tag, &template) else {
                        continue;
                    };
                    let note = spec.kind == QuestionKind::Note;
                    match ask(spec) {
                        Answer::Given(value) | Answer::Defaulted { value, .. } => {
                            if !note {
                                self.values.insert(tag, value);
                            }
                        }
                        Answer::Abort { .. } => return None,
                    }
                }
                ok()
            }
            "GET" => match self.values.get(rest) {
                Some(value) => Some(format!("0 {value}")),
                None => Some(format!("10 {rest} doesn't exist")),
            },
            // No backup, no progress cancel: an empty capability list.
            "CAPB" => ok(),
            // TITLE, SETTITLE, SUBST (descriptions arrive substituted),
            // PROGRESS, INFO, STOP, …: nothing to answer but "done".
            _ => ok(),
        }
    }

    /// The question for INPUT of `tag`; None for what asks nothing.
    fn spec(&self, tag: &str, template: &Template) -> Option<QuestionSpec> {
        let default = self.values.get(tag).cloned();
        let mut text = template.description.clone();
        if !template.extended.is_empty() {
            text.push_str("\n\n");
            text.push_str(&template.extended);
        }
        if text.is_empty() {
            text = tag.to_owned();
        }
        let choices = split_choices(&template.choices);
        let (kind, choices, default) = match template.kind.as_str() {
            "boolean" => (QuestionKind::Boolean, Vec::new(), default),
            "select" => (QuestionKind::Choice, choices, default),
            "multiselect" => {
                text.push_str(&format!(
                    "\n\nChoose any of: {} (separated by \", \")",
                    choices.join(", ")
                ));
                (QuestionKind::Text, Vec::new(), default)
            }
            "password" => (QuestionKind::Password, Vec::new(), None),
            "note" | "text" | "error" => (QuestionKind::Note, Vec::new(), None),
            "title" => return None,
            // "string", "entropy" and anything newer: free text.
            _ => (QuestionKind::Text, Vec::new(), default),
        };
        Some(QuestionSpec {
            kind,
            text,
            choices,
            default,
            source: "debconf".into(),
        })
    }
}

/// Passthrough sends newlines in descriptions as `\n`.
fn unescape_newlines(value: &str) -> String {
    value.replace("\\n", "\n")
}

/// debconf's choice list: `a, b, c`, with `\,` for a comma inside one.
fn split_choices(choices: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = choices.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                current.push(',');
                chars.next();
            }
            ',' => {
                out.push(current.trim().to_owned());
                current.clear();
            }
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() || !out.is_empty() {
        out.push(current.trim().to_owned());
    }
    out.retain(|choice| !choice.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `lines`, answering every question with `answer`; returns the
    /// replies and the questions asked.
    fn talk(lines: &[&str], answer: Answer) -> (Vec<Option<String>>, Vec<QuestionSpec>) {
        let mut session = Session::default();
        let mut asked = Vec::new();
        let replies = lines
            .iter()
            .map(|line| {
                session.handle(line, &mut |spec| {
                    asked.push(spec);
                    answer.clone()
                })
            })
            .collect();
        (replies, asked)
    }

    #[test]
    fn a_select_question_is_asked_at_go_and_its_answer_read_back() {
        let (replies, asked) = talk(
            &[
                "CAPB",
                "TITLE Configuring demo",
                "DATA demo/edition type select",
                "DATA demo/edition description Which edition?",
                "DATA demo/edition extended_description Pick one.\\nOr not.",
                "DATA demo/edition choices home, pro\\, large, server",
                "SET demo/edition home",
                "INPUT high demo/edition",
                "GO",
                "GET demo/edition",
                "GET demo/other",
            ],
            Answer::Given("pro, large".into()),
        );
        assert_eq!(asked.len(), 1);
        let spec = &asked[0];
        assert_eq!(spec.kind, QuestionKind::Choice);
        assert_eq!(spec.text, "Which edition?\n\nPick one.\nOr not.");
        assert_eq!(spec.choices, ["home", "pro, large", "server"]);
        assert_eq!(spec.default.as_deref(), Some("home"));
        assert_eq!(spec.source, "debconf");
        assert_eq!(replies[9].as_deref(), Some("0 pro, large"));
        assert!(replies[10].as_deref().is_some_and(|r| r.starts_with("10 ")));
        assert!(replies[..9].iter().all(|r| r.as_deref() == Some("0")));
    }

    #[test]
    fn booleans_notes_and_aborts() {
        let (replies, asked) = talk(
            &[
                "DATA demo/ok type boolean",
                "DATA demo/ok description Go on?",
                "SET demo/ok true",
                "INPUT critical demo/ok",
                "DATA demo/hi type note",
                "DATA demo/hi description Hello",
                "INPUT high demo/hi",
                "GO",
                "GET demo/ok",
            ],
            Answer::Defaulted {
                value: "false".into(),
                why: "test".into(),
            },
        );
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[0].kind, QuestionKind::Boolean);
        assert_eq!(asked[0].default.as_deref(), Some("true"));
        assert_eq!(asked[1].kind, QuestionKind::Note);
        assert_eq!(replies[8].as_deref(), Some("0 false"));

        let (replies, _) = talk(
            &["DATA demo/name type string", "INPUT high demo/name", "GO"],
            Answer::Abort { why: "gone".into() },
        );
        assert_eq!(replies[2], None);
    }

    #[test]
    fn choices_split_like_debconf() {
        assert_eq!(split_choices(""), Vec::<String>::new());
        assert_eq!(split_choices("a"), ["a"]);
        assert_eq!(split_choices("a, b\\, c"), ["a", "b, c"]);
    }
}
