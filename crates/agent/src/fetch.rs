//! The content fetcher: one file from an `http://`, `https://` or `file://`
//! URL into the cache, resumable and verified.
//!
//! Bytes go to `<destination>.part`, hashed as they stream; only a part with
//! the catalog's size and SHA-256 is renamed to the destination, so a file
//! under its final name is always verified. A part left by a cut, an abort
//! or a killed agent is re-hashed and continued with a `Range` request.
//!
//! The socket (or source file) is read and hashed on a helper thread while
//! the calling thread writes, so hashing overlaps the disk and an abort is
//! seen within [`POLL`] even when the server has gone silent.
//! Behaviour and codes: `docs/download.md`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use openwua_model::hresult::{self, HResult};
use openwua_model::update::Sha256Digest;
use sha2::{Digest, Sha256};

use crate::applicability::{Follow, open_regular_file};
use crate::error::AgentError;

/// Bytes per chunk handed from the reader thread to the writer.
const CHUNK: usize = 1 << 20;
/// Bytes written between two early flushes to disk.
const FLUSH_STEP: u64 = 64 << 20;
/// Chunks in flight between the two threads.
const CHUNKS: usize = 4;
/// How often the writer looks at the abort flag while waiting for bytes, and
/// the longest the reader holds a partly filled chunk.
const POLL: Duration = Duration::from_millis(50);
/// Progress is reported at most once per this many bytes.
const PROGRESS_STEP: u64 = 64 * 1024;
/// Content files are run directly by the installers (as root), and are
/// nobody else's to read: see `Cache::prepare`.
const MODE: u32 = crate::cache::CONTENT_FILE_MODE;

/// What a caller hears about a `file://` source that is not the promised file.
const FILE_MISMATCH: &str =
    "the file does not match the catalog's size and SHA-256 (the agent's log has its own)";

/// The system's CA bundle (Debian's ca-certificates), trusted beside an
/// update server's own CA.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The largest CA file an update server's service may carry.
pub const MAX_CA_PEM_BYTES: usize = 64 * 1024;

/// The certificates of a CA file (PEM): at least one, nothing else
/// trusted. `E_INVALIDARG` for anything else.
pub fn parse_ca(ca_pem: &str) -> Result<Vec<ureq::tls::Certificate<'static>>, AgentError> {
    let invalid = |why: String| {
        AgentError::new(
            hresult::E_INVALIDARG,
            format!(
                "the CA file {why}; give a PEM file of the CA that signed the server's certificate"
            ),
        )
    };
    if ca_pem.len() > MAX_CA_PEM_BYTES {
        return Err(invalid(format!("is larger than {MAX_CA_PEM_BYTES} bytes")));
    }
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(ca_pem.as_bytes()) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => return Err(invalid("holds something other than certificates".into())),
            Err(error) => return Err(invalid(format!("is not PEM: {error}"))),
        }
    }
    if certificates.is_empty() {
        return Err(invalid("holds no certificate".into()));
    }
    Ok(certificates)
}

/// The system's roots; none if the bundle cannot be read (the service's
/// own CA is then the only one trusted).
fn system_roots() -> Vec<ureq::tls::Certificate<'static>> {
    let mut bytes = Vec::new();
    let read = File::open(SYSTEM_ROOTS).and_then(|file| file.take(8 << 20).read_to_end(&mut bytes));
    if let Err(error) = read {
        tracing::debug!("{SYSTEM_ROOTS}: {error}");
        return Vec::new();
    }
    ureq::tls::parse_pem(&bytes)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect()
}

/// How the fetcher talks to servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// Limit for establishing a connection (DNS, TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest the server may stay silent (headers or body) before the
    /// connection counts as stalled.
    pub read_timeout: Duration,
    /// Reconnections after a cut or a stall, per fetch, before it fails.
    pub retries: u32,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 3,
        }
    }
}

