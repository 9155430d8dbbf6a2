//! Rollouts that stop themselves: an Install approval given ring by ring.
//!
//! A [`RolloutPlan`] lists rings, each a group (with the groups under it)
//! or a percentage of one, the computers chosen by a stable hash of their
//! ID ([`bucket`]), and a soak time. Starting a rollout sets the update's
//! Install approval for every ring's group and *gates* it: while the
//! rollout runs or is halted, the update is offered only to the computers
//! of the rings admitted so far ([`Rollout::gate`], applied by the store
//! where it decides what a computer is sent, `store::changes::Serving`).
//! [`decide`] advances a ring once its soak time is over, at least
//! `min_reported` of its computers (all, if it has fewer) reported a
//! result for the update's current revision, and the failure rate of every
//! admitted ring is at most `max_failure_percent`; above it, with at least
//! `min_reported` results, the rollout halts and keeps why. When
//! the last ring has soaked, the gate goes and the approvals stand alone.
//! The server decides after every report that names the update and on a
//! timer ([`run_evaluations`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::fleet::{Computer, Group, ancestry, check_group_name};
use crate::reports::{StoredState, UpdateState};
use crate::store::{Store, StoreError};

/// The most rings a rollout has.
pub const MAX_RINGS: usize = 16;
/// The longest soak time: 90 days, in seconds.
pub const MAX_SOAK_SECS: u64 = 90 * 24 * 3600;

/// One ring: a group's computers, or a percentage of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ring {
    /// The group (its subgroups' computers are in it too).
    pub group: String,
    /// The share of the group's computers, 1 to 100 (100 when absent):
    /// those whose [`bucket`] is below it.
    #[serde(default = "all")]
    pub percent: u8,
    /// How long the ring runs before the next may start, in seconds.
    pub soak_secs: u64,
}

fn all() -> u8 {
    100
}

impl Ring {
    /// Whether a computer whose group and ancestors are `chain`, in
    /// `bucket` (none: not known, so only whole groups admit it), is in
    /// this ring.
    pub fn admits(&self, chain: &[String], bucket: Option<u8>) -> bool {
        chain.contains(&self.group)
            && (self.percent >= 100 || bucket.is_some_and(|bucket| bucket < self.percent))
    }
}

/// What a rollout is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutPlan {
    /// The rings, in order (1 to 16).
    pub rings: Vec<Ring>,
    /// The highest failure rate, in percent of the computers that reported
    /// a result, at which the rollout still goes on (0 to 100).
    pub max_failure_percent: u8,
    /// How many results a ring needs from its own computers (all of
    /// theirs, when it has fewer) before the next ring is admitted, and
    /// how many results of the admitted rings before the rollout may halt
    /// (at least 1).
    pub min_reported: u32,
    /// The approvals' deadline, if any.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub deadline: Option<Timestamp>,
}

impl RolloutPlan {
    /// Checks every bound; the error says what to change.
    pub fn check(&self) -> Result<(), String> {
        if self.rings.is_empty() || self.rings.len() > MAX_RINGS {
            return Err(format!("a rollout has 1 to {MAX_RINGS} rings"));
        }
        for ring in &self.rings {
            check_group_name(&ring.group)?;
            if ring.percent == 0 || ring.percent > 100 {
                return Err("a ring's percent is 1 to 100".into());
            }
            if ring.soak_secs > MAX_SOAK_SECS {
                return Err(format!("a soak time is at most {MAX_SOAK_SECS} seconds"));
            }
        }
        if self.max_failure_percent > 100 {
            return Err("maxFailurePercent is 0 to 100".into());
        }
        if self.min_reported == 0 {
            return Err("minReported is at least 1".into());
        }
        Ok(())
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RolloutState {
    /// Rings advance as their soak times end and results stay good.
    Running,
    /// Stopped: by too many failures or an administrator; its admitted
    /// rings keep the update, no other computer gets it.
    Halted,
    /// Every ring soaked: the approvals stand without a gate.
    Completed,
}

impl RolloutState {
    /// The word stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Halted => "halted",
            RolloutState::Completed => "completed",
        }
    }

    /// The state a stored word names.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(RolloutState::Running),
            "halted" => Some(RolloutState::Halted),
            "completed" => Some(RolloutState::Completed),
            _ => None,
        }
    }
}

/// One failing code and how many computers reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailingCode {
    /// The HRESULT (`0x80240022`), or `none` when the computer sent none.
    pub hresult: String,
    /// Its WUA name, when the model knows it.
    pub name: Option<String>,
    /// How many computers failed with it.
    pub computers: u32,
}

