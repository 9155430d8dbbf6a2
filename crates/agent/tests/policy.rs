//! Who may do what, as attacks through a real `wua-agent`: a non-admin's
//! install is refused before it takes anything, a call's lists and strings
//! are bounded, and jobs are shown only to their owners and administrators.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::{Value, json};
use uuid::Uuid;

const INSTALL: &str = "org.openwua.Agent.Install";
const DOWNLOAD: &str = "org.openwua.Agent.Download";

fn id(n: u128) -> String {
    Uuid::from_u128(n).to_string()
}

fn quiet_installer() -> Installer {
    Installer {
        script: "exit 0".into(),
        uninstall: false,
        exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
    }
}

/// An agent (its directory open to other users) with updates 1..=count;
/// update 1 may ask the user something.
fn agent_with_updates(count: u128) -> AgentProcess {
    let agent = AgentProcess::start(&[]);
    // tempfile makes 0700 directories; the user must reach the socket.
    std::fs::set_permissions(agent.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = agent.dir.path().to_path_buf();
    let (revisions, payloads): (Vec<_>, Vec<_>) = (1..=count)
        .map(|n| {
            let extra = if n == 1 {
                json!({ "installationBehavior": { "canRequestUserInput": true } })
            } else {
                json!({})
            };
            installable(&dir, n, &format!("Update {n}"), quiet_installer(), extra)
        })
        .unzip();
    let (key, public) = key();
    let package = dir.join("service.owpkg");
    write_with_content(&snapshot(1, revisions), &payloads, &key, &package);
    add_package(&agent, &package, &public).unwrap();
    agent
}

/// What a refused call must leave as it was.
fn observable(agent: &AgentProcess) -> (Value, Value, Value, u64) {
    let history = agent
        .call(
            "org.openwua.Agent.QueryHistory",
            json!({ "start": 0, "count": 1000 }),
        )
        .unwrap();
    let jobs = agent.call("org.openwua.Agent.ListJobs", json!({})).unwrap();
    let state = agent
        .call("org.openwua.Agent.GetInstallerState", json!({}))
        .unwrap();
    let store_size = std::fs::metadata(agent.store()).unwrap().len()
        + std::fs::metadata(agent.dir.path().join("state/agent.db-wal"))
            .map_or(0, |metadata| metadata.len());
    (history, jobs, state, store_size)
}

fn wua_error(reply: &Value) -> (&str, &str) {
    let shown: String = reply.to_string().chars().take(500).collect();
    assert_eq!(reply["error"], "org.openwua.Agent.WuaError", "{shown}");
    (
        reply["parameters"]["name"].as_str().unwrap(),
        reply["parameters"]["detail"].as_str().unwrap(),
    )
}

#[test]
fn a_non_admin_install_of_everything_is_refused_before_any_work() {
    if !is_root() {
        openwua_testkit::skip(
            "a_non_admin_install_of_everything_is_refused_before_any_work",
            "it creates a throwaway user",
        );
        return;
    }
    let user = ThrowawayUser::create("owua-pol");
    let agent = agent_with_updates(20);
    let all: Vec<String> = (1..=20).map(id).collect();
    run_job(&agent, DOWNLOAD, json!({ "updateIds": all })).unwrap();
    // Root without a client to answer: update 1 waits for an interactive user.
    let first = run_job(&agent, INSTALL, json!({ "updateIds": [id(1)] })).unwrap();
    assert_eq!(first["result"]["updates"][0]["hresult"], "0x80240020");
    let before = observable(&agent);
    assert_eq!(
        before.2["state"]["awaitingInteractiveUser"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let client_id = "x".repeat(1 << 20);
    let reply = user.call(
        &agent.socket(),
        INSTALL,
        json!({ "updateIds": all, "clientApplicationId": client_id }),
    );
    let (name, _) = wua_error(&reply);
    assert_eq!(name, "E_ACCESSDENIED");
    let download = user.call(&agent.socket(), DOWNLOAD, json!({ "updateIds": all }));
    assert_eq!(wua_error(&download).0, "E_ACCESSDENIED");

    // No job, no history row, the installer free, the waiting list whole,
    // and the store no bigger.
    assert_eq!(observable(&agent), before);
}

#[test]
fn a_call_s_lists_and_strings_are_bounded() {
    let agent = agent_with_updates(2);
    let too_many: Vec<String> = (0..10_001).map(|_| Uuid::new_v4().to_string()).collect();
    let before = observable(&agent);
    let reply = agent
        .call(INSTALL, json!({ "updateIds": too_many }))
        .unwrap_err();
    let (name, detail) = wua_error(&reply);
    assert_eq!(name, "E_INVALIDARG");
    assert!(detail.contains("at most 10000"), "{detail}");

    let twice = agent
        .call(INSTALL, json!({ "updateIds": [id(2), id(2)] }))
        .unwrap_err();
    let (name, detail) = wua_error(&twice);
    assert_eq!(name, "E_INVALIDARG");
    assert!(detail.contains("named twice"), "{detail}");

    let long_client = agent
        .call(
            INSTALL,
            json!({ "updateIds": [id(2)], "clientApplicationId": "x".repeat(300) }),
        )
        .unwrap_err();
    assert_eq!(wua_error(&long_client).0, "E_INVALIDARG");

    let long_criteria = agent
        .call(
            "org.openwua.Agent.Search",
            json!({ "criteria": format!("IsInstalled=0{}", " ".repeat(70_000)) }),
        )
        .unwrap_err();
    assert_eq!(wua_error(&long_criteria).0, "E_INVALIDARG");
    assert_eq!(observable(&agent), before);
}

#[test]
fn a_non_admin_sees_only_its_own_jobs() {
    if !is_root() {
        openwua_testkit::skip(
            "a_non_admin_sees_only_its_own_jobs",
            "it creates a throwaway user",
        );
        return;
    }
    let user = ThrowawayUser::create("owua-jobs");
    let agent = agent_with_updates(2);
    let root_job = run_job(&agent, DOWNLOAD, json!({ "updateIds": [id(2)] })).unwrap();
    let job_id = root_job["jobId"].as_str().unwrap();

    let listed = user.call(&agent.socket(), "org.openwua.Agent.ListJobs", json!({}));
    assert_eq!(
        listed["parameters"]["jobs"].as_array().map(Vec::len),
        Some(0)
    );
    let watched = user.call(
        &agent.socket(),
        "org.openwua.Agent.WatchJob",
        json!({ "jobId": job_id }),
    );
    assert_eq!(wua_error(&watched).0, "E_ACCESSDENIED");
    let aborted = user.call(
        &agent.socket(),
        "org.openwua.Agent.AbortJob",
        json!({ "jobId": job_id }),
    );
    assert_eq!(wua_error(&aborted).0, "E_ACCESSDENIED");
    // Root still sees it.
    let all = agent.call("org.openwua.Agent.ListJobs", json!({})).unwrap();
    assert_eq!(all["jobs"].as_array().unwrap().len(), 1);
}

/// An agent whose update 1 may ask the user something, 2 runs until it is
/// stopped (having written `$OPENWUA_SANDBOX/started`), 3 writes
/// `$OPENWUA_SANDBOX/third`; all downloaded, and 1 refused by root's
/// non-interactive install, so it waits for an interactive user.
fn agent_with_a_waiting_and_a_slow_update() -> AgentProcess {
    let agent = AgentProcess::start(&[]);
    let dir = agent.dir.path().to_path_buf();
    let scripts = [
        "exit 0",
        "touch \"$OPENWUA_SANDBOX/started\"; sleep 60",
        "touch \"$OPENWUA_SANDBOX/third\"",
    ];
    let (revisions, payloads): (Vec<_>, Vec<_>) = scripts
        .iter()
        .zip(1u128..)
        .map(|(script, n)| {
            let extra = if n == 1 {
                json!({ "installationBehavior": { "canRequestUserInput": true } })
            } else {
                json!({})
            };
            let installer = Installer {
                script: (*script).to_owned(),
                uninstall: false,
                exit_codes: json!({ "codes": [{ "code": 0, "outcome": "succeeded" }] }),
            };
            installable(&dir, n, &format!("Update {n}"), installer, extra)
        })
        .unzip();
    let (key, public) = key();
    let package = dir.join("service.owpkg");
    write_with_content(&snapshot(1, revisions), &payloads, &key, &package);
    add_package(&agent, &package, &public).unwrap();
    run_job(
        &agent,
        DOWNLOAD,
        json!({ "updateIds": [id(1), id(2), id(3)] }),
    )
    .unwrap();
    let refused = run_job(&agent, INSTALL, json!({ "updateIds": [id(1)] })).unwrap();
    assert_eq!(refused["result"]["updates"][0]["hresult"], "0x80240020");
    assert_eq!(waiting(&agent), [id(1)]);
    agent
}

/// The updates `GetInstallerState` lists as waiting for an interactive user.
fn waiting(agent: &AgentProcess) -> Vec<String> {
    let state = agent
        .call("org.openwua.Agent.GetInstallerState", json!({}))
        .unwrap();
    state["state"]["awaitingInteractiveUser"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry["updateIdentity"]["updateId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn wait_for_file(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn abort_mid_install_stops_before_the_next_update_and_leaves_the_waiting_list() {
    let agent = agent_with_a_waiting_and_a_slow_update();
    let (mut follower, job_id) = start_job(
        &agent,
        INSTALL,
        json!({ "updateIds": [id(2), id(1), id(3)] }),
    );
    wait_for_file(&agent.dir.path().join("sandbox/started"));
    agent
        .call("org.openwua.Agent.AbortJob", json!({ "jobId": job_id }))
        .unwrap();
    let job = job_end(&mut follower);
    let codes: Vec<&str> = job["result"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|update| update["resultCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["Aborted", "Aborted", "Aborted"]);
    assert!(!agent.dir.path().join("sandbox/third").exists());
    // Aborted before it started is no attempt: update 1 still waits.
    assert_eq!(waiting(&agent), [id(1)]);
}

#[test]
fn sigterm_during_an_install_ends_the_agent_and_history_keeps_the_interruption() {
    let mut agent = agent_with_a_waiting_and_a_slow_update();
    let (_follower, _job_id) = start_job(
        &agent,
        INSTALL,
        json!({ "updateIds": [id(2), id(1), id(3)] }),
    );
    wait_for_file(&agent.dir.path().join("sandbox/started"));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while agent.child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent is still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    agent.kill_and_restart();
    let history = agent
        .call(
            "org.openwua.Agent.QueryHistory",
            json!({ "start": 0, "count": 10 }),
        )
        .unwrap();
    let interrupted = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["updateIdentity"]["updateId"] == id(2))
        .expect("a history entry for the interrupted update");
    assert_eq!(interrupted["resultCode"], "Aborted");
    assert!(!agent.dir.path().join("sandbox/third").exists());
    assert_eq!(waiting(&agent), [id(1)]);
}
