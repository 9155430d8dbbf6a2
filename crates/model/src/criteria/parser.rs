//! The criteria parser.
//!
//! Parentheses in WUA's grammar only group: `or` may not appear inside them,
//! so every criteria string is an OR of flat and-groups whatever its
//! nesting. The parser is therefore a loop with a depth counter, not a
//! recursive descent: 100,000 nested parentheses cost a counter, not a stack.

use std::borrow::Cow;

use uuid::Uuid;

use super::error::{CriteriaErrorKind, Found, ParseCriteriaError};
use super::{AndGroup, Criteria, Criterion, DEPLOYMENT_ACTION_VALUES, TYPE_VALUES, Term};

/// Longest word or name quoted back in an error message.
const QUOTE_LIMIT: usize = 40;

type Result<T> = std::result::Result<T, ParseCriteriaError>;

pub(super) fn parse(text: &str) -> Result<Vec<AndGroup>> {
    let mut parser = Parser { text, pos: 0 };
    parser.skip_whitespace();
    if parser.at_end() {
        return Ok(Criteria::default().groups);
    }
    let mut groups = Vec::new();
    let mut terms = Vec::new();
    // Where the group's first RevisionNumber term starts, for its rule.
    let mut revision_at = None;
    let mut depth = 0usize;
    loop {
        parser.skip_whitespace();
        while parser.peek() == Some(b'(') {
            depth += 1;
            parser.pos += 1;
            parser.skip_whitespace();
        }
        let start = parser.pos;
        let term = parser.term()?;
        if matches!(term, Term::RevisionNumber(_)) && revision_at.is_none() {
            revision_at = Some(start);
        }
        terms.push(term);

        let keyword = loop {
            let spaced = parser.skip_whitespace();
            match parser.peek() {
                None if depth > 0 => {
                    return Err(parser.error(CriteriaErrorKind::UnclosedParenthesis));
                }
                None => break None,
                Some(b')') if depth == 0 => {
                    return Err(parser.error(CriteriaErrorKind::UnmatchedCloseParenthesis));
                }
                Some(b')') => {
                    depth -= 1;
                    parser.pos += 1;
                }
                Some(_) => break Some(parser.keyword(spaced, depth)?),
            }
        };
        if keyword != Some(Keyword::And) {
            groups.push(finish_group(
                std::mem::take(&mut terms),
                revision_at.take(),
            )?);
        }
        if keyword.is_none() {
            return Ok(groups);
        }
    }
}

/// Checks the rules that span an and-group, then compiles it.
fn finish_group(terms: Vec<Term>, revision_at: Option<usize>) -> Result<AndGroup> {
    if let Some(offset) = revision_at {
        let has_equal_id = terms
            .iter()
            .any(|term| matches!(term, Term::UpdateId { equal: true, .. }));
        let has_unequal_id = terms
            .iter()
            .any(|term| matches!(term, Term::UpdateId { equal: false, .. }));
        if !has_equal_id || has_unequal_id {
            return Err(ParseCriteriaError::new(
                offset,
                CriteriaErrorKind::RevisionNumberWithoutUpdateId,
            ));
        }
    }
    Ok(AndGroup::new(terms))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equal,
    NotEqual,
    Contains,
}

impl Operator {
    fn spelling(self) -> &'static str {
        match self {
            Operator::Equal => "=",
            Operator::NotEqual => "!=",
            Operator::Contains => "contains",
        }
    }
}

