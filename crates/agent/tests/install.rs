//! Downloads, installs and uninstalls through a real `wua-agent` on a real
//! socket, with real installer processes: results, history, reboot state,
//! the one-installation rule, abort, and a SIGKILL in the middle.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use uuid::Uuid;

const INSTALL: &str = "org.openwua.Agent.Install";
const UNINSTALL: &str = "org.openwua.Agent.Uninstall";
const DOWNLOAD: &str = "org.openwua.Agent.Download";

/// A script that installs by writing `$OPENWUA_SANDBOX/<name>` and
/// uninstalls by removing it.
fn marker_installer(name: &str, install_exit: i32) -> Installer {
    Installer {
        script: format!(
            "case $1 in\n install) echo installed >\"$OPENWUA_SANDBOX/{name}\"; exit {install_exit};;\n uninstall) rm -f \"$OPENWUA_SANDBOX/{name}\";;\nesac"
        ),
        uninstall: true,
        exit_codes: json!({ "codes": [
            { "code": 0, "outcome": "succeeded" },
            { "code": 194, "outcome": "succeeded_reboot_required" },
        ]}),
    }
}

fn id(n: u128) -> String {
    Uuid::from_u128(n).to_string()
}

struct Fixture {
    agent: AgentProcess,
}

impl Fixture {
    /// An agent with one service whose updates are `updates`.
    fn new(updates: Vec<(u128, &str, Installer, Value)>) -> Fixture {
        Fixture::with_install_settings("", updates)
    }

    /// The same, with `lines` added to the agent's `[install]` settings.
    fn with_install_settings(lines: &str, updates: Vec<(u128, &str, Installer, Value)>) -> Fixture {
        let lines = lines.to_owned();
        let agent = AgentProcess::start_with_config(|_| (lines, String::new()));
        let dir = agent.dir.path().to_path_buf();
        let mut revisions = Vec::new();
        let mut payloads = Vec::new();
        for (number, title, installer, extra) in updates {
            let (revision, payload) = installable(&dir, number, title, installer, extra);
            revisions.push(revision);
            payloads.push(payload);
        }
        let (key, public) = key();
        let package = dir.join("service.owpkg");
        write_with_content(&snapshot(1, revisions), &payloads, &key, &package);
        add_package(&agent, &package, &public).unwrap();
        Fixture { agent }
    }

    fn sandbox(&self) -> std::path::PathBuf {
        self.agent.dir.path().join("sandbox")
    }

    fn job(&self, method: &str, ids: &[u128]) -> Value {
        let ids: Vec<String> = ids.iter().map(|n| id(*n)).collect();
        run_job(&self.agent, method, json!({ "updateIds": ids })).unwrap()
    }

    /// Starts a job with `more`: the connection following it and its ID.
    fn start(&self, method: &str, ids: &[u128]) -> (Client, String) {
        let ids: Vec<String> = ids.iter().map(|n| id(*n)).collect();
        start_job(&self.agent, method, json!({ "updateIds": ids }))
    }

    fn state(&self, n: u128) -> Value {
        let reply = self
            .agent
            .call("org.openwua.Agent.GetUpdate", json!({ "updateId": id(n) }))
            .unwrap();
        reply["entry"]["state"].clone()
    }

    fn history(&self) -> Vec<Value> {
        let reply = self
            .agent
            .call(
                "org.openwua.Agent.QueryHistory",
                json!({ "start": 0, "count": 100 }),
            )
            .unwrap();
        reply["entries"].as_array().unwrap().clone()
    }
}

fn codes(job: &Value) -> Vec<(&str, &str)> {
    job["result"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|update| {
            (
                update["resultCode"].as_str().unwrap(),
                update["hresult"].as_str().unwrap(),
            )
        })
        .collect()
}

