//! The fleet: computer groups, computers and approvals, and the pure rule
//! that decides what a group's computers are offered
//! ([`effective_approval`]).
//!
//! Groups form a tree under [`ALL_COMPUTERS`]; a new computer that names
//! no existing group lands in [`UNASSIGNED_COMPUTERS`]. An approval is per
//! update per group; a group without its own approval for an update has
//! its parent's, up to the root.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The root group: every computer is in it, through its own group.
pub const ALL_COMPUTERS: &str = "All Computers";
/// Where a computer goes that asked for no existing group.
pub const UNASSIGNED_COMPUTERS: &str = "Unassigned Computers";
/// The longest group name, in characters.
pub const MAX_GROUP_NAME_CHARS: usize = 128;

/// One computer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Its name, unique on the server.
    pub name: String,
    /// Its parent; `None` for "All Computers" only.
    pub parent: Option<String>,
}

/// What an approval tells a group's computers to do with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalAction {
    /// Offer it for installation.
    Install,
    /// Offer its removal (agents act on this in a later slice).
    Uninstall,
    /// Do not offer it; a child group's explicit `notApproved` overrides a
    /// parent's approval.
    NotApproved,
}

impl ApprovalAction {
    /// The word stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalAction::Install => "install",
            ApprovalAction::Uninstall => "uninstall",
            ApprovalAction::NotApproved => "notApproved",
        }
    }

    /// The action a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "install" => Some(ApprovalAction::Install),
            "uninstall" => Some(ApprovalAction::Uninstall),
            "notApproved" => Some(ApprovalAction::NotApproved),
            _ => None,
        }
    }
}

/// One group's own approval of one update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// The group it was given to.
    pub group: String,
    /// What it says.
    pub action: ApprovalAction,
    /// When the update must be installed by, if ever.
    #[schema(value_type = Option<String>)]
    pub deadline: Option<Timestamp>,
}

/// One registered computer, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Computer {
    /// Its identity on this server.
    pub computer_id: Uuid,
    /// `/etc/machine-id` (or what the agent uses instead), for clone
    /// detection.
    pub machine_id: String,
    /// The host name it reported.
    pub hostname: String,
    /// Its group.
    pub group: String,
    /// When it registered.
    #[schema(value_type = String)]
    pub registered: Timestamp,
    /// When it last synced, if ever.
    #[schema(value_type = Option<String>)]
    pub last_sync: Option<Timestamp>,
}

/// A new computer to store: the secret is kept as its SHA-256 only.
pub struct NewComputer {
    /// Its new identity.
    pub computer_id: Uuid,
    /// SHA-256 of its secret.
    pub secret_sha256: [u8; 32],
    /// Its machine ID.
    pub machine_id: String,
    /// Its host name.
    pub hostname: String,
    /// The group it asked for (client-side targeting), if any.
    pub target_group: Option<String>,
    /// A clone of a known computer: the catalog version goes up with it,
    /// so that the anchor the clone kept from its original is not current
    /// and it gets a full snapshot for its own group.
    pub is_clone: bool,
}

/// What a store holds of a computer to authenticate it.
pub struct Credentials {
    /// SHA-256 of its secret.
    pub secret_sha256: [u8; 32],
    /// Its machine ID.
    pub machine_id: String,
    /// Its group.
    pub group: String,
}

/// What a group change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// Done; the catalog moved to this version.
    Done(u64),
    /// A group of that name exists already.
    Exists,
    /// The named group (or parent, or target) does not exist.
    UnknownGroup,
    /// The named computer does not exist.
    UnknownComputer,
    /// The named update does not exist.
    UnknownUpdate,
    /// The group still has computers or child groups.
    NotEmpty,
    /// "All Computers" and "Unassigned Computers" cannot be removed.
    BuiltIn,
}

/// The approval that holds for `update_id` in `group`: the group's own,
/// else its parent's, up to the root; `None` when no group on the way
/// approved it (not approved). `parents` maps each group to its parent;
/// the walk stops at a cycle or an unknown group rather than loop.
pub fn effective_approval<'a>(
    update_id: Uuid,
    group: &str,
    parents: &HashMap<String, Option<String>>,
    approvals: &'a HashMap<(Uuid, String), Approval>,
) -> Option<&'a Approval> {
    let mut current = Some(group.to_owned());
    let mut steps = 0;
    while let Some(name) = current {
        if let Some(approval) = approvals.get(&(update_id, name.clone())) {
            return Some(approval);
        }
        steps += 1;
        if steps > parents.len() {
            return None;
        }
        current = parents.get(&name).cloned().flatten();
    }
    None
}

