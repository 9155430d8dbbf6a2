//! Manifests and packages, from the sample service: what a good package
//! gives back, and how every kind of bad input is refused.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use openwua_catalog::CatalogError;
use openwua_catalog::manifest::{self, AuthoredService};
use openwua_catalog::package::{self, VerifiedPackage};
use openwua_catalog::revision::Revision;
use openwua_catalog::signing::SecretKey;
use openwua_catalog::snapshot::{FORMAT_VERSION, Snapshot};
use openwua_model::enums::{DeploymentAction, UpdateType};
use openwua_model::hresult::{
    HResult, WU_E_METADATA_BAD_SIGNATURE, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
    WU_E_OL_INVALID_SCANFILE, WU_E_OL_NEWCLIENT_REQUIRED,
};
use openwua_model::update::Sha256Digest;
use tempfile::TempDir;
use uuid::Uuid;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample-service")
}

fn sample() -> AuthoredService {
    manifest::load_service_dir(&sample_dir()).unwrap()
}

fn revision<'a>(
    service: &'a AuthoredService,
    title: &str,
) -> &'a openwua_catalog::revision::Revision {
    service
        .revisions
        .iter()
        .find(|revision| revision.update.title == title)
        .unwrap_or_else(|| panic!("no update titled {title:?}"))
}

/// A package of the sample service, in its own directory.
struct Built {
    dir: TempDir,
    path: PathBuf,
    key: SecretKey,
    snapshot: Snapshot,
}

fn build(include_content: bool) -> Built {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("sample.wuapkg");
    let key = SecretKey::generate().unwrap();
    let snapshot = package::build_service_dir(
        &sample_dir(),
        7,
        SignedDuration::from_hours(24 * 30),
        include_content,
        &key,
        &path,
    )
    .unwrap();
    Built {
        dir,
        path,
        key,
        snapshot,
    }
}

fn open_bytes(built: &Built, bytes: &[u8]) -> Result<VerifiedPackage, CatalogError> {
    let path = built.dir.path().join("damaged.wuapkg");
    fs::write(&path, bytes).unwrap();
    package::open_package(&path, &built.key.public_key())
}

/// A tar entry's name and bytes.
type Entry = (String, Vec<u8>);

