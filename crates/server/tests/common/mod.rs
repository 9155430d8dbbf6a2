//! What the server's tests share: the real `wua-server` process, requests
//! to it, and throwaway PostgreSQL databases.

#![allow(dead_code)]

use std::fs;
use std::future::Future;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `OPENWUA_TEST_POSTGRES_URL`, or a skip naming `test`.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("OPENWUA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            openwua_testkit::skip(test, "OPENWUA_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A fresh database on the test server, dropped when `body` ends (even by
/// a panic, which is then resumed).
pub async fn with_database<F, Fut>(admin_url: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = format!("openwua_test_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("connecting to OPENWUA_TEST_POSTGRES_URL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .expect("a URL with a database name");
    let url = format!("{base}/{name}");
    let outcome = tokio::spawn(body(url)).await;
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("DROP DATABASE");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_wua-server");

pub fn sample_service() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service")
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path, database: Option<&str>, extra: &[&str]) -> Server {
        Server::start_with_config(data_dir, Path::new("/dev/null"), database, extra)
    }

    /// [`Server::start`] with `config` as its `server.toml`.
    pub fn start_with_config(
        data_dir: &Path,
        config: &Path,
        database: Option<&str>,
        extra: &[&str],
    ) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = data_dir.with_extension(format!("{port}.log"));
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--config"])
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_clear()
            .env("RUST_LOG", "info,tower_http=debug")
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        if let Some(url) = database {
            command.args(["--database", url]);
        }
        let mut server = Server {
            child: command.spawn().unwrap(),
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
            log,
        };
        let ready = openwua_testkit::wait_until(Instant::now() + Duration::from_secs(30), || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("wua-server exited: {status}: {}", server.log_tail());
            }
            http("GET", &format!("{}/readyz", server.url), None, &[], b"").0 == 200
        });
        assert!(ready, "not ready: {}", server.log_tail());
        server
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's end, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let start = text.len().saturating_sub(3000);
        text.get(start..).unwrap_or(&text).to_owned()
    }

    pub fn token(&self) -> String {
        fs::read_to_string(self.data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Runs a `wua-server` subcommand against this server.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--server", &self.url, "--data-dir"])
            .arg(&self.data_dir)
            .env_clear()
            .output()
            .unwrap()
    }

    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// A subcommand's `--json` output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.run_ok(&args)).unwrap()
    }

    pub fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http("GET", &format!("{}{path}", self.url), None, headers, b"")
    }

    pub fn admin(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let token = self.token();
        let (status, _, body) = http(
            method,
            &format!("{}{path}", self.url),
            Some(&token),
            &[],
            body,
        );
        (status, body)
    }

    pub fn catalog_version(&self) -> u64 {
        let (_, _, body) = self.get("/readyz", &[]);
        let ready: Value = serde_json::from_slice(&body).unwrap();
        ready["catalogVersion"].as_u64().unwrap()
    }

    pub fn updates(&self) -> Value {
        serde_json::from_str(&self.run_ok(&["updates", "list", "--json"])).unwrap()
    }

    pub fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}: {}", self.log_tail());
    }

    /// Waits for an exit already asked for; it must be a clean one.
    pub fn stop_waiting(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}: {}", self.log_tail());
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request; any status comes back (no error for 4xx).
pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.to_vec()).unwrap();
    let Ok(mut response) = agent.run(request) else {
        return (0, Vec::new(), Vec::new());
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut bytes = Vec::new();
    // A server killed mid-answer (the SIGKILL tests) gives status 0.
    if response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader()
        .read_to_end(&mut bytes)
        .is_err()
    {
        return (0, Vec::new(), Vec::new());
    }
    (status, headers, bytes)
}
