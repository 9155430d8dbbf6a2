//! Offline scan packages: one compressed, signed file (WUA's
//! `AddScanPackageService`).
//!
//! A package is a tar archive compressed with zstd (one frame, with its
//! checksum) whose entries are, in this order:
//!
//! 1. `snapshot.json`: the snapshot's canonical bytes, `serde_json::to_vec`;
//! 2. `snapshot.json.sig`: the 64-byte ed25519 signature over exactly those bytes;
//! 3. any number of `content/<sha256 hex>`: content files, named by digest.
//!
//! [`open_package`] reads the first two entries, verifies the signature,
//! and only then parses the JSON and reads the content entries, each of
//! which the signed snapshot must list with the entry's size. Every read is
//! bounded before it starts, so a package that is not signed costs at most
//! [`MAX_SNAPSHOT_BYTES`] of reading, however well it compresses. Reading to
//! the end of the zstd frame checks its checksum.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::{File, Permissions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use jiff::{SignedDuration, Timestamp};
use openwua_model::update::Sha256Digest;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::CatalogError;
use crate::manifest;
use crate::revision::ContentFile;
use crate::signing::{PublicKey, SIGNATURE_LEN, SecretKey};
use crate::snapshot::{FORMAT_VERSION, Snapshot};

/// The first entry: the snapshot's canonical JSON.
pub const SNAPSHOT_ENTRY: &str = "snapshot.json";
/// The second entry: the detached signature over the first.
pub const SIGNATURE_ENTRY: &str = "snapshot.json.sig";
/// Content entries are this prefix and the file's SHA-256 in lower-case hex.
pub const CONTENT_PREFIX: &str = "content/";
/// The largest `snapshot.json` a package may hold (128 MiB): 100,000
/// revisions take about 90 MB. It is read before the signature is checked,
/// so it is also what an unsigned package can cost.
pub const MAX_SNAPSHOT_BYTES: u64 = 128 << 20;
/// The most zero bytes that may follow the archive's end-of-archive blocks
/// (tar pads archives to whole records of at most a few kilobytes).
pub const MAX_END_PADDING: u64 = 1 << 20;
/// The largest zstd window a package may need (2^23 = 8 MiB): the memory
/// the decompressor takes. Builders use level 3, whose window is 2 MiB.
pub const MAX_WINDOW_LOG: u32 = 23;

/// Fast to write, and decompression speed barely depends on the level.
const ZSTD_LEVEL: i32 = 3;
/// A tar header, and the unit entries are padded to.
const BLOCK: u64 = 512;

/// A package whose signature verified and whose snapshot is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPackage {
    /// The signed snapshot.
    pub snapshot: Snapshot,
    /// The content files the package carries, in archive order; each was
    /// read to its end and matched its name.
    pub content: Vec<Sha256Digest>,
}

/// Writes `snapshot`, signed with `key`, and the payload files to `out`.
///
/// The snapshot is validated first. The package is written to a temporary
/// file beside `out` and renamed over it, so `out` is never half-written.
/// Each payload must be a content file of the snapshot; its file is
/// re-hashed while it is copied, and a file that changed since it was
/// hashed fails the write.
pub fn write_package(
    snapshot: &Snapshot,
    payloads: &[(ContentFile, PathBuf)],
    key: &SecretKey,
    out: &Path,
) -> Result<(), CatalogError> {
    snapshot.validate()?;
    let bytes = serde_json::to_vec(snapshot)
        .map_err(|error| CatalogError::Malformed(format!("cannot serialize snapshot: {error}")))?;
    if bytes.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Err(CatalogError::Authoring(format!(
            "the snapshot is {} bytes; a package holds at most {MAX_SNAPSHOT_BYTES}",
            bytes.len()
        )));
    }
    let signature = key.sign(&bytes);
    write_entries(snapshot, &bytes, &signature, payloads, out)
}

/// Writes a package from a snapshot someone else signed: `bytes`, its
/// exact JSON, and `signature` over them (an update server's signed
/// snapshot, whose key stays on the server), with the payload files.
///
/// The signature is checked with `key` before the JSON is parsed, and the
/// snapshot validated, so a package is never written that an agent
/// pinning `key` would refuse. Returns the snapshot. Writing and payloads
/// are as in [`write_package`].
pub fn write_signed_package(
    bytes: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    key: &PublicKey,
    payloads: &[(ContentFile, PathBuf)],
    out: &Path,
) -> Result<Snapshot, CatalogError> {
    if bytes.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Err(CatalogError::Malformed(format!(
            "the snapshot is {} bytes; a package holds at most {MAX_SNAPSHOT_BYTES}",
            bytes.len()
        )));
    }
    key.verify(bytes, signature)?;
    let snapshot = parse_snapshot(bytes)?;
    snapshot.validate()?;
    write_entries(&snapshot, bytes, signature, payloads, out)?;
    Ok(snapshot)
}