/// The entries of a package.
fn unpack(path: &Path) -> Vec<Entry> {
    let decoder = zstd::Decoder::new(fs::File::open(path).unwrap()).unwrap();
    let mut archive = tar::Archive::new(decoder);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// A well-formed tar.zst of these entries: damaged only in what they hold.
fn repack(entries: &[Entry]) -> Vec<u8> {
    let mut encoder = zstd::Encoder::new(Vec::new(), 3).unwrap();
    encoder.include_checksum(true).unwrap();
    let mut archive = tar::Builder::new(encoder);
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    archive.into_inner().unwrap().finish().unwrap()
}

/// The entries of a package whose snapshot was replaced by `snapshot`,
/// signed with `key`.
fn resigned(built: &Built, snapshot: &serde_json::Value, key: &SecretKey) -> Vec<u8> {
    let bytes = serde_json::to_vec(snapshot).unwrap();
    let signature = key.sign(&bytes).to_vec();
    let mut entries = unpack(&built.path);
    entries[0].1 = bytes;
    entries[1].1 = signature;
    repack(&entries)
}

#[track_caller]
fn assert_refused(
    result: Result<VerifiedPackage, CatalogError>,
    expected: HResult,
    what: &str,
) -> CatalogError {
    match result {
        Ok(_) => panic!("{what}: the package was accepted"),
        Err(error) => {
            assert_eq!(error.hresult(), expected, "{what}: {error}");
            error
        }
    }
}

#[track_caller]
fn assert_malformed(result: Result<VerifiedPackage, CatalogError>, what: &str) {
    let error = assert_refused(result, WU_E_OL_INVALID_SCANFILE, what);
    assert!(
        matches!(error, CatalogError::Malformed(_)),
        "{what}: {error:?}"
    );
}

#[test]
fn sample_service_reads_into_revisions() {
    let service = sample();
    assert_eq!(service.service_name, "OpenWUA Sample Service");
    assert!(service.revisions.len() >= 24, "a few dozen updates");

    let newer = revision(&service, "OpenSSL 3.0.15 security update");
    let older = revision(&service, "OpenSSL 3.0.14 security update");
    assert_eq!(
        newer.update.superseded_update_ids,
        [older.update.identity.update_id]
    );
    assert_eq!(older.update.identity.revision_number, 2);
    assert_eq!(newer.update.cve_ids, ["CVE-2024-5535", "CVE-2024-6119"]);
    assert_eq!(newer.update.kb_article_ids, ["5050011"]);
    let classification = &newer.update.categories[0];
    assert_eq!(
        classification.id,
        "0fa1201d-4330-4fa8-8ae9-b877473b6441"
            .parse::<Uuid>()
            .unwrap()
    );
    // The product and its family, so a search by family finds it.
    let names: Vec<&str> = newer
        .update
        .categories
        .iter()
        .map(|category| category.name.as_str())
        .collect();
    assert_eq!(names, ["Security Updates", "OpenSSL", "Debian 12"]);

    let suite = revision(&service, "Example Office Suite 2026");
    let writer = revision(&service, "Example Office Writer 2026");
    assert_eq!(suite.update.bundled_updates.len(), 2);
    assert_eq!(suite.update.bundled_updates[0], writer.update.identity);
    assert_eq!(writer.update.deployment_action, DeploymentAction::None);

    let agent = revision(&service, "Example Agent 2.1 feature update");
    assert!(agent.update.installation_behavior.can_request_user_input);
    assert!(
        agent
            .update
            .eula_text
            .as_deref()
            .unwrap()
            .starts_with("EXAMPLE CORP SOFTWARE LICENCE TERMS")
    );
    assert!(agent.update.uninstallation_behavior.is_some());
    assert_eq!(agent.update.download_contents.len(), 4);
    let total: u64 = agent.content.iter().map(|file| file.size).sum();
    assert_eq!(agent.update.max_download_size, total);
    assert_eq!(agent.update.min_download_size, total);
    for file in &agent.content {
        assert_eq!(file.url, format!("content/{}", file.sha256));
    }

    let interactive = service
        .revisions
        .iter()
        .filter(|revision| revision.update.installation_behavior.can_request_user_input)
        .count();
    assert!(interactive >= 2);
    let driver = revision(&service, "Example Networks X710 driver 1.4.2");
    assert_eq!(driver.update.update_type, UpdateType::Driver);
    let optional = revision(&service, "Example Diagnostics 1.0 (optional)");
    assert_eq!(
        optional.update.deployment_action,
        DeploymentAction::OptionalInstallation
    );

    // The installer every update shares is stored once.
    let listed: usize = service.revisions.iter().map(|r| r.content.len()).sum();
    assert!(service.payloads.len() < listed);
    let mut digests: Vec<_> = service
        .payloads
        .iter()
        .map(|(file, _)| file.sha256)
        .collect();
    digests.sort_by_key(|digest| digest.0);
    digests.dedup();
    assert_eq!(digests.len(), service.payloads.len());
}

#[test]
fn a_built_package_opens_with_its_key() {
    let built = build(true);
    let opened = package::open_package(&built.path, &built.key.public_key()).unwrap();
    assert_eq!(opened.snapshot, built.snapshot);
    assert_eq!(opened.snapshot.format, FORMAT_VERSION);
    assert_eq!(opened.snapshot.version, 7);
    assert_eq!(opened.content.len(), sample().payloads.len());
    opened.snapshot.check_not_expired(Timestamp::now()).unwrap();

    let names: Vec<String> = unpack(&built.path)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names[0], package::SNAPSHOT_ENTRY);
    assert_eq!(names[1], package::SIGNATURE_ENTRY);
    assert!(names[2..].iter().all(|name| name.starts_with("content/")));
    // Nothing but the package is left beside it.
    assert_eq!(fs::read_dir(built.dir.path()).unwrap().count(), 1);
}

#[test]
fn content_extracts_and_is_checked() {
    let built = build(true);
    let (file, source) = sample().payloads.into_iter().next().unwrap();
    let dest = built.dir.path().join("extracted");
    package::extract_content(&built.path, &file.sha256, &dest).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), fs::read(&source).unwrap());

    let absent = Sha256Digest([0xab; 32]);
    let missing = built.dir.path().join("missing");
    let error = package::extract_content(&built.path, &absent, &missing).unwrap_err();
    assert!(matches!(error, CatalogError::Malformed(_)), "{error:?}");
    assert!(!missing.exists());
}

