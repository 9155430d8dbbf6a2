//! Automatic Updates and restarts (issue 17) through an in-process agent
//! (`Background`) whose clock the test sets: each notification level at the
//! scheduled time, a pause and its end, an update that may ask, a deadline,
//! the maintenance window and the restart command (a script that counts
//! its calls; the machine is never restarted).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Installer, installable, key, snapshot, write_with_content};
use jiff::Timestamp;
use openwua_agent::config::{RestartPolicy, UsersPolicy};
use openwua_agent::{Background, Clock, Config, ManualClock};
use openwua_client::SetAutomaticUpdatesParameters;
use openwua_client::blocking::UpdateSession;
use openwua_model::automatic::{AutomaticUpdatesState, RestartOutcome};
use openwua_model::enums::WuaEnum;
use openwua_testkit::wait_until;
use serde_json::{Value, json};
use uuid::Uuid;

/// Monday 2030-01-07, midnight UTC.
const MONDAY: &str = "2030-01-07T00:00:00Z";
const WAIT: Duration = Duration::from_secs(60);

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// An installer that appends a line to `$OPENWUA_SANDBOX/<name>` and exits
/// with `exit` (194: succeeded, restart required).
fn counting_installer(name: &str, exit: i32) -> Installer {
    Installer {
        script: format!("echo installed >>\"$OPENWUA_SANDBOX/{name}\"; exit {exit}"),
        uninstall: false,
        exit_codes: json!({ "codes": [
            { "code": 0, "outcome": "succeeded" },
            { "code": 194, "outcome": "succeeded_reboot_required" },
        ]}),
    }
}

struct Scene {
    dir: tempfile::TempDir,
    clock: ManualClock,
    agent: Option<Background>,
    config: Config,
}

impl Scene {
    /// An agent at `start` with detection every 22 hours, the time zone
    /// UTC, `adjust`ed, and one service whose updates are `updates`.
    fn new(
        start: &str,
        updates: Vec<(u128, &str, Installer, Value)>,
        adjust: impl FnOnce(&mut Config, &Path),
    ) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let (clock, hand) = Clock::manual(at(start));
        let mut config = Config::under(dir.path());
        config.owner_is_admin = true;
        config.clock = clock;
        config.sync_interval_seconds = 22 * 3600;
        config.automatic_updates.time_zone = Some("UTC".into());
        config.install.boot_id_file = dir.path().join("boot_id");
        config.install.abort_grace_seconds = 1;
        config.restart.command = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("date >>{:?}", dir.path().join("restarts")),
        ];
        config.restart.fallback_command = Vec::new();
        std::fs::write(dir.path().join("boot_id"), format!("{}\n", Uuid::new_v4())).unwrap();
        adjust(&mut config, dir.path());
        let agent = Background::start(config.clone()).unwrap();
        let mut revisions = Vec::new();
        let mut payloads = Vec::new();
        for (number, title, installer, extra) in updates {
            let (revision, payload) = installable(dir.path(), number, title, installer, extra);
            revisions.push(revision);
            payloads.push(payload);
        }
        let (key, public) = key();
        let package = dir.path().join("service.owpkg");
        write_with_content(&snapshot(1, revisions), &payloads, &key, &package);
        let scene = Scene {
            dir,
            clock: hand,
            agent: Some(agent),
            config,
        };
        scene
            .session()
            .create_update_service_manager()
            .add_scan_package_service(None, &package, &public, false, None)
            .unwrap();
        scene
    }

    fn session(&self) -> UpdateSession {
        UpdateSession::connect(self.agent.as_ref().unwrap().socket()).unwrap()
    }

    fn state(&self) -> AutomaticUpdatesState {
        self.session().automatic_updates().unwrap()
    }

    fn set(&self, change: SetAutomaticUpdatesParameters) -> AutomaticUpdatesState {
        self.session().set_automatic_updates(&change).unwrap()
    }

    fn level(&self, level: &str) {
        self.set(SetAutomaticUpdatesParameters {
            notification_level: Some(level.into()),
            scheduled_installation_day: Some("0".into()),
            scheduled_installation_time: Some(3),
            ..Default::default()
        });
    }

    /// Sets the clock, then waits until `done` holds of the state.
    fn at_then(&self, when: Timestamp, what: &str, done: impl Fn(&AutomaticUpdatesState) -> bool) {
        self.clock.set(when);
        let mut last = None;
        let reached = wait_until(Instant::now() + WAIT, || {
            let state = self.state();
            let ok = done(&state);
            last = Some(state);
            ok
        });
        assert!(reached, "{what} at {when}: {last:#?}");
    }

    fn installs_of(&self, name: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join("sandbox").join(name))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    fn restarts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("restarts"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// Waits for the restart command's `count`th call (the record is
    /// stored before the command runs).
    fn wait_restarts(&self, count: usize) {
        let reached = wait_until(Instant::now() + WAIT, || self.restarts() >= count);
        assert!(reached, "the restart command was not called {count} times");
    }

    fn pending(&self, state: &AutomaticUpdatesState, n: u128) -> Option<bool> {
        state
            .pending_updates
            .iter()
            .find(|update| update.update_id == id(n))
            .map(|update| update.is_downloaded)
    }

    /// Stops the agent and starts it again on the same state, after a
    /// reboot when `new_boot`.
    fn restart_agent(&mut self, new_boot: bool) {
        drop(self.agent.take());
        if new_boot {
            std::fs::write(
                self.dir.path().join("boot_id"),
                format!("{}\n", Uuid::new_v4()),
            )
            .unwrap();
        }
        self.agent = Some(Background::start(self.config.clone()).unwrap());
    }
}

