//! Who may do what: the agent's one place for authorization.

use openwua_caller::Caller;
use openwua_model::hresult::E_ACCESSDENIED;

use crate::config::Config;
use crate::error::{AgentError, Result};

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

    /// Whether a connected caller is an administrator.
    pub fn admits(&self, caller: &Caller) -> bool {
        self.admit(caller.uid, caller.gid, &caller.groups)
    }

    /// Fails with `E_ACCESSDENIED` unless the caller is an administrator.
    pub fn require(&self, caller: &Caller, what: &str) -> Result<()> {
        if self.admits(caller) {
            return Ok(());
        }
        let who = match self.group {
            Some(gid) => format!("root or members of group {gid}"),
            None => "root".to_owned(),
        };
        Err(AgentError::new(
            E_ACCESSDENIED,
            format!("uid {} may not {what}: only {who} may", caller.uid),
        ))
    }

    /// Resolves the configuration's admin settings once, at start-up.
    pub fn of(config: &Config) -> Administrators {
        Administrators {
            group: config.admin_group.as_deref().and_then(group_id),
            owner: config
                .owner_is_admin
                .then(|| nix::unistd::geteuid().as_raw()),
        }
    }
}

/// The gid of a group name, from the system's group database.
fn group_id(name: &str) -> Option<u32> {
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