#[test]
fn content_can_be_left_out() {
    let built = build(false);
    let opened = package::open_package(&built.path, &built.key.public_key()).unwrap();
    assert!(opened.content.is_empty());
    assert_eq!(opened.snapshot.revisions.len(), sample().revisions.len());
}

/// A snapshot signed elsewhere (an update server's) becomes a package
/// that opens with the signer's key; a signature that does not verify
/// writes nothing.
#[test]
fn a_package_is_written_from_a_snapshot_signed_elsewhere() {
    let built = build(false);
    let service = sample();
    let bytes = serde_json::to_vec(&built.snapshot).unwrap();
    let signature = built.key.sign(&bytes);
    let out = built.dir.path().join("presigned.owpkg");
    let written = package::write_signed_package(
        &bytes,
        &signature,
        &built.key.public_key(),
        &service.payloads,
        &out,
    )
    .unwrap();
    assert_eq!(written, built.snapshot);
    let opened = package::open_package(&out, &built.key.public_key()).unwrap();
    assert_eq!(opened.snapshot, built.snapshot);
    assert_eq!(opened.content.len(), service.payloads.len());

    let other = SecretKey::generate().unwrap().public_key();
    let refused = built.dir.path().join("refused.owpkg");
    let error =
        package::write_signed_package(&bytes, &signature, &other, &[], &refused).unwrap_err();
    assert!(matches!(error, CatalogError::BadSignature(_)), "{error:?}");
    assert!(!refused.exists());
}

#[test]
fn another_key_is_a_bad_signature() {
    let built = build(false);
    let other = SecretKey::generate().unwrap().public_key();
    let error = assert_refused(
        package::open_package(&built.path, &other),
        WU_E_METADATA_BAD_SIGNATURE,
        "wrong key",
    );
    assert!(matches!(error, CatalogError::BadSignature(_)));
    assert_eq!(error.hresult().to_u32(), 0x8024_7140);
}

#[test]
fn a_flipped_byte_anywhere_is_damage() {
    let built = build(true);
    let bytes = fs::read(&built.path).unwrap();
    let mut positions: Vec<usize> = (0..64).map(|step| step * bytes.len() / 64).collect();
    positions.extend([bytes.len() / 2, bytes.len() - 1, 0, 4, 5, 6]);
    let entries = unpack(&built.path);
    for position in positions {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x20;
        let what = format!("byte {position} of {} flipped", bytes.len());
        match open_bytes(&built, &damaged) {
            // A flip may go unnoticed only where it changes nothing decoded:
            // a frame header bit (the window size), or, depending on how
            // this run's random key compressed, a bit of the compressed
            // stream that decodes to the same bytes. The signed entries are
            // then exactly the original ones.
            Ok(opened) => {
                assert_eq!(opened.snapshot, built.snapshot, "{what}");
                let decoded = unpack(&built.dir.path().join("damaged.wuapkg"));
                assert!(
                    decoded == entries,
                    "{what}: decoded differently, yet opened"
                );
            }
            // The signature is checked before the end of the frame, where
            // its checksum is: a flip that changes the signed entries is a
            // bad signature; any other is damage.
            Err(CatalogError::BadSignature(_)) => assert!(
                signed_entries(&damaged).as_deref() != Some(&entries[..2]),
                "{what}: the signed entries decoded unchanged, yet a bad signature"
            ),
            Err(_) => assert_malformed(open_bytes(&built, &damaged), &what),
        }
    }
}

/// The first two entries of a package, as far as they decode (the frame's
/// checksum, at its end, is not reached).
fn signed_entries(bytes: &[u8]) -> Option<Vec<Entry>> {
    let decoder = zstd::Decoder::new(bytes).ok()?;
    let mut archive = tar::Archive::new(decoder);
    let mut entries = archive.entries().ok()?;
    let mut first = Vec::new();
    for _ in 0..2 {
        let mut entry = entries.next()?.ok()?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).ok()?;
        first.push((name, data));
    }
    Some(first)
}

