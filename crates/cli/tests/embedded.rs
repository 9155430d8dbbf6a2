//! `wua --embedded`: the agent runs inside wua with the sample service, so
//! these run the whole path (CLI, client, Varlink, agent, store) for real.

use std::process::{Command, Output};

use serde_json::Value;

const TZDATA: &str = "f69a4107-4c9a-54bc-a9e9-16df277113c1";
const AGENT_2_1: &str = "064197b3-dc87-5d8a-87f9-f033b76b0860";
/// Hidden by default in the sample.
const KERNEL_HARDENING: &str = "157de3ea-4e09-5ef4-8fdb-b726826f524a";
const SAMPLE_TOOLS: &str = "4e1bd36a-516a-58c8-adfb-d590fcf53ac1";

/// A per-test state directory for the embedded agent.
struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Embedded {
        Embedded {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn wua(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wua"))
            .arg("--embedded")
            .args(args)
            .env_clear()
            // dpkg-query, for the sample's deb_installed rules.
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("OPENWUA_EMBEDDED_DIR", self.dir.path())
            .output()
            .expect("wua runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.wua(&args);
        assert!(
            output.status.success(),
            "wua {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }

    /// `--json` output of a command that may exit with any status.
    fn json_with_status(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.wua(&args);
        let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "wua {args:?}: {error}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code(), value)
    }

    /// Where the sample's installers write.
    fn sandbox(&self) -> std::path::PathBuf {
        self.dir.path().join("sandbox")
    }

    fn found(&self, criteria: &str) -> Vec<String> {
        let result = self.json(&["search", criteria]);
        result["updates"]
            .as_array()
            .expect("updates")
            .iter()
            .map(|entry| {
                entry["update"]["identity"]["updateId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
}

#[test]
fn the_sample_service_is_registered_and_searchable() {
    let embedded = Embedded::new();
    let result = embedded.json(&["search"]);
    assert_eq!(result["resultCode"], "Succeeded");
    let titles: Vec<&str> = result["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["update"]["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"tzdata 2026b"), "{titles:?}");

    let services = embedded.json(&["services", "list"]);
    assert_eq!(services.as_array().map(Vec::len), Some(1), "{services}");
    assert_eq!(services[0]["isDefault"], true);
    assert!(services[0]["updateCount"].as_u64().unwrap() >= 24);

    // A second run finds the same service, synced rather than added again.
    let status = embedded.json(&["status"]);
    assert_eq!(
        status["updateCount"], services[0]["updateCount"],
        "{status}"
    );
}

#[test]
fn hide_and_unhide_change_what_a_search_returns() {
    let embedded = Embedded::new();
    assert!(embedded.found("").contains(&TZDATA.to_owned()));
    assert!(embedded.wua(&["hide", TZDATA]).status.success());
    assert!(!embedded.found("").contains(&TZDATA.to_owned()));
    assert_eq!(embedded.found("IsHidden=1"), [KERNEL_HARDENING, TZDATA]);
    assert!(embedded.wua(&["unhide", TZDATA]).status.success());
    assert_eq!(embedded.found("IsHidden=1"), [KERNEL_HARDENING]);
}

#[test]
fn a_licence_can_be_read_and_accepted() {
    let embedded = Embedded::new();
    let shown = embedded.wua(&["eula", "show", AGENT_2_1]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(!shown.stdout.is_empty());
    let before = embedded.json(&["show", AGENT_2_1]);
    assert_eq!(before["entry"]["state"]["eulaAccepted"], false, "{before}");
    // It needs Example Agent 2.0 installed first, and says so.
    assert_eq!(before["applicability"]["applicable"], false);
    let reason = before["applicability"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("prerequisites not installed"),
        "{reason}"
    );
    assert!(
        embedded
            .wua(&["eula", "accept", AGENT_2_1])
            .status
            .success()
    );
    let after = embedded.json(&["show", AGENT_2_1]);
    assert_eq!(after["entry"]["state"]["eulaAccepted"], true);
}

#[test]
fn an_unknown_update_is_an_error_with_its_code() {
    let embedded = Embedded::new();
    for command in ["show", "install"] {
        let output = embedded.wua(&[command, "00000000-0000-0000-0000-000000000001"]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(text.contains("WU_E_DS_NODATA"), "{command}: {text}");
    }
}

#[test]
fn a_refused_scan_package_is_invalid_input() {
    let embedded = Embedded::new();
    let package = embedded.dir.path().join("damaged.owpkg");
    std::fs::write(&package, b"not a package").unwrap();
    let key = embedded.dir.path().join("other");
    let keygen = Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(["package", "keygen"])
        .arg(&key)
        .env_clear()
        .output()
        .expect("wua runs");
    assert!(keygen.status.success());
    let output = embedded.wua(&[
        "services",
        "add-package",
        package.to_str().unwrap(),
        "--pubkey",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("WU_E_OL_INVALID_SCANFILE"), "{text}");
}

#[test]
fn update_installs_what_applies_then_waits_for_the_restart_it_needs() {
    let embedded = Embedded::new();
    let (status, report) = embedded.json_with_status(&["update"]);
    // The sample's network driver needs a restart: exit status 6.
    assert_eq!(status, Some(6), "{report}");
    let search = report["search"]["updates"].as_array().unwrap();
    assert!(!search.is_empty());
    assert_eq!(report["download"]["state"], "Completed");
    let installs = report["install"].as_array().unwrap();
    assert!(!installs.is_empty());
    for job in installs {
        assert_eq!(job["result"]["resultCode"], "Succeeded", "{job}");
    }
    // The installers ran for real, in the sample's sandbox.
    let version = std::fs::read_to_string(embedded.sandbox().join("openwua-sample-tools/VERSION"))
        .expect("the sample tools' installer wrote its version");
    assert_eq!(version.trim(), "1.0.0");

    // The next run finds more (updates whose prerequisites are now
    // installed) and leaves them for after the restart.
    let (status, again) = embedded.json_with_status(&["update"]);
    assert_eq!(status, Some(6), "{again}");
    assert!(again["install"].as_array().unwrap().is_empty(), "{again}");
    assert!(!again["deferred"].as_array().unwrap().is_empty(), "{again}");

    let (status, state) = embedded.json_with_status(&["status"]);
    assert_eq!(status, Some(0));
    assert_eq!(state["installer"]["rebootRequiredBeforeInstallation"], true);

    let (_, history) = embedded.json_with_status(&["history"]);
    let entries = history.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|entry| entry["title"] == "OpenWUA sample tools 1.0"
                && entry["resultCode"] == "Succeeded"),
        "{history}"
    );
}

#[test]
fn install_then_uninstall_one_update_by_id() {
    let embedded = Embedded::new();
    let (status, outcome) = embedded.json_with_status(&["install", SAMPLE_TOOLS]);
    assert_eq!(status, Some(0), "{outcome}");
    assert_eq!(outcome["download"]["result"]["resultCode"], "Succeeded");
    assert_eq!(outcome["install"][0]["result"]["resultCode"], "Succeeded");
    assert!(embedded.sandbox().join("openwua-sample-tools").exists());

    let (status, job) = embedded.json_with_status(&["uninstall", SAMPLE_TOOLS]);
    assert_eq!(status, Some(0), "{job}");
    assert_eq!(job["result"]["resultCode"], "Succeeded");
    assert!(!embedded.sandbox().join("openwua-sample-tools").exists());

    // Text for people: the result table, and the code's advice on failure.
    let output = embedded.wua(&["uninstall", SAMPLE_TOOLS]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("WU_S_ALREADY_UNINSTALLED"), "{text}");
    assert_eq!(output.status.code(), Some(0));
}
