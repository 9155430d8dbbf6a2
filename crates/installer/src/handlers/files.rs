//! The `files` handler: places content files under a root, atomically,
//! keeping what each one replaced so an uninstall can put it back.
//!
//! Before any target changes, `files-manifest.json` in the backup directory
//! records every target's previous state ("absent", or a copy with its mode
//! and owner) and the directories the install creates. A re-install keeps
//! the first record, so an uninstall always returns to the state before the
//! first install.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use openwua_catalog::revision::Handler;
use openwua_model::enums::UpdateOperation;
use openwua_model::hresult::{
    WU_E_UH_DOESNOTSUPPORTACTION, WU_E_UH_INSTALLERFAILURE, WU_E_UH_INVALIDMETADATA,
    WU_E_UH_WRONGHANDLER,
};
use serde::{Deserialize, Serialize};

use super::{HandlerContext, HandlerOutcome};

/// The record's file name in the backup directory.
const MANIFEST: &str = "files-manifest.json";
/// Copies of replaced files, named by their entry's number.
const BACKUPS: &str = "files";
/// This run's copies of files a re-install replaces, for a rollback.
const ROLLBACK: &str = "files-rollback";
/// A placement without `mode`.
const DEFAULT_MODE: u32 = 0o644;

/// What an install changed: the backup directory's record.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// Format version.
    version: u32,
    /// Every target ever placed, with its state before the first install.
    entries: Vec<Entry>,
    /// Directories the install created, to remove again if empty.
    #[serde(default)]
    created_dirs: Vec<PathBuf>,
}

/// One target and what was there before.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The target's absolute path.
    path: PathBuf,
    /// Its state before the first install.
    previous: Previous,
}

/// A target's state before the install.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Previous {
    /// Nothing was there: uninstall deletes the target.
    Absent,
    /// A regular file, copied to `backup` (relative to the backup directory).
    File {
        /// The copy, relative to the backup directory.
        backup: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
}

/// One placement, checked.
struct Planned {
    source: PathBuf,
    /// Where it goes, relative to the root (only normal components).
    relative: PathBuf,
    /// The same under the root, for the record and details.
    target: PathBuf,
    mode: u32,
}

/// A failure, already phrased as the run's outcome.
type Fail = HandlerOutcome;

fn io_fail(what: &str, path: &Path, error: io::Error) -> Fail {
    HandlerOutcome::failed(
        WU_E_UH_INSTALLERFAILURE,
        format!(
            "the files handler could not {what} {}: {error}",
            path.display()
        ),
    )
}

fn invalid(detail: String) -> Fail {
    HandlerOutcome::failed(WU_E_UH_INVALIDMETADATA, detail)
}

pub(super) fn run(context: &HandlerContext<'_>) -> HandlerOutcome {
    let Handler::Files { root, files } = context.handler else {
        return HandlerOutcome::failed(
            WU_E_UH_WRONGHANDLER,
            "the files handler was given another handler's metadata",
        );
    };
    let result = match context.operation {
        UpdateOperation::Installation => plan(context, root, files).and_then(|planned| {
            install(context, &Root::open(Path::new(root))?, &planned)?;
            Ok(format!(
                "the files handler placed {} file(s) under {root}",
                planned.len()
            ))
        }),
        UpdateOperation::Uninstallation => Root::open(Path::new(root))
            .and_then(|root| uninstall(&root, context.backup_dir))
            .map(|restored| format!("the files handler restored {restored} file(s) under {root}")),
    };
    match result {
        Ok(detail) => HandlerOutcome::success(false, None, detail),
        Err(outcome) => outcome,
    }
}

