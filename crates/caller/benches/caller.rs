//! The cost of classifying a connection (BENCHMARKS.md "Caller context"):
//! `Caller::of_socket` — peer credentials, pidfd, `/proc` through a
//! directory handle, records, classification — on real Unix socket
//! connections. Goal: at most 100 µs.
//!
//! Three peers: this process itself (no login: the common service case), a
//! child that claims a login by setting its unset loginuid (the audit path:
//! user lookup, utmp, parent walk, then "not backed: ignored"), and, as
//! root, a real `login -f root` on a pty (attested by utmp, terminal
//! verified: the interactive path, the longest).
//! Run with `cargo bench -p openwua-caller --bench caller`.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openwua_caller::{Caller, CallerSettings};

const ITERATIONS: usize = 5_000;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let settings = CallerSettings::default();

    // Warm up (NSS, page cache).
    for _ in 0..100 {
        let _client = UnixStream::connect(&path).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        std::hint::black_box(
            Caller::of_socket(&server, &settings, |uid, _, _| uid == 0).expect("caller"),
        );
    }

    let mut times = Vec::with_capacity(ITERATIONS);
    let mut class = None;
    for _ in 0..ITERATIONS {
        let _client = UnixStream::connect(&path).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let caller = Caller::of_socket(&server, &settings, |uid, _, _| uid == 0).expect("caller");
        times.push(start.elapsed());
        class = Some(caller.context.class);
    }
    report("this process (no login)", class, &mut times);

    // A child that set its own loginuid: connects until the bench has
    // timed enough, each time waiting until the bench closes the connection.
    let client = dir.path().join("client.py");
    std::fs::write(
        &client,
        format!(
            "import socket\nfor _ in range({}):\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({:?})\n    s.recv(1)\n    s.close()\n",
            ITERATIONS + 100,
            path.display().to_string()
        ),
    )
    .expect("the client script");
    let claimed = format!(
        "echo 1000 > /proc/self/loginuid 2>/dev/null; exec python3 {}",
        client.display()
    );
    peer(
        "a child that set its loginuid",
        Command::new("sh").args(["-c", &claimed]),
        None,
        &listener,
        &settings,
    );

    // A real login: `login -f root` on a pty of script's (PAM sets the
    // loginuid, login writes utmp), whose shell runs the client. The full
    // path: utmp's live process, the parent walk up to login, the
    // terminal's owner and line.
    if !nix::unistd::geteuid().is_root() {
        println!("not root: skipped the login case (login -f needs root)");
        return;
    }
    peer(
        "a login session at its terminal",
        Command::new("script").args(["-qfec", "login -f root", "/dev/null"]),
        Some(format!("exec python3 {}\n", client.display())),
        &listener,
        &settings,
    );
}

/// Starts `command` (which runs the client script, typed into its standard
/// input when `typed` is given), classifies its connections and reports.
fn peer(
    what: &str,
    command: &mut Command,
    typed: Option<String>,
    listener: &UnixListener,
    settings: &CallerSettings,
) {
    let mut child = match command.stdin(Stdio::piped()).stdout(Stdio::null()).spawn() {
        Ok(child) => child,
        Err(error) => {
            println!("{what}: not started ({error}); skipped");
            return;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(line) = typed {
        stdin.write_all(line.as_bytes()).expect("typed input");
    }
    let mut times = Vec::with_capacity(ITERATIONS);
    let mut class = None;
    for round in 0..ITERATIONS + 100 {
        let (server, _) = listener.accept().expect("accept");
        let start = Instant::now();
        let caller = Caller::of_socket(&server, settings, |uid, _, _| uid == 0).expect("caller");
        let elapsed = start.elapsed();
        if round >= 100 {
            times.push(elapsed);
            class = Some(caller.context.class);
        }
    }
    drop(stdin);
    let _ = child.wait();
    report(what, class, &mut times);
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
