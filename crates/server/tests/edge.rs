//! The server's edge, with the real binary: HTTPS with a certificate made
//! here by the openssl CLI and real agents that trust (or do not trust) its
//! CA; plain HTTP refused off loopback; 503 when every in-flight slot is
//! held; 429 past the registration rate, which agents treat as busy;
//! content at an operator's base URL (python3's http.server), downloaded
//! and installed by a real agent.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, http, sample_service};
use openwua_agent::{Background, Config};
use openwua_client::blocking::UpdateSession;
use openwua_model::hresult;
use openwua_testkit::wait_until;
use serde_json::Value;
use uuid::Uuid;

/// "Message of the day refresh" of the sample service.
const MOTD: &str = "3d64ba01-f585-5423-8b8f-02c8d265efb5";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (Debian's openssl package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, and a certificate it signed for 127.0.0.1: (ca.pem, server.pem,
/// server.key), the key 0600.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=OpenWUA test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir.join("ca.pem"), dir.join("server.pem"), key)
}

/// `wua-server serve` that must refuse to start: its stderr.
fn refused_start(args: &[&str]) -> String {
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config", "/dev/null", "--data-dir"])
        .arg(data_dir.path())
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success(), "it started: {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A real agent of its own, with a machine ID of its own.
fn agent(dir: &Path, machine_id: &str) -> Background {
    let machine_id_file = dir.join("machine-id");
    std::fs::write(&machine_id_file, format!("{machine_id}\n")).unwrap();
    let mut config = Config {
        owner_is_admin: true,
        ..Config::under(dir)
    };
    config.facts.machine_id = machine_id_file;
    Background::start(config).unwrap()
}

fn assert_succeeded(job: &openwua_model::operation::JobInfo, what: &str) {
    let result = job.result.as_ref().expect("a completed job");
    assert_eq!(
        result.result_code,
        openwua_model::enums::OperationResultCode::Succeeded,
        "{what}: {job:?}"
    );
}

/// Downloads and installs MOTD through `session`.
fn download_and_install(session: &UpdateSession) {
    let motd: Uuid = MOTD.parse().unwrap();
    let mut downloader = session.create_update_downloader();
    downloader.updates = vec![motd];
    assert_succeeded(&downloader.download().unwrap(), "download");
    let mut installer = session.create_update_installer();
    installer.updates = vec![motd];
    assert_succeeded(&installer.install().unwrap(), "install");
    assert!(session.get_update(motd).unwrap().entry.state.is_installed);
}

/// A `wua-server` subcommand against an HTTPS server.
fn admin(url: &str, data_dir: &Path, ca: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .args(["--server", url, "--data-dir"])
        .arg(data_dir)
        .arg("--ca-file")
        .arg(ca)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn an_agent_that_trusts_the_operators_ca_syncs_and_installs_over_https() {
    let scratch = tempfile::tempdir().unwrap();
    let (ca, certificate, key) = certificates(scratch.path());
    let data_dir = scratch.path().join("data");
    let port = free_port();
    let log = scratch.path().join("server.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config", "/dev/null", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--tls-certificate")
        .arg(&certificate)
        .arg("--tls-private-key")
        .arg(&key)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(&mut child);
    let url = format!("https://127.0.0.1:{port}");
    let ready = wait_until(Instant::now() + Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(
        ready,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // HTTPS only: a plain HTTP request gets no HTTP answer.
    assert_eq!(
        http(
            "GET",
            &format!("http://127.0.0.1:{port}/healthz"),
            None,
            &[],
            b""
        )
        .0,
        0
    );
    let key_text = admin(&url, &data_dir, &ca, &["key"]).trim().to_owned();
    admin(
        &url,
        &data_dir,
        &ca,
        &["publish", sample_service().to_str().unwrap()],
    );
    admin(
        &url,
        &data_dir,
        &ca,
        &["approve", MOTD, "--group", "All Computers"],
    );

    // Without the CA, the agent refuses the certificate: WUA's TLS code,
    // and nothing registered.
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = agent(stranger_dir.path(), "33333333333333333333333333333333");
    let stranger_session = UpdateSession::connect(stranger.socket()).unwrap();
    let error = stranger_session
        .create_update_service_manager()
        .add_server_service(&url, &key_text, None, None, true)
        .unwrap_err();
    assert_eq!(
        error.hresult(),
        hresult::WU_E_PT_SECURITY_SYSTEM_FAILURE,
        "{error}"
    );
    assert!(
        stranger_session
            .create_update_service_manager()
            .services()
            .unwrap()
            .is_empty()
    );

    // With it: registration, sync, content download and install, all over
    // HTTPS.
    let trusting_dir = tempfile::tempdir().unwrap();
    let trusting = agent(trusting_dir.path(), "44444444444444444444444444444444");
    let session = UpdateSession::connect(trusting.socket()).unwrap();
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    session
        .create_update_service_manager()
        .add_server_service_with_ca(&url, &key_text, None, None, true, Some(&ca_pem))
        .unwrap();
    assert!(session.get_update(MOTD.parse().unwrap()).is_ok());
    session.sync(None, |_| {}).unwrap();
    download_and_install(&session);

    // Over TLS the console's session cookie is Secure (HttpOnly and
    // SameSite=Strict as on plain HTTP).
    let pem = std::fs::read(&ca).unwrap();
    let roots: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item.unwrap() {
            ureq::tls::PemItem::Certificate(certificate) => Some(certificate),
            _ => None,
        })
        .collect();
    let browser: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                .build(),
        )
        .build()
        .into();
    let token = std::fs::read_to_string(data_dir.join("admin.token")).unwrap();
    let answer = browser
        .post(format!("{url}/console/sign-in"))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={}", token.trim()))
        .unwrap();
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap();
    for attribute in ["; Secure", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    // A CA file that holds no certificate is refused before anything is
    // asked of the server.
    let error = stranger_session
        .create_update_service_manager()
        .add_server_service_with_ca(&url, &key_text, None, None, true, Some("not a PEM file"))
        .unwrap_err();
    assert_eq!(error.hresult(), hresult::E_INVALIDARG, "{error}");
}

struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_server_refuses_to_start_without_a_private_key_or_on_plain_http_off_loopback() {
    let scratch = tempfile::tempdir().unwrap();
    let (_, certificate, key) = certificates(scratch.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let stderr = refused_start(&[
        "--listen",
        &listen,
        "--tls-certificate",
        certificate.to_str().unwrap(),
        "--tls-private-key",
        key.to_str().unwrap(),
    ]);
    assert!(stderr.contains("must be 0600 or 0400"), "{stderr}");

    let stderr = refused_start(&["--listen", &format!("0.0.0.0:{port}")]);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("tls_certificate"), "{stderr}");
}

/// A request whose body never finishes: it holds an in-flight slot until
/// the connection closes.
fn held_request(server: &Server) -> TcpStream {
    let address = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /api/v1/updates HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"revisions\": [",
        server.token()
    )
    .unwrap();
    stream
}

/// What the server has sent on a held request's connection, if anything.
fn answered(stream: &TcpStream) -> String {
    use std::io::Read;
    let mut bytes = [0u8; 512];
    stream.set_nonblocking(true).unwrap();
    let read = (&*stream).read(&mut bytes).unwrap_or(0);
    stream.set_nonblocking(false).unwrap();
    String::from_utf8_lossy(&bytes[..read]).into_owned()
}

#[test]
fn a_server_with_every_slot_held_answers_503_with_retry_after() {
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(
        &scratch.path().join("data"),
        None,
        &["--max-in-flight", "2"],
    );
    let held = [held_request(&server), held_request(&server)];
    // Both held requests have reached the server before the first probe.
    let started = wait_until(Instant::now() + Duration::from_secs(30), || {
        server
            .log_text()
            .matches("method=POST uri=/api/v1/updates")
            .count()
            >= 2
    });
    assert!(
        started,
        "held requests never started: {}",
        server.log_tail()
    );
    let busy = |server: &Server| {
        let (status, headers, body) = server.get("/api/v1/key", &[]);
        (status == 503).then_some((headers, body))
    };
    let mut answer = None;
    let full = wait_until(Instant::now() + Duration::from_secs(30), || {
        answer = busy(&server);
        answer.is_some()
    });
    assert!(
        full,
        "never 503; held requests answered: {:?}; server log: {:#?}",
        held.each_ref().map(answered),
        server
            .log_text()
            .lines()
            .filter(|line| line.contains("POST") || line.contains("WARN"))
            .collect::<Vec<_>>()
    );
    let (headers, body) = answer.unwrap();
    let retry_after = headers
        .iter()
        .find(|(name, _)| name == "retry-after")
        .map(|(_, value)| value.clone());
    assert_eq!(retry_after.as_deref(), Some("5"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["name"], "WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL",
        "{body}"
    );
    // Liveness is not a request to turn away.
    assert_eq!(server.get("/healthz", &[]).0, 200);

    // A slot frees as soon as a held request ends.
    drop(held);
    let free = wait_until(Instant::now() + Duration::from_secs(30), || {
        server.get("/api/v1/key", &[]).0 == 200
    });
    assert!(free, "{}", server.log_tail());
}

fn register_raw(server: &Server, machine_id: &str) -> (u16, Vec<(String, String)>, Value) {
    let body = serde_json::json!({
        "machineId": machine_id, "hostname": "edge", "targetGroup": null,
        "computerId": null, "secret": null,
    });
    let (status, headers, bytes) = http(
        "POST",
        &format!("{}/api/v1/computers/register", server.url),
        None,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[test]
fn registration_past_the_rate_is_429_and_an_agent_takes_it_as_busy() {
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(
        &scratch.path().join("data"),
        None,
        &["--registrations-per-minute", "2"],
    );
    assert_eq!(register_raw(&server, "a1").0, 200);
    assert_eq!(register_raw(&server, "a2").0, 200);
    let (status, headers, body) = register_raw(&server, "a3");
    assert_eq!(status, 429, "{body}");
    let retry_after: u64 = headers
        .iter()
        .find(|(name, _)| name == "retry-after")
        .map(|(_, value)| value.parse().unwrap())
        .unwrap();
    assert!((1..=31).contains(&retry_after), "{retry_after}");
    assert_eq!(
        body["name"], "WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL",
        "{body}"
    );
    // Other endpoints are not limited.
    assert_eq!(server.get("/api/v1/service", &[]).0, 200);

    // An agent registering now hears "busy", WUA's 503 code, not an
    // unknown status.
    let key = server.run_ok(&["key"]).trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let background = agent(dir.path(), "55555555555555555555555555555555");
    let session = UpdateSession::connect(background.socket()).unwrap();
    let error = session
        .create_update_service_manager()
        .add_server_service(&server.url, &key, None, None, true)
        .unwrap_err();
    assert_eq!(
        error.hresult(),
        hresult::WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL,
        "{error}"
    );
    assert!(error.to_string().contains("busy"), "{error}");
}

/// python3's http.server on 127.0.0.1, serving `dir`.
struct WebServer(Child, String);

impl WebServer {
    fn start(dir: &Path) -> WebServer {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = wait_until(Instant::now() + Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "python3 -m http.server did not listen");
        WebServer(child, format!("http://127.0.0.1:{port}/"))
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn content_at_the_operators_base_url_is_downloaded_and_installed_from_there() {
    let scratch = tempfile::tempdir().unwrap();
    let web_root = scratch.path().join("web");
    std::fs::create_dir_all(web_root.join("content")).unwrap();
    let web = WebServer::start(&web_root);
    let server = Server::start(
        &scratch.path().join("data"),
        None,
        &["--content-base-url", &web.1],
    );
    let (_, _, body) = server.get("/api/v1/service", &[]);
    let service: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(service["contentBase"], web.1.as_str(), "{service}");

    // Publishing checks (from the admin's side) that the content is there.
    let output = server.run(&["publish", sample_service().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("content base"), "{stderr}");
    let service_dir = openwua_catalog::manifest::load_service_dir(&sample_service()).unwrap();
    for (file, path) in &service_dir.payloads {
        let target = web_root.join(&file.url);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(path, target).unwrap();
    }
    server.run_ok(&["publish", sample_service().to_str().unwrap()]);
    server.run_ok(&["approve", MOTD, "--group", "All Computers"]);

    // The server keeps no content.
    let sha = &service_dir.payloads[0].0.sha256.to_string();
    let (status, _) = server.admin("PUT", &format!("/api/v1/content/{sha}"), b"bytes");
    assert_eq!(status, 409);
    assert_eq!(server.get(&format!("/api/v1/content/{sha}"), &[]).0, 404);

    let key = server.run_ok(&["key"]).trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let background = agent(dir.path(), "66666666666666666666666666666666");
    let session = UpdateSession::connect(background.socket()).unwrap();
    let added = session
        .create_update_service_manager()
        .add_server_service(&server.url, &key, None, None, true)
        .unwrap();
    assert_eq!(added.service.content_base.as_deref(), Some(web.1.as_str()));
    download_and_install(&session);
}
