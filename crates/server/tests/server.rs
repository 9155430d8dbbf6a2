//! The real `wua-server` binary on a free 127.0.0.1 port with a temporary
//! data directory, driven by its own subcommands and by raw HTTP, once
//! with SQLite and once with PostgreSQL.

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{BIN, Server, http, sample_service};

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// A 4xx with the JSON error body and the WUA code `name`.
fn assert_error(status: u16, body: &[u8], expected_status: u16, name: &str) {
    assert_eq!(status, expected_status, "{}", String::from_utf8_lossy(body));
    let error: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(error["name"], name, "{error}");
    assert!(error["hresult"].as_str().unwrap().starts_with("0x"));
    assert!(!error["message"].as_str().unwrap().is_empty());
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn publish_decline_list_show(server: &Server, scratch: &Path) {
    let sample = sample_service();
    let sample = sample.to_str().unwrap();
    let first = server.run_ok(&["publish", sample]);
    assert!(first.contains("30 added"), "{first}");
    assert_eq!(server.catalog_version(), 1);
    let again = server.run_ok(&["publish", sample]);
    assert!(again.starts_with("nothing changed"), "{again}");
    assert_eq!(server.catalog_version(), 1);

    // One manifest changed: that update, and only it, gets revision 2.
    let changed = scratch.join("sample-changed");
    copy_dir(Path::new(sample), &changed);
    let manifest = changed.join("tzdata-2026b/update.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let text = text.replacen("title = \"", "title = \"Refreshed: ", 1);
    fs::write(&manifest, text).unwrap();
    let report: Value =
        serde_json::from_str(&server.run_ok(&["publish", changed.to_str().unwrap(), "--json"]))
            .unwrap();
    let revised: Vec<&Value> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["action"] == "revised")
        .collect();
    assert_eq!(revised.len(), 1, "{report}");
    let update_id = revised[0]["updateId"].as_str().unwrap().to_owned();
    assert_eq!(report["catalogVersion"], 2);

    let shown: Value =
        serde_json::from_str(&server.run_ok(&["updates", "show", &update_id, "--json"])).unwrap();
    let numbers: Vec<i64> = shown["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revisionNumber"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 2);
    assert_eq!(numbers[1], numbers[0] + 1);
    assert!(
        shown["current"]["update"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Refreshed: ")
    );
    let table = server.run_ok(&["updates", "show", &update_id]);
    assert!(table.contains("Refreshed: "), "{table}");

    let declined = server.run_ok(&["decline", &update_id]);
    assert!(declined.starts_with("declined"), "{declined}");
    assert_eq!(server.catalog_version(), 3);
    let again = server.run_ok(&["decline", &update_id]);
    assert!(again.contains("declined already"), "{again}");
    assert_eq!(server.catalog_version(), 3);

    let updates = server.updates();
    assert_eq!(updates.as_array().unwrap().len(), 30);
    let line = updates
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["updateId"] == update_id.as_str())
        .unwrap();
    assert_eq!(line["declined"], true);
    let table = server.run_ok(&["updates", "list"]);
    assert_eq!(table.lines().count(), 31, "{table}");

    let unknown = server.run(&["decline", "00000000-0000-0000-0000-000000000001"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("WU_E_PT_HTTP_STATUS_NOT_FOUND"));

    let key = server.run_ok(&["key"]);
    assert!(key.starts_with("ed25519:"), "{key}");
}

fn content_with_range_and_etag(server: &Server) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let path = format!("/api/v1/content/{digest}");
    let (status, body) = server.admin("PUT", &path, &bytes);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (status, body) = server.admin("PUT", &path, &bytes);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let (status, headers, body) = server.get(&path, &[]);
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
    let etag = header(&headers, "etag").unwrap().to_owned();
    assert_eq!(etag, format!("\"{digest}\""));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));

    let (status, headers, body) = server.get(&path, &[("range", "bytes=10-19")]);
    assert_eq!(status, 206);
    assert_eq!(body, &bytes[10..20]);
    assert_eq!(header(&headers, "content-range"), Some("bytes 10-19/1000"));
    let (status, _, body) = server.get(&path, &[("range", "bytes=-5")]);
    assert_eq!(status, 206);
    assert_eq!(body, &bytes[995..]);
    let (status, _, body) = server.get(&path, &[("range", "bytes=990-"), ("if-range", &etag)]);
    assert_eq!((status, body.len()), (206, 10));
    let (status, _, body) =
        server.get(&path, &[("range", "bytes=990-"), ("if-range", "\"other\"")]);
    assert_eq!((status, body.len()), (200, 1000));
    let (status, _, body) = server.get(&path, &[("if-none-match", &etag)]);
    assert_eq!((status, body.len()), (304, 0));

    let (status, headers, body) = server.get(&path, &[("range", "bytes=1000-")]);
    assert_error(status, &body, 416, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    assert_eq!(header(&headers, "content-range"), Some("bytes */1000"));

    let (status, _, body) = server.get(&format!("/api/v1/content/{}", "1".repeat(64)), &[]);
    assert_error(status, &body, 404, "WU_E_PT_HTTP_STATUS_NOT_FOUND");
}

