//! Automatic approval rules and rollouts end to end: a real `wua-server`
//! (SQLite) and real agents (in-process `Background` agents, each on its
//! own socket and state directory with a machine ID of its own) that sync,
//! install with real installer scripts and report.
//!
//! - A rule approves a critical security update at publish; two agents
//!   install it and the reports show both; a new revision that becomes
//!   critical is approved by the same rule; a dry run lists without
//!   approving, and a run approves.
//! - A rollout over six agents whose first ring's installs fail halts
//!   before the second ring, and says why; a good update advances ring by
//!   ring (the second ring half of a group, by the hash of the computer
//!   ID) and completes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Server;
use openwua_agent::{Background, Config};
use openwua_client::blocking::UpdateSession;
use openwua_model::enums::OperationResultCode;
use openwua_testkit::wait_until;
use serde_json::Value;
use uuid::Uuid;

const SECURITY: &str = "5a1e0000-0000-4000-8000-000000000001";
const PLAIN: &str = "5a1e0000-0000-4000-8000-000000000002";
const LATER: &str = "5a1e0000-0000-4000-8000-000000000003";
const BAD: &str = "5a1e0000-0000-4000-8000-000000000004";
const GOOD: &str = "5a1e0000-0000-4000-8000-000000000005";

const SERVICE: &str = r#"
service_id = "5a1e0000-0000-4000-8000-0000000000ff"
name = "Automation test service"
content_url_base = "content/"

[[categories]]
id = "5a1e0000-0000-4000-8000-0000000000c0"
name = "Example Corp"
type = "company"

[[categories]]
id = "5a1e0000-0000-4000-8000-0000000000c1"
name = "openssl"
type = "product"
parent = "Example Corp"
"#;