#[test]
fn truncated_packages_are_damage() {
    let built = build(true);
    let bytes = fs::read(&built.path).unwrap();
    let len = bytes.len();
    for cut in [
        0,
        1,
        3,
        4,
        10,
        100,
        512,
        len / 3,
        len / 2,
        len - 5,
        len - 4,
        len - 1,
    ] {
        assert_malformed(
            open_bytes(&built, &bytes[..cut]),
            &format!("cut at {cut} of {len}"),
        );
    }
}

#[test]
fn things_that_are_not_packages_are_refused() {
    let built = build(false);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            // xorshift: enough noise, and the same every run.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    assert_malformed(open_bytes(&built, &random), "random bytes");
    let mut with_magic = vec![0x28, 0xb5, 0x2f, 0xfd];
    with_magic.extend_from_slice(&random[..1000]);
    assert_malformed(open_bytes(&built, &with_magic), "zstd magic, then noise");
    assert_malformed(
        open_bytes(&built, &zstd::encode_all(&b"hello"[..], 3).unwrap()),
        "zstd of text",
    );
    // An uncompressed tar of the right entries.
    let mut tar = tar::Builder::new(Vec::new());
    for (name, bytes) in unpack(&built.path) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        tar.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    assert_malformed(open_bytes(&built, &tar.into_inner().unwrap()), "plain tar");

    let missing = built.dir.path().join("no-such-file");
    let error = package::open_package(&missing, &built.key.public_key()).unwrap_err();
    assert!(matches!(error, CatalogError::Io { .. }), "{error:?}");
}

#[test]
fn a_changed_snapshot_is_a_bad_signature() {
    let built = build(false);
    let mut entries = unpack(&built.path);
    let text = String::from_utf8(entries[0].1.clone()).unwrap();
    entries[0].1 = text
        .replacen("OpenSSL 3.0.15", "OpenSSL 3.0.99", 1)
        .into_bytes();
    let error = assert_refused(
        open_bytes(&built, &repack(&entries)),
        WU_E_METADATA_BAD_SIGNATURE,
        "changed title",
    );
    assert!(matches!(error, CatalogError::BadSignature(_)));

    // Signed garbage is still garbage, found after the signature verified.
    let garbage = b"{\"format\": 1, \"serviceId\": 5}".to_vec();
    entries[1].1 = built.key.sign(&garbage).to_vec();
    entries[0].1 = garbage;
    assert_malformed(open_bytes(&built, &repack(&entries)), "signed garbage");
}

#[test]
fn entries_must_be_the_expected_ones() {
    let built = build(true);
    let entries = unpack(&built.path);
    let (snapshot, signature) = (entries[0].clone(), entries[1].clone());
    let content = entries[2].clone();

    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("no entries", vec![]),
        ("snapshot alone", vec![snapshot.clone()]),
        ("swapped", vec![signature.clone(), snapshot.clone()]),
        (
            "short signature",
            vec![snapshot.clone(), ("snapshot.json.sig".into(), vec![0; 63])],
        ),
        (
            "an extra file",
            vec![
                snapshot.clone(),
                signature.clone(),
                ("install.sh".into(), b"#!/bin/sh\n".to_vec()),
            ],
        ),
        (
            "content twice",
            vec![
                snapshot.clone(),
                signature.clone(),
                content.clone(),
                content.clone(),
            ],
        ),
        (
            "content that does not match its name",
            vec![
                snapshot.clone(),
                signature.clone(),
                (content.0.clone(), b"something else".to_vec()),
            ],
        ),
        (
            "content in upper case",
            vec![
                snapshot.clone(),
                signature.clone(),
                (
                    content.0.to_uppercase().replace("CONTENT/", "content/"),
                    content.1.clone(),
                ),
            ],
        ),
        (
            "content no revision lists",
            vec![
                snapshot.clone(),
                signature.clone(),
                (
                    format!("content/{}", hex(b"unlisted")),
                    b"unlisted".to_vec(),
                ),
            ],
        ),
    ];
    for (what, entries) in cases {
        assert_malformed(open_bytes(&built, &repack(&entries)), what);
    }

    // What follows the compressed stream belongs to no package.
    let mut appended = fs::read(&built.path).unwrap();
    appended.extend_from_slice(&zstd::encode_all(&b"more"[..], 3).unwrap());
    assert_malformed(open_bytes(&built, &appended), "a second zstd frame");
}

fn hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256Digest(Sha256::digest(bytes).into()).to_string()
}