/// What a fetch reports while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchEvent {
    /// Re-hashing a partial file left by an earlier attempt.
    Verifying,
    /// Bytes of this file now on disk, counting a resumed prefix.
    Bytes(u64),
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest<'a> {
    /// Absolute `http://`, `https://` or `file://` URL.
    pub url: &'a str,
    /// The size the catalog promises.
    pub size: u64,
    /// The digest the catalog promises.
    pub sha256: Sha256Digest,
    /// Where the verified file ends up.
    pub destination: &'a Path,
}

/// Fetches content files; one HTTP agent (and its connection pool) shared by
/// every fetch. `Send + Sync`: fetches may run on several threads at once.
#[derive(Debug, Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
    settings: FetchSettings,
}

/// Where the bytes come from.
enum Source<'a> {
    Http,
    File(&'a Path),
}

/// Why one attempt ended without the whole file.
enum Stop {
    /// The connection was cut or stalled: reconnect if retries remain.
    Cut(AgentError),
    /// The server sent something that invalidates the part: start over
    /// (costs a retry, so a confused server cannot loop us).
    Restart,
    /// Give up now.
    Fatal(AgentError),
}

/// The part file being written and what is known about it.
struct Part {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    written: u64,
    reported: u64,
}

impl Fetcher {
    /// A fetcher with these settings.
    pub fn new(settings: FetchSettings) -> Fetcher {
        Fetcher::with_roots(settings, ureq::tls::RootCerts::WebPki)
    }

    fn with_roots(settings: FetchSettings, roots: ureq::tls::RootCerts) -> Fetcher {
        let config = ureq::Agent::config_builder()
            // 4xx and 5xx come back as responses, so each keeps its own code.
            .http_status_as_error(false)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_per_read(Some(settings.read_timeout))
            // Fewer, larger socket reads: about 0.56 -> 0.7 of curl in the benchmark.
            .input_buffer_size(CHUNK)
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build();
        Fetcher {
            agent: ureq::Agent::new_with_config(config),
            settings,
        }
    }

    /// A fetcher with these settings that trusts the certificates of
    /// `ca_pem` (an update server's own CA) and the system's roots
    /// ([`SYSTEM_ROOTS`], when readable): for one service's requests.
    pub fn trusting(&self, ca_pem: &str) -> Result<Fetcher, AgentError> {
        let mut roots = parse_ca(ca_pem)?;
        roots.extend(system_roots());
        Ok(Fetcher::with_roots(
            self.settings.clone(),
            ureq::tls::RootCerts::new_with_certs(&roots),
        ))
    }