/// Why a rollout halted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HaltReason {
    /// When.
    #[schema(value_type = String)]
    pub time: Timestamp,
    /// One sentence.
    pub message: String,
    /// Computers of the admitted rings that reported a result then.
    pub reported: u32,
    /// Of them, how many failed.
    pub failed: u32,
    /// The failing codes, most computers first.
    pub codes: Vec<FailingCode>,
}

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `UpdateID`.
    pub update_id: Uuid,
    /// What it was asked to do.
    pub plan: RolloutPlan,
    /// The last admitted ring, from 0.
    pub stage: u32,
    /// Running, halted or completed.
    pub state: RolloutState,
    /// When the ring `stage` was admitted (or the rollout resumed).
    #[schema(value_type = String)]
    pub stage_started: Timestamp,
    /// Why it halted, when it did.
    pub halt: Option<HaltReason>,
}

impl Rollout {
    /// The rings whose computers may be offered the update, or `None` when
    /// the rollout completed and gates nothing.
    pub fn gate(&self) -> Option<Vec<Ring>> {
        match self.state {
            RolloutState::Completed => None,
            RolloutState::Running | RolloutState::Halted => {
                let end = usize::try_from(self.stage)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1)
                    .min(self.plan.rings.len());
                Some(self.plan.rings[..end].to_vec())
            }
        }
    }
}

/// Whether any of `rings` admits a computer with this `chain` and `bucket`.
pub fn admitted(rings: &[Ring], chain: &[String], bucket: Option<u8>) -> bool {
    rings.iter().any(|ring| ring.admits(chain, bucket))
}

/// A computer's place from 0 to 99: the first 8 bytes of the SHA-256 of
/// its ID's 16 bytes, modulo 100. Stable across servers and restarts.
pub fn bucket(computer_id: Uuid) -> u8 {
    let digest = Sha256::digest(computer_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // Below 100, so it fits.
    (u64::from_be_bytes(first) % 100) as u8
}

/// What the admitted rings reported for the update's current revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTally {
    /// Computers in the admitted rings.
    pub computers: u32,
    /// Of them, those that reported a result (installed, pending a reboot
    /// or failed).
    pub reported: u32,
    /// Of those, the failures.
    pub failed: u32,
    /// The computers the newest admitted ring added (in no earlier ring).
    pub ring_computers: u32,
    /// Of them, those that reported a result.
    pub ring_reported: u32,
    /// The failing codes, most computers first.
    pub codes: Vec<FailingCode>,
}

/// Counts the results of the computers the admitted `rings` hold (the
/// last of them the newest).
pub fn tally(
    rings: &[Ring],
    computers: &[Computer],
    groups: &[Group],
    states: &[StoredState],
    revision: i32,
) -> RolloutTally {
    let by_computer: HashMap<Uuid, &StoredState> = states
        .iter()
        .filter(|stored| stored.update.revision_number == revision)
        .map(|stored| (stored.computer_id, stored))
        .collect();
    let mut chains: HashMap<&str, Vec<String>> = HashMap::new();
    let mut tally = RolloutTally::default();
    let mut codes: BTreeMap<String, u32> = BTreeMap::new();
    for computer in computers {
        let chain = chains
            .entry(computer.group.as_str())
            .or_insert_with(|| ancestry(&computer.group, groups));
        let place = Some(bucket(computer.computer_id));
        if !admitted(rings, chain, place) {
            continue;
        }
        let earlier = &rings[..rings.len().saturating_sub(1)];
        let newest = !admitted(earlier, chain, place);
        tally.computers += 1;
        tally.ring_computers += u32::from(newest);
        let Some(stored) = by_computer.get(&computer.computer_id) else {
            continue;
        };
        match stored.update.state {
            UpdateState::Installed | UpdateState::InstalledPendingReboot => {
                tally.reported += 1;
                tally.ring_reported += u32::from(newest);
            }
            UpdateState::Failed => {
                tally.reported += 1;
                tally.ring_reported += u32::from(newest);
                tally.failed += 1;
                let code = stored
                    .update
                    .hresult
                    .map_or_else(|| "none".to_owned(), |code| format!("{code:#}"));
                *codes.entry(code).or_default() += 1;
            }
            _ => {}
        }
    }
    let mut codes: Vec<FailingCode> = codes
        .into_iter()
        .map(|(hresult, computers)| FailingCode {
            name: hresult
                .parse::<openwua_model::hresult::HResult>()
                .ok()
                .and_then(|code| code.name())
                .map(str::to_owned),
            hresult,
            computers,
        })
        .collect();
    codes.sort_by_key(|code| std::cmp::Reverse(code.computers));
    tally.codes = codes;
    tally
}

