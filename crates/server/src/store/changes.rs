//! The change log behind deltas, and what both back ends compute from it.
//!
//! Every change that can alter what some group is served (a new revision,
//! a decline, an approval set for any group or removed with its group)
//! writes one row per update it touches into `sync_log`, in the same
//! transaction: the catalog version the change makes, the update, and the
//! update's serving state just *before* the change ([`Serving`]: its
//! current revision number, declined flag and every group's own approval).
//! The earliest row of an update after an anchor therefore holds its state
//! at the anchor; the current tables hold its state now. A delta is the
//! difference for one computer's group, so it removes only what the agent
//! holds (an agent refuses a delta that removes an update it lacks) and
//! sends a revision only when what the group is offered changed.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;
use crate::fleet::{Approval, ApprovalAction, Offer};
use crate::rollouts::{Ring, admitted};

/// One group's own approval of an update, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LoggedApproval {
    pub group: String,
    pub action: ApprovalAction,
    pub deadline: Option<Timestamp>,
}

/// What decides what an update offers each computer: its current revision
/// (none before it was published), whether it is declined, every group's
/// own approval of it, and the rings of a rollout under way, which admit
/// only their computers (`rollouts::Rollout::gate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Serving {
    pub revision: Option<i32>,
    pub declined: bool,
    pub approvals: Vec<LoggedApproval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Vec<Ring>>,
}

/// What one group's computers are sent for one update: a revision, with
/// an action and a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Served {
    pub revision: i32,
    pub offer: Offer,
}

impl Serving {
    /// Builds the state from stored columns and the update's approvals
    /// (any update's are ignored but its own).
    pub fn new(
        revision: Option<i32>,
        declined: bool,
        update_id: Uuid,
        approvals: &[Approval],
        gate: Option<Vec<Ring>>,
    ) -> Self {
        Serving {
            revision,
            declined,
            gate,
            approvals: approvals
                .iter()
                .filter(|approval| approval.update_id == update_id)
                .map(|approval| LoggedApproval {
                    group: approval.group.clone(),
                    action: approval.action,
                    deadline: approval.deadline,
                })
                .collect(),
        }
    }

    /// What a computer whose group and ancestors are `chain` (nearest
    /// first), in rollout `bucket`, is sent: the nearest group's own
    /// approval decides, as `fleet::effective_approval` does, unless a
    /// rollout's rings leave the computer out.
    pub fn served(&self, chain: &[String], bucket: Option<u8>) -> Option<Served> {
        let revision = self.revision?;
        if self.declined {
            return None;
        }
        if let Some(rings) = &self.gate
            && !admitted(rings, chain, bucket)
        {
            return None;
        }
        let approval = chain.iter().find_map(|group| {
            self.approvals
                .iter()
                .find(|approval| &approval.group == group)
        })?;
        match approval.action {
            ApprovalAction::NotApproved => None,
            action => Some(Served {
                revision,
                offer: Offer {
                    action,
                    deadline: approval.deadline,
                },
            }),
        }
    }

    /// The JSON a log row keeps.
    pub fn encode(&self) -> Result<String, StoreError> {
        serde_json::to_string(self)
            .map_err(|error| StoreError::Corrupt(format!("an unencodable log entry: {error}")))
    }

    /// A log row's JSON.
    pub fn decode(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str(text)
            .map_err(|error| StoreError::Corrupt(format!("a log entry {text:?}: {error}")))
    }
}

/// The earliest logged state of each update, from log rows in version
/// order: its state at the anchor.
pub(super) fn earliest(rows: Vec<(Uuid, String)>) -> Result<Vec<(Uuid, Serving)>, StoreError> {
    let mut seen = HashMap::with_capacity(rows.len());
    let mut out = Vec::new();
    for (update_id, json) in rows {
        if seen.insert(update_id, ()).is_none() {
            out.push((update_id, Serving::decode(&json)?));
        }
    }
    Ok(out)
}

