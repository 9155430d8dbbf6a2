//! Content download throughput: `Fetcher::fetch` against `curl` for the same
//! 1 GiB file from the same loopback HTTP server (which sends with
//! `std::io::copy`, i.e. sendfile). Prints both medians and the ratio; the
//! goal is ours/curl ≥ 0.9.
//!
//! `cargo bench -p openwua-agent --bench fetch` (needs `curl` on PATH).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use openwua_agent::fetch::{FetchRequest, FetchSettings, Fetcher};
use openwua_model::update::Sha256Digest;
use sha2::{Digest, Sha256};

const SIZE: u64 = 1 << 30;
const RUNS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source.bin");
    let sha256 = write_source(&source);
    let port = serve(source.clone());
    let url = format!("http://127.0.0.1:{port}/source.bin");
    println!("fetch: 1 GiB over loopback, {RUNS} runs each");

    let curl_out = dir.path().join("curl.out");
    let mut curl = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = Command::new("curl")
            .args(["-s", "-o"])
            .arg(&curl_out)
            .arg(&url)
            .status()
            .expect("run curl (apt-get install -y curl)");
        let elapsed = started.elapsed();
        assert!(status.success(), "curl failed: {status}");
        assert_eq!(std::fs::metadata(&curl_out).expect("curl.out").len(), SIZE);
        std::fs::remove_file(&curl_out).expect("remove curl.out");
        curl.push(elapsed);
    }

    // curl doing the same work as the fetcher: keep, hash and fsync.
    let mut curl_equal = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg("curl -s \"$1\" | tee \"$2\" | sha256sum >/dev/null && sync \"$2\"")
            .arg("sh")
            .arg(&url)
            .arg(&curl_out)
            .status()
            .expect("run curl | tee | sha256sum");
        let elapsed = started.elapsed();
        assert!(status.success(), "curl | tee | sha256sum failed: {status}");
        std::fs::remove_file(&curl_out).expect("remove curl.out");
        curl_equal.push(elapsed);
    }

    let fetcher = Fetcher::new(FetchSettings::default());
    let destination = dir.path().join("fetched.bin");
    let mut ours = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        fetcher
            .fetch(
                &FetchRequest {
                    url: &url,
                    size: SIZE,
                    sha256,
                    destination: &destination,
                },
                &mut |_| {},
                &AtomicBool::new(false),
            )
            .expect("fetch");
        ours.push(started.elapsed());
        std::fs::remove_file(&destination).expect("remove destination");
    }

    let curl = mib_per_second(median(&mut curl));
    let curl_equal = mib_per_second(median(&mut curl_equal));
    let ours = mib_per_second(median(&mut ours));
    println!("curl           {curl:8.0} MiB/s (median)");
    println!("curl | tee | sha256sum, sync {curl_equal:8.0} MiB/s (median, the same work as ours)");
    println!("Fetcher::fetch {ours:8.0} MiB/s (median, hashed and fsynced)");
    println!("ratio ours/curl {:.2} (goal >= 0.90)", ours / curl);
    println!(
        "ratio ours/(curl doing the same work) {:.2}",
        ours / curl_equal
    );

    // The work curl does not do, to read the ratio against.
    let block = vec![0x5Au8; 1 << 20];
    let started = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..SIZE / block.len() as u64 {
        hasher.update(&block);
    }
    std::hint::black_box(hasher.finalize());
    let hashing = started.elapsed();
    let synced = dir.path().join("synced.bin");
    let mut file = File::create(&synced).expect("create");
    for _ in 0..SIZE / block.len() as u64 {
        file.write_all(&block).expect("write");
    }
    let started = Instant::now();
    file.sync_all().expect("fsync");
    let fsync = started.elapsed();
    println!(
        "extra work per GiB: SHA-256 {:.2} s of CPU, fsync {:.2} s; curl's median run {:.2} s",
        hashing.as_secs_f64(),
        fsync.as_secs_f64(),
        1024.0 / curl
    );
}

/// Writes SIZE pseudo-random bytes; returns their digest.
fn write_source(path: &Path) -> Sha256Digest {
    let mut file = File::create(path).expect("create source");
    let mut hasher = Sha256::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..SIZE / block.len() as u64 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        hasher.update(&block);
        file.write_all(&block).expect("write source");
    }
    file.sync_all().expect("sync source");
    Sha256Digest(hasher.finalize().into())
}

/// Serves `path` on 127.0.0.1, one thread per connection, Range honoured.
fn serve(path: std::path::PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let path = path.clone();
            std::thread::spawn(move || answer(stream, &path));
        }
    });
    port
}

fn answer(mut stream: TcpStream, path: &Path) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut start = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line
            .split_once(':')
            .filter(|(name, _)| name.eq_ignore_ascii_case("range"))
            .and_then(|(_, value)| value.trim().strip_prefix("bytes="))
            .and_then(|value| value.strip_suffix('-'))
        {
            start = value.parse().unwrap_or(0);
        }
    }
    let mut file = File::open(path).expect("open source");
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{SIZE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            SIZE - 1,
            SIZE - start
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n")
    };
    file.seek(SeekFrom::Start(start)).expect("seek");
    if stream.write_all(head.as_bytes()).is_ok() {
        // sendfile(2) underneath.
        let _ = std::io::copy(&mut file, &mut stream);
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn mib_per_second(time: Duration) -> f64 {
    SIZE as f64 / (1024.0 * 1024.0) / time.as_secs_f64()
}
