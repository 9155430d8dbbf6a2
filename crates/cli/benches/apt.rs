//! The apt service's figures (BENCHMARKS.md, issue 13) on the host's real
//! apt lists and dpkg database, read-only: a cold sync (`AddAptService`
//! with apt root `/` into a fresh agent) and `wua search`'s default
//! criteria through the socket, against `apt list --upgradable`. Run with
//! `cargo bench -p openwua-cli --bench apt`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openwua_agent::{Background, Config};
use openwua_client::blocking::UpdateSession;

const ROUNDS: usize = 21;
const CRITERIA: &str = "IsInstalled=0 and IsHidden=0";

/// Best and median of `ROUNDS` runs of `run`, after 2 to warm up.
fn time(mut run: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..2 {
        run();
    }
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[ROUNDS / 2])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn main() {
    if !Path::new("/var/lib/apt/lists").is_dir() || !Path::new("/var/lib/dpkg/status").is_file() {
        println!("no apt lists or dpkg database on this machine: nothing to measure");
        return;
    }
    println!("load average before: {}", load_average());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = Config {
        owner_is_admin: true,
        ..Config::under(dir.path())
    };
    let agent = Background::start(config).expect("the agent starts");
    let socket = agent.socket().to_owned();
    let session = UpdateSession::connect(&socket).expect("the client library connects");

    let started = Instant::now();
    let added = session
        .create_update_service_manager()
        .add_apt_service(Some("Debian"), Some(Path::new("/")), true)
        .expect("the host's apt lists sync");
    let cold = started.elapsed();
    println!(
        "cold sync (AddAptService, apt root /, fresh state dir) through the client library: \
         {cold:.1?}, {} updates (goal <= 1 s)",
        added.sync.added
    );

    let searcher = session.create_update_searcher();
    let found = searcher.search(CRITERIA).expect("a search").updates.len();
    let (library_best, library_median) = time(|| {
        searcher.search(CRITERIA).expect("a search");
    });
    let wua = env!("CARGO_BIN_EXE_wua");
    let (cli_best, cli_median) = time(|| {
        let status = Command::new(wua)
            .arg("--socket")
            .arg(&socket)
            .arg("search")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("wua runs");
        assert!(status.success(), "wua search failed: {status}");
    });
    let (apt_best, apt_median) = time(|| {
        let status = Command::new("apt")
            .args(["list", "--upgradable"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("apt runs");
        assert!(status.success(), "apt list failed: {status}");
    });
    println!("search {CRITERIA:?}: {found} updates; best / median of {ROUNDS}:");
    println!("  openwua-client UpdateSearcher::search: {library_best:.1?} / {library_median:.1?}");
    println!("  wua search (exec, connect, search, print): {cli_best:.1?} / {cli_median:.1?}");
    println!("  apt list --upgradable >/dev/null: {apt_best:.1?} / {apt_median:.1?}");
    let ratio = |ours: Duration, theirs: Duration| theirs.as_secs_f64() / ours.as_secs_f64();
    println!(
        "  apt / client library: {:.1}x best, {:.1}x median; apt / wua: {:.1}x best, {:.1}x median (goal >= 10x)",
        ratio(library_best, apt_best),
        ratio(library_median, apt_median),
        ratio(cli_best, apt_best),
        ratio(cli_median, apt_median),
    );
    println!("load average after: {}", load_average());
}