    /// The HTTP client (and its connection pool) the fetches share; update
    /// servers are talked to with it too.
    pub(crate) fn http(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Fetches one file. Blocking. Leaves `destination` in place only when
    /// its size and SHA-256 match; returns Ok(()) at once if it already
    /// exists. On failure a `.part` is kept when it can be resumed.
    pub fn fetch(
        &self,
        request: &FetchRequest<'_>,
        progress: &mut dyn FnMut(FetchEvent),
        abort: &AtomicBool,
    ) -> Result<(), AgentError> {
        let url = request.url;
        let source = parse_url(url)?;
        if fs::symlink_metadata(request.destination).is_ok() {
            return Ok(());
        }
        let part_path = part_path(request.destination);
        let mut part = open_part(url, &part_path, request.size, progress, abort)?;
        let result = self.fetch_into(request, &source, &mut part, progress, abort);
        match result {
            Ok(()) => part.finish(request, &source),
            Err(error) => {
                // An empty part resumes nothing; do not leave it behind.
                if part.written == 0 {
                    let _ = fs::remove_file(&part.path);
                }
                Err(error)
            }
        }
    }

    /// Runs attempts until the part holds `size` bytes.
    fn fetch_into(
        &self,
        request: &FetchRequest<'_>,
        source: &Source<'_>,
        part: &mut Part,
        progress: &mut dyn FnMut(FetchEvent),
        abort: &AtomicBool,
    ) -> Result<(), AgentError> {
        let mut retries = self.settings.retries;
        while part.written < request.size {
            if abort.load(Ordering::Relaxed) {
                return Err(aborted(request.url, part.written));
            }
            let outcome = match source {
                Source::Http => self.attempt_http(request, part, progress, abort),
                Source::File(path) => attempt_file(request, path, part, progress, abort),
            };
            match outcome {
                Ok(()) => {}
                Err(Stop::Fatal(error)) => return Err(error),
                Err(Stop::Cut(error)) => {
                    if retries == 0 {
                        return Err(error);
                    }
                    retries -= 1;
                    tracing::debug!(url = request.url, "{error}; reconnecting");
                }
                Err(Stop::Restart) => {
                    if retries == 0 {
                        return Err(AgentError::new(
                            hresult::WU_E_PT_HTTP_STATUS_NOT_MAPPED,
                            format!(
                                "{}: the server kept answering range requests inconsistently",
                                request.url
                            ),
                        ));
                    }
                    retries -= 1;
                    part.truncate(request.url)?;
                }
            }
        }
        Ok(())
    }

    /// One HTTP request for the bytes the part is missing.
    fn attempt_http(
        &self,
        request: &FetchRequest<'_>,
        part: &mut Part,
        progress: &mut dyn FnMut(FetchEvent),
        abort: &AtomicBool,
    ) -> Result<(), Stop> {
        let url = request.url;
        let mut call = self.agent.get(url);
        if part.written > 0 {
            call = call.header("Range", format!("bytes={}-", part.written));
        }
        let response = call.call().map_err(|error| request_error(url, error))?;
        let status = response.status().as_u16();
        match status {
            206 => {
                let range = response
                    .headers()
                    .get("content-range")
                    .and_then(|value| value.to_str().ok())
                    .and_then(parse_content_range);
                match range {
                    Some(start) if start == part.written => {}
                    _ => {
                        tracing::debug!(url, ?range, written = part.written, "unusable 206");
                        return Err(Stop::Restart);
                    }
                }
            }
            // The server ignored the range (or there was none): start over.
            200..=299 => part.truncate(url).map_err(Stop::Fatal)?,
            // The part does not fit the server's file: start over.
            416 if part.written > 0 => return Err(Stop::Restart),
            _ => return Err(Stop::Fatal(status_error(url, status))),
        }
        if let Some(length) = response
            .headers()
            .get("content-length")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            && part.written.saturating_add(length) > request.size
        {
            return Err(Stop::Fatal(part.discard(
                url,
                format!(
                    "the server sends {length} bytes after {}, more than the {} the catalog promises",
                    part.written, request.size
                ),
            )));
        }
        let reader = response.into_body().into_reader();
        pump(request, Box::new(reader), part, progress, abort, |error| {
            stream_error(url, error)
        })
    }
}

/// One pass over a `file://` source from the part's length on.
fn attempt_file(
    request: &FetchRequest<'_>,
    path: &Path,
    part: &mut Part,
    progress: &mut dyn FnMut(FetchEvent),
    abort: &AtomicBool,
) -> Result<(), Stop> {
    let url = request.url;
    // The agent reads as root: the caller learns only that it could not
    // use the file, not why (which would tell whether a file they may not
    // see exists); the reason goes to the agent's log.
    let unavailable = |error: io::Error| {
        tracing::warn!("{url}: cannot read {}: {error}", path.display());
        Stop::Fatal(AgentError::new(
            hresult::WU_E_DM_URLNOTAVAILABLE,
            format!(
                "{url}: the file cannot be used (missing, unreadable, a symlink or not a regular file); the agent's log says which"
            ),
        ))
    };
    let mut file = open_regular_file(path, Follow::Never).map_err(unavailable)?;
    let length = file.metadata().map_err(unavailable)?.len();
    if length != request.size {
        tracing::warn!(
            "{url}: the file holds {length} bytes, not the {} the catalog promises",
            request.size
        );
        return Err(Stop::Fatal(part.discard(url, FILE_MISMATCH.into())));
    }
    file.seek(SeekFrom::Start(part.written))
        .map_err(unavailable)?;
    let result = pump(request, Box::new(file), part, progress, abort, |error| {
        AgentError::new(
            hresult::WU_E_DM_READRANGEFAILED,
            format!("{url}: reading {} failed: {error}", path.display()),
        )
    });
    match result {
        // A file does not get better by reading it again.
        Err(Stop::Cut(error)) => Err(Stop::Fatal(error)),
        other => other,
    }
}

/// What the reader thread hands over. The last message carries the hash
/// state over every byte it sent, so the hash never covers unsent bytes.
enum Chunk {
    Data(Vec<u8>, usize),
    End(Sha256),
    Failed(io::Error, Sha256),
}

/// Streams `reader` into the part: a helper thread reads and hashes (each
/// piece while it is still in cache), this thread writes. Ok when the part
/// holds `size` bytes.
fn pump(
    request: &FetchRequest<'_>,
    reader: Box<dyn Read + Send>,
    part: &mut Part,
    progress: &mut dyn FnMut(FetchEvent),
    abort: &AtomicBool,
    read_error: impl Fn(io::Error) -> AgentError,
) -> Result<(), Stop> {
    let url = request.url;
    let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(CHUNKS);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS);
    for _ in 0..CHUNKS {
        // The channel has room for every buffer, so this never blocks.
        let _ = empty_tx.send(vec![0; CHUNK]);
    }
    let hasher = part.hasher.clone();
    // Starts the disk writing early on a thread of its own, so the fsync
    // before the rename finds little left to do and the writer never waits.
    let (flush_tx, flush_rx) = mpsc::sync_channel::<()>(1);
    if let Ok(file) = part.file.try_clone() {
        let _ = std::thread::Builder::new()
            .name("wua-fetch-flush".into())
            .spawn(move || {
                while flush_rx.recv().is_ok() {
                    let _ = file.sync_data();
                }
            });
    }
    let mut flushed = part.written;
    // At most this many bytes may still come: more means wrong content, and
    // the reader stops there rather than hash what will be refused.
    let room = request.size - part.written;
    // Detached: after an abort it may still sit in a read, and it ends by
    // itself once that read returns and it finds nobody listening.
    std::thread::Builder::new()
        .name("wua-fetch-read".into())
        .spawn(move || read_chunks(reader, hasher, room, &empty_rx, &full_tx))
        .map_err(|error| {
            Stop::Fatal(AgentError::new(
                hresult::E_OUTOFMEMORY,
                format!("{url}: cannot start a reader thread: {error}"),
            ))
        })?;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(Stop::Fatal(aborted(url, part.written)));
        }
        let chunk = match full_rx.recv_timeout(POLL) {
            Ok(chunk) => chunk,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Stop::Fatal(AgentError::new(
                    hresult::WU_E_DM_UNEXPECTED,
                    format!("{url}: the reader thread ended without a word"),
                )));
            }
        };
        match chunk {
            Chunk::Data(buffer, length) => {
                let result = part.append(request, &buffer[..length]);
                // The reader may be gone already; the buffer is then unneeded.
                let _ = empty_tx.send(buffer);
                result.map_err(Stop::Fatal)?;
                if part.written - flushed >= FLUSH_STEP {
                    flushed = part.written;
                    // Full: a flush is running and will cover these bytes too.
                    let _ = flush_tx.try_send(());
                }
                if part.written - part.reported >= PROGRESS_STEP || part.written == request.size {
                    part.reported = part.written;
                    progress(FetchEvent::Bytes(part.written));
                }
            }
            Chunk::End(hasher) => {
                part.hasher = hasher;
                if part.written == request.size {
                    return Ok(());
                }
                return Err(Stop::Cut(AgentError::new(
                    hresult::WU_E_PT_ENDPOINT_DISCONNECTED,
                    format!(
                        "{url}: the connection closed after {} of {} bytes",
                        part.written, request.size
                    ),
                )));
            }
            Chunk::Failed(error, hasher) => {
                part.hasher = hasher;
                return Err(Stop::Cut(read_error(error)));
            }
        }
    }
}

