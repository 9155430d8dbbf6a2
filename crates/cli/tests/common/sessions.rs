//! Real login sessions for the caller-context tests, made the way the
//! system makes them: `login -f` in a tmux pane (PAM, `pam_loginuid`,
//! utmp), `su`/`sudo`/`runuser` typed into it, an sshd of the test's own on
//! 127.0.0.1 with and without a terminal, the system cron daemon running a
//! user's crontab entry, and processes started with no login at all.
//!
//! Everything a test makes is its own (names carry the pid and a counter)
//! and goes away on drop, also when the test panics: throwaway users with
//! their processes, homes and crontabs, the admin group, the sudoers
//! drop-in, the tmux server and the sshd. Needs root; see
//! [`skip_without_root`].

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use openwua_agent::{Background, Config};
use serde_json::Value;

/// The quiet update: cannot request user input; writes [`TestAgent::quiet_marker`].
pub const QUIET_TOOL: &str = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000001";
/// The asking update: `can_request_user_input`; asks "Which colour?" and
/// writes the answer to [`TestAgent::asking_marker`].
pub const ASKING_TOOL: &str = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000002";
/// What the asking tool asks.
pub const QUESTION: &str = "Which colour?";
/// The terminal update: `can_request_user_input`; ignores the answer
/// channel, prints "Name of the site? " on its terminal (the agent's pty),
/// reads a line there and writes it to [`TestAgent::terminal_marker`].
pub const TERMINAL_TOOL: &str = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000003";
/// What the terminal tool prints before it reads.
pub const TERMINAL_QUESTION: &str = "Name of the site?";
/// The secret update: `can_request_user_input`; asks a password question
/// on the answer channel and writes the answer to
/// [`TestAgent::secret_marker`].
pub const SECRET_TOOL: &str = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000004";
/// What the secret tool asks.
pub const SECRET_QUESTION: &str = "Passphrase of the site?";

/// The kernel's "unset" loginuid and sessionid.
pub const UNSET: u32 = u32::MAX;

/// A PATH for everything the tests start.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------
// Small helpers

/// Root: the effective uid of this process (the owner of `/proc/self`).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

