//! Status-report ingestion: per-update results stored per second (issue
//! 14's figure; goal ≥ 10,000/s).
//!
//! `cargo bench -p openwua-server --bench reports` builds `wua-server` in
//! release mode with this bench, starts it as a child process on loopback,
//! registers `REPORT_BENCH_COMPUTERS` computers (default 1,000), and drives
//! `wrk` as a second process: a Lua script rotates through the computers
//! and posts each one's next report (a sequence one higher than its last,
//! so every report is stored, not a duplicate) of `REPORT_BENCH_UPDATES`
//! updates (default 100), the state alternating between Installed and
//! NotInstalled so every row changes. It prints reports/s and per-update
//! results/s with wrk's p50 and p99, for SQLite and, when
//! `OPENWUA_TEST_POSTGRES_URL` is set, a throwaway PostgreSQL database.
//! `REPORT_BENCH_SECONDS` (default 10) and `REPORT_BENCH_CONNECTIONS`
//! (default 32) tune the run.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command};

use serde_json::{Value, json};

mod support;
use support::{env_number, spawn_server, with_postgres};

struct Server {
    child: Child,
    url: String,
    port: u16,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &Path, database: Option<&str>) -> Server {
        let (child, port, token) = spawn_server(data_dir, database, &[]);
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            token,
        }
    }

    fn register_computers(&self, count: u64) -> Vec<String> {
        let http = ureq::Agent::new_with_defaults();
        (0..count)
            .map(|index| {
                let body = json!({"machineId": format!("{index:032x}"),
                    "hostname": format!("bench-{index}")});
                let bytes = http
                    .post(format!("{}/api/v1/computers/register", self.url))
                    .header("Content-Type", "application/json")
                    .send(body.to_string().as_bytes())
                    .unwrap()
                    .body_mut()
                    .read_to_vec()
                    .unwrap();
                let answer: Value = serde_json::from_slice(&bytes).unwrap();
                format!(
                    "Computer {} {}",
                    answer["computerId"].as_str().unwrap(),
                    answer["secret"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// The computers report, as a check that the reports were stored.
    fn stored_states(&self) -> Value {
        let bytes = ureq::Agent::new_with_defaults()
            .get(format!("{}/api/v1/reports/computers", self.url))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .unwrap()
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// One report's `updates` array, every entry in `state`.
fn updates_json(update_ids: &[uuid::Uuid], state: &str) -> String {
    let entries: Vec<Value> = update_ids
        .iter()
        .map(|id| {
            json!({"updateId": id, "revisionNumber": 1, "state": state,
                "resultCode": "Succeeded", "hresult": "0x00000000",
                "time": "2026-12-04T20:01:00Z"})
        })
        .collect();
    serde_json::to_string(&entries).unwrap()
}

/// The wrk script: each request is the next computer's next report.
fn wrk_script(credentials: &[String], update_ids: &[uuid::Uuid]) -> String {
    let mut script = String::from("local credentials = {\n");
    for credential in credentials {
        writeln!(script, "  \"{credential}\",").unwrap();
    }
    let installed = updates_json(update_ids, "Installed");
    let needed = updates_json(update_ids, "NotInstalled");
    write!(
        script,
        r#"}}
local installed = [=[{installed}]=]
local needed = [=[{needed}]=]
local inventory = '{{"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0", "architecture": "x86_64", "agentVersion": "0.1.0", "lastSync": null, "rebootPending": false, "awaitingInteractiveUser": []}}'
local sequences = {{}}
local next_index = 0
function request()
  next_index = next_index % #credentials + 1
  local sequence = (sequences[next_index] or 0) + 1
  sequences[next_index] = sequence
  local updates = installed
  if sequence % 2 == 0 then updates = needed end
  local body = '{{"sequence": ' .. sequence .. ', "inventory": ' .. inventory .. ', "updates": ' .. updates .. '}}'
  return wrk.format("POST", "/api/v1/reports",
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

fn bench(store: &str, database: Option<&str>) {
    let computers = env_number("REPORT_BENCH_COMPUTERS", 1_000);
    let updates = env_number("REPORT_BENCH_UPDATES", 100);
    let seconds = env_number("REPORT_BENCH_SECONDS", 10);
    let connections = env_number("REPORT_BENCH_CONNECTIONS", 32);
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database);
    let credentials = server.register_computers(computers);
    let update_ids: Vec<uuid::Uuid> = (0..updates).map(|_| uuid::Uuid::new_v4()).collect();
    let script = scratch.path().join("reports.lua");
    std::fs::write(&script, wrk_script(&credentials, &update_ids)).unwrap();
    let output = Command::new("wrk")
        .args(["--threads", "1", "--connections", &connections.to_string()])
        .args([
            "--duration",
            &format!("{seconds}s"),
            "--timeout",
            "30s",
            "--script",
        ])
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
    // The reports were stored, not answered as duplicates.
    let reported = server.stored_states();
    let with_reports = reported
        .as_array()
        .unwrap()
        .iter()
        .filter(|computer| !computer["lastReport"].is_null())
        .count();
    assert!(with_reports > 0, "{reported}");
    let reports_per_second = requests as f64 / (duration_us as f64 / 1e6);
    println!(
        "reports/{store}: {:.0} results/s ({reports_per_second:.0} reports/s of {updates} updates), \
         p50 {:.2} ms, p99 {:.2} ms ({requests} reports; {computers} computers, \
         {connections} connections)",
        reports_per_second * updates as f64,
        p50_us as f64 / 1e3,
        p99_us as f64 / 1e3,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then this is not run.
    if !std::env::args().any(|argument| argument == "--bench") {
        return;
    }
    bench("sqlite", None);
    match std::env::var("OPENWUA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => with_postgres(&url, |database| {
            bench("postgresql", Some(database));
        }),
        _ => println!("reports/postgresql: skipped, OPENWUA_TEST_POSTGRES_URL is not set"),
    }
}
