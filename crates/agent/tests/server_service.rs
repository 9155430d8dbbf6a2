//! Update-server services through a real `wua-agent` process: registration,
//! sync, 503 with `Retry-After`, 401 and re-registration, the pinned key,
//! and content from `<url>/api/v1/content/<sha256>`.
//!
//! The server here is a small HTTP/1.1 server inside this test that speaks
//! the agent↔server contract (docs/server.md: service description,
//! registration, sync, content), with frames built by
//! `openwua_catalog::sync`. The test can make it answer 503, refuse a
//! secret or present another key on demand, which the real server cannot
//! be made to do. The agent against the real `wua-server` is tested in
//! `crates/server/tests/fleet_agents.rs`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{AgentProcess, Installer, error_name, installable, revision, run_job, snapshot};
use jiff::{SignedDuration, Timestamp};
use openwua_agent::{Background, Config};
use openwua_catalog::revision::Applicability;
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_catalog::sync::{SignedResponse, StillCurrent};
use openwua_client::blocking::UpdateSession;
use openwua_testkit::wait_until;
use serde_json::{Value, json};
use uuid::Uuid;

const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

/// What the test server holds and what it was asked.
#[derive(Default)]
struct State {
    /// Known computers: id → (secret, machine ID).
    computers: HashMap<Uuid, (String, String)>,
    /// Each registration request's body.
    registrations: Vec<Value>,
    /// Sync requests received, with their anchors.
    syncs: Vec<Value>,
    /// Answer every sync with 503 and this Retry-After.
    busy: Option<u64>,
    /// Answer every sync and registration with 401.
    refuse_everyone: bool,
    /// The key `GET /api/v1/service` advertises, if not the signing key.
    advertised_key: Option<String>,
}

/// An update server on 127.0.0.1 that speaks the contract, one request per
/// connection.
struct TestServer {
    url: String,
    key: SecretKey,
    catalog: Snapshot,
    content: HashMap<String, Vec<u8>>,
    state: Mutex<State>,
}

impl TestServer {
    fn start(catalog: Snapshot, content: HashMap<String, Vec<u8>>) -> Arc<TestServer> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Arc::new(TestServer {
            url: format!("http://{}", listener.local_addr().unwrap()),
            key: SecretKey::generate().unwrap(),
            catalog,
            content,
            state: Mutex::new(State::default()),
        });
        let serving = Arc::clone(&server);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = Arc::clone(&serving);
                std::thread::spawn(move || server.handle(stream));
            }
        });
        server
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn handle(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let (status, extra, bytes) = self.answer(&method, &path, &headers, &body);
        let mut stream = stream;
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            bytes.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&bytes);
    }

    fn answer(
        &self,
        method: &str,
        path: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let json_reply = |status, value: Value| {
            (
                status,
                "Content-Type: application/json\r\n".to_owned(),
                value.to_string().into_bytes(),
            )
        };
        let unauthorized = || {
            json_reply(
                401,
                json!({"hresult": "0x80244017", "name": "WU_E_PT_HTTP_STATUS_DENIED",
                       "message": "unknown computer or wrong secret", "detail": null}),
            )
        };
        let mut state = self.state();
        match (method, path) {
            ("GET", "/api/v1/service") => json_reply(
                200,
                json!({
                    "serviceId": self.catalog.service_id,
                    "serviceName": self.catalog.service_name,
                    "publicKey": state.advertised_key.clone()
                        .unwrap_or_else(|| self.key.public_key().to_string()),
                }),
            ),
            ("POST", "/api/v1/computers/register") => {
                let request: Value = serde_json::from_slice(body).unwrap();
                state.registrations.push(request.clone());
                if state.refuse_everyone {
                    return unauthorized();
                }
                let machine_id = request["machineId"].as_str().unwrap().to_owned();
                let known = request["computerId"]
                    .as_str()
                    .and_then(|id| id.parse::<Uuid>().ok())
                    .and_then(|id| Some((id, state.computers.get(&id)?.clone())));
                let (computer_id, secret) = match known {
                    Some((id, (secret, known_machine)))
                        if request["secret"] == json!(secret) && known_machine == machine_id =>
                    {
                        (id, secret)
                    }
                    Some((_, (secret, _))) if request["secret"] != json!(secret) => {
                        return unauthorized();
                    }
                    _ => {
                        let secret = hex_secret();
                        let id = Uuid::new_v4();
                        state
                            .computers
                            .insert(id, (secret.clone(), machine_id.clone()));
                        (id, secret)
                    }
                };
                let group = request["targetGroup"]
                    .as_str()
                    .unwrap_or("Unassigned Computers");
                json_reply(
                    200,
                    json!({"computerId": computer_id, "secret": secret, "group": group}),
                )
            }
            ("POST", "/api/v1/sync") => {
                let request: Value = serde_json::from_slice(body).unwrap();
                state.syncs.push(request.clone());
                if let Some(seconds) = state.busy {
                    return (503, format!("Retry-After: {seconds}\r\n"), Vec::new());
                }
                let authorized = headers
                    .get("authorization")
                    .and_then(|value| value.strip_prefix("Computer "))
                    .and_then(|value| value.split_once(' '))
                    .and_then(|(id, secret)| {
                        let (known, _) = state.computers.get(&id.parse().ok()?)?;
                        Some(known == secret)
                    })
                    .unwrap_or(false);
                if state.refuse_everyone || !authorized {
                    return unauthorized();
                }
                let frame = if request["anchor"] == json!(self.catalog.version) {
                    let now = Timestamp::now();
                    let statement = StillCurrent {
                        format: FORMAT_VERSION,
                        issued: now,
                        service_id: self.catalog.service_id,
                        version: self.catalog.version,
                        valid_until: now + SignedDuration::from_hours(6),
                    };
                    SignedResponse::sign_still_current(&statement, &self.key).unwrap()
                } else {
                    SignedResponse::sign_snapshot(&self.catalog, &self.key).unwrap()
                };
                (
                    200,
                    "Content-Type: application/octet-stream\r\n".into(),
                    frame.to_bytes(),
                )
            }
            ("GET", path) if path.starts_with("/api/v1/content/") => {
                match self.content.get(&path["/api/v1/content/".len()..]) {
                    Some(bytes) => (200, String::new(), bytes.clone()),
                    None => json_reply(404, json!({"message": "no such content"})),
                }
            }
            _ => json_reply(404, json!({"message": "no such route"})),
        }
    }
}

