//! The content fetcher against a real HTTP/1.1 server on 127.0.0.1 that
//! misbehaves on request: cuts, short bodies, ignored ranges, errors, drips.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::http::{Behaviour, Server, payload};
use openwua_agent::error::AgentError;
use openwua_agent::fetch::{FetchEvent, FetchRequest, FetchSettings, Fetcher};
use openwua_model::hresult::{self, HResult};
use openwua_model::update::Sha256Digest;
use sha2::{Digest, Sha256};

fn digest(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(bytes).into())
}

fn fetcher() -> Fetcher {
    Fetcher::new(FetchSettings {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        retries: 3,
    })
}

fn part_of(destination: &Path) -> PathBuf {
    let mut name = destination.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Fetches `url` to `destination`, expecting `expected`'s size and digest;
/// returns the result and the progress events.
fn fetch(
    url: &str,
    expected: &[u8],
    destination: &Path,
) -> (Result<(), AgentError>, Vec<FetchEvent>) {
    let mut events = Vec::new();
    let result = fetcher().fetch(
        &FetchRequest {
            url,
            size: expected.len() as u64,
            sha256: digest(expected),
            destination,
        },
        &mut |event| events.push(event),
        &AtomicBool::new(false),
    );
    (result, events)
}

fn code(result: Result<(), AgentError>) -> HResult {
    match result {
        Ok(()) => panic!("expected an error"),
        Err(error) => {
            assert!(!error.detail.is_empty());
            error.hresult
        }
    }
}

/// The destination holds `expected`, with mode 0700 (the agent's, run by
/// installers as root) and no part beside it.
fn assert_fetched(destination: &Path, expected: &[u8]) {
    let bytes = std::fs::read(destination).expect("destination exists");
    assert!(bytes == expected, "destination bytes differ");
    let mode = std::fs::metadata(destination)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(!part_of(destination).exists(), "the part is left behind");
}

const SIZE: usize = 300 * 1024 + 17;

#[test]
fn a_plain_download_lands_verified_with_mode_0700() {
    let data = payload(SIZE);
    let server = Server::start(Arc::clone(&data), Behaviour::Healthy);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let (result, events) = fetch(&server.url(), &data, &destination);
    result.expect("fetch");
    assert_fetched(&destination, &data);
    assert_eq!(server.ranges(), vec![None]);
    assert_eq!(events.last(), Some(&FetchEvent::Bytes(SIZE as u64)));
    assert!(!events.contains(&FetchEvent::Verifying));
    // Counts only grow.
    let counts: Vec<u64> = events
        .iter()
        .filter_map(|event| match event {
            FetchEvent::Bytes(count) => Some(*count),
            FetchEvent::Verifying => None,
        })
        .collect();
    assert!(counts.is_sorted());
}

#[test]
fn a_truncated_response_resumes_with_a_range() {
    let data = payload(SIZE);
    let cut = 100_000;
    let server = Server::start(Arc::clone(&data), Behaviour::TruncateFirst(cut));
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let (result, _) = fetch(&server.url(), &data, &destination);
    result.expect("fetch");
    assert_fetched(&destination, &data);
    assert_eq!(server.ranges(), vec![None, Some(format!("bytes={cut}-"))]);
}

#[test]
fn cuts_on_every_attempt_fail_then_a_healthy_server_resumes_from_the_cut() {
    let data = payload(SIZE);
    let cut = SIZE / 2;
    let broken = Server::start(Arc::clone(&data), Behaviour::CutAt(cut));
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let (result, _) = fetch(&broken.url(), &data, &destination);
    assert_eq!(code(result), hresult::WU_E_PT_ENDPOINT_DISCONNECTED);
    assert!(!destination.exists());
    let part = std::fs::read(part_of(&destination)).expect("the part is kept");
    assert!(
        part == data[..cut],
        "the part holds the bytes before the cut"
    );
    // One request and three reconnections.
    let ranges = broken.ranges();
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(
        ranges[1..]
            .iter()
            .all(|range| range.as_deref() == Some(&*format!("bytes={cut}-")))
    );

    let healthy = Server::start(Arc::clone(&data), Behaviour::Healthy);
    let (result, events) = fetch(&healthy.url(), &data, &destination);
    result.expect("fetch");
    assert_fetched(&destination, &data);
    assert_eq!(healthy.ranges(), vec![Some(format!("bytes={cut}-"))]);
    assert_eq!(events.first(), Some(&FetchEvent::Verifying));
    assert_eq!(events.get(1), Some(&FetchEvent::Bytes(cut as u64)));
}

#[test]
fn wrong_bytes_leave_nothing_behind() {
    let data = payload(SIZE);
    let mut altered = data.as_ref().clone();
    altered[SIZE / 3] ^= 1;
    let server = Server::start(Arc::new(altered), Behaviour::Healthy);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let (result, _) = fetch(&server.url(), &data, &destination);
    assert_eq!(code(result), hresult::WU_E_DM_INCORRECTFILEHASH);
    assert!(!destination.exists());
    assert!(!part_of(&destination).exists());
}

#[test]
fn more_bytes_than_promised_leave_nothing_behind() {
    let data = payload(SIZE);
    let server = Server::start(Arc::clone(&data), Behaviour::Healthy);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let (result, _) = fetch(&server.url(), &data[..SIZE - 1], &destination);
    assert_eq!(code(result), hresult::WU_E_DM_INCORRECTFILEHASH);
    assert!(!destination.exists());
    assert!(!part_of(&destination).exists());
}

#[test]
fn http_statuses_keep_their_codes() {
    let data = payload(SIZE);
    for (status, expected) in [
        (404, hresult::WU_E_PT_HTTP_STATUS_NOT_FOUND),
        (500, hresult::WU_E_PT_HTTP_STATUS_SERVER_ERROR),
        (403, hresult::WU_E_PT_HTTP_STATUS_FORBIDDEN),
        (418, hresult::WU_E_PT_HTTP_STATUS_NOT_MAPPED),
    ] {
        let server = Server::start(Arc::clone(&data), Behaviour::Status(status));
        let dir = tempfile::tempdir().expect("tempdir");
        let destination = dir.path().join("file.bin");
        let (result, _) = fetch(&server.url(), &data, &destination);
        let error = result.expect_err("a status error");
        assert_eq!(error.hresult, expected, "{status}");
        assert!(error.detail.contains(&server.url()), "{}", error.detail);
        assert!(
            error.detail.contains(&status.to_string()),
            "{}",
            error.detail
        );
        assert!(!destination.exists());
        assert!(!part_of(&destination).exists(), "an empty part is left");
    }
}

#[test]
fn a_server_ignoring_ranges_starts_over() {
    let data = payload(SIZE);
    let server = Server::start(Arc::clone(&data), Behaviour::IgnoreRange);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    std::fs::write(part_of(&destination), &data[..SIZE / 2]).expect("write part");
    let (result, _) = fetch(&server.url(), &data, &destination);
    result.expect("fetch");
    assert_fetched(&destination, &data);
    assert_eq!(server.ranges(), vec![Some(format!("bytes={}-", SIZE / 2))]);
}

#[test]
fn an_existing_part_is_verified_and_only_the_rest_requested() {
    let data = payload(SIZE);
    let server = Server::start(Arc::clone(&data), Behaviour::Healthy);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let half = SIZE / 2;
    std::fs::write(part_of(&destination), &data[..half]).expect("write part");
    let (result, events) = fetch(&server.url(), &data, &destination);
    result.expect("fetch");
    assert_fetched(&destination, &data);
    assert_eq!(server.ranges(), vec![Some(format!("bytes={half}-"))]);
    assert_eq!(events[0], FetchEvent::Verifying);
    assert_eq!(events[1], FetchEvent::Bytes(half as u64));
    assert_eq!(events.last(), Some(&FetchEvent::Bytes(SIZE as u64)));
}

#[test]
fn a_part_longer_than_the_file_starts_over() {
    let data = payload(SIZE);
    let server = Server::start(Arc::clone(&data), Behaviour::Healthy);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    std::fs::write(part_of(&destination), vec![7; SIZE + 10]).expect("write part");
    let (result, _) = fetch(&server.url(), &data, &destination);
    result.expect("fetch");
    assert_fetched(&destination, &data);
    assert_eq!(server.ranges(), vec![None]);
}

#[test]
fn an_abort_stops_a_slow_download_and_keeps_the_part() {
    let data = payload(SIZE);
    let server = Server::start(Arc::clone(&data), Behaviour::Drip);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let abort = Arc::new(AtomicBool::new(false));
    let setter = Arc::clone(&abort);
    let started = Instant::now();
    let part = part_of(&destination);
    std::thread::spawn(move || {
        // Abort once bytes are in the part; on a timeout the part check
        // below fails.
        let deadline = Instant::now() + Duration::from_secs(30);
        openwua_testkit::wait_until(deadline, || {
            std::fs::metadata(&part).is_ok_and(|metadata| metadata.len() > 0)
        });
        setter.store(true, Ordering::Relaxed);
    });
    let result = fetcher().fetch(
        &FetchRequest {
            url: &server.url(),
            size: SIZE as u64,
            sha256: digest(&data),
            destination: &destination,
        },
        &mut |_| {},
        &abort,
    );
    assert_eq!(code(result), hresult::E_ABORT);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!destination.exists());
    let part = std::fs::read(part_of(&destination)).expect("the part is kept");
    assert!(!part.is_empty() && part.len() < SIZE);
    assert!(part == data[..part.len()]);
}

