//! Who is on the other end of a connection, from the kernel's word.
//!
//! The peer's uid, gid and pid come from `SO_PEERCRED` (fixed when it
//! connected); a pidfd from `SO_PEERPIDFD` pins the process, and everything
//! else — groups, login session, audit ids, terminal — is read through that
//! pinned process (`facts.rs`), parsed (`records.rs`) and classified
//! (`classify.rs`) into a [`CallerContext`] once, at connect. Nothing the
//! client sends changes any of it. `docs/caller-context.md` has the rules.

mod classify;
mod facts;
mod records;

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt};
use openwua_model::caller::CallerContext;
use openwua_model::hresult::E_ACCESSDENIED;

use crate::config::CallerSettings;
use crate::error::{AgentError, Result};

pub use classify::classify;
pub use facts::{Ancestor, Facts, Pin, Terminal, UtmpEntry};
pub use records::{LogindSession, UtmpLogin};

/// What classifying a caller needs from the configuration, resolved once
/// at start-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerPolicy {
    /// Who besides root is an administrator.
    pub admins: Administrators,
    /// `[caller]`.
    pub settings: CallerSettings,
}

impl CallerPolicy {
    /// The configuration's policy.
    pub fn of(config: &crate::config::Config) -> CallerPolicy {
        CallerPolicy {
            admins: Administrators::of(config),
            settings: config.caller,
        }
    }
}

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
    /// How the agent sees it: class, evidence, what it may do.
    pub context: CallerContext,
}

impl Caller {
    /// Reads the peer of a connected Unix socket and classifies it.
    pub fn of_socket(socket: &impl AsFd, policy: &CallerPolicy) -> std::io::Result<Caller> {
        let credentials = getsockopt(socket, sockopt::PeerCredentials)?;
        let pid = credentials.pid();
        let (pidfd, pin) = facts::pin(socket, pid);
        let facts = facts::gather(
            credentials.uid(),
            credentials.gid(),
            pid,
            pidfd.as_ref(),
            pin,
        );
        // Authorization decides what it may download and install.
        let is_admin = policy.admins.admit(facts.uid, facts.gid, &facts.groups);
        let context = classify::classify(&facts, &policy.settings, is_admin);
        Ok(Caller {
            uid: facts.uid,
            gid: facts.gid,
            pid,
            groups: facts.groups,
            context,
        })
    }

    /// Root, a member of the admin group, or the agent's owner when
    /// [`Administrators::owner`] is set.
    pub fn is_admin(&self, admins: &Administrators) -> bool {
        admins.admit(self.uid, self.gid, &self.groups)
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
    /// Whether these credentials are an administrator's.
    pub fn admit(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        uid == 0
            || self.owner == Some(uid)
            || self
                .group
                .is_some_and(|admin| gid == admin || groups.contains(&admin))
    }

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