fn bad_inputs_change_nothing(server: &Server) {
    let before = (server.catalog_version(), server.updates());
    let url = |path: &str| format!("{}{path}", server.url);
    let token = server.token();

    // Oversized: the server was started with --max-request-bytes 65536 and
    // --max-content-bytes 4096.
    let big = vec![b' '; 100_000];
    let (status, _, body) = http("POST", &url("/api/v1/updates"), Some(&token), &[], &big);
    assert_error(status, &body, 413, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let content = vec![7u8; 5000];
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&content))
    };
    let (status, _, body) = http(
        "PUT",
        &url(&format!("/api/v1/content/{digest}")),
        Some(&token),
        &[],
        &content,
    );
    assert_error(status, &body, 413, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let (status, _, _) = server.get(&format!("/api/v1/content/{digest}"), &[]);
    assert_eq!(status, 404);

    // Bytes that do not match the digest in the path.
    let (status, _, body) = http(
        "PUT",
        &url(&format!("/api/v1/content/{}", "2".repeat(64))),
        Some(&token),
        &[],
        b"not those bytes",
    );
    assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");

    // Malformed JSON, and JSON of the wrong shape.
    for body in [
        &b"{\"revisions\": ["[..],
        b"{\"revisions\": [{\"title\": 1}]}",
        b"[]",
    ] {
        let (status, _, body) = http("POST", &url("/api/v1/updates"), Some(&token), &[], body);
        assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    }

    // A missing or wrong token.
    for token in [None, Some("not-the-token"), Some("")] {
        let (status, _, body) = http("POST", &url("/api/v1/updates"), token, &[], b"{}");
        assert_error(status, &body, 401, "WU_E_PT_HTTP_STATUS_DENIED");
        let (status, _, body) = http(
            "POST",
            &url("/api/v1/updates/00000000-0000-0000-0000-000000000001/decline"),
            token,
            &[],
            b"",
        );
        assert_error(status, &body, 401, "WU_E_PT_HTTP_STATUS_DENIED");
    }
    let (status, _, body) = http(
        "PUT",
        &url(&format!("/api/v1/content/{digest}")),
        Some("wrong"),
        &[],
        b"x",
    );
    assert_error(status, &body, 401, "WU_E_PT_HTTP_STATUS_DENIED");

    // Path traversal in the content path, raw and encoded.
    for path in [
        "/api/v1/content/..%2f..%2fsigning.key",
        "/api/v1/content/%2e%2e",
        "/api/v1/content/.upload-x",
        "/api/v1/content/signing.key",
    ] {
        let (status, _, body) = server.get(path, &[]);
        assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    }
    let (status, _, body) = server.get("/api/v1/content/../../signing.key", &[]);
    assert!((400..500).contains(&status), "{status}");
    assert!(!String::from_utf8_lossy(&body).contains("openwua-ed25519-secret"));

    // A bad update ID, an unknown route, a wrong method.
    let (status, body) = server.admin("POST", "/api/v1/updates/not-a-guid/decline", b"");
    assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let (status, _, body) = server.get("/api/v1/nothing", &[]);
    assert_error(status, &body, 404, "WU_E_PT_HTTP_STATUS_NOT_FOUND");
    let (status, _, body) = http("DELETE", &url("/api/v1/key"), None, &[], b"");
    assert_error(status, &body, 405, "WU_E_PT_HTTP_STATUS_BAD_METHOD");

    assert_eq!((server.catalog_version(), server.updates()), before);
    // No upload left behind.
    let leftovers: Vec<_> = fs::read_dir(server.data_dir.join("content"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn scenario(database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database, &[]);
    for (file, mode) in [("admin.token", 0o600), ("signing.key", 0o600)] {
        use std::os::unix::fs::PermissionsExt;
        let metadata = fs::metadata(data_dir.join(file)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, mode, "{file}");
    }
    publish_decline_list_show(&server, scratch.path());
    content_with_range_and_etag(&server);
    server.stop();

    // The same data, restarted with small limits, for the bad inputs.
    let server = Server::start(
        &data_dir,
        database,
        &[
            "--max-request-bytes",
            "65536",
            "--max-content-bytes",
            "4096",
        ],
    );
    assert_eq!(server.catalog_version(), 3);
    bad_inputs_change_nothing(&server);
    server.stop();
}

/// SIGKILL while a publish of 10,000 revisions is under way, then a
/// restart: all of them or none, and the catalog version to match. (Where
/// the kill lands is up to the scheduler; the assertion holds wherever.)
fn killed_during_publish(database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database, &[]);
    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    let version = server.catalog_version();

    let template = openwua_catalog::manifest::load_service_dir(&sample_service())
        .unwrap()
        .revisions
        .remove(0);
    let ids: Vec<uuid::Uuid> = (0..10_000).map(|_| uuid::Uuid::new_v4()).collect();
    let revisions: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut revision = template.clone();
            revision.update.identity.update_id = *id;
            revision
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "revisions": revisions })).unwrap();
    let url = format!("{}/api/v1/updates", server.url);
    let token = server.token();
    let publisher = std::thread::spawn(move || http("POST", &url, Some(&token), &[], &body).0);
    let started = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(30), || {
        server.log_text().lines().any(|line| {
            line.contains("method=POST uri=/api/v1/updates ")
                && line.contains("started processing request")
        })
    });
    assert!(started, "{}", server.log_tail());
    server.kill();
    let status = publisher.join().unwrap();

    let server = Server::start(&data_dir, database, &[]);
    let listed = server.updates();
    let published = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            let id: uuid::Uuid = u["updateId"].as_str().unwrap().parse().unwrap();
            ids.contains(&id)
        })
        .count();
    let now = server.catalog_version();
    assert!(
        (published == 0 && now == version) || (published == ids.len() && now == version + 1),
        "{published} of {} published, catalog {version} -> {now} (the publish answered {status})",
        ids.len()
    );
    server.stop();
}

