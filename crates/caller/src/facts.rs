//! Reading a caller's facts through the pinned process.
//!
//! The peer is pinned by a pidfd (`SO_PEERPIDFD`; before Linux 6.5 a
//! `pidfd_open` after the fact, marked weak). `/proc/<pid>` is opened once
//! as a directory handle and checked against the pidfd *after* opening: a
//! handle opened while the pidfd still names that pid is bound to that
//! process for good (a reaped process's files fail with `ESRCH`, never a
//! recycled pid's), so every file is then read with `openat` relative to
//! it. Parents are opened the same way and count only if they are older
//! than their child (a younger one holds a pid the real parent left).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::socket::{getsockopt, sockopt};
use nix::sys::stat::Mode;

use super::records::{
    self, LogindSession, Stat, UtmpLogin, device_numbers, parse_audit_id, parse_stat, parse_utmp,
    terminal_path,
};

/// Where logind keeps its session records.
pub const LOGIND_SESSIONS: &str = "/run/systemd/sessions";
/// Where logind keeps its user records.
pub const LOGIND_USERS: &str = "/run/systemd/users";
/// The utmp file.
pub const UTMP: &str = "/var/run/utmp";
/// The console login program's command name: the one entry point whose
/// own controlling terminal is a line of its session.
pub const CONSOLE_LOGIN: &str = "login";
/// How far up the parent chain the entry point is looked for.
const MAX_DEPTH: usize = 64;
/// utmp is small; a larger file is refused.
const MAX_UTMP: usize = 1 << 20;

/// How the process was pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// `SO_PEERPIDFD`: the kernel's pidfd of the process that connected.
    Peer,
    /// `pidfd_open` after the fact (no `SO_PEERPIDFD`): weak.
    Opened,
    /// No pidfd: the process's files are not read. Why.
    Missing(String),
}

/// A `/proc/<pid>` directory handle: every file is opened relative to it.
#[derive(Debug)]
pub struct ProcessDir {
    dir: OwnedFd,
}

impl ProcessDir {
    /// Opens `/proc/<pid>` as a directory.
    pub fn open(pid: i32) -> io::Result<ProcessDir> {
        if pid <= 0 {
            return Err(io::Error::from(Errno::ESRCH));
        }
        let dir = open(
            format!("/proc/{pid}").as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ProcessDir { dir })
    }

