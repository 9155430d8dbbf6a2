//! The cost of classifying a connection (BENCHMARKS.md "Caller context"):
//! `Caller::of_socket` — peer credentials, pidfd, `/proc` through a
//! directory handle, records, classification — on real Unix socket
//! connections. Goal: at most 100 µs.
//!
//! Two peers: this process itself (no login: the common service case), and
//! a child that claims a login by setting its unset loginuid (the audit
//! path: user lookup, utmp, parent walk, then "not backed: ignored").
//! Run with `cargo bench -p openwua-agent --bench caller`.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openwua_agent::caller::{Caller, CallerPolicy};

const ITERATIONS: usize = 5_000;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let policy = CallerPolicy::default();

    // Warm up (NSS, page cache).
    for _ in 0..100 {
        let _client = UnixStream::connect(&path).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        std::hint::black_box(Caller::of_socket(&server, &policy).expect("caller"));
    }

    let mut times = Vec::with_capacity(ITERATIONS);
    let mut class = None;
    for _ in 0..ITERATIONS {
        let _client = UnixStream::connect(&path).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let caller = Caller::of_socket(&server, &policy).expect("caller");
        times.push(start.elapsed());
        class = Some(caller.context.class);
    }
    report("this process (no login)", class, &mut times);

    // A child that set its own loginuid: connects ITERATIONS times, each
    // time waiting until the bench closes the connection.
    let script = format!(
        "import socket\nfor _ in range({}):\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({:?})\n    s.recv(1)\n    s.close()\n",
        ITERATIONS + 100,
        path.display().to_string()
    );
    let mut child = match Command::new("sh")
        .args([
            "-c",
            "echo 1000 > /proc/self/loginuid 2>/dev/null; exec python3 -",
        ])
        .stdin(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            println!("no child peer ({error}); skipped the claimed-login case");
            return;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script");
    let mut times = Vec::with_capacity(ITERATIONS);
    let mut class = None;
    for round in 0..ITERATIONS + 100 {
        let (server, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let caller = Caller::of_socket(&server, &policy).expect("caller");
        let elapsed = start.elapsed();
        if round >= 100 {
            times.push(elapsed);
            class = Some(caller.context.class);
        }
    }
    let _ = child.wait();
    report("a child that set its loginuid", class, &mut times);
}

fn report(what: &str, class: Option<openwua_model::caller::CallerClass>, times: &mut [Duration]) {
    times.sort();
    let at = |fraction: f64| {
        let index = ((times.len() as f64 * fraction) as usize).min(times.len() - 1);
        times[index].as_secs_f64() * 1e6
    };
    println!(
        "caller context, {what}: {} connections, class {}: median {:.1} µs, p99 {:.1} µs, fastest {:.1} µs",
        times.len(),
        class.map_or("?", |class| class.as_str()),
        at(0.5),
        at(0.99),
        at(0.0)
    );
}
