//! Interactive installs against real programs and a real debconf: the
//! questions reach the test's [`PromptStream`] (standing in for the
//! connection), answers and typed input come back, and timeouts and
//! disconnects end installers promptly (`docs/prompts.md`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::dpkg::DebTree;
use common::handler_fixture::Fixture;
use common::is_root;
use openwua_catalog::revision::{ExitCodeMap, Handler};
use openwua_installer::handlers::{HandlerOutcome, Outcome};
use openwua_installer::prompts::{PromptStream, Prompter};
use openwua_model::hresult::{WU_E_UH_INSTALLERFAILURE, WU_E_UH_OPERATIONCANCELLED};
use openwua_model::prompt::{PromptEvent, Question, QuestionKind};
use openwua_testkit::skip;

fn command(program: &str) -> Handler {
    Handler::Command {
        program: program.into(),
        args: Vec::new(),
        uninstall: None,
        exit_codes: ExitCodeMap::default(),
        timeout_seconds: Some(60),
    }
}

/// What the test's "client" saw.
#[derive(Default)]
struct Transcript {
    questions: Vec<Question>,
    output: Vec<u8>,
    closed: bool,
}

impl Transcript {
    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// The connection's side on a thread: every event goes to `client` with
/// the stream (set it to None to disconnect) and the transcript so far.
fn client(
    mut stream: PromptStream,
    mut client: impl FnMut(&mut Option<PromptStream>, &PromptEvent, &Transcript) + Send + 'static,
) -> (Arc<Mutex<Transcript>>, std::thread::JoinHandle<()>) {
    let transcript = Arc::new(Mutex::new(Transcript::default()));
    let seen = transcript.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        loop {
            let Some(event) = runtime.block_on(stream.next()) else {
                return;
            };
            {
                let mut seen = seen.lock().unwrap();
                match &event {
                    PromptEvent::Question(question) => seen.questions.push(question.clone()),
                    PromptEvent::TerminalOutput(bytes) => seen.output.extend_from_slice(bytes),
                    PromptEvent::TerminalClosed => seen.closed = true,
                }
            }
            let mut slot = Some(stream);
            {
                let seen = seen.lock().unwrap();
                client(&mut slot, &event, &seen);
            }
            match slot {
                Some(kept) => stream = kept,
                // Dropped: the disconnect. Nothing more to read.
                None => return,
            }
        }
    });
    (transcript, thread)
}

/// Installs with `handler`, the questions going to `client` (see
/// [`client`]) with `timeout` to answer each; the outcome, and what the
/// client saw.
fn converse(
    fixture: &Fixture,
    handler: &Handler,
    timeout: Duration,
    client_fn: impl FnMut(&mut Option<PromptStream>, &PromptEvent, &Transcript) + Send + 'static,
) -> (HandlerOutcome, Transcript) {
    let (prompter, stream) = Prompter::new(timeout);
    let (transcript, thread) = client(stream, client_fn);
    let outcome = fixture.install(handler, Some(&prompter));
    // The last prompter gone ends the client's stream.
    drop(prompter);
    thread.join().unwrap();
    let transcript = std::mem::take(&mut *transcript.lock().unwrap());
    (outcome, transcript)
}

/// A client that answers every question with `answer`.
fn answering(
    answer: &'static str,
) -> impl FnMut(&mut Option<PromptStream>, &PromptEvent, &Transcript) + Send + 'static {
    move |stream, event, _| {
        if let (Some(stream), PromptEvent::Question(q)) = (stream.as_ref(), event) {
            stream.answer(&q.id, Some(answer.into())).unwrap();
        }
    }
}

/// A client that never answers.
fn silent(_: &mut Option<PromptStream>, _: &PromptEvent, _: &Transcript) {}

fn assert_succeeded(fixture: &Fixture, outcome: &HandlerOutcome) {
    assert_eq!(
        outcome.outcome,
        Outcome::Succeeded,
        "{outcome:?}\n{}",
        fixture.log()
    );
}

