//! Who may do what: the agent's one place for authorization (may this
//! caller run this operation, see this job) and interaction (may this
//! caller be asked an installer's questions). Every operation of the agent
//! asks here first, before it takes a job, a slot, a lock or a history row.
//! [`RULES`] is the table docs/agent.md shows; a test keeps the two equal.

use std::time::Duration;

use openwua_caller::Caller;
use openwua_installer::prompts::{PromptStream, Prompter};
use openwua_model::caller::CallerContext;
use openwua_model::hresult::{E_ACCESSDENIED, E_INVALIDARG};
use openwua_model::operation::JobInfo;
use uuid::Uuid;

use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::install::Interaction;

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

/// Who asks, as the kernel says (and the client application it names):
/// what policy decides on.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The caller's uid.
    pub uid: u32,
    /// The caller's pid, for the log.
    pub pid: i32,
    /// Root, the admin group, or the embedded agent's owner.
    pub is_admin: bool,
    /// How the agent classified the caller (whether it is an interactive
    /// user, and why not).
    pub context: CallerContext,
    /// The call's `ClientApplicationID` (empty when none), for history,
    /// jobs and the log; at most [`MAX_CLIENT_ID_BYTES`].
    pub client_application_id: String,
}

impl Requester {
    /// The requester a connected caller is, for one call.
    pub fn of(
        caller: &Caller,
        admins: &Administrators,
        client_application_id: Option<String>,
    ) -> Requester {
        Requester {
            uid: caller.uid,
            pid: caller.pid,
            is_admin: admins.admit(caller.uid, caller.gid, &caller.groups),
            context: caller.context.clone(),
            client_application_id: client_application_id.unwrap_or_default(),
        }
    }
}