/// What a running rollout should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing yet: soaking, or too few results.
    Wait,
    /// Admit the next ring.
    Advance,
    /// Every ring soaked with good results: drop the gate.
    Complete,
    /// Too many failures.
    Halt(HaltReason),
}

/// Decides a running rollout's next step from what its admitted rings
/// reported, at `now`: it halts once at least `min_reported` of them
/// reported and too many failed; the newest ring advances once soaked,
/// with `min_reported` results of its own (all of its computers', when it
/// has fewer), and the failure rate of every admitted ring within bounds.
pub fn decide(rollout: &Rollout, tally: &RolloutTally, now: Timestamp) -> Decision {
    if rollout.state != RolloutState::Running {
        return Decision::Wait;
    }
    let over = u64::from(tally.failed) * 100
        > u64::from(rollout.plan.max_failure_percent) * u64::from(tally.reported);
    if over && tally.reported >= rollout.plan.min_reported {
        return Decision::Halt(HaltReason {
            time: now,
            message: format!(
                "{} of {} computers that reported failed, above the {}% the rollout allows",
                tally.failed, tally.reported, rollout.plan.max_failure_percent
            ),
            reported: tally.reported,
            failed: tally.failed,
            codes: tally.codes.clone(),
        });
    }
    let needed = rollout.plan.min_reported.min(tally.ring_computers);
    if over || tally.ring_reported < needed {
        return Decision::Wait;
    }
    let stage = usize::try_from(rollout.stage).unwrap_or(usize::MAX);
    let Some(ring) = rollout.plan.rings.get(stage) else {
        return Decision::Complete;
    };
    let soak = SignedDuration::from_secs(i64::try_from(ring.soak_secs).unwrap_or(i64::MAX));
    if now
        < rollout
            .stage_started
            .saturating_add(soak)
            .unwrap_or(Timestamp::MAX)
    {
        return Decision::Wait;
    }
    if stage + 1 < rollout.plan.rings.len() {
        Decision::Advance
    } else {
        Decision::Complete
    }
}

/// Decides every running rollout (or only those of `updates`) and applies
/// the decisions; another front end deciding at the same moment changes
/// nothing twice (the store compares the rollout it read).
pub async fn evaluate(store: &Store, updates: Option<&[Uuid]>) -> Result<(), StoreError> {
    let rollouts: Vec<Rollout> = store
        .rollouts()
        .await?
        .into_iter()
        .filter(|rollout| rollout.state == RolloutState::Running)
        .filter(|rollout| updates.is_none_or(|ids| ids.contains(&rollout.update_id)))
        .collect();
    if rollouts.is_empty() {
        return Ok(());
    }
    let computers = store.list_computers().await?;
    let groups = store.list_groups().await?;
    for rollout in rollouts {
        let (tally, _) = current_tally(store, &rollout, &computers, &groups).await?;
        let now = Timestamp::now();
        let next = match decide(&rollout, &tally, now) {
            Decision::Wait => continue,
            Decision::Advance => Rollout {
                stage: rollout.stage + 1,
                stage_started: now,
                ..rollout.clone()
            },
            Decision::Complete => Rollout {
                state: RolloutState::Completed,
                ..rollout.clone()
            },
            Decision::Halt(reason) => {
                tracing::warn!(update_id = %rollout.update_id, stage = rollout.stage,
                    reason = %reason.message, "rollout halted");
                Rollout {
                    state: RolloutState::Halted,
                    halt: Some(reason),
                    ..rollout.clone()
                }
            }
        };
        if store.replace_rollout(&rollout, &next).await?.is_some() {
            tracing::info!(update_id = %next.update_id, stage = next.stage,
                state = next.state.as_str(), "rollout moved");
        }
    }
    Ok(())
}

/// The tally of a rollout's admitted rings for its update's current
/// revision, and that revision.
pub async fn current_tally(
    store: &Store,
    rollout: &Rollout,
    computers: &[Computer],
    groups: &[Group],
) -> Result<(RolloutTally, i32), StoreError> {
    let revision = store
        .update_history(rollout.update_id)
        .await?
        .map_or(0, |(_, current)| current.update.identity.revision_number);
    let states = store.update_states(Some(rollout.update_id)).await?;
    let rings = rollout.gate().unwrap_or_else(|| rollout.plan.rings.clone());
    Ok((
        tally(&rings, computers, groups, &states, revision),
        revision,
    ))
}