/// The installer ended promptly, not after its own sleep.
fn assert_prompt(started: Instant) {
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// (a) A command installer asks a choice question on fd 3 and gets the
/// answer back as a line.
#[test]
fn a_command_installer_asks_on_fd_3_and_gets_the_answer() {
    let fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"[ "$OPENWUA_PROMPT_FD" = 3 ] || exit 10
printf '%s\n' '{"text":"Which edition?","kind":"choice","choices":["home","pro"],"default":"home"}' >&3
IFS= read -r answer <&3 || exit 11
printf '%s' "$answer" > "$OPENWUA_SANDBOX/answer""#,
    );
    let (outcome, transcript) = converse(
        &fixture,
        &command("install.sh"),
        Duration::from_secs(60),
        answering("pro"),
    );
    assert_succeeded(&fixture, &outcome);
    assert_eq!(fixture.sandbox_file("answer").as_deref(), Some("pro"));
    let q = &transcript.questions[0];
    assert_eq!(
        (q.id.as_str(), q.kind, q.source.as_str(), q.timeout_seconds),
        ("q1", QuestionKind::Choice, "installer", 60)
    );
    assert_eq!(q.choices, ["home", "pro"]);
    assert_eq!(q.default.as_deref(), Some("home"));
    assert!(transcript.closed, "the terminal's end is announced");
    assert!(
        fixture.log().contains(r#"answered "pro""#),
        "{}",
        fixture.log()
    );
}

/// (b) An installer that just reads its terminal: the prompt arrives as
/// terminal output, the typed answer as terminal input.
#[test]
fn an_installer_reading_its_terminal_gets_what_the_client_types() {
    let fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"[ -t 0 ] || exit 10
tty > "$OPENWUA_SANDBOX/tty"
printf 'Your name? '
IFS= read -r name || exit 11
printf 'hello %s' "$name" > "$OPENWUA_SANDBOX/name"
echo done"#,
    );
    let mut typed = false;
    let (outcome, transcript) = converse(
        &fixture,
        &command("install.sh"),
        Duration::from_secs(60),
        move |stream, _, seen| {
            if !typed && seen.output().contains("Your name? ") {
                typed = true;
                if let Some(stream) = stream.as_ref() {
                    stream.terminal_resize(40, 120);
                    stream.terminal_input(b"world\n".to_vec());
                }
            }
        },
    );
    assert_succeeded(&fixture, &outcome);
    assert_eq!(fixture.sandbox_file("name").as_deref(), Some("hello world"));
    assert!(
        fixture
            .sandbox_file("tty")
            .unwrap_or_default()
            .starts_with("/dev/pts/"),
        "the installer's terminal is a pty of the agent's"
    );
    let output = transcript.output();
    assert!(output.contains("done"), "{output:?}");
    // The pty does not echo: the client's terminal already showed the line.
    assert!(!output.contains("world"), "typed text echoed: {output:?}");
    // The terminal's output is in the update's log too.
    assert!(fixture.log().contains("Your name? "), "{}", fixture.log());
}

/// (d) Nobody answers: after the timeout the default is the answer.
#[test]
fn an_unanswered_question_takes_its_default_after_the_timeout() {
    let fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"printf '%s\n' '{"text":"Continue?","kind":"boolean","default":"true"}' >&3
IFS= read -r answer <&3 || exit 11
printf '%s' "$answer" > "$OPENWUA_SANDBOX/answer""#,
    );
    let started = Instant::now();
    let (outcome, _) = converse(
        &fixture,
        &command("install.sh"),
        Duration::from_secs(1),
        silent,
    );
    assert_succeeded(&fixture, &outcome);
    assert_eq!(fixture.sandbox_file("answer").as_deref(), Some("true"));
    assert_prompt(started);
    assert!(
        fixture.log().contains("no answer within 1 s"),
        "{}",
        fixture.log()
    );
}