/// The reader thread: fills buffers from `reader`, hashing as it goes, and
/// passes them on. A buffer goes out when full, at the end, or after
/// [`POLL`] so a slow source still shows progress. Reads at most one byte
/// past `room`, enough for the writer to see the overflow.
fn read_chunks(
    mut reader: Box<dyn Read + Send>,
    mut hasher: Sha256,
    room: u64,
    empty: &Receiver<Vec<u8>>,
    full: &SyncSender<Chunk>,
) {
    let mut sent: u64 = 0;
    while let Ok(mut buffer) = empty.recv() {
        let started = Instant::now();
        let mut filled = 0;
        let mut last = None;
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => {
                    last = Some(Chunk::End(hasher.clone()));
                    break;
                }
                Ok(read) => {
                    hasher.update(&buffer[filled..filled + read]);
                    filled += read;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    last = Some(Chunk::Failed(error, hasher.clone()));
                    break;
                }
            }
            if started.elapsed() >= POLL || sent + filled as u64 > room {
                break;
            }
        }
        sent += filled as u64;
        if filled > 0 && full.send(Chunk::Data(buffer, filled)).is_err() {
            return;
        }
        if sent > room {
            // The writer refuses this chunk and stops listening.
            return;
        }
        if let Some(last) = last {
            let _ = full.send(last);
            return;
        }
    }
}