#[test]
fn expired_snapshots_are_stale() {
    let built = build(false);
    let snapshot = package::open_package(&built.path, &built.key.public_key())
        .unwrap()
        .snapshot;
    let error = snapshot.check_not_expired(snapshot.expires).unwrap_err();
    assert!(matches!(error, CatalogError::Stale(_)));
    assert_eq!(
        error.hresult(),
        WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
    );
    assert_eq!(error.hresult().to_u32(), 0x8024_7163);
    snapshot
        .check_not_expired(snapshot.expires - SignedDuration::from_secs(1))
        .unwrap();
}

#[test]
fn a_newer_format_needs_a_newer_client() {
    let built = build(false);
    let mut document = serde_json::to_value(&built.snapshot).unwrap();
    document["format"] = (FORMAT_VERSION + 1).into();
    let error = assert_refused(
        open_bytes(&built, &resigned(&built, &document, &built.key)),
        WU_E_OL_NEWCLIENT_REQUIRED,
        "format + 1",
    );
    assert!(matches!(error, CatalogError::FormatTooNew { .. }));

    // A newer format may have fields this build does not know.
    document["somethingNew"] = serde_json::json!({"answer": 42});
    assert_refused(
        open_bytes(&built, &resigned(&built, &document, &built.key)),
        WU_E_OL_NEWCLIENT_REQUIRED,
        "format + 1 with a new field",
    );
    assert_eq!(WU_E_OL_NEWCLIENT_REQUIRED.to_u32(), 0x8024_7002);
}

#[test]
fn duplicate_update_ids_are_refused() {
    let built = build(false);
    let mut document = serde_json::to_value(&built.snapshot).unwrap();
    let revisions = document["revisions"].as_array_mut().unwrap();
    revisions.push(revisions[0].clone());
    assert_malformed(
        open_bytes(&built, &resigned(&built, &document, &built.key)),
        "signed snapshot with an update twice",
    );

    let mut snapshot = built.snapshot.clone();
    snapshot.revisions.push(snapshot.revisions[0].clone());
    let out = built.dir.path().join("duplicate.wuapkg");
    let error = package::write_package(&snapshot, &[], &built.key, &out).unwrap_err();
    assert!(matches!(error, CatalogError::Malformed(_)), "{error:?}");
    assert!(!out.exists());

    let service = copy_sample();
    copy_dir(
        &service.path().join("tzdata-2026b"),
        &service.path().join("tzdata-2026b-copy"),
    );
    let error = manifest::load_service_dir(service.path()).unwrap_err();
    let message = authoring_message(error);
    assert!(message.contains("update_id"), "{message}");
    assert!(message.contains("tzdata-2026b"), "{message}");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn copy_sample() -> TempDir {
    let dir = TempDir::new().unwrap();
    copy_dir(&sample_dir(), dir.path());
    dir
}

fn authoring_message(error: CatalogError) -> String {
    assert_eq!(error.hresult(), WU_E_OL_INVALID_SCANFILE);
    match error {
        CatalogError::Authoring(message) => message,
        other => panic!("not an authoring error: {other:?}"),
    }
}

/// Edits one update of a copy of the sample, and returns the error that
/// loading it gives.
fn manifest_error(update: &str, edit: impl FnOnce(&Path, String) -> String) -> String {
    let service = copy_sample();
    let path = service.path().join(update).join("update.toml");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, edit(&service.path().join(update), text)).unwrap();
    let error = manifest::load_service_dir(service.path()).unwrap_err();
    authoring_message(error)
}