/// Two `wua-server` processes on one PostgreSQL database (and one shared
/// data directory for content) answer alike, whichever one changed things.
fn two_front_ends(database: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let first = Server::start(&data_dir, Some(database), &[]);
    let second = Server::start(&data_dir, Some(database), &[]);
    assert_eq!(first.run_ok(&["key"]), second.run_ok(&["key"]));

    first.run_ok(&["publish", sample_service().to_str().unwrap()]);
    assert_eq!(first.updates(), second.updates());
    assert_eq!(first.catalog_version(), second.catalog_version());
    let again = second.run_ok(&["publish", sample_service().to_str().unwrap()]);
    assert!(again.starts_with("nothing changed"), "{again}");

    let update_id = first.updates()[0]["updateId"].as_str().unwrap().to_owned();
    second.run_ok(&["decline", &update_id]);
    let shown: Value =
        serde_json::from_str(&first.run_ok(&["updates", "show", &update_id, "--json"])).unwrap();
    assert_eq!(shown["revisions"][0]["declined"], true);
    let again = first.run(&["decline", &update_id]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("declined already"));
    assert_eq!(first.catalog_version(), second.catalog_version());
    assert_eq!(first.updates(), second.updates());

    // Content one front end stored, the other serves.
    let bytes = b"shared content".to_vec();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let path = format!("/api/v1/content/{digest}");
    assert_eq!(first.admin("PUT", &path, &bytes).0, 201);
    let (status, _, body) = second.get(&path, &[]);
    assert_eq!((status, body), (200, bytes));
    first.stop();
    second.stop();
}

#[test]
fn sqlite_server() {
    scenario(None);
}

