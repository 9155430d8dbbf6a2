//! The `apt` handler: exact versions of Debian packages the machine has,
//! upgraded through apt, which resolves their dependencies.
//!
//! Every apt-get run names the sandbox or machine through options (never
//! the machine's configuration when `root` is not `/`), runs dpkg with the
//! [`DpkgSettings`]' database and root, and reports on fd 3
//! (`APT::Status-Fd`). A simulation comes first, so unmet dependencies fail
//! the update with nothing changed. Behaviour, codes and the command
//! lines: `docs/handlers.md`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use command_fds::FdMapping;
use openwua_catalog::revision::{AptPackage, Handler};
use openwua_model::enums::UpdateOperation;
use openwua_model::hresult::{
    WU_E_NOT_APPLICABLE, WU_E_OPERATIONINPROGRESS, WU_E_UH_DOESNOTSUPPORTACTION,
    WU_E_UH_INSTALLERFAILURE, WU_E_UH_INVALIDMETADATA, WU_E_UH_WRONGHANDLER,
};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::dpkg::{passthrough, stamp};
use super::{
    ABORT_POLL, DpkgSettings, Ended, HandlerContext, HandlerOutcome, Program, describe_status,
    run_program, unfinished,
};
use crate::InstallerError;

/// How the `apt` handler runs apt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSettings {
    /// The program (`apt-get`, found on the handlers' `PATH`).
    pub program: PathBuf,
    /// apt's `Dir`: its configuration (`etc/apt`), lists and cache live
    /// beneath it; `/` for the machine's own apt.
    pub root: PathBuf,
    /// How long to wait for dpkg's lock while another program holds it.
    pub lock_wait: Duration,
}

impl Default for AptSettings {
    fn default() -> Self {
        AptSettings {
            program: PathBuf::from("apt-get"),
            root: PathBuf::from("/"),
            lock_wait: Duration::from_secs(120),
        }
    }
}

/// One download of an apt update's packages into apt's cache.
#[derive(Debug)]
pub struct AptDownload<'a> {
    /// How apt runs.
    pub apt: &'a AptSettings,
    /// dpkg's database (which packages the machine has).
    pub dpkg: &'a DpkgSettings,
    /// The update's packages; those the machine has are fetched.
    pub packages: &'a [AptPackage],
    /// Where apt's output is appended.
    pub log_path: &'a Path,
    /// `RequestAbort`.
    pub abort: &'a AtomicBool,
}

/// apt-get install, download and repair get as long as dpkg does.
const TIMEOUT: Duration = Duration::from_secs(3600);
/// A simulation only reads.
const SIMULATION_TIMEOUT: Duration = Duration::from_secs(600);
/// How long an aborted apt-get or dpkg may take to stop.
const GRACE: Duration = Duration::from_secs(5);
/// At most this much of a run's log is read back for its errors.
const LOG_TAIL: u64 = 256 * 1024;
/// At most this much of dpkg-query's listing is read.
const QUERY_LIMIT: u64 = 64 * 1024 * 1024;
/// At most this many lines of apt's or dpkg's complaints go into a detail.
const DETAIL_LINES: usize = 4;
/// At most this many characters of one such line.
const DETAIL_LINE_CHARS: usize = 200;
/// At most this many packages one update names.
const MAX_PACKAGES: usize = 1000;
/// A `.deb` in the cache larger than this is not hashed.
const MAX_DEB_SIZE: u64 = 4 * 1024 * 1024 * 1024;