/// Writes the package's entries: `bytes` (the snapshot's JSON), its
/// `signature`, then the payloads, each checked against `snapshot`.
fn write_entries(
    snapshot: &Snapshot,
    bytes: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    payloads: &[(ContentFile, PathBuf)],
    out: &Path,
) -> Result<(), CatalogError> {
    let referenced = content_sizes(snapshot);
    let mut stored = HashSet::with_capacity(payloads.len());
    let mut unique = Vec::with_capacity(payloads.len());
    for (content, source) in payloads {
        if referenced.get(&content.sha256) != Some(&content.size) {
            return Err(CatalogError::Authoring(format!(
                "{}: payload {} ({} bytes) is not a content file of the snapshot",
                source.display(),
                content.sha256,
                content.size
            )));
        }
        // Identical files are stored once.
        if stored.insert(content.sha256) {
            unique.push((content, source));
        }
    }

    let directory = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let out_context = |what: &str| format!("{what} {}", out.display());
    // A package is published: readable by all, like any file one copies.
    let mut temp = tempfile::Builder::new()
        .prefix(".openwua-package-")
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o644))
        .tempfile_in(directory)
        .map_err(|error| CatalogError::io(out_context("creating a temporary file for"), error))?;

    let mtime = u64::try_from(snapshot.created.as_second()).unwrap_or(0);
    let write_error = |error| CatalogError::io(out_context("writing"), error);
    let mut encoder =
        zstd::Encoder::new(BufWriter::new(temp.as_file_mut()), ZSTD_LEVEL).map_err(write_error)?;
    encoder.include_checksum(true).map_err(write_error)?;
    let mut archive = tar::Builder::new(encoder);
    append(
        &mut archive,
        SNAPSHOT_ENTRY,
        bytes.len() as u64,
        mtime,
        bytes,
    )
    .map_err(write_error)?;
    append(
        &mut archive,
        SIGNATURE_ENTRY,
        SIGNATURE_LEN as u64,
        mtime,
        &signature[..],
    )
    .map_err(write_error)?;
    for (content, source) in unique {
        let file = File::open(source).map_err(|error| {
            CatalogError::io(format!("opening payload {}", source.display()), error)
        })?;
        let mut reader = HashingReader::new(BufReader::new(file).take(content.size));
        let name = format!("{CONTENT_PREFIX}{}", content.sha256);
        append(&mut archive, &name, content.size, mtime, &mut reader).map_err(write_error)?;
        if reader.finish() != (content.sha256, content.size) {
            return Err(CatalogError::Authoring(format!(
                "{}: the payload changed after it was hashed; build again",
                source.display()
            )));
        }
    }
    let encoder = archive.into_inner().map_err(write_error)?;
    encoder
        .finish()
        .and_then(|writer| writer.into_inner().map_err(io::IntoInnerError::into_error))
        .map_err(write_error)?;
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(out)
        .map_err(|error| CatalogError::io(out_context("renaming the package to"), error.error))?;
    // The rename is durable only once the directory is synced; a directory
    // that cannot be opened for that (some file systems) is not an error.
    if let Ok(directory) = File::open(directory) {
        directory
            .sync_all()
            .map_err(|error| CatalogError::io(out_context("syncing the directory of"), error))?;
    }
    Ok(())
}

fn append<W: Write>(
    archive: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    mtime: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    archive.append_data(&mut header, name, data)
}

