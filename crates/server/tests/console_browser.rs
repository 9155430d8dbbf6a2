//! The web console in a real browser: Debian's chromium, driven by
//! Playwright (`tests/browser/console.js`, `playwright-core` from npm),
//! against a real `wua-server` (SQLite) with two real agents' reports.
//! The admin signs in, the overview chart's counts match the API's, an
//! update is approved for a group in the browser, an agent installs it and
//! the console shows it installed; a request without the CSRF token is
//! refused, a read-only account cannot approve, and every page's
//! screenshot is taken and is not empty.
//!
//! `scripts/setup-test-machine` installs chromium, nodejs and npm and runs
//! `npm ci` in `tests/browser`; without them the test is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use openwua_agent::{Background, Config};
use openwua_client::blocking::UpdateSession;
use openwua_testkit::wait_until;
use serde_json::Value;
use uuid::Uuid;

/// "Licence texts refresh" and "Message of the day refresh" of the sample
/// service.
const LICENCES: &str = "25d8429d-4049-588f-ae9e-4155fc2f722e";
const MOTD: &str = "3d64ba01-f585-5423-8b8f-02c8d265efb5";
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What the test needs that `scripts/setup-test-machine` installs.
fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is not installed (Debian's chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed (Debian's nodejs)".into());
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some("tests/browser has no node_modules (npm ci there)".into());
    }
    None
}

/// An agent of its own, with a machine ID of its own.
fn agent(dir: &Path, machine_id: &str) -> Background {
    let machine_id_file = dir.join("machine-id");
    std::fs::write(&machine_id_file, format!("{machine_id}\n")).unwrap();
    let mut config = Config {
        owner_is_admin: true,
        ..Config::under(dir)
    };
    config.facts.machine_id = machine_id_file;
    config.reports.retry_base_millis = 50;
    config.reports.retry_max_millis = 400;
    Background::start(config).unwrap()
}

/// Runs one phase of the script; its stdout.
fn node(phase: &str, server: &Server, shots: &Path, extra: &[(&str, &str)]) -> String {
    let output = Command::new("node")
        .arg(browser_dir().join("console.js"))
        .current_dir(browser_dir())
        .env("PHASE", phase)
        .env("CONSOLE_URL", &server.url)
        .env("ADMIN_TOKEN", server.token())
        .env("UPDATE_ID", MOTD)
        .env("GROUP", "Ring 1")
        .env("SCREENSHOTS", shots)
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the browser's {phase} phase: {}\n{}\nserver log: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log_tail()
    );
    String::from_utf8(output.stdout).unwrap()
}

fn computers(server: &Server) -> Value {
    server.json(&["report", "computers"])
}

#[test]
fn the_console_in_a_real_browser() {
    if let Some(reason) = missing() {
        openwua_testkit::skip("the_console_in_a_real_browser", &reason);
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("server"), None, &[]);
    server.run_ok(&["publish", common::sample_service().to_str().unwrap()]);
    server.run_ok(&["groups", "add", "Ring 1"]);
    server.run_ok(&[
        "approve",
        LICENCES,
        "--group",
        "All Computers",
        "--action",
        "install",
    ]);
    let key = server.run_ok(&["key"]).trim().to_owned();

    // Two agents, one in Ring 1; each reports after its first sync.
    let (first, second) = (root.path().join("ring1"), root.path().join("other"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    let ring1 = agent(&first, "11111111111111111111111111111111");
    let other = agent(&second, "22222222222222222222222222222222");
    let ring1_session = UpdateSession::connect(ring1.socket()).unwrap();
    ring1_session
        .create_update_service_manager()
        .add_server_service(&server.url, &key, Some("Ring 1"), None, true)
        .unwrap();
    UpdateSession::connect(other.socket())
        .unwrap()
        .create_update_service_manager()
        .add_server_service(&server.url, &key, None, None, true)
        .unwrap();
    let reported = wait_until(Instant::now() + Duration::from_secs(30), || {
        let list = computers(&server);
        list.as_array().unwrap().len() == 2
            && list
                .as_array()
                .unwrap()
                .iter()
                .all(|computer| computer["needed"] == 1)
    });
    assert!(reported, "{}", computers(&server));
    let ring1_id = computers(&server)
        .as_array()
        .unwrap()
        .iter()
        .find(|computer| computer["group"] == "Ring 1")
        .unwrap()["computerId"]
        .as_str()
        .unwrap()
        .to_owned();

    let shots = root.path().join("screenshots");
    std::fs::create_dir(&shots).unwrap();
    let printed = node("approve", &server, &shots, &[]);
    let read_only: Value = serde_json::from_str(printed.trim()).unwrap();
    let read_only = read_only["readOnlyToken"].as_str().unwrap().to_owned();

    // The browser's approval reaches the agent, which installs the update
    // and reports it.
    let (status, approvals) =
        server.admin("GET", &format!("/api/v1/updates/{MOTD}/approvals"), b"");
    let approvals = String::from_utf8_lossy(&approvals);
    assert!(
        status == 200 && approvals.contains("Ring 1"),
        "{status} {approvals}"
    );
    ring1_session.sync(None, |_| {}).unwrap();
    let motd: Uuid = MOTD.parse().unwrap();
    let mut downloader = ring1_session.create_update_downloader();
    downloader.updates = vec![motd];
    downloader.download().unwrap();
    let mut installer = ring1_session.create_update_installer();
    installer.updates = vec![motd];
    let installed = installer.install().unwrap();
    assert_eq!(
        installed.result.as_ref().unwrap().result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{installed:?}"
    );
    let reported = wait_until(Instant::now() + Duration::from_secs(30), || {
        server.json(&["report", "updates", MOTD])[0]["installed"] == 1
    });
    assert!(reported, "{}", server.json(&["report", "updates", MOTD]));

    node(
        "verify",
        &server,
        &shots,
        &[("READ_ONLY_TOKEN", &read_only), ("COMPUTER_ID", &ring1_id)],
    );

    // A screenshot of every page, none of them empty.
    for page in [
        "overview",
        "updates",
        "update",
        "computers",
        "computer",
        "failures",
        "rollouts",
        "maintenance",
        "access",
        "installed",
        "read-only",
    ] {
        let size = std::fs::metadata(shots.join(format!("{page}.png")))
            .unwrap()
            .len();
        assert!(size > 1000, "{page}.png is {size} bytes");
    }
}