#[test]
fn download_install_uninstall_with_results_and_history() {
    let fixture = Fixture::new(vec![
        (1, "Quiet tool", marker_installer("quiet", 0), json!({})),
        (
            2,
            "Licensed tool",
            marker_installer("licensed", 0),
            json!({ "eulaText": "Terms." }),
        ),
        (3, "Failing tool", marker_installer("failing", 7), json!({})),
    ]);
    assert_eq!(fixture.state(1)["isDownloaded"], json!(false));

    let download = fixture.job(DOWNLOAD, &[1, 2, 3]);
    assert_eq!(download["state"], "Completed");
    assert_eq!(download["result"]["resultCode"], "Succeeded");
    assert_eq!(fixture.state(1)["isDownloaded"], json!(true));
    // A second download has nothing to fetch.
    let again = fixture.job(DOWNLOAD, &[1]);
    assert_eq!(codes(&again), [("Succeeded", "0x00240008")]);

    let install = fixture.job(INSTALL, &[1, 2, 3]);
    assert_eq!(
        codes(&install),
        [
            ("Succeeded", "0x00000000"),
            ("Failed", "0x80240023"), // WU_E_EULAS_DECLINED
            ("Failed", "0x8024200B"), // WU_E_UH_INSTALLERFAILURE
        ]
    );
    assert_eq!(install["result"]["resultCode"], "SucceededWithErrors");
    assert_eq!(install["result"]["hresult"], "0x00240003");
    assert_eq!(install["result"]["updates"][2]["unmappedResultCode"], 7);
    assert!(fixture.sandbox().join("quiet").exists());
    assert!(!fixture.sandbox().join("licensed").exists());
    assert_eq!(fixture.state(1)["isInstalled"], json!(true));
    assert_eq!(fixture.state(3)["isInstalled"], json!(false));

    // Installing it again runs nothing.
    let again = fixture.job(INSTALL, &[1]);
    assert_eq!(codes(&again), [("Succeeded", "0x00240006")]);

    let uninstall = fixture.job(UNINSTALL, &[1]);
    assert_eq!(codes(&uninstall), [("Succeeded", "0x00000000")]);
    assert!(!fixture.sandbox().join("quiet").exists());
    assert_eq!(fixture.state(1)["isInstalled"], json!(false));

    // One entry per update per operation, newest first.
    let history = fixture.history();
    let summary: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|entry| {
            (
                entry["operation"].as_str().unwrap(),
                entry["resultCode"].as_str().unwrap(),
                entry["title"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Uninstallation", "Succeeded", "Quiet tool"),
            ("Installation", "Succeeded", "Quiet tool"),
            ("Installation", "Failed", "Failing tool"),
            ("Installation", "Failed", "Licensed tool"),
            ("Installation", "Succeeded", "Quiet tool"),
        ]
    );
    assert_eq!(history[2]["unmappedResultCode"], 7);
}

#[test]
fn accepted_eula_and_not_downloaded_and_empty_calls() {
    let fixture = Fixture::new(vec![
        (1, "Quiet tool", marker_installer("quiet", 0), json!({})),
        (
            2,
            "Licensed tool",
            marker_installer("licensed", 0),
            json!({ "eulaText": "Terms." }),
        ),
    ]);
    let install = fixture.job(INSTALL, &[1]);
    assert_eq!(codes(&install), [("Failed", "0x80246007")]); // WU_E_DM_NOTDOWNLOADED
    assert_eq!(install["result"]["resultCode"], "Failed");
    assert_eq!(install["result"]["hresult"], "0x80240022"); // WU_E_ALL_UPDATES_FAILED

    for method in [INSTALL, UNINSTALL, DOWNLOAD] {
        let error = run_job(&fixture.agent, method, json!({ "updateIds": [] })).unwrap_err();
        assert_eq!(error_name(&error), "WU_E_NO_UPDATE", "{method}");
    }
    let unknown = run_job(&fixture.agent, INSTALL, json!({ "updateIds": [id(99)] })).unwrap_err();
    assert_eq!(error_name(&unknown), "WU_E_DS_NODATA");

    fixture
        .agent
        .call("org.openwua.Agent.AcceptEula", json!({ "updateId": id(2) }))
        .unwrap();
    fixture.job(DOWNLOAD, &[2]);
    let install = fixture.job(INSTALL, &[2]);
    assert_eq!(codes(&install), [("Succeeded", "0x00000000")]);
}

#[test]
fn a_reboot_required_blocks_installs_until_the_boot_changes() {
    let mut fixture = Fixture::new(vec![
        (
            1,
            "Needs a restart",
            marker_installer("reboot", 194),
            json!({}),
        ),
        (2, "Quiet tool", marker_installer("quiet", 0), json!({})),
    ]);
    fixture.job(DOWNLOAD, &[1, 2]);
    let install = fixture.job(INSTALL, &[1]);
    assert_eq!(install["result"]["rebootRequired"], json!(true));
    assert_eq!(
        install["result"]["updates"][0]["rebootRequired"],
        json!(true)
    );
    assert_eq!(install["result"]["updates"][0]["unmappedResultCode"], 194);
    let state = fixture
        .agent
        .call("org.openwua.Agent.GetInstallerState", json!({}))
        .unwrap();
    assert_eq!(
        state["state"]["rebootRequiredBeforeInstallation"],
        json!(true)
    );
    assert_eq!(state["state"]["rebootPendingUpdates"], json!([id(1)]));
    let info = fixture
        .agent
        .call("org.openwua.Agent.GetSystemInfo", json!({}))
        .unwrap();
    assert_eq!(info["info"]["rebootRequired"], json!(true));
    let refused = run_job(&fixture.agent, INSTALL, json!({ "updateIds": [id(2)] })).unwrap_err();
    assert_eq!(error_name(&refused), "WU_E_INSTALL_NOT_ALLOWED");

    // The same boot after an agent restart: still pending.
    fixture.agent.kill_and_restart();
    let still = run_job(&fixture.agent, INSTALL, json!({ "updateIds": [id(2)] })).unwrap_err();
    assert_eq!(error_name(&still), "WU_E_INSTALL_NOT_ALLOWED");

    // A new boot ID is a reboot: the pending state clears by itself.
    std::fs::write(
        fixture.agent.dir.path().join("boot_id"),
        format!("{}\n", Uuid::new_v4()),
    )
    .unwrap();
    fixture.agent.kill_and_restart();
    let install = fixture.job(INSTALL, &[2]);
    assert_eq!(codes(&install), [("Succeeded", "0x00000000")]);
}

/// Waits until `path` exists.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn slow_installer(marker: &str) -> Installer {
    Installer {
        script: format!("touch \"$OPENWUA_SANDBOX/{marker}\"\nsleep 30"),
        uninstall: false,
        exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
    }
}

