//! The restart policy against real login sessions (issue 17): alice logs
//! in with `login -f` in tmux, and the agent (on a clock the test sets)
//! holds its restart back while she is there, or warns her on her terminal
//! first; found through utmp, and through the kernel's audit facts where
//! there is no utmp. The restart command is a script that counts its calls.
//! Everything needs root; without it each test skips.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use common::sessions::*;
use jiff::{SignedDuration, Timestamp};
use openwua_agent::config::{RestartPolicy, UsersPolicy};
use openwua_agent::{Clock, ManualClock};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const KERNEL: &str = "0b7e6a8e-6f0a-4c55-9a43-5e55a1000017";

struct Scene {
    agent: TestAgent,
    clock: ManualClock,
    restarts: tempfile::TempDir,
}

impl Scene {
    /// A test agent at Monday 2030-01-07 00:00 UTC restarting in the
    /// window `daily 02:00-04:00` as `users` says, with the kernel update
    /// (restart required) installed.
    fn new(cast: &Cast, users: UsersPolicy) -> Scene {
        let (clock, hand) = Clock::manual("2030-01-07T00:00:00Z".parse().unwrap());
        let restarts = tempfile::tempdir().unwrap();
        let log = restarts.path().join("restarts");
        let agent = TestAgent::start_with(&cast.admins, |config| {
            config.clock = clock;
            config.automatic_updates.time_zone = Some("UTC".into());
            config.restart.policy = RestartPolicy::Window;
            config.restart.window = "daily 02:00-04:00".into();
            config.restart.users = users;
            config.restart.warn_minutes = 10;
            config.restart.command = vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("date >>{}", log.display()),
            ];
            config.restart.fallback_command = Vec::new();
            let boot_id = restarts.path().join("boot_id");
            std::fs::write(&boot_id, "6c1b4f7e-1111-4222-8333-944455556666\n").unwrap();
            config.install.boot_id_file = boot_id;
        });
        let scene = Scene {
            agent,
            clock: hand,
            restarts,
        };
        scene.add_kernel_service();
        let installed = scene.agent.wua(&["install", KERNEL]);
        assert!(
            installed.status.success(),
            "{}",
            String::from_utf8_lossy(&installed.stderr)
        );
        scene
    }

    /// A service with one update whose installer asks for a restart.
    fn add_kernel_service(&self) {
        let dir = self.restarts.path().join("service");
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        std::fs::write(
            dir.join("service.toml"),
            "service_id = \"0b7e6a8e-6f0a-4c55-9a43-5e55a1000010\"\nname = \"Kernel service\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("kernel/update.toml"),
            format!(
                "update_id = \"{KERNEL}\"\ntitle = \"Kernel\"\nclassification = \"security_updates\"\n\
                 reboot_behavior = \"always_requires_reboot\"\nfiles = [\"kernel.sh\"]\n\n\
                 [handler]\ntype = \"command\"\nprogram = \"kernel.sh\"\n\
                 exit_codes = {{ codes = [{{ code = 194, outcome = \"succeeded_reboot_required\" }}] }}\n"
            ),
        )
        .unwrap();
        let script = dir.join("kernel/kernel.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 194\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.agent.add_package_service(&dir, self.restarts.path());
    }

    fn state(&self) -> Value {
        self.agent.json(&["auto", "show"])
    }

    /// Sets the clock and waits until `done` holds of `wua auto show`.
    fn at_then(&self, when: Timestamp, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.clock.set(when);
        let mut last = Value::Null;
        let reached = openwua_testkit::wait_until(Instant::now() + WAIT, || {
            last = self.state();
            done(&last)
        });
        assert!(reached, "{what} at {when}: {last:#}");
        last
    }

    /// Wakes the scheduler and returns the restart it planned.
    fn planned(&self) -> Timestamp {
        let woken = self.agent.wua(&["auto", "detect-now"]);
        assert!(
            woken.status.success(),
            "{}",
            String::from_utf8_lossy(&woken.stderr)
        );
        let state = self.at_then(self.clock.now(), "a planned restart", |state| {
            state["restart"]["scheduledFor"].is_string()
        });
        let at: Timestamp = state["restart"]["scheduledFor"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            at >= "2030-01-07T02:00:00Z".parse().unwrap()
                && at < "2030-01-07T04:00:00Z".parse().unwrap(),
            "{at}"
        );
        at
    }

    fn restarts(&self) -> usize {
        std::fs::read_to_string(self.restarts.path().join("restarts"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// Waits for the restart command's `count`th call (the record is
    /// stored before the command runs).
    fn wait_restarts(&self, count: usize) {
        let reached =
            openwua_testkit::wait_until(Instant::now() + WAIT, || self.restarts() >= count);
        assert!(reached, "the restart command was not called {count} times");
    }
}

fn held_by(state: &Value, user: &str) -> bool {
    state["restart"]["heldByUsers"]
        .as_array()
        .is_some_and(|users| users.iter().any(|name| name == user))
}

/// alice holds the restart back; once she has logged out, it happens at
/// the next look (5 minutes on), inside the window, once. With `isolated`
/// logins (a utmp of the test's own) nobody else can be logged in; without
/// (the whole machine's processes in `/proc`), other tests' logins may
/// still hold it back, and then only they may.
fn a_logged_in_user_holds_the_restart_back(cast: &Cast, isolated: bool) {
    let scene = Scene::new(cast, UsersPolicy::Wait);
    let pane = Tmux::login(&cast.alice);
    let at = scene.planned();
    scene.at_then(at, "the restart held back by alice", |state| {
        held_by(state, &cast.alice.name)
    });
    assert_eq!(scene.restarts(), 0);
    drop(pane);
    let gone = poll(WAIT, || cast.alice.processes().is_empty().then_some(()));
    assert!(gone.is_some(), "alice's login did not end");
    let retry = at + SignedDuration::from_mins(5);
    let restarted = |state: &Value| {
        state["restart"]["history"]
            .as_array()
            .is_some_and(|history| !history.is_empty())
    };
    if isolated {
        // tmux records its pane in utmp too (as root, by its server's pid),
        // until the server is gone.
        let live = || {
            utmp().into_iter().any(|record| {
                record.kind == USER_PROCESS
                    && std::path::Path::new(&format!("/proc/{}", record.pid)).exists()
            })
        };
        let ended = poll(WAIT, || (!live()).then_some(()));
        assert!(ended.is_some(), "logins left in utmp: {:?}", utmp());
    }
    let state = scene.at_then(retry, "the look after alice left", |state| {
        restarted(state) || (!isolated && !held_by(state, &cast.alice.name))
    });
    if !restarted(&state) {
        eprintln!(
            "other logins hold the restart back: {}",
            state["restart"]["heldByUsers"]
        );
        assert_eq!(scene.restarts(), 0);
        return;
    }
    scene.wait_restarts(1);
    assert_eq!(scene.restarts(), 1, "{state:#}");
    assert_eq!(
        state["restart"]["history"][0]["requested"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .unwrap(),
        retry
    );
}

/// Runs `test` on a thread in a mount namespace whose `/run` is an empty
/// tmpfs with an empty utmp of its own: the logins the test makes are
/// recorded there, and no other test's.
fn with_utmp_of_its_own<T: Send>(test: impl FnOnce() -> T + Send) -> T {
    use nix::mount::{MsFlags, mount};
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make / private in the namespace");
            mount(
                Some("openwua-own-utmp"),
                "/run",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=0755"),
            )
            .expect("mount an empty /run");
            let made = std::process::Command::new("install")
                .args([
                    "-m",
                    "0664",
                    "-o",
                    "root",
                    "-g",
                    "utmp",
                    "/dev/null",
                    "/var/run/utmp",
                ])
                .status()
                .expect("install runs");
            assert!(made.success(), "create the namespace's utmp");
            test()
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[test]
fn a_logged_in_user_holds_the_restart_back_until_she_leaves() {
    if skip_without_root("a_logged_in_user_holds_the_restart_back_until_she_leaves") {
        return;
    }
    let cast = Cast::new();
    with_utmp_of_its_own(|| a_logged_in_user_holds_the_restart_back(&cast, true));
}

#[test]
fn without_utmp_the_kernel_s_audit_facts_show_who_is_logged_in() {
    if skip_without_root("without_utmp_the_kernel_s_audit_facts_show_who_is_logged_in") {
        return;
    }
    let cast = Cast::new();
    without_utmp(|| a_logged_in_user_holds_the_restart_back(&cast, false));
}

#[test]
fn logged_in_users_are_warned_on_their_terminals_before_the_restart() {
    if skip_without_root("logged_in_users_are_warned_on_their_terminals_before_the_restart") {
        return;
    }
    let cast = Cast::new();
    // A utmp of its own: the warning reaches alice's terminal, not those
    // of other tests' logins.
    with_utmp_of_its_own(|| {
        let scene = Scene::new(&cast, UsersPolicy::Warn);
        let pane = Tmux::login(&cast.alice);
        let at = scene.planned();
        let warning = "OpenWUA: this machine restarts";
        scene.clock.set(at - SignedDuration::from_mins(10));
        let screen = pane.wait_for(warning, WAIT);
        assert!(screen.contains("Save your work"), "{screen}");
        assert_eq!(scene.restarts(), 0);
        scene.at_then(at, "the restart", |state| {
            state["restart"]["history"]
                .as_array()
                .is_some_and(|history| !history.is_empty())
        });
        scene.wait_restarts(1);
        assert_eq!(scene.restarts(), 1);
        // Warned once.
        assert_eq!(pane.count(warning), 1);
    });
}

#[test]
fn non_administrators_elevated_lets_an_interactive_user_install_from_her_login() {
    if skip_without_root(
        "non_administrators_elevated_lets_an_interactive_user_install_from_her_login",
    ) {
        return;
    }
    let cast = Cast::new();
    // Administrators are another group's members: alice is not one here.
    let others = Group::create("other");
    let agent = TestAgent::start(&others);
    let pane = Tmux::login(&cast.alice);
    let install = agent.wua_line(&["install", QUIET_TOOL]);
    let refused = pane.run(&install, WAIT);
    assert_eq!(refused.status, 3, "{}", refused.output);
    assert!(
        refused.output.contains("E_ACCESSDENIED"),
        "{}",
        refused.output
    );
    // Setting it is an administrator's: alice may not.
    let set = pane.run(
        &agent.wua_line(&["auto", "set", "--non-administrators-elevated", "true"]),
        WAIT,
    );
    assert_eq!(set.status, 3, "{}", set.output);
    let state = agent.json(&["auto", "set", "--non-administrators-elevated", "true"]);
    assert_eq!(state["settings"]["nonAdministratorsElevated"], true);
    let installed = pane.run(&install, WAIT);
    assert_eq!(installed.status, 0, "{}", installed.output);
    assert!(read_marker(&agent.quiet_marker()).is_some());
    // Never an uninstallation.
    let uninstall = pane.run(&agent.wua_line(&["uninstall", QUIET_TOOL]), WAIT);
    assert_eq!(uninstall.status, 3, "{}", uninstall.output);
}
