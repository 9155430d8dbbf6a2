//! `wua` against a separate agent (started in the test process on a real
//! socket, as `wua-agent` would serve it): jobs outlive the command that
//! started them, so `wua jobs`, `wua watch` and `wua abort` can find them.

use std::path::Path;
use std::process::{Command, Output};

use openwua_agent::{Background, Config};
use serde_json::Value;

const SAMPLE_TOOLS: &str = "4e1bd36a-516a-58c8-adfb-d590fcf53ac1";
const AGENT_2_0: &str = "f33e3575-ef65-5ef0-bffa-bc12d356e01b";
/// Asks a question while it installs; needs agent 2.0.
const AGENT_2_1: &str = "064197b3-dc87-5d8a-87f9-f033b76b0860";
/// Needs a restart.
const NIC_DRIVER: &str = "cc9d072b-5d36-5887-8c9d-b4b9a27d8d8d";

fn wua_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wua"))
}

struct Agent {
    dir: tempfile::TempDir,
    agent: Background,
}

impl Agent {
    /// An agent with the sample service, built and signed here.
    fn with_sample() -> Agent {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::under(dir.path());
        // The test's own uid administers it, root or not.
        config.owner_is_admin = true;
        let agent = Background::start(config).expect("the agent starts");
        let this = Agent { dir, agent };
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service");
        let key = this.dir.path().join("sample");
        let package = this.dir.path().join("sample.owpkg");
        this.ok(&["package", "keygen", &key.to_string_lossy()]);
        this.ok(&[
            "package",
            "build",
            &sample.to_string_lossy(),
            "-o",
            &package.to_string_lossy(),
            "--key",
            &format!("{}.key", key.display()),
        ]);
        this.ok(&[
            "services",
            "add-package",
            &package.to_string_lossy(),
            "--pubkey",
            &format!("{}.pub", key.display()),
        ]);
        this
    }

    fn wua(&self, args: &[&str]) -> Output {
        Command::new(wua_binary())
            .arg("--socket")
            .arg(self.agent.socket())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .expect("wua runs")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let output = self.wua(args);
        assert!(
            output.status.success(),
            "wua {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_slice(&self.ok(&args).stdout).expect("JSON on stdout")
    }
}

#[test]
fn jobs_are_listed_watched_and_reported_after_the_command_ends() {
    let agent = Agent::with_sample();
    let output = agent.ok(&["install", SAMPLE_TOOLS]);
    // Not a terminal: progress is plain lines on standard error, and each
    // job's ID is said so it can be watched from elsewhere.
    let progress = String::from_utf8_lossy(&output.stderr);
    assert!(progress.contains("wua: install job "), "{progress}");
    assert!(
        progress.contains("installing 1/1 OpenWUA sample tools 1.0"),
        "{progress}"
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Succeeded"), "{text}");
    assert!(
        agent
            .dir
            .path()
            .join("sandbox/openwua-sample-tools/VERSION")
            .exists()
    );

    let jobs = agent.json(&["jobs"]);
    let kinds: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Download", "Install"], "{jobs}");
    let install_id = jobs[1]["jobId"].as_str().unwrap().to_owned();

    let watched = agent.json(&["watch", &install_id]);
    assert_eq!(watched["state"], "Completed");
    assert_eq!(watched["result"]["resultCode"], "Succeeded");
    let table = String::from_utf8_lossy(&agent.ok(&["jobs"]).stdout).into_owned();
    assert!(table.contains(&install_id), "{table}");

    let status = agent.json(&["status"]);
    assert_eq!(status["installer"]["isBusy"], false, "{status}");
    let history = agent.json(&["history"]);
    assert_eq!(history[0]["title"], "OpenWUA sample tools 1.0", "{history}");

    // An unknown job is invalid input, with its code.
    let unknown = agent.wua(&["watch", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("WU_E_INVALID_OPERATION"), "{stderr}");
}

/// The login message's scripts, run with `wua` on their PATH and the
/// agent's socket in `OPENWUA_SOCKET` (`profile.d`'s is sourced by an
/// interactive shell, as a login shell would).
fn login_messages(socket: &Path) -> [Output; 2] {
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    let bin = wua_binary().parent().expect("wua is in a directory");
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let run = |command: &mut Command| {
        command
            .env_clear()
            .env("PATH", &path)
            .env("OPENWUA_SOCKET", socket)
            .output()
            .expect("sh runs")
    };
    [
        run(Command::new("sh").arg(packaging.join("update-motd.d/85-openwua"))),
        // +m: no job control, which would want a terminal.
        run(Command::new("sh").args(["-i", "+m", "-c"]).arg(format!(
            ". '{}'",
            packaging.join("profile.d/openwua.sh").display()
        ))),
    ]
}

/// Issue 17: `wua status --brief` and the login scripts say nothing until
/// there is something to say, then say that a restart is pending and that
/// updates wait for an administrator at a terminal; `wua status`'s exit
/// status is 6 while a restart is pending; with no agent the scripts are
/// silent.
#[test]
fn status_brief_and_the_login_message_speak_only_when_needed() {
    let agent = Agent::with_sample();
    let brief = agent.ok(&["status", "--brief"]);
    assert!(brief.stdout.is_empty(), "{brief:?}");
    for output in login_messages(agent.agent.socket()) {
        assert!(output.status.success(), "{output:?}");
        assert!(output.stdout.is_empty(), "{output:?}");
    }

    // From this process, without a terminal: the sample's agent 2.1, which
    // asks a question, waits for an interactive user; then its network
    // driver needs a restart.
    agent.ok(&["install", AGENT_2_0]);
    let refused = agent.wua(&["install", AGENT_2_1, "--accept-eulas"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    agent.ok(&["install", NIC_DRIVER]);
    let status = agent.wua(&["status"]);
    assert_eq!(status.status.code(), Some(6), "{status:?}");
    let json = agent.wua(&["status", "--json"]);
    assert_eq!(json.status.code(), Some(6), "{json:?}");
    let state: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(state["rebootRequired"], true, "{state}");
    let waiting = state["installer"]["awaitingInteractiveUser"]
        .as_array()
        .expect("a list")
        .len();
    assert!(waiting > 0, "{state}");

    let brief = agent.wua(&["status", "--brief"]);
    assert_eq!(brief.status.code(), Some(6), "{brief:?}");
    let text = String::from_utf8_lossy(&brief.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("OpenWUA: restart this machine to finish "),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("OpenWUA: {waiting} update"))
            && lines[1].contains("for an administrator at a terminal"),
        "{text}"
    );
    for output in login_messages(agent.agent.socket()) {
        assert!(output.status.success(), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), text);
    }

    // No agent: silent, and a success, so a login goes on.
    let gone = agent.dir.path().join("no-agent.sock");
    for output in login_messages(&gone) {
        assert!(output.status.success(), "{output:?}");
        assert!(
            output.stdout.is_empty() && output.stderr.is_empty(),
            "{output:?}"
        );
    }
}
