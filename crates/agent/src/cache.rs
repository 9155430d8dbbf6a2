//! The content cache: verified content files by SHA-256, the staging
//! directories installers run from, and eviction.
//!
//! `content/<sha256>` appears only once verified (the fetcher renames a
//! checked `.part` into place), so a file's presence is what makes an
//! update `IsDownloaded`. Identical files of different updates are stored
//! once.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openwua_catalog::revision::{ContentFile, check_file_name};
use openwua_model::hresult::{WU_E_DM_DOWNLOADFILEMISSING, WU_E_UH_INVALIDMETADATA};
use openwua_model::update::Sha256Digest;
use uuid::Uuid;

use crate::error::{AgentError, Result};

/// The cache's directories: the agent's alone.
const PRIVATE_DIR_MODE: u32 = 0o700;
/// Content files: run directly by installers, which run as root.
pub const CONTENT_FILE_MODE: u32 = 0o700;

/// The cache under one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache at `root` (created when first written).
    pub fn new(root: &Path) -> Cache {
        Cache {
            root: root.to_path_buf(),
        }
    }

    fn content_dir(&self) -> PathBuf {
        self.root.join("content")
    }

    /// Where a verified content file lives.
    pub fn content_path(&self, sha256: &Sha256Digest) -> PathBuf {
        self.content_dir().join(sha256.to_string())
    }

    /// Whether a verified copy of the file is cached.
    pub fn has(&self, sha256: &Sha256Digest) -> bool {
        self.content_path(sha256).is_file()
    }

    /// Creates the cache and its content directory 0700, tightening ones an
    /// older agent left 0755. Content can come from `file://` sources only
    /// root may read and from catalogs other users cannot see, so nothing in
    /// it is public; installers run as root and need no wider mode.
    pub fn prepare(&self) -> Result<()> {
        for dir in [self.root.clone(), self.content_dir()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(PRIVATE_DIR_MODE)
                .create(&dir)
                .map_err(|error| io_error(&dir, error))?;
            let metadata = fs::metadata(&dir).map_err(|error| io_error(&dir, error))?;
            if metadata.permissions().mode() & 0o777 != PRIVATE_DIR_MODE {
                fs::set_permissions(&dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))
                    .map_err(|error| io_error(&dir, error))?;
            }
        }
        Ok(())
    }

    /// A fresh, empty directory holding `files` under their names (hard
    /// links into the cache, copies across file systems), for one update
    /// of one job. A name that is not a plain file name is refused before
    /// anything is created.
    pub fn stage(&self, job_id: Uuid, update_id: Uuid, files: &[ContentFile]) -> Result<PathBuf> {
        // The catalog refuses such names; a store written by an older
        // agent may still hold one, and the names are joined below as root.
        for file in files {
            check_file_name(&file.file_name).map_err(|reason| {
                AgentError::new(
                    WU_E_UH_INVALIDMETADATA,
                    format!("update {update_id}: content file {reason}"),
                )
            })?;
        }
        let dir = self
            .root
            .join("staging")
            .join(job_id.to_string())
            .join(update_id.to_string());
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|error| io_error(&dir, error))?;
        }
        let content = dir.join("content");
        fs::create_dir_all(&content).map_err(|error| io_error(&content, error))?;
        fs::create_dir_all(dir.join("work")).map_err(|error| io_error(&dir, error))?;
        for file in files {
            let source = self.content_path(&file.sha256);
            if !source.is_file() {
                return Err(AgentError::new(
                    WU_E_DM_DOWNLOADFILEMISSING,
                    format!(
                        "{} ({}) left the cache since it was downloaded",
                        file.file_name, file.sha256
                    ),
                ));
            }
            let target = content.join(&file.file_name);
            if fs::hard_link(&source, &target).is_err() {
                fs::copy(&source, &target).map_err(|error| io_error(&target, error))?;
            }
        }
        Ok(dir)
    }

    /// Removes a job's staging directories.
    pub fn unstage(&self, job_id: Uuid) {
        let dir = self.root.join("staging").join(job_id.to_string());
        // Leftovers are removed at the next start anyway.
        let _ = fs::remove_dir_all(dir);
    }

    /// Removes every staging directory (at start: no job survives a restart).
    pub fn clear_staging(&self) {
        let _ = fs::remove_dir_all(self.root.join("staging"));
    }

    /// Deletes cached files not in `needed`, oldest first, until the cache
    /// holds at most `max_bytes`. Returns the bytes freed.
    pub fn evict(&self, max_bytes: u64, needed: &HashSet<Sha256Digest>) -> Result<u64> {
        let dir = self.content_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut files = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            total += metadata.len();
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|name| name.parse::<Sha256Digest>().ok())
            else {
                // A `.part` of an unfinished download: kept for resuming.
                continue;
            };
            if !needed.contains(&digest) {
                let modified = metadata.modified().ok();
                files.push((modified, metadata.len(), entry.path()));
            }
        }
        files.sort();
        let mut freed = 0;
        for (_, size, path) in files {
            if total <= max_bytes {
                break;
            }
            fs::remove_file(&path).map_err(|error| io_error(&path, error))?;
            total -= size;
            freed += size;
        }
        Ok(freed)
    }
}

