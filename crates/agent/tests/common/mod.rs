//! Shared test fixtures: a real `wua-agent` process on a real socket, a raw
//! Varlink client, and signed scan packages built on the fly.

#![allow(dead_code)] // Each test binary uses a different part.

// The real .debs and throwaway dpkg database the installer's tests build.
#[path = "../../../installer/tests/common/dpkg.rs"]
pub mod dpkg;
pub mod http;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::package;
use openwua_catalog::revision::{Applicability, ContentFile, Handler, Revision};
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_model::update::Sha256Digest;
use serde_json::{Value, json};
use sha2::Digest as _;
use uuid::Uuid;

pub const SERVICE_ID: &str = "6e1b4c1e-0000-4000-8000-000000000001";

/// A `wua-agent` process with its own state directory and socket.
pub struct AgentProcess {
    pub dir: tempfile::TempDir,
    pub child: Child,
    pub extra_args: Vec<String>,
    /// TOML merged into the generated config: (lines for its `[install]`
    /// table, tables appended after it).
    pub extra_config: (String, String),
}

impl AgentProcess {
    pub fn start(extra_args: &[&str]) -> AgentProcess {
        let dir = tempfile::tempdir().unwrap();
        let extra_args: Vec<String> = extra_args.iter().map(|arg| arg.to_string()).collect();
        let extra_config = (String::new(), String::new());
        let child = spawn(dir.path(), &extra_args, &extra_config);
        let agent = AgentProcess {
            dir,
            child,
            extra_args,
            extra_config,
        };
        agent.wait_ready();
        agent
    }

    /// Like [`AgentProcess::start`], with `install_lines` added to the
    /// generated config's `[install]` table and `extra_toml` (more tables,
    /// e.g. `[facts]`) appended after it. `setup` runs first with the
    /// agent's directory, so the extras may name paths inside it.
    pub fn start_with_config(setup: impl FnOnce(&Path) -> (String, String)) -> AgentProcess {
        let dir = tempfile::tempdir().unwrap();
        let extra_config = setup(dir.path());
        let child = spawn(dir.path(), &[], &extra_config);
        let agent = AgentProcess {
            dir,
            child,
            extra_args: Vec::new(),
            extra_config,
        };
        agent.wait_ready();
        agent
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("state/agent.db")
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("wua-agent did not open {}", self.socket().display());
    }

    /// SIGKILL, then start again on the same state.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn(self.dir.path(), &self.extra_args, &self.extra_config);
        self.wait_ready();
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket())
    }

    pub fn call(&self, method: &str, parameters: Value) -> Result<Value, Value> {
        self.client().call(method, parameters)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, extra_args: &[String], extra_config: &(String, String)) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wua-agent"))
        .arg("--config")
        .arg(write_config_with(dir, &extra_config.0, &extra_config.1))
        .args(extra_args)
        .env("WUA_AGENT_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn write_config(dir: &Path) -> PathBuf {
    write_config_with(dir, "", "")
}

/// The generated config, with `install_lines` in its `[install]` table and
/// `extra_toml` after it.
fn write_config_with(dir: &Path, install_lines: &str, extra_toml: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    let boot_id = dir.join("boot_id");
    if !boot_id.exists() {
        std::fs::write(&boot_id, format!("{}\n", Uuid::new_v4())).unwrap();
    }
    std::fs::write(
        &path,
        format!(
            // The test's agent belongs to whoever runs the tests, as
            // `wua --embedded`'s does: a non-root run may administer it.
            "state_dir = {:?}\ncache_dir = {:?}\nsocket = {:?}\nowner_is_admin = true\n\
             [install]\nsandbox_dir = {:?}\nboot_id_file = {:?}\n\
             reboot_required_file = {:?}\nabort_grace_seconds = 1\n{}\n{}\n",
            dir.join("state"),
            dir.join("cache"),
            dir.join("agent.sock"),
            dir.join("sandbox"),
            boot_id,
            dir.join("reboot-required"),
            install_lines,
            extra_toml,
        ),
    )
    .unwrap();
    path
}