/// No answer and no default: the answer channel closes, the terminal is
/// hung up, and an installer that ignores both is stopped after the grace
/// period; the outcome is an abort.
#[test]
fn a_question_without_answer_or_default_stops_the_installer() {
    let fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"trap '' HUP
printf '%s\n' '{"text":"Licence key?"}' >&3
read -r answer <&3
sleep 30"#,
    );
    let started = Instant::now();
    let (outcome, _) = converse(
        &fixture,
        &command("install.sh"),
        Duration::from_millis(500),
        silent,
    );
    assert_eq!(outcome.outcome, Outcome::Aborted, "{outcome:?}");
    assert_eq!(outcome.hresult, WU_E_UH_OPERATIONCANCELLED);
    assert!(outcome.detail.contains("no answer"), "{}", outcome.detail);
    assert_prompt(started);
}

/// (e) The client goes away in the middle of a question: the installer
/// ends at once (its terminal is hung up, its question aborted), and the
/// outcome says so.
#[test]
fn a_client_going_away_mid_question_ends_the_installer_promptly() {
    let fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"printf '%s\n' '{"text":"Licence key?","kind":"password"}' >&3
IFS= read -r answer <&3 || exit 11
sleep 30"#,
    );
    let started = Instant::now();
    let (outcome, _) = converse(
        &fixture,
        &command("install.sh"),
        Duration::from_secs(600),
        |stream, event, _| {
            if matches!(event, PromptEvent::Question(_)) {
                *stream = None;
            }
        },
    );
    assert_prompt(started);
    match outcome.outcome {
        Outcome::Aborted => {
            assert!(outcome.detail.contains("went away"), "{}", outcome.detail)
        }
        Outcome::Failed => assert_eq!(outcome.hresult, WU_E_UH_INSTALLERFAILURE),
        _ => panic!("{outcome:?}"),
    }
    assert!(fixture.sandbox_file("answer").is_none());
}

/// (e) An installer that survives its terminal's hang-up (it ignores
/// SIGHUP) is still stopped once the client is gone, after the grace.
#[test]
fn a_client_going_away_stops_an_installer_that_ignores_the_hang_up() {
    let fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"trap '' HUP
printf 'Press enter: '
read -r line
sleep 30"#,
    );
    let started = Instant::now();
    let (outcome, _) = converse(
        &fixture,
        &command("install.sh"),
        Duration::from_secs(600),
        |stream, _, seen| {
            if seen.output().contains("Press enter") {
                *stream = None;
            }
        },
    );
    assert_prompt(started);
    assert_eq!(
        outcome.outcome,
        Outcome::Aborted,
        "{outcome:?}\n{}",
        fixture.log()
    );
    assert!(outcome.detail.contains("went away"), "{}", outcome.detail);
}

/// (e) The same for an installer waiting on its terminal: the hang-up
/// ends it.
#[test]
fn a_client_going_away_hangs_up_a_reading_installer() {
    let fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"printf 'Press enter: '
read -r line
sleep 30"#,
    );
    let started = Instant::now();
    let (outcome, _) = converse(
        &fixture,
        &command("install.sh"),
        Duration::from_secs(600),
        |stream, _, seen| {
            if seen.output().contains("Press enter") {
                *stream = None;
            }
        },
    );
    assert_prompt(started);
    assert_eq!(
        outcome.outcome,
        Outcome::Aborted,
        "{outcome:?}\n{}",
        fixture.log()
    );
    assert!(outcome.detail.contains("went away"), "{}", outcome.detail);
}

/// ForceQuiet wins over a prompter; without one nothing changes: no
/// terminal, no fd 3.
#[test]
fn quiet_and_prompterless_runs_get_no_terminal_and_no_fd_3() {
    let mut fixture = Fixture::interactive();
    fixture.bash_script(
        "install.sh",
        r#"[ -z "$OPENWUA_PROMPT_FD" ] || exit 10
[ -t 0 ] && exit 11
[ -e /proc/self/fd/3 ] && exit 12
exit 0"#,
    );
    assert_eq!(
        fixture.install(&command("install.sh"), None).outcome,
        Outcome::Succeeded,
        "{}",
        fixture.log()
    );
    fixture.quiet = true;
    let (prompter, _stream) = Prompter::new(Duration::from_secs(5));
    assert_eq!(
        fixture
            .install(&command("install.sh"), Some(&prompter))
            .outcome,
        Outcome::Succeeded,
        "{}",
        fixture.log()
    );
}