fn important(
    n: u128,
    title: &'static str,
    installer: Installer,
) -> (u128, &'static str, Installer, Value) {
    (n, title, installer, json!({ "autoSelectOnWebSites": true }))
}

fn with_deadline(
    n: u128,
    title: &'static str,
    installer: Installer,
    deadline: &str,
) -> (u128, &'static str, Installer, Value) {
    (n, title, installer, json!({ "deadline": deadline }))
}

/// The tick that ends a day's work: a deadline update installed at
/// Tuesday 02:00, after the detection (due by Tuesday 00:12) and the
/// scheduled 03:00 installation of Monday.
const TUESDAY_2: &str = "2030-01-08T02:00:00Z";

fn each_level(level: &str) -> (Scene, AutomaticUpdatesState) {
    let scene = Scene::new(
        MONDAY,
        vec![
            important(1, "Important", counting_installer("important", 0)),
            with_deadline(2, "Deadline", counting_installer("deadline", 0), TUESDAY_2),
        ],
        |_, _| {},
    );
    scene.level(level);
    if level == "aunlDisabled" {
        let refused = scene.session().detect_now().unwrap_err();
        assert!(
            refused.to_string().contains("WU_E_AU_NOSERVICE"),
            "{refused}"
        );
    }
    // One step over Monday 03:00 and the detection: the deadline's
    // installation ends the tick, and its date is the tick's time.
    scene.at_then(at(TUESDAY_2), "the deadline's installation", |state| {
        state.results.last_installation_success_date == Some(at(TUESDAY_2))
    });
    assert_eq!(scene.installs_of("deadline"), 1, "{level}");
    let state = scene.state();
    (scene, state)
}

#[test]
fn disabled_detects_nothing_downloads_nothing_installs_only_deadlines() {
    let (scene, state) = each_level("aunlDisabled");
    assert!(!state.service_enabled);
    assert_eq!(state.results.last_search_success_date, None);
    assert_eq!(state.next_detection, None);
    assert_eq!(scene.pending(&state, 1), Some(false));
    assert_eq!(scene.installs_of("important"), 0);
}

#[test]
fn notify_before_download_detects_but_neither_downloads_nor_installs() {
    let (scene, state) = each_level("aunlNotifyBeforeDownload");
    assert_eq!(state.results.last_search_success_date, Some(at(TUESDAY_2)));
    assert_eq!(scene.pending(&state, 1), Some(false));
    assert_eq!(scene.installs_of("important"), 0);
}

