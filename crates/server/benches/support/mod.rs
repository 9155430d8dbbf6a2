//! What the server's benches share: starting the release `wua-server`, a
//! throwaway PostgreSQL database, and numbers from the environment.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release `wua-server` the benches run.
pub const BIN: &str = env!("CARGO_BIN_EXE_wua-server");

/// A running `wua-server` on a free loopback port: the process, its port
/// and its admin token. Every computer of a bench registers from
/// 127.0.0.1, so registrations are not rate-limited.
pub fn spawn_server(
    data_dir: &Path,
    database: Option<&str>,
    extra_args: &[&str],
) -> (Child, u16, String) {
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
        .args(extra_args)
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
    (child, port, token.trim().to_owned())
}

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|value| value.parse().unwrap())
        .unwrap_or(default)
}

/// A throwaway database on the PostgreSQL server at `admin_url`, dropped
/// after `body`.
pub fn with_postgres(admin_url: &str, body: impl FnOnce(&str)) {
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
