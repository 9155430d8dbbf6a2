//! Status reports against the real `wua-server`: computers report as an
//! agent does (raw HTTP), and the admin's queries count what they said;
//! once with SQLite and once with PostgreSQL.

mod common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;

use common::{Server, http, sample_service};

struct Computer {
    id: String,
    secret: String,
}

fn register(server: &Server, machine_id: &str, group: &str) -> Computer {
    let body = json!({"machineId": machine_id, "hostname": format!("host-{machine_id}"),
        "targetGroup": group});
    let (status, _, bytes) = http(
        "POST",
        &format!("{}/api/v1/computers/register", server.url),
        None,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    Computer {
        id: answer["computerId"].as_str().unwrap().to_owned(),
        secret: answer["secret"].as_str().unwrap().to_owned(),
    }
}

fn entry(update_id: &str, state: &str, hresult: Option<&str>) -> Value {
    json!({"updateId": update_id, "revisionNumber": 1, "state": state,
        "resultCode": if hresult.is_some() { "Failed" } else { "Succeeded" },
        "hresult": hresult, "time": "2026-12-04T20:01:00Z"})
}

fn report_body(sequence: u64, updates: Vec<Value>) -> Vec<u8> {
    json!({
        "sequence": sequence,
        "inventory": {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-test",
            "architecture": "x86_64", "agentVersion": "0.1.0", "lastSync": null,
            "rebootPending": false, "awaitingInteractiveUser": [], "futureField": 1},
        "updates": updates,
    })
    .to_string()
    .into_bytes()
}

/// Posts a report body as `computer` (or with `authorization` as given).
fn post_raw(server: &Server, authorization: &str, body: &[u8]) -> (u16, Value) {
    let (status, _, bytes) = http(
        "POST",
        &format!("{}/api/v1/reports", server.url),
        None,
        &[
            ("authorization", authorization),
            ("content-type", "application/json"),
        ],
        body,
    );
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(server: &Server, computer: &Computer, body: &[u8]) -> (u16, Value) {
    post_raw(
        server,
        &format!("Computer {} {}", computer.id, computer.secret),
        body,
    )
}

/// Posts `body`'s headers only: the server answers a too-large
/// Content-Length without reading the body (an HTTP client that insists on
/// sending it all would see a reset instead of the answer).
fn post_oversized(server: &Server, computer: &Computer, body: &[u8]) -> (u16, Value) {
    use std::io::Write;
    let address = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nhost: {address}\r\nauthorization: Computer {} {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        computer.id,
        computer.secret,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|word| word.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

fn assert_error(status: u16, body: &Value, expected: u16, name: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["name"], name, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty());
}

fn summary(server: &Server, update_id: &str) -> Value {
    server.json(&["report", "updates", update_id])[0].clone()
}

fn counts(summary: &Value) -> [u64; 7] {
    [
        "unknown",
        "notApplicable",
        "notInstalled",
        "downloaded",
        "installed",
        "installedPendingReboot",
        "failed",
    ]
    .map(|key| summary[key].as_u64().unwrap())
}

fn computer_line(server: &Server, computer: &Computer) -> Value {
    server
        .json(&["report", "computers"])
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["computerId"] == computer.id.as_str())
        .unwrap()
        .clone()
}

fn reports_scenario(database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(&scratch.path().join("data"), database, &[]);
    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    let ids: Vec<String> = server
        .json(&["updates", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|update| update["updateId"].as_str().unwrap().to_owned())
        .collect();
    let (u1, u2, u3) = (&ids[0], &ids[1], &ids[2]);
    server.run_ok(&["groups", "add", "Servers"]);
    server.run_ok(&["approve", u1, "--group", "Servers"]);
    server.run_ok(&["approve", u2, "--group", "All Computers"]);
    let a = register(&server, "aa01", "Servers");
    let b = register(&server, "bb02", "Nowhere");

    // Before any report, the computers the approvals reach are Unknown.
    assert_eq!(counts(&summary(&server, u1)), [1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(counts(&summary(&server, u2)), [2, 0, 0, 0, 0, 0, 0]);
    assert_eq!(counts(&summary(&server, u3)), [0; 7]);

    let (status, ack) = post(
        &server,
        &a,
        &report_body(
            1,
            vec![
                entry(u1, "Installed", None),
                entry(u2, "Failed", Some("0x80240020")),
            ],
        ),
    );
    assert_eq!((status, &ack), (200, &json!({"acknowledged": 1})));
    let (status, ack) = post(
        &server,
        &b,
        &report_body(
            4,
            vec![
                entry(u2, "NotInstalled", None),
                entry(u3, "NotApplicable", None),
            ],
        ),
    );
    assert_eq!((status, &ack), (200, &json!({"acknowledged": 4})));

    assert_eq!(counts(&summary(&server, u1)), [0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(counts(&summary(&server, u2)), [0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(counts(&summary(&server, u3)), [0, 1, 0, 0, 0, 0, 0]);
    let all = server.json(&["report", "updates"]);
    assert_eq!(all.as_array().unwrap().len(), ids.len());
    let line = computer_line(&server, &a);
    assert_eq!(
        (
            &line["group"],
            &line["needed"],
            &line["failed"],
            &line["installed"]
        ),
        (&json!("Servers"), &json!(0), &json!(1), &json!(1))
    );
    assert!(line["lastReport"].is_string(), "{line}");
    let line = computer_line(&server, &b);
    assert_eq!(
        (&line["group"], &line["needed"]),
        (&json!("Unassigned Computers"), &json!(1))
    );
    let table = server.run_ok(&["report", "computers"]);
    assert!(
        table.contains("host-aa01") && table.contains("LAST REPORT"),
        "{table}"
    );
    let table = server.run_ok(&["report", "updates"]);
    assert!(table.contains(u1.as_str()), "{table}");
    let failures = server.json(&["report", "failures"]);
    assert_eq!(failures.as_array().unwrap().len(), 1, "{failures}");
    assert_eq!(
        (
            &failures[0]["computerId"],
            &failures[0]["updateId"],
            &failures[0]["hresult"],
            &failures[0]["name"]
        ),
        (
            &json!(a.id),
            &json!(u2),
            &json!("0x80240020"),
            &json!("WU_E_NO_INTERACTIVE_USER")
        )
    );
    let table = server.run_ok(&["report", "failures"]);
    assert!(table.contains("WU_E_NO_INTERACTIVE_USER"), "{table}");
    // a has u2 (approved for All Computers) Failed; b has it NotInstalled.
    let groups = server.json(&["report", "groups"]);
    let group = |name: &str| {
        groups
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["group"] == name)
            .map(|line| {
                (
                    line["computers"].as_u64().unwrap(),
                    line["upToDate"].as_u64().unwrap(),
                )
            })
            .unwrap()
    };
    assert_eq!(group("Servers"), (1, 0));
    assert_eq!(group("Unassigned Computers"), (1, 0));
    assert_eq!(group("All Computers"), (0, 0));

    // A computer that never reported is stale; those that did are not.
    let c = register(&server, "cc03", "Servers");
    let stale = server.json(&["report", "stale", "--days", "1"]);
    let stale_ids: Vec<&str> = stale
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["computerId"].as_str().unwrap())
        .collect();
    assert_eq!(stale_ids, vec![c.id.as_str()]);
    assert_eq!(counts(&summary(&server, u1)), [1, 0, 0, 0, 1, 0, 0]);

    queries_and_inventory(&server, [u1, u2, u3], [&a, &b, &c]);
    compression(&server, &a);

    let before = (
        server.json(&["report", "updates"]),
        server.json(&["report", "computers"]),
    );
    let unchanged = || {
        assert_eq!(
            (
                server.json(&["report", "updates"]),
                server.json(&["report", "computers"])
            ),
            before
        );
    };

    // A duplicate (or older) sequence is acknowledged and changes nothing.
    for sequence in [1, 3, 4] {
        let (status, ack) = post(
            &server,
            &b,
            &report_body(sequence, vec![entry(u2, "Installed", None)]),
        );
        assert_eq!((status, &ack), (200, &json!({"acknowledged": 4})));
    }
    unchanged();

    // Wrong or missing credentials.
    let body = report_body(9, vec![entry(u1, "Failed", None)]);
    let (status, error) = post_raw(&server, &format!("Computer {} {}", a.id, b.secret), &body);
    assert_error(status, &error, 401, "WU_E_PT_HTTP_STATUS_DENIED");
    let (status, error) = post_raw(&server, "", &body);
    assert_error(status, &error, 401, "WU_E_PT_HTTP_STATUS_DENIED");
    unchanged();

    // Too large, too many entries, a bad state, an update listed twice.
    let huge = report_body(9, vec![entry(u1, "Failed", None); 30_000]);
    assert!(huge.len() > 4 * 1024 * 1024);
    let (status, error) = post_oversized(&server, &a, &huge);
    assert_error(status, &error, 413, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let many: Vec<Value> = (0..10_001)
        .map(|_| entry(&uuid::Uuid::new_v4().to_string(), "Installed", None))
        .collect();
    let body = report_body(9, many);
    assert!(body.len() < 4 * 1024 * 1024);
    let (status, error) = post(&server, &a, &body);
    assert_error(status, &error, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let (status, error) = post(
        &server,
        &a,
        &report_body(9, vec![entry(u1, "Unknown", None)]),
    );
    assert_error(status, &error, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let twice = vec![entry(u1, "Failed", None), entry(u1, "Installed", None)];
    let (status, error) = post(&server, &a, &report_body(9, twice));
    assert_error(status, &error, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    unchanged();

    // The next report replaces the states it lists.
    let (status, ack) = post(
        &server,
        &a,
        &report_body(2, vec![entry(u1, "InstalledPendingReboot", None)]),
    );
    assert_eq!((status, &ack), (200, &json!({"acknowledged": 2})));
    assert_eq!(counts(&summary(&server, u1)), [1, 0, 0, 0, 0, 1, 0]);
    assert_eq!(computer_line(&server, &a)["pendingReboot"], 1);

    // b installs u2 and is up to date; a still has u2 Failed.
    let (status, _) = post(
        &server,
        &b,
        &report_body(5, vec![entry(u2, "Installed", None)]),
    );
    assert_eq!(status, 200);
    let groups = server.json(&["report", "groups"]);
    let unassigned = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["group"] == "Unassigned Computers")
        .unwrap();
    assert_eq!(unassigned["upToDate"], 1, "{groups}");
}

fn ids_of(lines: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["computerId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn sorted<'a>(computers: &[&'a Computer]) -> Vec<&'a str> {
    let mut ids: Vec<&str> = computers.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

/// Which computers need an update, the group filters and the inventory,
/// with a (Servers: u1 Installed, u2 Failed), b (Unassigned: u2
/// NotInstalled, u3 NotApplicable) and c (Servers, no report); u1 approved
/// for Servers, u2 for All Computers.
fn queries_and_inventory(server: &Server, [u1, u2, u3]: [&str; 3], [a, b, c]: [&Computer; 3]) {
    // By default the computers that need it: NotInstalled, Downloaded,
    // Failed (c has sent nothing: Unknown, not listed).
    let page = server.json(&["report", "updates", u2, "--computers"]);
    assert_eq!(
        (&page["updateId"], &page["total"], &page["offset"]),
        (&json!(u2), &json!(2), &json!(0))
    );
    assert_eq!(ids_of(&page["computers"]), sorted(&[a, b]));
    let line = |page: &Value, computer: &Computer| {
        page["computers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["computerId"] == computer.id.as_str())
            .unwrap()
            .clone()
    };
    let failed = line(&page, a);
    assert_eq!(
        (
            &failed["state"],
            &failed["hresult"],
            &failed["name"],
            &failed["group"]
        ),
        (
            &json!("Failed"),
            &json!("0x80240020"),
            &json!("WU_E_NO_INTERACTIVE_USER"),
            &json!("Servers")
        )
    );
    assert_eq!(line(&page, b)["state"], "NotInstalled");
    let states = |update: &str, state: &str| {
        ids_of(&server.json(&["report", "updates", update, "--computers", "--state", state])["computers"])
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(states(u2, "Unknown"), vec![c.id.clone()]);
    assert_eq!(states(u1, "Unknown,Installed"), sorted(&[a, c]));
    assert_eq!(states(u3, "NotApplicable"), vec![b.id.clone()]);
    assert_eq!(states(u3, "Unknown"), Vec::<String>::new());
    let page = server.json(&[
        "report",
        "updates",
        u2,
        "--computers",
        "--state",
        "Failed,NotInstalled,Unknown",
        "--group",
        "Servers",
    ]);
    assert_eq!(ids_of(&page["computers"]), sorted(&[a, c]));
    // Pages: by host name (host-aa01, host-bb02, host-cc03).
    let all = "Unknown,NotInstalled,Failed";
    let page = server.json(&[
        "report",
        "updates",
        u2,
        "--computers",
        "--state",
        all,
        "--limit",
        "1",
        "--offset",
        "1",
    ]);
    assert_eq!((&page["total"], &page["offset"]), (&json!(3), &json!(1)));
    assert_eq!(ids_of(&page["computers"]), vec![b.id.as_str()]);
    let table = server.run_ok(&[
        "report",
        "updates",
        u2,
        "--computers",
        "--state",
        all,
        "--limit",
        "2",
    ]);
    assert!(
        table.contains("host-bb02")
            && !table.contains("host-cc03")
            && table.contains("1 to 2 of 3"),
        "{table}"
    );
    // Bad queries are 400s, an unknown update or group a 404.
    for query in [
        "state=Bogus",
        "limit=0",
        "limit=10001",
        "limit=x",
        "subgroups=maybe",
    ] {
        let (status, body) = server.admin(
            "GET",
            &format!("/api/v1/reports/updates/{u2}/computers?{query}"),
            b"",
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    }
    let (status, body) = server.admin(
        "GET",
        &format!("/api/v1/reports/updates/{}/computers", uuid::Uuid::new_v4()),
        b"",
    );
    assert_error(
        status,
        &serde_json::from_slice(&body).unwrap(),
        404,
        "WU_E_PT_HTTP_STATUS_NOT_FOUND",
    );
    for path in [
        "/api/v1/reports/computers?group=Nowhere",
        "/api/v1/reports/failures?group=Nowhere",
    ] {
        let (status, body) = server.admin("GET", path, b"");
        assert_error(
            status,
            &serde_json::from_slice(&body).unwrap(),
            404,
            "WU_E_PT_HTTP_STATUS_NOT_FOUND",
        );
    }

    // Group filters: a group with the groups under it, or alone.
    server.run_ok(&["groups", "add", "Racks", "--parent", "Servers"]);
    server.run_ok(&["computers", "move", &c.id, "--group", "Racks"]);
    let computers = |args: &[&str]| {
        let mut full = vec!["report", "computers"];
        full.extend_from_slice(args);
        ids_of(&server.json(&full))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(computers(&["--group", "Servers"]), sorted(&[a, c]));
    assert_eq!(
        computers(&["--group", "Servers", "--no-subgroups"]),
        vec![a.id.clone()]
    );
    assert_eq!(computers(&["--group", "Racks"]), vec![c.id.clone()]);
    assert_eq!(computers(&["--group", "All Computers"]).len(), 3);
    assert_eq!(
        computers(&["--group", "All Computers", "--no-subgroups"]),
        Vec::<String>::new()
    );
    assert_eq!(
        ids_of(&server.json(&["report", "failures", "--group", "Servers"])),
        vec![a.id.as_str()]
    );
    assert_eq!(
        server.json(&["report", "failures", "--group", "Unassigned Computers"]),
        json!([])
    );
    assert_eq!(
        ids_of(&server.json(&[
            "report",
            "stale",
            "--days",
            "1",
            "--group",
            "Unassigned Computers"
        ])),
        Vec::<&str>::new()
    );
    assert_eq!(
        ids_of(&server.json(&["report", "stale", "--days", "1", "--group", "Servers"])),
        vec![c.id.as_str()]
    );
    let output = server.run(&["report", "computers", "--group", "Nowhere"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    server.run_ok(&["computers", "move", &c.id, "--group", "Servers"]);

    // The inventory of the last report: all of it in JSON, some in the table.
    let inventory = &computer_line(server, a)["inventory"];
    assert_eq!(
        inventory,
        &json!({"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-test",
            "architecture": "x86_64", "agentVersion": "0.1.0", "lastSync": null,
            "rebootPending": false, "awaitingInteractiveUser": []})
    );
    assert_eq!(computer_line(server, c)["inventory"], Value::Null);
    let table = server.run_ok(&["report", "computers"]);
    assert!(
        table.contains("RESTART")
            && table.contains("Debian GNU/Linux 12 (bookworm)")
            && table.contains("x86_64"),
        "{table}"
    );
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// `gzip -dc` of `bytes`.
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    output.stdout
}

/// JSON answers and snapshots are gzipped for a client that asks, and only
/// then; content files never are (their Range and ETag stay true).
fn compression(server: &Server, computer: &Computer) {
    let token = server.token();
    let url = format!("{}/api/v1/reports/computers", server.url);
    let (status, headers, plain) = http("GET", &url, Some(&token), &[], b"");
    assert_eq!((status, header(&headers, "content-encoding")), (200, None));
    let (status, headers, gzipped) = http(
        "GET",
        &url,
        Some(&token),
        &[("accept-encoding", "gzip")],
        b"",
    );
    assert_eq!(
        (status, header(&headers, "content-encoding")),
        (200, Some("gzip"))
    );
    assert_eq!(gunzip(&gzipped), plain);

    let sync = |accept: &[(&str, &str)]| {
        let authorization = format!("Computer {} {}", computer.id, computer.secret);
        let mut headers = vec![
            ("authorization", authorization.as_str()),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(accept);
        http(
            "POST",
            &format!("{}/api/v1/sync", server.url),
            None,
            &headers,
            br#"{"anchor": null}"#,
        )
    };
    let (status, headers, plain) = sync(&[]);
    assert_eq!((status, header(&headers, "content-encoding")), (200, None));
    let (status, headers, gzipped) = sync(&[("accept-encoding", "gzip")]);
    assert_eq!(
        (status, header(&headers, "content-encoding")),
        (200, Some("gzip"))
    );
    assert_eq!(gunzip(&gzipped), plain);

    let bytes = "compressible text, ".repeat(200).into_bytes();
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let path = format!("/api/v1/content/{sha}");
    let (status, _) = server.admin("PUT", &path, &bytes);
    assert!(status == 200 || status == 201, "{status}");
    let (status, headers, body) = server.get(&path, &[("accept-encoding", "gzip")]);
    assert_eq!((status, header(&headers, "content-encoding")), (200, None));
    assert_eq!(body, bytes);
}

/// Reports sent as fast as the server takes them while it is SIGKILLed:
/// after a restart, the acknowledgement is at least the last one the sender
/// saw, and the stored state is exactly that report's.
fn killed_during_reports(database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database, &[]);
    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    let update_id = server.json(&["updates", "list"])[0]["updateId"]
        .as_str()
        .unwrap()
        .to_owned();
    let computer = Arc::new(register(&server, "dd04", "Servers"));
    // Odd reports say Installed, even ones Failed: the stored state tells
    // which report is stored.
    let state_of = |sequence: u64| {
        if sequence % 2 == 1 {
            "Installed"
        } else {
            "Failed"
        }
    };
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let sender = {
        let (url, computer, acknowledged, stopped) = (
            server.url.clone(),
            Arc::clone(&computer),
            Arc::clone(&acknowledged),
            Arc::clone(&stopped),
        );
        let update_id = update_id.clone();
        std::thread::spawn(move || {
            let authorization = format!("Computer {} {}", computer.id, computer.secret);
            for sequence in 1.. {
                let body = report_body(sequence, vec![entry(&update_id, state_of(sequence), None)]);
                let (status, _, bytes) = http(
                    "POST",
                    &format!("{url}/api/v1/reports"),
                    None,
                    &[
                        ("authorization", &authorization),
                        ("content-type", "application/json"),
                    ],
                    &body,
                );
                if status != 200 {
                    break;
                }
                let ack: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(ack["acknowledged"], sequence);
                acknowledged.store(sequence, Ordering::SeqCst);
            }
            stopped.store(true, Ordering::SeqCst);
        })
    };
    let under_way = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(60), || {
        acknowledged.load(Ordering::SeqCst) >= 20
    });
    assert!(
        under_way,
        "the reports did not get going: {}",
        server.log_tail()
    );
    server.kill();
    sender.join().unwrap();
    assert!(stopped.load(Ordering::SeqCst));
    let last_seen = acknowledged.load(Ordering::SeqCst);

    let server = Server::start(&data_dir, database, &[]);
    // Sending the last acknowledged report again is a duplicate: the
    // answer is the stored acknowledgement, which cannot be lower.
    let (status, ack) = post(
        &server,
        &computer,
        &report_body(last_seen, vec![entry(&update_id, "Downloaded", None)]),
    );
    assert_eq!(status, 200, "{ack}");
    let stored = ack["acknowledged"].as_u64().unwrap();
    assert!(
        stored == last_seen || stored == last_seen + 1,
        "{stored} after {last_seen}"
    );
    let summary = summary(&server, &update_id);
    let expected = if state_of(stored) == "Installed" {
        [0, 0, 0, 0, 1, 0, 0]
    } else {
        [0, 0, 0, 0, 0, 0, 1]
    };
    assert_eq!(counts(&summary), expected, "{summary}");
}

/// Computers reporting at once, each report of many updates, while the
/// server is SIGKILLed: after a restart every computer's acknowledged
/// report is stored, and whole (every update in the state that report
/// gave), never part of one.
fn killed_during_concurrent_reports(database: Option<&str>) {
    const COMPUTERS: usize = 4;
    const UPDATES: usize = 50;
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database, &[]);
    let computers: Vec<Arc<Computer>> = (0..COMPUTERS)
        .map(|index| Arc::new(register(&server, &format!("ee{index:02}"), "Servers")))
        .collect();
    let update_ids: Arc<Vec<String>> = Arc::new(
        (0..UPDATES)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect(),
    );
    // Odd reports say Installed for every update, even ones Failed.
    let state_of = |sequence: u64| {
        if sequence % 2 == 1 {
            "Installed"
        } else {
            "Failed"
        }
    };
    let acknowledged: Arc<Vec<AtomicU64>> =
        Arc::new((0..COMPUTERS).map(|_| AtomicU64::new(0)).collect());
    let senders: Vec<_> = (0..COMPUTERS)
        .map(|index| {
            let (url, computer, acknowledged, update_ids) = (
                server.url.clone(),
                Arc::clone(&computers[index]),
                Arc::clone(&acknowledged),
                Arc::clone(&update_ids),
            );
            std::thread::spawn(move || {
                let authorization = format!("Computer {} {}", computer.id, computer.secret);
                for sequence in 1.. {
                    let hresult = (sequence % 2 == 0).then_some("0x80240022");
                    let entries = update_ids
                        .iter()
                        .map(|id| entry(id, state_of(sequence), hresult))
                        .collect();
                    let (status, _, bytes) = http(
                        "POST",
                        &format!("{url}/api/v1/reports"),
                        None,
                        &[
                            ("authorization", &authorization),
                            ("content-type", "application/json"),
                        ],
                        &report_body(sequence, entries),
                    );
                    if status != 200 {
                        return;
                    }
                    let ack: Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(ack["acknowledged"], sequence);
                    acknowledged[index].store(sequence, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let under_way = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(60), || {
        acknowledged
            .iter()
            .all(|count| count.load(Ordering::SeqCst) >= 5)
    });
    assert!(
        under_way,
        "the burst did not get going: {}",
        server.log_tail()
    );
    server.kill();
    for sender in senders {
        sender.join().unwrap();
    }

    let server = Server::start(&data_dir, database, &[]);
    let lines = server.json(&["report", "computers"]);
    for (index, computer) in computers.iter().enumerate() {
        let last_seen = acknowledged[index].load(Ordering::SeqCst);
        // The last acknowledged report again is a duplicate: the answer is
        // what is stored, at least what the client saw acknowledged (and
        // one more if the server stored a report it died before answering).
        let (status, ack) = post(
            &server,
            computer,
            &report_body(last_seen, vec![entry(&update_ids[0], "Downloaded", None)]),
        );
        assert_eq!(status, 200, "{ack}");
        let stored = ack["acknowledged"].as_u64().unwrap();
        assert!(
            stored == last_seen || stored == last_seen + 1,
            "computer {index}: {stored} after {last_seen}"
        );
        let line = lines
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["computerId"] == computer.id.as_str())
            .unwrap();
        let (installed, failed) = if state_of(stored) == "Installed" {
            (UPDATES, 0)
        } else {
            (0, UPDATES)
        };
        assert_eq!(line["installed"], installed, "computer {index}: {line}");
        assert_eq!(line["failed"], failed, "computer {index}: {line}");
    }
}

#[test]
fn sqlite_killed_during_concurrent_reports() {
    killed_during_concurrent_reports(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_killed_during_concurrent_reports() {
    let Some(admin_url) = common::postgres_url("postgres_killed_during_concurrent_reports") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || killed_during_concurrent_reports(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}

#[test]
fn sqlite_reports() {
    reports_scenario(None);
}

#[test]
fn sqlite_killed_during_reports() {
    killed_during_reports(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_reports() {
    let Some(admin_url) = common::postgres_url("postgres_reports") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || reports_scenario(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_killed_during_reports() {
    let Some(admin_url) = common::postgres_url("postgres_killed_during_reports") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || killed_during_reports(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}
