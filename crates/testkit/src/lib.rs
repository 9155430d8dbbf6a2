//! What the workspace's integration tests share (a dev-dependency only).
//!
//! [`skip`] makes a test that cannot run here say so by name: a line in
//! `$OPENWUA_SKIP_LOG`, which `scripts/test` lists at the end of the run,
//! and a failure under `CI=true`, where everything must run.
//! [`wait_until`] waits for something a test can observe instead of
//! sleeping for a guessed time. [`debrepo`] builds, signs and serves a
//! real Debian repository and a sandboxed apt to install from it.

#![deny(missing_docs)]

pub mod debrepo;

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Records that `test` cannot run here and why; panics under `CI=true`.
pub fn skip(test: &str, reason: &str) {
    let name = format!("{} {}::{test}", package(), test_binary());
    if let Some(log) = std::env::var_os("OPENWUA_SKIP_LOG") {
        // One appended write per line keeps concurrent tests' lines whole.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(format!("{name}: {reason}\n").as_bytes()))
            .unwrap_or_else(|error| panic!("OPENWUA_SKIP_LOG {log:?}: {error}"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name} cannot run here ({reason}); under CI=true that is a failure"
    );
    eprintln!("SKIPPED {name}: {reason}");
}

/// Polls `condition` until it holds (true) or `deadline` passes (false).
pub fn wait_until(deadline: Instant, mut condition: impl FnMut() -> bool) -> bool {
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The package under test: cargo sets it when it runs a test binary.
fn package() -> String {
    std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "?".to_owned())
}

/// The test binary's name without cargo's hash (`varlink-0123abcd` →
/// `varlink`).
fn test_binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("?");
    stem.rsplit_once('-')
        .map_or(stem, |(name, _)| name)
        .to_owned()
}
