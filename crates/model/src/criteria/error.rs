//! The one error of the criteria language: `WU_E_INVALID_CRITERIA`, with
//! where and why.

use std::fmt;

use super::Criterion;
use crate::hresult::{HResult, WU_E_INVALID_CRITERIA};

/// A criteria string that is not valid: always `WU_E_INVALID_CRITERIA`,
/// with the byte offset in the string and what went wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCriteriaError {
    offset: usize,
    kind: CriteriaErrorKind,
}

/// What is wrong with a criteria string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CriteriaErrorKind {
    /// Something else was expected here.
    Expected {
        /// What the grammar allows here, in words.
        expected: &'static str,
        /// What is here instead.
        found: Found,
    },
    /// A name that is not one of WUA's criteria (`Title`).
    UnknownCriterion {
        /// The name written (shortened if very long).
        name: String,
    },
    /// An operator the criterion does not take (`IsInstalled!=0`).
    OperatorNotAllowed {
        /// The criterion.
        criterion: Criterion,
        /// The operator written.
        operator: &'static str,
    },
    /// A value of the wrong type or outside the allowed set.
    InvalidValue {
        /// The criterion.
        criterion: Criterion,
    },
    /// `*` is only a value of `DeploymentAction`.
    WildcardNotAllowed {
        /// The criterion.
        criterion: Criterion,
    },
    /// A string literal with no closing quote.
    UnterminatedString,
    /// A `[` or `]` outside WUA's escapes `[']`, `[[]` and `[]]`.
    LoneBracket,
    /// A NUL character.
    NulCharacter,
    /// `or` inside parentheses: WUA allows it only at the top level.
    OrInsideParentheses,
    /// A `)` with no `(` to close.
    UnmatchedCloseParenthesis,
    /// The string ended with parentheses still open.
    UnclosedParenthesis,
    /// `and`/`or` must have whitespace on both sides.
    MissingWhitespace {
        /// The keyword.
        keyword: &'static str,
    },
    /// `RevisionNumber` without `UpdateID='…'` in its and-group, or beside
    /// `UpdateID!='…'`.
    RevisionNumberWithoutUpdateId,
    /// The bytes are not UTF-8.
    InvalidUtf8,
}

/// What the parser found where it expected something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The end of the string.
    End,
    /// A character.
    Char(char),
    /// A word (shortened if very long).
    Word(String),
}

impl ParseCriteriaError {
    pub(super) fn new(offset: usize, kind: CriteriaErrorKind) -> Self {
        ParseCriteriaError { offset, kind }
    }

    /// Always `WU_E_INVALID_CRITERIA`.
    pub fn hresult(&self) -> HResult {
        WU_E_INVALID_CRITERIA
    }

    /// The byte offset in the criteria string where the error is.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What is wrong.
    pub fn kind(&self) -> &CriteriaErrorKind {
        &self.kind
    }

    /// The explanation alone, without the code and offset.
    pub fn detail(&self) -> impl fmt::Display + '_ {
        &self.kind
    }
}

impl fmt::Display for ParseCriteriaError {
    /// `0x80240032 WU_E_INVALID_CRITERIA: at byte N: <what is wrong and what to write>`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hresult = self.hresult();
        let name = hresult.name().unwrap_or_default();
        write!(
            f,
            "{hresult:#} {name}: at byte {}: {}",
            self.offset, self.kind
        )
    }
}

impl std::error::Error for ParseCriteriaError {}

/// What each criterion's value must be, in words.
pub(super) fn value_hint(criterion: Criterion) -> &'static str {
    match criterion {
        Criterion::Type => "'Software' or 'Driver'",
        Criterion::DeploymentAction => {
            "'Installation', 'Uninstallation', 'OptionalInstallation', 'Detection' or *"
        }
        Criterion::UpdateId => "an update GUID in quotes ('12345678-9abc-def0-1234-56789abcdef0')",
        Criterion::RevisionNumber => "a 32-bit integer",
        Criterion::CategoryIds => {
            "a category GUID in quotes ('0fa1201d-4330-4fa8-8ae9-b877473b6441')"
        }
        Criterion::Flag(_) => "0 or 1",
    }
}

/// The operators each criterion takes, in words.
pub(super) fn operator_hint(criterion: Criterion) -> &'static str {
    match criterion {
        Criterion::Type | Criterion::UpdateId => "'=' or '!='",
        Criterion::CategoryIds => "'contains'",
        _ => "'='",
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::End => f.write_str("the end of the criteria"),
            Found::Char(c) if c.is_control() => write!(f, "{:?}", c),
            Found::Char(c) => write!(f, "'{c}'"),
            Found::Word(word) => write!(f, "'{word}'"),
        }
    }
}

impl fmt::Display for CriteriaErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CriteriaErrorKind::Expected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            CriteriaErrorKind::UnknownCriterion { name } => write!(
                f,
                "'{name}' is not a search criterion; use one of Type, DeploymentAction, \
                 IsAssigned, BrowseOnly, AutoSelectOnWebSites, UpdateID, RevisionNumber, \
                 CategoryIDs, IsInstalled, IsHidden, IsPresent, RebootRequired"
            ),
            CriteriaErrorKind::OperatorNotAllowed {
                criterion,
                operator,
            } => write!(
                f,
                "{criterion} does not take '{operator}'; use {}",
                operator_hint(*criterion)
            ),
            CriteriaErrorKind::InvalidValue { criterion } => {
                write!(f, "{criterion} takes {}", value_hint(*criterion))
            }
            CriteriaErrorKind::WildcardNotAllowed { criterion } => write!(
                f,
                "'*' is only a value of DeploymentAction; {criterion} takes {}",
                value_hint(*criterion)
            ),
            CriteriaErrorKind::UnterminatedString => {
                f.write_str("the string has no closing quote; end it with '")
            }
            CriteriaErrorKind::LoneBracket => f.write_str(
                "a bracket outside an escape; write [[] for '[', []] for ']' and ['] for a quote",
            ),
            CriteriaErrorKind::NulCharacter => f.write_str("NUL characters are not allowed"),
            CriteriaErrorKind::OrInsideParentheses => f.write_str(
                "'or' is only allowed outside parentheses; write (a and b) or (a and c) \
                 instead of a and (b or c)",
            ),
            CriteriaErrorKind::UnmatchedCloseParenthesis => {
                f.write_str("this ')' closes no '('; remove it")
            }
            CriteriaErrorKind::UnclosedParenthesis => {
                f.write_str("a '(' is still open; close it with ')'")
            }
            CriteriaErrorKind::MissingWhitespace { keyword } => {
                write!(f, "'{keyword}' needs a space or tab on each side")
            }
            CriteriaErrorKind::RevisionNumberWithoutUpdateId => f.write_str(
                "RevisionNumber must be in an and-group with UpdateID='…' (and no UpdateID!=)",
            ),
            CriteriaErrorKind::InvalidUtf8 => f.write_str("the criteria are not valid UTF-8"),
        }
    }
}
