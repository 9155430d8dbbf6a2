//! The compiled form of an and-group, and the bit word it tests.
//!
//! Every 0/1 property, the update type and the deployment action are bits of
//! one `u32` ([`SearchFlags`]), so an and-group of such terms is one mask
//! comparison: `flags & mask == value`. Terms on identity and categories are
//! checked after it, and only when the group has them.

use uuid::Uuid;

use super::{Flag, Searchable, Term};
use crate::enums::{DeploymentAction, UpdateType};
use crate::update::{Update, UpdateState};

/// An update's type, deployment action and 0/1 properties as one word, the
/// part of an update most criteria test. The agent can store it beside each
/// update so that searches read nothing else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SearchFlags(u32);

const TYPE_SHIFT: u32 = 8;
const TYPE_BITS: u32 = 0b11 << TYPE_SHIFT;
const ACTION_SHIFT: u32 = 16;
const ACTION_BITS: u32 = 0b1_1111 << ACTION_SHIFT;

fn flag_bit(flag: Flag) -> u32 {
    1 << flag as u32
}

fn type_bit(update_type: UpdateType) -> u32 {
    // One-hot, so `Type!='Driver'` is one forbidden bit.
    1 << (TYPE_SHIFT + update_type as u32 - 1)
}

fn action_bit(action: DeploymentAction) -> u32 {
    1 << (ACTION_SHIFT + action as u32)
}

impl SearchFlags {
    /// The word for an update in a given state.
    pub fn of(update: &Update, state: &UpdateState) -> SearchFlags {
        let flags = Flag::ALL
            .into_iter()
            .filter(|flag| flag.of(update, state))
            .fold(0, |word, flag| word | flag_bit(flag));
        SearchFlags(flags | type_bit(update.update_type) | action_bit(update.deployment_action))
    }
}

/// An and-group compiled for evaluation.
#[derive(Debug, Clone)]
pub(super) struct CompiledGroup {
    /// Bits that must equal `value`.
    mask: u32,
    value: u32,
    /// Bits that must be clear (`Type!='…'`).
    forbidden: u32,
    /// False when two terms contradict each other (`IsInstalled=0 and IsInstalled=1`).
    satisfiable: bool,
    update_id: Option<Uuid>,
    revision_number: Option<i32>,
    excluded_update_ids: Vec<Uuid>,
    categories: Vec<Uuid>,
}

impl CompiledGroup {
    pub(super) fn compile(terms: &[Term]) -> CompiledGroup {
        let mut group = CompiledGroup {
            mask: 0,
            value: 0,
            forbidden: 0,
            satisfiable: true,
            update_id: None,
            revision_number: None,
            excluded_update_ids: Vec::new(),
            categories: Vec::new(),
        };
        let mut action_given = false;
        for term in terms {
            match *term {
                Term::Type { equal: true, value } => group.require(TYPE_BITS, type_bit(value)),
                Term::Type {
                    equal: false,
                    value,
                } => group.forbidden |= type_bit(value),
                Term::DeploymentAction(action) => {
                    action_given = true;
                    if let Some(action) = action {
                        group.require(ACTION_BITS, action_bit(action));
                    }
                }
                Term::UpdateId { equal: true, value } => {
                    group.satisfiable &= group.update_id.is_none_or(|id| id == value);
                    group.update_id = Some(value);
                }
                Term::UpdateId {
                    equal: false,
                    value,
                } => group.excluded_update_ids.push(value),
                Term::RevisionNumber(revision) => {
                    group.satisfiable &= group.revision_number.is_none_or(|r| r == revision);
                    group.revision_number = Some(revision);
                }
                Term::CategoryIds(category) => group.categories.push(category),
                Term::Flag(flag, value) => {
                    group.require(flag_bit(flag), if value { flag_bit(flag) } else { 0 })
                }
            }
        }
        if !action_given {
            group.require(ACTION_BITS, action_bit(DeploymentAction::Installation));
        }
        group.satisfiable &= group.value & group.forbidden == 0;
        group
    }

    /// Adds `flags & bits == value`; a contradiction makes the group false.
    fn require(&mut self, bits: u32, value: u32) {
        self.satisfiable &= (self.value ^ value) & self.mask & bits == 0;
        self.mask |= bits;
        self.value |= value;
    }

    #[inline]
    pub(super) fn matches<S: Searchable>(&self, flags: SearchFlags, update: &S) -> bool {
        if !self.satisfiable || flags.0 & self.mask != self.value || flags.0 & self.forbidden != 0 {
            return false;
        }
        if self.update_id.is_some()
            || self.revision_number.is_some()
            || !self.excluded_update_ids.is_empty()
        {
            let identity = update.identity();
            if self.update_id.is_some_and(|id| id != identity.update_id)
                || self
                    .revision_number
                    .is_some_and(|r| r != identity.revision_number)
                || self.excluded_update_ids.contains(&identity.update_id)
            {
                return false;
            }
        }
        self.categories
            .iter()
            .all(|category| update.in_category(category))
    }
}