#[test]
fn a_refused_connection_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let data = payload(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    let (result, _) = fetch(&format!("http://127.0.0.1:{port}/x"), &data, &destination);
    assert_eq!(code(result), hresult::WU_E_PT_ENDPOINT_UNREACHABLE);
    assert!(!part_of(&destination).exists());
}

#[test]
fn bad_urls_are_invalid() {
    let data = payload(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    for url in [
        "ftp://example.com/x",
        "no-scheme",
        "http:///x",
        "file://host/x",
    ] {
        let (result, _) = fetch(url, &data, &destination);
        assert_eq!(code(result), hresult::WU_E_PT_INVALID_URL, "{url}");
    }
}

#[test]
fn file_urls_are_fetched_resumed_and_verified() {
    let data = payload(SIZE);
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source.bin");
    std::fs::write(&source, data.as_slice()).expect("write source");
    let url = format!("file://{}", source.display());

    let destination = dir.path().join("file.bin");
    let (result, _) = fetch(&url, &data, &destination);
    result.expect("fetch");
    assert_fetched(&destination, &data);

    let resumed = dir.path().join("resumed.bin");
    std::fs::write(part_of(&resumed), &data[..1000]).expect("write part");
    let (result, events) = fetch(&url, &data, &resumed);
    result.expect("fetch");
    assert_fetched(&resumed, &data);
    assert_eq!(events[0], FetchEvent::Verifying);

    let missing = format!("file://{}", dir.path().join("missing.bin").display());
    let other = dir.path().join("other.bin");
    let (result, _) = fetch(&missing, &data, &other);
    assert_eq!(code(result), hresult::WU_E_DM_URLNOTAVAILABLE);
    assert!(!other.exists());
    assert!(!part_of(&other).exists());
}

#[test]
fn an_existing_destination_needs_no_request() {
    let data = payload(SIZE);
    let server = Server::start(Arc::clone(&data), Behaviour::Healthy);
    let dir = tempfile::tempdir().expect("tempdir");
    let destination = dir.path().join("file.bin");
    std::fs::write(&destination, b"already here").expect("write");
    let (result, events) = fetch(&server.url(), &data, &destination);
    result.expect("fetch");
    assert!(events.is_empty());
    assert_eq!(std::fs::read(&destination).expect("read"), b"already here");
    assert!(server.ranges().is_empty());
}

#[test]
fn a_full_disk_keeps_the_part_and_says_so() {
    if !common::is_root() {
        openwua_testkit::skip(
            "a_full_disk_keeps_the_part_and_says_so",
            "needs root to mount a small tmpfs",
        );
        return;
    }
    let data = payload(2 << 20);
    let server = Server::start(Arc::clone(&data), Behaviour::Healthy);
    let dir = tempfile::tempdir().expect("tempdir");
    // A 1 MiB file system for a 2 MiB file.
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("mount");
    assert!(status.success(), "mount tmpfs failed");
    let destination = dir.path().join("file.bin");
    let (result, _) = fetch(&server.url(), &data, &destination);
    let part_kept = part_of(&destination).exists();
    let _ = std::process::Command::new("umount")
        .arg(dir.path())
        .status();
    assert_eq!(code(result), openwua_model::hresult::ERROR_DISK_FULL);
    assert!(part_kept, "the part was not kept for resuming");
    assert!(!destination.exists());
}

/// The detail of a failed fetch of `url` promising `expected`.
fn failure_detail(url: &str, expected: &[u8], destination: &Path) -> (HResult, String) {
    let url = url.to_owned();
    let expected = expected.to_vec();
    let destination = destination.to_owned();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(fetch(&url, &expected, &destination).0);
    });
    let result = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("the fetch hung");
    let error = result.expect_err("the fetch should fail");
    (error.hresult, error.detail)
}

