//! `wua update`, `install`, `uninstall` and `history` through an embedded
//! agent and the sample service: real installers writing to the sample's
//! sandbox, real exit statuses.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const SAMPLE_TOOLS: &str = "4e1bd36a-516a-58c8-adfb-d590fcf53ac1";

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
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("OPENWUA_EMBEDDED_DIR", self.dir.path())
            .output()
            .expect("wua runs")
    }

    fn json(&self, args: &[&str]) -> (Option<i32>, Value) {
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

    fn sandbox(&self) -> PathBuf {
        self.dir.path().join("sandbox")
    }
}

#[test]
fn update_installs_what_applies_then_waits_for_the_restart_it_needs() {
    let embedded = Embedded::new();
    let (status, report) = embedded.json(&["update"]);
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
    let (status, again) = embedded.json(&["update"]);
    assert_eq!(status, Some(6), "{again}");
    assert!(again["install"].as_array().unwrap().is_empty(), "{again}");
    assert!(!again["deferred"].as_array().unwrap().is_empty(), "{again}");

    let (status, state) = embedded.json(&["status"]);
    assert_eq!(status, Some(0));
    assert_eq!(state["installer"]["rebootRequiredBeforeInstallation"], true);

    let (_, history) = embedded.json(&["history"]);
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
    let (status, outcome) = embedded.json(&["install", SAMPLE_TOOLS]);
    assert_eq!(status, Some(0), "{outcome}");
    assert_eq!(outcome["download"]["result"]["resultCode"], "Succeeded");
    assert_eq!(outcome["install"][0]["result"]["resultCode"], "Succeeded");
    assert!(embedded.sandbox().join("openwua-sample-tools").exists());

    let (status, job) = embedded.json(&["uninstall", SAMPLE_TOOLS]);
    assert_eq!(status, Some(0), "{job}");
    assert_eq!(job["result"]["resultCode"], "Succeeded");
    assert!(!embedded.sandbox().join("openwua-sample-tools").exists());

    // Text for people: the result table, and the code's advice on failure.
    let output = embedded.wua(&["uninstall", SAMPLE_TOOLS]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("WU_S_ALREADY_UNINSTALLED"), "{text}");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn an_unknown_update_is_invalid_input() {
    let embedded = Embedded::new();
    let output = embedded.wua(&["install", "00000000-0000-4000-8000-0000000000ff"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WU_E_DS_NODATA") || stderr.contains("no update"),
        "{stderr}"
    );
}