/// Installs (upgrade only) the update's packages the machine has.
pub(super) fn run(context: &HandlerContext<'_>) -> HandlerOutcome {
    let Handler::Apt { packages, .. } = context.handler else {
        return HandlerOutcome::failed(
            WU_E_UH_WRONGHANDLER,
            "the apt handler was given another handler's metadata",
        );
    };
    if context.operation == UpdateOperation::Uninstallation {
        return HandlerOutcome::failed(
            WU_E_UH_DOESNOTSUPPORTACTION,
            "Debian packages cannot be uninstalled to an earlier version safely: \
             install a newer update instead",
        );
    }
    let wanted = match packages_on_machine(context.dpkg, packages) {
        Ok(wanted) => wanted,
        Err(error) => return HandlerOutcome::failed(error.hresult, error.detail),
    };
    if wanted.is_empty() {
        return HandlerOutcome::success(
            false,
            None,
            "apt-get was not run: the machine has none of the update's packages at an \
             earlier version"
                .to_owned(),
        );
    }
    // An update server's update brings its .debs as content: apt installs
    // those files, under the same rules, instead of versions its sources
    // offer.
    let specs = local_debs(context.content_dir, &wanted).unwrap_or_else(|| specs(&wanted));
    if let Err(outcome) = wait_for_lock(context.apt, context.dpkg, context.abort) {
        return outcome;
    }

    // The simulation: nothing changes when apt cannot resolve the update.
    let mut args = common_args(context.apt, context.dpkg, true);
    args.extend(["-q", "-s", "install", "--only-upgrade", "--no-remove"].map(String::from));
    args.extend(specs.iter().cloned());
    let env = apt_env(context.apt);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = log_length(context.log_path);
    let ended = run_program(
        context,
        Program {
            name: "apt-get --simulate install",
            path: &context.apt.program,
            args: &args,
            env: &env_refs,
            timeout: SIMULATION_TIMEOUT,
            fds: Vec::new(),
        },
        None,
    );
    let status = match unfinished(context, "apt-get --simulate install", ended) {
        Ok(status) => status,
        Err(outcome) => return outcome,
    };
    if !status.success() {
        let output = log_since(context.log_path, start);
        return simulation_failed(context, status, &output);
    }

    // The installation.
    let interactive = context.interactive();
    let mut args = common_args(context.apt, context.dpkg, interactive.is_none());
    args.extend(["-q", "-y", "install", "--only-upgrade", "--no-remove"].map(String::from));
    args.extend(specs);
    let name = "apt-get install";
    let mut interactive = match interactive
        .map(|prompter| passthrough(context, prompter, name))
        .transpose()
    {
        Ok(interactive) => interactive,
        Err(outcome) => return outcome,
    };
    let pipe = interactive
        .as_ref()
        .map(|(_, debconf)| debconf.socket().display().to_string());
    let mut env = apt_env(context.apt);
    match &pipe {
        Some(pipe) => {
            env.push(("DEBIAN_FRONTEND", "passthrough".to_owned()));
            env.push(("DEBCONF_PIPE", pipe.clone()));
        }
        None => env.push(("DEBIAN_FRONTEND", "noninteractive".to_owned())),
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status_fd, reader) = match StatusReader::start() {
        Ok(pair) => pair,
        Err(error) => {
            return HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!("{name} was not started: no pipe for its status: {error}"),
            );
        }
    };
    let reboot_file = &context.dpkg.reboot_required_file;
    let before = stamp(reboot_file);
    let program = Program {
        name,
        path: &context.apt.program,
        args: &args,
        env: &env_refs,
        timeout: TIMEOUT,
        fds: vec![status_fd],
    };
    let running = AtomicBool::new(true);
    let ended = std::thread::scope(|scope| {
        if let Some(progress) = context.progress {
            scope.spawn(|| reader.forward_install_progress(progress, &running));
        }
        let ended = run_program(
            context,
            program,
            interactive.as_mut().map(|(interaction, _)| interaction),
        );
        running.store(false, Ordering::SeqCst);
        ended
    });
    let verdict = match interactive {
        Some((interaction, debconf)) => {
            drop(debconf);
            interaction.verdict(context, name, ended)
        }
        None => unfinished(context, name, ended),
    };
    let errors = reader.errors();
    let status = match verdict {
        Ok(status) => status,
        Err(outcome) => return outcome,
    };
    let log = context.log_path.display();
    if status.success() {
        let after = stamp(reboot_file);
        let reboot = after.is_some() && after != before;
        let installed = wanted
            .iter()
            .map(|package| format!("{} {}", package.name, package.version))
            .collect::<Vec<_>>()
            .join(", ");
        let detail = if reboot {
            let by = reboot_packages(reboot_file);
            format!(
                "{name} exited with 0 ({installed}) and asked for a restart ({}{by})",
                reboot_file.display()
            )
        } else {
            format!("{name} exited with 0 ({installed})")
        };
        if let Some(progress) = context.progress {
            progress(100);
        }
        return HandlerOutcome::success(reboot, Some(0), detail);
    }
    if let Some(outcome) = busy_now(context.dpkg) {
        return outcome;
    }
    let why = if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    };
    HandlerOutcome {
        exit_code: status.code(),
        ..HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!("{name} {}{why} (see {log})", describe_status(status)),
        )
    }
}

/// Fetches the packages the machine has into apt's cache, reporting bytes
/// done and the total.
pub fn download(request: &AptDownload<'_>, progress: &mut dyn FnMut(u64, u64)) -> HandlerOutcome {
    let wanted = match packages_on_machine(request.dpkg, request.packages) {
        Ok(wanted) => wanted,
        Err(error) => return HandlerOutcome::failed(error.hresult, error.detail),
    };
    let total: u64 = wanted
        .iter()
        .map(|package| package.size)
        .fold(0, u64::saturating_add);
    if wanted.is_empty() {
        progress(0, 0);
        return HandlerOutcome::success(
            false,
            None,
            "nothing to download: the machine has none of the update's packages at an \
             earlier version"
                .to_owned(),
        );
    }
    let mut args = common_args(request.apt, request.dpkg, true);
    args.extend(
        [
            "-q",
            "-y",
            "install",
            "--download-only",
            "--only-upgrade",
            "--no-remove",
        ]
        .map(String::from),
    );
    args.extend(specs(&wanted));
    let env = apt_env(request.apt);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status_fd, reader) = match StatusReader::start() {
        Ok(pair) => pair,
        Err(error) => {
            return HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!("apt-get --download-only was not started: no status pipe: {error}"),
            );
        }
    };
    let handler = Handler::Apt {
        packages: Vec::new(),
        suites: Vec::new(),
    };
    let context = standalone_context(
        &handler,
        request.apt,
        request.dpkg,
        request.log_path,
        request.abort,
    );
    let name = "apt-get install --download-only";
    let start = log_length(request.log_path);
    progress(0, total);
    let ended = std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            run_program(
                &context,
                Program {
                    name,
                    path: &request.apt.program,
                    args: &args,
                    env: &env_refs,
                    timeout: TIMEOUT,
                    fds: vec![status_fd],
                },
                None,
            )
        });
        let mut last = 0;
        while !running.is_finished() {
            if let Some(percent) = reader.next_download_percent(ABORT_POLL) {
                let done = ((total as f64) * percent / 100.0) as u64;
                let done = done.min(total).max(last);
                if done != last {
                    last = done;
                    progress(done, total);
                }
            }
        }
        running.join()
    });
    let ended = ended.unwrap_or_else(|_| {
        Ended::NotRun(HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!("{name} could not be waited for"),
        ))
    });
    let status = match unfinished(&context, name, ended) {
        Ok(status) => status,
        Err(outcome) => return outcome,
    };
    if status.success() {
        progress(total, total);
        return HandlerOutcome::success(
            false,
            Some(0),
            format!("{name} exited with 0 ({} packages)", wanted.len()),
        );
    }
    // apt resolves dependencies before it fetches: one it cannot satisfy
    // is this update's fault, named as the install's simulation names it.
    let unmet = unmet_dependencies(&log_since(request.log_path, start));
    if !unmet.is_empty() {
        return HandlerOutcome {
            exit_code: status.code(),
            ..HandlerOutcome::failed(
                WU_E_NOT_APPLICABLE,
                format!(
                    "apt cannot download the update, nothing was fetched: {}",
                    unmet.join("; ")
                ),
            )
        };
    }
    let errors = reader.errors();
    let why = if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    };
    HandlerOutcome {
        exit_code: status.code(),
        ..HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!(
                "{name} {}{why} (see {})",
                describe_status(status),
                request.log_path.display()
            ),
        )
    }
}

