//! The store's side of automatic approval rules and rollouts: rules and
//! rollouts are kept whole as JSON (one row each), so both back ends hold
//! the same thing and the types live in `rules.rs` and `rollouts.rs`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::fleet::{Approval, ApprovalAction, GroupChange};
use crate::rollouts::{Ring, Rollout, bucket};
use crate::rules::ApprovalRule;

/// An approval an automatic approval rule gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleApproval {
    /// The rule's name.
    pub rule: String,
    /// `UpdateID`.
    pub update_id: Uuid,
    /// The group approved for.
    pub group: String,
    /// What it approved.
    pub action: ApprovalAction,
}

impl RuleApproval {
    /// The line for `approval`, given by `rule`.
    pub fn new(rule: String, approval: &Approval) -> Self {
        RuleApproval {
            rule,
            update_id: approval.update_id,
            group: approval.group.clone(),
            action: approval.action,
        }
    }
}

pub(super) fn decode_rule(json: &str) -> Result<ApprovalRule, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::Corrupt(format!("an approval rule {json:?}: {error}")))
}

pub(super) fn decode_rollout(json: &str) -> Result<Rollout, StoreError> {
    serde_json::from_str(json)
        .map_err(|error| StoreError::Corrupt(format!("a rollout {json:?}: {error}")))
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError::Corrupt(format!("an unencodable value: {error}")))
}

/// The Install approvals a rollout gives: one per ring's group.
pub(super) fn rollout_approvals(rollout: &Rollout) -> Vec<Approval> {
    let mut groups: Vec<&str> = rollout
        .plan
        .rings
        .iter()
        .map(|ring| ring.group.as_str())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
        .into_iter()
        .map(|group| Approval {
            update_id: rollout.update_id,
            group: group.to_owned(),
            action: ApprovalAction::Install,
            deadline: rollout.plan.deadline,
        })
        .collect()
}

/// What a computer's full snapshot is cached under: its group, and its
/// bucket when a percentage ring gates some update.
pub(super) fn snapshot_key(
    group: &str,
    computer_id: Uuid,
    gates: &HashMap<Uuid, Vec<Ring>>,
) -> String {
    let by_share = gates.values().flatten().any(|ring| ring.percent < 100);
    if by_share {
        format!("{group}\u{1f}{}", bucket(computer_id))
    } else {
        group.to_owned()
    }
}

/// Automatic approval rules.
impl Store {
    /// Every rule, by name.
    pub async fn rules(&self) -> Result<Vec<ApprovalRule>, StoreError> {
        match self {
            Store::Sqlite(store) => store.rules().await,
            Store::Postgres(store) => store.rules().await,
        }
    }

    /// Adds a rule, or replaces the one of the same name; true when added.
    /// At most `rules::MAX_RULES`.
    pub async fn put_rule(&self, rule: &ApprovalRule) -> Result<bool, StoreError> {
        let json = encode(rule)?;
        match self {
            Store::Sqlite(store) => store.put_rule(rule.name.clone(), json).await,
            Store::Postgres(store) => store.put_rule(&rule.name, &json).await,
        }
    }

    /// Removes a rule; false when there was none of that name. The
    /// approvals it gave stay.
    pub async fn remove_rule(&self, name: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => store.remove_rule(name.to_owned()).await,
            Store::Postgres(store) => store.remove_rule(name).await,
        }
    }

    /// The current revision's JSON of every update not declined, by
    /// update: what rules run on demand look at.
    pub async fn current_revisions(&self) -> Result<Vec<(Uuid, String)>, StoreError> {
        match self {
            Store::Sqlite(store) => store.current_revisions().await,
            Store::Postgres(store) => store.current_revisions().await,
        }
    }

    /// Stores, in one transaction, each approval whose group exists and
    /// has no approval of its own for the update; returns those stored
    /// and the catalog version after.
    pub async fn add_approvals(
        &self,
        approvals: Vec<Approval>,
    ) -> Result<(Vec<Approval>, u64), StoreError> {
        match self {
            Store::Sqlite(store) => store.add_approvals(approvals).await,
            Store::Postgres(store) => store.add_approvals(approvals).await,
        }
    }
}

/// Rollouts.
impl Store {
    /// Every rollout, by update.
    pub async fn rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        match self {
            Store::Sqlite(store) => store.rollouts().await,
            Store::Postgres(store) => store.rollouts().await,
        }
    }

    /// One update's rollout.
    pub async fn rollout(&self, update_id: Uuid) -> Result<Option<Rollout>, StoreError> {
        Ok(self
            .rollouts()
            .await?
            .into_iter()
            .find(|rollout| rollout.update_id == update_id))
    }

    /// Starts (or starts again) a rollout: its rings' groups get the
    /// Install approval and the update is gated to ring 0, in one
    /// transaction that moves the catalog version.
    pub async fn start_rollout(&self, rollout: Rollout) -> Result<GroupChange, StoreError> {
        let json = encode(&rollout)?;
        match self {
            Store::Sqlite(store) => store.start_rollout(rollout, json).await,
            Store::Postgres(store) => store.start_rollout(&rollout, &json).await,
        }
    }

    /// Replaces `old` with `new` if `old` is still what is stored (another
    /// front end may have moved it first); returns the catalog version
    /// after, or `None` when it was not replaced.
    pub async fn replace_rollout(
        &self,
        old: &Rollout,
        new: &Rollout,
    ) -> Result<Option<u64>, StoreError> {
        let (old_json, new_json) = (encode(old)?, encode(new)?);
        match self {
            Store::Sqlite(store) => {
                store
                    .replace_rollout(new.update_id, old_json, new_json)
                    .await
            }
            Store::Postgres(store) => {
                store
                    .replace_rollout(new.update_id, &old_json, &new_json)
                    .await
            }
        }
    }
}