    /// One file of the process, read through the handle.
    pub fn read(&self, name: &str) -> io::Result<String> {
        let fd = openat(
            self.dir.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        read_small(File::from(fd))
    }

    /// The directory's owner: the process's effective uid (root for a
    /// non-dumpable process such as a setuid program).
    pub fn owner(&self) -> io::Result<u32> {
        Ok(nix::sys::stat::fstat(self.dir.as_fd())?.st_uid)
    }

    /// The program the process runs (`exe`), which, unlike its command
    /// name, it cannot choose: a setuid program started through a link
    /// named `login` is still that program.
    fn exe(&self) -> Option<String> {
        nix::fcntl::readlinkat(self.dir.as_fd(), "exe")
            .ok()?
            .into_string()
            .ok()
    }

    fn stat(&self) -> Option<Stat> {
        self.read("stat").ok().as_deref().and_then(parse_stat)
    }

    fn audit(&self, name: &str) -> Option<u32> {
        self.read(name).ok().as_deref().and_then(parse_audit_id)
    }
}

/// Reads a small file (procfs, logind) with page-sized reads: procfs files
/// have no size, and `read_to_string` would stat, seek and grow from 32
/// bytes — three times the system calls.
fn read_small(file: File) -> io::Result<String> {
    let bytes = read_bytes(file)?;
    String::from_utf8(bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// [`read_small`]'s bytes, up to utmp's limit. A read that does not fill
/// the buffer is the end: procfs makes these small files whole in one read
/// (and a regular file ends there too), which saves a read per file.
fn read_bytes(mut file: File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => {
                bytes.extend_from_slice(&buffer[..count]);
                if count < buffer.len() {
                    break;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        if bytes.len() > MAX_UTMP {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "file too large"));
        }
    }
    Ok(bytes)
}

/// Whether the process a pidfd pins is still running (a pidfd becomes
/// readable when its process exits). While it runs its pid is not free, so
/// `/proc/<pid>` opened before this check is that process.
fn still_running(pidfd: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

/// Pins the peer of `socket`: its pidfd, and how it was had.
pub fn pin(socket: &impl AsFd, pid: i32) -> (Option<OwnedFd>, Pin) {
    match getsockopt(socket, sockopt::PeerPidfd) {
        Ok(pidfd) => (Some(pidfd), Pin::Peer),
        // Kernels before 6.5: pin it now; it may have been replaced since it
        // connected (a race, hence weak). The connection exists already, so
        // a process started after this moment cannot be the one that made it.
        Err(Errno::ENOPROTOOPT) => {
            let connected_by = uptime_ticks();
            let opened = rustix::process::Pid::from_raw(pid)
                .ok_or_else(|| io::Error::from(Errno::ESRCH))
                .and_then(|pid| {
                    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                        .map_err(io::Error::from)
                });
            match opened {
                Ok(pidfd) => match started_after(pid, &pidfd, connected_by) {
                    None => (Some(pidfd), Pin::Opened),
                    Some(why) => (None, Pin::Missing(why)),
                },
                Err(error) => (None, Pin::Missing(format!("pidfd_open({pid}): {error}"))),
            }
        }
        Err(error) => (None, Pin::Missing(format!("SO_PEERPIDFD: {error}"))),
    }
}

/// Clock ticks since boot now, as `/proc/<pid>/stat` counts start times;
/// None when `/proc/uptime` cannot be read.
fn uptime_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    let per_second = rustix::param::clock_ticks_per_second();
    // Whole ticks, rounded up: a process started in this tick may be ours.
    Some((seconds * per_second as f64).ceil() as u64)
}

/// Why the process `pidfd` pins is not the one that connected by
/// `connected_by` (it started later: the caller exited and its pid was
/// reused), or None when it may be.
fn started_after(pid: i32, pidfd: &OwnedFd, connected_by: Option<u64>) -> Option<String> {
    let connected_by = connected_by?;
    let stat = ProcessDir::open(pid).ok()?.stat()?;
    if !still_running(pidfd) {
        return Some(format!("process {pid} exited"));
    }
    (stat.start_ticks > connected_by).then(|| {
        format!("pid {pid} belongs to a process started after the connection: the caller exited and its pid was reused")
    })
}

/// Whether the machine has audit loginuids at all (a kernel without audit
/// has no `/proc/self/loginuid`). Fixed for the agent's life.
pub fn audit_available() -> bool {
    static AUDIT: OnceLock<bool> = OnceLock::new();
    *AUDIT.get_or_init(|| std::path::Path::new("/proc/self/loginuid").exists())
}

/// Whether logind runs (it keeps its session records in `/run`).
pub fn logind_running() -> bool {
    std::path::Path::new(LOGIND_SESSIONS).is_dir()
}

/// A controlling terminal and its owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terminal {
    /// The device number (`/proc/<pid>/stat` field 7).
    pub tty_nr: u64,
    /// Its `/dev` path, when it is a pseudo-terminal or console.
    pub path: Option<String>,
    /// The path's owner, when the path is that very device.
    pub owner: Option<u32>,
    /// Why the owner is unknown.
    pub problem: Option<String>,
}

impl Terminal {
    /// The terminal of a `tty_nr`; None for "no terminal".
    pub fn of(tty_nr: u64) -> Option<Terminal> {
        if tty_nr == 0 {
            return None;
        }
        let mut terminal = Terminal {
            tty_nr,
            ..Terminal::default()
        };
        let Some(path) = terminal_path(tty_nr) else {
            let (major, minor) = device_numbers(tty_nr);
            terminal.problem = Some(format!("device {major}:{minor} is not a terminal line"));
            return Some(terminal);
        };
        match std::fs::metadata(&path) {
            // The path must be the very device: another devpts instance
            // (a container's) could show a different terminal there.
            Ok(meta)
                if meta.file_type().is_char_device()
                    && device_numbers(meta.rdev()) == device_numbers(tty_nr) =>
            {
                terminal.owner = Some(meta.uid());
            }
            Ok(_) => terminal.problem = Some(format!("{path} is another device here")),
            Err(error) => terminal.problem = Some(format!("{path}: {error}")),
        }
        terminal.path = Some(path);
        Some(terminal)
    }
}

/// A process up the caller's chain in the same audit session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    /// Its pid.
    pub pid: i32,
    /// Its effective uid (owner of `/proc/<pid>`).
    pub uid: u32,
    /// Its command name.
    pub comm: String,
    /// Its controlling terminal's device number.
    pub tty_nr: u64,
    /// The program it runs, read only for a root `login` (whose terminal
    /// may be its session's line).
    pub exe: Option<String>,
}