fn hex_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// A catalog of two updates, the first with a content file.
fn catalog(dir: &std::path::Path) -> (Snapshot, HashMap<String, Vec<u8>>) {
    let (with_content, (file, path)) = installable(
        dir,
        1,
        "Server update with content",
        Installer {
            script: "exit 0".into(),
            uninstall: false,
            exit_codes: json!({}),
        },
        json!({}),
    );
    let plain = revision(2, "Server update", Applicability::default(), json!({}));
    let mut catalog = snapshot(7, vec![with_content, plain]);
    catalog.service_name = "Test update server".into();
    let content = HashMap::from([(file.sha256.to_string(), std::fs::read(path).unwrap())]);
    (catalog, content)
}

/// A real agent whose machine ID is the test's.
fn agent() -> AgentProcess {
    AgentProcess::start_with_config(|dir| {
        let machine_id = dir.join("machine-id");
        std::fs::write(&machine_id, format!("{MACHINE_ID}\n")).unwrap();
        (
            String::new(),
            format!("[facts]\nmachine_id = {machine_id:?}\n"),
        )
    })
}

fn add(agent: &AgentProcess, server: &TestServer) -> Result<Value, Value> {
    agent.call(
        "org.openwua.Agent.AddServerService",
        json!({
            "url": server.url,
            "publicKey": server.key.public_key().to_string(),
            "targetGroup": "Lab",
        }),
    )
}

fn sync(agent: &AgentProcess) -> Result<Value, Value> {
    agent.call("org.openwua.Agent.Sync", json!({}))
}

fn titles(agent: &AgentProcess) -> Vec<String> {
    common::titles(&common::search(agent, "", json!({})).unwrap())
}

#[test]
fn registration_sync_search_and_download() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, content) = catalog(dir.path());
    let server = TestServer::start(catalog.clone(), content);
    let agent = agent();

    let added = add(&agent, &server).unwrap();
    assert_eq!(added["sync"]["version"], json!(7), "{added}");
    assert_eq!(added["sync"]["added"], json!(2), "{added}");
    assert_eq!(added["service"]["isScanPackageService"], json!(false));
    assert_eq!(added["service"]["source"], json!(server.url));
    assert_eq!(
        added["service"]["contentBase"],
        json!(format!("{}/api/v1/", server.url))
    );
    {
        let state = server.state();
        assert_eq!(state.registrations.len(), 1);
        let registration = &state.registrations[0];
        assert_eq!(registration["machineId"], json!(MACHINE_ID));
        assert_eq!(registration["targetGroup"], json!("Lab"));
        assert_eq!(registration["computerId"], Value::Null);
        assert!(registration["hostname"].is_string());
        assert_eq!(state.syncs, vec![json!({ "anchor": null })]);
    }
    assert_eq!(
        titles(&agent),
        vec!["Server update", "Server update with content"]
    );

    // The second sync presents the stored version and hears it is current.
    let again = sync(&agent).unwrap();
    assert_eq!(server.state().syncs[1], json!({ "anchor": 7 }));
    assert_eq!(
        again["progress"]["result"]["unchanged"],
        json!(2),
        "{again}"
    );
    assert_eq!(again["progress"]["result"]["version"], json!(7), "{again}");

    // The secret is the agent's and the server's alone.
    let secret = server.state().computers.values().next().unwrap().0.clone();
    let services = agent
        .call("org.openwua.Agent.ListServices", json!({}))
        .unwrap();
    assert!(!services.to_string().contains(&secret), "{services}");
    assert_eq!(services["services"].as_array().unwrap().len(), 1);

    // Content comes from <url>/api/v1/content/<sha256>.
    let job = run_job(
        &agent,
        "org.openwua.Agent.Download",
        json!({ "updateIds": [Uuid::from_u128(1)] }),
    )
    .unwrap();
    assert_eq!(job["result"]["resultCode"], json!("Succeeded"), "{job}");
    let update = agent
        .call(
            "org.openwua.Agent.GetUpdate",
            json!({ "updateId": Uuid::from_u128(1) }),
        )
        .unwrap();
    assert_eq!(update["entry"]["state"]["isDownloaded"], json!(true));
}

