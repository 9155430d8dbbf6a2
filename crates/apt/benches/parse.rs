//! Reads, verifies and parses the host's apt lists, then scans the host,
//! and times apt's own reading of the same lists beside it.
//!
//! `cargo bench -p openwua-apt --bench parse`. Prints figures; no pass/fail.
//! Each figure is the best of a few rounds, as wall time and as CPU time
//! (the test machine is shared, so wall time varies with its load).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openwua_apt::{AptPaths, packages, read_verified_lists, scan_machine};

const ROUNDS: u32 = 5;

/// This thread's time on a CPU (`/proc/thread-self/schedstat`, in ns).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// CPU time of waited-for children (`/proc/self/stat` cutime + cstime).
fn children_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| {
            let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
            // Fields 3 (state) onwards; cutime and cstime are 16 and 17.
            let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
            Some(field(16)? + field(17)?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct Timing {
    wall: Duration,
    cpu: Duration,
}

fn best<T>(cpu: fn() -> Duration, mut run: impl FnMut() -> T) -> (Timing, T) {
    let mut timing = Timing {
        wall: Duration::MAX,
        cpu: Duration::MAX,
    };
    let mut last = None;
    for _ in 0..ROUNDS {
        let (start, start_cpu) = (Instant::now(), cpu());
        let value = run();
        timing.wall = timing.wall.min(start.elapsed());
        timing.cpu = timing.cpu.min(cpu().saturating_sub(start_cpu));
        last = Some(value);
    }
    (timing, last.expect("ROUNDS > 0"))
}

fn row(what: &str, timing: &Timing) {
    println!(
        "{what:<44} wall {:>9.1?}  cpu {:>9.1?}",
        timing.wall, timing.cpu
    );
}

fn main() {
    let paths = AptPaths::new("/".as_ref(), "/var/lib/dpkg".as_ref());
    let now = jiff::Timestamp::now();
    let (read, verified) = best(thread_cpu, || {
        read_verified_lists(&paths, now).expect("host lists")
    });
    if verified.lists.is_empty() {
        println!("no apt lists on this host (run apt-get update); nothing to measure");
        return;
    }
    let bytes: usize = verified.lists.iter().map(|list| list.text.len()).sum();
    let (parse, count) = best(thread_cpu, || {
        verified
            .lists
            .iter()
            .map(|list| packages::parse_packages(&list.text).expect("parses").len())
            .sum::<usize>()
    });
    let (scan, result) = best(thread_cpu, || scan_machine(&paths, now).expect("scan"));
    println!(
        "lists: {} files, {:.1} MB decompressed, {count} packages",
        verified.lists.len(),
        bytes as f64 / 1e6
    );
    row("read + decompress + verify (SHA-256)", &read);
    row("parse Packages", &parse);
    println!(
        "packages/s, read+verify+parse (cpu):         {:.0}",
        count as f64 / (read.cpu + parse.cpu).as_secs_f64()
    );
    row(
        &format!("scan_machine ({} revisions)", result.revisions.len()),
        &scan,
    );
    // apt's nearest equivalent: every package of every list it has, printed
    // (`apt-cache dumpavail`), from its binary cache (pkgcache.bin, which
    // apt rebuilds from the lists when they change).
    let (apt, ok) = best(children_cpu, || {
        Command::new("apt-cache")
            .arg("dumpavail")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    if ok {
        row("apt-cache dumpavail >/dev/null", &apt);
    }
}