/// Whether every package the machine has of `packages` is in apt's cache
/// with the index's size and SHA-256.
pub fn is_downloaded(apt: &AptSettings, dpkg: &DpkgSettings, packages: &[AptPackage]) -> bool {
    let Ok(wanted) = packages_on_machine(dpkg, packages) else {
        return false;
    };
    wanted
        .iter()
        .all(|package| cached_matches(&cached_deb(apt, package), package))
}

/// Where apt keeps `package`'s `.deb`: `name_version_arch.deb` under
/// `var/cache/apt/archives/`, the epoch's colon written `%3a`.
pub fn cached_deb(apt: &AptSettings, package: &AptPackage) -> PathBuf {
    apt.root.join("var/cache/apt/archives").join(format!(
        "{}_{}_{}.deb",
        package.name,
        package.version.replace(':', "%3a"),
        package.architecture
    ))
}

fn cached_matches(path: &Path, package: &AptPackage) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(metadata) = file.metadata() else {
        return false;
    };
    if !metadata.is_file() || metadata.len() != package.size || package.size > MAX_DEB_SIZE {
        return false;
    }
    let mut hasher = Sha256::new();
    let mut reader = BufReader::new(file.take(MAX_DEB_SIZE));
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(_) => return false,
        };
        hasher.update(chunk);
        let length = chunk.len();
        reader.consume(length);
    }
    hasher.finalize().as_slice() == package.sha256.0.as_slice()
}

/// The update's packages this machine has (same name and architecture,
/// installed in dpkg's database) at an earlier version than the update's:
/// what the handler installs and downloads. Refuses an update whose
/// names, architectures or versions are not Debian's.
pub fn packages_on_machine(
    dpkg: &DpkgSettings,
    packages: &[AptPackage],
) -> Result<Vec<AptPackage>, InstallerError> {
    if packages.len() > MAX_PACKAGES {
        return Err(InstallerError::new(
            WU_E_UH_INVALIDMETADATA,
            format!(
                "the update names {} packages, more than {MAX_PACKAGES}",
                packages.len()
            ),
        ));
    }
    for package in packages {
        validate(package)?;
    }
    let installed = installed_packages(dpkg)?;
    Ok(packages
        .iter()
        .filter(|package| {
            let key = (package.name.clone(), package.architecture.clone());
            match installed.get(&key) {
                Some(entry) if entry.is_installed() => {
                    match (
                        entry.version.parse::<debversion::Version>(),
                        package.version.parse::<debversion::Version>(),
                    ) {
                        (Ok(have), Ok(want)) => have < want,
                        _ => entry.version != package.version,
                    }
                }
                _ => false,
            }
        })
        .cloned()
        .collect())
}

/// Names are Debian's package names, versions Debian's version
/// characters, architectures lower-case words: nothing apt could read as
/// an option or another request.
fn validate(package: &AptPackage) -> Result<(), InstallerError> {
    let name_ok = package.name.len() <= 100
        && package.name.len() >= 2
        && package
            .name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && package
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let version_ok = !package.version.is_empty()
        && package.version.len() <= 100
        && package
            .version
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit())
        && package
            .version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.~:".contains(&b));
    let architecture_ok = !package.architecture.is_empty()
        && package.architecture.len() <= 32
        && package
            .architecture
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name_ok && version_ok && architecture_ok {
        Ok(())
    } else {
        Err(InstallerError::new(
            WU_E_UH_INVALIDMETADATA,
            format!(
                "the update names a package that is not a Debian package name, version \
                 and architecture: {:?}",
                bounded(&format!(
                    "{} {} {}",
                    package.name, package.version, package.architecture
                ))
            ),
        ))
    }
}

