//! Fixtures shared by the CLI's integration tests.

#![allow(dead_code)] // Each test binary uses a different part.

pub mod sessions;

use std::io::Write as _;

/// Says that `test` cannot run here and why, so a skip is never silent: a
/// line in `$OPENWUA_SKIP_LOG`, which `scripts/test` lists at the end, and
/// a failure under `CI=true` (CI must run everything). The agent's
/// tests have the same helper; a crate for 20 lines is not worth it.
pub fn skip(test: &str, reason: &str) {
    let name = format!(
        "{} {}::{test}",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_CRATE_NAME")
    );
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
