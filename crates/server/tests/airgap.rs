//! The air gap end to end (`docs/server.md`, "Air gap"): the real
//! `wua-server` exports what is approved for a group as a signed offline
//! package; an agent in a process of its own (this test binary run again
//! as `offline_agent_process`), with no update server configured at all
//! and the server stopped, imports it, installs from it and exports its
//! reports; the server, started again, imports them, and its reports API
//! shows the results. A tampered package, a forged report file and an
//! export of a group with nothing approved are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openwua_agent::{Background, Config};
use openwua_client::blocking::UpdateSession;
use openwua_testkit::wait_until;
use serde_json::Value;
use uuid::Uuid;

/// "Message of the day refresh" and "Licence texts refresh" of the sample.
const MOTD: &str = "3d64ba01-f585-5423-8b8f-02c8d265efb5";
const LICENCES: &str = "25d8429d-4049-588f-ae9e-4155fc2f722e";
const DEADLINE: &str = "2027-03-01T12:00:00Z";
const MACHINE_ID: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";

const AGENT_DIR: &str = "OPENWUA_TEST_OFFLINE_AGENT_DIR";

fn agent_config(dir: &Path, machine_id: &str) -> Config {
    let machine_id_file = dir.join("machine-id");
    std::fs::write(&machine_id_file, format!("{machine_id}\n")).unwrap();
    let mut config = Config {
        owner_is_admin: true,
        ..Config::under(dir)
    };
    config.facts.machine_id = machine_id_file;
    config
}

/// Not a test of its own: the disconnected agent's process. Run without
/// its variable, it does nothing.
#[test]
fn offline_agent_process() {
    let Some(dir) = std::env::var_os(AGENT_DIR) else {
        return;
    };
    let _agent = Background::start(agent_config(Path::new(&dir), MACHINE_ID)).unwrap();
    loop {
        std::thread::park();
    }
}

/// The disconnected agent, killed when dropped.
struct OfflineAgent {
    child: Child,
    socket: PathBuf,
}

impl OfflineAgent {
    fn start(dir: &Path) -> OfflineAgent {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["offline_agent_process", "--exact", "--nocapture"])
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
        OfflineAgent { child, socket }
    }

    fn session(&self) -> UpdateSession {
        UpdateSession::connect(&self.socket).unwrap()
    }
}