#[test]
fn notify_before_installation_downloads_but_does_not_install() {
    let (scene, state) = each_level("aunlNotifyBeforeInstallation");
    assert_eq!(state.results.last_search_success_date, Some(at(TUESDAY_2)));
    assert_eq!(scene.pending(&state, 1), Some(true));
    assert_eq!(scene.installs_of("important"), 0);
}

#[test]
fn scheduled_installation_downloads_and_installs_at_the_scheduled_hour() {
    let (scene, state) = each_level("ScheduledInstallation");
    assert_eq!(scene.pending(&state, 1), None, "{state:#?}");
    assert_eq!(scene.installs_of("important"), 1);
    assert_eq!(
        state.next_scheduled_installation,
        Some(at("2030-01-08T03:00:00Z"))
    );
    let history = scene
        .session()
        .create_update_searcher()
        .query_history(0, 10)
        .unwrap();
    assert!(
        history
            .iter()
            .all(|entry| entry.client_application_id == "AutomaticUpdates"),
        "{history:?}"
    );
}

#[test]
fn recommended_updates_wait_unless_included() {
    let scene = Scene::new(
        MONDAY,
        vec![(
            3,
            "Recommended",
            counting_installer("recommended", 0),
            json!({}),
        )],
        |_, _| {},
    );
    scene.level("4");
    assert_eq!(scene.pending(&scene.state(), 3), None);
    let state = scene.set(SetAutomaticUpdatesParameters {
        include_recommended_updates: Some(true),
        ..Default::default()
    });
    assert!(state.settings.include_recommended_updates);
    assert_eq!(scene.pending(&state, 3), Some(false));
    scene.at_then(
        at("2030-01-07T03:00:00Z"),
        "the scheduled installation",
        |state| state.results.last_installation_success_date.is_some(),
    );
    assert_eq!(scene.installs_of("recommended"), 1);
}

#[test]
fn a_pause_holds_everything_until_it_ends() {
    let scene = Scene::new(
        MONDAY,
        vec![important(
            1,
            "Important",
            counting_installer("important", 0),
        )],
        |_, _| {},
    );
    scene.level("ScheduledInstallation");
    let until = at("2030-01-09T00:00:00Z");
    let state = scene
        .session()
        .pause_automatic_updates(Some(until.to_string()))
        .unwrap();
    assert_eq!(state.paused_until, Some(until));
    let refused = scene.session().detect_now().unwrap_err();
    assert!(refused.to_string().contains("WU_E_AU_PAUSED"), "{refused}");
    // Monday's and Tuesday's 03:00 pass paused; the first tick after the
    // pause installs, so the installation's date is that tick's.
    scene.clock.set(at("2030-01-08T12:00:00Z"));
    let after = at("2030-01-09T01:00:00Z");
    scene.at_then(after, "the installation after the pause", |state| {
        state.paused_until.is_none() && state.results.last_installation_success_date.is_some()
    });
    let state = scene.state();
    assert_eq!(state.results.last_installation_success_date, Some(after));
    assert_eq!(scene.installs_of("important"), 1);
    // Too long a pause is refused.
    let refused = scene
        .session()
        .pause_automatic_updates(Some("2031-01-01T00:00:00Z".into()))
        .unwrap_err();
    assert!(refused.to_string().contains("E_INVALIDARG"), "{refused}");
    let resumed = scene.session().resume_automatic_updates().unwrap();
    assert_eq!(resumed.paused_until, None);
}

