//! Incremental syncs with nothing new, per second (issue 14's first figure).
//!
//! `cargo bench -p openwua-server --bench sync` builds `wua-server` in
//! release mode with this bench, starts it as a child process on loopback,
//! publishes 1,000 small revisions through the admin API, approves each for
//! All Computers, registers 1,000 computers, and then drives `wrk` (Debian's
//! `wrk`, which scripts/setup-test-machine installs) as a second process:
//! a Lua script rotates through the computers' credentials and posts each
//! one's current anchor, so every answer is a signed StillCurrent. It
//! prints syncs/s with wrk's p50 and p99 latency for SQLite and, when
//! `OPENWUA_TEST_POSTGRES_URL` is set, for a throwaway PostgreSQL database.
//!
//! `SYNC_BENCH_SECONDS` (default 15) and `SYNC_BENCH_CONNECTIONS` (default
//! 32) tune the run.
//!
//! Then the agent behind (issue 14's second figure): a fresh server gets
//! 100,000 revisions, each approved for All Computers, and one computer;
//! its full snapshot is its anchor; 1,000 of the revisions are published
//! again changed; the bench times the server's answer to a sync from that
//! anchor (a delta of 1,000), as the request's time on loopback, and the
//! full snapshot's (made, then cached). `SYNC_BENCH_BEHIND=0` skips it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use openwua_catalog::sync::{Response, ResponseKind, SignedResponse};

// The agent's benchmark catalog, shared rather than copied.
#[path = "../../agent/benches/common/mod.rs"]
#[allow(dead_code)]
mod common;
use serde_json::{Value, json};

mod support;
use support::{BIN, env_number, spawn_server, with_postgres};

const REVISIONS: usize = 1_000;
/// The catalog of the agent-behind figure, and how many of it change.
const CATALOG: usize = 100_000;
const BEHIND: usize = 1_000;
/// The most revisions one publish may carry (the server's limit).
const PER_PUBLISH: usize = 10_000;
const COMPUTERS: usize = 1_000;

struct Server {
    child: Child,
    url: String,
    port: u16,
    token: String,
    http: ureq::Agent,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path, database: Option<&str>) -> Server {
        let (child, port, token) =
            spawn_server(data_dir, database, &["--max-request-bytes", "67108864"]);
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            token,
            http: ureq::Agent::new_with_defaults(),
        }
    }

    fn post(&self, path: &str, authorization: Option<&str>, body: &Value) -> Vec<u8> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json");
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = request
            .send(&serde_json::to_vec(body).unwrap()[..])
            .unwrap_or_else(|error| panic!("POST {path}: {error}"));
        response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap()
    }

    fn admin_post(&self, path: &str, body: &Value) -> Value {
        let bearer = format!("Bearer {}", self.token);
        serde_json::from_slice(&self.post(path, Some(&bearer), body)).unwrap()
    }

    /// Publishes the sample service (for its content), then `REVISIONS`
    /// copies of one of its small revisions under new update IDs, each
    /// approved for All Computers. Returns the catalog version.
    fn publish_catalog(&self, data_dir: &Path) -> u64 {
        let template = self.sample_template(data_dir);
        let ids: Vec<uuid::Uuid> = (0..REVISIONS).map(|_| uuid::Uuid::new_v4()).collect();
        let revisions: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut revision = template.clone();
                revision.update.identity.update_id = *id;
                revision
            })
            .collect();
        self.admin_post("/api/v1/updates", &json!({ "revisions": revisions }));
        let mut version = 0;
        for id in &ids {
            let report = self.admin_post(
                &format!("/api/v1/updates/{id}/approvals"),
                &json!({"group": "All Computers", "action": "install"}),
            );
            version = report["catalogVersion"].as_u64().unwrap();
        }
        version
    }

    /// Publishes the sample service (for its content); returns one of its
    /// small revisions.
    fn sample_template(&self, data_dir: &Path) -> openwua_catalog::revision::Revision {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service");
        let published = Command::new(BIN)
            .arg("publish")
            .arg(&sample)
            .args(["--server", &self.url, "--token-file"])
            .arg(data_dir.join("admin.token"))
            .output()
            .unwrap();
        assert!(published.status.success(), "{published:?}");
        openwua_catalog::manifest::load_service_dir(&sample)
            .unwrap()
            .revisions
            .remove(0)
    }

    /// Registers `count` computers; their `Authorization` values.
    fn register_computers(&self, count: usize) -> Vec<String> {
        (0..count)
            .map(|index| {
                let answer: Value = serde_json::from_slice(&self.post(
                    "/api/v1/computers/register",
                    None,
                    &json!({"machineId": format!("{index:032x}"),
                            "hostname": format!("bench-{index}")}),
                ))
                .unwrap();
                format!(
                    "Computer {} {}",
                    answer["computerId"].as_str().unwrap(),
                    answer["secret"].as_str().unwrap()
                )
            })
            .collect()
    }
}

