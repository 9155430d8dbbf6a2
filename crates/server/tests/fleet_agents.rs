//! The fleet end to end: a real `wua-server` (SQLite) and two real agents
//! (in-process `Background` agents on their own sockets and state
//! directories, each with a machine ID of its own) registered in different
//! computer groups. Each sees exactly the updates approved for its group,
//! and the server lists both computers where they belong.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use openwua_agent::{Background, Config};
use openwua_client::blocking::UpdateSession;
use openwua_testkit::wait_until;
use uuid::Uuid;

/// "Licence texts refresh" and "Message of the day refresh" of the sample
/// service.
const LICENCES: &str = "25d8429d-4049-588f-ae9e-4155fc2f722e";
const MOTD: &str = "3d64ba01-f585-5423-8b8f-02c8d265efb5";

struct Server {
    child: Child,
    data_dir: tempfile::TempDir,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start() -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_wua-server"))
            .args(["serve", "--data-dir"])
            .arg(data_dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = wait_until(Instant::now() + Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "wua-server did not listen");
        Server {
            child,
            data_dir,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Runs a `wua-server` subcommand against this server.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wua-server"))
            .args(args)
            .args(["--server", &self.url, "--token-file"])
            .arg(self.data_dir.path().join("admin.token"))
            .output()
            .unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "wua-server {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
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
    Background::start(config).unwrap()
}

fn knows(session: &UpdateSession, update: &str) -> bool {
    session.get_update(update.parse::<Uuid>().unwrap()).is_ok()
}

fn sample_service() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service")
}

#[test]
fn two_agents_in_two_groups_see_exactly_their_approved_updates() {
    let server = Server::start();
    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    server.run_ok(&["groups", "add", "Ring 1"]);
    server.run_ok(&[
        "approve",
        MOTD,
        "--group",
        "All Computers",
        "--action",
        "install",
    ]);
    server.run_ok(&[
        "approve", LICENCES, "--group", "Ring 1", "--action", "install",
    ]);
    let key = server.run_ok(&["key"]).trim().to_owned();

    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let ring1 = agent(first.path(), "11111111111111111111111111111111");
    let unassigned = agent(second.path(), "22222222222222222222222222222222");
    let ring1_session = UpdateSession::connect(ring1.socket()).unwrap();
    let unassigned_session = UpdateSession::connect(unassigned.socket()).unwrap();
    ring1_session
        .create_update_service_manager()
        .add_server_service(&server.url, &key, Some("Ring 1"), None, true)
        .unwrap();
    unassigned_session
        .create_update_service_manager()
        .add_server_service(&server.url, &key, None, None, true)
        .unwrap();

    // All Computers' approval reaches both; Ring 1's only its member.
    assert!(knows(&ring1_session, MOTD));
    assert!(knows(&ring1_session, LICENCES));
    assert!(knows(&unassigned_session, MOTD));
    assert!(!knows(&unassigned_session, LICENCES));

    // The server sees both machines where they belong.
    let computers: serde_json::Value =
        serde_json::from_str(&server.run_ok(&["computers", "list", "--json"])).unwrap();
    let text = computers.to_string();
    assert!(text.contains("Ring 1"), "{text}");
    assert!(text.contains("Unassigned Computers"), "{text}");

    // A new approval for Unassigned Computers reaches its agent at its
    // next sync, and a sync with nothing new keeps what it has.
    server.run_ok(&[
        "approve",
        LICENCES,
        "--group",
        "Unassigned Computers",
        "--action",
        "install",
    ]);
    unassigned_session.sync(None, |_| {}).unwrap();
    assert!(knows(&unassigned_session, LICENCES));
    ring1_session.sync(None, |_| {}).unwrap();
    assert!(knows(&ring1_session, LICENCES));

    // Its content comes from the server; the sample's installer writes
    // only under the agent's sandbox.
    let motd: Uuid = MOTD.parse().unwrap();
    let mut downloader = ring1_session.create_update_downloader();
    downloader.updates = vec![motd];
    let downloaded = downloader.download().unwrap();
    assert_succeeded(&downloaded, "download");
    let mut installer = ring1_session.create_update_installer();
    installer.updates = vec![motd];
    let installed = installer.install().unwrap();
    assert_succeeded(&installed, "install");
    assert!(
        ring1_session
            .get_update(motd)
            .unwrap()
            .entry
            .state
            .is_installed
    );

    // Incremental syncs: an Uninstall approval and a deadline reach the
    // agent, a declined update leaves it.
    let updates: serde_json::Value =
        serde_json::from_str(&server.run_ok(&["updates", "list", "--json"])).unwrap();
    let extra = updates
        .as_array()
        .unwrap()
        .iter()
        .map(|update| update["updateId"].as_str().unwrap().to_owned())
        .find(|id| id != MOTD && id != LICENCES)
        .unwrap();
    let deadline = "2027-03-01T12:00:00Z";
    server.run_ok(&[
        "approve",
        MOTD,
        "--group",
        "Ring 1",
        "--action",
        "uninstall",
        "--deadline",
        deadline,
    ]);
    server.run_ok(&[
        "approve",
        LICENCES,
        "--group",
        "Ring 1",
        "--deadline",
        deadline,
    ]);
    server.run_ok(&["approve", &extra, "--group", "Ring 1"]);
    ring1_session.sync(None, |_| {}).unwrap();
    assert!(knows(&ring1_session, &extra));
    server.run_ok(&["decline", &extra]);
    ring1_session.sync(None, |_| {}).unwrap();
    assert!(!knows(&ring1_session, &extra));
    let uninstall = ring1_session.get_update(motd).unwrap().entry.update;
    assert_eq!(
        uninstall.deployment_action,
        openwua_model::enums::DeploymentAction::Uninstallation
    );
    assert_eq!(uninstall.deadline.unwrap().to_string(), deadline);
    let licences = ring1_session
        .get_update(LICENCES.parse().unwrap())
        .unwrap()
        .entry
        .update;
    assert_eq!(licences.deadline.unwrap().to_string(), deadline);
    // The agent's search shows it as an update to uninstall, in its JSON.
    let found = ring1_session
        .create_update_searcher()
        .search("DeploymentAction='Uninstallation'")
        .unwrap();
    let text = serde_json::to_string(&found).unwrap();
    assert!(
        text.contains(MOTD) && text.contains(r#""deploymentAction":"Uninstallation""#),
        "{text}"
    );

    // A fresh agent in the same group, synced fully, holds what the
    // incrementally synced one holds.
    let third = tempfile::tempdir().unwrap();
    let fresh = agent(third.path(), "33333333333333333333333333333333");
    let fresh_session = UpdateSession::connect(fresh.socket()).unwrap();
    fresh_session
        .create_update_service_manager()
        .add_server_service(&server.url, &key, Some("Ring 1"), None, true)
        .unwrap();
    assert_eq!(catalog(&fresh_session), catalog(&ring1_session));
}

/// What an agent holds of every update, whatever its state: ID,
/// revision, action and deadline.
fn catalog(session: &UpdateSession) -> Vec<String> {
    let mut searcher = session.create_update_searcher();
    searcher.include_potentially_superseded_updates = true;
    let mut held: Vec<String> = ["IsInstalled=0", "IsInstalled=1"]
        .iter()
        .flat_map(|installed| {
            searcher
                .search(&format!("{installed} and DeploymentAction=*"))
                .unwrap()
                .updates
                .to_vec()
                .unwrap()
        })
        .map(|entry| {
            format!(
                "{} {} {:?} {:?}",
                entry.update.identity.update_id,
                entry.update.identity.revision_number,
                entry.update.deployment_action,
                entry.update.deadline
            )
        })
        .collect();
    held.sort();
    assert!(!held.is_empty());
    held
}

fn assert_succeeded(job: &openwua_model::operation::JobInfo, what: &str) {
    let result = job.result.as_ref().expect("a completed job");
    assert_eq!(
        result.result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{what}: {job:?}"
    );
}