/// Reads the package at `path`, verifies its signature with `key`, then
/// parses and validates the snapshot and checks every content file.
///
/// Nothing but the first two entries is read before the signature
/// verifies, and each content entry must be one the signed snapshot lists,
/// with the size it gives, before a byte of it is read.
///
/// Expiry and rollback are the caller's to check
/// ([`Snapshot::check_not_expired`], and the version last imported).
pub fn open_package(path: &Path, key: &PublicKey) -> Result<VerifiedPackage, CatalogError> {
    // Until the signature verifies: the two entries' headers and data, and
    // the header after them.
    let budget = Rc::new(Cell::new(MAX_SNAPSHOT_BYTES + 4 * BLOCK));
    let mut archive = tar::Archive::new(Bounded {
        inner: decoder(path)?,
        remaining: Rc::clone(&budget),
    });
    // Raw: extension headers (GNU long names, PAX) come back as entries,
    // refused unread, instead of being read whole into memory.
    let mut entries = archive
        .entries()
        .map_err(|error| malformed("cannot read the archive", error))?
        .raw(true);

    let snapshot_bytes = {
        let entry = expect_entry(&mut entries, SNAPSHOT_ENTRY)?;
        if entry.size() > MAX_SNAPSHOT_BYTES {
            return Err(CatalogError::Malformed(format!(
                "{SNAPSHOT_ENTRY} is {} bytes; at most {MAX_SNAPSHOT_BYTES} are accepted",
                entry.size()
            )));
        }
        read_entry(entry, SNAPSHOT_ENTRY)?
    };
    let signature = {
        let entry = expect_entry(&mut entries, SIGNATURE_ENTRY)?;
        if entry.size() != SIGNATURE_LEN as u64 {
            return Err(CatalogError::Malformed(format!(
                "{SIGNATURE_ENTRY} is {} bytes, not {SIGNATURE_LEN}",
                entry.size()
            )));
        }
        read_entry(entry, SIGNATURE_ENTRY)?
    };

    key.verify(&snapshot_bytes, &signature)?;
    let snapshot = parse_snapshot(&snapshot_bytes)?;
    // Large catalogs: do not hold the bytes and the parsed snapshot longer
    // than needed.
    drop(snapshot_bytes);
    snapshot.validate()?;

    let referenced = content_sizes(&snapshot);
    // From here on the signed snapshot bounds what may be read: each listed
    // file once, with its header and padding, then the end of the archive.
    let content_budget = referenced
        .values()
        .fold(4 * BLOCK + MAX_END_PADDING, |total, size| {
            let padded = size.div_ceil(BLOCK).saturating_add(1).saturating_mul(BLOCK);
            total.saturating_add(padded)
        });
    budget.set(budget.get().saturating_add(content_budget));
    let mut content = Vec::new();
    let mut seen = HashSet::new();
    for entry in entries {
        let entry = entry.map_err(|error| malformed("cannot read the archive", error))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        check_regular(&entry)?;
        let Some(expected) = content_digest(&name) else {
            return Err(CatalogError::Malformed(format!(
                "unexpected entry {name:?}: a package holds {SNAPSHOT_ENTRY}, \
                 {SIGNATURE_ENTRY} and {CONTENT_PREFIX}<sha256> files only"
            )));
        };
        let Some(&size) = referenced.get(&expected) else {
            return Err(CatalogError::Malformed(format!(
                "{name} is not a content file of any revision"
            )));
        };
        if entry.size() != size {
            return Err(CatalogError::Malformed(format!(
                "{name} is {} bytes; the snapshot says {size}",
                entry.size()
            )));
        }
        if !seen.insert(expected) {
            return Err(CatalogError::Malformed(format!("{name} appears twice")));
        }
        let mut reader = HashingReader::new(entry);
        io::copy(&mut reader, &mut io::sink()).map_err(|error| malformed(&name, error))?;
        if reader.finish() != (expected, size) {
            return Err(CatalogError::Malformed(format!(
                "{name}: the file's digest does not match its name"
            )));
        }
        content.push(expected);
    }
    finish_stream(archive.into_inner().inner)?;
    Ok(VerifiedPackage { snapshot, content })
}