fn io_error(path: &Path, error: std::io::Error) -> AgentError {
    AgentError::new(
        openwua_model::hresult::WU_E_DM_UNEXPECTED,
        format!("{}: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Sha256Digest {
        Sha256Digest([byte; 32])
    }

    #[test]
    fn eviction_spares_needed_files_and_parts_and_stops_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.prepare().unwrap();
        for byte in 1..=3u8 {
            std::fs::write(cache.content_path(&digest(byte)), vec![byte; 100]).unwrap();
            // Distinct modification times, oldest first.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let part = dir
            .path()
            .join("content")
            .join(format!("{}.part", digest(9)));
        std::fs::write(&part, vec![0; 1000]).unwrap();
        let needed = HashSet::from([digest(1)]);
        // 1,300 bytes held; the limit needs 100 freed: the oldest file not
        // needed goes (2), the needed one (1) and the newer one (3) stay.
        let freed = cache.evict(1_200, &needed).unwrap();
        assert_eq!(freed, 100);
        assert!(cache.has(&digest(1)));
        assert!(!cache.has(&digest(2)));
        assert!(cache.has(&digest(3)));
        assert!(part.exists());
        // Nothing more to free without touching what is needed.
        assert_eq!(cache.evict(0, &needed).unwrap(), 100);
        assert!(cache.has(&digest(1)));
    }

    #[test]
    fn staging_links_the_files_under_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.prepare().unwrap();
        std::fs::write(cache.content_path(&digest(1)), b"#!/bin/sh\n").unwrap();
        let file = ContentFile {
            file_name: "install.sh".into(),
            size: 10,
            sha256: digest(1),
            url: String::new(),
        };
        let (job, update) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let staged = cache
            .stage(job, update, std::slice::from_ref(&file))
            .unwrap();
        assert_eq!(
            std::fs::read(staged.join("content/install.sh")).unwrap(),
            b"#!/bin/sh\n"
        );
        assert!(staged.join("work").is_dir());
        cache.unstage(job);
        assert!(!staged.exists());
        std::fs::remove_file(cache.content_path(&digest(1))).unwrap();
        let missing = cache.stage(job, update, &[file]).unwrap_err();
        assert_eq!(missing.hresult, WU_E_DM_DOWNLOADFILEMISSING);
    }

    #[test]
    fn staging_refuses_names_that_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache"));
        cache.prepare().unwrap();
        std::fs::write(cache.content_path(&digest(1)), b"payload").unwrap();
        let outside = dir.path().join("x");
        for name in [
            // From cache/staging/<job>/<update>/content.
            "../../../../../x".to_owned(),
            outside.display().to_string(),
            String::new(),
            "..".into(),
        ] {
            let file = ContentFile {
                file_name: name.clone(),
                size: 7,
                sha256: digest(1),
                url: String::new(),
            };
            let refused = cache
                .stage(Uuid::from_u128(1), Uuid::from_u128(2), &[file])
                .unwrap_err();
            assert_eq!(refused.hresult, WU_E_UH_INVALIDMETADATA, "{name:?}");
            assert!(!outside.exists(), "{name:?}");
            assert!(!dir.path().join("cache/staging").exists(), "{name:?}");
        }
    }
}