#[test]
fn a_file_url_tells_nothing_about_a_file_and_reads_only_regular_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = payload(1000);
    // Root's alone, and not what the catalog promises.
    let secret = dir.path().join("secret");
    let secret_bytes = vec![b's'; 777];
    std::fs::write(&secret, &secret_bytes).expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let url = format!("file://{}", secret.display());
    let (code, detail) = failure_detail(&url, &expected, &dir.path().join("a"));
    assert_eq!(code, hresult::WU_E_DM_INCORRECTFILEHASH);
    assert!(!detail.contains("777"), "{detail}");

    // The promised size, other bytes: the digest is not told either.
    let same_size = vec![b's'; expected.len()];
    std::fs::write(&secret, &same_size).expect("write");
    let (code, detail) = failure_detail(&url, &expected, &dir.path().join("b"));
    assert_eq!(code, hresult::WU_E_DM_INCORRECTFILEHASH);
    assert!(
        !detail.contains(&digest(&same_size).to_string()),
        "{detail}"
    );

    // A FIFO nobody writes to, and a symlink to the right bytes: refused,
    // at once.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).expect("mkfifo");
    let (code, _) = failure_detail(
        &format!("file://{}", fifo.display()),
        &expected,
        &dir.path().join("c"),
    );
    assert_eq!(code, hresult::WU_E_DM_URLNOTAVAILABLE);
    let right = dir.path().join("right");
    std::fs::write(&right, expected.as_slice()).expect("write");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&right, &link).expect("symlink");
    let (code, _) = failure_detail(
        &format!("file://{}", link.display()),
        &expected,
        &dir.path().join("d"),
    );
    assert_eq!(code, hresult::WU_E_DM_URLNOTAVAILABLE);
    assert!(!dir.path().join("d").exists());
}