/// apt's request for each package: `name:arch=version` (`name=version`
/// for `all`).
fn specs(packages: &[AptPackage]) -> Vec<String> {
    packages
        .iter()
        .map(|package| {
            if package.architecture == "all" {
                format!("{}={}", package.name, package.version)
            } else {
                format!(
                    "{}:{}={}",
                    package.name, package.architecture, package.version
                )
            }
        })
        .collect()
}

/// The update's `.deb` files in `content_dir`, as apt-get takes files
/// (a path with a `/`), when every one of `packages` is there; None when
/// the packages come from apt's sources.
fn local_debs(content_dir: &Path, packages: &[AptPackage]) -> Option<Vec<String>> {
    packages
        .iter()
        .map(|package| {
            let path = content_dir.join(package.deb_file_name());
            path.is_file().then(|| {
                let text = path.display().to_string();
                if text.contains('/') {
                    text
                } else {
                    format!("./{text}")
                }
            })
        })
        .collect()
}

/// One package in dpkg's database.
struct InstalledEntry {
    version: String,
    /// dpkg's state (`installed`, `half-configured`, …).
    state: String,
}

impl InstalledEntry {
    /// The machine has it: unpacked at least, not just its configuration.
    fn is_installed(&self) -> bool {
        !matches!(self.state.as_str(), "not-installed" | "config-files")
    }

    /// A dpkg run stopped before this package was done.
    fn is_interrupted(&self) -> bool {
        matches!(
            self.state.as_str(),
            "half-installed"
                | "half-configured"
                | "unpacked"
                | "triggers-awaited"
                | "triggers-pending"
        )
    }
}

/// `dpkg-query` beside the dpkg program.
fn dpkg_query(dpkg: &DpkgSettings) -> PathBuf {
    match dpkg.program.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("dpkg-query"),
        _ => PathBuf::from("dpkg-query"),
    }
}

/// Every package in dpkg's database, by name and architecture.
fn installed_packages(
    dpkg: &DpkgSettings,
) -> Result<HashMap<(String, String), InstalledEntry>, InstallerError> {
    let failed = |why: String| {
        InstallerError::new(
            WU_E_UH_INSTALLERFAILURE,
            format!(
                "dpkg's database {} could not be read: {why}",
                dpkg.admindir.display()
            ),
        )
    };
    let mut child = std::process::Command::new(dpkg_query(dpkg))
        .env_clear()
        .env("PATH", super::PATH)
        .arg(format!("--admindir={}", dpkg.admindir.display()))
        .args([
            "-W",
            "-f=${Package}\\t${Architecture}\\t${Version}\\t${Status}\\n",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|error| failed(error.to_string()))?;
    let mut text = String::new();
    let read = child
        .stdout
        .take()
        .map(|stdout| stdout.take(QUERY_LIMIT).read_to_string(&mut text));
    let status = child.wait().map_err(|error| failed(error.to_string()))?;
    match read {
        Some(Ok(_)) => {}
        Some(Err(error)) => return Err(failed(error.to_string())),
        None => return Err(failed("no output".to_owned())),
    }
    // dpkg-query exits 1 when the database lists nothing.
    if !status.success() && !text.is_empty() {
        return Err(failed(format!("dpkg-query {}", describe_status(status))));
    }
    let mut packages = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        if let (Some(name), Some(architecture), Some(version), Some(status)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        {
            let state = status.rsplit(' ').next().unwrap_or_default().to_owned();
            packages.insert(
                (name.to_owned(), architecture.to_owned()),
                InstalledEntry {
                    version: version.to_owned(),
                    state,
                },
            );
        }
    }
    Ok(packages)
}

/// The options every apt-get run gets: the root, dpkg's database and root,
/// the lock's wait, the status pipe on fd 3; quiet runs keep changed
/// configuration files without asking.
fn common_args(apt: &AptSettings, dpkg: &DpkgSettings, quiet: bool) -> Vec<String> {
    let option = |text: String| ["-o".to_owned(), text];
    let mut args = Vec::new();
    let root = apt.root.display().to_string();
    let root = if root.ends_with('/') {
        root
    } else {
        format!("{root}/")
    };
    args.extend(option(format!("Dir={root}")));
    args.extend(option(format!(
        "Dir::State::status={}",
        dpkg.admindir.join("status").display()
    )));
    args.extend(option(format!(
        "DPkg::Options::=--admindir={}",
        dpkg.admindir.display()
    )));
    if let Some(instdir) = &dpkg.instdir {
        args.extend(option(format!(
            "DPkg::Options::=--instdir={}",
            instdir.display()
        )));
    }
    for extra in &dpkg.extra_args {
        args.extend(option(format!("DPkg::Options::={extra}")));
    }
    // What the handler's own wait leaves: another program taking the lock
    // between that wait and apt's start.
    args.extend(option(format!(
        "DPkg::Lock::Timeout={}",
        apt.lock_wait.as_secs().max(1)
    )));
    args.extend(option("APT::Status-Fd=3".to_owned()));
    if quiet {
        args.extend(option("Dpkg::Use-Pty=0".to_owned()));
        args.extend(option("DPkg::Options::=--force-confdef".to_owned()));
        args.extend(option("DPkg::Options::=--force-confold".to_owned()));
    }
    if apt.root != Path::new("/") && nix::unistd::geteuid().is_root() {
        // apt as root drops to `_apt` to download, which may not enter a
        // root of someone else's.
        args.extend(option("APT::Sandbox::User=root".to_owned()));
    }
    args
}

/// `APT_CONFIG` for a root that is not `/`: its own `etc/apt/apt.conf`,
/// read before the machine's configuration (apt reads `/etc/apt` before it
/// applies `-o Dir`).
fn apt_env(apt: &AptSettings) -> Vec<(&'static str, String)> {
    let conf = apt.root.join("etc/apt/apt.conf");
    if apt.root != Path::new("/") && conf.is_file() {
        vec![("APT_CONFIG", conf.display().to_string())]
    } else {
        Vec::new()
    }
}

/// A context for runs outside an install (download, repair).
fn standalone_context<'a>(
    handler: &'a Handler,
    apt: &'a AptSettings,
    dpkg: &'a DpkgSettings,
    log_path: &'a Path,
    abort: &'a AtomicBool,
) -> HandlerContext<'a> {
    HandlerContext {
        update_id: Uuid::nil(),
        operation: UpdateOperation::Installation,
        handler,
        content_dir: Path::new("/"),
        work_dir: Path::new("/"),
        log_path,
        backup_dir: Path::new("/"),
        environment: &[],
        dpkg,
        apt,
        quiet: true,
        abort,
        grace: GRACE,
        prompter: None,
        group_record: None,
        progress: None,
    }
}

