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

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openwua_catalog::sync::{ResponseKind, SignedResponse};
use serde_json::{Value, json};

const REVISIONS: usize = 1_000;
const COMPUTERS: usize = 1_000;
const BIN: &str = env!("CARGO_BIN_EXE_wua-server");

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
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config", "/dev/null", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--max-request-bytes", "67108864"])
            // Every computer registers from 127.0.0.1.
            .args(["--registrations-per-minute", "1000000"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(url) = database {
            command.args(["--database", url]);
        }
        let mut child = command.spawn().unwrap();
        let up = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(30), || {
            assert!(child.try_wait().unwrap().is_none(), "wua-server exited");
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "wua-server did not listen");
        let token = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            token: token.trim().to_owned(),
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
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service");
        let published = Command::new(BIN)
            .arg("publish")
            .arg(&sample)
            .args(["--server", &self.url, "--token-file"])
            .arg(data_dir.join("admin.token"))
            .output()
            .unwrap();
        assert!(published.status.success(), "{published:?}");
        let template = openwua_catalog::manifest::load_service_dir(&sample)
            .unwrap()
            .revisions
            .remove(0);
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

    /// Registers `COMPUTERS` computers; their `Authorization` values.
    fn register_computers(&self) -> Vec<String> {
        (0..COMPUTERS)
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

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|value| value.parse().unwrap())
        .unwrap_or(default)
}

fn bench(store: &str, database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database);
    let anchor = server.publish_catalog(&data_dir);
    let credentials = server.register_computers();
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

/// A throwaway database on the PostgreSQL server at `admin_url`, dropped
/// after `body`.
fn with_postgres(admin_url: &str, body: impl FnOnce(&str)) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name = format!("openwua_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = |statement: String| {
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let connection = tokio::spawn(connection);
            client.batch_execute(&statement).await.unwrap();
            drop(client);
            let _ = connection.await;
        })
    };
    admin(format!("CREATE DATABASE {name}"));
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        body(&format!("{base}/{name}"))
    }));
    admin(format!("DROP DATABASE {name} WITH (FORCE)"));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then this is not run (it takes a minute and measures nothing there).
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    bench("sqlite", None);
    match std::env::var("OPENWUA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => with_postgres(&url, |database| {
            bench("postgresql", Some(database));
        }),
        _ => println!("sync/postgresql: skipped, OPENWUA_TEST_POSTGRES_URL is not set"),
    }
}