#[test]
fn manifest_errors_name_the_file_and_key() {
    let message = manifest_error("tzdata-2026b", |_, text| {
        text.replace("impact = ", "colour = \"blue\"\nimpact = ")
    });
    assert!(message.contains("tzdata-2026b/update.toml"), "{message}");
    assert!(message.contains("colour"), "{message}");

    let message = manifest_error("tzdata-2026b", |dir, text| {
        fs::remove_file(dir.join("NEWS")).unwrap();
        text
    });
    assert!(
        message.contains("tzdata-2026b/update.toml: files"),
        "{message}"
    );
    assert!(message.contains("NEWS"), "{message}");

    let message = manifest_error("tzdata-2026b", |_, text| {
        text.replace(
            "installable = { deb_installed",
            "installable = { deb_instaled",
        )
    });
    assert!(
        message.contains("unknown variant `deb_instaled`"),
        "{message}"
    );

    let message = manifest_error("kernel-hardening-settings", |_, text| {
        text.replace(
            "hidden_by_default = true",
            "hidden_by_default = true\nis_mandatory = true",
        )
    });
    assert!(
        message.contains("kernel-hardening-settings/update.toml: hidden_by_default"),
        "{message}"
    );

    let message = manifest_error("ca-certificates-2026", |_, text| {
        text.replace("\"/etc/ssl/certs\"", "\"etc/ssl/certs\"")
    });
    assert!(message.contains("applicability.installable"), "{message}");

    let message = manifest_error("ca-certificates-2026", |_, text| {
        text.replace("program = \"install.sh\"", "program = \"setup.sh\"")
    });
    assert!(message.contains("handler.program"), "{message}");

    let message = manifest_error("example-office-suite-2026", |_, text| {
        text.replace(
            "bundled = [",
            "bundled = [\"00000000-0000-0000-0000-000000000001\", ",
        )
    });
    assert!(message.contains("bundled"), "{message}");

    let message = manifest_error("openssl-3.0.15", |_, text| {
        text.replace("msrc_severity = \"critical\"", "msrc_severity = \"severe\"")
    });
    assert!(message.contains("severe"), "{message}");

    let message = manifest_error("openssl-3.0.15", |_, text| {
        text.replace("CVE-2024-5535", "5535")
    });
    assert!(message.contains("cve_ids"), "{message}");

    let message = manifest_error("example-nic-driver-1.4.2", |_, text| {
        text.replace("code = 194", "code = 3010")
    });
    assert!(message.contains("handler.exit_codes"), "{message}");
    assert!(message.contains("194"), "{message}");

    // 2.0 requires the baseline; the baseline requiring 2.1 closes a loop.
    let agent = sample()
        .revisions
        .iter()
        .find(|r| r.update.title == "Example Agent 2.1 feature update")
        .unwrap()
        .update
        .identity
        .update_id;
    let message = manifest_error("debian-12-baseline", |_, text| {
        text.replace(
            "[applicability]",
            &format!("[applicability]\nprerequisites = [\"{agent}\"]"),
        )
    });
    assert!(message.contains("prerequisites"), "{message}");
    assert!(message.contains("itself"), "{message}");

    let message = manifest_error("example-diagnostics-1.0", |_, text| {
        text.replace("uninstall = [", "# uninstall = [")
            + "\n[uninstallation]\nimpact = \"minor\"\n"
    });
    assert!(message.contains("uninstallation"), "{message}");
}

#[test]
fn a_failed_write_leaves_nothing() {
    let built = build(false);
    let service = sample();
    let (file, _) = service.payloads[0].clone();
    let out = built.dir.path().join("new.wuapkg");
    let payloads = [(file, built.dir.path().join("gone"))];
    let error = package::write_package(&built.snapshot, &payloads, &built.key, &out).unwrap_err();
    assert!(matches!(error, CatalogError::Io { .. }), "{error:?}");
    let left: Vec<_> = fs::read_dir(built.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("sample.wuapkg")]);

    // A payload the snapshot does not list is refused before anything is written.
    let stray = built.dir.path().join("stray");
    fs::write(&stray, b"stray").unwrap();
    let mut listed = service.payloads[0].0.clone();
    listed.size += 1;
    let error =
        package::write_package(&built.snapshot, &[(listed, stray)], &built.key, &out).unwrap_err();
    assert!(matches!(error, CatalogError::Authoring(_)), "{error:?}");
    assert!(!out.exists());
}

/// Copies an update's payload files into one directory, as the agent
/// stages them before running its installer.
fn stage(service: &AuthoredService, revision: &Revision) -> TempDir {
    let staging = TempDir::new().unwrap();
    for file in &revision.content {
        let (_, source) = service
            .payloads
            .iter()
            .find(|(payload, _)| payload.sha256 == file.sha256)
            .unwrap();
        fs::copy(source, staging.path().join(&file.file_name)).unwrap();
    }
    staging
}

