//! Reads, verifies and parses the host's apt lists, then scans the host,
//! and times apt's own reading of the same lists beside it.
//!
//! `cargo bench -p openwua-apt --bench parse`. Prints figures; no pass/fail.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openwua_apt::{AptPaths, packages, read_verified_lists, scan_machine};

const ROUNDS: u32 = 5;

fn best<T>(mut run: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let value = run();
        best = best.min(start.elapsed());
        last = Some(value);
    }
    (best, last.expect("ROUNDS > 0"))
}

fn main() {
    let paths = AptPaths::new("/".as_ref(), "/var/lib/dpkg".as_ref());
    let now = jiff::Timestamp::now();
    let (read_time, verified) = best(|| read_verified_lists(&paths, now).expect("host lists"));
    if verified.lists.is_empty() {
        println!("no apt lists on this host (run apt-get update); nothing to measure");
        return;
    }
    let bytes: usize = verified.lists.iter().map(|list| list.text.len()).sum();
    let (parse_time, count) = best(|| {
        verified
            .lists
            .iter()
            .map(|list| packages::parse_packages(&list.text).expect("parses").len())
            .sum::<usize>()
    });
    let (scan_time, scan) = best(|| scan_machine(&paths, now).expect("scan"));
    let per_second = count as f64 / (read_time + parse_time).as_secs_f64();
    println!(
        "lists: {} files, {:.1} MB decompressed, {count} packages",
        verified.lists.len(),
        bytes as f64 / 1e6
    );
    println!("read + decompress + verify (SHA-256): {read_time:.2?}");
    println!("parse Packages:                        {parse_time:.2?}");
    println!("packages/s (read+verify+parse):        {per_second:.0}");
    println!(
        "scan_machine (+ dpkg status, mapping): {scan_time:.2?} -> {} revisions",
        scan.revisions.len()
    );
    // apt's equivalent: read every list it has and print every package
    // (`apt-cache dumpavail`), from its binary cache (pkgcache.bin, which
    // apt rebuilds from the lists when they change).
    let (apt_time, ok) = best(|| {
        Command::new("apt-cache")
            .arg("dumpavail")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if ok {
        println!("apt-cache dumpavail >/dev/null:        {apt_time:.2?}");
    }
}