/// Copies the content file with digest `sha256` out of the package at
/// `path` to `dest`, checking the digest as it streams.
///
/// The file is written beside `dest` and renamed, so `dest` appears only
/// when the digest matched. The digest is what makes the copy trustworthy:
/// take it from a snapshot that [`open_package`] verified.
pub fn extract_content(
    path: &Path,
    sha256: &Sha256Digest,
    dest: &Path,
) -> Result<(), CatalogError> {
    let wanted = format!("{CONTENT_PREFIX}{sha256}");
    let mut archive = tar::Archive::new(decoder(path)?);
    // Raw, as in `open_package`: an extension header is refused unread.
    let entries = archive
        .entries()
        .map_err(|error| malformed("cannot read the archive", error))?
        .raw(true);
    for entry in entries {
        let entry = entry.map_err(|error| malformed("cannot read the archive", error))?;
        check_regular(&entry)?;
        if *entry.path_bytes() != *wanted.as_bytes() {
            continue;
        }
        let size = entry.size();
        let directory = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let dest_context = |what: &str| format!("{what} {}", dest.display());
        let mut temp = tempfile::Builder::new()
            .prefix(".openwua-content-")
            .suffix(".tmp")
            .tempfile_in(directory)
            .map_err(|error| {
                CatalogError::io(dest_context("creating a temporary file for"), error)
            })?;
        let mut reader = HashingReader::new(entry);
        let mut writer = BufWriter::new(temp.as_file_mut());
        // Which side failed decides the error: the package (damaged) or
        // the destination (I/O).
        let mut buffer = vec![0; 1 << 16];
        loop {
            let read = reader
                .read(&mut buffer)
                .map_err(|error| malformed(&wanted, error))?;
            if read == 0 {
                break;
            }
            writer
                .write_all(&buffer[..read])
                .map_err(|error| CatalogError::io(dest_context("writing"), error))?;
        }
        writer
            .flush()
            .map_err(|error| CatalogError::io(dest_context("writing"), error))?;
        drop(writer);
        if reader.finish() != (*sha256, size) {
            return Err(CatalogError::Malformed(format!(
                "{wanted}: the file's digest does not match its name"
            )));
        }
        temp.as_file()
            .sync_all()
            .map_err(|error| CatalogError::io(dest_context("writing"), error))?;
        temp.persist(dest)
            .map_err(|error| CatalogError::io(dest_context("renaming to"), error.error))?;
        return Ok(());
    }
    Err(CatalogError::Malformed(format!(
        "the package holds no content file {sha256}"
    )))
}

/// Loads the service directory `dir` (see [`manifest`]), builds a snapshot
/// of it at `version`, valid for `validity` from now, and writes it signed
/// to `out`, with the payload files unless `include_content` is false.
pub fn build_service_dir(
    dir: &Path,
    version: u64,
    validity: SignedDuration,
    include_content: bool,
    key: &SecretKey,
    out: &Path,
) -> Result<Snapshot, CatalogError> {
    if !validity.is_positive() {
        return Err(CatalogError::Authoring(format!(
            "a package must be valid for some time, not {validity}"
        )));
    }
    let service = manifest::load_service_dir(dir)?;
    // Whole seconds: the dates are for people to read.
    let created = Timestamp::from_second(Timestamp::now().as_second())
        .map_err(|error| CatalogError::Authoring(format!("the clock is out of range: {error}")))?;
    let expires = created.checked_add(validity).map_err(|error| {
        CatalogError::Authoring(format!("validity {validity} is too long: {error}"))
    })?;
    let snapshot = Snapshot {
        format: FORMAT_VERSION,
        service_id: service.service_id,
        service_name: service.service_name,
        version,
        created,
        expires,
        revisions: service.revisions,
    };
    let payloads = if include_content {
        &service.payloads[..]
    } else {
        &[]
    };
    write_package(&snapshot, payloads, key, out)?;
    Ok(snapshot)
}

/// Every content file the snapshot's revisions list, with its size.
fn content_sizes(snapshot: &Snapshot) -> HashMap<Sha256Digest, u64> {
    snapshot
        .revisions
        .iter()
        .flat_map(|revision| &revision.content)
        .map(|content| (content.sha256, content.size))
        .collect()
}

type PackageReader = zstd::Decoder<'static, BufReader<File>>;

fn decoder(path: &Path) -> Result<PackageReader, CatalogError> {
    let file = File::open(path)
        .map_err(|error| CatalogError::io(format!("opening {}", path.display()), error))?;
    let mut decoder = zstd::Decoder::new(file)
        .map(zstd::Decoder::single_frame)
        .map_err(|error| malformed("cannot start decompressing", error))?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|error| malformed("cannot start decompressing", error))?;
    Ok(decoder)
}

/// A reader that refuses to give more than a shared budget: however well
/// a stream compresses, decompressing it costs no more than what the
/// package's entries may hold. The budget grows once the signed snapshot
/// says what may follow it.
struct Bounded<R> {
    inner: R,
    remaining: Rc<Cell<u64>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let remaining = self.remaining.get();
        if remaining == 0 && !buffer.is_empty() {
            return Err(io::Error::other(
                "the package holds more data than its entries account for",
            ));
        }
        let limit = usize::try_from(remaining).map_or(buffer.len(), |max| max.min(buffer.len()));
        let read = self.inner.read(&mut buffer[..limit])?;
        self.remaining.set(remaining - read as u64);
        Ok(read)
    }
}