#[test]
fn sqlite_killed_during_publish() {
    killed_during_publish(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_killed_during_publish() {
    let Some(admin_url) = common::postgres_url("postgres_killed_during_publish") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || killed_during_publish(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_two_front_ends() {
    let Some(admin_url) = common::postgres_url("postgres_two_front_ends") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || two_front_ends(&url))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_server() {
    let Some(admin_url) = common::postgres_url("postgres_server") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || scenario(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}

/// A scan package publishes like its manifests: the same revisions, so
/// after the manifests it changes nothing; a wrong key is refused.
#[test]
fn publishes_a_scan_package() {
    let scratch = tempfile::tempdir().unwrap();
    let key = openwua_catalog::signing::SecretKey::generate().unwrap();
    let package = scratch.path().join("sample.wuapkg");
    openwua_catalog::package::build_service_dir(
        &sample_service(),
        1,
        jiff::SignedDuration::from_hours(24),
        true,
        &key,
        &package,
    )
    .unwrap();
    let public = key.public_key().to_string();
    let server = Server::start(&scratch.path().join("data"), None, &[]);
    let package = package.to_str().unwrap();

    let other = openwua_catalog::signing::SecretKey::generate().unwrap();
    let refused = server.run(&[
        "publish",
        package,
        "--package-key",
        &other.public_key().to_string(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(server.catalog_version(), 0);

    let first = server.run_ok(&["publish", package, "--package-key", &public]);
    assert!(first.contains("30 added"), "{first}");
    let manifests = server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    assert!(manifests.starts_with("nothing changed"), "{manifests}");
    server.stop();
}

/// Plain HTTP off loopback is refused unless allowed (TLS is not built).
#[test]
fn refuses_plain_http_off_loopback() {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config", "/dev/null", "--listen", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(scratch.path())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("allow_plain_http"), "{stderr}");
    // Refused before anything was made.
    assert!(fs::read_dir(scratch.path()).unwrap().next().is_none());
}

/// Yields `first`, then waits for the go-ahead before yielding `rest`.
struct HeldReader {
    first: Vec<u8>,
    rest: Vec<u8>,
    go: std::sync::mpsc::Receiver<()>,
    released: bool,
    stage: u8,
}

impl Read for HeldReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let part = match self.stage {
            0 => &mut self.first,
            1 => {
                if !self.released {
                    let _ = self.go.recv();
                    self.released = true;
                }
                &mut self.rest
            }
            _ => return Ok(0),
        };
        let n = part.len().min(buf.len());
        buf[..n].copy_from_slice(&part[..n]);
        part.drain(..n);
        if part.is_empty() {
            self.stage += 1;
        }
        Ok(n)
    }
}

/// SIGTERM during an upload: the upload finishes and is stored, then the
/// server exits 0.
#[test]
fn sigterm_lets_requests_under_way_finish() {
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(&scratch.path().join("data"), None, &[]);
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let (go, wait) = std::sync::mpsc::channel();
    let reader = HeldReader {
        first: bytes[..1000].to_vec(),
        rest: bytes[1000..].to_vec(),
        go: wait,
        released: false,
        stage: 0,
    };
    let url = format!("{}/api/v1/content/{digest}", server.url);
    let token = server.token();
    let uploader = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .put(&url)
            .header("authorization", format!("Bearer {token}"))
            .send(ureq::SendBody::from_owned_reader(reader))
            .map(|response| response.status().as_u16())
    });
    let started = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(30), || {
        server
            .log_text()
            .lines()
            .any(|line| line.contains("method=PUT") && line.contains("started processing request"))
    });
    assert!(started, "{}", server.log_tail());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopping = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(30), || {
        server.log_text().contains("SIGTERM")
    });
    assert!(stopping, "{}", server.log_tail());
    go.send(()).unwrap();
    assert_eq!(uploader.join().unwrap().unwrap(), 201);
    let data_dir = server.data_dir.clone();
    server.stop_waiting();
    assert_eq!(
        fs::read(data_dir.join("content").join(&digest)).unwrap(),
        bytes
    );
}

/// A request that stalls past `request_timeout_secs` gets a 408 with the
/// JSON error body, and its upload leaves nothing behind.
#[test]
fn a_stalled_upload_times_out_with_a_code() {
    use std::io::Write;
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(
        &scratch.path().join("data"),
        None,
        &["--request-timeout-secs", "1"],
    );
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let digest = "a".repeat(64);
    write!(
        stream,
        "PUT /api/v1/content/{digest} HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {}\r\nContent-Length: 100\r\n\r\nabc",
        server.token()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT"),
        "{answer}"
    );
    let content = server.data_dir.join("content");
    let gone = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(10), || {
        fs::read_dir(&content).unwrap().next().is_none()
    });
    assert!(gone, "an upload was left in {}", content.display());
    server.stop();
}

/// A computer as the tests drive it: its identity and the catalog version
/// it last imported.
struct Agent {
    computer_id: String,
    secret: String,
    group: String,
}

fn register(server: &Server, body: &Value) -> (u16, Value) {
    let (status, _, bytes) = http(
        "POST",
        &format!("{}/api/v1/computers/register", server.url),
        None,
        &[("content-type", "application/json")],
        &serde_json::to_vec(body).unwrap(),
    );
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn register_new(server: &Server, machine_id: &str, target_group: &str) -> Agent {
    let (status, answer) = register(
        server,
        &serde_json::json!({
            "machineId": machine_id, "hostname": format!("host-{machine_id}"),
            "targetGroup": target_group, "computerId": null, "secret": null
        }),
    );
    assert_eq!(status, 200, "{answer}");
    let secret = answer["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    Agent {
        computer_id: answer["computerId"].as_str().unwrap().to_owned(),
        secret,
        group: answer["group"].as_str().unwrap().to_owned(),
    }
}

/// One sync, verified exactly as an agent verifies it: the frame, the
/// signature with the pinned key, then the response against the anchor.
fn sync(
    server: &Server,
    key: &openwua_catalog::signing::PublicKey,
    service_id: uuid::Uuid,
    agent: &Agent,
    anchor: Option<u64>,
) -> openwua_catalog::sync::Response {
    use openwua_catalog::sync::{Anchor, SignedResponse};
    let (status, headers, bytes) =
        sync_raw(server, agent, &serde_json::json!({ "anchor": anchor }));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/octet-stream")
    );
    let response = SignedResponse::from_bytes(&bytes)
        .unwrap()
        .verify(key)
        .unwrap();
    response
        .check(
            &Anchor {
                service_id,
                version: anchor,
                fresh_until: None,
            },
            jiff::Timestamp::now(),
        )
        .unwrap();
    response
}

fn sync_raw(server: &Server, agent: &Agent, body: &Value) -> (u16, Vec<(String, String)>, Vec<u8>) {
    http(
        "POST",
        &format!("{}/api/v1/sync", server.url),
        None,
        &[
            (
                "authorization",
                &format!("Computer {} {}", agent.computer_id, agent.secret),
            ),
            ("content-type", "application/json"),
        ],
        &serde_json::to_vec(body).unwrap(),
    )
}

/// The update IDs a snapshot carries, with their deadlines.
fn offered(response: &openwua_catalog::sync::Response) -> Vec<(String, Option<String>)> {
    let openwua_catalog::sync::Response::Snapshot(snapshot) = response else {
        panic!("not a snapshot: {response:?}");
    };
    let mut ids: Vec<_> = snapshot
        .revisions
        .iter()
        .map(|revision| {
            (
                revision.update.identity.update_id.to_string(),
                revision
                    .update
                    .deadline
                    .map(|deadline| deadline.to_string()),
            )
        })
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<(String, Option<String>)>) -> Vec<(String, Option<String>)> {
    ids.sort();
    ids
}

/// The fleet end to end: groups and approvals through the CLI, computers
/// through registration, and what each one's sync carries.
fn fleet_scenario(database: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = scratch.path().join("data");
    let server = Server::start(&data_dir, database, &[]);
    let (status, _, body) = server.get("/api/v1/service", &[]);
    assert_eq!(status, 200);
    let service: Value = serde_json::from_slice(&body).unwrap();
    let service_id: uuid::Uuid = service["serviceId"].as_str().unwrap().parse().unwrap();
    let key: openwua_catalog::signing::PublicKey =
        service["publicKey"].as_str().unwrap().parse().unwrap();
    assert_eq!(service["publicKey"], server.run_ok(&["key"]).trim());
    assert!(!service["serviceName"].as_str().unwrap().is_empty());

    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    let ids: Vec<String> = server
        .updates()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["updateId"].as_str().unwrap().to_owned())
        .collect();
    let (u1, u2, u3) = (ids[0].clone(), ids[1].clone(), ids[2].clone());

    server.run_ok(&["groups", "add", "Servers"]);
    server.run_ok(&["groups", "add", "Web", "--parent", "Servers"]);
    server.run_ok(&["groups", "add", "Desktops"]);
    let listed = server.run_ok(&["groups", "list"]);
    assert!(
        listed.contains("Web") && listed.contains("Servers"),
        "{listed}"
    );
    let groups: Value =
        serde_json::from_str(&server.run_ok(&["groups", "list", "--json"])).unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 5);

    let deadline = "2027-01-31T18:00:00Z";
    let before = server.catalog_version();
    server.run_ok(&["approve", &u1, "--group", "Servers", "--deadline", deadline]);
    assert_eq!(
        server.catalog_version(),
        before + 1,
        "an approval bumps the version"
    );
    server.run_ok(&["approve", &u2, "--group", "Desktops"]);
    server.run_ok(&["approve", &u3, "--group", "Servers"]);
    // Web overrides its parent's approval of u3.
    server.run_ok(&["approve", &u3, "--group", "Web", "--action", "notApproved"]);
    let (status, body) = server.admin("GET", &format!("/api/v1/updates/{u3}/approvals"), b"");
    assert_eq!(status, 200);
    let approvals: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(approvals.as_array().unwrap().len(), 2, "{approvals}");

    let web = register_new(&server, "aa01", "Web");
    let desktop = register_new(&server, "bb02", "Desktops");
    let servers = register_new(&server, "cc03", "Servers");
    let lost = register_new(&server, "dd04", "Nowhere");
    assert_eq!(web.group, "Web");
    assert_eq!(lost.group, "Unassigned Computers");

    let with_deadline = |id: &str| (id.to_owned(), Some(deadline.to_owned()));
    let plain = |id: &str| (id.to_owned(), None);
    let web_first = sync(&server, &key, service_id, &web, None);
    assert_eq!(web_first.version(), server.catalog_version());
    assert_eq!(offered(&web_first), vec![with_deadline(&u1)]);
    assert_eq!(
        offered(&sync(&server, &key, service_id, &desktop, None)),
        vec![plain(&u2)]
    );
    assert_eq!(
        offered(&sync(&server, &key, service_id, &servers, None)),
        sorted(vec![with_deadline(&u1), plain(&u3)])
    );
    assert_eq!(
        offered(&sync(&server, &key, service_id, &lost, None)),
        vec![]
    );
    let shown: Value =
        serde_json::from_str(&server.run_ok(&["computers", "show", &web.computer_id, "--json"]))
            .unwrap();
    assert!(shown["lastSync"].is_string(), "{shown}");

    // A current anchor: a still-current statement that verifies.
    let version = web_first.version();
    let still = sync(&server, &key, service_id, &web, Some(version));
    assert!(
        matches!(still, openwua_catalog::sync::Response::StillCurrent(s) if s.version == version),
        "{still:?}"
    );

    // A decline: the next sync from that anchor is a delta removing it.
    server.run_ok(&["decline", &u1]);
    for agent in [&web, &servers] {
        let after = sync(&server, &key, service_id, agent, Some(version));
        let openwua_catalog::sync::Response::Delta(delta) = after else {
            panic!("not a delta: {after:?}");
        };
        assert!(delta.changed.is_empty());
        assert_eq!(delta.removed, vec![u1.parse::<uuid::Uuid>().unwrap()]);
    }
    assert_eq!(
        offered(&sync(&server, &key, service_id, &servers, None)),
        vec![plain(&u3)]
    );

    // The same identity from the same machine: the same identity back.
    let (status, same) = register(
        &server,
        &serde_json::json!({"machineId": "aa01", "hostname": "host-aa01", "targetGroup": "Web",
            "computerId": web.computer_id, "secret": web.secret}),
    );
    assert_eq!(status, 200);
    assert_eq!(same["computerId"], web.computer_id.as_str());
    assert_eq!(same["secret"], web.secret.as_str());
    // From another machine (a cloned image): its own identity, and a new
    // catalog version, so the anchor it kept from its original is not
    // current: it gets a snapshot for its own group.
    let kept_anchor = server.catalog_version();
    let (status, clone) = register(
        &server,
        &serde_json::json!({"machineId": "ee05", "hostname": "clone", "targetGroup": "Web",
            "computerId": web.computer_id, "secret": web.secret}),
    );
    assert_eq!(status, 200);
    assert_ne!(clone["computerId"], web.computer_id.as_str());
    assert_ne!(clone["secret"], web.secret.as_str());
    assert_eq!(server.catalog_version(), kept_anchor + 1);
    let clone = Agent {
        computer_id: clone["computerId"].as_str().unwrap().to_owned(),
        secret: clone["secret"].as_str().unwrap().to_owned(),
        group: clone["group"].as_str().unwrap().to_owned(),
    };
    assert_eq!(clone.group, "Web");
    assert_eq!(
        offered(&sync(&server, &key, service_id, &clone, Some(kept_anchor))),
        vec![]
    );
    let original: Value =
        serde_json::from_str(&server.run_ok(&["computers", "show", &web.computer_id, "--json"]))
            .unwrap();
    assert_eq!(original["machineId"], "aa01");
    let computers: Value =
        serde_json::from_str(&server.run_ok(&["computers", "list", "--json"])).unwrap();
    assert_eq!(computers.as_array().unwrap().len(), 5);

    // Moving a computer changes what it is offered, and the version; its
    // anchor from the old group gets a full snapshot.
    let before = server.catalog_version();
    server.run_ok(&["computers", "move", &web.computer_id, "--group", "Desktops"]);
    assert_eq!(server.catalog_version(), before + 1);
    assert_eq!(
        offered(&sync(&server, &key, service_id, &web, Some(before))),
        vec![plain(&u2)]
    );
    let table = server.run_ok(&["computers", "list"]);
    assert!(
        table.contains("host-aa01") && table.contains("Desktops"),
        "{table}"
    );

    // A group with members stays; an empty one goes.
    let refused = server.run(&["groups", "remove", "Desktops"]);
    assert_eq!(refused.status.code(), Some(1));
    server.run_ok(&["groups", "add", "Empty", "--parent", "Web"]);
    server.run_ok(&["groups", "remove", "Empty"]);

    fleet_refusals(&server, &web, &u2);
    server.stop();

    // Restarted: the same serviceId.
    let server = Server::start(&data_dir, database, &[]);
    let (_, _, body) = server.get("/api/v1/service", &[]);
    let again: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(again["serviceId"], service["serviceId"]);
    server.stop();
}

