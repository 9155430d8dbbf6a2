//! Registered scan packages, opened safely: the agent reads them as root,
//! from paths an administrator named but that may sit in directories other
//! users can write to.
//!
//! A package is opened without following a symlink at its last component
//! and non-blocking, then checked to be a regular file with `fstat`, so a
//! FIFO or device put in its place is refused at once instead of stalling a
//! sync. The catalog's reader takes a path; it is handed
//! `/proc/self/fd/<n>`, which names the very file checked, so nothing can
//! be swapped in between.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use openwua_catalog::CatalogError;
use openwua_model::hresult::WU_E_OL_INVALID_SCANFILE;

use crate::applicability::{Follow, open_regular_file};
use crate::error::{AgentError, Result};

/// What a package file was when it was read: a sync skips re-reading one
/// that is still exactly this file. The change time is part of it because
/// nobody can set it back, unlike the modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageIdentity {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

/// How long a file must have been left alone before its identity is kept.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// An open registered package.
pub struct PackageFile {
    file: File,
    path: PathBuf,
}

impl PackageFile {
    /// Opens the package at `path`; anything but a regular file reached
    /// without a final symlink is refused with `WU_E_OL_INVALID_SCANFILE`.
    pub fn open(path: &Path) -> Result<PackageFile> {
        let file = open_regular_file(path, Follow::Never).map_err(|error| {
            AgentError::new(
                WU_E_OL_INVALID_SCANFILE,
                format!(
                    "the scan package {}: {error}; a package must be a regular file, named by its own path",
                    path.display()
                ),
            )
        })?;
        Ok(PackageFile {
            file,
            path: path.to_owned(),
        })
    }

    /// The file's identity now, if it can be trusted to change with the
    /// file: not while the file changed less than [`SETTLE`] ago, since
    /// timestamps move in clock ticks and a rewrite of the same size within
    /// one tick would keep them (git's "racily clean" entries).
    pub fn identity(&self) -> Result<Option<PackageIdentity>> {
        let metadata = self.file.metadata().map_err(|error| {
            AgentError::new(
                WU_E_OL_INVALID_SCANFILE,
                format!("the scan package {}: {error}", self.path.display()),
            )
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        let settled = now.saturating_sub(metadata.ctime()) >= SETTLE.as_secs() as i64;
        Ok(settled.then(|| PackageIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }))
    }

    /// Runs a catalog reader on this open file. Blocking.
    pub fn read<T>(&self, reader: impl FnOnce(&Path) -> Result<T, CatalogError>) -> Result<T> {
        let by_descriptor = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        reader(Path::new(&by_descriptor)).map_err(|error| {
            let mut error = AgentError::from(error);
            // Say which package, not which descriptor.
            error.detail = error
                .detail
                .replace(&by_descriptor, &self.path.display().to_string());
            error
        })
    }
}