/// Checks every placement before anything changes.
fn plan(
    context: &HandlerContext<'_>,
    root: &str,
    files: &[openwua_catalog::revision::FilePlacement],
) -> Result<Vec<Planned>, Fail> {
    let root = Path::new(root);
    if !root.is_absolute() {
        return Err(invalid(format!(
            "the files handler's root {} is not an absolute path; nothing was changed",
            root.display()
        )));
    }
    let mut seen = HashSet::new();
    let mut planned = Vec::with_capacity(files.len());
    for placement in files {
        let target = Path::new(&placement.target);
        if placement.target.is_empty()
            || !target
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(invalid(format!(
                "the files handler's target {:?} is not a relative path inside {}; nothing was changed",
                placement.target,
                root.display()
            )));
        }
        if !seen.insert(target) {
            return Err(invalid(format!(
                "the files handler places {:?} twice; nothing was changed",
                placement.target
            )));
        }
        let source = Path::new(&placement.source);
        let plain = matches!(
            source.components().collect::<Vec<_>>()[..],
            [Component::Normal(_)]
        );
        let source = context.content_dir.join(source);
        if !plain || !source.is_file() {
            return Err(invalid(format!(
                "the files handler's source {:?} is not among the update's content files in {}; nothing was changed",
                placement.source,
                context.content_dir.display()
            )));
        }
        let mode = match placement.mode.as_deref() {
            None => DEFAULT_MODE,
            Some(text) => parse_mode(text).ok_or_else(|| {
                invalid(format!(
                    "the files handler's mode {text:?} for {:?} is not octal permission bits; nothing was changed",
                    placement.target
                ))
            })?,
        };
        planned.push(Planned {
            source,
            relative: target.to_path_buf(),
            target: root.join(target),
            mode,
        });
    }
    Ok(planned)
}

/// `"0644"`, `"644"` or `"0o644"`, at most `0o7777`.
fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    // from_str_radix alone would take a sign.
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
}

/// Records, then places every file; on any failure puts back what this run
/// already changed.
fn install(context: &HandlerContext<'_>, root: &Root, planned: &[Planned]) -> Result<(), Fail> {
    let backup_dir = context.backup_dir;
    create_dir_synced(backup_dir)?;
    let manifest_path = backup_dir.join(MANIFEST);
    let existing = read_manifest(&manifest_path)?;
    let fresh = existing.is_none();
    let mut manifest = existing.unwrap_or(Manifest {
        version: 1,
        ..Manifest::default()
    });
    let rollback_dir = backup_dir.join(ROLLBACK);
    remove_dir_all_quiet(&rollback_dir).map_err(|e| io_fail("clear", &rollback_dir, e))?;

    // What each target was before this run, for a rollback.
    let mut before: Vec<Option<Saved>> = Vec::with_capacity(planned.len());
    let mut new_dirs: Vec<PathBuf> = Vec::new();
    for (index, item) in planned.iter().enumerate() {
        let current = root.regular_or_absent(&item.relative)?;
        let recorded = manifest
            .entries
            .iter()
            .find(|entry| entry.path == item.target);
        match (recorded, current) {
            (Some(_), None) => before.push(None),
            (Some(_), Some(metadata)) => {
                // A re-install: the first backup stays, and this copy is only
                // for undoing this run.
                create_dir_synced(&rollback_dir)?;
                let copy = rollback_dir.join(index.to_string());
                copy_synced(root.read(&item.relative)?, &copy)?;
                before.push(Some(Saved::of(copy, &metadata)));
            }
            (None, None) => {
                manifest.entries.push(Entry {
                    path: item.target.clone(),
                    previous: Previous::Absent,
                });
                before.push(None);
            }
            (None, Some(metadata)) => {
                let name = PathBuf::from(BACKUPS).join(manifest.entries.len().to_string());
                let copy = backup_dir.join(&name);
                create_dir_synced(&backup_dir.join(BACKUPS))?;
                copy_synced(root.read(&item.relative)?, &copy)?;
                let saved = Saved::of(copy, &metadata);
                manifest.entries.push(Entry {
                    path: item.target.clone(),
                    previous: Previous::File {
                        backup: name,
                        mode: saved.mode,
                        uid: saved.uid,
                        gid: saved.gid,
                    },
                });
                before.push(Some(saved));
            }
        }
        for dir in root.missing_dirs(&item.relative)? {
            if !new_dirs.contains(&dir) {
                new_dirs.push(dir);
            }
        }
    }
    for dir in &new_dirs {
        let dir = root.path.join(dir);
        if !manifest.created_dirs.contains(&dir) {
            manifest.created_dirs.push(dir);
        }
    }
    write_manifest(&manifest_path, &manifest)?;

    let mut placed = 0;
    let mut failure = None;
    for item in planned {
        if context.abort.load(Ordering::SeqCst) {
            failure = Some(HandlerOutcome::aborted(format!(
                "the files handler stopped after {placed} of {} file(s) because the installation was aborted, and put them back",
                planned.len()
            )));
            break;
        }
        if let Err(outcome) = root.place(&item.relative, &item.source, item.mode, None) {
            failure = Some(outcome);
            break;
        }
        placed += 1;
    }
    let Some(mut failure) = failure else {
        let _ = remove_dir_all_quiet(&rollback_dir);
        return Ok(());
    };

    // Undo this run: the placed targets, the directories it made, and the
    // record itself when this was the first install.
    let mut undo_errors = Vec::new();
    for (item, saved) in planned.iter().zip(&before).take(placed).rev() {
        if let Err(outcome) = root.restore(&item.relative, saved.as_ref()) {
            undo_errors.push(outcome.detail);
        }
    }
    root.remove_empty_dirs(&new_dirs);
    let _ = remove_dir_all_quiet(&rollback_dir);
    if fresh && undo_errors.is_empty() {
        let _ = forget(backup_dir);
    }
    if !undo_errors.is_empty() {
        failure.detail = format!(
            "{}; undoing it failed too: {}",
            failure.detail,
            undo_errors.join("; ")
        );
    }
    Err(failure)
}

