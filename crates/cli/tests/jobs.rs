//! `wua` against a separate agent (started in the test process on a real
//! socket, as `wua-agent` would serve it): jobs outlive the command that
//! started them, so `wua jobs`, `wua watch` and `wua abort` can find them.

use std::path::Path;
use std::process::{Command, Output};

use openwua_agent::{Background, Config};
use serde_json::Value;

const SAMPLE_TOOLS: &str = "4e1bd36a-516a-58c8-adfb-d590fcf53ac1";

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
        Command::new(env!("CARGO_BIN_EXE_wua"))
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