/// Writes an update's manifest directory: `script` is its installer.
fn write_update(service: &Path, dir: &str, id: &str, extra: &str, script: &str) {
    let dir = service.join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("install.sh"), script).unwrap();
    std::fs::write(
        dir.join("update.toml"),
        format!(
            "update_id = \"{id}\"\ntitle = \"{dir} update\"\ndescription = \"A test update.\"\n\
             categories = [\"openssl\"]\nfiles = [\"install.sh\"]\n{extra}\n\
             [handler]\ntype = \"command\"\nprogram = \"install.sh\"\n",
            dir = dir.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
}

const SUCCEEDS: &str = "#!/bin/sh\nexit 0\n";
const FAILS: &str = "#!/bin/sh\necho 'made to fail' >&2\nexit 3\n";

fn service_dir(root: &Path) -> std::path::PathBuf {
    let service = root.join("service");
    std::fs::create_dir_all(&service).unwrap();
    std::fs::write(service.join("service.toml"), SERVICE).unwrap();
    service
}

/// An agent of its own under `dir`, registered with `server` in `group`.
fn agent(server: &Server, key: &str, dir: &Path, n: usize, group: Option<&str>) -> Background {
    std::fs::create_dir_all(dir).unwrap();
    let machine_id = dir.join("machine-id");
    std::fs::write(&machine_id, format!("{n:032x}\n")).unwrap();
    let mut config = Config {
        owner_is_admin: true,
        ..Config::under(dir)
    };
    config.facts.machine_id = machine_id;
    config.reports.retry_base_millis = 50;
    config.reports.retry_max_millis = 400;
    let agent = Background::start(config).unwrap();
    UpdateSession::connect(agent.socket())
        .unwrap()
        .create_update_service_manager()
        .add_server_service(&server.url, key, group, None, true)
        .unwrap();
    agent
}

fn session(agent: &Background) -> UpdateSession {
    UpdateSession::connect(agent.socket()).unwrap()
}

/// Syncs, then whether the agent holds `update`.
fn sees(agent: &Background, update: &str) -> bool {
    let session = session(agent);
    session.sync(None, |_| {}).unwrap();
    session.get_update(update.parse::<Uuid>().unwrap()).is_ok()
}

/// Downloads and installs `update`; returns the install's result code.
fn install(agent: &Background, update: &str) -> OperationResultCode {
    let session = session(agent);
    let id: Uuid = update.parse().unwrap();
    let mut downloader = session.create_update_downloader();
    downloader.updates = vec![id];
    let downloaded = downloader.download().unwrap();
    assert_eq!(
        downloaded.result.as_ref().unwrap().result_code,
        OperationResultCode::Succeeded,
        "{downloaded:?}"
    );
    let mut installer = session.create_update_installer();
    installer.updates = vec![id];
    let installed = installer.install().unwrap();
    installed.result.as_ref().unwrap().result_code
}

/// The agent's computer ID at the server, from its store.
fn computer_id(dir: &Path) -> Uuid {
    let store = rusqlite::Connection::open(dir.join("state/agent.db")).unwrap();
    let id: String = store
        .query_row(
            "SELECT computer_id FROM services WHERE is_scan_package = 0",
            [],
            |row| row.get(0),
        )
        .unwrap();
    id.parse().unwrap()
}

fn update_line(server: &Server, update: &str) -> Value {
    server.json(&["report", "updates", update])[0].clone()
}

fn approvals(server: &Server, update: &str) -> Vec<Value> {
    let (status, body) = server.admin("GET", &format!("/api/v1/updates/{update}/approvals"), b"");
    assert_eq!(status, 200);
    serde_json::from_slice::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[test]
fn a_rule_approves_a_security_update_and_a_revision_that_comes_to_match() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), None, &[]);
    let service = service_dir(root.path());
    let critical = "classification = \"security_updates\"\nmsrc_severity = \"critical\"\n";
    write_update(&service, "security", SECURITY, critical, SUCCEEDS);
    write_update(
        &service,
        "plain",
        PLAIN,
        "classification = \"updates\"\n",
        SUCCEEDS,
    );
    write_update(
        &service,
        "later",
        LATER,
        "classification = \"security_updates\"\nmsrc_severity = \"moderate\"\n",
        SUCCEEDS,
    );
    server.run_ok(&[
        "rules",
        "add",
        "Critical security",
        "--classification",
        "Security Updates",
        "--severity",
        "critical",
        "--group",
        "All Computers",
        "--deadline-offset",
        "3d",
    ]);
    let listed = server.run_ok(&["rules", "list"]);
    assert!(listed.contains("Critical security"), "{listed}");

    // The rule fires in the publish itself, for the matching update only.
    let published = server.json(&["publish", service.to_str().unwrap()]);
    let fired = published["ruleApprovals"].as_array().unwrap();
    assert_eq!(fired.len(), 1, "{published}");
    assert_eq!(fired[0]["updateId"], SECURITY);
    assert_eq!(fired[0]["rule"], "Critical security");
    let given = approvals(&server, SECURITY);
    assert_eq!(given.len(), 1);
    assert_eq!(given[0]["group"], "All Computers");
    let deadline: jiff::Timestamp = given[0]["deadline"].as_str().unwrap().parse().unwrap();
    let offset = deadline - jiff::Timestamp::now();
    assert!(
        offset > jiff::SignedDuration::from_hours(71)
            && offset <= jiff::SignedDuration::from_hours(72),
        "{deadline}"
    );
    assert!(approvals(&server, PLAIN).is_empty());
    assert!(approvals(&server, LATER).is_empty());

    // Two agents install it; the reports show both.
    let key = server.run_ok(&["key"]).trim().to_owned();
    let first = agent(&server, &key, &root.path().join("a1"), 1, None);
    let second = agent(&server, &key, &root.path().join("a2"), 2, None);
    for agent in [&first, &second] {
        assert!(sees(agent, SECURITY));
        assert!(!sees(agent, PLAIN));
        assert_eq!(install(agent, SECURITY), OperationResultCode::Succeeded);
    }
    let both = wait_until(soon(), || update_line(&server, SECURITY)["installed"] == 2);
    assert!(both, "{}", update_line(&server, SECURITY));

    // A new revision that is now critical is approved by the same rule.
    write_update(&service, "later", LATER, critical, SUCCEEDS);
    let republished = server.json(&["publish", service.to_str().unwrap()]);
    let fired = republished["ruleApprovals"].as_array().unwrap();
    assert_eq!(fired.len(), 1, "{republished}");
    assert_eq!(fired[0]["updateId"], LATER);
    assert!(sees(&first, LATER));

    // A dry run lists what a rule would approve and approves nothing.
    server.run_ok(&[
        "rules",
        "add",
        "Plain updates",
        "--classification",
        "Updates",
        "--group",
        "All Computers",
        "--disabled",
    ]);
    let version = server.catalog_version();
    let dry = server.json(&["rules", "run", "Plain updates", "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    let listed = dry["approvals"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{dry}");
    assert_eq!(listed[0]["updateId"], PLAIN);
    assert_eq!(server.catalog_version(), version);
    assert!(approvals(&server, PLAIN).is_empty());
    let text = server.run_ok(&["rules", "run", "Plain updates", "--dry-run"]);
    assert!(
        text.contains(PLAIN) && text.contains("would give 1"),
        "{text}"
    );
    // Run for real, it approves; run again, there is nothing left to give.
    let run = server.json(&["rules", "run", "Plain updates"]);
    assert_eq!(run["approvals"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(approvals(&server, PLAIN).len(), 1);
    assert!(sees(&second, PLAIN));
    let again = server.json(&["rules", "run", "Plain updates"]);
    assert!(again["approvals"].as_array().unwrap().is_empty(), "{again}");

    // A rule that names no group is refused, and changes nothing.
    let (status, _) = server.admin(
        "POST",
        "/api/v1/rules",
        br#"{"name": "x", "groups": [], "action": "install"}"#,
    );
    assert_eq!(status, 400);
    server.run_ok(&["rules", "remove", "Plain updates"]);
    let rules = server.json(&["rules", "list"]);
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
}

fn rollout(server: &Server, update: &str) -> Value {
    server.json(&["rollouts", "show", update])
}

#[test]
fn a_failing_rollout_halts_before_its_second_ring_and_a_good_one_advances() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(
        &root.path().join("server"),
        None,
        &["--rollout-check-secs", "1"],
    );
    let service = service_dir(root.path());
    write_update(&service, "bad", BAD, "", FAILS);
    write_update(&service, "good", GOOD, "", SUCCEEDS);
    server.run_ok(&["publish", service.to_str().unwrap()]);
    server.run_ok(&["groups", "add", "Canary"]);
    server.run_ok(&["groups", "add", "Fleet"]);
    let key = server.run_ok(&["key"]).trim().to_owned();
    let dirs: Vec<_> = (0..6)
        .map(|n| root.path().join(format!("agent{n}")))
        .collect();
    let agents: Vec<Background> = dirs
        .iter()
        .enumerate()
        .map(|(n, dir)| {
            let group = if n < 2 { "Canary" } else { "Fleet" };
            agent(&server, &key, dir, n + 10, Some(group))
        })
        .collect();
    let (canary, fleet) = agents.split_at(2);

    // Refused plans change nothing.
    for (body, expected) in [
        (&br#"{"rings": [{"group": "Canary", "percent": 0, "soakSecs": 1}], "maxFailurePercent": 0, "minReported": 1}"#[..], 400),
        (&br#"{"rings": [{"group": "Nowhere", "soakSecs": 1}], "maxFailurePercent": 0, "minReported": 1}"#[..], 404),
        (&br#"{"rings": [{"group": "Canary", "soakSecs": 1}], "maxFailurePercent": 0, "minReported": 1, "extra": 1}"#[..], 400),
    ] {
        let (status, _) = server.admin("POST", &format!("/api/v1/updates/{BAD}/rollout"), body);
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(body));
    }
    assert!(
        server
            .json(&["rollouts", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(approvals(&server, BAD).is_empty());

    // The bad update: its first ring's installs fail.
    server.run_ok(&[
        "rollouts",
        "start",
        BAD,
        "--ring",
        "0s:Canary",
        "--ring",
        "0s:Fleet",
        "--max-failure-percent",
        "0",
        "--min-reported",
        "2",
    ]);
    for agent in fleet {
        assert!(!sees(agent, BAD));
    }
    for agent in canary {
        assert!(sees(agent, BAD));
        assert_eq!(install(agent, BAD), OperationResultCode::Failed);
    }
    let halted = wait_until(soon(), || {
        rollout(&server, BAD)["rollout"]["state"] == "halted"
    });
    let status = rollout(&server, BAD);
    assert!(halted, "{status}");
    assert_eq!(status["rollout"]["stage"], 0, "{status}");
    let halt = &status["rollout"]["halt"];
    assert_eq!(
        (halt["reported"].as_u64(), halt["failed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(halt["codes"][0]["computers"], 2, "{status}");
    assert!(
        halt["message"].as_str().unwrap().contains("2 of 2"),
        "{status}"
    );
    let text = server.run_ok(&["rollouts", "show", BAD]);
    assert!(text.contains("halted") && text.contains("2 of 2"), "{text}");
    // Halted, the second ring never gets it; the failures report says why.
    for agent in fleet {
        assert!(!sees(agent, BAD));
    }
    let failures = server.json(&["report", "failures"]);
    assert_eq!(
        failures
            .as_array()
            .unwrap()
            .iter()
            .filter(|failure| failure["updateId"] == BAD)
            .count(),
        2,
        "{failures}"
    );

    // The good update: Canary, then half of Fleet (by the hash of the
    // computer ID), then all of Fleet.
    server.run_ok(&[
        "rollouts",
        "start",
        GOOD,
        "--ring",
        "1s:Canary",
        "--ring",
        "50%:1s:Fleet",
        "--ring",
        "1s:Fleet",
        "--max-failure-percent",
        "0",
        "--min-reported",
        "2",
    ]);
    for agent in fleet {
        assert!(!sees(agent, GOOD));
    }
    for agent in canary {
        assert!(sees(agent, GOOD));
        assert_eq!(install(agent, GOOD), OperationResultCode::Succeeded);
    }
    let second_ring = wait_until(soon(), || rollout(&server, GOOD)["rollout"]["stage"] == 1);
    assert!(second_ring, "{}", rollout(&server, GOOD));
    let in_half: Vec<bool> = dirs[2..]
        .iter()
        .map(|dir| openwua_server::rollouts::bucket(computer_id(dir)) < 50)
        .collect();
    // The ring waits for its own computers' results; one with none
    // advances on its soak alone, and then there is nothing to compare.
    if in_half.contains(&true) {
        for (agent, admitted) in fleet.iter().zip(&in_half) {
            assert_eq!(sees(agent, GOOD), *admitted);
        }
        for (agent, admitted) in fleet.iter().zip(&in_half) {
            if *admitted {
                assert_eq!(install(agent, GOOD), OperationResultCode::Succeeded);
            }
        }
    }
    let third_ring = wait_until(soon(), || rollout(&server, GOOD)["rollout"]["stage"] == 2);
    assert!(third_ring, "{}", rollout(&server, GOOD));
    for (agent, admitted) in fleet.iter().zip(&in_half) {
        assert!(sees(agent, GOOD));
        if !admitted {
            assert_eq!(install(agent, GOOD), OperationResultCode::Succeeded);
        }
    }
    let completed = wait_until(soon(), || {
        rollout(&server, GOOD)["rollout"]["state"] == "completed"
    });
    let status = rollout(&server, GOOD);
    assert!(completed, "{status}");
    assert_eq!(status["progress"]["reported"], 6, "{status}");
    assert_eq!(status["progress"]["failed"], 0, "{status}");
    let both = wait_until(soon(), || update_line(&server, GOOD)["installed"] == 6);
    assert!(both, "{}", update_line(&server, GOOD));

    // An administrator can resume the halted one (it halts again on its
    // failures) and halt a running one.
    let list = server.json(&["rollouts", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let resumed = server.json(&["rollouts", "resume", BAD]);
    assert_eq!(resumed["rollout"]["state"], "running", "{resumed}");
    let halted_again = wait_until(soon(), || {
        rollout(&server, BAD)["rollout"]["state"] == "halted"
    });
    assert!(halted_again, "{}", rollout(&server, BAD));
    let (status, _) = server.admin("POST", &format!("/api/v1/rollouts/{BAD}/halt"), b"");
    assert_eq!(status, 409, "halting a halted rollout");
}