fn malformed(what: &str, error: io::Error) -> CatalogError {
    CatalogError::Malformed(format!("{what}: {error}"))
}

fn expect_entry<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
    name: &str,
) -> Result<tar::Entry<'a, R>, CatalogError> {
    let entry = entries
        .next()
        .ok_or_else(|| {
            CatalogError::Malformed(format!("not a scan package: it has no {name} entry"))
        })?
        .map_err(|error| malformed("cannot read the archive", error))?;
    check_regular(&entry)?;
    if *entry.path_bytes() != *name.as_bytes() {
        return Err(CatalogError::Malformed(format!(
            "not a scan package: found {:?} where {name} belongs",
            String::from_utf8_lossy(&entry.path_bytes())
        )));
    }
    Ok(entry)
}

/// Refuses, before any of its data is read, an entry that is not a plain
/// regular file.
fn check_regular<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(), CatalogError> {
    let kind = entry.header().entry_type();
    let name = || String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    if kind.is_gnu_longname()
        || kind.is_gnu_longlink()
        || kind.is_pax_local_extensions()
        || kind.is_pax_global_extensions()
    {
        Err(CatalogError::Malformed(format!(
            "{:?} is an extension header (GNU long name or PAX): \
             package entries have plain names and need none",
            name()
        )))
    } else if kind == tar::EntryType::Regular {
        Ok(())
    } else {
        Err(CatalogError::Malformed(format!(
            "{:?} is not a regular file in the archive",
            name()
        )))
    }
}

/// Reads an entry whose size the caller bounded.
fn read_entry<R: Read>(entry: tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>, CatalogError> {
    let size = entry.size();
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(|error| malformed(name, error))?;
    if bytes.len() as u64 != size {
        return Err(CatalogError::Malformed(format!("{name} is truncated")));
    }
    Ok(bytes)
}

/// The digest a `content/<sha256>` entry name promises, if it is one.
fn content_digest(name: &str) -> Option<Sha256Digest> {
    let hex = name.strip_prefix(CONTENT_PREFIX)?;
    // Lower case only, so each file has exactly one name.
    if hex.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return None;
    }
    hex.parse().ok()
}

/// Reads the rest of the stream after the tar archive's end: only the
/// archive's zero padding may remain, at most [`MAX_END_PADDING`] of it.
/// Reaching the end of the zstd frame is what checks its checksum; nothing
/// may follow the frame.
fn finish_stream(mut decoder: PackageReader) -> Result<(), CatalogError> {
    let mut buffer = [0u8; 4096];
    let mut padding = (&mut decoder).take(MAX_END_PADDING + 1);
    loop {
        let read = padding
            .read(&mut buffer)
            .map_err(|error| malformed("the end of the package is damaged", error))?;
        if read == 0 {
            break;
        }
        if buffer[..read].iter().any(|&byte| byte != 0) {
            return Err(CatalogError::Malformed(
                "data after the end of the archive".into(),
            ));
        }
    }
    if padding.limit() == 0 {
        return Err(CatalogError::Malformed(format!(
            "more than {MAX_END_PADDING} bytes of padding after the end of the archive"
        )));
    }
    let mut file = decoder.finish();
    let trailing = file
        .fill_buf()
        .map_err(|error| malformed("cannot read the package", error))?;
    if trailing.is_empty() {
        Ok(())
    } else {
        Err(CatalogError::Malformed(
            "data after the end of the compressed stream".into(),
        ))
    }
}

/// Parses the signed bytes. A document this build cannot parse may be a
/// newer format: that is reported as such, not as damage.
fn parse_snapshot(bytes: &[u8]) -> Result<Snapshot, CatalogError> {
    parse_signed(bytes, SNAPSHOT_ENTRY)
}

/// Parses a signed document named `what` in errors; one that does not
/// parse but declares a newer `format` is reported as a newer format.
pub(crate) fn parse_signed<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, CatalogError> {
    #[derive(Deserialize)]
    struct FormatOnly {
        format: u32,
    }

    serde_json::from_slice(bytes).map_err(|error| {
        match serde_json::from_slice::<FormatOnly>(bytes) {
            Ok(FormatOnly { format }) if format > FORMAT_VERSION => CatalogError::FormatTooNew {
                found: format,
                supported: FORMAT_VERSION,
            },
            _ => CatalogError::Malformed(format!("{what}: {error}")),
        }
    })
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and length of everything read.
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest(self.hasher.finalize().into()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.count += read as u64;
        Ok(read)
    }
}
