//! Agents' status reports end to end: a real `wua-server` (SQLite) and a
//! real agent, in this process (`Background`) or, to be SIGKILLed, in a
//! process of its own (this test binary run again as `agent_process`).
//! The server's own report queries show what the agent installed; reports
//! made while the server is down wait in the agent's store and arrive
//! once it is back, counted once; reports queued when the agent is killed
//! arrive after its restart.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openwua_agent::{Background, Config};
use openwua_client::blocking::UpdateSession;
use openwua_model::service::ReportingState;
use openwua_testkit::wait_until;
use serde_json::Value;
use uuid::Uuid;

/// "Licence texts refresh" and "Message of the day refresh" of the sample
/// service: both install with a command that writes under the sandbox.
const LICENCES: &str = "25d8429d-4049-588f-ae9e-4155fc2f722e";
const MOTD: &str = "3d64ba01-f585-5423-8b8f-02c8d265efb5";

const AGENT_DIR: &str = "OPENWUA_TEST_REPORTING_AGENT_DIR";

/// A `wua-server` that can be killed and started again on the same port
/// and data directory, as an agent knows it by its URL.
struct Server {
    child: Option<Child>,
    data_dir: PathBuf,
    port: u16,
    url: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Server {
            child: None,
            data_dir: data_dir.to_owned(),
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.restart();
        server
    }

    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .unwrap();
        let child = Command::new(common::BIN)
            .args(["serve", "--config", "/dev/null", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = wait_until(Instant::now() + Duration::from_secs(30), || {
            common::http("GET", &format!("{}/readyz", self.url), None, &[], b"").0 == 200
        });
        assert!(ready, "wua-server is not ready");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = Command::new(common::BIN)
            .args(args)
            .args(["--json", "--server", &self.url, "--data-dir"])
            .arg(&self.data_dir)
            .env_clear()
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn run_ok(&self, args: &[&str]) {
        let output = Command::new(common::BIN)
            .args(args)
            .args(["--server", &self.url, "--data-dir"])
            .arg(&self.data_dir)
            .env_clear()
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn key(&self) -> String {
        let output = Command::new(common::BIN)
            .args(["key", "--server", &self.url])
            .env_clear()
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// The sample published, with both updates approved for everyone.
    fn with_sample(data_dir: &Path) -> Server {
        let server = Server::start(data_dir);
        server.publish_sample();
        server
    }

    fn publish_sample(&self) {
        let server = self;
        server.run_ok(&["publish", common::sample_service().to_str().unwrap()]);
        for update in [MOTD, LICENCES] {
            server.run_ok(&[
                "approve",
                update,
                "--group",
                "All Computers",
                "--action",
                "install",
            ]);
        }
    }

    /// The computers report's only line.
    fn computer(&self) -> Value {
        let computers = self.json(&["report", "computers"]);
        let list = computers.as_array().unwrap();
        assert_eq!(list.len(), 1, "{computers}");
        list[0].clone()
    }

    /// One update's counts of computers by state.
    fn update(&self, update: &str) -> Value {
        self.json(&["report", "updates", update])[0].clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The agent's configuration under `dir`: retries every 50 to 400 ms.
fn agent_config(dir: &Path) -> Config {
    let machine_id = dir.join("machine-id");
    std::fs::write(&machine_id, "0123456789abcdef0123456789abcdef\n").unwrap();
    let mut config = Config {
        owner_is_admin: true,
        ..Config::under(dir)
    };
    config.facts.machine_id = machine_id;
    config.reports.retry_base_millis = 50;
    config.reports.retry_max_millis = 400;
    config
}

/// Not a test of its own: the body of the agent process the tests start
/// (and SIGKILL). Run without its variable, it does nothing.
#[test]
fn agent_process() {
    let Some(dir) = std::env::var_os(AGENT_DIR) else {
        return;
    };
    let _agent = Background::start(agent_config(Path::new(&dir))).unwrap();
    loop {
        std::thread::park();
    }
}

/// An agent in a process of its own, killed when dropped.
struct AgentProcess {
    child: Child,
    socket: PathBuf,
}

impl AgentProcess {
    fn start(dir: &Path) -> AgentProcess {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["agent_process", "--exact", "--nocapture"])
            .env(AGENT_DIR, dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = dir.join("agent.sock");
        let up = wait_until(Instant::now() + Duration::from_secs(30), || {
            UpdateSession::connect(&socket).is_ok()
        });
        assert!(up, "the agent process did not open its socket");
        AgentProcess { child, socket }
    }

    fn session(&self) -> UpdateSession {
        UpdateSession::connect(&self.socket).unwrap()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent's reporting state for its one server.
fn reporting(session: &UpdateSession) -> ReportingState {
    let mut states = session.reporting_state().unwrap();
    assert_eq!(states.len(), 1, "{states:?}");
    states.remove(0)
}

/// Waits until every report is sent, and returns the state then.
fn all_sent(session: &UpdateSession) -> ReportingState {
    let sent = wait_until(Instant::now() + Duration::from_secs(30), || {
        let state = reporting(session);
        state.queued == 0 && state.acknowledged > 0
    });
    assert!(sent, "reports still queued: {:?}", reporting(session));
    reporting(session)
}

fn run(session: &UpdateSession, download: bool, update: &str) {
    let update: Uuid = update.parse().unwrap();
    let job = if download {
        let mut downloader = session.create_update_downloader();
        downloader.updates = vec![update];
        downloader.download().unwrap()
    } else {
        let mut installer = session.create_update_installer();
        installer.updates = vec![update];
        installer.install().unwrap()
    };
    let result = job.result.as_ref().expect("a completed job");
    assert_eq!(
        result.result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{job:?}"
    );
}

/// The agent's identity at the server, read from its store.
fn credentials(state_dir: &Path) -> (String, String) {
    let store = rusqlite::Connection::open(state_dir.join("agent.db")).unwrap();
    store
        .query_row(
            "SELECT computer_id, computer_secret FROM services WHERE is_scan_package = 0",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

/// The sequence the server acknowledges for this computer, asked with a
/// duplicate (sequence 1, nothing in it), which changes nothing.
fn server_acknowledged(server: &Server, state_dir: &Path) -> u64 {
    let (computer, secret) = credentials(state_dir);
    let authorization = format!("Computer {computer} {secret}");
    let body = br#"{"sequence": 1, "inventory": {}, "updates": []}"#;
    let (status, _, answer) = common::http(
        "POST",
        &format!("{}/api/v1/reports", server.url),
        None,
        &[
            ("authorization", &authorization),
            ("content-type", "application/json"),
        ],
        body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    answer["acknowledged"].as_u64().unwrap()
}

/// Every state's count in an update's line, summed: the computers counted.
fn counted(summary: &Value) -> u64 {
    [
        "unknown",
        "notApplicable",
        "notInstalled",
        "downloaded",
        "installed",
        "installedPendingReboot",
        "failed",
    ]
    .iter()
    .map(|key| summary[key].as_u64().unwrap())
    .sum()
}

#[test]
fn reports_show_installs_and_wait_out_a_server_outage() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::with_sample(&root.path().join("server"));
    let dir = root.path().join("agent");
    std::fs::create_dir(&dir).unwrap();
    let agent = Background::start(agent_config(&dir)).unwrap();
    let session = UpdateSession::connect(agent.socket()).unwrap();
    session
        .create_update_service_manager()
        .add_server_service(&server.url, &server.key(), None, None, true)
        .unwrap();

    // The first sync's report.
    all_sent(&session);
    let computer = server.computer();
    assert!(computer["lastReport"].is_string(), "{computer}");

    // Downloaded, then installed: the server's queries say so.
    run(&session, true, MOTD);
    run(&session, true, LICENCES);
    run(&session, false, MOTD);
    let reported = wait_until(Instant::now() + Duration::from_secs(30), || {
        server.update(MOTD)["installed"] == 1 && server.update(LICENCES)["downloaded"] == 1
    });
    assert!(
        reported,
        "{} {}",
        server.update(MOTD),
        server.update(LICENCES)
    );
    let before = all_sent(&session);
    assert_eq!(
        before.acknowledged,
        server_acknowledged(&server, &dir.join("state"))
    );

    // The server goes away while the agent installs and syncs: the
    // reports wait, with the reason.
    server.kill();
    run(&session, false, LICENCES);
    assert!(session.sync(None, |_| {}).is_err());
    let waiting = wait_until(Instant::now() + Duration::from_secs(30), || {
        let state = reporting(&session);
        state.queued > 0 && state.last_error.is_some()
    });
    let state = reporting(&session);
    assert!(waiting, "{state:?}");
    assert_eq!(state.acknowledged, before.acknowledged);
    assert!(
        state.next_sequence.unwrap() > before.acknowledged,
        "{state:?}"
    );

    // Back: the newest state arrives, once.
    server.restart();
    let after = all_sent(&session);
    assert!(after.acknowledged > before.acknowledged, "{after:?}");
    assert!(after.last_error.is_none(), "{after:?}");
    assert_eq!(
        after.acknowledged,
        server_acknowledged(&server, &dir.join("state"))
    );
    for update in [MOTD, LICENCES] {
        let summary = server.update(update);
        assert_eq!(summary["installed"], 1, "{summary}");
        assert_eq!(counted(&summary), 1, "{summary}");
    }
    let computer = server.computer();
    assert_eq!(
        (&computer["installed"], &computer["needed"]),
        (&Value::from(2), &Value::from(0)),
        "{computer}"
    );
}

#[test]
fn reports_queued_when_the_agent_is_killed_are_sent_after_its_restart() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::with_sample(&root.path().join("server"));
    let dir = root.path().join("agent");
    std::fs::create_dir(&dir).unwrap();
    let agent = AgentProcess::start(&dir);
    let session = agent.session();
    session
        .create_update_service_manager()
        .add_server_service(&server.url, &server.key(), None, None, true)
        .unwrap();
    run(&session, true, MOTD);
    let before = all_sent(&session);

    // Installed while the server is down: the report waits in the store
    // when the agent is SIGKILLed.
    server.kill();
    run(&session, false, MOTD);
    let waiting = wait_until(Instant::now() + Duration::from_secs(30), || {
        reporting(&session).queued > 0
    });
    let queued = reporting(&session);
    assert!(waiting, "{queued:?}");
    let queued_sequence = queued.next_sequence.unwrap();
    assert!(queued_sequence > before.acknowledged);
    drop(session);
    agent.kill();

    server.restart();
    assert_eq!(server.update(MOTD)["installed"], 0);
    let agent = AgentProcess::start(&dir);
    let session = agent.session();
    let after = all_sent(&session);
    // Its sequence was not given again: the server stored the state.
    assert!(after.acknowledged >= queued_sequence, "{after:?}");
    assert_eq!(
        after.acknowledged,
        server_acknowledged(&server, &dir.join("state"))
    );
    let summary = server.update(MOTD);
    assert_eq!(summary["installed"], 1, "{summary}");
    assert_eq!(counted(&summary), 1, "{summary}");
}

#[test]
fn a_server_that_forgot_the_computer_gets_its_report_after_it_registers_again() {
    let root = tempfile::tempdir().unwrap();
    let mut server = Server::with_sample(&root.path().join("server"));
    let dir = root.path().join("agent");
    std::fs::create_dir(&dir).unwrap();
    let agent = Background::start(agent_config(&dir)).unwrap();
    let session = UpdateSession::connect(agent.socket()).unwrap();
    session
        .create_update_service_manager()
        .add_server_service(&server.url, &server.key(), None, None, true)
        .unwrap();
    run(&session, true, MOTD);
    all_sent(&session);
    let (first_identity, _) = credentials(&dir.join("state"));

    // A new server on the same address knows no computer: the report's
    // 401 makes the agent register again, and the report follows.
    server.kill();
    server.data_dir = root.path().join("reset-server");
    server.restart();
    server.publish_sample();
    run(&session, false, MOTD);
    let reported = wait_until(Instant::now() + Duration::from_secs(30), || {
        server.json(&["report", "computers"])[0]["installed"] == 1
    });
    assert!(reported, "{}", server.json(&["report", "computers"]));
    let (identity, _) = credentials(&dir.join("state"));
    assert_eq!(server.computer()["computerId"], identity.as_str());
    assert_ne!(identity, first_identity);
    assert!(reporting(&session).last_error.is_none());
}