#[test]
fn sample_installers_stay_in_their_sandbox() {
    let service = sample();
    let tzdata = stage(&service, revision(&service, "tzdata 2026b"));
    let script = tzdata.path().join("install.sh");
    let run = |sandbox: Option<&Path>| {
        let mut command = Command::new("sh");
        command.arg(&script).args(["tzdata", "2026b"]).env_clear();
        if let Some(sandbox) = sandbox {
            command.env("OPENWUA_SANDBOX", sandbox);
        }
        command.output().unwrap()
    };
    let refused = run(None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("OPENWUA_SANDBOX"));

    let sandbox = TempDir::new().unwrap();
    let done = run(Some(sandbox.path()));
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        fs::read_to_string(sandbox.path().join("tzdata/VERSION")).unwrap(),
        "2026b\n"
    );

    let agent = stage(
        &service,
        revision(&service, "Example Agent 2.1 feature update"),
    );
    let mut child = Command::new("sh")
        .arg(agent.path().join("install-agent.sh"))
        .env_clear()
        .env("OPENWUA_SANDBOX", sandbox.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(194));
    assert_eq!(
        fs::read_to_string(sandbox.path().join("example-agent/agent.conf")).unwrap(),
        "diagnostics=on\n"
    );
}

/// A zstd frame holding `prefix` and then `zeros` zero bytes, made of raw
/// and RLE blocks (4 bytes per 128 KiB of zeros), so a bomb of gigabytes
/// is a few hundred kilobytes and costs nothing to build. It has no
/// checksum, and nothing follows the zeros: only what a reader does before
/// it reaches the end matters.
fn zstd_bomb(prefix: &[u8], zeros: u64) -> Vec<u8> {
    const BLOCK: u64 = 128 << 10;
    const RAW: u32 = 0;
    const RLE: u32 = 1;
    assert!(zeros > 0, "the last block is a block of zeros");
    // Magic; no content size, no checksum; a 128 KiB window (2^(10 + 7)).
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
    let block = |frame: &mut Vec<u8>, kind: u32, size: u64, last: bool| {
        let header = u32::from(last) | kind << 1 | (size as u32) << 3;
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
    };
    for chunk in prefix.chunks(BLOCK as usize) {
        block(&mut frame, RAW, chunk.len() as u64, false);
        frame.extend_from_slice(chunk);
    }
    let mut left = zeros;
    while left > 0 {
        let size = left.min(BLOCK);
        left -= size;
        block(&mut frame, RLE, size, left == 0);
        frame.push(0);
    }
    frame
}

/// A package of `entries`, then a header for an entry `name` of type
/// `kind` that claims `size` bytes, then those bytes (zeros).
fn bomb(entries: &[Entry], name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut archive = tar::Builder::new(Vec::new());
    for (entry_name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        archive
            .append_data(&mut header, entry_name, &bytes[..])
            .unwrap();
    }
    let mut tar = archive.into_inner().unwrap();
    // The builder's end-of-archive blocks go: the bomb's header replaces them.
    tar.truncate(tar.len() - 1024);
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    zstd_bomb(&tar, size)
}

/// Opens `bytes`, refused with `expected` and a message containing
/// `says`, within the bound (under a second asked; 5 s allowed).
#[track_caller]
fn assert_refused_at_once(built: &Built, bytes: &[u8], expected: HResult, says: &str, what: &str) {
    let started = std::time::Instant::now();
    let result = open_bytes(built, bytes);
    let elapsed = started.elapsed();
    println!("{what}: {} bytes, refused in {elapsed:.2?}", bytes.len());
    let error = assert_refused(result, expected, what);
    assert!(error.to_string().contains(says), "{what}: {error}");
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "{what}: took {elapsed:?}"
    );
}

#[test]
fn unsigned_bombs_are_refused_at_once() {
    let built = build(true);
    let entries = unpack(&built.path);
    let regular = tar::EntryType::Regular;
    // A snapshot of 10 GB of zeros, and one of 1 GiB (once under the limit).
    for size in [10_000_000_000, 1 << 30] {
        assert_refused_at_once(
            &built,
            &bomb(&[], package::SNAPSHOT_ENTRY, regular, size),
            WU_E_OL_INVALID_SCANFILE,
            "at most",
            &format!("a snapshot of {size} zeros"),
        );
    }
    // A real snapshot, not signed, then 10 GB of content: the signature
    // is checked before any content is read.
    let unsigned = [
        entries[0].clone(),
        (package::SIGNATURE_ENTRY.to_owned(), vec![0; 64]),
    ];
    assert_refused_at_once(
        &built,
        &bomb(&unsigned, &entries[2].0, regular, 10_000_000_000),
        WU_E_METADATA_BAD_SIGNATURE,
        "",
        "an unsigned snapshot and 10 GB of content",
    );
}

