//! WUA's search-criteria language (`IUpdateSearcher::Search`).
//!
//! [`Criteria::parse`] reads a criteria string such as
//! `IsInstalled=0 and Type='Software'` into an OR of and-groups of
//! [`Term`]s, checks WUA's rules (which operators each criterion allows,
//! `or` only outside parentheses, `RevisionNumber` beside `UpdateID='…'`)
//! and compiles each and-group into a predicate that [`Criteria::matches`]
//! evaluates without allocating. Errors are [`ParseCriteriaError`]s
//! (`WU_E_INVALID_CRITERIA`) with the byte offset and what was expected.
//!
//! OpenWUA's choices where WUA's documentation is unclear (see
//! `docs/criteria.md`): `!=` only on `Type` and `UpdateID`; `RevisionNumber`
//! must share its and-group with `UpdateID='…'`; `DeploymentAction`'s
//! default (`'Installation'`) applies per and-group; `UpdateID` and
//! `CategoryIDs` values must be GUIDs; whitespace is space, tab, CR or LF and
//! may lead or trail; empty criteria mean `IsInstalled=0 and IsHidden=0`.
//!
//! ```
//! use openwua_model::criteria::Criteria;
//! use openwua_model::update::{Update, UpdateState};
//!
//! let criteria = Criteria::parse("isinstalled=0 AND type='software'")?;
//! assert_eq!(criteria.to_string(), "IsInstalled=0 and Type='Software'");
//! # Ok::<(), openwua_model::criteria::ParseCriteriaError>(())
//! ```

mod error;
mod escape;
mod eval;
mod parser;

use std::fmt;

use uuid::Uuid;

use crate::enums::{DeploymentAction, UpdateType, WuaEnum};
use crate::update::{Update, UpdateIdentity, UpdateState};

pub use error::{CriteriaErrorKind, Found, ParseCriteriaError};
pub use escape::escape_string;
pub use eval::SearchFlags;

/// `Type`'s values, as criteria spell them.
const TYPE_VALUES: [(&str, UpdateType); 2] = [
    ("Software", UpdateType::Software),
    ("Driver", UpdateType::Driver),
];

/// `DeploymentAction`'s quoted values, as criteria spell them; `*` is apart.
const DEPLOYMENT_ACTION_VALUES: [(&str, DeploymentAction); 4] = [
    ("Installation", DeploymentAction::Installation),
    ("Uninstallation", DeploymentAction::Uninstallation),
    (
        "OptionalInstallation",
        DeploymentAction::OptionalInstallation,
    ),
    ("Detection", DeploymentAction::Detection),
];

/// How a value of `table` is spelled in criteria; a value the language has
/// no spelling for (`daNone`, which no parsed term holds) gets WUA's name.
fn spelling<T: WuaEnum + PartialEq>(table: &[(&'static str, T)], value: T) -> &'static str {
    table
        .iter()
        .find(|(_, member)| *member == value)
        .map_or_else(|| value.wua_name(), |(spelling, _)| *spelling)
}

/// The criteria used when a search is given an empty string.
pub const DEFAULT_CRITERIA: &str = "IsInstalled=0 and IsHidden=0";

/// A parsed, compiled criteria string: an OR of and-groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    groups: Vec<AndGroup>,
}

/// Terms that must all hold; the unit `or` combines.
#[derive(Debug, Clone)]
pub struct AndGroup {
    terms: Vec<Term>,
    compiled: eval::CompiledGroup,
}

impl PartialEq for AndGroup {
    /// Groups are equal when their terms are: the compiled form follows.
    fn eq(&self, other: &Self) -> bool {
        self.terms == other.terms
    }
}

/// One `name op value` criterion, checked and typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// `Type='Software'` (`equal`) or `Type!='Driver'`.
    Type {
        /// `=` rather than `!=`.
        equal: bool,
        /// The type named.
        value: UpdateType,
    },
    /// `DeploymentAction='Installation'`; `None` is the bare `*` (any action).
    DeploymentAction(Option<DeploymentAction>),
    /// `UpdateID='…'` (`equal`) or `UpdateID!='…'`.
    UpdateId {
        /// `=` rather than `!=`.
        equal: bool,
        /// The update named.
        value: Uuid,
    },
    /// `RevisionNumber=N`; only beside `UpdateID='…'`.
    RevisionNumber(i32),
    /// `CategoryIDs contains '…'`.
    CategoryIds(Uuid),
    /// A 0/1 criterion such as `IsInstalled=0`.
    Flag(Flag, bool),
}

/// The criteria that take 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `IsAssigned`: meant for automatic installation.
    IsAssigned,
    /// `BrowseOnly`: optional.
    BrowseOnly,
    /// `AutoSelectOnWebSites`.
    AutoSelectOnWebSites,
    /// `IsInstalled`.
    IsInstalled,
    /// `IsHidden`.
    IsHidden,
    /// `IsPresent`: installed for at least one product.
    IsPresent,
    /// `RebootRequired`.
    RebootRequired,
}

