//! Debian's repository formats, and the mapping of a machine's apt state to
//! WUA updates (`docs/apt.md`).
//!
//! [`scan_machine`] reads what apt and dpkg keep on a machine — the
//! sources ([`sources`]), the lists apt downloaded and verified beside
//! their `Release` files ([`release`], [`compressed`], [`listnames`]),
//! dpkg's `status` ([`packages`]) — and hands them to
//! [`mapping::map_updates`], a pure function the update server's import
//! can call with data it read elsewhere. This crate reads only the files it
//! is given, never the network, and decides nothing about the machine
//! beyond what those files say.
//!
//! ```no_run
//! let paths = openwua_apt::AptPaths::new("/".as_ref(), "/var/lib/dpkg".as_ref());
//! let scan = openwua_apt::scan_machine(&paths, jiff::Timestamp::now())?;
//! for revision in &scan.revisions {
//!     println!("{}", revision.update.title);
//! }
//! # Ok::<(), openwua_apt::AptError>(())
//! ```

#![deny(missing_docs)]

pub mod compressed;
pub mod deb822;
pub mod listnames;
pub mod mapping;
pub mod packages;
pub mod release;
pub mod sources;

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use openwua_catalog::revision::Revision;
use openwua_model::hresult::{
    HResult, WU_E_METADATA_NO_VERIFICATION_DATA, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
    WU_E_METADATA_UNEXPECTED, WU_E_XML_INVALID,
};

use crate::compressed::Compression;
use crate::mapping::{OfferedList, Pocket};
use crate::packages::{BinaryPackage, InstalledPackage};
use crate::release::Release;
use crate::sources::{SourceEntry, SourcesError};

/// Where apt and dpkg keep what the apt service reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptPaths {
    /// apt's `Dir` (`/` for the machine's own): `etc/apt/sources.list`,
    /// `etc/apt/sources.list.d/`, `var/lib/apt/lists/`,
    /// `var/cache/apt/archives/` beneath it.
    pub root: PathBuf,
    /// dpkg's database directory (its `status` file).
    pub dpkg_admindir: PathBuf,
}

impl AptPaths {
    /// apt beneath `root`, dpkg's database in `dpkg_admindir`.
    pub fn new(root: &Path, dpkg_admindir: &Path) -> Self {
        AptPaths {
            root: root.to_owned(),
            dpkg_admindir: dpkg_admindir.to_owned(),
        }
    }

    /// apt's lists directory.
    pub fn lists_dir(&self) -> PathBuf {
        self.root.join("var/lib/apt/lists")
    }
}

/// One list file the scan read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSummary {
    /// The list file.
    pub path: PathBuf,
    /// Its Release's `Origin`.
    pub origin: String,
    /// Its Release's `Suite`.
    pub suite: String,
    /// How many binary packages it lists.
    pub packages: usize,
}

/// A list the sources configure that apt has not downloaded (the
/// repository was unreachable, or `apt-get update` has not run since the
/// entry was added): left out, as apt warns and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingList {
    /// The file apt would keep (for a suite whose Release is missing, its
    /// `InRelease`; for a component with no list, `…_binary-*_Packages`).
    pub path: PathBuf,
    /// The sources entry, as `uri suite`.
    pub entry: String,
}

/// What one read of the machine's apt state offers.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineScan {
    /// One revision per source-package version the lists offer for a
    /// source the machine has a binary of — installed and newer versions
    /// alike — ordered by source, then version (`docs/apt.md`).
    pub revisions: Vec<Revision>,
    /// The lists read, in sources order.
    pub lists: Vec<ListSummary>,
    /// Lists the sources configure that are not on disk.
    pub missing: Vec<MissingList>,
    /// What dpkg's `status` says is on the machine (installed, or partly).
    pub installed: Vec<InstalledPackage>,
}