/// True (after [`openwua_testkit::skip`]) when the test cannot run here.
pub fn skip_without_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    openwua_testkit::skip(test, "needs root: it makes users, logins and an sshd");
    true
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name part no other test of any concurrent run uses: pid and counter.
pub fn unique() -> String {
    format!(
        "{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// `word` quoted for a POSIX shell.
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `words` quoted and joined into one shell command line.
pub fn shell_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|word| quote(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command`; panics with its output unless it succeeds.
pub fn must(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Prints how long `what` took (the tests' timings) and returns its value.
pub fn timed<T>(what: &str, run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = run();
    eprintln!("TIMING {what}: {} ms", started.elapsed().as_millis());
    value
}

/// Polls `probe` every 50 ms until it gives a value or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How a command typed into a pane (or run by cron) ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its exit status.
    pub status: i32,
    /// What it printed (stdout and stderr, as the terminal showed them).
    pub output: String,
}

/// Sets up what a booted Debian has and this container may not: utmp
/// (`login` records sessions only in an existing one) and sshd's
/// privilege-separation directory. `scripts/setup-test-machine` does the
/// same.
pub fn ensure_machine() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *done {
        return;
    }
    if !Path::new("/var/run/utmp").exists() {
        must(
            Command::new("install").args([
                "-m",
                "0664",
                "-o",
                "root",
                "-g",
                "utmp",
                "/dev/null",
                "/var/run/utmp",
            ]),
            "create /var/run/utmp",
        );
    }
    std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
    *done = true;
}

/// Runs `test` on a thread of its own in a mount namespace of its own whose
/// `/run` is an empty tmpfs: no utmp there (`/var/run` is `/run`), as on a
/// machine with neither logind nor utmp. Everything the test starts — the
/// agent's threads, tmux and the `login` in its pane, `wua` — inherits the
/// namespace; the rest of the suite keeps its utmp. (A bind mount of
/// `/dev/null` would be an empty utmp, not a missing one.)
pub fn without_utmp<T: Send>(test: impl FnOnce() -> T + Send) -> T {
    use nix::mount::{MsFlags, mount};
    // Made out here, where the suite's utmp belongs: in the namespace it
    // would be made in the empty /run.
    ensure_machine();
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            // A thread may take a mount namespace of its own; the test's
            // thread (the main one with --test-threads=1) keeps the suite's.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
            // Private, so the tmpfs does not propagate to the machine's /run.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make / private in the namespace");
            mount(
                Some("openwua-no-utmp"),
                "/run",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=0755"),
            )
            .expect("mount an empty /run");
            assert!(
                !Path::new("/var/run/utmp").exists(),
                "utmp is gone in the namespace"
            );
            test()
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

// ---------------------------------------------------------------------------
// Accounts

/// useradd/groupadd/userdel lock /etc/passwd; the tests of one process take
/// turns so none of them fails on the lock.
static ACCOUNTS: Mutex<()> = Mutex::new(());

fn accounts() -> std::sync::MutexGuard<'static, ()> {
    ACCOUNTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs an account tool, retrying while another process holds the lock.
fn account_tool(program: &str, args: &[&str]) -> Output {
    let _guard = accounts();
    let mut last = None;
    for _ in 0..10 {
        let output = Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("{program}: cannot run: {error}"));
        if output.status.success() {
            return output;
        }
        let busy = String::from_utf8_lossy(&output.stderr).contains("lock");
        last = Some(output);
        if !busy {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let output = last.expect("at least one attempt");
    panic!(
        "{program} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn getent(database: &str, key: &str) -> Vec<String> {
    let output = must(Command::new("getent").args([database, key]), "getent");
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .split(':')
        .map(str::to_owned)
        .collect()
}

/// A group that exists for one test: the agent's admin group.
pub struct Group {
    pub name: String,
    pub gid: u32,
}

impl Group {
    pub fn create(role: &str) -> Group {
        let name = format!("ow{role}{}", unique());
        account_tool("groupadd", &[&name]);
        let gid = getent("group", &name)[2]
            .parse()
            .expect("getent group prints a numeric gid");
        Group { name, gid }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _guard = accounts();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// A user that exists for one test: a home, bash as its shell. Dropping
/// it kills its processes and removes its crontab, home and account.
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl User {
    /// A user named `ow<role><unique>`, a member of `groups`.
    pub fn create(role: &str, groups: &[&Group]) -> User {
        let name = format!("ow{role}{}", unique());
        let mut args = vec!["-m", "-s", "/bin/bash"];
        let names: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
        let joined = names.join(",");
        if !joined.is_empty() {
            args.extend(["-G", &joined]);
        }
        args.push(&name);
        account_tool("useradd", &args);
        let entry = getent("passwd", &name);
        User {
            uid: entry[2]
                .parse()
                .expect("getent passwd prints a numeric uid"),
            gid: entry[3]
                .parse()
                .expect("getent passwd prints a numeric gid"),
            home: PathBuf::from(&entry[5]),
            name,
        }
    }

    /// Gives the user a password (for `su` typed in a pane).
    pub fn set_password(&self, password: &str) {
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd runs");
        child
            .stdin
            .take()
            .expect("chpasswd's stdin")
            .write_all(format!("{}:{password}\n", self.name).as_bytes())
            .expect("write to chpasswd");
        assert!(child.wait().expect("chpasswd ends").success(), "chpasswd");
    }

    /// The user's processes (real or effective uid), by pid.
    pub fn processes(&self) -> Vec<i32> {
        processes_where(|status| {
            status.lines().any(|line| {
                line.strip_prefix("Uid:").is_some_and(|uids| {
                    uids.split_whitespace()
                        .take(2)
                        .any(|uid| uid == self.uid.to_string())
                })
            })
        })
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("crontab")
            .args(["-r", "-u", &self.name])
            .stderr(Stdio::null())
            .output();
        // Logins, shells, ssh sessions: all of them were started for this
        // test under this throwaway uid. New ones may still be forking.
        for _ in 0..20 {
            let pids = self.processes();
            if pids.is_empty() {
                break;
            }
            kill(&pids);
            std::thread::sleep(Duration::from_millis(50));
        }
        let _guard = accounts();
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .stderr(Stdio::null())
            .output();
    }
}

/// Pids whose `/proc/<pid>/status` text satisfies `matches`.
fn processes_where(matches: impl Fn(&str) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| matches(&status))
        })
        .collect()
}

/// SIGKILL to each of `pids` (processes this test started).
pub fn kill(pids: &[i32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(i32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// The processes of `user` running `program` (by its executable's path).
pub fn processes_running(user: &User, program: &Path) -> Vec<i32> {
    user.processes()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == program)
        })
        .collect()
}

/// A sudoers drop-in: the group may run anything as anyone, no password.
/// Debian's own defaults (`use_pty` among them) stay as they are.
pub struct SudoRule {
    path: PathBuf,
}

impl SudoRule {
    pub fn for_group(group: &Group) -> SudoRule {
        // sudo skips drop-ins whose names contain a dot.
        let path = PathBuf::from(format!("/etc/sudoers.d/openwua_test_{}", group.name));
        std::fs::write(
            &path,
            format!("%{} ALL=(ALL:ALL) NOPASSWD: ALL\n", group.name),
        )
        .expect("write the sudoers drop-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440))
            .expect("chmod the sudoers drop-in");
        let rule = SudoRule { path };
        must(
            Command::new("visudo").arg("-cf").arg(&rule.path),
            "visudo -c",
        );
        rule
    }
}

impl Drop for SudoRule {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The tests' people: alice and bob, both in the throwaway admin group,
/// which may sudo without a password; bob has a password for `su bob`.
pub struct Cast {
    // Dropped in this order: users (and their processes) before the group.
    pub alice: User,
    pub bob: User,
    pub bob_password: String,
    _sudo: SudoRule,
    pub admins: Group,
}

impl Cast {
    pub fn new() -> Cast {
        ensure_machine();
        let admins = Group::create("adm");
        let alice = User::create("alice", &[&admins]);
        let bob = User::create("bob", &[&admins]);
        let bob_password = format!("Pw-{}-{}", unique(), std::process::id() * 7 + 13);
        bob.set_password(&bob_password);
        let sudo = SudoRule::for_group(&admins);
        Cast {
            alice,
            bob,
            bob_password,
            _sudo: sudo,
            admins,
        }
    }
}

// ---------------------------------------------------------------------------
// The agent and its test service

/// The agent, as root in the test process, with the test service. Its
/// state stays root-only; its socket, a copy of `wua` and the probe
/// scripts are in a directory every user can reach (mode 0755; the agent
/// makes the socket itself 0666).
pub struct TestAgent {
    agent: Background,
    pub private: tempfile::TempDir,
    pub public: tempfile::TempDir,
}

impl TestAgent {
    pub fn start(admins: &Group) -> TestAgent {
        TestAgent::start_with(admins, |_| {})
    }

    /// [`TestAgent::start`] with `adjust` applied to the agent's
    /// configuration first (an apt sandbox's dpkg settings).
    pub fn start_with(admins: &Group, adjust: impl FnOnce(&mut Config)) -> TestAgent {
        let private = tempfile::tempdir().expect("a temporary directory");
        let public = tempfile::Builder::new()
            .prefix("openwua-sessions-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::set_permissions(public.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the public directory");
        let mut config = Config::under(private.path());
        config.socket = public.path().join("agent.sock");
        config.admin_group = Some(admins.name.clone());
        config.install.abort_grace_seconds = 2;
        adjust(&mut config);
        let agent = Background::start(config).expect("the agent starts");
        let wua = public.path().join("wua");
        // Copied by another process: a copy written here keeps a write
        // descriptor open in this process, which a test thread forking at
        // that moment inherits until its exec, and running the copy then
        // fails with ETXTBSY ("Text file busy").
        must(
            Command::new("install")
                .args(["-m", "0755"])
                .arg(env!("CARGO_BIN_EXE_wua"))
                .arg(&wua),
            "install wua where every user may run it",
        );
        let this = TestAgent {
            agent,
            private,
            public,
        };
        this.register_test_service();
        this
    }

    pub fn socket(&self) -> &Path {
        self.agent.socket()
    }

    /// The copy of `wua` every user may run.
    pub fn wua_path(&self) -> PathBuf {
        self.public.path().join("wua")
    }

    /// `wua --socket <socket> args…` as one shell command line.
    pub fn wua_line(&self, args: &[&str]) -> String {
        let mut words = vec![
            self.wua_path().display().to_string(),
            "--socket".to_owned(),
            self.socket().display().to_string(),
        ];
        words.extend(args.iter().map(|arg| arg.to_string()));
        shell_line(&words)
    }

    /// `wua` as root from the test process (which has no login).
    pub fn wua(&self, args: &[&str]) -> Output {
        Command::new(self.wua_path())
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .output()
            .expect("wua runs")
    }

    /// `wua args… --json` as root; its JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.wua(&args);
        assert!(
            output.status.success(),
            "wua {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }

    /// The quiet tool's marker: exists once it has installed.
    pub fn quiet_marker(&self) -> PathBuf {
        self.private.path().join("sandbox/quiet-tool.done")
    }

    /// The asking tool's marker: the answer it got.
    pub fn asking_marker(&self) -> PathBuf {
        self.private.path().join("sandbox/asking-tool.answer")
    }

    /// The answer the asking tool recorded, if it installed.
    pub fn asking_answer(&self) -> Option<String> {
        read_marker(&self.asking_marker())
    }

    /// The terminal tool's marker: the line it read on its terminal.
    pub fn terminal_marker(&self) -> PathBuf {
        self.private.path().join("sandbox/terminal-tool.answer")
    }

    /// The terminal tool's terminal size (`stty size`: rows and columns).
    pub fn terminal_size_marker(&self) -> PathBuf {
        self.private.path().join("sandbox/terminal-tool.size")
    }

    /// The secret tool's marker: the password it was given.
    pub fn secret_marker(&self) -> PathBuf {
        self.private.path().join("sandbox/secret-tool.answer")
    }

    /// Signs the service directory `dir` with a new key (kept in
    /// `scratch`) and registers it the way an administrator would: `wua
    /// package keygen/build`, `wua services add-package`.
    pub fn add_package_service(&self, dir: &Path, scratch: &Path) {
        let key = scratch.join("key");
        let package = scratch.join("test.owpkg");
        let wua = |args: &[&str]| {
            let output = self.wua(args);
            assert!(
                output.status.success(),
                "wua {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        wua(&["package", "keygen", &key.to_string_lossy()]);
        wua(&[
            "package",
            "build",
            &dir.to_string_lossy(),
            "-o",
            &package.to_string_lossy(),
            "--key",
            &format!("{}.key", key.display()),
        ]);
        wua(&[
            "services",
            "add-package",
            &package.to_string_lossy(),
            "--pubkey",
            &format!("{}.pub", key.display()),
        ]);
    }

    /// Builds, signs and registers the test service (the quiet, asking,
    /// terminal and secret tools) the way an administrator would: `wua
    /// package keygen/build`, `wua services add-package`.
    fn register_test_service(&self) {
        let dir = self.private.path().join("service");
        for (path, text) in [
            ("service.toml", SERVICE_TOML),
            ("quiet-tool/update.toml", QUIET_TOML),
            ("quiet-tool/quiet.sh", QUIET_SH),
            ("asking-tool/update.toml", ASKING_TOML),
            ("asking-tool/asking.sh", ASKING_SH),
            ("terminal-tool/update.toml", TERMINAL_TOML),
            ("terminal-tool/terminal.sh", TERMINAL_SH),
            ("secret-tool/update.toml", SECRET_TOML),
            ("secret-tool/secret.sh", SECRET_SH),
        ] {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent directory"))
                .expect("create the service directory");
            write_script(&path, text);
        }
        self.add_package_service(&dir, self.private.path());
    }
}

/// A marker's text without its line break, if the tool wrote it.
pub fn read_marker(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim_end().to_owned())
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|error| panic!("chmod {}: {error}", path.display()));
}

const SERVICE_TOML: &str = r#"service_id = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000000"
name = "Session test service"
"#;

const QUIET_TOML: &str = r#"update_id = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000001"
title = "Quiet tool"
description = "Installs without asking anything."
classification = "tools"
files = ["quiet.sh"]

[handler]
type = "command"
program = "quiet.sh"
"#;

const QUIET_SH: &str = r#"#!/bin/sh
set -eu
date >"$OPENWUA_SANDBOX/quiet-tool.done"
"#;

const ASKING_TOML: &str = r#"update_id = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000002"
title = "Asking tool"
description = "Asks which colour, so only an interactive user can install it."
classification = "tools"
can_request_user_input = true
files = ["asking.sh"]

[handler]
type = "command"
program = "asking.sh"
timeout_seconds = 120
"#;

/// Asks through the agent's prompt channel when it has one, else reads its
/// terminal (which the agent relays); EOF or no terminal fails the install.
const ASKING_SH: &str = r#"#!/bin/bash
set -eu
if [ -n "${OPENWUA_PROMPT_FD:-}" ]; then
    printf '%s\n' '{"text":"Which colour?","kind":"choice","choices":["red","blue"],"default":"red"}' >&"$OPENWUA_PROMPT_FD"
    IFS= read -r answer <&"$OPENWUA_PROMPT_FD"
else
    printf 'Which colour? [red/blue] '
    IFS= read -r answer
fi
printf '%s\n' "$answer" >"$OPENWUA_SANDBOX/asking-tool.answer"
"#;

const TERMINAL_TOML: &str = r#"update_id = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000003"
title = "Terminal tool"
description = "Asks the name of the site on its terminal, as plain installers do."
classification = "tools"
can_request_user_input = true
files = ["terminal.sh"]

[handler]
type = "command"
program = "terminal.sh"
timeout_seconds = 120
"#;

/// Ignores OPENWUA_PROMPT_FD: just its terminal, which the agent relays.
const TERMINAL_SH: &str = r#"#!/bin/bash
set -eu
printf 'Name of the site? '
IFS= read -r answer
printf '%s\n' "$answer" >"$OPENWUA_SANDBOX/terminal-tool.answer"
stty size >"$OPENWUA_SANDBOX/terminal-tool.size"
"#;

const SECRET_TOML: &str = r#"update_id = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000004"
title = "Secret tool"
description = "Asks a passphrase, which the client reads without echo."
classification = "tools"
can_request_user_input = true
files = ["secret.sh"]

[handler]
type = "command"
program = "secret.sh"
timeout_seconds = 120
"#;

/// A password question (no default) on the answer channel; EOF (the
/// client went away) fails the install.
const SECRET_SH: &str = r#"#!/bin/bash
set -eu
printf '%s\n' '{"text":"Passphrase of the site?","kind":"password"}' >&"$OPENWUA_PROMPT_FD"
IFS= read -r answer <&"$OPENWUA_PROMPT_FD"
printf '%s\n' "$answer" >"$OPENWUA_SANDBOX/secret-tool.answer"
"#;

/// Prints a process's session facts, one `key=value` a line.
const FACTS_SCRIPT: &str = r#"#!/bin/sh
# The controlling terminal (not stdin's), from ps.
ctty=$(ps -o tty= -p $$ | tr -d ' ')
case $ctty in ''|'?') ctty=none ;; *) ctty=/dev/$ctty ;; esac
echo "facts.uid=$(id -u)"
echo "facts.loginuid=$(cat /proc/self/loginuid)"
echo "facts.sessionid=$(cat /proc/self/sessionid)"
echo "facts.tty=$ctty"
echo "facts.stdin=$(tty 2>/dev/null || echo none)"
if [ "$ctty" != none ]; then echo "facts.ttyowner=$(stat -c %u "$ctty")"; fi
chain=
pid=$$
while [ "$pid" -gt 0 ] 2>/dev/null; do
    stat=$(cat /proc/$pid/stat 2>/dev/null) || break
    comm=${stat#*(}
    comm=${comm%)*}
    rest=${stat##*) }
    ppid=$(echo "$rest" | cut -d' ' -f2)
    uid=$(awk '/^Uid:/ { print $2 }' /proc/$pid/status)
    sid=$(cat /proc/$pid/sessionid)
    chain="$chain $comm:$uid:$sid"
    pid=$ppid
done
echo "facts.chain=${chain# }"
echo "facts.end"
"#;

// ---------------------------------------------------------------------------
// Facts a probe reports, and utmp

/// A script every user may run that prints its process's session facts
/// ([`Facts::parse`]).
pub struct Probe {
    dir: tempfile::TempDir,
}

impl Probe {
    pub fn new() -> Probe {
        let dir = tempfile::Builder::new()
            .prefix("openwua-probe-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the probe directory");
        write_script(&dir.path().join("facts.sh"), FACTS_SCRIPT);
        Probe { dir }
    }

    /// The probe's path, to run or to put into a command line.
    pub fn path(&self) -> String {
        self.dir.path().join("facts.sh").display().to_string()
    }
}

/// One process of a parent chain: its command, uid and audit session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    pub command: String,
    pub uid: u32,
    pub session_id: u32,
}