/// What changed for one group: the updates to send (with what they offer
/// now) and those to remove, in log order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DeltaPlan {
    pub changed: Vec<(Uuid, Served)>,
    pub removed: Vec<Uuid>,
}

/// Compares each logged update's state at the anchor (`before`) with its
/// state now, for a computer whose group and ancestors are `chain`, in
/// rollout `bucket`.
pub(super) fn plan_delta(
    chain: &[String],
    bucket: Option<u8>,
    before: &[(Uuid, Serving)],
    now: &HashMap<Uuid, Serving>,
) -> DeltaPlan {
    let mut plan = DeltaPlan::default();
    for (update_id, then) in before {
        let was = then.served(chain, bucket);
        let is = now
            .get(update_id)
            .and_then(|state| state.served(chain, bucket));
        match (was, is) {
            (was, Some(is)) if was != Some(is) => plan.changed.push((*update_id, is)),
            (Some(_), None) => plan.removed.push(*update_id),
            _ => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(group: &str, action: ApprovalAction) -> LoggedApproval {
        LoggedApproval {
            group: group.into(),
            action,
            deadline: None,
        }
    }

    fn serving(revision: i32, approvals: Vec<LoggedApproval>) -> Serving {
        Serving {
            revision: Some(revision),
            declined: false,
            approvals,
            gate: None,
        }
    }

    #[test]
    fn a_delta_sends_what_changed_for_the_group_and_removes_only_what_it_had() {
        let chain: Vec<String> = vec!["Web".into(), "All Computers".into()];
        let id = |n| Uuid::from_u128(n);
        let install_all = || vec![approval("All Computers", ApprovalAction::Install)];
        let before = vec![
            // New revision: sent.
            (id(1), serving(1, install_all())),
            // Declined: removed.
            (id(2), serving(1, install_all())),
            // Approved for another group only: nothing for Web.
            (id(3), serving(1, vec![])),
            // Published after the anchor and approved: sent.
            (id(4), Serving::default()),
            // Never offered to Web, declined now: nothing to remove.
            (id(5), serving(1, vec![])),
            // Web's own NotApproved now overrides All Computers: removed.
            (id(6), serving(1, install_all())),
            // Approval changed to Uninstall: sent again.
            (id(7), serving(1, install_all())),
        ];
        let mut now = HashMap::new();
        now.insert(id(1), serving(2, install_all()));
        now.insert(
            id(2),
            Serving {
                declined: true,
                ..serving(1, install_all())
            },
        );
        now.insert(
            id(3),
            serving(1, vec![approval("Db", ApprovalAction::Install)]),
        );
        now.insert(id(4), serving(1, install_all()));
        now.insert(
            id(5),
            Serving {
                declined: true,
                ..serving(1, vec![])
            },
        );
        let mut overridden = install_all();
        overridden.push(approval("Web", ApprovalAction::NotApproved));
        now.insert(id(6), serving(1, overridden));
        now.insert(
            id(7),
            serving(
                1,
                vec![approval("All Computers", ApprovalAction::Uninstall)],
            ),
        );
        let plan = plan_delta(&chain, None, &before, &now);
        let changed: Vec<Uuid> = plan.changed.iter().map(|(id, _)| *id).collect();
        assert_eq!(changed, vec![id(1), id(4), id(7)]);
        assert_eq!(plan.removed, vec![id(2), id(6)]);
        assert_eq!(plan.changed[2].1.offer.action, ApprovalAction::Uninstall);
    }

    #[test]
    fn the_earliest_row_of_each_update_is_its_state_at_the_anchor() {
        let first = serving(1, vec![]).encode().unwrap();
        let second = serving(2, vec![]).encode().unwrap();
        let rows = vec![
            (Uuid::from_u128(1), first.clone()),
            (Uuid::from_u128(2), first),
            (Uuid::from_u128(1), second),
        ];
        let states = earliest(rows).unwrap();
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].1.revision, Some(1));
    }
}