#[test]
fn one_installation_at_a_time_and_abort_stops_the_rest() {
    let fixture = Fixture::new(vec![
        (1, "Slow tool", slow_installer("started"), json!({})),
        (2, "Quiet tool", marker_installer("quiet", 0), json!({})),
    ]);
    fixture.job(DOWNLOAD, &[1, 2]);
    let (mut first, job_id) = fixture.start(INSTALL, &[1, 2]);
    wait_for(&fixture.sandbox().join("started"));

    // A second caller is refused while the first installs.
    let busy = run_job(&fixture.agent, INSTALL, json!({ "updateIds": [id(2)] })).unwrap_err();
    assert_eq!(error_name(&busy), "WU_E_INSTALL_NOT_ALLOWED");
    let state = fixture
        .agent
        .call("org.openwua.Agent.GetInstallerState", json!({}))
        .unwrap();
    assert_eq!(state["state"]["isBusy"], json!(true));
    assert_eq!(state["state"]["busyJobId"], json!(job_id));

    fixture
        .agent
        .call("org.openwua.Agent.AbortJob", json!({ "jobId": job_id }))
        .unwrap();
    let job = &job_end(&mut first);
    assert_eq!(job["state"], "Completed");
    assert_eq!(job["result"]["resultCode"], "Aborted");
    assert_eq!(job["result"]["updates"][0]["resultCode"], "Aborted");
    assert_eq!(job["result"]["updates"][1]["resultCode"], "Aborted");
    assert!(!fixture.sandbox().join("quiet").exists());

    // The installation is free again, and the job is listed.
    let install = fixture.job(INSTALL, &[2]);
    assert_eq!(codes(&install), [("Succeeded", "0x00000000")]);
    let jobs = fixture
        .agent
        .call("org.openwua.Agent.ListJobs", json!({}))
        .unwrap();
    assert!(
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|listed| listed["jobId"] == json!(job_id))
    );
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet),
/// polled until `deadline`.
fn ended_by(pid: &str, deadline: Instant) -> bool {
    loop {
        let ended = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if ended || Instant::now() > deadline {
            return ended;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An installer dies with a SIGKILLed agent rather than run on beside the
/// next one.
#[test]
fn an_installer_does_not_outlive_a_killed_agent() {
    // The installer leaves a process of its own running in its group, as
    // a daemon restarted by a postinst would.
    let mut fixture = Fixture::new(vec![(
        1,
        "Slow tool",
        Installer {
            script: "sleep 300 &\necho $! > \"$OPENWUA_SANDBOX/left.pid\"\n\
                     echo $$ > \"$OPENWUA_SANDBOX/installer.pid\"\nsleep 300"
                .into(),
            uninstall: false,
            exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
        },
        json!({}),
    )]);
    fixture.job(DOWNLOAD, &[1]);
    let (_client, _job_id) = fixture.start(INSTALL, &[1]);
    let installer = whole_pid(&fixture.sandbox().join("installer.pid"));
    let left = whole_pid(&fixture.sandbox().join("left.pid"));
    // The next agent stops what is left of the group before anything else.
    fixture.agent.kill_and_restart();
    let ended = ended_by(&installer, Instant::now() + Duration::from_secs(10));
    let left_ended = ended_by(&left, Instant::now() + Duration::from_secs(10));
    for (pid, ended) in [(&installer, ended), (&left, left_ended)] {
        if !ended {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid.parse().unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    assert!(ended, "installer {installer} outlived the restarted agent");
    assert!(
        left_ended,
        "its process {left} outlived the restarted agent"
    );
}

/// The pid a script writes to `path`, once its line is whole.
fn whole_pid(path: &Path) -> String {
    wait_for(path);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        if text.ends_with('\n') {
            return text.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no whole pid in {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_agent_records_the_interrupted_install_and_frees_the_lock() {
    let mut fixture = Fixture::new(vec![
        (1, "Slow tool", slow_installer("started"), json!({})),
        (2, "Quiet tool", marker_installer("quiet", 0), json!({})),
    ]);
    fixture.job(DOWNLOAD, &[1, 2]);
    let (_client, job_id) = fixture.start(INSTALL, &[1]);
    wait_for(&fixture.sandbox().join("started"));
    fixture.agent.kill_and_restart();

    let history = fixture.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["title"], "Slow tool");
    assert_eq!(history[0]["resultCode"], "Aborted");
    assert_eq!(history[0]["hresult"], "0x8024001E"); // WU_E_SERVICE_STOP
    assert_eq!(fixture.state(1)["isInstalled"], json!(false));
    // The job is still known, completed as cut short by the stop.
    let watched = fixture
        .agent
        .call("org.openwua.Agent.WatchJob", json!({ "jobId": job_id }))
        .unwrap();
    assert_eq!(watched["job"]["state"], "Completed");
    assert_eq!(watched["job"]["result"]["resultCode"], "Aborted");
    assert_eq!(watched["job"]["result"]["hresult"], "0x8024001E");
    // A restart does not write it twice.
    fixture.agent.kill_and_restart();
    assert_eq!(fixture.history().len(), 1);
    let install = fixture.job(INSTALL, &[2]);
    assert_eq!(codes(&install), [("Succeeded", "0x00000000")]);
}

#[test]
fn an_exclusive_update_must_be_installed_alone() {
    let fixture = Fixture::new(vec![
        (
            1,
            "Firmware",
            marker_installer("firmware", 0),
            json!({ "installationBehavior": { "impact": "RequiresExclusiveHandling" } }),
        ),
        (2, "Quiet tool", marker_installer("quiet", 0), json!({})),
    ]);
    fixture.job(DOWNLOAD, &[1, 2]);
    let refused = run_job(
        &fixture.agent,
        INSTALL,
        json!({ "updateIds": [id(1), id(2)] }),
    )
    .unwrap_err();
    assert_eq!(error_name(&refused), "WU_E_EXCLUSIVE_INSTALL_CONFLICT");
    assert!(fixture.history().is_empty());
    let alone = fixture.job(INSTALL, &[1]);
    assert_eq!(codes(&alone), [("Succeeded", "0x00000000")]);
}

#[test]
fn force_quiet_refuses_an_update_that_may_ask() {
    let fixture = Fixture::new(vec![
        (
            1,
            "Asks a question",
            marker_installer("asks", 0),
            json!({ "installationBehavior": { "canRequestUserInput": true } }),
        ),
        (2, "Quiet tool", marker_installer("quiet", 0), json!({})),
    ]);
    fixture.job(DOWNLOAD, &[1, 2]);
    let job = run_job(
        &fixture.agent,
        INSTALL,
        json!({ "updateIds": [id(1), id(2)], "forceQuiet": true }),
    )
    .unwrap();
    assert_eq!(
        codes(&job),
        [("Failed", "0x80242004"), ("Succeeded", "0x00000000")]
    );
    assert!(!fixture.sandbox().join("asks").exists());
}

#[test]
fn a_job_outlives_its_client_and_can_be_watched_again() {
    let fixture = Fixture::new(vec![(
        1,
        "Takes a moment",
        Installer {
            script: "sleep 1\ntouch \"$OPENWUA_SANDBOX/done\"".into(),
            uninstall: false,
            exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
        },
        json!({}),
    )]);
    fixture.job(DOWNLOAD, &[1]);
    // The client goes away at once, mid-install.
    let (_, job_id) = fixture.start(INSTALL, &[1]);
    let watched = fixture
        .agent
        .client()
        .call_more("org.openwua.Agent.WatchJob", json!({ "jobId": job_id }));
    let last = &watched.last().unwrap()["parameters"]["job"];
    assert_eq!(last["state"], "Completed");
    assert_eq!(last["result"]["resultCode"], "Succeeded");
    assert!(fixture.sandbox().join("done").exists());
    let unknown = fixture
        .agent
        .call("org.openwua.Agent.WatchJob", json!({ "jobId": id(42) }))
        .unwrap_err();
    assert_eq!(error_name(&unknown), "WU_E_INVALID_OPERATION");
}

#[test]
fn installed_content_is_evicted_past_the_limit_and_fetched_again_to_uninstall() {
    let fixture = Fixture::with_install_settings(
        "cache_max_bytes = 0",
        vec![
            (1, "Quiet tool", marker_installer("quiet", 0), json!({})),
            (2, "Other tool", marker_installer("other", 0), json!({})),
        ],
    );
    fixture.job(DOWNLOAD, &[1, 2]);
    fixture.job(INSTALL, &[1]);
    // Over the limit: the installed update's content goes, the other
    // update's stays because it is still to be installed.
    assert_eq!(fixture.state(1)["isDownloaded"], json!(false));
    assert_eq!(fixture.state(2)["isDownloaded"], json!(true));

    // Its uninstaller is a program of the payload, so it needs it back.
    let refused = fixture.job(UNINSTALL, &[1]);
    assert_eq!(codes(&refused), [("Failed", "0x80246007")]); // WU_E_DM_NOTDOWNLOADED
    let forced = run_job(
        &fixture.agent,
        DOWNLOAD,
        json!({ "updateIds": [id(1)], "isForced": true }),
    )
    .unwrap();
    assert_eq!(codes(&forced), [("Succeeded", "0x00000000")]);
    let uninstall = fixture.job(UNINSTALL, &[1]);
    assert_eq!(codes(&uninstall), [("Succeeded", "0x00000000")]);
    assert!(!fixture.sandbox().join("quiet").exists());
}

#[test]
fn a_stopping_agent_aborts_its_running_install_and_records_it() {
    let mut fixture = Fixture::new(vec![(1, "Slow tool", slow_installer("started"), json!({}))]);
    fixture.job(DOWNLOAD, &[1]);
    let (_client, job_id) = fixture.start(INSTALL, &[1]);
    wait_for(&fixture.sandbox().join("started"));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(fixture.agent.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = fixture.agent.child.wait().unwrap();
    assert!(status.success(), "wua-agent exited with {status}");
    // Started again, on the same state.
    fixture.agent.kill_and_restart();
    let history = fixture.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["resultCode"], "Aborted");
    assert_eq!(history[0]["hresult"], "0x80242008"); // WU_E_UH_OPERATIONCANCELLED
    let watched = fixture
        .agent
        .call("org.openwua.Agent.WatchJob", json!({ "jobId": job_id }))
        .unwrap();
    assert_eq!(watched["job"]["result"]["resultCode"], "Aborted");
    assert_eq!(
        watched["job"]["result"]["updates"][0]["hresult"],
        "0x80242008"
    );
}
