//! `wua package`: signing keys, and building and verifying offline scan
//! packages (see `docs/catalog.md`).

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use openwua_catalog::CatalogError;
use openwua_catalog::package;
use openwua_catalog::signing::{PublicKey, SecretKey};
use openwua_model::hresult::HResult;
use serde::Serialize;
use uuid::Uuid;

use crate::args::PackageCommand;
use crate::exit;

pub fn run(command: PackageCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    match command {
        PackageCommand::Keygen { prefix } => keygen(&prefix, out),
        PackageCommand::Build {
            dir,
            output,
            key,
            version,
            valid_days,
            no_content,
        } => build(
            &BuildRequest {
                dir: &dir,
                out: &output,
                key: &key,
                version,
                valid_days,
                include_content: !no_content,
            },
            out,
        ),
        PackageCommand::Verify { file, pubkey, json } => verify(&file, &pubkey, json, out),
    }
}

/// What `wua package build` is asked to do.
struct BuildRequest<'a> {
    dir: &'a Path,
    out: &'a Path,
    key: &'a Path,
    version: Option<u64>,
    valid_days: u32,
    include_content: bool,
}

/// `wua package keygen PREFIX`: `PREFIX.key` (owner-only) and `PREFIX.pub`.
fn keygen(prefix: &Path, out: &mut dyn Write) -> anyhow::Result<u8> {
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    let key = SecretKey::generate()?;
    write_new(&key_path, key.to_file_text().as_bytes(), 0o600)?;
    if let Err(error) = write_new(
        &pub_path,
        format!("{}\n", key.public_key()).as_bytes(),
        0o644,
    ) {
        // Half a key pair is of no use; leave nothing behind.
        let _ = fs::remove_file(&key_path);
        return Err(error);
    }
    writeln!(
        out,
        "wrote {} (keep it secret) and {}",
        key_path.display(),
        pub_path.display()
    )?;
    writeln!(out, "public key: {}", key.public_key())?;
    Ok(exit::SUCCESS)
}

/// `PREFIX` with `suffix` appended, even when it already has a dot in it.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut path = OsString::from(prefix);
    path.push(suffix);
    PathBuf::from(path)
}

/// Creates `path` with `mode`, refusing to replace a file: an existing key
/// may be the only copy.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// `wua package build DIR -o FILE --key KEY`.
fn build(request: &BuildRequest<'_>, out: &mut dyn Write) -> anyhow::Result<u8> {
    let key_text = fs::read_to_string(request.key)
        .with_context(|| format!("reading the signing key {}", request.key.display()))?;
    let key: SecretKey = key_text
        .parse()
        .with_context(|| format!("reading the signing key {}", request.key.display()))?;
    // Seconds since 1970 increase with every build, as versions must.
    let version = match request.version {
        Some(version) => version,
        None => u64::try_from(Timestamp::now().as_second())
            .context("the clock is before 1970; give --version")?,
    };
    let validity = SignedDuration::from_hours(24 * i64::from(request.valid_days));
    let snapshot = match package::build_service_dir(
        request.dir,
        version,
        validity,
        request.include_content,
        &key,
        request.out,
    ) {
        Ok(snapshot) => snapshot,
        Err(error @ CatalogError::Io { .. }) => return Err(could_not_run(error)),
        Err(error) => {
            eprintln!("wua: {error}");
            return Ok(exit::INVALID);
        }
    };
    let content = snapshot
        .revisions
        .iter()
        .flat_map(|revision| &revision.content)
        .map(|file| file.sha256)
        .collect::<std::collections::HashSet<_>>()
        .len();
    writeln!(out, "wrote {}", request.out.display())?;
    writeln!(
        out,
        "  service:   {} ({})",
        snapshot.service_name, snapshot.service_id
    )?;
    writeln!(out, "  version:   {}", snapshot.version)?;
    writeln!(out, "  expires:   {}", snapshot.expires)?;
    writeln!(out, "  revisions: {}", snapshot.revisions.len())?;
    if request.include_content {
        writeln!(out, "  content:   {content} files")?;
    } else {
        writeln!(out, "  content:   none ({content} files left out)")?;
    }
    writeln!(out, "  signed by: {}", key.public_key())?;
    Ok(exit::SUCCESS)
}

/// A package that verified, as `--json` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Valid {
    valid: bool,
    service_id: Uuid,
    service_name: String,
    version: u64,
    created: Timestamp,
    expires: Timestamp,
    revisions: usize,
    content: usize,
}

/// A package that was refused, as `--json` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invalid {
    valid: bool,
    hresult: HResult,
    name: Option<&'static str>,
    message: String,
}

/// `wua package verify FILE --pubkey KEY`: the package's signature,
/// structure and expiry, as the agent would check them on import.
fn verify(file: &Path, pubkey: &OsStr, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let key = read_public_key(pubkey)?;
    let checked = package::open_package(file, &key).and_then(|verified| {
        verified.snapshot.check_not_expired(Timestamp::now())?;
        Ok(verified)
    });
    match checked {
        Ok(verified) => {
            let snapshot = verified.snapshot;
            let valid = Valid {
                valid: true,
                service_id: snapshot.service_id,
                service_name: snapshot.service_name,
                version: snapshot.version,
                created: snapshot.created,
                expires: snapshot.expires,
                revisions: snapshot.revisions.len(),
                content: verified.content.len(),
            };
            if json {
                serde_json::to_writer_pretty(&mut *out, &valid)?;
                writeln!(out)?;
            } else {
                write_valid(&valid, &key, out)?;
            }
            Ok(exit::SUCCESS)
        }
        // The file could not be read at all: that is not a verdict on it.
        Err(error @ CatalogError::Io { .. }) => Err(could_not_run(error)),
        Err(error) if json => {
            let invalid = Invalid {
                valid: false,
                hresult: error.hresult(),
                name: error.hresult().name(),
                message: error.to_string(),
            };
            serde_json::to_writer_pretty(&mut *out, &invalid)?;
            writeln!(out)?;
            Ok(exit::INVALID)
        }
        Err(error) => {
            eprintln!("wua: {}\n  {error}", error.hresult());
            Ok(exit::INVALID)
        }
    }
}

/// An I/O failure: its message already names the operating system's error,
/// so it is not chained again.
fn could_not_run(error: CatalogError) -> anyhow::Error {
    anyhow::Error::msg(error.to_string())
}

fn write_valid(valid: &Valid, key: &PublicKey, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "valid: signed by {key}")?;
    writeln!(
        out,
        "  service:   {} ({})",
        valid.service_name, valid.service_id
    )?;
    writeln!(out, "  version:   {}", valid.version)?;
    writeln!(out, "  created:   {}", valid.created)?;
    writeln!(out, "  expires:   {}", valid.expires)?;
    writeln!(out, "  revisions: {}", valid.revisions)?;
    writeln!(out, "  content:   {} files", valid.content)
}

/// The key itself (`ed25519:…`) or a file holding it (a `.pub` file).
fn read_public_key(argument: &OsStr) -> anyhow::Result<PublicKey> {
    if let Some(key) = argument
        .to_str()
        .filter(|text| text.starts_with("ed25519:"))
    {
        return Ok(key.parse()?);
    }
    let path = Path::new(argument);
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    text.parse()
        .with_context(|| format!("reading the public key {}", path.display()))
}