/// A utmp login and what the agent found of its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpEntry {
    /// The record.
    pub login: UtmpLogin,
    /// The record's user is the audit login user.
    pub for_login_user: bool,
    /// The audit session of `ut_pid`, when it is alive and has one.
    pub pid_session: Option<u32>,
}

/// Everything read about one caller; [`super::classify::classify`] turns it
/// into a context. Plain data, so the rules can be tested without a
/// machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `SO_PEERCRED` uid.
    pub uid: u32,
    /// `SO_PEERCRED` gid.
    pub gid: u32,
    /// `SO_PEERCRED` pid.
    pub pid: i32,
    /// `/proc/<pid>/status` supplementary groups.
    pub groups: Vec<u32>,
    /// How the process was pinned; None when not attempted.
    pub pin: Option<Pin>,
    /// Why `/proc/<pid>` could not be read (the other facts are then empty).
    pub proc_problem: Option<String>,
    /// The machine has logind running.
    pub logind_running: bool,
    /// The machine has audit loginuids.
    pub audit_available: bool,
    /// The caller's user name.
    pub user_name: Option<String>,
    /// The systemd cgroup path.
    pub cgroup: Option<String>,
    /// The logind session named by the cgroup.
    pub cgroup_session: Option<String>,
    /// The logind record of the cgroup's session (root-owned file).
    pub logind: Option<LogindSession>,
    /// `/proc/<pid>/loginuid`, when set.
    pub login_uid: Option<u32>,
    /// `/proc/<pid>/sessionid`, when set.
    pub audit_session: Option<u32>,
    /// The login uid's user name.
    pub login_name: Option<String>,
    /// Without a cgroup session: logind's record whose ID is the audit
    /// session's (logind keeps the two in sync).
    pub audit_logind: Option<LogindSession>,
    /// The utmp logins, or why utmp was not read.
    pub utmp: Option<Result<Vec<UtmpEntry>, String>>,
    /// The caller's controlling terminal.
    pub terminal: Option<Terminal>,
    /// Outside any session, under a user manager (`user@UID.service`, where
    /// desktop terminals run shells): that user's display session, from
    /// logind's user record — polkit's fallback.
    pub display: Option<(String, LogindSession)>,
    /// The parent chain in the caller's audit session, nearest first.
    pub chain: Vec<Ancestor>,
    /// For a root caller: the terminal of the nearest root ancestor on
    /// another terminal (`sudo` with `use_pty` gives its command a pty of
    /// its own), with that ancestor.
    pub relay: Option<(Ancestor, Terminal)>,
}

/// Reads the facts of the peer with these credentials. `pidfd` pins it.
pub fn gather(uid: u32, gid: u32, pid: i32, pidfd: Option<&OwnedFd>, pin: Pin) -> Facts {
    let mut facts = Facts {
        uid,
        gid,
        pid,
        pin: Some(pin),
        logind_running: logind_running(),
        audit_available: audit_available(),
        user_name: user_name(uid),
        ..Facts::default()
    };
    let Some(pidfd) = pidfd else {
        facts.proc_problem = Some("the process is not pinned".into());
        return facts;
    };
    let dir = match ProcessDir::open(pid) {
        Ok(dir) => dir,
        Err(error) => {
            facts.proc_problem = Some(format!("/proc/{pid}: {error}"));
            return facts;
        }
    };
    // After opening: the handle is the pinned process's only if that
    // process still runs (its pid cannot have been reused yet).
    if !still_running(pidfd) {
        facts.proc_problem = Some(format!("process {pid} exited"));
        return facts;
    }
    read_process(&mut facts, &dir);
    facts
}