/// Why the machine's apt state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// A list apt did not verify: no Release beside it, a Release without a
    /// SHA256 list or without this index, or content whose digest or size
    /// differs (`WU_E_METADATA_NO_VERIFICATION_DATA`).
    #[error("{path}: {reason}; run `apt-get update`")]
    Unverified {
        /// The list file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A Release past its `Valid-Until`
    /// (`WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW`, as for an expired
    /// catalog).
    #[error("{path}: valid until {valid_until}, which has passed; run `apt-get update`")]
    Expired {
        /// The Release or InRelease file.
        path: PathBuf,
        /// Its `Valid-Until`.
        valid_until: jiff::Timestamp,
    },
    /// A file apt or dpkg keeps is not in its format
    /// (`WU_E_XML_INVALID`: the metadata holds invalid information).
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line when known.
        reason: String,
    },
    /// A file could not be read (`WU_E_METADATA_UNEXPECTED`).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl AptError {
    /// WUA's code for the error.
    pub fn hresult(&self) -> HResult {
        match self {
            AptError::Unverified { .. } => WU_E_METADATA_NO_VERIFICATION_DATA,
            AptError::Expired { .. } => WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
            AptError::Malformed { .. } => WU_E_XML_INVALID,
            AptError::Io { .. } => WU_E_METADATA_UNEXPECTED,
        }
    }

    fn malformed(path: &Path, reason: impl ToString) -> Self {
        AptError::Malformed {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }

    fn unverified(path: &Path, reason: impl Into<String>) -> Self {
        AptError::Unverified {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        AptError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl From<SourcesError> for AptError {
    fn from(error: SourcesError) -> Self {
        match error {
            SourcesError::Io(path, source) => AptError::Io { path, source },
            SourcesError::Format(path, error) => AptError::malformed(&path, error),
        }
    }
}

/// The largest dpkg `status` file read.
pub const MAX_STATUS_BYTES: u64 = 256 << 20;

/// A list on disk, verified against its Release, not yet parsed.
#[derive(Debug)]
pub struct VerifiedList {
    /// The list file.
    pub path: PathBuf,
    /// Which of the scan's Releases it belongs to.
    pub release: usize,
    /// Its decompressed text.
    pub text: String,
}

/// The verified lists of the machine's sources, with their Releases, and
/// what is missing: the reading half of [`scan_machine`], before parsing.
#[derive(Debug, Default)]
pub struct VerifiedLists {
    /// The Releases the lists belong to.
    pub releases: Vec<Release>,
    /// The lists, in sources order.
    pub lists: Vec<VerifiedList>,
    /// Configured lists not on disk.
    pub missing: Vec<MissingList>,
}

/// Reads and verifies every list the sources under `paths.root`
/// configure: each must have an `InRelease` or `Release` beside it, not
/// past `Valid-Until` at `now`, listing the list's decompressed size and
/// SHA-256 (hashed while decompressing, before anything is parsed).
pub fn read_verified_lists(
    paths: &AptPaths,
    now: jiff::Timestamp,
) -> Result<VerifiedLists, AptError> {
    let entries = sources::read_sources(&paths.root)?;
    let lists_dir = paths.lists_dir();
    let on_disk = list_directory(&lists_dir)?;
    let mut found = VerifiedLists::default();
    let mut seen_lists = HashSet::new();
    let mut seen_suites: Vec<(String, usize)> = Vec::new();
    for entry in &entries {
        let described = format!("{} {}", entry.uri, entry.suite);
        let candidates = packages_lists(entry, &on_disk);
        let [inrelease, plain] = listnames::release_file_names(entry);
        let release_name = [&inrelease, &plain]
            .into_iter()
            .find(|name| on_disk.contains(name.as_str()));
        let Some(release_name) = release_name else {
            if let Some((path, _)) = candidates.iter().flat_map(|(_, lists)| lists).next() {
                return Err(AptError::unverified(
                    &lists_dir.join(path),
                    "no InRelease or Release beside it, so nothing verifies it",
                ));
            }
            found.missing.push(MissingList {
                path: lists_dir.join(inrelease),
                entry: described,
            });
            continue;
        };
        let release_index = match seen_suites.iter().find(|(name, _)| name == release_name) {
            Some((_, index)) => *index,
            None => {
                let release = read_release(&lists_dir.join(release_name), now)?;
                found.releases.push(release);
                seen_suites.push((release_name.clone(), found.releases.len() - 1));
                found.releases.len() - 1
            }
        };
        let release_path = lists_dir.join(release_name);
        for (component, lists) in candidates {
            if lists.is_empty() {
                // `…_binary-*_Packages` (apt would quote a `*` in a name).
                let pattern = listnames::list_file_name(
                    entry,
                    &listnames::packages_index_path(component.as_deref(), ""),
                )
                .replace("_binary-_Packages", "_binary-*_Packages");
                found.missing.push(MissingList {
                    path: lists_dir.join(pattern),
                    entry: described.clone(),
                });
            }
            for (name, (index_path, compression)) in lists {
                if !seen_lists.insert(name.clone()) {
                    continue;
                }
                let path = lists_dir.join(&name);
                let text = read_list(
                    &path,
                    &release_path,
                    &found.releases[release_index],
                    &index_path,
                    compression,
                )?;
                found.lists.push(VerifiedList {
                    path,
                    release: release_index,
                    text,
                });
            }
        }
    }
    Ok(found)
}

/// The file names in apt's lists directory (none when it does not exist).
fn list_directory(lists_dir: &Path) -> Result<BTreeSet<String>, AptError> {
    let listing = match std::fs::read_dir(lists_dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(error) => return Err(AptError::io(lists_dir, error)),
    };
    let mut names = BTreeSet::new();
    for item in listing {
        let item = item.map_err(|error| AptError::io(lists_dir, error))?;
        if let Ok(name) = item.file_name().into_string() {
            names.insert(name);
        }
    }
    Ok(names)
}

/// A list file name on disk, with its index path and compression.
type ListFile = (String, (String, Compression));

/// For each component of `entry` (`None` for a flat repository), the
/// Packages lists on disk: the architectures the entry names, or every
/// `binary-<arch>` list apt keeps for it. One file per index, in apt's
/// order of preference when several compressions are there.
fn packages_lists(
    entry: &SourceEntry,
    on_disk: &BTreeSet<String>,
) -> Vec<(Option<String>, Vec<ListFile>)> {
    let components: Vec<Option<String>> = if entry.is_flat() {
        vec![None]
    } else {
        entry.components.iter().cloned().map(Some).collect()
    };
    let mut result = Vec::new();
    for component in components {
        let mut index_paths = Vec::new();
        if component.is_none() {
            index_paths.push(listnames::packages_index_path(None, ""));
        } else if entry.architectures.is_empty() {
            let prefix = listnames::list_file_name(
                entry,
                &listnames::packages_index_path(component.as_deref(), ""),
            );
            // `…_binary-` + arch + `_Packages`: arch is what lies between.
            let prefix = prefix.trim_end_matches("_Packages");
            let mut architectures = BTreeSet::new();
            for name in on_disk.range(prefix.to_owned()..) {
                let Some(rest) = name.strip_prefix(prefix) else {
                    break;
                };
                if let Some((architecture, tail)) = rest.split_once('_') {
                    let plain = tail.strip_prefix("Packages");
                    if plain
                        .is_some_and(|ext| Compression::ALL.iter().any(|c| c.extension() == ext))
                    {
                        architectures.insert(architecture.to_owned());
                    }
                }
            }
            for architecture in architectures {
                index_paths.push(listnames::packages_index_path(
                    component.as_deref(),
                    &architecture,
                ));
            }
        } else {
            for architecture in &entry.architectures {
                index_paths.push(listnames::packages_index_path(
                    component.as_deref(),
                    architecture,
                ));
            }
        }
        let mut lists = Vec::new();
        for index_path in index_paths {
            let base = listnames::list_file_name(entry, &index_path);
            let present = Compression::ALL.into_iter().find_map(|compression| {
                let name = format!("{base}{}", compression.extension());
                on_disk.contains(&name).then_some((name, compression))
            });
            if let Some((name, compression)) = present {
                lists.push((name, (index_path, compression)));
            }
        }
        result.push((component, lists));
    }
    result
}

fn read_release(path: &Path, now: jiff::Timestamp) -> Result<Release, AptError> {
    let bytes = read_bounded(path, release::MAX_RELEASE_BYTES)?;
    let text =
        deb822::text(&bytes).map_err(|error| AptError::unverified(path, error.to_string()))?;
    let release = release::parse_release(text)
        .map_err(|error| AptError::unverified(path, error.to_string()))?;
    if let Some(valid_until) = release.valid_until
        && valid_until <= now
    {
        return Err(AptError::Expired {
            path: path.to_owned(),
            valid_until,
        });
    }
    Ok(release)
}

fn read_list(
    path: &Path,
    release_path: &Path,
    release: &Release,
    index_path: &str,
    compression: Compression,
) -> Result<String, AptError> {
    let Some(expected) = release.sha256.get(index_path) else {
        return Err(AptError::unverified(
            path,
            format!("{} does not list {index_path}", release_path.display()),
        ));
    };
    let content = compressed::read_list(path, compression).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            AptError::io(path, error)
        }
        _ => AptError::malformed(path, error),
    })?;
    if content.bytes.len() as u64 != expected.size || content.sha256 != expected.sha256 {
        return Err(AptError::unverified(
            path,
            format!(
                "its content ({} bytes, SHA-256 {}) is not what {} lists for {index_path} ({} bytes, {})",
                content.bytes.len(),
                content.sha256,
                release_path.display(),
                expected.size,
                expected.sha256
            ),
        ));
    }
    String::from_utf8(content.bytes)
        .map_err(|error| AptError::malformed(path, format!("not UTF-8 text: {error}")))
}

fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, AptError> {
    let file = std::fs::File::open(path).map_err(|error| AptError::io(path, error))?;
    let metadata = file.metadata().map_err(|error| AptError::io(path, error))?;
    if !metadata.is_file() {
        return Err(AptError::malformed(path, "not a regular file"));
    }
    let mut bytes = Vec::with_capacity(metadata.len().min(limit) as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| AptError::io(path, error))?;
    if bytes.len() as u64 > limit {
        return Err(AptError::malformed(
            path,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// dpkg's `status` under `admindir`: what is on the machine.
pub fn read_installed(admindir: &Path) -> Result<Vec<InstalledPackage>, AptError> {
    let path = admindir.join("status");
    let bytes = read_bounded(&path, MAX_STATUS_BYTES)?;
    let text = deb822::text(&bytes).map_err(|error| AptError::malformed(&path, error))?;
    packages::parse_status(text).map_err(|error| AptError::malformed(&path, error))
}

/// Reads the lists apt has downloaded and verified, and dpkg's status, and
/// maps them to updates. Blocking; never talks to the network.
pub fn scan_machine(paths: &AptPaths, now: jiff::Timestamp) -> Result<MachineScan, AptError> {
    let verified = read_verified_lists(paths, now)?;
    let installed = read_installed(&paths.dpkg_admindir)?;
    let mut parsed: Vec<Vec<BinaryPackage<'_>>> = Vec::with_capacity(verified.lists.len());
    for list in &verified.lists {
        parsed.push(
            packages::parse_packages(&list.text)
                .map_err(|error| AptError::malformed(&list.path, error))?,
        );
    }
    let offered: Vec<OfferedList<'_>> = verified
        .lists
        .iter()
        .zip(&parsed)
        .map(|(list, packages)| {
            let release = &verified.releases[list.release];
            OfferedList {
                pocket: Pocket {
                    origin: release.publisher(),
                    suite: &release.suite,
                    codename: &release.codename,
                },
                packages,
            }
        })
        .collect();
    let revisions = mapping::map_updates(&offered, &installed);
    let lists = verified
        .lists
        .iter()
        .zip(&parsed)
        .map(|(list, packages)| {
            let release = &verified.releases[list.release];
            ListSummary {
                path: list.path.clone(),
                origin: release.origin.clone(),
                suite: release.suite.clone(),
                packages: packages.len(),
            }
        })
        .collect();
    Ok(MachineScan {
        revisions,
        lists,
        missing: verified.missing,
        installed,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use sha2::{Digest, Sha256};

    use super::*;

    const DIGEST: &str = "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f";
    const LISTS: &str = "var/lib/apt/lists";

    fn packages_text() -> String {
        format!(
            "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\nSize: 10\nSHA256: {DIGEST}\n\
             Description: greets\n\n\
             Package: other\nVersion: 1\nArchitecture: all\nSize: 1\nSHA256: {DIGEST}\n"
        )
    }

    /// A root with one source (`http://deb.example/debian bookworm main`),
    /// its InRelease listing `listed` for main/binary-amd64/Packages, the
    /// lz4 list holding `content`, and a dpkg status with hello 2.10-2.
    fn machine(listed: &str, content: &str, valid_until: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let path = |relative: &str| root.path().join(relative);
        std::fs::create_dir_all(path("etc/apt")).unwrap();
        std::fs::create_dir_all(path(LISTS)).unwrap();
        std::fs::create_dir_all(path("dpkg")).unwrap();
        std::fs::write(
            path("etc/apt/sources.list"),
            "deb http://deb.example/debian bookworm main\n",
        )
        .unwrap();
        let digest = hex(Sha256::digest(listed.as_bytes()).as_slice());
        std::fs::write(
            path(&format!(
                "{LISTS}/deb.example_debian_dists_bookworm_InRelease"
            )),
            format!(
                "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n\
                 Origin: Example\nSuite: stable\nCodename: bookworm\n{valid_until}\
                 SHA256:\n {digest} {} main/binary-amd64/Packages\n\
                 -----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n",
                listed.len()
            ),
        )
        .unwrap();
        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(content.as_bytes()).unwrap();
        std::fs::write(
            path(&format!(
                "{LISTS}/deb.example_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
            )),
            encoder.finish().unwrap(),
        )
        .unwrap();
        std::fs::write(
            path("dpkg/status"),
            "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-2\n",
        )
        .unwrap();
        root
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn scan(root: &Path) -> Result<MachineScan, AptError> {
        let now = "2026-07-12T00:00:00Z".parse().unwrap();
        scan_machine(&AptPaths::new(root, &root.join("dpkg")), now)
    }

    #[test]
    fn a_verified_list_gives_its_updates() {
        let text = packages_text();
        let root = machine(&text, &text, "Valid-Until: Sat, 18 Jul 2026 10:16:37 UTC\n");
        let found = scan(root.path()).unwrap();
        assert_eq!(found.lists.len(), 1);
        assert_eq!(found.lists[0].origin, "Example");
        assert_eq!(found.lists[0].packages, 2);
        assert!(found.missing.is_empty());
        let titles: Vec<_> = found
            .revisions
            .iter()
            .map(|r| r.update.title.as_str())
            .collect();
        assert_eq!(titles, ["hello 2.10-3"]);
        assert_eq!(found.installed.len(), 1);
    }

    #[test]
    fn a_changed_list_is_refused() {
        let text = packages_text();
        let tampered = text.replace("2.10-3", "2.10-9");
        let root = machine(&text, &tampered, "");
        let error = scan(root.path()).unwrap_err();
        assert!(matches!(error, AptError::Unverified { .. }), "{error}");
        assert_eq!(error.hresult(), WU_E_METADATA_NO_VERIFICATION_DATA);
        assert!(error.to_string().contains("Packages.lz4"), "{error}");
    }

    #[test]
    fn an_expired_release_is_refused() {
        let text = packages_text();
        let root = machine(&text, &text, "Valid-Until: Fri, 10 Jul 2026 10:16:37 UTC\n");
        let error = scan(root.path()).unwrap_err();
        assert!(matches!(error, AptError::Expired { .. }), "{error}");
        assert_eq!(
            error.hresult(),
            WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW
        );
    }

    #[test]
    fn a_list_without_its_release_is_refused() {
        let text = packages_text();
        let root = machine(&text, &text, "");
        std::fs::remove_file(
            root.path()
                .join(LISTS)
                .join("deb.example_debian_dists_bookworm_InRelease"),
        )
        .unwrap();
        let error = scan(root.path()).unwrap_err();
        assert!(
            error.to_string().contains("no InRelease or Release"),
            "{error}"
        );
    }

    #[test]
    fn lists_apt_never_downloaded_are_missing_not_errors() {
        let text = packages_text();
        let root = machine(&text, &text, "");
        std::fs::write(
            root.path().join("etc/apt/sources.list"),
            "deb http://deb.example/debian bookworm main contrib\n\
             deb http://unreachable.example/debian bookworm main\n",
        )
        .unwrap();
        let found = scan(root.path()).unwrap();
        let missing: Vec<_> = found
            .missing
            .iter()
            .map(|missing| missing.path.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            missing,
            [
                "deb.example_debian_dists_bookworm_contrib_binary-*_Packages",
                "unreachable.example_debian_dists_bookworm_InRelease"
            ]
        );
        assert_eq!(found.revisions.len(), 1);
    }
}