/// A test's installer: a shell script that becomes the update's one
/// content file, `install.sh`, run by a `command` handler.
pub struct Installer {
    pub script: String,
    pub uninstall: bool,
    pub exit_codes: Value,
}

/// An update installed by `installer`, with its content file in `dir`.
pub fn installable(
    dir: &Path,
    id: u128,
    title: &str,
    installer: Installer,
    extra: Value,
) -> (Revision, (ContentFile, PathBuf)) {
    let file_dir = dir.join(format!("payload-{id}"));
    std::fs::create_dir_all(&file_dir).unwrap();
    let path = file_dir.join("install.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{}\n", installer.script)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let sha256 = Sha256Digest(sha2::Sha256::digest(&bytes).into());
    let content = ContentFile {
        file_name: "install.sh".into(),
        size: bytes.len() as u64,
        sha256,
        url: format!("content/{sha256}"),
    };
    let mut extra = extra;
    extra["downloadContents"] = json!([{
        "fileName": "install.sh", "size": bytes.len(), "sha256": sha256.to_string()
    }]);
    extra["maxDownloadSize"] = json!(bytes.len());
    if installer.uninstall && extra.get("uninstallationBehavior").is_none() {
        extra["uninstallationBehavior"] = json!({});
    }
    let mut revision = revision(id, title, Applicability::default(), extra);
    revision.handler = Handler::Command {
        program: "install.sh".into(),
        args: vec!["install".into()],
        uninstall: installer
            .uninstall
            .then(|| vec!["install.sh".into(), "uninstall".into()]),
        exit_codes: serde_json::from_value(installer.exit_codes).unwrap(),
        timeout_seconds: None,
    };
    revision.content = vec![content.clone()];
    (revision, (content, path))
}

/// Starts a job method with `more`: the connection that follows it and
/// the job's ID, from the first reply.
pub fn start_job(agent: &AgentProcess, method: &str, parameters: Value) -> (Client, String) {
    let mut client = agent.client();
    let message = json!({ "method": method, "parameters": parameters, "more": true });
    let mut bytes = serde_json::to_vec(&message).unwrap();
    bytes.push(0);
    client.send_raw(&bytes);
    let first = client.read_reply().unwrap();
    assert_eq!(first["parameters"]["job"]["state"], "Running", "{first}");
    let job_id = first["parameters"]["job"]["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    (client, job_id)
}

/// Reads a followed job's replies to the last one: the completed job.
pub fn job_end(client: &mut Client) -> Value {
    loop {
        let reply = client
            .read_reply()
            .expect("the agent closed the connection");
        if reply["continues"] != json!(true) {
            return reply["parameters"]["job"].clone();
        }
    }
}

/// Writes a package that carries its content files.
pub fn write_with_content(
    snapshot: &Snapshot,
    payloads: &[(ContentFile, PathBuf)],
    key: &SecretKey,
    path: &Path,
) {
    package::write_package(snapshot, payloads, key, path).unwrap();
}

/// Runs a job method to its end and returns the completed job.
pub fn run_job(agent: &AgentProcess, method: &str, parameters: Value) -> Result<Value, Value> {
    agent
        .call(method, parameters)
        .map(|reply| reply["job"].clone())
}

/// A raw Varlink client: one call at a time, replies as JSON.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// The next reply, or None when the agent closed the connection.
    pub fn read_reply(&mut self) -> Option<Value> {
        let mut buffer = Vec::new();
        let read = self.reader.read_until(0, &mut buffer).ok()?;
        if read == 0 || buffer.last() != Some(&0) {
            return None;
        }
        buffer.pop();
        Some(serde_json::from_slice(&buffer).unwrap())
    }

    /// Parameters on success; the whole error reply on failure.
    pub fn call(&mut self, method: &str, parameters: Value) -> Result<Value, Value> {
        let message = json!({ "method": method, "parameters": parameters });
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.send_raw(&bytes);
        let reply = self.read_reply().expect("the agent closed the connection");
        if reply.get("error").is_some() {
            Err(reply)
        } else {
            Ok(reply["parameters"].clone())
        }
    }

    /// A `more` call's replies, in order.
    pub fn call_more(&mut self, method: &str, parameters: Value) -> Vec<Value> {
        let message = json!({ "method": method, "parameters": parameters, "more": true });
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.send_raw(&bytes);
        let mut replies = Vec::new();
        loop {
            let reply = self.read_reply().expect("the agent closed the connection");
            let continues = reply["continues"] == json!(true);
            replies.push(reply);
            if !continues {
                return replies;
            }
        }
    }
}