impl Drop for OfflineAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an agent holds of every update: ID, revision, action, deadline.
fn catalog(session: &UpdateSession) -> Vec<String> {
    let mut held: Vec<String> = ["IsInstalled=0", "IsInstalled=1"]
        .iter()
        .flat_map(|installed| {
            session
                .create_update_searcher()
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
    held
}

fn key(server: &common::Server) -> String {
    server.run_ok(&["key"]).trim().to_owned()
}

#[test]
fn an_exported_package_serves_a_disconnected_agent_whose_reports_come_back() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("server");
    let server = common::Server::start(&data_dir, None, &[]);
    server.run_ok(&["publish", common::sample_service().to_str().unwrap()]);
    server.run_ok(&["groups", "add", "Site"]);
    server.run_ok(&["groups", "add", "Empty"]);
    server.run_ok(&["approve", MOTD, "--group", "Site", "--deadline", DEADLINE]);
    server.run_ok(&[
        "approve",
        LICENCES,
        "--group",
        "Site",
        "--action",
        "uninstall",
    ]);
    let key = key(&server);

    // A group with nothing approved: said so, nothing written.
    let empty = root.path().join("empty.owpkg");
    let output = server.run(&["export", "--group", "Empty", "-o", empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nothing is approved"), "{stderr}");
    assert!(!empty.exists());
    // Unless asked for: the empty catalog withdraws what a site holds.
    let withdrawn = server.json(&[
        "export",
        "--group",
        "Empty",
        "-o",
        empty.to_str().unwrap(),
        "--allow-empty",
    ]);
    assert_eq!(withdrawn["updates"], 0, "{withdrawn}");
    assert!(empty.exists());
    // A lifetime out of bounds is refused by the server.
    let output = server.run(&[
        "export",
        "--group",
        "Site",
        "-o",
        empty.to_str().unwrap(),
        "--lifetime-days",
        "400",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");

    let package = root.path().join("site.owpkg");
    let summary = server.json(&[
        "export",
        "--group",
        "Site",
        "-o",
        package.to_str().unwrap(),
        "--with-content",
    ]);
    assert_eq!(summary["updates"], 2, "{summary}");
    assert!(summary["contentFiles"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["publicKey"], key.as_str());

    // What an agent of the group gets online, for comparison.
    let online_dir = tempfile::tempdir().unwrap();
    let online = Background::start(agent_config(
        online_dir.path(),
        "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
    ))
    .unwrap();
    let online_session = UpdateSession::connect(online.socket()).unwrap();
    online_session
        .create_update_service_manager()
        .add_server_service(&server.url, &key, Some("Site"), None, true)
        .unwrap();
    let served_online = catalog(&online_session);
    drop(online_session);
    drop(online);

    // No route: the server is gone, and the agent knows of none.
    server.stop();
    let agent_dir = root.path().join("agent");
    std::fs::create_dir(&agent_dir).unwrap();
    let agent = OfflineAgent::start(&agent_dir);
    let session = agent.session();
    let manager = session.create_update_service_manager();

    // A tampered package is refused, and registers nothing.
    let mut bytes = std::fs::read(&package).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let tampered = root.path().join("tampered.owpkg");
    std::fs::write(&tampered, &bytes).unwrap();
    let refused = manager.add_scan_package_service(None, &tampered, &key, true, None);
    assert!(refused.is_err(), "{refused:?}");
    assert!(manager.services().unwrap().is_empty());

    let added = manager
        .add_scan_package_service(None, &package, &key, true, None)
        .unwrap();
    assert_eq!(
        added.service.service_id.to_string(),
        summary["serviceId"].as_str().unwrap()
    );
    // Deadlines and Install/Uninstall approvals as a sync gives them.
    let offline_catalog = catalog(&session);
    assert_eq!(offline_catalog, served_online);
    assert!(
        offline_catalog
            .iter()
            .any(|line| line.starts_with(MOTD) && line.contains("2027-03-01T12:00:00Z")),
        "{offline_catalog:?}"
    );
    assert!(
        offline_catalog
            .iter()
            .any(|line| line.starts_with(LICENCES) && line.contains("Uninstallation")),
        "{offline_catalog:?}"
    );

    // A report from before the install, to be carried back late.
    let early = session.export_reports(None).unwrap();

    // Downloaded from the package's own content, then installed.
    let mut downloader = session.create_update_downloader();
    downloader.updates = vec![MOTD.parse().unwrap()];
    let job = downloader.download().unwrap();
    let result = job.result.as_ref().expect("a completed job");
    assert_eq!(
        result.result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{job:?}"
    );
    let mut installer = session.create_update_installer();
    installer.updates = vec![MOTD.parse().unwrap()];
    let job = installer.install().unwrap();
    let result = job.result.as_ref().expect("a completed job");
    assert_eq!(
        result.result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{job:?}"
    );

    let document = session.export_reports(None).unwrap();
    let report_file = root.path().join("site-reports.json");
    std::fs::write(&report_file, &document).unwrap();
    let parsed: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(parsed["machineId"], MACHINE_ID);
    assert_eq!(parsed["serviceId"], summary["serviceId"]);
    drop(session);
    drop(agent);

    // Back at the server.
    let server = common::Server::start(&data_dir, None, &[]);

    // A file naming a service this server never exported changes nothing.
    let mut forged = parsed.clone();
    forged["serviceId"] = Value::from(Uuid::new_v4().to_string());
    let forged_file = root.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let output = server.run(&["import-reports", forged_file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        server
            .json(&["computers", "list"])
            .as_array()
            .unwrap()
            .len()
            == 1
    );

    // Without the admin token, refused.
    let part = serde_json::json!({
        "serviceId": parsed["serviceId"], "machineId": MACHINE_ID,
        "hostname": "intruder", "report": parsed["reports"][0],
    });
    let (status, _, _) = common::http(
        "POST",
        &format!("{}/api/v1/reports/import", server.url),
        None,
        &[("content-type", "application/json")],
        part.to_string().as_bytes(),
    );
    assert_eq!(status, 401);

    let imported = server.json(&["import-reports", report_file.to_str().unwrap()]);
    let parts = imported.as_array().unwrap();
    assert!(
        parts.iter().all(|part| part["current"] == true),
        "{imported}"
    );
    let computer_id = parts[0]["ack"]["computerId"].as_str().unwrap().to_owned();
    assert_eq!(parts[0]["ack"]["group"], "Site");

    let motd = server.json(&["report", "updates", MOTD]);
    assert_eq!(motd[0]["installed"], 1, "{motd}");
    let installed = server.json(&[
        "report",
        "updates",
        MOTD,
        "--computers",
        "--state",
        "Installed",
    ]);
    assert_eq!(
        installed["computers"][0]["computerId"],
        computer_id.as_str()
    );
    assert_eq!(installed["computers"][0]["group"], "Site");
    let computers = server.json(&["report", "computers", "--group", "Site"]);
    let offline = computers
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["computerId"] == computer_id.as_str())
        .unwrap_or_else(|| panic!("{computers}"));
    assert!(offline["lastReport"].is_string(), "{offline}");
    assert_eq!(offline["installed"], 1, "{offline}");

    // The same file again: nothing new, still one computer's state.
    let again = server.json(&["import-reports", report_file.to_str().unwrap()]);
    let parts = again.as_array().unwrap();
    assert!(parts.iter().all(|part| part["current"] == true), "{again}");
    let motd = server.json(&["report", "updates", MOTD]);
    assert_eq!(motd[0]["installed"], 1, "{motd}");

    // The older file, carried back late, changes nothing and says so.
    let early_file = root.path().join("early-reports.json");
    std::fs::write(&early_file, &early).unwrap();
    let late = server.run_ok(&["import-reports", early_file.to_str().unwrap()]);
    assert!(late.contains("a newer one"), "{late}");
    let motd = server.json(&["report", "updates", MOTD]);
    assert_eq!(motd[0]["installed"], 1, "{motd}");
    let installed = server.json(&[
        "report",
        "updates",
        MOTD,
        "--computers",
        "--state",
        "Installed",
    ]);
    assert_eq!(
        installed["computers"][0]["computerId"],
        computer_id.as_str()
    );
}

/// Without `--with-content` the package holds the catalog alone; the
/// agent reads the content from a copy of the server's content directory,
/// as docs/server.md says.
#[test]
fn a_package_without_content_installs_from_a_copy_of_the_content_directory() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("server");
    let server = common::Server::start(&data_dir, None, &[]);
    server.run_ok(&["publish", common::sample_service().to_str().unwrap()]);
    server.run_ok(&["groups", "add", "Site"]);
    server.run_ok(&["approve", MOTD, "--group", "Site"]);
    let key = key(&server);
    let package = root.path().join("site.owpkg");
    let summary = server.json(&["export", "--group", "Site", "-o", package.to_str().unwrap()]);
    assert_eq!(summary["contentFiles"], 0, "{summary}");
    server.stop();

    // The media: the content directory copied, as an administrator would.
    let media = root.path().join("media");
    std::fs::create_dir_all(media.join("content")).unwrap();
    for file in std::fs::read_dir(data_dir.join("content")).unwrap() {
        let file = file.unwrap();
        if file.file_type().unwrap().is_file() {
            std::fs::copy(file.path(), media.join("content").join(file.file_name())).unwrap();
        }
    }

    let agent_dir = tempfile::tempdir().unwrap();
    let agent = Background::start(agent_config(agent_dir.path(), MACHINE_ID)).unwrap();
    let session = UpdateSession::connect(agent.socket()).unwrap();
    let base = format!("file://{}/", media.display());
    session
        .create_update_service_manager()
        .add_scan_package_service(None, &package, &key, true, Some(&base))
        .unwrap();
    let motd: Uuid = MOTD.parse().unwrap();
    let mut downloader = session.create_update_downloader();
    downloader.updates = vec![motd];
    let job = downloader.download().unwrap();
    assert_eq!(
        job.result.as_ref().unwrap().result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{job:?}"
    );
    let mut installer = session.create_update_installer();
    installer.updates = vec![motd];
    let job = installer.install().unwrap();
    assert_eq!(
        job.result.as_ref().unwrap().result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{job:?}"
    );
}