/// Puts every recorded target back; returns how many.
fn uninstall(root: &Root, backup_dir: &Path) -> Result<usize, Fail> {
    let manifest_path = backup_dir.join(MANIFEST);
    let Some(manifest) = read_manifest(&manifest_path)? else {
        return Err(HandlerOutcome::failed(
            WU_E_UH_DOESNOTSUPPORTACTION,
            format!(
                "the files handler has nothing recorded to restore ({} does not exist)",
                manifest_path.display()
            ),
        ));
    };
    for entry in manifest.entries.iter().rev() {
        let saved = match &entry.previous {
            Previous::Absent => None,
            Previous::File {
                backup,
                mode,
                uid,
                gid,
            } => Some(Saved {
                path: backup_dir.join(backup),
                mode: *mode,
                uid: *uid,
                gid: *gid,
            }),
        };
        root.restore(&root.relative(&entry.path)?, saved.as_ref())?;
    }
    let created_dirs = manifest
        .created_dirs
        .iter()
        .map(|dir| root.relative(dir))
        .collect::<Result<Vec<_>, _>>()?;
    root.remove_empty_dirs(&created_dirs);
    forget(backup_dir)?;
    Ok(manifest.entries.len())
}

/// A copy of a file with the metadata to give back.
#[derive(Debug, Clone)]
struct Saved {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Saved {
    fn of(path: PathBuf, stat: &Stat) -> Saved {
        Saved {
            path,
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
        }
    }
}

fn read_manifest(path: &Path) -> Result<Option<Manifest>, Fail> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            io_fail(
                "read the damaged record",
                path,
                io::Error::new(io::ErrorKind::InvalidData, error),
            )
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_fail("read", path, error)),
    }
}