impl Part {
    /// Writes bytes that follow the part's current end (the reader thread
    /// has hashed them).
    fn append(&mut self, request: &FetchRequest<'_>, bytes: &[u8]) -> Result<(), AgentError> {
        let total = self.written + bytes.len() as u64;
        if total > request.size {
            return Err(self.discard(
                request.url,
                format!(
                    "the server sent more than the {} bytes the catalog promises",
                    request.size
                ),
            ));
        }
        self.file
            .write_all(bytes)
            .map_err(|error| write_error(request.url, &self.path, &error))?;
        self.written = total;
        Ok(())
    }

    /// Empties the part to start over.
    fn truncate(&mut self, url: &str) -> Result<(), AgentError> {
        if self.written == 0 {
            return Ok(());
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|error| write_error(url, &self.path, &error))?;
        self.hasher = Sha256::new();
        self.written = 0;
        self.reported = 0;
        Ok(())
    }

    /// Deletes the part: its bytes cannot become the promised file.
    fn discard(&mut self, url: &str, what: String) -> AgentError {
        let _ = fs::remove_file(&self.path);
        self.written = 0;
        AgentError::new(
            hresult::WU_E_DM_INCORRECTFILEHASH,
            format!("{url}: {what}; the partial file was deleted"),
        )
    }

    /// Checks the whole part and renames it into place.
    fn finish(mut self, request: &FetchRequest<'_>, source: &Source<'_>) -> Result<(), AgentError> {
        let url = request.url;
        let digest = Sha256Digest(std::mem::take(&mut self.hasher).finalize().into());
        if self.written != request.size || digest != request.sha256 {
            let mismatch = format!(
                "got {} bytes with SHA-256 {digest}, expected {} bytes with {}",
                self.written, request.size, request.sha256
            );
            // A local file's size and digest are facts about a file the
            // caller may not be allowed to read: for the log only.
            let detail = match source {
                Source::Http => mismatch,
                Source::File(_) => {
                    tracing::warn!("{url}: {mismatch}");
                    FILE_MISMATCH.into()
                }
            };
            return Err(self.discard(url, detail));
        }
        let failed = |error: io::Error| write_error(url, &self.path, &error);
        // The umask may have narrowed the mode the part was created with.
        self.file
            .set_permissions(fs::Permissions::from_mode(MODE))
            .map_err(failed)?;
        self.file.sync_all().map_err(failed)?;
        fs::rename(&self.path, request.destination).map_err(failed)?;
        let directory = match request.destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| write_error(url, directory, &error))
    }
}