/// What the [`Probe`] printed about a process.
#[derive(Debug, Clone)]
pub struct Facts {
    pub uid: u32,
    pub login_uid: u32,
    pub session_id: u32,
    /// Its controlling terminal, e.g. `/dev/pts/3`.
    pub tty: Option<String>,
    pub tty_owner: Option<u32>,
    /// The terminal its standard input is, if any (`tty`).
    pub stdin_tty: Option<String>,
    /// The process itself first, then its parent, up to PID 1.
    pub chain: Vec<Ancestor>,
}

impl Facts {
    /// Reads the probe's lines out of `text` (a pane's screen, a command's
    /// output); the last probe's if there are several.
    pub fn parse(text: &str) -> Facts {
        let start = text
            .rfind("facts.uid=")
            .unwrap_or_else(|| panic!("no facts in:\n{text}"));
        let mut values = std::collections::HashMap::new();
        for line in text[start..].lines() {
            if line.trim() == "facts.end" {
                break;
            }
            if let Some((key, value)) = line.trim().split_once('=') {
                values.insert(
                    key.trim_start_matches("facts.").to_owned(),
                    value.to_owned(),
                );
            }
        }
        let number = |key: &str| -> u32 {
            values
                .get(key)
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("facts.{key} is not a number in:\n{text}"))
        };
        let tty = values.get("tty").filter(|tty| *tty != "none").cloned();
        let chain = values
            .get("chain")
            .map(|chain| {
                chain
                    .split_whitespace()
                    .filter_map(|entry| {
                        let mut parts = entry.rsplitn(3, ':');
                        let session_id = parts.next()?.parse().ok()?;
                        let uid = parts.next()?.parse().ok()?;
                        Some(Ancestor {
                            command: parts.next()?.to_owned(),
                            uid,
                            session_id,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Facts {
            uid: number("uid"),
            login_uid: number("loginuid"),
            session_id: number("sessionid"),
            tty_owner: tty.as_ref().map(|_| number("ttyowner")),
            stdin_tty: values
                .get("stdin")
                .filter(|tty| tty.starts_with("/dev/"))
                .cloned(),
            tty,
            chain,
        }
    }

    /// The session's entry point: the topmost ancestor still in the same
    /// audit session (`login`, `sshd`, `cron`), if the session is set.
    pub fn entry(&self) -> Option<&Ancestor> {
        if self.session_id == UNSET {
            return None;
        }
        self.chain
            .iter()
            .take_while(|ancestor| ancestor.session_id == self.session_id)
            .last()
    }

    /// The chain as one line, for messages and the report.
    pub fn chain_line(&self) -> String {
        self.chain
            .iter()
            .map(|ancestor| {
                format!(
                    "{}(uid {}, sid {})",
                    ancestor.command,
                    ancestor.uid,
                    if ancestor.session_id == UNSET {
                        "unset".to_owned()
                    } else {
                        ancestor.session_id.to_string()
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(" <- ")
    }
}

/// One utmp record.
#[derive(Debug, Clone)]
pub struct UtmpRecord {
    /// `ut_type`: 7 is USER_PROCESS, 8 DEAD_PROCESS.
    pub kind: i16,
    pub pid: i32,
    /// `ut_line`, e.g. `pts/3`.
    pub line: String,
    pub user: String,
    pub host: String,
}

pub const USER_PROCESS: i16 = 7;

/// `/var/run/utmp`, parsed (glibc's 384-byte `struct utmp` on 64-bit Linux).
pub fn utmp() -> Vec<UtmpRecord> {
    let bytes = std::fs::read("/var/run/utmp").unwrap_or_default();
    let text = |field: &[u8]| {
        let end = field
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    };
    bytes
        .chunks_exact(384)
        .map(|record| UtmpRecord {
            kind: i16::from_ne_bytes([record[0], record[1]]),
            pid: i32::from_ne_bytes([record[4], record[5], record[6], record[7]]),
            line: text(&record[8..40]),
            user: text(&record[44..76]),
            host: text(&record[76..332]),
        })
        .collect()
}

/// The live USER_PROCESS records of `user` on `tty` (`/dev/pts/N`).
pub fn utmp_logins(user: &User, tty: &str) -> Vec<UtmpRecord> {
    let line = tty.trim_start_matches("/dev/");
    utmp()
        .into_iter()
        .filter(|record| {
            record.kind == USER_PROCESS
                && record.user == user.name
                && record.line == line
                && Path::new(&format!("/proc/{}", record.pid)).exists()
        })
        .collect()
}

/// A process's audit session id.
pub fn session_id_of(pid: i32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/sessionid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------
// tmux: a terminal the test can type into and read

/// A private tmux server with one 200x50 pane.
pub struct Tmux {
    socket: String,
}

/// A command typed into a pane, not yet finished.
#[derive(Debug, Clone, Copy)]
pub struct Typed(u32);

impl Tmux {
    /// A pane running `command` (through the shell, as tmux runs it).
    pub fn start(command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("owsess{}", unique()),
        };
        must(
            tmux.command()
                .args([
                    "-f",
                    "/dev/null",
                    "new-session",
                    "-d",
                    "-x",
                    "200",
                    "-y",
                    "50",
                ])
                .arg(command),
            "tmux new-session",
        );
        tmux
    }

    /// A pane in which `user` logged in with `login -f`: PAM's login
    /// stack (pam_loginuid sets the loginuid and a new audit session) and
    /// a utmp record for the pane's terminal. Returns once the shell
    /// answers.
    pub fn login(user: &User) -> Tmux {
        ensure_machine();
        let tmux = Tmux::start(&format!("exec login -f {}", user.name));
        tmux.wait_for(&format!("{}@", user.name), Duration::from_secs(30));
        tmux.run("true", Duration::from_secs(30));
        tmux
    }

    /// A pane with a root shell started from the test process (no login;
    /// for `ssh -t`, which needs a local terminal).
    pub fn root_shell() -> Tmux {
        let tmux = Tmux::start(&format!(
            "exec env -i PATH={PATH} TERM=screen HOME=/root PS1='root# ' bash --norc --noprofile"
        ));
        tmux.run("true", Duration::from_secs(30));
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-L")
            .arg(&self.socket)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE");
        command
    }

    /// Types `line` and Enter.
    pub fn send_line(&self, line: &str) {
        must(
            self.command().args(["send-keys", "-l"]).arg(line),
            "tmux send-keys",
        );
        self.send_keys(&["Enter"]);
    }

    /// Sends tmux key names: `Enter`, `C-c`, `C-d`, …
    pub fn send_keys(&self, keys: &[&str]) {
        must(self.command().arg("send-keys").args(keys), "tmux send-keys");
    }

    /// The whole pane, scrollback included, wrapped lines joined.
    pub fn screen(&self) -> String {
        let output = must(
            self.command().args(["capture-pane", "-p", "-J", "-S", "-"]),
            "tmux capture-pane",
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the pane shows `text`; the screen then. Panics with the
    /// screen after `timeout`.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        self.wait_for_more(text, 0, timeout)
    }

    /// How many times the pane shows `text`, scrollback included.
    pub fn count(&self, text: &str) -> usize {
        self.screen().matches(text).count()
    }

    /// Waits until the pane shows `text` more than `seen` times (a
    /// [`Tmux::count`] taken before): a new prompt or question, not one
    /// still in the scrollback. The screen then; panics with the screen
    /// after `timeout`.
    pub fn wait_for_more(&self, text: &str, seen: usize, timeout: Duration) -> String {
        poll(timeout, || {
            let screen = self.screen();
            (screen.matches(text).count() > seen).then_some(screen)
        })
        .unwrap_or_else(|| {
            panic!(
                "the pane did not show {text:?} (seen {seen} times before) within {timeout:?}:\n{}",
                self.screen()
            )
        })
    }

    /// The pane's terminal, e.g. `/dev/pts/3`, and the pid of its first
    /// process.
    pub fn pane(&self) -> (String, i32) {
        let output = must(
            self.command()
                .args(["display-message", "-p", "#{pane_tty} #{pane_pid}"]),
            "tmux display-message",
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let (tty, pid) = text.trim().split_once(' ').expect("tty and pid");
        (tty.to_owned(), pid.parse().expect("a numeric pane pid"))
    }

    /// Types `command` with markers around it, so [`Tmux::finish`] can find
    /// its output and exit status. The markers are typed in pieces
    /// (`printf '%s_%s' OWB 3`) so the echoed line never contains them.
    pub fn type_command(&self, command: &str) -> Typed {
        let mark = COUNTER.fetch_add(1, Ordering::SeqCst);
        self.send_line(&format!(
            "printf '%s_%s\\n' OWB {mark}; {command}; printf '%s_%s:%s\\n' OWE {mark} \"$?\""
        ));
        Typed(mark)
    }

    /// Waits for a typed command to end.
    pub fn finish(&self, typed: Typed, timeout: Duration) -> Finished {
        let begin = format!("OWB_{}\n", typed.0);
        let end = format!("OWE_{}:", typed.0);
        let screen = self.wait_for(&end, timeout);
        let end_at = screen.rfind(&end).expect("the end marker");
        let status: String = screen[end_at + end.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let output = screen[..end_at]
            .rfind(&begin)
            .map(|begin_at| screen[begin_at + begin.len()..end_at].to_owned())
            .unwrap_or_default();
        Finished {
            status: status.parse().expect("a numeric exit status"),
            output,
        }
    }

    /// Types `su <user>` and, when su asks, the password: the pane's shell
    /// is `user`'s from then on (until [`Tmux::exit_shell`]), still on the
    /// login's terminal. (`su -c` would run its command in a new session
    /// without a controlling terminal: util-linux su does that against
    /// TIOCSTI.)
    pub fn su(&self, user: &User, password: &str) {
        let prompt = format!("{}@", user.name);
        let (asked, prompted) = (self.count("Password:"), self.count(&prompt));
        self.send_line(&format!("su {}", user.name));
        self.wait_for_more("Password:", asked, Duration::from_secs(30));
        self.send_line(password);
        self.wait_for_more(&prompt, prompted, Duration::from_secs(30));
        self.run("true", Duration::from_secs(30));
    }

    /// Leaves a shell started in the pane (`su`'s), back to the one before.
    pub fn exit_shell(&self) {
        self.send_line("exit");
        self.run("true", Duration::from_secs(30));
    }

    /// Runs `command` in the pane's shell and waits for it.
    pub fn run(&self, command: &str, timeout: Duration) -> Finished {
        let typed = self.type_command(command);
        self.finish(typed, timeout)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

// ---------------------------------------------------------------------------
// sshd of the test's own

/// An sshd on 127.0.0.1 at a free port, with its own config and host key:
/// PAM on (pam_loginuid: a new audit session per connection), public-key
/// login with a key the test made.
pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Sshd {
    pub fn start() -> Sshd {
        ensure_machine();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let host_key = dir.path().join("host_key");
        let key = dir.path().join("client_key");
        for path in [&host_key, &key] {
            must(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(path),
                "ssh-keygen",
            );
        }
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile {}\n\
                     UsePAM yes\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nAuthorizedKeysFile .ssh/authorized_keys\n\
                     PrintMotd no\n",
                    host_key.display(),
                    dir.path().join("sshd.pid").display(),
                ),
            )
            .expect("write sshd_config");
            let log = std::fs::File::create(dir.path().join("sshd.log")).expect("sshd.log");
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("sshd starts");
            let listening = poll(Duration::from_secs(10), || {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(true);
                }
                matches!(child.try_wait(), Ok(Some(_))).then_some(false)
            });
            if listening == Some(true) {
                return Sshd {
                    child,
                    port,
                    dir,
                    key,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start: {}",
            std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default()
        );
    }

    /// Lets the test's key log in as `user`.
    pub fn authorize(&self, user: &User) {
        let ssh = user.home.join(".ssh");
        std::fs::create_dir_all(&ssh).expect("create ~/.ssh");
        let keys = ssh.join("authorized_keys");
        let public = std::fs::read(self.key.with_extension("pub")).expect("the public key");
        std::fs::write(&keys, public).expect("write authorized_keys");
        for (path, mode) in [(&ssh, 0o700), (&keys, 0o600)] {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).expect("chown");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
    }

    /// The `ssh` command's words for `command` as `user`, with a terminal
    /// (`-t`, needs a local one) or without (`-T`).
    pub fn ssh_words(&self, user: &User, command: &str, tty: bool) -> Vec<String> {
        let mut words: Vec<String> = ["ssh", "-F", "/dev/null", "-i"]
            .iter()
            .map(|word| word.to_string())
            .collect();
        words.push(self.key.display().to_string());
        for option in [
            "IdentitiesOnly=yes",
            "BatchMode=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
        ] {
            words.push("-o".into());
            words.push(option.into());
        }
        words.push("-p".into());
        words.push(self.port.to_string());
        words.push(if tty { "-t" } else { "-T" }.into());
        words.push(format!("{}@127.0.0.1", user.name));
        words.push(command.into());
        words
    }

    /// `ssh -t user@127.0.0.1 command` as one line, to type into a pane.
    pub fn ssh_tty_line(&self, user: &User, command: &str) -> String {
        shell_line(&self.ssh_words(user, command, true))
    }

    /// `ssh user@127.0.0.1 command` without a terminal, from the test
    /// process; its output and status.
    pub fn ssh(&self, user: &User, command: &str) -> Output {
        let words = self.ssh_words(user, command, false);
        Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }

    /// sshd's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// cron: a batch job the way the system runs one

/// Starts the system cron daemon unless it runs. It cannot be private:
/// it reads the fixed spool (`/var/spool/cron/crontabs`) and allows one
/// instance (`/var/run/crond.pid`). `scripts/setup-test-machine` starts it
/// too.
pub fn ensure_cron() {
    static STARTED: Mutex<()> = Mutex::new(());
    let _guard = STARTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let running = std::fs::read_to_string("/var/run/crond.pid")
        .ok()
        .and_then(|pid| pid.trim().parse::<i32>().ok())
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
        .is_some_and(|comm| comm.trim() == "cron");
    if !running {
        // It forks into the background and writes its pid file.
        must(&mut Command::new("cron"), "start cron");
        let started = poll(Duration::from_secs(5), || {
            Path::new("/var/run/crond.pid").exists().then_some(())
        });
        assert!(started.is_some(), "cron did not write /var/run/crond.pid");
    }
}

/// A crontab entry of a user's (`* * * * *`) that runs `command` once:
/// cron starts it at the next minute through PAM's `cron` stack
/// (pam_loginuid: the job owner's loginuid, a new audit session; no
/// terminal).
pub struct CronJob {
    user: String,
    dir: tempfile::TempDir,
}

impl CronJob {
    pub fn schedule(user: &User, command: &str) -> CronJob {
        ensure_cron();
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the cron directory");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("create the run directory");
        std::os::unix::fs::chown(&run, Some(user.uid), Some(user.gid)).expect("chown");
        let run = run.display().to_string();
        // The entry fires every minute; the job runs only the first time.
        let job = dir.path().join("job.sh");
        write_script(
            &job,
            &format!(
                "#!/bin/sh\nmkdir {run}/started 2>/dev/null || exit 0\n\
                 ( {command} ) >{run}/output 2>&1\n\
                 echo $? >{run}/status.tmp && mv {run}/status.tmp {run}/status\n"
            ),
        );
        let crontab = dir.path().join("crontab");
        std::fs::write(&crontab, format!("* * * * * /bin/sh {}\n", job.display()))
            .expect("write the crontab");
        must(
            Command::new("crontab")
                .args(["-u", &user.name])
                .arg(&crontab),
            "crontab -u",
        );
        CronJob {
            user: user.name.clone(),
            dir,
        }
    }

    /// Waits for the job to have run (cron starts it within a minute).
    pub fn wait(&self, timeout: Duration) -> Finished {
        let run = self.dir.path().join("run");
        let status = poll(timeout, || std::fs::read_to_string(run.join("status")).ok())
            .unwrap_or_else(|| panic!("cron did not run the job within {timeout:?}"));
        Finished {
            status: status.trim().parse().expect("a numeric exit status"),
            output: std::fs::read_to_string(run.join("output")).unwrap_or_default(),
        }
    }
}

impl Drop for CronJob {
    fn drop(&mut self) {
        let _ = Command::new("crontab")
            .args(["-r", "-u", &self.user])
            .stderr(Stdio::null())
            .output();
    }
}

// ---------------------------------------------------------------------------
// Processes with no login

/// `program args…` as `user` with no login at all, the way a service
/// manager starts a service: a new session (`setsid`, no controlling
/// terminal), uid and groups dropped with `setpriv` (no PAM), the test
/// process's unset loginuid inherited.
pub fn no_login(user: &User, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new("setsid");
    command
        .arg("-w")
        .arg("setpriv")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .stdin(Stdio::null());
    command
}

/// Like [`no_login`], but the process first writes `claimed_uid` into
/// its own unset `/proc/self/loginuid` (which the kernel lets any process
/// do once; it gets a new audit session) and then execs `program`.
pub fn forged(user: &User, claimed_uid: u32, program: &str, args: &[&str]) -> Command {
    let script = "printf '%s' \"$0\" >/proc/self/loginuid || exit 97; exec \"$@\"";
    let claimed = claimed_uid.to_string();
    let mut words = vec!["-c", script, &claimed, program];
    words.extend_from_slice(args);
    no_login(user, "/bin/sh", &words)
}

/// `command` run by `script` on a fresh pseudo-terminal of the caller's
/// own: a terminal, but not a login's.
pub fn on_own_pty(command: &str) -> String {
    shell_line(&["script", "-qec", command, "/dev/null"])
}