fn read_process(facts: &mut Facts, dir: &ProcessDir) {
    if let Ok(status) = dir.read("status") {
        facts.groups = status
            .lines()
            .find_map(|line| line.strip_prefix("Groups:"))
            .map(|groups| {
                groups
                    .split_whitespace()
                    .filter_map(|gid| gid.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
    }
    let stat = dir.stat();
    if let Ok(cgroup) = dir.read("cgroup")
        && let Some(path) = records::systemd_cgroup(&cgroup)
    {
        facts.cgroup_session = records::session_of_cgroup(path).map(str::to_owned);
        facts.cgroup = Some(path.to_owned());
    }
    if facts.logind_running {
        match &facts.cgroup_session {
            Some(id) => facts.logind = read_logind(id),
            // Outside any session: a desktop terminal under a user manager.
            None => {
                facts.display = facts
                    .cgroup
                    .as_deref()
                    .and_then(records::user_manager_of_cgroup)
                    .and_then(read_display_session);
            }
        }
    }
    facts.login_uid = dir.audit("loginuid");
    facts.audit_session = dir.audit("sessionid");
    facts.terminal = stat.as_ref().and_then(|stat| Terminal::of(stat.tty_nr));
    let (Some(login_uid), Some(session)) = (facts.login_uid, facts.audit_session) else {
        return;
    };
    // The session owner is usually the caller: one lookup then.
    facts.login_name = if login_uid == facts.uid {
        facts.user_name.clone()
    } else {
        user_name(login_uid)
    };
    if facts.logind.is_none() && facts.logind_running {
        facts.audit_logind = read_logind(&session.to_string());
    }
    facts.utmp = Some(read_utmp(facts.login_name.as_deref()));
    if let Some(stat) = &stat {
        facts.chain = walk(stat, session);
        if facts.uid == 0 && stat.tty_nr != 0 {
            facts.relay = relay(&facts.chain, stat.tty_nr);
        }
    }
}

/// A logind record's text, trusted only as a root-owned file.
fn read_root_owned(path: &str) -> Option<String> {
    let file = File::open(path).ok()?;
    if file.metadata().ok()?.uid() != 0 {
        return None;
    }
    read_small(file).ok()
}

/// A user's display session and its record.
fn read_display_session(uid: u32) -> Option<(String, LogindSession)> {
    let user = read_root_owned(&format!("{LOGIND_USERS}/{uid}"))?;
    let id = records::display_session_of_user(&user)?;
    let record = read_logind(&id)?;
    Some((id, record))
}

fn read_logind(id: &str) -> Option<LogindSession> {
    if !records::valid_session_id(id) {
        return None;
    }
    let text = read_root_owned(&format!("{LOGIND_SESSIONS}/{id}"))?;
    Some(records::parse_logind_session(&text))
}

/// utmp's logins; for those of the login user, the audit session of their
/// process.
fn read_utmp(login_name: Option<&str>) -> Result<Vec<UtmpEntry>, String> {
    let file = File::open(UTMP).map_err(|error| format!("{UTMP}: {error}"))?;
    let meta = file
        .metadata()
        .map_err(|error| format!("{UTMP}: {error}"))?;
    if meta.uid() != 0 {
        return Err(format!("{UTMP} is not owned by root: ignored"));
    }
    let bytes = read_bytes(file).map_err(|error| format!("{UTMP}: {error}"))?;
    Ok(parse_utmp(&bytes)
        .into_iter()
        .map(|login| {
            let for_login_user = login_name.is_some_and(|name| name == login.user);
            let pid_session = if for_login_user {
                ProcessDir::open(login.pid)
                    .ok()
                    .and_then(|dir| dir.audit("sessionid"))
            } else {
                None
            };
            UtmpEntry {
                login,
                for_login_user,
                pid_session,
            }
        })
        .collect())
}

/// The parents of the caller while they are in its audit session.
fn walk(stat: &Stat, session: u32) -> Vec<Ancestor> {
    let mut chain = Vec::new();
    let mut ppid = stat.ppid;
    let mut child_started = stat.start_ticks;
    while chain.len() < MAX_DEPTH && ppid > 1 {
        let Ok(parent) = ProcessDir::open(ppid) else {
            break;
        };
        // Another session (or a recycled pid's): the walk ends either way.
        if parent.audit("sessionid") != Some(session) {
            break;
        }
        let (Some(parent_stat), Ok(uid)) = (parent.stat(), parent.owner()) else {
            break;
        };
        // A parent is older than its child. A process younger than the
        // child holds a pid the real parent left when it exited.
        if parent_stat.start_ticks > child_started {
            break;
        }
        child_started = parent_stat.start_ticks;
        let exe = (uid == 0 && parent_stat.comm == CONSOLE_LOGIN)
            .then(|| parent.exe())
            .flatten();
        chain.push(Ancestor {
            pid: ppid,
            uid,
            comm: parent_stat.comm,
            tty_nr: parent_stat.tty_nr,
            exe,
        });
        ppid = parent_stat.ppid;
    }
    chain
}

/// `sudo` (`use_pty`) runs its command on a pty of its own: the root
/// processes between the caller and the first one on another terminal
/// relay that terminal.
fn relay(chain: &[Ancestor], tty_nr: u64) -> Option<(Ancestor, Terminal)> {
    for ancestor in chain {
        if ancestor.uid != 0 {
            return None;
        }
        if ancestor.tty_nr != tty_nr {
            let terminal = Terminal::of(ancestor.tty_nr)?;
            return Some((ancestor.clone(), terminal));
        }
    }
    None
}

/// Names are kept at most this long (users from other sources than
/// `/etc/passwd`, such as LDAP, change without touching it).
const NAMES_KEPT: Duration = Duration::from_secs(10);

/// What `/etc/passwd` looked like when the kept names were read: any
/// change (useradd, userdel, a rename) drops them.
fn passwd_version() -> Option<(u64, i64, i64, u64)> {
    let meta = std::fs::metadata("/etc/passwd").ok()?;
    Some((meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.size()))
}

/// A uid's user name from the system's user database. A lookup reads the
/// database each time and every connection needs one or two, so names are
/// kept while `/etc/passwd` is unchanged, for [`NAMES_KEPT`] at most.
pub fn user_name(uid: u32) -> Option<String> {
    struct Names {
        since: Instant,
        version: Option<(u64, i64, i64, u64)>,
        known: HashMap<u32, Option<String>>,
    }
    static NAMES: Mutex<Option<Names>> = Mutex::new(None);
    let version = passwd_version();
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = names.get_or_insert_with(|| Names {
        since: Instant::now(),
        version,
        known: HashMap::new(),
    });
    if names.version != version || names.since.elapsed() > NAMES_KEPT {
        names.since = Instant::now();
        names.version = version;
        names.known.clear();
    }
    names
        .known
        .entry(uid)
        .or_insert_with(
            || match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                Ok(Some(user)) => Some(user.name),
                _ => None,
            },
        )
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_started_after_the_connection_is_not_the_caller() {
        let pid = i32::try_from(std::process::id()).expect("a pid fits");
        let pidfd = rustix::process::Pid::from_raw(pid)
            .ok_or(Errno::ESRCH)
            .and_then(|raw| {
                rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
                    .map_err(|error| Errno::from_raw(error.raw_os_error()))
            })
            .expect("pidfd_open of this process");
        // This process started after boot's first tick...
        assert!(
            started_after(pid, &pidfd, Some(0))
                .is_some_and(|why| why.contains("started after the connection"))
        );
        // ...and before now.
        assert_eq!(started_after(pid, &pidfd, uptime_ticks()), None);
        // Without a clock nothing is claimed.
        assert_eq!(started_after(pid, &pidfd, None), None);
    }
}