#[test]
fn an_update_that_may_ask_waits_for_an_administrator_and_is_tried_once() {
    let scene = Scene::new(
        MONDAY,
        vec![
            important(1, "Quiet", counting_installer("quiet", 0)),
            (
                4,
                "Asks",
                counting_installer("asks", 0),
                json!({
                    "autoSelectOnWebSites": true,
                    "installationBehavior": { "canRequestUserInput": true }
                }),
            ),
        ],
        |_, _| {},
    );
    scene.level("ScheduledInstallation");
    scene.at_then(
        at("2030-01-07T03:00:00Z"),
        "the scheduled installation",
        |state| state.results.last_installation_success_date.is_some(),
    );
    assert_eq!(scene.installs_of("quiet"), 1);
    assert_eq!(scene.installs_of("asks"), 0);
    let state = scene.state();
    let waiting: Vec<Uuid> = state
        .awaiting_interactive_user
        .iter()
        .map(|entry| entry.update_identity.update_id)
        .collect();
    assert_eq!(waiting, [id(4)]);
    assert_eq!(
        state.awaiting_interactive_user[0].hresult,
        openwua_model::hresult::WU_E_NO_INTERACTIVE_USER
    );
    // The next day's installation does not try it again.
    scene.at_then(
        at("2030-01-08T03:00:00Z"),
        "the next day's installation",
        |state| state.next_scheduled_installation == Some(at("2030-01-09T03:00:00Z")),
    );
    let history = scene
        .session()
        .create_update_searcher()
        .query_history(0, 10)
        .unwrap();
    let asks = history
        .iter()
        .filter(|entry| entry.update_identity.update_id == id(4))
        .count();
    assert_eq!(asks, 1, "{history:?}");
    assert_eq!(scene.installs_of("asks"), 0);
}

#[test]
fn a_deadline_installs_whatever_the_level_then_forces_the_restart_once() {
    let mut scene = Scene::new(
        MONDAY,
        vec![with_deadline(
            5,
            "Kernel",
            counting_installer("kernel", 194),
            "2030-01-07T10:00:00Z",
        )],
        |config, _| {
            config.restart.policy = RestartPolicy::Window;
            // Far from the deadline: the deadline is the limit.
            config.restart.window = "Sat 02:00-04:00".into();
            config.restart.users = UsersPolicy::Ignore;
        },
    );
    scene.level("aunlNotifyBeforeDownload");
    assert_eq!(scene.pending(&scene.state(), 5), Some(false));
    scene.at_then(
        at("2030-01-07T10:00:00Z"),
        "the deadline's restart",
        |state| !state.restart.history.is_empty(),
    );
    assert_eq!(scene.installs_of("kernel"), 1);
    scene.wait_restarts(1);
    assert_eq!(scene.restarts(), 1);
    let state = scene.state();
    let record = &state.restart.history[0];
    assert_eq!(record.outcome, RestartOutcome::Requested);
    assert_eq!(record.requested, at("2030-01-07T10:00:00Z"));
    assert!(record.reason.contains("deadline"), "{record:?}");
    // Later days and Saturday's window: the command is not run again in
    // this boot. A detection marks each day's tick as done.
    for day in ["2030-01-08T01:00:00Z", "2030-01-12T03:00:00Z"] {
        scene.clock.set(at(day));
        scene.session().detect_now().unwrap();
        scene.at_then(at(day), "a later detection", |state| {
            state.results.last_search_success_date == Some(at(day))
        });
    }
    assert_eq!(scene.restarts(), 1);
    // The machine came back with another boot ID: confirmed.
    scene.restart_agent(true);
    let state = scene.state();
    assert!(!state.restart.pending);
    assert_eq!(state.restart.history[0].outcome, RestartOutcome::Confirmed);
    assert_eq!(scene.restarts(), 1);
}

