//! Who is on the other end of a connection, from the kernel's word.
//!
//! The peer's uid, gid and pid come from `SO_PEERCRED` (fixed when it
//! connected), a pidfd from `SO_PEERPIDFD` pins the process, and its
//! supplementary groups are read from `/proc/<pid>/status` and kept only if
//! the pidfd shows the same process is still alive after the read. Nothing
//! the client sends changes any of it. The full caller context (sessions,
//! terminals) is the caller-context issue's; authorization starts here.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{getsockopt, sockopt};
use openwua_model::hresult::E_ACCESSDENIED;

use crate::error::{AgentError, Result};

/// The kernel-attested identity of a connected client.
#[derive(Debug)]
pub struct Caller {
    /// Effective uid when it connected.
    pub uid: u32,
    /// Effective gid when it connected.
    pub gid: u32,
    /// Its process ID.
    pub pid: i32,
    /// Supplementary groups; empty when they could not be read reliably.
    pub groups: Vec<u32>,
    /// Pins the process, so its pid cannot be recycled under later checks.
    pub pidfd: Option<OwnedFd>,
}

impl Caller {
    /// Reads the peer of a connected Unix socket.
    pub fn of_socket(socket: &impl AsFd) -> std::io::Result<Caller> {
        let credentials = getsockopt(socket, sockopt::PeerCredentials)?;
        // Kernels before 6.5 have no SO_PEERPIDFD; the pid alone is weaker.
        let pidfd = getsockopt(socket, sockopt::PeerPidfd).ok();
        let pid = credentials.pid();
        let groups = read_groups(pid, pidfd.as_ref());
        Ok(Caller {
            uid: credentials.uid(),
            gid: credentials.gid(),
            pid,
            groups,
            pidfd,
        })
    }

    /// Root, a member of the admin group, or the agent's owner when
    /// [`Administrators::owner`] is set.
    pub fn is_admin(&self, admins: &Administrators) -> bool {
        self.uid == 0
            || admins.owner == Some(self.uid)
            || admins
                .group
                .is_some_and(|gid| self.gid == gid || self.groups.contains(&gid))
    }

    /// Fails with `E_ACCESSDENIED` unless [`Caller::is_admin`].
    pub fn require_admin(&self, admins: &Administrators, what: &str) -> Result<()> {
        if self.is_admin(admins) {
            return Ok(());
        }
        let who = match admins.group {
            Some(gid) => format!("root or members of group {gid}"),
            None => "root".to_owned(),
        };
        Err(AgentError::new(
            E_ACCESSDENIED,
            format!("uid {} may not {what}: only {who} may", self.uid),
        ))
    }
}

/// Who besides root may change the agent's state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Administrators {
    /// The configured admin group's gid.
    pub group: Option<u32>,
    /// The agent's own uid, when the configuration trusts it.
    pub owner: Option<u32>,
}

impl Administrators {
    /// Resolves the configuration's admin settings once, at start-up.
    pub fn of(config: &crate::config::Config) -> Administrators {
        Administrators {
            group: config.admin_group.as_deref().and_then(group_id),
            owner: config
                .owner_is_admin
                .then(|| nix::unistd::geteuid().as_raw()),
        }
    }
}

/// The `Groups:` line of `/proc/<pid>/status`, trusted only if the pinned
/// process is still alive afterwards (else the pid may name another process).
fn read_groups(pid: i32, pidfd: Option<&OwnedFd>) -> Vec<u32> {
    let Some(pidfd) = pidfd else {
        return Vec::new();
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    if !process_alive(pidfd) {
        return Vec::new();
    }
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|gid| gid.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A pidfd becomes readable when its process exits.
fn process_alive(pidfd: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

/// The gid of a group name, from the system's group database.
pub fn group_id(name: &str) -> Option<u32> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Some(group.gid.as_raw()),
        Ok(None) => {
            tracing::warn!("admin group {name:?} does not exist; only root is an administrator");
            None
        }
        Err(error) => {
            tracing::warn!("cannot look up group {name:?}: {error}");
            None
        }
    }
}