/// A criterion's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Criterion {
    /// `Type`.
    Type,
    /// `DeploymentAction`.
    DeploymentAction,
    /// `UpdateID`.
    UpdateId,
    /// `RevisionNumber`.
    RevisionNumber,
    /// `CategoryIDs`.
    CategoryIds,
    /// One of the 0/1 criteria.
    Flag(Flag),
}

impl Flag {
    /// Every flag, in the SDK's table order.
    pub const ALL: [Flag; 7] = [
        Flag::IsAssigned,
        Flag::BrowseOnly,
        Flag::AutoSelectOnWebSites,
        Flag::IsInstalled,
        Flag::IsHidden,
        Flag::IsPresent,
        Flag::RebootRequired,
    ];

    /// The flag's value for an update in a given state.
    pub fn of(self, update: &Update, state: &UpdateState) -> bool {
        match self {
            Flag::IsAssigned => state.is_assigned,
            Flag::BrowseOnly => update.browse_only,
            Flag::AutoSelectOnWebSites => update.auto_select_on_web_sites,
            Flag::IsInstalled => state.is_installed,
            Flag::IsHidden => state.is_hidden,
            Flag::IsPresent => state.is_present,
            Flag::RebootRequired => state.reboot_required,
        }
    }
}

impl Criterion {
    /// Every criterion, in the SDK's table order.
    pub const ALL: [Criterion; 12] = [
        Criterion::Type,
        Criterion::DeploymentAction,
        Criterion::Flag(Flag::IsAssigned),
        Criterion::Flag(Flag::BrowseOnly),
        Criterion::Flag(Flag::AutoSelectOnWebSites),
        Criterion::UpdateId,
        Criterion::RevisionNumber,
        Criterion::CategoryIds,
        Criterion::Flag(Flag::IsInstalled),
        Criterion::Flag(Flag::IsHidden),
        Criterion::Flag(Flag::IsPresent),
        Criterion::Flag(Flag::RebootRequired),
    ];

    /// WUA's spelling (`UpdateID`, `CategoryIDs`).
    pub fn wua_name(self) -> &'static str {
        match self {
            Criterion::Type => "Type",
            Criterion::DeploymentAction => "DeploymentAction",
            Criterion::UpdateId => "UpdateID",
            Criterion::RevisionNumber => "RevisionNumber",
            Criterion::CategoryIds => "CategoryIDs",
            Criterion::Flag(Flag::IsAssigned) => "IsAssigned",
            Criterion::Flag(Flag::BrowseOnly) => "BrowseOnly",
            Criterion::Flag(Flag::AutoSelectOnWebSites) => "AutoSelectOnWebSites",
            Criterion::Flag(Flag::IsInstalled) => "IsInstalled",
            Criterion::Flag(Flag::IsHidden) => "IsHidden",
            Criterion::Flag(Flag::IsPresent) => "IsPresent",
            Criterion::Flag(Flag::RebootRequired) => "RebootRequired",
        }
    }

    /// The criterion with this name, in any case.
    pub fn from_name(name: &str) -> Option<Criterion> {
        Criterion::ALL
            .into_iter()
            .find(|criterion| criterion.wua_name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wua_name())
    }
}

impl Term {
    /// The criterion this term tests.
    pub fn criterion(self) -> Criterion {
        match self {
            Term::Type { .. } => Criterion::Type,
            Term::DeploymentAction(_) => Criterion::DeploymentAction,
            Term::UpdateId { .. } => Criterion::UpdateId,
            Term::RevisionNumber(_) => Criterion::RevisionNumber,
            Term::CategoryIds(_) => Criterion::CategoryIds,
            Term::Flag(flag, _) => Criterion::Flag(flag),
        }
    }
}

