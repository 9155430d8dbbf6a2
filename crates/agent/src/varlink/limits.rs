//! What one local user may make the agent hold: connections and the bytes
//! of calls not yet run. Any local user may connect, so without these one
//! could exhaust the agent's memory or descriptors for everyone.
//!
//! Root (uid 0) has its own per-user caps like anyone, but does not count
//! towards the totals: however many others hold, root can still get in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use openwua_model::hresult::WU_E_PT_QUOTA_EXCEEDED;

use crate::config::ConnectionSettings;
use crate::error::AgentError;

/// Bytes of calls read and not yet run (a partial call, or one waiting for
/// the call before it) one user's connections may hold together: four
/// calls of the largest size.
pub const MAX_BUFFERED_PER_USER: usize = 4 * openwua_varlink::MAX_CALL;
/// The same, for all users but root together.
pub const MAX_BUFFERED: usize = 16 * openwua_varlink::MAX_CALL;
/// Replies are written in pieces this large, each within the write-stall
/// timeout (`[connections]`): a client that stops reading does not keep
/// its reply in the agent's memory.
pub const WRITE_CHUNK: usize = 1024 * 1024;
/// How long a refused connection gets to send its first call.
pub const REFUSAL_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections refused at once that get to send their first call before
/// reading the refusal (so that they read it instead of a reset); more are
/// closed as soon as the refusal is written.
pub const MAX_REFUSING: usize = 64;

/// The counts, shared by every connection, and the configured caps.
#[derive(Debug, Default)]
pub struct Limits {
    settings: ConnectionSettings,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<u32, Usage>,
    /// All but root's.
    total: Usage,
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    connections: usize,
    buffered: usize,
}

impl Limits {
    /// Limits with the configuration's caps.
    pub fn new(settings: ConnectionSettings) -> Limits {
        Limits {
            settings,
            state: Mutex::default(),
        }
    }

    /// The configured caps and timeouts.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Counts a new connection from `uid`, or says why it is refused.
    pub fn admit(self: &Arc<Self>, uid: u32) -> Result<Admission, AgentError> {
        let (per_user, total) = (self.settings.per_user, self.settings.total);
        let mut state = self.lock();
        let user = state.users.get(&uid).copied().unwrap_or_default();
        if user.connections >= per_user {
            return Err(quota(format!(
                "uid {uid} already has {per_user} connections to the agent, \
                 the most one user may hold; close some (or make calls on them in turn) and \
                 connect again"
            )));
        }
        if uid != 0 && state.total.connections >= total {
            return Err(quota(format!(
                "the agent already serves {total} connections; try again shortly"
            )));
        }
        state.users.entry(uid).or_default().connections += 1;
        if uid != 0 {
            state.total.connections += 1;
        }
        Ok(Admission {
            limits: Arc::clone(self),
            uid,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The counts stay consistent whatever panicked holding the lock:
        // each change is one statement.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn quota(detail: String) -> AgentError {
    AgentError::new(WU_E_PT_QUOTA_EXCEEDED, detail)
}

/// One connection, counted until dropped.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<Limits>,
    uid: u32,
}

impl Admission {
    /// The configured caps and timeouts.
    pub fn settings(&self) -> ConnectionSettings {
        self.limits.settings
    }

    /// Where this connection's reader reserves the bytes it holds.
    pub fn budget(&self) -> Budget {
        Budget {
            limits: Arc::clone(&self.limits),
            uid: self.uid,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut state = self.limits.lock();
        if let Some(user) = state.users.get_mut(&self.uid) {
            user.connections = user.connections.saturating_sub(1);
            if user.connections == 0 && user.buffered == 0 {
                state.users.remove(&self.uid);
            }
        }
        if self.uid != 0 {
            state.total.connections = state.total.connections.saturating_sub(1);
        }
    }
}

/// One user's budget of buffered bytes, as a connection's reader uses it.
#[derive(Debug)]
pub struct Budget {
    limits: Arc<Limits>,
    uid: u32,
}

impl Budget {
    /// The configured caps and timeouts.
    pub fn settings(&self) -> ConnectionSettings {
        self.limits.settings
    }

    /// An empty reservation, for the next call.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            limits: Arc::clone(&self.limits),
            uid: self.uid,
            bytes: 0,
        }
    }
}

/// Bytes of one call held for its user, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    limits: Arc<Limits>,
    uid: u32,
    bytes: usize,
}

impl Reservation {
    /// Reserves `more` bytes; false (reserving nothing) when that would
    /// take the user, or everyone, over the budget.
    pub fn grow(&mut self, more: usize) -> bool {
        let mut state = self.limits.lock();
        let user = state.users.get(&self.uid).copied().unwrap_or_default();
        if user.buffered + more > MAX_BUFFERED_PER_USER
            || (self.uid != 0 && state.total.buffered + more > MAX_BUFFERED)
        {
            return false;
        }
        state.users.entry(self.uid).or_default().buffered += more;
        if self.uid != 0 {
            state.total.buffered += more;
        }
        self.bytes += more;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut state = self.limits.lock();
        if let Some(user) = state.users.get_mut(&self.uid) {
            user.buffered = user.buffered.saturating_sub(self.bytes);
        }
        if self.uid != 0 {
            state.total.buffered = state.total.buffered.saturating_sub(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_user_is_capped_and_others_are_not() {
        let limits = Arc::new(Limits::default());
        let held: Vec<Admission> = (0..ConnectionSettings::default().per_user)
            .map(|_| limits.admit(1000).expect("under the cap"))
            .collect();
        let refused = limits.admit(1000).expect_err("over the cap");
        assert_eq!(refused.hresult, WU_E_PT_QUOTA_EXCEEDED);
        assert!(limits.admit(1001).is_ok());
        drop(held);
        assert!(limits.admit(1000).is_ok());
    }

    #[test]
    fn root_gets_in_when_everyone_else_is_capped() {
        let limits = Arc::new(Limits::default());
        let held: Vec<Admission> = (0..ConnectionSettings::default().total)
            .map(|n| limits.admit(2000 + (n / ConnectionSettings::default().per_user) as u32))
            .collect::<Result<_, _>>()
            .expect("under the caps");
        assert!(limits.admit(5000).is_err());
        assert!(limits.admit(0).is_ok());
        drop(held);
    }

    #[test]
    fn a_user_s_buffered_bytes_are_capped_until_given_back() {
        let limits = Arc::new(Limits::default());
        let connection = limits.admit(1000).expect("admitted");
        let budget = connection.budget();
        let mut first = budget.reservation();
        assert!(first.grow(MAX_BUFFERED_PER_USER));
        let mut second = budget.reservation();
        assert!(!second.grow(1));
        drop(first);
        assert!(second.grow(1));
    }
}
