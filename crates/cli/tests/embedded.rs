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
    // The sample's network driver needs a restart: still a success (exit
    // status 0), with the restart in the report.
    assert_eq!(status, Some(0), "{report}");
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
    assert_eq!(status, Some(0), "{again}");
    assert!(again["install"].as_array().unwrap().is_empty(), "{again}");
    assert!(!again["deferred"].as_array().unwrap().is_empty(), "{again}");

    // `wua status` says it in its exit status too (6: a restart is pending).
    let (status, state) = embedded.json_with_status(&["status"]);
    assert_eq!(status, Some(6), "{state}");
    assert_eq!(state["installer"]["rebootRequiredBeforeInstallation"], true);
    // What a script reads instead of an exit status.
    assert_eq!(state["rebootRequired"], true, "{state}");

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

/// A copy of the sample service for one test to change.
fn sample_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let sample = dir.join("sample-service");
    let status = Command::new("cp")
        .arg("-r")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sample-service"
        ))
        .arg(&sample)
        .status()
        .expect("cp runs");
    assert!(status.success());
    sample
}

#[test]
fn catalog_text_cannot_send_terminal_escapes() {
    let embedded = Embedded::new();
    let sample = sample_copy(embedded.dir.path());
    // Short enough that the table does not cut it.
    let forged = r#"T\u001b[2K\rFAKE\nforged"#;
    let manifest = sample.join("tzdata-2026b/update.toml");
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    let text = text
        .replace(
            r#"title = "tzdata 2026b""#,
            &format!(r#"title = "{forged}""#),
        )
        .replace(
            r#"description = "Time zone"#,
            r#"description = "\u009b2J\u007fTime zone"#,
        );
    std::fs::write(&manifest, text).expect("write the manifest");
    let eula = sample.join("example-agent-2.1/eula.txt");
    let mut terms = std::fs::read(&eula).expect("the licence");
    terms.extend_from_slice(b"\x1b]0;owned\x07\rclause 9\r\n");
    std::fs::write(&eula, terms).expect("write the licence");

    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_wua"))
            .arg("--embedded")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("OPENWUA_EMBEDDED_DIR", embedded.dir.path().join("state"))
            .env("OPENWUA_SAMPLE_SERVICE", &sample)
            .output()
            .expect("wua runs");
        assert!(
            output.status.success(),
            "wua {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    let no_controls = |text: &str| !text.chars().any(|c| c.is_control() && c != '\n');
    let search = run(&["search"]);
    assert!(no_controls(&search), "{search:?}");
    assert!(
        search.contains(r"T\u{1b}[2K\u{d}FAKE\u{a}forged"),
        "{search}"
    );
    assert!(
        !search.lines().any(|line| line.starts_with("forged")),
        "{search}"
    );
    let show = run(&["show", TZDATA]);
    assert!(no_controls(&show), "{show:?}");
    assert!(show.contains(r"\u{9b}2J\u{7f}Time zone"), "{show}");
    // Licence terms keep their lines, nothing else.
    let terms = run(&["eula", "show", AGENT_2_1]);
    assert!(no_controls(&terms), "{terms:?}");
    assert!(
        terms.contains("\\u{1b}]0;owned\\u{7}\\u{d}clause 9\n"),
        "{terms}"
    );
    // JSON keeps the text as it is.
    let json: Value = serde_json::from_str(&run(&["show", TZDATA, "--json"])).expect("JSON");
    assert_eq!(json["entry"]["update"]["title"], "T\u{1b}[2K\rFAKE\nforged");
}

#[test]
fn sync_json_is_the_services_sync_results() {
    let embedded = Embedded::new();
    let synced = embedded.json(&["sync"]);
    let results = synced.as_array().expect("an array");
    assert_eq!(results.len(), 1, "{synced}");
    assert_eq!(
        results[0]["serviceId"],
        "1f500f7a-8dba-52e3-89d8-e4a35934dcef"
    );
    assert!(results[0]["version"].as_u64().is_some(), "{synced}");
}

#[test]
fn an_installed_wua_needs_no_source_tree_for_its_sample() {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout == b"0\n")
    {
        openwua_testkit::skip(
            "an_installed_wua_needs_no_source_tree_for_its_sample",
            "needs root to hide the source tree in a mount namespace",
        );
        return;
    }
    // wua copied elsewhere, run from elsewhere, with the repository's
    // examples hidden under an empty tmpfs: as on a machine it was installed on.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let wua = dir.path().join("wua");
    std::fs::copy(env!("CARGO_BIN_EXE_wua"), &wua).expect("copy wua");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let examples = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .canonicalize()
        .expect("the examples");
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs none "$1" && cd "$2" && exec "$3" --embedded search --json"#)
        .arg("sh")
        .arg(&examples)
        .arg(&home)
        .arg(&wua)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", &home)
        .output()
        .expect("unshare runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let found = result["updates"].as_array().expect("updates");
    assert!(
        found
            .iter()
            .any(|entry| entry["update"]["identity"]["updateId"] == TZDATA),
        "{result}"
    );
}

#[test]
fn add_server_refuses_plain_http_off_loopback_before_any_request() {
    let embedded = Embedded::new();
    let key = embedded.dir.path().join("server");
    let keygen = Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(["package", "keygen"])
        .arg(&key)
        .env_clear()
        .output()
        .expect("wua runs");
    assert!(keygen.status.success());
    let output = embedded.wua(&[
        "services",
        "add-server",
        "http://updates.example.org",
        "--pubkey",
        key.with_extension("pub").to_str().unwrap(),
        "--group",
        "Lab",
    ]);
    assert_ne!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("E_INVALIDARG"), "{text}");
    assert!(text.contains("loopback"), "{text}");
}

/// Issue 17: the README's first command, as written there, exits 0 on a
/// fresh machine: a home directory of its own, nothing set up.
#[test]
fn the_readme_first_command_exits_0_in_a_fresh_home() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let first = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.lines().next())
        .expect("the README opens with a sh block");
    let command = first.split('#').next().unwrap_or_default().trim();
    assert_eq!(
        command, "cargo run -q -p openwua-cli --bin wua -- --embedded update",
        "the README's first command changed: change this test with it"
    );
    let args: Vec<&str> = command
        .split_once(" -- ")
        .map(|(_, args)| args.split_whitespace().collect())
        .unwrap_or_default();
    let home = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_wua"))
        .args(&args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home.path())
        .output()
        .expect("wua runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("restart required"), "{text}");
    // Its state went where the README says, under the home directory.
    assert!(
        home.path()
            .join(".local/state/openwua/embedded/sandbox")
            .is_dir()
    );
}