struct Figures {
    syncs_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
}

/// The wrk script: each request is the next computer's still-current sync.
fn wrk_script(credentials: &[String], anchor: u64) -> String {
    let mut script = String::from("local credentials = {\n");
    for credential in credentials {
        writeln!(script, "  \"{credential}\",").unwrap();
    }
    write!(
        script,
        r#"}}
local body = '{{"anchor": {anchor}}}'
local next_index = 0
function setup(thread)
  thread:set("next_index", math.random(#credentials))
end
function request()
  next_index = next_index % #credentials + 1
  return wrk.format("POST", "/api/v1/sync",
    {{["Authorization"] = credentials[next_index], ["Content-Type"] = "application/json"}}, body)
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("WRK %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end
"#
    )
    .unwrap();
    script
}

fn run_wrk(server: &Server, credentials: &[String], anchor: u64, scratch: &Path) -> Figures {
    let seconds = env_number("SYNC_BENCH_SECONDS", 15);
    let connections = env_number("SYNC_BENCH_CONNECTIONS", 32);
    let script = scratch.join("sync.lua");
    std::fs::write(&script, wrk_script(credentials, anchor)).unwrap();
    let output = Command::new("wrk")
        .args(["--threads", "1", "--connections", &connections.to_string()])
        .args(["--duration", &format!("{seconds}s"), "--script"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}", server.port))
        .output()
        .unwrap_or_else(|error| panic!("wrk (apt-get install wrk): {error}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk: {text}");
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("WRK "))
        .unwrap_or_else(|| panic!("no summary from wrk: {text}"));
    let numbers: Vec<u64> = line.split(' ').map(|word| word.parse().unwrap()).collect();
    let [requests, duration_us, p50_us, p99_us, errors] = numbers[..] else {
        panic!("wrk's summary: {line}");
    };
    assert_eq!(errors, 0, "wrk saw errors or non-2xx answers: {text}");
    Figures {
        syncs_per_second: requests as f64 / (duration_us as f64 / 1e6),
        p50_ms: p50_us as f64 / 1e3,
        p99_ms: p99_us as f64 / 1e3,
        requests,
    }
}

fn bench(store: &str, database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database);
    let anchor = server.publish_catalog(&data_dir);
    let credentials = server.register_computers(COMPUTERS);
    // What wrk will get: a StillCurrent frame, not a snapshot.
    let frame = server.post(
        "/api/v1/sync",
        Some(&credentials[0]),
        &json!({ "anchor": anchor }),
    );
    let kind = SignedResponse::from_bytes(&frame).unwrap().kind();
    assert_eq!(
        kind,
        ResponseKind::StillCurrent,
        "anchor {anchor} is not current"
    );
    let figures = run_wrk(&server, &credentials, anchor, scratch.path());
    println!(
        "sync/{store}: {:.0} syncs/s, p50 {:.2} ms, p99 {:.2} ms ({} StillCurrent syncs; \
         {REVISIONS} revisions, {COMPUTERS} computers)",
        figures.syncs_per_second, figures.p50_ms, figures.p99_ms, figures.requests
    );
}

/// One sync's frame and how long the request took.
fn timed_sync(server: &Server, credential: &str, anchor: Option<u64>) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let frame = server.post(
        "/api/v1/sync",
        Some(credential),
        &json!({ "anchor": anchor }),
    );
    (started.elapsed(), frame)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The agent 1,000 revisions behind out of 100,000.
fn behind(store: &str, database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database);
    let key: openwua_catalog::signing::PublicKey = {
        let text = server
            .http
            .get(format!("{}/api/v1/key", server.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        body["key"].as_str().unwrap().parse().unwrap()
    };
    // The agent's benchmark revisions (real-shaped, no content files): the
    // same catalog as the agent's sync bench.
    let copy = |id: &uuid::Uuid, title: &str| {
        let mut revision = common::revision(id.as_u128());
        revision.update.title = format!("{} ({title})", revision.update.title);
        revision
    };
    let ids: Vec<uuid::Uuid> = (0..CATALOG).map(|_| uuid::Uuid::new_v4()).collect();
    let started = Instant::now();
    for chunk in ids.chunks(PER_PUBLISH) {
        let revisions: Vec<_> = chunk.iter().map(|id| copy(id, "bench")).collect();
        server.admin_post("/api/v1/updates", &json!({ "revisions": revisions }));
    }
    let published = started.elapsed();
    // Approvals one by one, as an admin's API calls, from 4 clients.
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in ids.chunks(CATALOG.div_ceil(4)) {
            let server = &server;
            scope.spawn(move || {
                for id in part {
                    server.admin_post(
                        &format!("/api/v1/updates/{id}/approvals"),
                        &json!({"group": "All Computers", "action": "install"}),
                    );
                }
            });
        }
    });
    let approved = started.elapsed();
    let credential = server.register_computers(1).remove(0);
    let verify = |frame: &[u8]| {
        SignedResponse::from_bytes(frame)
            .unwrap()
            .verify(&key)
            .unwrap()
    };

    let (full_made, frame) = timed_sync(&server, &credential, None);
    let full_bytes = frame.len();
    let Response::Snapshot(snapshot) = verify(&frame) else {
        panic!("no snapshot without an anchor");
    };
    assert_eq!(snapshot.revisions.len(), CATALOG);
    let anchor = snapshot.version;
    let (full_cached, _) = timed_sync(&server, &credential, None);

    let changed: Vec<_> = ids[..BEHIND]
        .iter()
        .map(|id| copy(id, "bench, changed"))
        .collect();
    server.admin_post("/api/v1/updates", &json!({ "revisions": changed }));
    let mut times = Vec::new();
    let mut delta_bytes = 0;
    for _ in 0..7 {
        let (time, frame) = timed_sync(&server, &credential, Some(anchor));
        let Response::Delta(delta) = verify(&frame) else {
            panic!("no delta from anchor {anchor}");
        };
        assert_eq!((delta.changed.len(), delta.removed.len()), (BEHIND, 0));
        delta_bytes = frame.len();
        times.push(time);
    }
    times.sort();
    println!(
        "behind/{store}: an agent {BEHIND} revisions behind out of {CATALOG}: delta of \
         {delta_bytes} bytes in {:.1} ms (median of 7; min {:.1}, max {:.1}); full snapshot of \
         {full_bytes} bytes made in {:.0} ms, cached {:.0} ms (setup: {CATALOG} revisions \
         published in {:.1} s, approved one by one in {:.1} s)",
        ms(times[3]),
        ms(times[0]),
        ms(times[6]),
        ms(full_made),
        ms(full_cached),
        published.as_secs_f64(),
        approved.as_secs_f64(),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then this is not run (it takes a minute and measures nothing there).
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    let behind_too = env_number("SYNC_BENCH_BEHIND", 1) != 0;
    bench("sqlite", None);
    if behind_too {
        behind("sqlite", None);
    }
    match std::env::var("OPENWUA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            with_postgres(&url, |database| bench("postgresql", Some(database)));
            if behind_too {
                with_postgres(&url, |database| behind("postgresql", Some(database)));
            }
        }
        _ => println!("sync/postgresql: skipped, OPENWUA_TEST_POSTGRES_URL is not set"),
    }
}