/// Writes the record durably (temporary file, sync, rename, sync) before
/// any target changes.
fn write_manifest(path: &Path, manifest: &Manifest) -> Result<(), Fail> {
    let bytes = serde_json::to_vec_pretty(manifest).map_err(|error| {
        io_fail(
            "write",
            path,
            io::Error::new(io::ErrorKind::InvalidData, error),
        )
    })?;
    let temporary = path.with_extension("json.tmp");
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|e| io_fail("create", &temporary, e))?;
        file.write_all(&bytes)
            .map_err(|e| io_fail("write", &temporary, e))?;
        file.sync_all()
            .map_err(|e| io_fail("write", &temporary, e))?;
        std::fs::rename(&temporary, path).map_err(|e| io_fail("write", path, e))?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Removes the record, then the copies it pointed to.
fn forget(backup_dir: &Path) -> Result<(), Fail> {
    let manifest = backup_dir.join(MANIFEST);
    match std::fs::remove_file(&manifest) {
        Ok(()) => sync_parent(&manifest)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_fail("remove", &manifest, error)),
    }
    let backups = backup_dir.join(BACKUPS);
    remove_dir_all_quiet(&backups).map_err(|e| io_fail("remove", &backups, e))
}

/// Copies `input` to `to` and syncs the copy.
fn copy_synced(mut input: File, to: &Path) -> Result<(), Fail> {
    let mut output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| io_fail("create the backup", to, e))?;
    io::copy(&mut input, &mut output).map_err(|e| io_fail("write the backup", to, e))?;
    output
        .sync_all()
        .map_err(|e| io_fail("write the backup", to, e))?;
    sync_parent(to)
}

fn create_dir_synced(dir: &Path) -> Result<(), Fail> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| io_fail("create the directory", dir, e))?;
    sync_parent(dir)
}

/// Syncs the directory holding `path`, so a rename or removal is durable.
fn sync_parent(path: &Path) -> Result<(), Fail> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_fail("sync the directory", parent, e))
}