/// Wrong secrets, oversized bodies, unknown groups and malformed JSON each
/// get a 4xx with a code, and change nothing.
fn fleet_refusals(server: &Server, agent: &Agent, update_id: &str) {
    let state = || {
        (
            server.catalog_version(),
            server.run_ok(&["computers", "list", "--json"]),
            server.run_ok(&["groups", "list", "--json"]),
            server.admin(
                "GET",
                &format!("/api/v1/updates/{update_id}/approvals"),
                b"",
            ),
        )
    };
    let before = state();
    let wrong = Agent {
        computer_id: agent.computer_id.clone(),
        secret: "0".repeat(64),
        group: String::new(),
    };
    let (status, answer) = register(
        server,
        &serde_json::json!({"machineId": "aa01", "hostname": "x", "targetGroup": null,
            "computerId": wrong.computer_id, "secret": wrong.secret}),
    );
    assert_error(
        status,
        &serde_json::to_vec(&answer).unwrap(),
        401,
        "WU_E_PT_HTTP_STATUS_DENIED",
    );
    let (status, _, body) = sync_raw(server, &wrong, &serde_json::json!({"anchor": null}));
    assert_error(status, &body, 401, "WU_E_PT_HTTP_STATUS_DENIED");
    let (status, _, body) = http(
        "POST",
        &format!("{}/api/v1/sync", server.url),
        None,
        &[],
        b"{\"anchor\":null}",
    );
    assert_error(status, &body, 401, "WU_E_PT_HTTP_STATUS_DENIED");

    // Over the limits: 4 KiB to register, 1 KiB to sync.
    let big = serde_json::json!({"machineId": "aa01", "hostname": "x".repeat(5000)});
    let (status, _, body) = http(
        "POST",
        &format!("{}/api/v1/computers/register", server.url),
        None,
        &[],
        &serde_json::to_vec(&big).unwrap(),
    );
    assert_error(status, &body, 413, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let padded = format!("{{\"anchor\": null{}}}", " ".repeat(2000));
    let (status, _, body) = http(
        "POST",
        &format!("{}/api/v1/sync", server.url),
        None,
        &[(
            "authorization",
            &format!("Computer {} {}", agent.computer_id, agent.secret),
        )],
        padded.as_bytes(),
    );
    assert_error(status, &body, 413, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");

    // Malformed JSON.
    for path in ["/api/v1/computers/register", "/api/v1/groups"] {
        let (status, body) = server.admin("POST", path, b"{\"machineId\": ");
        assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    }
    let (status, _, body) = sync_raw(server, agent, &Value::String("anchor".into()));
    assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let (status, body) = register(
        server,
        &serde_json::json!({"machineId": "NOT HEX", "hostname": "x"}),
    );
    assert_error(
        status,
        &serde_json::to_vec(&body).unwrap(),
        400,
        "WU_E_PT_HTTP_STATUS_BAD_REQUEST",
    );

    // Unknown groups, computers and updates.
    let (status, body) = server.admin(
        "POST",
        &format!("/api/v1/updates/{update_id}/approvals"),
        br#"{"group": "Nowhere", "action": "install", "deadline": null}"#,
    );
    assert_error(status, &body, 404, "WU_E_PT_HTTP_STATUS_NOT_FOUND");
    let (status, body) = server.admin(
        "POST",
        &format!("/api/v1/computers/{}/move", agent.computer_id),
        br#"{"group": "Nowhere"}"#,
    );
    assert_error(status, &body, 404, "WU_E_PT_HTTP_STATUS_NOT_FOUND");
    let (status, body) = server.admin(
        "POST",
        "/api/v1/groups",
        br#"{"name": "X", "parent": "Nowhere"}"#,
    );
    assert_error(status, &body, 404, "WU_E_PT_HTTP_STATUS_NOT_FOUND");
    let (status, body) = server.admin(
        "GET",
        &format!("/api/v1/updates/{}/approvals", uuid::Uuid::new_v4()),
        b"",
    );
    assert_error(status, &body, 404, "WU_E_PT_HTTP_STATUS_NOT_FOUND");
    let (status, body) = server.admin("POST", "/api/v1/groups", br#"{"name": "Web"}"#);
    assert_error(status, &body, 409, "WU_E_PT_HTTP_STATUS_CONFLICT");
    let (status, body) = server.admin(
        "POST",
        &format!("/api/v1/updates/{update_id}/approvals"),
        br#"{"group": "Web", "action": "sometimes"}"#,
    );
    assert_error(status, &body, 400, "WU_E_PT_HTTP_STATUS_BAD_REQUEST");
    let refused = server.run(&["approve", update_id, "--group", "Nowhere"]);
    assert_eq!(refused.status.code(), Some(1));
    let (status, body) = server.admin("DELETE", "/api/v1/groups/All%20Computers", b"");
    assert_error(status, &body, 409, "WU_E_PT_HTTP_STATUS_CONFLICT");
    let (status, _, body) = server.get("/api/v1/groups", &[]);
    assert_error(status, &body, 401, "WU_E_PT_HTTP_STATUS_DENIED");

    assert_eq!(state(), before);
}

#[test]
fn sqlite_fleet() {
    fleet_scenario(None);
}

/// Posts a revision changed from `update_id`'s current one (a new
/// revision on the server).
fn revise(server: &Server, update_id: &str) {
    let (status, body) = server.admin("GET", &format!("/api/v1/updates/{update_id}"), b"");
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_slice(&body).unwrap();
    let mut revision = detail["current"].clone();
    let title = format!(
        "{} (revised)",
        revision["update"]["title"].as_str().unwrap()
    );
    revision["update"]["title"] = Value::String(title);
    let (status, body) = server.admin(
        "POST",
        "/api/v1/updates",
        &serde_json::to_vec(&serde_json::json!({ "revisions": [revision] })).unwrap(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// A sync's raw answer, verified, without checking it against an anchor.
fn verified(
    server: &Server,
    key: &openwua_catalog::signing::PublicKey,
    agent: &Agent,
    anchor: u64,
) -> (Vec<u8>, openwua_catalog::sync::Response) {
    let (status, _, bytes) = sync_raw(server, agent, &serde_json::json!({ "anchor": anchor }));
    assert_eq!(status, 200);
    let response = openwua_catalog::sync::SignedResponse::from_bytes(&bytes)
        .unwrap()
        .verify(key)
        .unwrap();
    (bytes, response)
}

/// Incremental syncs: a delta holds exactly what changed for the agent's
/// group and, applied to the anchor's snapshot, gives the full one; a
/// statement is signed once and served again; an anchor the server never
/// issued gets a full snapshot.
fn incremental_scenario(database: Option<&str>) {
    use openwua_catalog::sync::Response;
    use openwua_model::enums::DeploymentAction;
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(&scratch.path().join("data"), database, &[]);
    let (_, _, body) = server.get("/api/v1/service", &[]);
    let service: Value = serde_json::from_slice(&body).unwrap();
    let service_id: uuid::Uuid = service["serviceId"].as_str().unwrap().parse().unwrap();
    let key: openwua_catalog::signing::PublicKey =
        service["publicKey"].as_str().unwrap().parse().unwrap();
    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    let ids: Vec<String> = server
        .updates()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["updateId"].as_str().unwrap().to_owned())
        .collect();
    server.run_ok(&["groups", "add", "Ring"]);
    server.run_ok(&["groups", "add", "Other"]);
    for id in &ids[..4] {
        server.run_ok(&["approve", id, "--group", "Ring"]);
    }
    let agent = register_new(&server, "ab12", "Ring");
    let Response::Snapshot(first) = sync(&server, &key, service_id, &agent, None) else {
        panic!("no snapshot without an anchor");
    };
    assert_eq!(first.revisions.len(), 4);
    let anchor = first.version;

    // Nothing new: the same signed statement twice (cached).
    let (statement, _) = verified(&server, &key, &agent, anchor);
    let (again, response) = verified(&server, &key, &agent, anchor);
    assert!(
        matches!(response, Response::StillCurrent(_)),
        "{response:?}"
    );
    assert_eq!(statement, again, "the statement is signed once per period");

    // A new revision, a decline, an Uninstall with a deadline, and another
    // group's approval.
    revise(&server, &ids[0]);
    server.run_ok(&["decline", &ids[1]]);
    let deadline = "2027-02-01T00:00:00Z";
    server.run_ok(&[
        "approve",
        &ids[2],
        "--group",
        "Ring",
        "--action",
        "uninstall",
        "--deadline",
        deadline,
    ]);
    server.run_ok(&["approve", &ids[5], "--group", "Other"]);
    let Response::Delta(delta) = sync(&server, &key, service_id, &agent, Some(anchor)) else {
        panic!("no delta from a recent anchor");
    };
    let mut changed: Vec<String> = delta
        .changed
        .iter()
        .map(|revision| revision.update.identity.update_id.to_string())
        .collect();
    changed.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(changed, expected, "the new revision and the Uninstall only");
    assert_eq!(delta.removed, vec![ids[1].parse::<uuid::Uuid>().unwrap()]);
    let uninstall = delta
        .changed
        .iter()
        .find(|revision| revision.update.identity.update_id.to_string() == ids[2])
        .unwrap();
    assert_eq!(
        uninstall.update.deployment_action,
        DeploymentAction::Uninstallation
    );
    assert_eq!(
        uninstall.update.deadline.map(|d| d.to_string()).as_deref(),
        Some(deadline)
    );
    // Applied to the anchor's snapshot: what a full snapshot says now.
    let applied = openwua_catalog::sync::apply(&first, &delta).unwrap();
    let Response::Snapshot(full) = sync(&server, &key, service_id, &agent, None) else {
        panic!("no snapshot without an anchor");
    };
    assert_eq!(applied.version, full.version);
    assert_eq!(applied.revisions, full.revisions);

    // An anchor the server never issued: a full snapshot.
    let (_, future) = verified(&server, &key, &agent, full.version + 100);
    let Response::Snapshot(future) = future else {
        panic!("not a snapshot for an anchor from the future: {future:?}");
    };
    assert_eq!(future.revisions, full.revisions);
    server.stop();
}

#[test]
fn sqlite_incremental() {
    incremental_scenario(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_incremental() {
    let Some(admin_url) = common::postgres_url("postgres_incremental") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || incremental_scenario(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_fleet() {
    let Some(admin_url) = common::postgres_url("postgres_fleet") else {
        return;
    };
    common::with_database(&admin_url, |url| async move {
        tokio::task::spawn_blocking(move || fleet_scenario(Some(&url)))
            .await
            .unwrap();
    })
    .await;
}