/// The HRESULT name of an error reply.
pub fn error_name(reply: &Value) -> &str {
    reply["parameters"]["name"].as_str().unwrap_or_default()
}

/// An update revision with the given id, title and rules.
pub fn revision(id: u128, title: &str, applicability: Applicability, extra: Value) -> Revision {
    let mut update = json!({
        "identity": { "updateId": Uuid::from_u128(id), "revisionNumber": 1 },
        "title": title,
        "type": "Software",
        "deploymentAction": "Installation",
    });
    if let (Some(update), Some(extra)) = (update.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            update.insert(key.clone(), value.clone());
        }
    }
    Revision {
        update: serde_json::from_value(update).unwrap(),
        hidden_by_default: false,
        applicability,
        handler: Handler::Command {
            program: "install.sh".into(),
            args: vec![],
            uninstall: None,
            exit_codes: Default::default(),
            timeout_seconds: None,
        },
        content: vec![],
    }
}

pub fn snapshot(version: u64, revisions: Vec<Revision>) -> Snapshot {
    let created = Timestamp::now();
    Snapshot {
        format: FORMAT_VERSION,
        service_id: SERVICE_ID.parse().unwrap(),
        service_name: "Test service".into(),
        version,
        created,
        expires: created + SignedDuration::from_hours(24),
        revisions,
    }
}

/// A signing key and its public text.
pub fn key() -> (SecretKey, String) {
    let key = SecretKey::generate().unwrap();
    let public = key.public_key().to_string();
    (key, public)
}

pub fn write(snapshot: &Snapshot, key: &SecretKey, path: &Path) {
    package::write_package(snapshot, &[], key, path).unwrap();
}

/// Registers `path` as a scan-package service.
pub fn add_package(agent: &AgentProcess, path: &Path, public_key: &str) -> Result<Value, Value> {
    agent.call(
        "org.openwua.Agent.AddScanPackageService",
        json!({ "path": path, "publicKey": public_key }),
    )
}

pub fn search(agent: &AgentProcess, criteria: &str, options: Value) -> Result<Value, Value> {
    agent
        .call(
            "org.openwua.Agent.Search",
            json!({ "criteria": criteria, "options": options }),
        )
        .map(|parameters| parameters["result"].clone())
}

/// The titles a search returns, sorted.
pub fn titles(result: &Value) -> Vec<String> {
    let mut titles: Vec<String> = result["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["update"]["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles
}

/// Every file of the store, for byte-for-byte comparisons.
pub fn store_bytes(agent: &AgentProcess) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(agent.dir.path().join("state"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A system user that exists for one test.
pub struct ThrowawayUser {
    pub name: String,
}

impl ThrowawayUser {
    pub fn create(prefix: &str) -> ThrowawayUser {
        let name = format!("{prefix}{}", std::process::id() % 100_000);
        // A run that was killed may have left it behind.
        let _ = std::process::Command::new("userdel").arg(&name).output();
        let status = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name} failed");
        ThrowawayUser { name }
    }

    /// One Varlink call as this user; the whole reply.
    pub fn call(&self, socket: &Path, method: &str, parameters: Value) -> Value {
        let script = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(json.dumps({"method": sys.argv[2], "parameters": json.load(sys.stdin)}).encode() + b"\0")
data = b""
while not data.endswith(b"\0"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data[:-1].decode())
"#;
        // The parameters go through stdin: an argument is limited to 128 KiB.
        let mut child = std::process::Command::new("runuser")
            .args(["-u", &self.name, "--", "python3", "-c", script])
            .arg(socket)
            .arg(method)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(parameters.to_string().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .status();
    }
}