/// Opens (or creates) the part and re-hashes what an earlier attempt left.
fn open_part(
    url: &str,
    path: &Path,
    size: u64,
    progress: &mut dyn FnMut(FetchEvent),
    abort: &AtomicBool,
) -> Result<Part, AgentError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(MODE)
        .open(path)
        .map_err(|error| write_error(url, path, &error))?;
    let failed = |error: io::Error| write_error(url, path, &error);
    let mut length = file.metadata().map_err(failed)?.len();
    if length > size {
        // Longer than the file can be: it belongs to something else.
        file.set_len(0).map_err(failed)?;
        length = 0;
    }
    let mut hasher = Sha256::new();
    if length > 0 {
        progress(FetchEvent::Verifying);
        let mut buffer = vec![0; CHUNK];
        let mut left = length;
        while left > 0 {
            if abort.load(Ordering::Relaxed) {
                return Err(aborted(url, 0));
            }
            let want = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
            let read = file.read(&mut buffer[..want]).map_err(failed)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            left -= read as u64;
        }
        length -= left;
        file.set_len(length).map_err(failed)?;
        progress(FetchEvent::Bytes(length));
    }
    file.seek(SeekFrom::Start(length)).map_err(failed)?;
    Ok(Part {
        file,
        path: path.to_owned(),
        hasher,
        written: length,
        reported: length,
    })
}

/// `<destination>.part`, beside the destination.
fn part_path(destination: &Path) -> PathBuf {
    let mut name = destination.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// Checks the scheme; a `file://` URL becomes its path.
fn parse_url(url: &str) -> Result<Source<'_>, AgentError> {
    let invalid =
        |why: &str| AgentError::new(hresult::WU_E_PT_INVALID_URL, format!("{url}: {why}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid("not an absolute URL"));
    };
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(invalid("no host"));
        }
        return Ok(Source::Http);
    }
    if scheme.eq_ignore_ascii_case("file") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(invalid("a file URL needs an absolute path and no host"));
        }
        if path.contains(['%', '?', '#']) {
            return Err(invalid(
                "escapes, queries and fragments are not supported in file URLs",
            ));
        }
        return Ok(Source::File(Path::new(path)));
    }
    Err(invalid("unsupported scheme (use http, https or file)"))
}

