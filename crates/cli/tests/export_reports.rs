//! `wua export-reports` against a separate agent (in the test process, on
//! a real socket): the report of an offline scan package service, for an
//! update server's `wua-server import-reports` (docs/server.md, "Air gap").

use std::path::Path;
use std::process::{Command, Output};

use openwua_agent::{Background, Config};
use serde_json::Value;

const MACHINE_ID: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";

fn wua(agent: &Background, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wua"))
        .arg("--socket")
        .arg(agent.socket())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("wua runs")
}

fn ok(agent: &Background, args: &[&str]) -> Output {
    let output = wua(agent, args);
    assert!(
        output.status.success(),
        "wua {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_report_of_an_offline_package_service_is_written_for_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let machine_id = dir.path().join("machine-id");
    std::fs::write(&machine_id, format!("{MACHINE_ID}\n")).unwrap();
    let mut config = Config::under(dir.path());
    config.owner_is_admin = true;
    config.facts.machine_id = machine_id;
    let agent = Background::start(config).unwrap();

    // Nothing to export yet: said so.
    let output = wua(&agent, &["export-reports"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no offline scan package service"),
        "{stderr}"
    );

    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service");
    let key = dir.path().join("sample");
    let package = dir.path().join("sample.owpkg");
    ok(&agent, &["package", "keygen", key.to_str().unwrap()]);
    ok(
        &agent,
        &[
            "package",
            "build",
            sample.to_str().unwrap(),
            "-o",
            package.to_str().unwrap(),
            "--key",
            &format!("{}.key", key.display()),
        ],
    );
    ok(
        &agent,
        &[
            "services",
            "add-package",
            package.to_str().unwrap(),
            "--pubkey",
            &format!("{}.pub", key.display()),
        ],
    );
    let services: Value =
        serde_json::from_slice(&ok(&agent, &["services", "list", "--json"]).stdout).unwrap();
    let service_id = services[0]["serviceId"].as_str().unwrap().to_owned();

    let file = dir.path().join("reports.json");
    let before = jiff::Timestamp::now().as_millisecond();
    let said = ok(&agent, &["export-reports", "-o", file.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&said.stdout).contains("wua-server import-reports"),
        "{said:?}"
    );
    let document: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(document["format"], 1);
    assert_eq!(document["serviceId"], service_id.as_str());
    assert_eq!(document["machineId"], MACHINE_ID);
    assert!(!document["hostname"].as_str().unwrap().is_empty());
    let report = &document["reports"][0];
    let first = report["sequence"].as_u64().unwrap();
    // At least the export time, so a service added again numbers above.
    assert!(first >= u64::try_from(before).unwrap(), "{first}");
    let updates = report["updates"].as_array().unwrap();
    assert_eq!(
        updates.len(),
        services[0]["updateCount"].as_u64().unwrap() as usize
    );
    assert!(updates.iter().all(|update| update["state"].is_string()));
    assert!(report["inventory"]["agentVersion"].is_string());

    // To standard output; each export numbers above the last.
    let printed: Value =
        serde_json::from_slice(&ok(&agent, &["export-reports", "--service", &service_id]).stdout)
            .unwrap();
    assert!(printed["reports"][0]["sequence"].as_u64().unwrap() > first);
}