/// Update IDs one call may name (WUA's collections have no documented
/// limit; this bounds the work and history one call can cause).
pub const MAX_UPDATE_IDS: usize = 10_000;
/// A `ClientApplicationID`'s length, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 256;
/// Search criteria's length, in bytes.
pub const MAX_CRITERIA_BYTES: usize = 64 * 1024;
/// A service name's length, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// A path's or URL's length, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Fails with `E_INVALIDARG` when `value` (the parameter `name`) is longer
/// than `max` bytes.
pub fn check_length(name: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(AgentError::new(
            E_INVALIDARG,
            format!(
                "{name} is {} bytes long; at most {max} are accepted",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// Fails with `E_INVALIDARG` when a call names more than
/// [`MAX_UPDATE_IDS`] updates, or one twice (refused rather than
/// collapsed: a caller's list with a repeat is a mistake worth seeing).
pub fn check_update_ids(update_ids: &[Uuid]) -> Result<()> {
    if update_ids.len() > MAX_UPDATE_IDS {
        return Err(AgentError::new(
            E_INVALIDARG,
            format!(
                "the call names {} updates; at most {MAX_UPDATE_IDS} are accepted, so call again \
                 in parts",
                update_ids.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(update_ids.len());
    if let Some(repeated) = update_ids.iter().find(|id| !seen.insert(**id)) {
        return Err(AgentError::new(
            E_INVALIDARG,
            format!("update {repeated} is named twice; name each update once"),
        ));
    }
    Ok(())
}

/// What a caller may ask the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Search, show an update, list services, system and installer state.
    Search,
    /// Read history.
    ReadHistory,
    /// Sync the services' catalogs.
    Sync,
    /// List, watch or abort a job.
    Job,
    /// Hide or unhide updates.
    Hide,
    /// Accept an update's licence terms.
    AcceptEula,
    /// Add or remove a service, set the default.
    ChangeServices,
    /// Download updates.
    Download,
    /// Install updates.
    Install,
    /// Uninstall updates.
    Uninstall,
    /// Export the status reports of an offline scan package service.
    ExportReports,
    /// Change Automatic Updates' settings, pause or resume it.
    ChangeAutomaticUpdates,
}

/// Who may take an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Anyone who can open the socket.
    Anyone,
    /// The uid that started the job, or an administrator.
    OwnerOrAdmin,
    /// Root, a member of `admin_group`, or the embedded agent's owner.
    Admin,
}

impl Who {
    fn describe(self) -> &'static str {
        match self {
            Who::Anyone => "anyone who can open the socket",
            Who::OwnerOrAdmin => "the uid that started the job, or an administrator",
            Who::Admin => "an administrator",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The action.
    pub action: Action,
    /// The Varlink methods that take it.
    pub methods: &'static str,
    /// Who may.
    pub who: Who,
    /// What a refusal says was refused ("may not …").
    pub what: &'static str,
}

/// Who may do what. docs/agent.md shows this table ([`markdown_table`]).
pub const RULES: &[Rule] = &[
    Rule {
        action: Action::Search,
        methods: "`Search`, `GetUpdate`, `ListServices`, `GetSystemInfo`, `GetInstallerState`, `GetReportingState`, `GetCallerContext`, `GetAutomaticUpdates`",
        who: Who::Anyone,
        what: "search",
    },
    Rule {
        action: Action::ReadHistory,
        methods: "`QueryHistory`, `GetTotalHistoryCount`",
        who: Who::Anyone,
        what: "read history",
    },
    Rule {
        action: Action::Sync,
        methods: "`Sync`, `DetectNow`",
        who: Who::Anyone,
        what: "sync",
    },
    Rule {
        action: Action::Job,
        methods: "`ListJobs` (lists only the jobs the caller may see), `WatchJob`, `AbortJob`",
        who: Who::OwnerOrAdmin,
        what: "see or abort a job",
    },
    Rule {
        action: Action::Hide,
        methods: "`SetHidden`",
        who: Who::Admin,
        what: "hide or unhide updates",
    },
    Rule {
        action: Action::AcceptEula,
        methods: "`AcceptEula`",
        who: Who::Admin,
        what: "accept licence terms",
    },
    Rule {
        action: Action::ChangeServices,
        methods: "`AddScanPackageService`, `AddServerService`, `AddAptService`, `RemoveService`, `SetDefaultService`",
        who: Who::Admin,
        what: "change update services",
    },
    Rule {
        action: Action::Download,
        methods: "`Download`",
        who: Who::Admin,
        what: "download updates",
    },
    Rule {
        action: Action::Install,
        methods: "`Install`",
        who: Who::Admin,
        what: "install updates",
    },
    Rule {
        action: Action::Uninstall,
        methods: "`Uninstall`",
        who: Who::Admin,
        what: "uninstall updates",
    },
    Rule {
        action: Action::ExportReports,
        methods: "`ExportReports`",
        who: Who::Admin,
        what: "export status reports",
    },
    Rule {
        action: Action::ChangeAutomaticUpdates,
        methods: "`SetAutomaticUpdates`, `PauseAutomaticUpdates`, `ResumeAutomaticUpdates`",
        who: Who::Admin,
        what: "change Automatic Updates",
    },
];

/// The first thing every operation does: fails with `E_ACCESSDENIED`
/// unless `requester` may take `action` (for [`Who::OwnerOrAdmin`],
/// `owner` is the uid that started the job), then with `E_INVALIDARG` when
/// its `ClientApplicationID` is too long. Changing actions are logged.
pub fn authorize(requester: &Requester, action: Action, owner: Option<u32>) -> Result<()> {
    permit(requester, action, owner)?;
    check_length(
        "ClientApplicationID",
        &requester.client_application_id,
        MAX_CLIENT_ID_BYTES,
    )?;
    if !matches!(action, Action::Search | Action::ReadHistory) {
        tracing::info!(
            uid = requester.uid,
            pid = requester.pid,
            client = requester.client_application_id,
            "{action:?}"
        );
    }
    Ok(())
}

fn permit(requester: &Requester, action: Action, owner: Option<u32>) -> Result<()> {
    // Every action has a row (a test checks it); one without would be
    // nobody's but an administrator's.
    let (who, what) = RULES
        .iter()
        .find(|rule| rule.action == action)
        .map_or((Who::Admin, "do this"), |rule| (rule.who, rule.what));
    let allowed = match who {
        Who::Anyone => true,
        Who::OwnerOrAdmin => requester.is_admin || owner == Some(requester.uid),
        Who::Admin => requester.is_admin,
    };
    if allowed {
        return Ok(());
    }
    Err(AgentError::new(
        E_ACCESSDENIED,
        format!(
            "uid {} may not {}: only {} may (root, or a member of the agent's admin_group)",
            requester.uid,
            what,
            who.describe()
        ),
    ))
}

/// Whether `requester` may see (list, watch, abort) `job`.
pub fn may_see_job(requester: &Requester, job: &JobInfo) -> bool {
    permit(requester, Action::Job, Some(job.caller_uid)).is_ok()
}

/// Whether the questions of a call's updates can be answered: only by a
/// caller the kernel shows to be an interactive user, whose client said
/// it answers and reads the streamed replies (`client_answers`: the call's
/// `interactive` and `more`). Then the job's prompter and the connection's
/// end of it.
pub fn interaction(
    requester: &Requester,
    client_answers: bool,
    question_timeout: Duration,
) -> (Interaction, Option<PromptStream>) {
    let context = &requester.context;
    if !context.may.install_interactive {
        let advice = context
            .advice
            .as_deref()
            .unwrap_or("run it from an administrator's own login");
        return (
            Interaction::Refused(format!(
                "it may ask the user something, and the agent classes this caller as {}, \
                 not an interactive user (`wua context` shows why): {advice}",
                context.class.describe()
            )),
            None,
        );
    }
    if !client_answers {
        return (
            Interaction::Refused(
                "it may ask the user something, and the client did not offer to answer \
                 (run `wua install` at a terminal, or call Install with interactive and more)"
                    .to_owned(),
            ),
            None,
        );
    }
    let (prompter, prompts) = Prompter::new(question_timeout);
    (Interaction::Answered(prompter), Some(prompts))
}

/// The table as docs/agent.md shows it.
pub fn markdown_table() -> String {
    let mut table = String::from("| action | methods | who |\n| --- | --- | --- |\n");
    for rule in RULES {
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            rule.what,
            rule.methods,
            rule.who.describe()
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester(uid: u32, is_admin: bool) -> Requester {
        Requester {
            uid,
            pid: 1,
            is_admin,
            client_application_id: String::new(),
            context: CallerContext {
                class: openwua_model::caller::CallerClass::Service,
                uid,
                login_uid: None,
                session: None,
                terminal: None,
                terminal_verified: false,
                remote: false,
                weak: false,
                facts: Vec::new(),
                may: openwua_model::caller::CallerPermissions {
                    search: true,
                    download: is_admin,
                    install: is_admin,
                    install_interactive: false,
                },
                advice: None,
            },
        }
    }

    #[test]
    fn the_docs_show_the_table_the_code_follows() {
        let docs = include_str!("../../../docs/agent.md");
        assert!(
            docs.contains(&markdown_table()),
            "docs/agent.md's \"Who may do what\" table must be, exactly:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn every_row_is_enforced_as_written() {
        let admin = requester(1000, true);
        let owner = requester(1001, false);
        let other = requester(1002, false);
        let actions = [
            Action::Search,
            Action::ReadHistory,
            Action::Sync,
            Action::Job,
            Action::Hide,
            Action::AcceptEula,
            Action::ChangeServices,
            Action::Download,
            Action::Install,
            Action::Uninstall,
            Action::ExportReports,
            Action::ChangeAutomaticUpdates,
        ];
        for action in actions {
            assert!(RULES.iter().any(|rule| rule.action == action), "{action:?}");
        }
        for rule in RULES {
            let job_owner = Some(owner.uid);
            let decide = |who: &Requester| permit(who, rule.action, job_owner).is_ok();
            assert!(decide(&admin), "{:?}", rule.action);
            match rule.who {
                Who::Anyone => assert!(decide(&owner) && decide(&other), "{:?}", rule.action),
                Who::OwnerOrAdmin => assert!(decide(&owner) && !decide(&other)),
                Who::Admin => assert!(!decide(&owner) && !decide(&other), "{:?}", rule.action),
            }
        }
    }
}