impl fmt::Display for Term {
    /// The canonical spelling: WUA's names, no spaces around `=`, GUIDs in
    /// lower case, strings escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.criterion();
        let op = |equal: bool| if equal { "=" } else { "!=" };
        match *self {
            Term::Type { equal, value } => {
                write!(f, "{name}{}'{}'", op(equal), spelling(&TYPE_VALUES, value))
            }
            Term::DeploymentAction(None) => write!(f, "{name}=*"),
            Term::DeploymentAction(Some(action)) => {
                write!(
                    f,
                    "{name}='{}'",
                    spelling(&DEPLOYMENT_ACTION_VALUES, action)
                )
            }
            Term::UpdateId { equal, value } => write!(f, "{name}{}'{value}'", op(equal)),
            Term::RevisionNumber(revision) => write!(f, "{name}={revision}"),
            Term::CategoryIds(category) => write!(f, "{name} contains '{category}'"),
            Term::Flag(_, value) => write!(f, "{name}={}", u8::from(value)),
        }
    }
}

impl AndGroup {
    /// The terms, in the order written.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The deployment action this group selects: its own
    /// `DeploymentAction` term, or `'Installation'` when it has none.
    /// `None` means any action (`DeploymentAction=*`).
    pub fn deployment_action(&self) -> Option<DeploymentAction> {
        self.terms
            .iter()
            .find_map(|term| match term {
                Term::DeploymentAction(action) => Some(*action),
                _ => None,
            })
            .unwrap_or(Some(DeploymentAction::Installation))
    }
}

impl fmt::Display for AndGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, term) in self.terms.iter().enumerate() {
            if index > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{term}")?;
        }
        Ok(())
    }
}

/// What the criteria language can see of an update: implement it for
/// whatever record a search runs over (the agent keeps a compact index).
pub trait Searchable {
    /// The update's type, deployment action and 0/1 properties.
    fn search_flags(&self) -> SearchFlags;
    /// Its identity.
    fn identity(&self) -> UpdateIdentity;
    /// Whether it belongs to this category.
    fn in_category(&self, category: &Uuid) -> bool;
}

impl Searchable for (&Update, &UpdateState) {
    fn search_flags(&self) -> SearchFlags {
        SearchFlags::of(self.0, self.1)
    }

    fn identity(&self) -> UpdateIdentity {
        self.0.identity
    }

    fn in_category(&self, category: &Uuid) -> bool {
        self.0.categories.iter().any(|each| each.id == *category)
    }
}

impl Criteria {
    /// Parses and compiles a criteria string. Empty (or all-whitespace)
    /// criteria mean [`DEFAULT_CRITERIA`].
    pub fn parse(text: &str) -> Result<Criteria, ParseCriteriaError> {
        let groups = parser::parse(text)?;
        Ok(Criteria { groups })
    }

    /// Like [`Criteria::parse`], for bytes that may not be UTF-8 (a command
    /// line); invalid UTF-8 is an error at the first bad byte.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Criteria, ParseCriteriaError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Criteria::parse(text),
            Err(error) => Err(ParseCriteriaError::new(
                error.valid_up_to(),
                CriteriaErrorKind::InvalidUtf8,
            )),
        }
    }

    /// The and-groups, in the order written.
    pub fn groups(&self) -> &[AndGroup] {
        &self.groups
    }

    /// Whether an update matches: some and-group holds for it.
    pub fn matches<S: Searchable>(&self, update: &S) -> bool {
        let flags = update.search_flags();
        self.groups
            .iter()
            .any(|group| group.compiled.matches(flags, update))
    }

    /// Whether an update in a given state matches.
    pub fn matches_update(&self, update: &Update, state: &UpdateState) -> bool {
        self.matches(&(update, state))
    }
}

impl Default for Criteria {
    /// [`DEFAULT_CRITERIA`].
    fn default() -> Self {
        Criteria {
            groups: vec![AndGroup::new(vec![
                Term::Flag(Flag::IsInstalled, false),
                Term::Flag(Flag::IsHidden, false),
            ])],
        }
    }
}

impl AndGroup {
    fn new(terms: Vec<Term>) -> AndGroup {
        let compiled = eval::CompiledGroup::compile(&terms);
        AndGroup { terms, compiled }
    }
}

impl fmt::Display for Criteria {
    /// The normalized criteria: canonical terms, and-groups in parentheses
    /// when there is more than one; it parses back to the same criteria.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let several = self.groups.len() > 1;
        for (index, group) in self.groups.iter().enumerate() {
            if index > 0 {
                f.write_str(" or ")?;
            }
            if several && group.terms.len() > 1 {
                write!(f, "({group})")?;
            } else {
                write!(f, "{group}")?;
            }
        }
        Ok(())
    }
}
