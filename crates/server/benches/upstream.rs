//! Upstream sync of a real Debian index (issue 15's figure; goal ≤ 10 s
//! cold, ≤ 1 s when nothing changed).
//!
//! `cargo bench -p openwua-server --bench upstream` needs this machine's
//! apt lists of Debian bookworm (`apt-get update` with
//! `deb http://deb.debian.org/debian bookworm main`): it lays out a mirror
//! in a temporary directory from `/var/lib/apt/lists` — the `InRelease`
//! as Debian signed it, and `main/binary-amd64/Packages` (apt keeps it
//! lz4-compressed; it is decompressed and checked against the Release) at
//! its path and by hash — serves it on 127.0.0.1, starts the release
//! `wua-server` (SQLite) as a child, adds the upstream with Debian's
//! archive keyring, and times `POST /api/v1/upstreams/bookworm/sync`
//! twice: cold (fetch, gpgv, verify, parse, map, publish every update),
//! and again with nothing changed. `UPSTREAM_BENCH_LISTS` names another
//! lists directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use openwua_apt::compressed::{self, Compression};
use openwua_testkit::debrepo::Server as Mirror;
use serde_json::Value;
use sha2::{Digest, Sha256};

// Shared with the other benches, which use the rest of it.
#[allow(dead_code)]
mod support;
use support::spawn_server;

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const PREFIX: &str = "deb.debian.org_debian_dists_bookworm_";

fn main() {
    let lists = PathBuf::from(
        std::env::var("UPSTREAM_BENCH_LISTS").unwrap_or_else(|_| "/var/lib/apt/lists".into()),
    );
    let inrelease = lists.join(format!("{PREFIX}InRelease"));
    let packages = lists.join(format!("{PREFIX}main_binary-amd64_Packages.lz4"));
    if !inrelease.exists() || !packages.exists() || !Path::new(KEYRING).exists() {
        eprintln!(
            "upstream bench skipped: needs {} and {} (apt-get update with Debian bookworm main) and {KEYRING}",
            inrelease.display(),
            packages.display()
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mirror_root = work.path().join("mirror");
    let dist = mirror_root.join("dists/bookworm");
    let binary = dist.join("main/binary-amd64");
    std::fs::create_dir_all(binary.join("by-hash/SHA256")).unwrap();
    std::fs::copy(&inrelease, dist.join("InRelease")).unwrap();
    let list = compressed::read_list(&packages, Compression::Lz4).unwrap();
    let digest = hex::encode(Sha256::digest(&list.bytes));
    assert_eq!(
        digest,
        list.sha256.to_string(),
        "the list does not hash as read"
    );
    std::fs::write(binary.join("Packages"), &list.bytes).unwrap();
    std::fs::hard_link(
        binary.join("Packages"),
        binary.join("by-hash/SHA256").join(&digest),
    )
    .unwrap();
    let packages_count = list
        .bytes
        .split(|&byte| byte == b'\n')
        .filter(|line| line.starts_with(b"Package: "))
        .count();
    let mirror = Mirror::serve_directory(&mirror_root);

    let data_dir = work.path().join("data");
    let (mut child, port, token) = spawn_server(&data_dir, None, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let keyring = std::fs::read(KEYRING).unwrap();
    let spec = serde_json::json!({
        "name": "bookworm",
        "url": mirror.url(),
        "suites": ["bookworm"],
        "components": ["main"],
        "architectures": ["amd64"],
        "keyring": hex::encode(keyring),
    });
    let mut added = agent
        .post(format!("{base}/api/v1/upstreams"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(serde_json::to_vec(&spec).unwrap().as_slice())
        .unwrap();
    assert_eq!(
        added.status(),
        201,
        "{}",
        added.body_mut().read_to_string().unwrap()
    );
    let sync = || -> (f64, Value) {
        let started = Instant::now();
        let mut response = agent
            .post(format!("{base}/api/v1/upstreams/bookworm/sync"))
            .header("authorization", format!("Bearer {token}"))
            .send_empty()
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let body = response.body_mut().read_to_string().unwrap();
        let report: Value = serde_json::from_str(&body).unwrap();
        assert!(response.status().is_success(), "{report}");
        (seconds, report)
    };
    let (cold, report) = sync();
    println!(
        "upstream sync, Debian bookworm main amd64 ({packages_count} packages, {} MB index): \
         cold {cold:.2} s ({} updates published, catalog version {})",
        list.bytes.len() / 1_000_000,
        report["added"],
        report["catalogVersion"]
    );
    let (unchanged, report) = sync();
    assert_eq!(report["releaseUnchanged"], true, "{report}");
    println!("upstream sync, nothing changed: {unchanged:.3} s");
    let _ = child.kill();
    let _ = child.wait();
}
