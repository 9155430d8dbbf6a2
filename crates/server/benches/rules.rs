//! Automatic approval rules over a large catalog (issue 15's figure:
//! every rule evaluated against 100,000 updates, goal ≤ 1 s).
//!
//! `cargo bench -p openwua-server --bench rules` builds `wua-server` in
//! release mode with this bench, starts it on loopback, publishes
//! `RULES_BENCH_UPDATES` revisions (default 100,000; the agent's benchmark
//! revisions, every tenth rated Critical), adds eight rules (classification,
//! severity, product and title and source patterns), and times
//! `POST /api/v1/rules/run` for every enabled rule: as a dry run (the
//! evaluation: reading every current revision and matching every rule),
//! then for real (the evaluation and the approvals written in one
//! transaction). For SQLite and, when `OPENWUA_TEST_POSTGRES_URL` is set,
//! a throwaway PostgreSQL database.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../../agent/benches/common/mod.rs"]
#[allow(dead_code)]
mod common;

mod support;
use support::{env_number, spawn_server, with_postgres};

/// The most revisions one publish may carry (the server's limit).
const PER_PUBLISH: usize = 10_000;

struct Server {
    child: Child,
    url: String,
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
            token,
            http: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(600)))
                .build()
                .into(),
        }
    }

    fn admin_post(&self, path: &str, body: &Value) -> Value {
        let bytes = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {}", self.token))
            .send(&serde_json::to_vec(body).unwrap()[..])
            .unwrap_or_else(|error| panic!("POST {path}: {error}"))
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn rules() -> Vec<Value> {
    let rule = |name: &str, extra: Value| {
        let mut rule = json!({"name": name, "groups": ["All Computers"], "action": "install",
            "deadlineOffsetHours": 72});
        for (key, value) in extra.as_object().unwrap() {
            rule[key] = value.clone();
        }
        rule
    };
    vec![
        rule(
            "critical security",
            json!({"classifications": ["Security Updates"], "severities": ["Critical"]}),
        ),
        rule("drivers", json!({"classifications": ["Drivers"]})),
        rule(
            "important",
            json!({"severities": ["Important"], "products": ["Other Product"]}),
        ),
        rule("kb titles", json!({"titlePattern": "*(KB5000123)"})),
        rule(
            "example sources",
            json!({"sourcePattern": "example*", "severities": ["Low"]}),
        ),
        rule(
            "definition updates",
            json!({"classifications": ["Definition Updates"]}),
        ),
        rule(
            "package 42",
            json!({"titlePattern": "*example-package-42 *"}),
        ),
        rule("nothing", json!({"products": ["No Such Product"]})),
    ]
}

fn bench(store: &str, database: Option<&str>) {
    let updates = usize::try_from(env_number("RULES_BENCH_UPDATES", 100_000)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(&scratch.path().join("data"), database);
    let ids: Vec<u128> = (1..=updates as u128).collect();
    for chunk in ids.chunks(PER_PUBLISH) {
        let revisions: Vec<_> = chunk
            .iter()
            .map(|id| {
                let mut revision = common::revision(*id);
                if id % 10 == 0 {
                    revision.update.msrc_severity =
                        Some(openwua_model::update::MsrcSeverity::Critical);
                }
                revision
            })
            .collect();
        server.admin_post("/api/v1/updates", &json!({ "revisions": revisions }));
    }
    let rules = rules();
    for rule in &rules {
        server.admin_post("/api/v1/rules", rule);
    }
    let mut dry = Vec::new();
    let mut matched = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let run = server.admin_post("/api/v1/rules/run", &json!({"dryRun": true}));
        dry.push(started.elapsed());
        assert_eq!(run["updates"].as_u64(), Some(updates as u64), "{run}");
        matched = run["approvals"].as_array().unwrap().len();
    }
    dry.sort();
    let started = Instant::now();
    let run = server.admin_post("/api/v1/rules/run", &json!({}));
    let real = started.elapsed();
    assert_eq!(run["approvals"].as_array().unwrap().len(), matched);
    println!(
        "rules/{store}: {} rules over {updates} updates: dry run (evaluation) median {:.0} ms \
         (fastest {:.0} ms), {matched} approvals it would give; run for real {:.0} ms",
        rules.len(),
        dry[1].as_secs_f64() * 1e3,
        dry[0].as_secs_f64() * 1e3,
        real.as_secs_f64() * 1e3,
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
        _ => println!("rules/postgresql: skipped, OPENWUA_TEST_POSTGRES_URL is not set"),
    }
}