/// The outcome of a failed simulation: unmet dependencies, the lock, or
/// apt's own errors.
fn simulation_failed(
    context: &HandlerContext<'_>,
    status: std::process::ExitStatus,
    output: &str,
) -> HandlerOutcome {
    let unmet = unmet_dependencies(output);
    if !unmet.is_empty() {
        return HandlerOutcome {
            exit_code: status.code(),
            ..HandlerOutcome::failed(
                WU_E_NOT_APPLICABLE,
                format!(
                    "apt cannot install the update, nothing was changed: {}",
                    unmet.join("; ")
                ),
            )
        };
    }
    if let Some(outcome) = busy_now(context.dpkg) {
        return outcome;
    }
    let errors: Vec<String> = output
        .lines()
        .filter(|line| line.starts_with("E: "))
        .take(DETAIL_LINES)
        .map(bounded)
        .collect();
    HandlerOutcome {
        exit_code: status.code(),
        ..HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!(
                "apt-get --simulate install {}{}, nothing was changed (see {})",
                describe_status(status),
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", errors.join("; "))
                },
                context.log_path.display()
            ),
        )
    }
}

/// apt's "unmet dependencies" lines, as `package: Depends: x but it is not
/// installable`, at most [`DETAIL_LINES`].
fn unmet_dependencies(output: &str) -> Vec<String> {
    let mut unmet = Vec::new();
    let mut package = String::new();
    let mut inside = false;
    for line in output.lines() {
        if line.starts_with("The following packages have unmet dependencies") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if !line.starts_with(' ') {
            break;
        }
        let relation = match line.split_once(" : ") {
            Some((name, relation)) => {
                package = name.trim().to_owned();
                relation.trim()
            }
            None => line.trim(),
        };
        if unmet.len() < DETAIL_LINES {
            unmet.push(bounded(&format!("{package}: {relation}")));
        }
    }
    unmet
}

/// One line cut to [`DETAIL_LINE_CHARS`] characters, control characters
/// dropped.
fn bounded(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_control())
        .take(DETAIL_LINE_CHARS)
        .collect()
}