/// The start of `bytes START-END/TOTAL`.
fn parse_content_range(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// WUA's code for an HTTP status that is neither 2xx nor followed.
pub(crate) fn status_code(status: u16) -> HResult {
    match status {
        400 => hresult::WU_E_PT_HTTP_STATUS_BAD_REQUEST,
        401 => hresult::WU_E_PT_HTTP_STATUS_DENIED,
        403 => hresult::WU_E_PT_HTTP_STATUS_FORBIDDEN,
        404 => hresult::WU_E_PT_HTTP_STATUS_NOT_FOUND,
        405 => hresult::WU_E_PT_HTTP_STATUS_BAD_METHOD,
        407 => hresult::WU_E_PT_HTTP_STATUS_PROXY_AUTH_REQ,
        408 => hresult::WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT,
        409 => hresult::WU_E_PT_HTTP_STATUS_CONFLICT,
        410 => hresult::WU_E_PT_HTTP_STATUS_GONE,
        500 => hresult::WU_E_PT_HTTP_STATUS_SERVER_ERROR,
        501 => hresult::WU_E_PT_HTTP_STATUS_NOT_SUPPORTED,
        502 => hresult::WU_E_PT_HTTP_STATUS_BAD_GATEWAY,
        503 => hresult::WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL,
        504 => hresult::WU_E_PT_HTTP_STATUS_GATEWAY_TIMEOUT,
        505 => hresult::WU_E_PT_HTTP_STATUS_VERSION_NOT_SUP,
        _ => hresult::WU_E_PT_HTTP_STATUS_NOT_MAPPED,
    }
}

fn status_error(url: &str, status: u16) -> AgentError {
    AgentError::new(
        status_code(status),
        format!("{url}: the server answered HTTP {status}"),
    )
}

/// A request that produced no response, as the caller hears it: the same
/// codes a content fetch gives for the same failure.
pub(crate) fn connection_error(url: &str, error: ureq::Error) -> AgentError {
    match request_error(url, error) {
        Stop::Cut(error) | Stop::Fatal(error) => error,
        Stop::Restart => AgentError::new(
            hresult::WU_E_PT_HTTP_STATUS_NOT_MAPPED,
            format!("{url}: the request failed"),
        ),
    }
}

/// A request that produced no response.
fn request_error(url: &str, error: ureq::Error) -> Stop {
    use ureq::Error as E;
    let fatal = |code, what: String| Stop::Fatal(AgentError::new(code, format!("{url}: {what}")));
    match error {
        E::HostNotFound => fatal(
            hresult::WU_E_PT_WINHTTP_NAME_NOT_RESOLVED,
            "the host name does not resolve".into(),
        ),
        E::BadUri(why) => fatal(hresult::WU_E_PT_INVALID_URL, why),
        E::Http(why) => fatal(hresult::WU_E_PT_INVALID_URL, why.to_string()),
        E::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => fatal(
            hresult::WU_E_PT_ENDPOINT_UNREACHABLE,
            "connecting timed out".into(),
        ),
        E::Timeout(which) => Stop::Cut(AgentError::new(
            hresult::WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT,
            format!("{url}: the server stayed silent too long ({which})"),
        )),
        E::StatusCode(status) => Stop::Fatal(status_error(url, status)),
        E::TooManyRedirects | E::RedirectFailed => fatal(
            hresult::WU_E_PT_HTTP_STATUS_NOT_MAPPED,
            format!("redirects failed: {error}"),
        ),
        E::Tls(_) | E::Pem(_) | E::Rustls(_) => fatal(
            hresult::WU_E_PT_SECURITY_SYSTEM_FAILURE,
            format!("TLS failed: {error}"),
        ),
        E::Protocol(why) => fatal(
            hresult::WU_E_PT_HTTP_STATUS_NOT_MAPPED,
            format!("the server does not speak HTTP/1.1 properly: {why}"),
        ),
        E::ConnectionFailed => fatal(
            hresult::WU_E_PT_ENDPOINT_UNREACHABLE,
            "cannot connect".into(),
        ),
        // rustls hands a refused certificate (or any failed handshake)
        // to ureq as an io::Error.
        E::Io(error)
            if error
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            fatal(
                hresult::WU_E_PT_SECURITY_SYSTEM_FAILURE,
                format!("TLS failed: {error}"),
            )
        }
        E::Io(error) => match error.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable => fatal(
                hresult::WU_E_PT_ENDPOINT_UNREACHABLE,
                format!("cannot connect: {error}"),
            ),
            io::ErrorKind::TimedOut => Stop::Cut(AgentError::new(
                hresult::WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT,
                format!("{url}: the server stayed silent too long: {error}"),
            )),
            _ => Stop::Cut(AgentError::new(
                hresult::WU_E_PT_ENDPOINT_DISCONNECTED,
                format!("{url}: the connection failed before a response: {error}"),
            )),
        },
        other => fatal(hresult::WU_E_PT_OTHER, other.to_string()),
    }
}

/// A failure while reading a response body.
pub(crate) fn stream_error(url: &str, error: io::Error) -> AgentError {
    // ureq wraps its own errors (a read timeout among them) in `io::Error`.
    let ureq_timeout = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
    if ureq_timeout || error.kind() == io::ErrorKind::TimedOut {
        AgentError::new(
            hresult::WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT,
            format!("{url}: the server stopped sending: {error}"),
        )
    } else {
        AgentError::new(
            hresult::WU_E_PT_ENDPOINT_DISCONNECTED,
            format!("{url}: the connection broke: {error}"),
        )
    }
}

/// A failure writing the part or the destination.
fn write_error(url: &str, path: &Path, error: &io::Error) -> AgentError {
    let code = match error.raw_os_error() {
        Some(libc_code) if libc_code == nix::libc::ENOSPC || libc_code == nix::libc::EDQUOT => {
            hresult::ERROR_DISK_FULL
        }
        Some(libc_code)
            if libc_code == nix::libc::EACCES
                || libc_code == nix::libc::EPERM
                || libc_code == nix::libc::EROFS =>
        {
            hresult::E_ACCESSDENIED
        }
        _ => hresult::WU_E_DM_UNEXPECTED,
    };
    AgentError::new(
        code,
        format!("{url}: writing {} failed: {error}", path.display()),
    )
}

fn aborted(url: &str, written: u64) -> AgentError {
    AgentError::new(
        hresult::E_ABORT,
        format!("{url}: aborted after {written} bytes; the partial file is kept for resuming"),
    )
}