// ---- debconf ------------------------------------------------------------

/// Removes a package's questions from the machine's debconf database.
struct DebconfPurge(String);

impl Drop for DebconfPurge {
    fn drop(&mut self) {
        let child = Command::new("debconf-communicate")
            .arg(&self.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write as _;
                let _ = stdin.write_all(b"PURGE\n");
            }
            let _ = child.wait();
        }
    }
}

/// (c) A real .deb whose maintainer scripts ask through debconf: the
/// question arrives structured, the answer reaches the postinst.
#[test]
fn a_debconf_question_arrives_structured_and_its_answer_reaches_the_postinst() {
    const TEST: &str = "a_debconf_question_arrives_structured_and_its_answer_reaches_the_postinst";
    if !is_root() {
        skip(
            TEST,
            "needs root: maintainer scripts run with instdir / and the machine's debconf database",
        );
        return;
    }
    if !Path::new("/usr/share/debconf/confmodule").exists() {
        skip(TEST, "debconf is not installed");
        return;
    }
    // debconf's passthrough frontend converts every line with Text::Iconv
    // (Debian's libtext-iconv-perl, which debconf-i18n brings).
    let iconv = Command::new("perl").args(["-MText::Iconv", "-e1"]).status();
    if !iconv.is_ok_and(|status| status.success()) {
        skip(
            TEST,
            "debconf's passthrough frontend needs Text::Iconv (apt-get install libtext-iconv-perl)",
        );
        return;
    }
    let mut fixture = Fixture::interactive();
    let dpkg = fixture.throwaway_dpkg();
    // Maintainer scripts find debconf only in the real root.
    fixture.dpkg.instdir = None;
    fixture.dpkg.extra_args = vec![format!(
        "--log={}",
        fixture.dir.path().join("dpkg.log").display()
    )];
    let name = format!("openwua-debconf-test-{}", std::process::id());
    let _purge = DebconfPurge(name.clone());
    let answer = fixture.sandbox.join("answer");
    // No files; a select question asked by the config script; the postinst
    // writes the answer to `answer`.
    let deb = DebTree::new(fixture.dir.path(), &name)
        .file(
            "DEBIAN/templates",
            &format!(
                "Template: {name}/edition\nType: select\nChoices: home, pro\nDefault: home\n\
                 Description: Which edition?\n Pick the edition this test installs.\n"
            ),
        )
        .script(
            "config",
            &format!(
                ". /usr/share/debconf/confmodule\n\
                 db_input high {name}/edition || true\ndb_go || true"
            ),
        )
        .script(
            "postinst",
            &format!(
                ". /usr/share/debconf/confmodule\n\
                 db_get {name}/edition\nprintf '%s' \"$RET\" > {}\ndb_purge",
                answer.display()
            ),
        )
        .build();
    std::fs::rename(&deb, fixture.content.join(deb.file_name().unwrap())).unwrap();

    let (outcome, transcript) = converse(
        &fixture,
        &Handler::Dpkg { remove: vec![] },
        Duration::from_secs(60),
        answering("pro"),
    );
    assert_succeeded(&fixture, &outcome);
    assert_eq!(dpkg.status(&name), "install ok installed");
    assert_eq!(
        std::fs::read_to_string(&answer).ok().as_deref(),
        Some("pro"),
        "{}",
        fixture.log()
    );
    assert_eq!(transcript.questions.len(), 1, "{}", fixture.log());
    let q = &transcript.questions[0];
    assert_eq!(
        (q.kind, q.source.as_str()),
        (QuestionKind::Choice, "debconf")
    );
    assert_eq!(q.choices, ["home", "pro"]);
    assert_eq!(q.default.as_deref(), Some("home"));
    assert!(
        q.text.starts_with("Which edition?\n\nPick the edition"),
        "{:?}",
        q.text
    );
    // The private socket directory is gone after the run.
    let left: Vec<_> = std::fs::read_dir(&fixture.dpkg.prompt_dir)
        .map(|dir| dir.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// The descriptor numbers in an `ls /proc/PID/fd` listing, less those
/// `inherited` ones.
fn descriptors(listing: &str, inherited: &[u32]) -> Vec<u32> {
    let mut fds: Vec<u32> = listing
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .filter(|fd| !inherited.contains(fd))
        .collect();
    fds.sort_unstable();
    fds
}

/// The descriptors above 2 this test process has open without
/// close-on-exec: what it was started with (a harness's pipes), which
/// every program it runs inherits whatever the handlers do.
fn inherited_by_the_test() -> Vec<u32> {
    const O_CLOEXEC: u32 = 0o2000000;
    std::fs::read_dir("/proc/self/fdinfo")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd: u32 = entry.file_name().to_str()?.parse().ok()?;
            let info = std::fs::read_to_string(entry.path()).ok()?;
            let flags = info.lines().find_map(|line| line.strip_prefix("flags:"))?;
            let flags = u32::from_str_radix(flags.trim(), 8).ok()?;
            (fd > 2 && flags & O_CLOEXEC == 0).then_some(fd)
        })
        .collect()
}