#[test]
fn extension_headers_are_refused_unread() {
    let built = build(true);
    let signed = &unpack(&built.path)[..2];
    for (kind, name) in [
        (tar::EntryType::GNULongName, "././@LongLink"),
        (tar::EntryType::GNULongLink, "././@LongLink"),
        (tar::EntryType::XHeader, "PaxHeaders/snapshot.json"),
        (tar::EntryType::XGlobalHeader, "pax_global_header"),
    ] {
        // First, and after the signed entries.
        for prefix in [&[][..], signed] {
            assert_refused_at_once(
                &built,
                &bomb(prefix, name, kind, 1 << 30),
                WU_E_OL_INVALID_SCANFILE,
                "extension header",
                &format!("a {kind:?} header of 1 GiB after {} entries", prefix.len()),
            );
        }
    }
}

#[test]
fn content_the_signed_snapshot_does_not_list_is_refused_unread() {
    let built = build(true);
    let entries = unpack(&built.path);
    let regular = tar::EntryType::Regular;
    let unlisted = format!("content/{}", hex(b"unlisted"));
    assert_refused_at_once(
        &built,
        &bomb(&entries[..2], &unlisted, regular, 4 << 30),
        WU_E_OL_INVALID_SCANFILE,
        "not a content file",
        "4 GiB of content the snapshot does not list",
    );
    // A listed digest, but not the size the snapshot gives it.
    assert_refused_at_once(
        &built,
        &bomb(&entries[..2], &entries[2].0, regular, 4 << 30),
        WU_E_OL_INVALID_SCANFILE,
        "the snapshot says",
        "a listed content file claiming 4 GiB",
    );
}
#[test]
fn content_file_names_must_be_plain() {
    let built = build(false);
    let long = "x".repeat(256);
    for name in [
        "../x", "/etc/x", "a/b", "", ".", "..", "a\0b", "a\nb", "a\u{7f}b", &long,
    ] {
        let mut document = serde_json::to_value(&built.snapshot).unwrap();
        let revision = document["revisions"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|revision| !revision["content"].as_array().unwrap().is_empty())
            .unwrap();
        revision["content"][0]["fileName"] = name.into();
        revision["update"]["downloadContents"][0]["fileName"] = name.into();
        let error = assert_refused(
            open_bytes(&built, &resigned(&built, &document, &built.key)),
            WU_E_OL_INVALID_SCANFILE,
            &format!("file name {name:?}"),
        );
        assert!(
            matches!(&error, CatalogError::Malformed(message) if message.contains("file name")),
            "{name:?}: {error:?}"
        );

        // Nor is such a package written.
        let snapshot: Snapshot = serde_json::from_value(document).unwrap();
        let out = built.dir.path().join("bad-name.wuapkg");
        let error = package::write_package(&snapshot, &[], &built.key, &out).unwrap_err();
        assert!(matches!(error, CatalogError::Malformed(_)), "{error:?}");
        assert!(!out.exists());
    }
    // 255 bytes is a file name Linux takes.
    let mut snapshot = built.snapshot.clone();
    let revision = snapshot
        .revisions
        .iter_mut()
        .find(|revision| !revision.content.is_empty())
        .unwrap();
    revision.content[0].file_name = "x".repeat(255);
    revision.update.download_contents[0].file_name = "x".repeat(255);
    snapshot.validate().unwrap();
}

#[test]
fn manifests_refuse_file_names_a_package_could_not_carry() {
    // Too long for Linux to create; a control character it would create.
    let long = "x".repeat(256);
    for (name, toml, create) in [
        (&long[..], long.clone(), false),
        ("a\u{1}b", "a\\u0001b".into(), true),
    ] {
        let message = manifest_error("tzdata-2026b", |dir, text| {
            if create {
                fs::write(dir.join(name), b"payload").unwrap();
            }
            text.replace("\"NEWS\"", &format!("\"NEWS\", \"{toml}\""))
        });
        assert!(
            message.contains("tzdata-2026b/update.toml: files"),
            "{message}"
        );
        assert!(message.contains("control characters"), "{message}");
    }
}