/// The updates approved for Install in `group`, with their deadlines.
pub fn approved_for_install(
    group: &str,
    groups: &[Group],
    approvals: &[Approval],
) -> HashMap<Uuid, Option<Timestamp>> {
    let parents: HashMap<String, Option<String>> = groups
        .iter()
        .map(|group| (group.name.clone(), group.parent.clone()))
        .collect();
    let by_key: HashMap<(Uuid, String), Approval> = approvals
        .iter()
        .map(|approval| {
            (
                (approval.update_id, approval.group.clone()),
                approval.clone(),
            )
        })
        .collect();
    let mut installs = HashMap::new();
    for update_id in approvals.iter().map(|approval| approval.update_id) {
        if let Some(approval) = effective_approval(update_id, group, &parents, &by_key)
            && approval.action == ApprovalAction::Install
        {
            installs.insert(update_id, approval.deadline);
        }
    }
    installs
}

/// Checks a group name: 1 to 128 characters, no control characters, no
/// space at either end.
pub fn check_group_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_GROUP_NAME_CHARS {
        return Err(format!(
            "a group name has 1 to {MAX_GROUP_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err("a group name has no control characters and no space at either end".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, parent: Option<&str>) -> Group {
        Group {
            name: name.into(),
            parent: parent.map(Into::into),
        }
    }

    fn approval(update_id: Uuid, group: &str, action: ApprovalAction) -> Approval {
        Approval {
            update_id,
            group: group.into(),
            action,
            deadline: None,
        }
    }

    fn tree() -> Vec<Group> {
        vec![
            group(ALL_COMPUTERS, None),
            group(UNASSIGNED_COMPUTERS, Some(ALL_COMPUTERS)),
            group("Servers", Some(ALL_COMPUTERS)),
            group("Web", Some("Servers")),
            group("Canary", Some("Web")),
        ]
    }

    #[test]
    fn a_group_inherits_from_the_nearest_ancestor_with_an_approval() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let deadline: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let mut on_servers = approval(a, "Servers", ApprovalAction::Install);
        on_servers.deadline = Some(deadline);
        let approvals = vec![
            approval(b, ALL_COMPUTERS, ApprovalAction::Install),
            on_servers,
            // The child overrides its parent's Install.
            approval(a, "Web", ApprovalAction::NotApproved),
            approval(a, "Canary", ApprovalAction::Install),
        ];
        let groups = tree();
        let installs = |name| {
            let mut ids: Vec<_> = approved_for_install(name, &groups, &approvals)
                .into_iter()
                .collect();
            ids.sort();
            ids
        };
        let mut both = vec![(a, Some(deadline)), (b, None)];
        both.sort();
        assert_eq!(installs("Servers"), both);
        assert_eq!(installs("Web"), vec![(b, None)]);
        assert_eq!(installs("Canary"), {
            let mut v = vec![(a, None), (b, None)];
            v.sort();
            v
        });
        assert_eq!(installs(UNASSIGNED_COMPUTERS), vec![(b, None)]);
        assert_eq!(installs(ALL_COMPUTERS), vec![(b, None)]);
    }

    #[test]
    fn uninstall_and_unknown_groups_offer_nothing_and_a_cycle_ends() {
        let a = Uuid::new_v4();
        let approvals = vec![approval(a, "Servers", ApprovalAction::Uninstall)];
        assert!(approved_for_install("Web", &tree(), &approvals).is_empty());
        assert!(approved_for_install("Nowhere", &tree(), &approvals).is_empty());
        let cycle = vec![group("X", Some("Y")), group("Y", Some("X"))];
        let approvals = vec![approval(a, "Z", ApprovalAction::Install)];
        assert!(approved_for_install("X", &cycle, &approvals).is_empty());
    }

    #[test]
    fn group_names_are_bounded() {
        assert!(check_group_name("Web servers").is_ok());
        assert!(check_group_name("").is_err());
        assert!(check_group_name(" Web").is_err());
        assert!(check_group_name("a\nb").is_err());
        assert!(check_group_name(&"x".repeat(129)).is_err());
    }
}