/// The log's length now (0 when it does not exist).
fn log_length(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

/// What was appended to the log since `start`, at most [`LOG_TAIL`] bytes.
fn log_since(path: &Path, start: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let end = log_length(path);
    let from = start.max(end.saturating_sub(LOG_TAIL));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err()
        || file.take(LOG_TAIL).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// ` by a, b` from Debian's `<flag>.pkgs`, at most [`DETAIL_LINES`] names.
fn reboot_packages(flag: &Path) -> String {
    let mut pkgs = flag.as_os_str().to_owned();
    pkgs.push(".pkgs");
    let Ok(file) = File::open(PathBuf::from(pkgs)) else {
        return String::new();
    };
    let mut text = String::new();
    if file.take(64 * 1024).read_to_string(&mut text).is_err() {
        return String::new();
    }
    let mut names: Vec<String> = Vec::new();
    for name in text.split_whitespace().map(bounded) {
        if !names.contains(&name) && names.len() < DETAIL_LINES {
            names.push(name);
        }
    }
    if names.is_empty() {
        String::new()
    } else {
        format!(", for {}", names.join(", "))
    }
}

// ---- apt's status pipe ------------------------------------------------------

/// What apt reports on `APT::Status-Fd`, read by a thread of its own (a
/// daemon a maintainer script started may keep the pipe open; the thread
/// then lingers, the run does not).
/// Shared by reference with the thread that forwards install progress,
/// hence the mutexes.
struct StatusReader {
    lines: Mutex<mpsc::Receiver<StatusLine>>,
    errors: Mutex<Vec<String>>,
}

#[derive(Debug, PartialEq)]
enum StatusLine {
    /// `dlstatus:`: how far the download is, in percent.
    Download(f64),
    /// `pmstatus:`: how far dpkg's part (unpack, configure) is, in percent.
    Install(f64),
    /// `pmerror:` or a conffile question, for the detail.
    Error(String),
}

impl StatusReader {
    /// The pipe's write end for the program's fd 3, and its reader.
    fn start() -> std::io::Result<(FdMapping, StatusReader)> {
        let (read, write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("apt-status".into())
            .spawn(move || {
                let mut reader = BufReader::new(File::from(read));
                let mut line = Vec::new();
                loop {
                    line.clear();
                    // One line is at most 4 KiB; the rest of a longer one
                    // is read as more lines.
                    match (&mut reader).take(4096).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let text = String::from_utf8_lossy(&line);
                    if let Some(parsed) = parse_status(text.trim_end())
                        && sender.send(parsed).is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok((
            FdMapping {
                parent_fd: write,
                child_fd: 3,
            },
            StatusReader {
                lines: Mutex::new(receiver),
                errors: Mutex::new(Vec::new()),
            },
        ))
    }

    /// The next download percentage, waiting at most `wait`.
    fn next_download_percent(&self, wait: Duration) -> Option<f64> {
        let deadline = Instant::now() + wait;
        let lines = self.lines.lock().ok()?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(StatusLine::Download(percent)) => return Some(percent),
                Ok(StatusLine::Error(error)) => self.keep(error),
                Ok(StatusLine::Install(_)) => {}
                Err(_) => return None,
            }
        }
    }

    /// Tells `progress` dpkg's percentages, never going back, until
    /// `running` is cleared; errors are kept as they come.
    fn forward_install_progress(&self, progress: &(dyn Fn(u8) + Sync), running: &AtomicBool) {
        let Ok(lines) = self.lines.lock() else {
            return;
        };
        let mut reported = 0;
        while running.load(Ordering::SeqCst) {
            match lines.recv_timeout(ABORT_POLL) {
                Ok(StatusLine::Install(percent)) => {
                    // In 0..=100, checked when parsed; 100 is said on success only.
                    let percent = (percent as u8).min(99);
                    if percent > reported {
                        reported = percent;
                        progress(percent);
                    }
                }
                Ok(StatusLine::Error(error)) => self.keep(error),
                Ok(StatusLine::Download(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn keep(&self, error: String) {
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < DETAIL_LINES
        {
            errors.push(error);
        }
    }

    /// The errors reported so far (waiting briefly for the last lines).
    fn errors(&self) -> Vec<String> {
        if let Ok(lines) = self.lines.lock() {
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
                if let StatusLine::Error(error) = line {
                    self.keep(error);
                }
            }
        }
        self.errors
            .lock()
            .map(|errors| errors.clone())
            .unwrap_or_default()
    }
}

/// One line of apt's status: `dlstatus:i:percent:text`,
/// `pmstatus:package:percent:text`, `pmerror:deb:percent:text`,
/// `pmconffile:file:…`.
fn parse_status(line: &str) -> Option<StatusLine> {
    let (kind, rest) = line.split_once(':')?;
    let mut fields = rest.splitn(3, ':');
    let (first, percent, text) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
    match kind {
        "dlstatus" => percent
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
            .map(StatusLine::Download),
        "pmstatus" => percent
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
            .map(StatusLine::Install),
        "pmerror" => Some(StatusLine::Error(bounded(&format!("{first}: {text}")))),
        "pmconffile" => Some(StatusLine::Error(bounded(&format!(
            "dpkg asked about the changed configuration file {first}"
        )))),
        _ => None,
    }
}

// ---- dpkg's lock ------------------------------------------------------------

/// The pid holding dpkg's `lock-frontend` or `lock` (0 when the holder is
/// in another pid namespace), if any.
pub fn lock_holder(dpkg: &DpkgSettings) -> Option<i32> {
    ["lock-frontend", "lock"]
        .iter()
        .find_map(|name| fcntl_holder(&dpkg.admindir.join(name)))
}

fn fcntl_holder(path: &Path) -> Option<i32> {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::libc;
    let file = File::open(path).ok()?;
    let mut lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(&file, FcntlArg::F_GETLK(&mut lock)).ok()?;
    (lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid)
}

/// "process 1234 (unattended-upgr)".
fn describe_holder(pid: i32) -> String {
    if pid <= 0 {
        return "a process in another pid namespace".to_owned();
    }
    let command = File::open(format!("/proc/{pid}/comm"))
        .ok()
        .and_then(|file| {
            let mut text = String::new();
            file.take(64).read_to_string(&mut text).ok()?;
            Some(bounded(text.trim()))
        });
    match command {
        Some(command) if !command.is_empty() => format!("process {pid} ({command})"),
        _ => format!("process {pid}"),
    }
}

fn busy(dpkg: &DpkgSettings, pid: i32, waited: Duration) -> HandlerOutcome {
    HandlerOutcome::failed(
        WU_E_OPERATIONINPROGRESS,
        format!(
            "dpkg's database {} is locked by {} (waited {} s): try again when it has finished",
            dpkg.admindir.display(),
            describe_holder(pid),
            waited.as_secs()
        ),
    )
}

/// The busy outcome if the lock is held right now.
fn busy_now(dpkg: &DpkgSettings) -> Option<HandlerOutcome> {
    lock_holder(dpkg).map(|pid| busy(dpkg, pid, Duration::ZERO))
}

/// Waits up to `lock_wait` for dpkg's lock to be free.
fn wait_for_lock(
    apt: &AptSettings,
    dpkg: &DpkgSettings,
    abort: &AtomicBool,
) -> Result<(), HandlerOutcome> {
    let started = Instant::now();
    loop {
        let Some(pid) = lock_holder(dpkg) else {
            return Ok(());
        };
        if abort.load(Ordering::SeqCst) {
            return Err(HandlerOutcome::aborted(
                "apt-get was not started because the installation was aborted",
            ));
        }
        if started.elapsed() >= apt.lock_wait {
            return Err(busy(dpkg, pid, apt.lock_wait));
        }
        std::thread::sleep(ABORT_POLL);
    }
}

// ---- an interrupted dpkg ----------------------------------------------------

/// After a dpkg run was killed (the agent stopped mid-install): if dpkg's
/// journal (`<admindir>/updates/`) is not empty or a package is left
/// half-installed, half-configured, unpacked or awaiting triggers, runs
/// `dpkg --configure -a` quietly (keeping changed configuration files) and
/// returns how it ended; None when dpkg was not interrupted.
pub fn repair_interrupted(dpkg: &DpkgSettings, log_path: &Path) -> Option<HandlerOutcome> {
    let journal = std::fs::read_dir(dpkg.admindir.join("updates"))
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    let half_done: Vec<String> = match installed_packages(dpkg) {
        Ok(packages) => packages
            .into_iter()
            .filter(|(_, entry)| entry.is_interrupted())
            .map(|((name, _), entry)| format!("{name} ({})", entry.state))
            .take(DETAIL_LINES)
            .collect(),
        Err(_) => Vec::new(),
    };
    if !journal && half_done.is_empty() {
        return None;
    }
    let mut args = vec![format!("--admindir={}", dpkg.admindir.display())];
    if let Some(instdir) = &dpkg.instdir {
        args.push(format!("--instdir={}", instdir.display()));
    }
    args.extend(dpkg.extra_args.iter().cloned());
    args.extend(["--force-confdef", "--force-confold", "--configure", "-a"].map(String::from));
    let handler = Handler::Apt {
        packages: Vec::new(),
        suites: Vec::new(),
    };
    let apt = AptSettings::default();
    let abort = AtomicBool::new(false);
    let context = standalone_context(&handler, &apt, dpkg, log_path, &abort);
    let name = "dpkg --configure -a";
    let ended = run_program(
        &context,
        Program {
            name,
            path: &dpkg.program,
            args: &args,
            env: &[("DEBIAN_FRONTEND", "noninteractive")],
            timeout: TIMEOUT,
            fds: Vec::new(),
        },
        None,
    );
    let what = if half_done.is_empty() {
        "dpkg's journal was not empty".to_owned()
    } else {
        format!("dpkg had left {}", half_done.join(", "))
    };
    Some(match unfinished(&context, name, ended) {
        Err(outcome) => outcome,
        Ok(status) if status.success() => {
            HandlerOutcome::success(false, Some(0), format!("{what}; {name} exited with 0"))
        }
        Ok(status) => HandlerOutcome {
            exit_code: status.code(),
            ..HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!(
                    "{what}; {name} {} (see {})",
                    describe_status(status),
                    log_path.display()
                ),
            )
        },
    })
}

// ---- facts from a downloaded .deb ---------------------------------------------

/// At most this much of a `.deb`'s data archive is read for its changelog.
const MAX_DATA_READ: u64 = 1024 * 1024 * 1024;
/// At most this much of a compressed changelog.
const MAX_CHANGELOG_GZ: u64 = 4 * 1024 * 1024;
/// At most this much of the changelog's text.
const MAX_CHANGELOG_TEXT: u64 = 16 * 1024 * 1024;
/// At most this many CVE IDs.
const MAX_CVES: usize = 200;

/// Whether the `.deb`'s control archive has debconf `templates` (so its
/// installation may ask questions).
pub fn deb_has_templates(deb: &Path) -> bool {
    std::process::Command::new("dpkg-deb")
        .env_clear()
        .env("PATH", super::PATH)
        .arg("--info")
        .arg(deb)
        .arg("templates")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The CVE IDs (`CVE-YYYY-NNNN…`) the newest entry of the `.deb`'s
/// `usr/share/doc/<package>/changelog.Debian.gz` names, each once, in
/// order; empty when it has none or cannot be read.
pub fn changelog_cves(deb: &Path) -> Vec<String> {
    newest_changelog_entry(deb)
        .map(|entry| entry.cves)
        .unwrap_or_default()
}

/// What the newest entry of a `.deb`'s changelog says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangelogEntry {
    /// The `urgency=` of its header line, lower-cased (`low`, `medium`,
    /// `high`, `emergency`, `critical`), if it gives one.
    pub urgency: Option<String>,
    /// The CVE IDs it names, each once, in order (at most 200).
    pub cves: Vec<String>,
}

/// The newest entry of the `.deb`'s `usr/share/doc/<package>/changelog.Debian.gz`;
/// None when it has no changelog or it cannot be read. Blocking.
pub fn newest_changelog_entry(deb: &Path) -> Option<ChangelogEntry> {
    let text = changelog_text(deb)?;
    Some(ChangelogEntry {
        urgency: urgency_of_newest_entry(&text),
        cves: cves_of_newest_entry(&text),
    })
}

/// The `urgency=` of the first header line
/// (`source (version) distributions; urgency=high`).
fn urgency_of_newest_entry(text: &str) -> Option<String> {
    let header = text.lines().find(|line| !line.trim().is_empty())?;
    let (_, fields) = header.split_once(';')?;
    fields
        .split(',')
        .filter_map(|field| field.trim().split_once('='))
        .find(|(key, _)| key.eq_ignore_ascii_case("urgency"))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
        .filter(|value| !value.is_empty() && value.len() <= 32)
}

fn changelog_text(deb: &Path) -> Option<String> {
    let mut child = std::process::Command::new("dpkg-deb")
        .env_clear()
        .env("PATH", super::PATH)
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let found = (|| {
        let mut archive = tar::Archive::new(stdout.take(MAX_DATA_READ));
        for entry in archive.entries().ok()? {
            let entry = entry.ok()?;
            let path = entry.path().ok()?.into_owned();
            let parts: Vec<_> = path
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let is_changelog = parts.len() == 5
                && parts[..3] == ["usr", "share", "doc"]
                && parts[4] == "changelog.Debian.gz";
            if is_changelog && entry.header().entry_type().is_file() {
                let mut text = String::new();
                flate2::read::GzDecoder::new(entry.take(MAX_CHANGELOG_GZ))
                    .take(MAX_CHANGELOG_TEXT)
                    .read_to_string(&mut text)
                    .ok()?;
                return Some(text);
            }
        }
        None
    })();
    // Done reading: dpkg-deb may be blocked on a full pipe.
    let _ = child.kill();
    let _ = child.wait();
    found
}

/// The CVE IDs of the first entry: from the top to the first trailer line
/// (` -- Maintainer <…>  date`).
fn cves_of_newest_entry(text: &str) -> Vec<String> {
    let mut cves: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with(" -- ") {
            break;
        }
        let bytes = line.as_bytes();
        let mut at = 0;
        while let Some(found) = line[at..].find("CVE-") {
            let start = at + found;
            let mut end = start + 4;
            let year = bytes[end..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            end += year;
            let mut id = None;
            if year == 4 && bytes.get(end) == Some(&b'-') {
                let digits = bytes[end + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if (4..=19).contains(&digits) {
                    end += 1 + digits;
                    id = Some(line[start..end].to_owned());
                }
            }
            if let Some(id) = id
                && !cves.contains(&id)
                && cves.len() < MAX_CVES
            {
                cves.push(id);
            }
            at = end.max(start + 4);
        }
    }
    cves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cves_come_from_the_newest_entry_only_and_are_validated() {
        let text = "pkg (2.0-1) sid; urgency=high\n\n  * Fix CVE-2024-12345 and \
                    CVE-2024-1234, not CVE-24-1 nor CVE-2024-12.\n  * Again CVE-2024-12345.\n\n \
                    -- A <a@b>  Mon, 01 Jan 2024 00:00:00 +0000\n\npkg (1.0-1) sid; urgency=low\n\n  \
                    * CVE-2001-0001\n";
        assert_eq!(
            cves_of_newest_entry(text),
            ["CVE-2024-12345", "CVE-2024-1234"]
        );
    }

    #[test]
    fn urgency_comes_from_the_newest_header_line() {
        let text = "\npkg (2.0-1) sid; urgency=HIGH, binary-only=yes\n\n  * x\n\n \
                    -- A <a@b>  Mon, 01 Jan 2024 00:00:00 +0000\n\npkg (1.0-1) sid; urgency=low\n";
        assert_eq!(urgency_of_newest_entry(text).as_deref(), Some("high"));
        assert_eq!(urgency_of_newest_entry("pkg (1.0) sid\n"), None);
    }

    #[test]
    fn unmet_dependencies_are_read_from_apts_report() {
        let output = "Reading package lists...\n\
            The following packages have unmet dependencies:\n \
            owtest-lib1 : Depends: owtest-missing (>= 2) but it is not installable\n               \
            Depends: owtest-lib-tools but it is not installable\n\
            E: Unable to correct problems, you have held broken packages.\n";
        assert_eq!(
            unmet_dependencies(output),
            [
                "owtest-lib1: Depends: owtest-missing (>= 2) but it is not installable",
                "owtest-lib1: Depends: owtest-lib-tools but it is not installable"
            ]
        );
    }

    #[test]
    fn status_lines_parse_and_bad_percentages_are_dropped() {
        assert!(matches!(
            parse_status("dlstatus:1:42.5:Retrieving file 1 of 2"),
            Some(StatusLine::Download(p)) if p == 42.5
        ));
        assert!(parse_status("dlstatus:1:NaN:x").is_none());
        assert!(parse_status("dlstatus:1:500:x").is_none());
        assert!(matches!(
            parse_status("pmerror:/x.deb:50:trying to overwrite"),
            Some(StatusLine::Error(e)) if e == "/x.deb: trying to overwrite"
        ));
    }

    #[test]
    fn package_names_that_read_as_options_are_refused() {
        let package = |name: &str, version: &str| AptPackage {
            name: name.into(),
            architecture: "amd64".into(),
            version: version.into(),
            size: 1,
            sha256: openwua_model::update::Sha256Digest([0; 32]),
            uses_debconf: false,
        };
        assert!(validate(&package("owtest-lib1", "1:2.0-1+deb12u1")).is_ok());
        assert!(validate(&package("-oDir=/", "1")).is_err());
        assert!(validate(&package("owtest", "1 2")).is_err());
        assert!(validate(&package("owtest", "=1")).is_err());
    }
}