fn remove_dir_all_quiet(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// The resolution every target path goes through.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// The handler's root, opened once. Every target, its directories, its
/// backup and its restore are reached from this descriptor one component at
/// a time with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), then changed
/// through the parent directory's descriptor (mkdirat, renameat,
/// unlinkat): a symbolic link anywhere beneath the root (`etc ->
/// /elsewhere`) is refused, never followed, and a directory swapped for
/// one between steps cannot redirect a write.
struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// The root itself is the catalog's and may be reached through links
    /// (`/usr/local` on some systems); what lies beneath it may not.
    fn open(path: &Path) -> Result<Root, Fail> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|error| io_fail("open its root", path, error.into()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// A recorded target's path relative to the root; a record naming
    /// anything else is damaged.
    fn relative(&self, target: &Path) -> Result<PathBuf, Fail> {
        match target.strip_prefix(&self.path) {
            Ok(relative)
                if relative.components().next().is_some()
                    && relative
                        .components()
                        .all(|c| matches!(c, Component::Normal(_))) =>
            {
                Ok(relative.to_path_buf())
            }
            _ => Err(HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!(
                    "the files handler's record names {}, which is not beneath its root {}; nothing more was changed",
                    target.display(),
                    self.path.display()
                ),
            )),
        }
    }

    /// The failure for `errno` met while resolving `relative`.
    fn fail(&self, what: &str, relative: &Path, errno: Errno) -> Fail {
        let path = self.path.join(relative);
        let detail = match errno {
            Errno::LOOP | Errno::XDEV => format!(
                "the files handler did not {what} {}: it is a symbolic link (or leads out of {}), and the handler follows none beneath its root",
                path.display(),
                self.path.display()
            ),
            Errno::NOSYS => format!(
                "the files handler did not {what} {}: this kernel has no openat2 (Linux 5.6 or later), without which paths beneath the root cannot be resolved safely",
                path.display()
            ),
            _ => format!(
                "the files handler could not {what} {}: {}",
                path.display(),
                io::Error::from(errno)
            ),
        };
        HandlerOutcome::failed(WU_E_UH_INSTALLERFAILURE, detail)
    }

    /// Opens `name` in `dir` beneath the root, never through a link (a
    /// link is ELOOP, also where O_DIRECTORY would say ENOTDIR).
    fn open_in(dir: &OwnedFd, name: &OsStr, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        rustix::fs::openat2(
            dir,
            name,
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            mode,
            BENEATH,
        )
        .map_err(
            |errno| match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                    Errno::LOOP
                }
                _ => errno,
            },
        )
    }

    /// The directory holding `relative`, walked from the root; None when a
    /// directory on the way does not exist. With `create`, missing ones are
    /// made (mode 0755) and listed there, relative to the root.
    fn parent(
        &self,
        relative: &Path,
        mut create: Option<&mut Vec<PathBuf>>,
    ) -> Result<Option<OwnedFd>, Fail> {
        let mut dir = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
            .map_err(|errno| self.fail("open", Path::new(""), errno))?;
        let mut walked = PathBuf::new();
        let parent = relative.parent().unwrap_or(Path::new(""));
        for component in parent.components() {
            let name = component.as_os_str();
            walked.push(name);
            let flags = OFlags::DIRECTORY | OFlags::RDONLY;
            dir = match Self::open_in(&dir, name, flags, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) => match create.as_deref_mut() {
                    None => return Ok(None),
                    Some(created) => {
                        rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))
                            .map_err(|errno| self.fail("create the directory", &walked, errno))?;
                        created.push(walked.clone());
                        Self::open_in(&dir, name, flags, Mode::empty())
                            .map_err(|errno| self.fail("open", &walked, errno))?
                    }
                },
                Err(errno) => return Err(self.fail("open", &walked, errno)),
            };
        }
        Ok(Some(dir))
    }

    /// The directories `relative` needs that do not exist yet, outermost
    /// first; a link on the way is refused here, before anything changes.
    fn missing_dirs(&self, relative: &Path) -> Result<Vec<PathBuf>, Fail> {
        let mut dir = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
            .map_err(|errno| self.fail("open", Path::new(""), errno))?;
        let mut walked = PathBuf::new();
        let mut missing = Vec::new();
        for component in relative.parent().unwrap_or(Path::new("")).components() {
            walked.push(component);
            if !missing.is_empty() {
                missing.push(walked.clone());
                continue;
            }
            let flags = OFlags::DIRECTORY | OFlags::RDONLY;
            match Self::open_in(&dir, component.as_os_str(), flags, Mode::empty()) {
                Ok(next) => dir = next,
                Err(Errno::NOENT) => missing.push(walked.clone()),
                Err(errno) => return Err(self.fail("open", &walked, errno)),
            }
        }
        Ok(missing)
    }

    fn name(relative: &Path) -> &OsStr {
        relative.file_name().unwrap_or(OsStr::new("."))
    }

    /// The target's status if it is a regular file, None if absent;
    /// anything else (a directory, a link) is refused before changes.
    fn regular_or_absent(&self, relative: &Path) -> Result<Option<Stat>, Fail> {
        let Some(parent) = self.parent(relative, None)? else {
            return Ok(None);
        };
        match rustix::fs::statat(&parent, Self::name(relative), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                Ok(Some(stat))
            }
            Ok(_) => Err(HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!(
                    "the files handler changed nothing: {} exists and is not a regular file",
                    self.path.join(relative).display()
                ),
            )),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(self.fail("examine", relative, errno)),
        }
    }

    /// The target, opened for reading (to back it up).
    fn read(&self, relative: &Path) -> Result<File, Fail> {
        let parent = self
            .parent(relative, None)?
            .ok_or_else(|| self.fail("back up", relative, Errno::NOENT))?;
        Self::open_in(&parent, Self::name(relative), OFlags::RDONLY, Mode::empty())
            .map(File::from)
            .map_err(|errno| self.fail("back up", relative, errno))
    }

    /// Replaces the target atomically with `source`'s bytes: a temporary
    /// file beside it, written, synced, given its mode (and owner), renamed
    /// over it within the parent, and the parent synced. Missing
    /// directories are made on the way.
    fn place(
        &self,
        relative: &Path,
        source: &Path,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<(), Fail> {
        let parent = self
            .parent(relative, Some(&mut Vec::new()))?
            .ok_or_else(|| self.fail("place", relative, Errno::NOENT))?;
        let name = Self::name(relative);
        let mut temporary_name = OsStr::new(".").to_os_string();
        temporary_name.push(name);
        temporary_name.push(format!(".openwua-{}", std::process::id()));
        let temporary = relative.with_file_name(&temporary_name);
        let result = (|| {
            let _ = rustix::fs::unlinkat(&parent, &temporary_name, AtFlags::empty());
            let mut input = File::open(source).map_err(|e| io_fail("read", source, e))?;
            let mut output = Self::open_in(
                &parent,
                &temporary_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o600),
            )
            .map(File::from)
            .map_err(|errno| self.fail("create", &temporary, errno))?;
            io::copy(&mut input, &mut output)
                .map_err(|e| self.fail("write", &temporary, errno_of(&e)))?;
            if let Some((uid, gid)) = owner {
                let stat = rustix::fs::fstat(&output)
                    .map_err(|errno| self.fail("read", &temporary, errno))?;
                if (stat.st_uid, stat.st_gid) != (uid, gid) {
                    std::os::unix::fs::fchown(&output, Some(uid), Some(gid))
                        .map_err(|e| self.fail("give back the owner of", relative, errno_of(&e)))?;
                }
            }
            // After chown, which may clear set-id bits.
            rustix::fs::fchmod(&output, Mode::from_raw_mode(mode))
                .map_err(|errno| self.fail("set the mode of", &temporary, errno))?;
            rustix::fs::fsync(&output).map_err(|errno| self.fail("write", &temporary, errno))?;
            rustix::fs::renameat(&parent, &temporary_name, &parent, name)
                .map_err(|errno| self.fail("replace", relative, errno))?;
            rustix::fs::fsync(&parent).map_err(|errno| self.fail("sync", relative, errno))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&parent, &temporary_name, AtFlags::empty());
        }
        result
    }

    /// Puts a target back: the saved copy, or nothing.
    fn restore(&self, relative: &Path, saved: Option<&Saved>) -> Result<(), Fail> {
        match saved {
            Some(saved) => self.place(
                relative,
                &saved.path,
                saved.mode,
                Some((saved.uid, saved.gid)),
            ),
            None => {
                let Some(parent) = self.parent(relative, None)? else {
                    return Ok(());
                };
                match rustix::fs::unlinkat(&parent, Self::name(relative), AtFlags::empty()) {
                    Ok(()) => rustix::fs::fsync(&parent)
                        .map_err(|errno| self.fail("sync", relative, errno)),
                    Err(Errno::NOENT) => Ok(()),
                    Err(errno) => Err(self.fail("remove", relative, errno)),
                }
            }
        }
    }

    /// Removes directories an install made, innermost first, if empty.
    fn remove_empty_dirs(&self, dirs: &[PathBuf]) {
        let mut dirs: Vec<&PathBuf> = dirs.iter().collect();
        dirs.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
        for dir in dirs {
            // Not empty means something else lives there now: keep it.
            if let Ok(Some(parent)) = self.parent(dir, None) {
                let _ = rustix::fs::unlinkat(&parent, Self::name(dir), AtFlags::REMOVEDIR);
            }
        }
    }
}

/// The errno inside an I/O error, for [`Root::fail`].
fn errno_of(error: &io::Error) -> Errno {
    error
        .raw_os_error()
        .map_or(Errno::IO, Errno::from_raw_os_error)
}