#[test]
fn the_restart_happens_inside_the_window_only_and_once() {
    // Friday 2030-01-04.
    let scene = Scene::new(
        "2030-01-04T00:00:00Z",
        vec![important(6, "Kernel", counting_installer("kernel", 194))],
        |config, _| {
            config.restart.policy = RestartPolicy::Window;
            config.restart.window = "Mon-Fri 02:00-04:00".into();
            config.restart.users = UsersPolicy::Ignore;
        },
    );
    scene.level("ScheduledInstallation");
    // Friday 05:00: installed at 03:00's schedule, after Friday's window.
    scene.at_then(at("2030-01-04T05:00:00Z"), "the installation", |state| {
        state.restart.pending && state.restart.scheduled_for.is_some()
    });
    let monday = scene.state().restart.scheduled_for.unwrap();
    assert!(
        monday >= at("2030-01-07T02:00:00Z") && monday < at("2030-01-07T04:00:00Z"),
        "{monday}"
    );
    assert_eq!(scene.restarts(), 0);
    // The clock jumps over Monday's window (a suspended machine): no
    // restart outside it; Tuesday's window instead.
    scene.at_then(at("2030-01-07T04:30:00Z"), "the next window", |state| {
        state.restart.scheduled_for != Some(monday)
    });
    assert_eq!(scene.restarts(), 0);
    let tuesday = scene.state().restart.scheduled_for.unwrap();
    assert!(
        tuesday >= at("2030-01-08T02:00:00Z") && tuesday < at("2030-01-08T04:00:00Z"),
        "{tuesday}"
    );
    scene.at_then(tuesday, "the restart", |state| {
        !state.restart.history.is_empty()
    });
    scene.wait_restarts(1);
    assert_eq!(scene.restarts(), 1);
    assert_eq!(scene.state().restart.history[0].requested, tuesday);
    // Wednesday's window passes: still once.
    let wednesday = at("2030-01-09T03:00:00Z");
    scene.clock.set(wednesday);
    scene.session().detect_now().unwrap();
    scene.at_then(wednesday, "Wednesday's detection", |state| {
        state.results.last_search_success_date == Some(wednesday)
    });
    assert_eq!(scene.restarts(), 1);
}

#[test]
fn a_failing_restart_command_is_recorded_and_the_fallback_runs() {
    let scene = Scene::new(
        MONDAY,
        vec![with_deadline(
            7,
            "Kernel",
            counting_installer("kernel", 194),
            "2030-01-07T01:00:00Z",
        )],
        |config, dir| {
            config.restart.policy = RestartPolicy::Window;
            config.restart.users = UsersPolicy::Ignore;
            config.restart.command = vec!["/nonexistent/systemctl".into(), "reboot".into()];
            config.restart.fallback_command = vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo fallback >>{:?}", dir.join("restarts")),
            ];
        },
    );
    scene.at_then(at("2030-01-07T01:00:00Z"), "the restart", |state| {
        !state.restart.history.is_empty()
    });
    scene.wait_restarts(1);
    assert_eq!(scene.restarts(), 1);
    let record = &scene.state().restart.history[0];
    assert_eq!(record.outcome, RestartOutcome::Requested);
    assert_eq!(record.command[0], "/bin/sh");
}

#[test]
fn settings_are_checked_named_as_wua_names_them_and_kept() {
    let scene = Scene::new(MONDAY, vec![], |_, _| {});
    let bad_level = scene
        .session()
        .set_automatic_updates(&SetAutomaticUpdatesParameters {
            notification_level: Some("aunlSometimes".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        bad_level.to_string().contains("E_INVALIDARG"),
        "{bad_level}"
    );
    let bad_hour = scene
        .session()
        .set_automatic_updates(&SetAutomaticUpdatesParameters {
            scheduled_installation_time: Some(24),
            ..Default::default()
        })
        .unwrap_err();
    assert!(bad_hour.to_string().contains("E_INVALIDARG"), "{bad_hour}");
    // Nothing changed.
    let state = scene.state();
    assert_eq!(
        state.settings,
        openwua_model::automatic::AutomaticUpdatesSettings::default()
    );
    // By number, WUA name or JSON name.
    for (spelling, expected) in [("3", 3), ("aunlScheduledInstallation", 4), ("Disabled", 1)] {
        let state = scene.set(SetAutomaticUpdatesParameters {
            notification_level: Some(spelling.into()),
            ..Default::default()
        });
        assert_eq!(state.settings.notification_level.value(), expected);
    }
    // Kept across the agent's restarts.
    let mut scene = scene;
    scene.restart_agent(false);
    assert_eq!(scene.state().settings.notification_level.value(), 1);
}
