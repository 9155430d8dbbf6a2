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
    /// Offer its removal: a sync sends the update's current revision with
    /// `DeploymentAction` Uninstallation.
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
    /// Maintenance marked it stale: it has neither reported nor synced
    /// for `stale_after_days`; it is removed after `remove_after_days`
    /// (docs/server.md, "Maintenance"). Cleared when it is heard from.
    #[serde(default)]
    pub stale: bool,
    /// When maintenance marked it stale.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub stale_since: Option<Timestamp>,
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
    /// It presented an identity: a clone's, or one this server does not
    /// know (it forgot the computer). Such an agent may hold the catalog
    /// version it synced under that identity, for another group: the
    /// catalog version goes up with the registration, and anchors below
    /// the new version get a full snapshot for the new computer's group.
    pub replaces_identity: bool,
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

/// What an approval offers a group's computers: the action (Install or
/// Uninstall, never `NotApproved`) and its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// `Install` or `Uninstall`.
    pub action: ApprovalAction,
    /// The approval's deadline, if any.
    pub deadline: Option<Timestamp>,
}

/// The updates offered to `group`'s computers, for Install or for
/// Uninstall, with their deadlines: what a sync sends them.
pub fn offered(group: &str, groups: &[Group], approvals: &[Approval]) -> HashMap<Uuid, Offer> {
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
    let mut offers = HashMap::new();
    for update_id in approvals.iter().map(|approval| approval.update_id) {
        if let Some(approval) = effective_approval(update_id, group, &parents, &by_key)
            && approval.action != ApprovalAction::NotApproved
        {
            offers.insert(
                update_id,
                Offer {
                    action: approval.action,
                    deadline: approval.deadline,
                },
            );
        }
    }
    offers
}

/// The updates approved for Install in `group`, with their deadlines.
pub fn approved_for_install(
    group: &str,
    groups: &[Group],
    approvals: &[Approval],
) -> HashMap<Uuid, Option<Timestamp>> {
    offered(group, groups, approvals)
        .into_iter()
        .filter(|(_, offer)| offer.action == ApprovalAction::Install)
        .map(|(update_id, offer)| (update_id, offer.deadline))
        .collect()
}

/// `group` and its ancestors, nearest first, up to "All Computers": where
/// [`effective_approval`] looks. Stops at a cycle or an unknown parent.
pub fn ancestry(group: &str, groups: &[Group]) -> Vec<String> {
    let parents: HashMap<&str, Option<&str>> = groups
        .iter()
        .map(|group| (group.name.as_str(), group.parent.as_deref()))
        .collect();
    let mut chain = vec![group.to_owned()];
    let mut current = parents.get(group).copied().flatten();
    while let Some(name) = current {
        if chain.iter().any(|seen| seen == name) {
            break;
        }
        chain.push(name.to_owned());
        current = parents.get(name).copied().flatten();
    }
    chain
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
    fn uninstall_is_offered_but_not_for_install_and_a_cycle_ends() {
        let a = Uuid::new_v4();
        let approvals = vec![approval(a, "Servers", ApprovalAction::Uninstall)];
        assert!(approved_for_install("Web", &tree(), &approvals).is_empty());
        assert_eq!(
            offered("Web", &tree(), &approvals)
                .get(&a)
                .map(|offer| offer.action),
            Some(ApprovalAction::Uninstall)
        );
        assert!(offered("Nowhere", &tree(), &approvals).is_empty());
        let cycle = vec![group("X", Some("Y")), group("Y", Some("X"))];
        let approvals = vec![approval(a, "Z", ApprovalAction::Install)];
        assert!(approved_for_install("X", &cycle, &approvals).is_empty());
    }

    #[test]
    fn ancestry_runs_to_the_root_and_stops_at_a_cycle() {
        assert_eq!(
            ancestry("Canary", &tree()),
            vec!["Canary", "Web", "Servers", ALL_COMPUTERS]
        );
        assert_eq!(ancestry("Nowhere", &tree()), vec!["Nowhere"]);
        let cycle = vec![group("X", Some("Y")), group("Y", Some("X"))];
        assert_eq!(ancestry("X", &cycle), vec!["X", "Y"]);
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