#[test]
fn auto_shows_sets_pauses_and_resumes_automatic_updates() {
    let embedded = Embedded::new();
    let shown = embedded.json(&["auto", "show"]);
    assert_eq!(
        shown["settings"]["notificationLevel"],
        "NotifyBeforeDownload"
    );
    assert_eq!(shown["serviceEnabled"], true);
    assert_eq!(shown["restart"]["policy"], "never");
    // The text names WUA's member and value.
    let text = embedded.wua(&["auto", "show"]);
    assert!(text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("aunlNotifyBeforeDownload (2)"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    let set = embedded.json(&[
        "auto",
        "set",
        "--level",
        "aunlScheduledInstallation",
        "--day",
        "6",
        "--hour",
        "4",
        "--include-recommended",
        "true",
    ]);
    assert_eq!(
        set["settings"]["notificationLevel"],
        "ScheduledInstallation"
    );
    assert_eq!(set["settings"]["scheduledInstallationDay"], "EveryFriday");
    assert_eq!(set["settings"]["scheduledInstallationTime"], 4);
    assert_eq!(set["settings"]["includeRecommendedUpdates"], true);
    assert!(set["nextScheduledInstallation"].is_string(), "{set}");
    // Kept: the next run (a new embedded agent) shows it.
    assert_eq!(
        embedded.json(&["auto", "show"])["settings"]["scheduledInstallationTime"],
        4
    );
    // A bad value is invalid input and changes nothing.
    let bad = embedded.wua(&["auto", "set", "--level", "sometimes"]);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("E_INVALIDARG"));
    let hour = embedded.wua(&["auto", "set", "--hour", "24"]);
    assert_eq!(hour.status.code(), Some(2));
    assert_eq!(
        embedded.json(&["auto", "show"])["settings"]["notificationLevel"],
        "ScheduledInstallation"
    );
    // Paused: DetectNow says so; resumed: it is accepted.
    let paused = embedded.json(&["auto", "pause", "--days", "3"]);
    assert!(paused["pausedUntil"].is_string(), "{paused}");
    let refused = embedded.wua(&["auto", "detect-now"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("WU_E_AU_PAUSED"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let resumed = embedded.json(&["auto", "resume"]);
    assert!(resumed.get("pausedUntil").is_none(), "{resumed}");
    let detect = embedded.wua(&["auto", "detect-now"]);
    assert!(
        detect.status.success(),
        "{}",
        String::from_utf8_lossy(&detect.stderr)
    );
    // Disabled: DetectNow is WU_E_AU_NOSERVICE.
    embedded.json(&["auto", "set", "--level", "1"]);
    let disabled = embedded.wua(&["auto", "detect-now"]);
    assert!(
        String::from_utf8_lossy(&disabled.stderr).contains("WU_E_AU_NOSERVICE"),
        "{}",
        String::from_utf8_lossy(&disabled.stderr)
    );
}