enum Value<'a> {
    Text(Cow<'a, str>),
    Integer(&'a str),
    Wildcard,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn at_whitespace(&self) -> bool {
        self.peek().is_some_and(is_whitespace)
    }

    /// Skips whitespace; says whether there was any.
    fn skip_whitespace(&mut self) -> bool {
        let start = self.pos;
        while self.at_whitespace() {
            self.pos += 1;
        }
        self.pos > start
    }

    fn error(&self, kind: CriteriaErrorKind) -> ParseCriteriaError {
        ParseCriteriaError::new(self.pos, kind)
    }

    fn error_at(&self, offset: usize, kind: CriteriaErrorKind) -> ParseCriteriaError {
        ParseCriteriaError::new(offset, kind)
    }

    /// An error that says what was expected and names what is here.
    fn expected(&self, expected: &'static str) -> ParseCriteriaError {
        let found = match self.text[self.pos..].chars().next() {
            None => Found::End,
            Some(c) if c.is_alphanumeric() || c == '_' => Found::Word(quote(self.peek_word())),
            Some(c) => Found::Char(c),
        };
        self.error(CriteriaErrorKind::Expected { expected, found })
    }

    fn peek_word(&self) -> &'a str {
        let rest = &self.text[self.pos..];
        let len = rest.bytes().take_while(|&b| is_word_byte(b)).count();
        &rest[..len]
    }

    fn word(&mut self) -> &'a str {
        let word = self.peek_word();
        self.pos += word.len();
        word
    }

    /// `and` or `or` after a term, with whitespace on both sides.
    fn keyword(&mut self, spaced_before: bool, depth: usize) -> Result<Keyword> {
        let start = self.pos;
        let word = self.peek_word();
        let keyword = if word.eq_ignore_ascii_case("and") {
            Keyword::And
        } else if word.eq_ignore_ascii_case("or") {
            Keyword::Or
        } else {
            return Err(self.expected("'and', 'or', ')' or the end of the criteria"));
        };
        let spelling = if keyword == Keyword::And { "and" } else { "or" };
        if !spaced_before {
            return Err(self.error(CriteriaErrorKind::MissingWhitespace { keyword: spelling }));
        }
        if keyword == Keyword::Or && depth > 0 {
            return Err(self.error(CriteriaErrorKind::OrInsideParentheses));
        }
        self.pos += word.len();
        if self.at_end() {
            return Err(self.expected("a criterion after the keyword"));
        }
        if !self.at_whitespace() {
            return Err(self.error_at(
                start,
                CriteriaErrorKind::MissingWhitespace { keyword: spelling },
            ));
        }
        Ok(keyword)
    }

    /// `name op value`, checked against the criterion's rules.
    fn term(&mut self) -> Result<Term> {
        if !self.peek().is_some_and(is_word_byte) {
            return Err(self.expected("a criterion name or '('"));
        }
        let name_start = self.pos;
        let word = self.word();
        let (criterion, operator_at, operator) = match Criterion::from_name(word) {
            Some(criterion) => {
                self.skip_whitespace();
                (criterion, self.pos, self.operator()?)
            }
            // `CategoryIDscontains'…'` is grammatical: no space is required.
            None => match split_contains(word) {
                Some(criterion) => (criterion, self.pos - "contains".len(), Operator::Contains),
                None => {
                    return Err(self.error_at(
                        name_start,
                        CriteriaErrorKind::UnknownCriterion { name: quote(word) },
                    ));
                }
            },
        };
        self.skip_whitespace();
        let value_at = self.pos;
        let value = self.value(criterion)?;
        build_term(criterion, operator, operator_at, value, value_at)
    }

    fn operator(&mut self) -> Result<Operator> {
        let rest = &self.text.as_bytes()[self.pos..];
        let (operator, len) = if rest.starts_with(b"!=") {
            (Operator::NotEqual, 2)
        } else if rest.starts_with(b"=") {
            (Operator::Equal, 1)
        } else if self.peek_word().eq_ignore_ascii_case("contains") {
            (Operator::Contains, 8)
        } else {
            return Err(self.expected("'=', '!=' or 'contains'"));
        };
        self.pos += len;
        Ok(operator)
    }

    fn value(&mut self, criterion: Criterion) -> Result<Value<'a>> {
        match self.peek() {
            Some(b'\'') => self.string().map(Value::Text),
            Some(b'*') => {
                self.pos += 1;
                Ok(Value::Wildcard)
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
                Ok(Value::Integer(&self.text[start..self.pos]))
            }
            _ => Err(self.expected(super::error::value_hint(criterion))),
        }
    }

    /// A quoted string with WUA's bracket escapes; borrowed unless it has any.
    fn string(&mut self) -> Result<Cow<'a, str>> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        let mut unescaped: Option<String> = None;
        let mut chunk_start = start;
        loop {
            let rest = &self.text.as_bytes()[self.pos..];
            let Some(skip) = rest
                .iter()
                .position(|b| matches!(b, b'\'' | b'[' | b']' | 0))
            else {
                return Err(self.error_at(open, CriteriaErrorKind::UnterminatedString));
            };
            self.pos += skip;
            match rest[skip] {
                b'\'' => {
                    let tail = &self.text[chunk_start..self.pos];
                    self.pos += 1;
                    return Ok(match unescaped {
                        None => Cow::Borrowed(tail),
                        Some(mut text) => {
                            text.push_str(tail);
                            Cow::Owned(text)
                        }
                    });
                }
                b'[' => {
                    let escaped = match &self.text.as_bytes()[self.pos..] {
                        [b'[', c @ (b'\'' | b'[' | b']'), b']', ..] => *c as char,
                        _ => return Err(self.error(CriteriaErrorKind::LoneBracket)),
                    };
                    let text = unescaped.get_or_insert_with(String::new);
                    text.push_str(&self.text[chunk_start..self.pos]);
                    text.push(escaped);
                    self.pos += 3;
                    chunk_start = self.pos;
                }
                b']' => return Err(self.error(CriteriaErrorKind::LoneBracket)),
                _ => return Err(self.error(CriteriaErrorKind::NulCharacter)),
            }
        }
    }
}