/// Evaluates every running rollout every `interval`, for rings whose soak
/// time ends with no report arriving.
pub async fn run_evaluations(store: Store, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = evaluate(&store, None).await {
            tracing::warn!(%error, "evaluating rollouts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(group: &str, percent: u8, soak_secs: u64) -> Ring {
        Ring {
            group: group.into(),
            percent,
            soak_secs,
        }
    }

    fn rollout(stage: u32, started: Timestamp) -> Rollout {
        Rollout {
            update_id: Uuid::nil(),
            plan: RolloutPlan {
                rings: vec![ring("Canary", 100, 60), ring("Fleet", 50, 60)],
                max_failure_percent: 20,
                min_reported: 2,
                deadline: None,
            },
            stage,
            state: RolloutState::Running,
            stage_started: started,
            halt: None,
        }
    }

    fn tally(reported: u32, failed: u32) -> RolloutTally {
        RolloutTally {
            computers: 10,
            reported,
            failed,
            ring_computers: 5,
            ring_reported: reported.min(5),
            codes: Vec::new(),
        }
    }

    #[test]
    fn a_ring_advances_after_its_soak_with_enough_good_results() {
        let start: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let soaked = start + SignedDuration::from_secs(61);
        let early = start + SignedDuration::from_secs(30);
        assert_eq!(
            decide(&rollout(0, start), &tally(5, 1), early),
            Decision::Wait
        );
        assert_eq!(
            decide(&rollout(0, start), &tally(1, 0), soaked),
            Decision::Wait
        );
        assert_eq!(
            decide(&rollout(0, start), &tally(5, 1), soaked),
            Decision::Advance
        );
        assert_eq!(
            decide(&rollout(1, start), &tally(5, 0), soaked),
            Decision::Complete
        );
        // The newest ring's own results count: earlier rings' are not
        // enough, unless the ring has fewer computers than asked for.
        let mut earlier_only = tally(5, 0);
        earlier_only.ring_reported = 0;
        assert_eq!(
            decide(&rollout(1, start), &earlier_only, soaked),
            Decision::Wait
        );
        earlier_only.ring_computers = 0;
        assert_eq!(
            decide(&rollout(1, start), &earlier_only, soaked),
            Decision::Complete
        );
    }

    #[test]
    fn too_many_failures_halt_even_while_soaking() {
        let start: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let Decision::Halt(reason) = decide(&rollout(0, start), &tally(4, 2), start) else {
            panic!("not halted");
        };
        assert_eq!((reason.reported, reason.failed), (4, 2));
        let mut halted = rollout(0, start);
        halted.state = RolloutState::Halted;
        assert_eq!(decide(&halted, &tally(4, 0), start), Decision::Wait);
    }

    #[test]
    fn a_plan_is_bounded() {
        let plan = rollout(0, Timestamp::UNIX_EPOCH).plan;
        assert!(plan.check().is_ok());
        let broken = |change: fn(&mut RolloutPlan)| {
            let mut plan = plan.clone();
            change(&mut plan);
            plan.check().is_err()
        };
        assert!(broken(|plan| plan.rings.clear()));
        assert!(broken(|plan| plan.rings[0].percent = 0));
        assert!(broken(|plan| plan.rings[0].percent = 101));
        assert!(broken(|plan| plan.rings[0].soak_secs = MAX_SOAK_SECS + 1));
        assert!(broken(|plan| plan.rings[0].group = String::new()));
        assert!(broken(|plan| plan.max_failure_percent = 101));
        assert!(broken(|plan| plan.min_reported = 0));
        assert!(broken(|plan| {
            let ring = plan.rings[0].clone();
            plan.rings = vec![ring; MAX_RINGS + 1];
        }));
    }

    #[test]
    fn rings_admit_their_groups_and_their_share_by_a_stable_hash() {
        let chain: Vec<String> = vec!["Fleet".into(), "All Computers".into()];
        assert!(ring("All Computers", 100, 0).admits(&chain, None));
        assert!(!ring("Canary", 100, 0).admits(&chain, Some(0)));
        assert!(ring("Fleet", 50, 0).admits(&chain, Some(49)));
        assert!(!ring("Fleet", 50, 0).admits(&chain, Some(50)));
        assert!(!ring("Fleet", 50, 0).admits(&chain, None));
        let id = Uuid::from_u128(42);
        assert_eq!(bucket(id), bucket(id));
        let in_half = (0..1000u128)
            .filter(|n| bucket(Uuid::from_u128(*n)) < 50)
            .count();
        assert!((400..600).contains(&in_half), "{in_half}");
        let mut gated = rollout(0, Timestamp::UNIX_EPOCH);
        assert_eq!(gated.gate().unwrap().len(), 1);
        gated.state = RolloutState::Completed;
        assert_eq!(gated.gate(), None);
    }
}
