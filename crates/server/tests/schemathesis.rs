//! A tool no one here wrote: schemathesis (PyPI) generates requests from
//! the OpenAPI document the server serves, with the admin token, and checks
//! that no request gets a 5xx and that every response matches the
//! document. `scripts/setup-test-machine` installs it; without it the test
//! says it was skipped (a failure under `CI=true`).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openwua_testkit::{skip, wait_until};

/// The server under test, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start(data_dir: &Path, port: u16) -> Server {
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_wua-server"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = wait_until(Instant::now() + Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "wua-server did not listen on 127.0.0.1:{port}");
    server
}

#[test]
fn schemathesis_finds_no_server_error_and_no_response_outside_the_document() {
    const TEST: &str = "schemathesis_finds_no_server_error_and_no_response_outside_the_document";
    if Command::new("schemathesis")
        .arg("--version")
        .output()
        .map_or(true, |output| !output.status.success())
    {
        skip(
            TEST,
            "schemathesis is not installed (pip install schemathesis)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = start(dir.path(), port);
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let output = Command::new("schemathesis")
        .arg("run")
        .arg(format!("http://127.0.0.1:{port}/api/v1/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "30",
        ])
        .env("NO_COLOR", "1")
        // Its cache of findings goes with the test's directory, not into
        // the source tree.
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "schemathesis found a problem:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