/// Checks an operator and value against the criterion and builds the term.
fn build_term(
    criterion: Criterion,
    operator: Operator,
    operator_at: usize,
    value: Value<'_>,
    value_at: usize,
) -> Result<Term> {
    let allowed = match criterion {
        Criterion::Type | Criterion::UpdateId => {
            matches!(operator, Operator::Equal | Operator::NotEqual)
        }
        Criterion::CategoryIds => operator == Operator::Contains,
        _ => operator == Operator::Equal,
    };
    if !allowed {
        return Err(ParseCriteriaError::new(
            operator_at,
            CriteriaErrorKind::OperatorNotAllowed {
                criterion,
                operator: operator.spelling(),
            },
        ));
    }
    let invalid = |kind| Err(ParseCriteriaError::new(value_at, kind));
    let equal = operator == Operator::Equal;
    let term = match (criterion, value) {
        (Criterion::DeploymentAction, Value::Wildcard) => Term::DeploymentAction(None),
        (_, Value::Wildcard) => {
            return invalid(CriteriaErrorKind::WildcardNotAllowed { criterion });
        }
        (Criterion::Type, Value::Text(text)) => match lookup(&TYPE_VALUES, &text) {
            Some(value) => Term::Type { equal, value },
            None => return invalid(CriteriaErrorKind::InvalidValue { criterion }),
        },
        (Criterion::DeploymentAction, Value::Text(text)) => {
            match lookup(&DEPLOYMENT_ACTION_VALUES, &text) {
                Some(action) => Term::DeploymentAction(Some(action)),
                None => return invalid(CriteriaErrorKind::InvalidValue { criterion }),
            }
        }
        (Criterion::UpdateId, Value::Text(text)) => match guid(&text) {
            Some(value) => Term::UpdateId { equal, value },
            None => return invalid(CriteriaErrorKind::InvalidValue { criterion }),
        },
        (Criterion::CategoryIds, Value::Text(text)) => match guid(&text) {
            Some(value) => Term::CategoryIds(value),
            None => return invalid(CriteriaErrorKind::InvalidValue { criterion }),
        },
        (Criterion::RevisionNumber, Value::Integer(digits)) => match digits.parse() {
            Ok(revision) => Term::RevisionNumber(revision),
            Err(_) => return invalid(CriteriaErrorKind::InvalidValue { criterion }),
        },
        (Criterion::Flag(flag), Value::Integer(digits)) => match digits.parse::<i64>() {
            Ok(0) => Term::Flag(flag, false),
            Ok(1) => Term::Flag(flag, true),
            _ => return invalid(CriteriaErrorKind::InvalidValue { criterion }),
        },
        _ => return invalid(CriteriaErrorKind::InvalidValue { criterion }),
    };
    Ok(term)
}

/// The member of `table` spelled `text`, in any case.
fn lookup<T: Copy>(table: &[(&str, T)], text: &str) -> Option<T> {
    table
        .iter()
        .find(|(spelling, _)| spelling.eq_ignore_ascii_case(text))
        .map(|&(_, value)| value)
}

/// A GUID in the 8-4-4-4-12 form, any case, no braces.
fn guid(text: &str) -> Option<Uuid> {
    // Uuid::try_parse also takes braces, URNs and the simple form: WUA's
    // values are the hyphenated form only.
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(text).ok()
}

/// `CategoryIDscontains` → `CategoryIDs` (names may touch the operator).
fn split_contains(word: &str) -> Option<Criterion> {
    let split = word.len().checked_sub("contains".len())?;
    let (name, operator) = word.split_at_checked(split)?;
    if !operator.eq_ignore_ascii_case("contains") {
        return None;
    }
    Criterion::from_name(name)
}

fn quote(word: &str) -> String {
    match word.char_indices().nth(QUOTE_LIMIT) {
        Some((end, _)) => format!("{}…", &word[..end]),
        None => word.to_owned(),
    }
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// Letters, digits, `_`, and any non-ASCII byte, so that a misspelt name
/// such as `Typé` is quoted whole in the error.
fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || !byte.is_ascii()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::criteria::escape_string;

    /// Reads the string literal at the start of `literal`; returns it and
    /// how many bytes were read.
    fn read_literal(literal: &str) -> (Result<Cow<'_, str>>, usize) {
        let mut parser = Parser {
            text: literal,
            pos: 0,
        };
        let read = parser.string();
        (read, parser.pos)
    }

    /// Text without NUL that often holds the characters `EscapeString` changes.
    fn text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            2 => any::<char>().prop_filter("no NUL", |&c| c != '\0'),
            1 => prop::sample::select(vec!['\'', '[', ']']),
        ];
        prop::collection::vec(c, 0..48).prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn escaped_text_reads_back(text in text()) {
            let literal = format!("'{}'", escape_string(&text));
            let (read, len) = read_literal(&literal);
            prop_assert_eq!(read.as_deref(), Ok(text.as_str()));
            prop_assert_eq!(len, literal.len());
        }

        #[test]
        fn lone_brackets_and_nul_are_rejected(
            before in text(),
            bad in prop::sample::select(vec!['[', ']', '\0']),
            after in text(),
        ) {
            let literal = format!("'{}{bad}{}'", escape_string(&before), escape_string(&after));
            let (read, _) = read_literal(&literal);
            let expected = if bad == '\0' {
                CriteriaErrorKind::NulCharacter
            } else {
                CriteriaErrorKind::LoneBracket
            };
            prop_assert_eq!(read.map_err(|error| error.kind().clone()), Err(expected));
        }
    }
}