/// An interactive installer's descendants get only what it has: its
/// terminal as 0, 1 and 2 and its answer channel as 3 (the installer's to
/// close for its children, `docs/prompts.md`); never the terminal's master
/// or another descriptor of the agent's. Installers run beside other
/// interactive installs opening terminals, so a descriptor the agent
/// opens without close-on-exec would show up in some run's listing.
#[test]
fn an_installers_descendants_inherit_only_its_terminal_and_fd_3() {
    let fixture = Fixture::interactive();
    // `sh -c '…; :'` forks for `ls`, which lists the sh: a grandchild of
    // the installer that opened nothing itself (the redirections happen
    // in the installer's child before it runs sh).
    fixture.script(
        "install.sh",
        r#"sh -c 'ls /proc/$$/fd; :' > "$OPENWUA_SANDBOX/grandchild-$$"
sh -c 'ls /proc/$$/fd; :' > "$OPENWUA_SANDBOX/closed-$$" 3>&-"#,
    );
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..10 {
                    let (outcome, _) = converse(
                        &fixture,
                        &command("install.sh"),
                        Duration::from_secs(60),
                        silent,
                    );
                    assert_succeeded(&fixture, &outcome);
                }
            });
        }
    });
    let inherited = inherited_by_the_test();
    let mut listings = 0;
    for entry in std::fs::read_dir(&fixture.sandbox).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let listing = std::fs::read_to_string(entry.path()).unwrap();
        let expected: &[u32] = if name.starts_with("closed-") {
            &[0, 1, 2]
        } else {
            &[0, 1, 2, 3]
        };
        assert_eq!(
            descriptors(&listing, &inherited),
            expected,
            "{name}: {listing}"
        );
        listings += 1;
    }
    assert_eq!(listings, 80);
}

/// A terminal's descriptors are close-on-exec from the moment they exist:
/// an installer started while another interactive install opens its
/// terminal inherits neither end of it.
#[test]
fn an_installer_started_beside_a_terminal_being_opened_inherits_none_of_it() {
    let fixture = Fixture::new();
    fixture.script(
        "install.sh",
        r#"sh -c 'ls /proc/$$/fd; :' > "$OPENWUA_SANDBOX/listing-$$""#,
    );
    let (prompter, _stream) = Prompter::new(Duration::from_secs(60));
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let log = std::fs::File::create(fixture.dir.path().join("terminal.log"));
                    drop(prompter.terminal(log.unwrap()).unwrap());
                }
            });
        }
        for _ in 0..200 {
            let outcome = fixture.install(&command("install.sh"), None);
            assert_succeeded(&fixture, &outcome);
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let inherited = inherited_by_the_test();
    for entry in std::fs::read_dir(&fixture.sandbox).unwrap() {
        let entry = entry.unwrap();
        let listing = std::fs::read_to_string(entry.path()).unwrap();
        assert_eq!(
            descriptors(&listing, &inherited),
            [0, 1, 2],
            "{:?}: {listing}",
            entry.file_name()
        );
    }
}