#[test]
fn a_server_with_another_key_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, content) = catalog(dir.path());
    let server = TestServer::start(catalog, content);
    server.state().advertised_key = Some(SecretKey::generate().unwrap().public_key().to_string());
    let agent = agent();

    let refused = add(&agent, &server).unwrap_err();
    assert_eq!(
        error_name(&refused),
        "WU_E_METADATA_BAD_SIGNATURE",
        "{refused}"
    );
    assert!(server.state().registrations.is_empty());
    let services = agent
        .call("org.openwua.Agent.ListServices", json!({}))
        .unwrap();
    assert_eq!(services["services"], json!([]));
}

#[test]
fn a_busy_server_is_not_asked_again_before_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, content) = catalog(dir.path());
    let server = TestServer::start(catalog, content);
    let agent = agent();
    add(&agent, &server).unwrap();

    server.state().busy = Some(3600);
    let refused = sync(&agent).unwrap_err();
    assert_eq!(
        error_name(&refused),
        "WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL",
        "{refused}"
    );
    assert!(
        refused.to_string().contains("will not ask it again before"),
        "{refused}"
    );
    let asked = server.state().syncs.len();
    // Asked again before the hour is out: refused without a request.
    let again = sync(&agent).unwrap_err();
    assert_eq!(error_name(&again), "WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL");
    assert_eq!(server.state().syncs.len(), asked);
    // The stored catalog stays searchable; an online search says why it
    // was not refreshed, still without asking the server.
    assert_eq!(titles(&agent).len(), 2);
    let online = common::search(&agent, "", json!({ "online": true })).unwrap();
    assert_eq!(common::titles(&online).len(), 2);
    let warnings = online["warnings"].to_string();
    assert!(warnings.contains("busy (HTTP 503)"), "{warnings}");
    assert_eq!(server.state().syncs.len(), asked);
}

#[test]
fn a_reset_server_gets_one_registration_then_a_clear_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, content) = catalog(dir.path());
    let server = TestServer::start(catalog, content);
    let agent = agent();
    add(&agent, &server).unwrap();
    let first = *server.state().computers.keys().next().unwrap();

    // The server forgot every computer: the agent registers again, with
    // the identity it held, and gets a new one.
    server.state().computers.clear();
    let synced = sync(&agent).unwrap();
    assert_eq!(
        synced["progress"]["result"]["version"],
        json!(7),
        "{synced}"
    );
    {
        let state = server.state();
        assert_eq!(state.registrations.len(), 2);
        assert_eq!(state.registrations[1]["computerId"], json!(first));
        assert_eq!(state.computers.len(), 1);
        assert!(!state.computers.contains_key(&first));
    }

    // A server that refuses even the registration: one attempt, then a
    // clear error.
    server.state().refuse_everyone = true;
    let (registrations, syncs) = {
        let state = server.state();
        (state.registrations.len(), state.syncs.len())
    };
    let refused = sync(&agent).unwrap_err();
    assert_eq!(
        error_name(&refused),
        "WU_E_PT_HTTP_STATUS_DENIED",
        "{refused}"
    );
    let state = server.state();
    assert_eq!(state.registrations.len(), registrations + 1);
    assert_eq!(state.syncs.len(), syncs + 1);
}

#[test]
fn periodic_sync_asks_server_services_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (catalog, content) = catalog(dir.path());
    let server = TestServer::start(catalog, content);
    let machine_id = dir.path().join("machine-id");
    std::fs::write(&machine_id, MACHINE_ID).unwrap();
    let mut config = Config {
        owner_is_admin: true,
        sync_interval_seconds: 1,
        ..Config::under(&dir.path().join("agent"))
    };
    config.facts.machine_id = machine_id;
    let agent = Background::start(config).unwrap();
    let session = UpdateSession::connect(agent.socket()).unwrap();
    session
        .create_update_service_manager()
        .add_server_service(
            &server.url,
            &server.key.public_key().to_string(),
            None,
            None,
            false,
        )
        .unwrap();
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || server
            .state()
            .syncs
            .len()
            >= 3),
        "no periodic sync reached the server"
    );
    assert_eq!(server.state().syncs[2], json!({ "anchor": 7 }));
}
