//! Property tests of the criteria language: random criteria written in
//! random valid spellings parse to what was written, evaluation agrees with
//! a naive evaluator, and arbitrary input is an error, never a panic.

use std::cell::Cell;

use openwua_model::criteria::{Criteria, Flag, Term};
use openwua_model::enums::{DeploymentAction, UpdateType, WuaEnum};
use openwua_model::update::{Update, UpdateState};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

/// The most terms a generated and-group has.
const MAX_TERMS: usize = 6;

/// The values a `DeploymentAction` term may take (`None` is `*`).
static CRITERIA_ACTIONS: [Option<DeploymentAction>; 5] = [
    Some(DeploymentAction::Installation),
    Some(DeploymentAction::Uninstallation),
    Some(DeploymentAction::OptionalInstallation),
    Some(DeploymentAction::Detection),
    None,
];

/// The small pools: a few update IDs, revisions and categories.
static UPDATE_IDS: [u128; 3] = [
    0x3f4b1c2d_5e6f_4a7b_8c9d_0e1f2a3b4c5d,
    0x7a8b9c0d_1e2f_4a3b_9c4d_5e6f7a8b9c0d,
    0x9d2e7f1a_3b4c_4d5e_8f6a_1b2c3d4e5f60,
];
static REVISIONS: [i32; 3] = [1, 2, 200];
static CATEGORY_IDS: [u128; 3] = [
    0x0fa1201d_4330_4fa8_8ae9_b877473b6441,
    0x6964aab4_c5b5_43bd_a17d_ffb4346a8e1d,
    0xe6cf1350_c01b_414d_a61f_263d14d133b4,
];

fn guid(value: u128) -> Uuid {
    Uuid::from_u128(value)
}

/// Where the values of identity and category terms come from: anywhere for
/// the round trip, a few values for evaluation so that equality terms hit.
struct Pools {
    ids: BoxedStrategy<Uuid>,
    revisions: BoxedStrategy<i32>,
    categories: BoxedStrategy<Uuid>,
}

impl Pools {
    fn wide() -> Pools {
        let any_guid = || any::<u128>().prop_map(Uuid::from_u128).boxed();
        Pools {
            ids: any_guid(),
            revisions: any::<i32>().boxed(),
            categories: any_guid(),
        }
    }

    fn small() -> Pools {
        Pools {
            ids: select(UPDATE_IDS.as_slice()).prop_map(guid).boxed(),
            revisions: select(REVISIONS.as_slice()).boxed(),
            categories: select(CATEGORY_IDS.as_slice()).prop_map(guid).boxed(),
        }
    }
}

fn term(pools: &Pools) -> impl Strategy<Value = Term> + use<> {
    prop_oneof![
        (any::<bool>(), select(UpdateType::ALL))
            .prop_map(|(equal, value)| Term::Type { equal, value }),
        select(CRITERIA_ACTIONS.as_slice()).prop_map(Term::DeploymentAction),
        (any::<bool>(), pools.ids.clone())
            .prop_map(|(equal, value)| Term::UpdateId { equal, value }),
        pools.revisions.clone().prop_map(Term::RevisionNumber),
        pools.categories.clone().prop_map(Term::CategoryIds),
        (select(Flag::ALL.to_vec()), any::<bool>())
            .prop_map(|(flag, value)| Term::Flag(flag, value)),
    ]
}

/// An and-group of up to `max_terms` terms that obeys the RevisionNumber rule.
fn group(pools: &Pools, max_terms: usize) -> impl Strategy<Value = Vec<Term>> + use<> {
    (
        vec(term(pools), 1..=max_terms),
        pools.ids.clone(),
        any::<Index>(),
    )
        .prop_map(move |(mut terms, id, at)| {
            if terms.iter().any(|t| matches!(t, Term::RevisionNumber(_))) {
                keep_revision_rule(&mut terms, id, at, max_terms);
            }
            terms
        })
}

/// Makes every `UpdateID` term of a group an equality and adds one if there
/// is none, as a group with `RevisionNumber` needs.
fn keep_revision_rule(terms: &mut Vec<Term>, id: Uuid, at: Index, max_terms: usize) {
    for term in terms.iter_mut() {
        if let Term::UpdateId { equal, .. } = term {
            *equal = true;
        }
    }
    if !terms.iter().any(|t| matches!(t, Term::UpdateId { .. })) {
        let update_id = Term::UpdateId {
            equal: true,
            value: id,
        };
        if terms.len() < max_terms {
            terms.insert(at.index(terms.len() + 1), update_id);
        } else {
            // Whatever it replaces, even the RevisionNumber, the group stays valid.
            let at = at.index(terms.len());
            terms[at] = update_id;
        }
    }
}

fn terms_of(criteria: &Criteria) -> Vec<Vec<Term>> {
    criteria
        .groups()
        .iter()
        .map(|group| group.terms().to_vec())
        .collect()
}

// ---------------------------------------------------------------------------
// Writing criteria in random valid spellings.

/// Whitespace of `min` to 3 characters, from all four kinds.
fn whitespace(min: usize) -> impl Strategy<Value = String> {
    vec(select(vec![' ', '\t', '\r', '\n']), min..=3).prop_map(String::from_iter)
}

/// Flips the case of the ASCII letters whose bit (by position) is set.
fn recase(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(index, c)| {
            if mask >> (index % 64) & 1 == 0 {
                c
            } else if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Redundant parentheses, with whitespace inside them.
#[derive(Debug, Clone)]
struct Parens {
    count: usize,
    after_open: String,
    before_close: String,
}

impl Parens {
    fn wrap(&self, out: &mut String, body: impl FnOnce(&mut String)) {
        for _ in 0..self.count {
            out.push('(');
            out.push_str(&self.after_open);
        }
        body(out);
        for _ in 0..self.count {
            out.push_str(&self.before_close);
            out.push(')');
        }
    }
}

fn parens() -> impl Strategy<Value = Parens> {
    (
        prop_oneof![2 => Just(0usize), 1 => 1..=2usize],
        whitespace(0),
        whitespace(0),
    )
        .prop_map(|(count, after_open, before_close)| Parens {
            count,
            after_open,
            before_close,
        })
}

/// `and` or `or` in some case, with whitespace on both sides.
#[derive(Debug, Clone)]
struct Joiner {
    before: String,
    case: u64,
    after: String,
}

impl Joiner {
    fn write(&self, keyword: &str, out: &mut String) {
        out.push_str(&self.before);
        out.push_str(&recase(keyword, self.case));
        out.push_str(&self.after);
    }
}

fn joiner() -> impl Strategy<Value = Joiner> {
    (whitespace(1), any::<u64>(), whitespace(1)).prop_map(|(before, case, after)| Joiner {
        before,
        case,
        after,
    })
}

/// How one term is written.
#[derive(Debug, Clone)]
struct TermStyle {
    name_case: u64,
    operator_case: u64,
    value_case: u64,
    before_operator: String,
    after_operator: String,
    leading_zeros: usize,
    parens: Parens,
    /// Joins this term to the one before it.
    joiner: Joiner,
    /// Whether a run of terms in shared parentheses ends after this term.
    run_ends: bool,
    /// The parentheses around the run this term starts.
    run_parens: Parens,
}

fn term_style() -> impl Strategy<Value = TermStyle> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        (whitespace(0), whitespace(0), 0..=2usize),
        (parens(), joiner(), any::<bool>(), parens()),
    )
        .prop_map(
            |(
                (name_case, operator_case, value_case),
                (before_operator, after_operator, leading_zeros),
                (parens, joiner, run_ends, run_parens),
            )| TermStyle {
                name_case,
                operator_case,
                value_case,
                before_operator,
                after_operator,
                leading_zeros,
                parens,
                joiner,
                run_ends,
                run_parens,
            },
        )
}

/// How a whole criteria string is written.
#[derive(Debug, Clone)]
struct Style {
    leading: String,
    trailing: String,
    /// Per group: its parentheses, the `or` before it and its terms' styles.
    groups: Vec<(Parens, Joiner, Vec<TermStyle>)>,
}

/// Random valid criteria, as terms, with a random way to write them.
fn styled_criteria() -> impl Strategy<Value = (Vec<Vec<Term>>, Style)> {
    let group_style = (parens(), joiner(), vec(term_style(), MAX_TERMS));
    (
        vec(group(&Pools::wide(), MAX_TERMS), 1..=4),
        whitespace(0),
        whitespace(0),
        vec(group_style, 4),
    )
        .prop_map(|(groups, leading, trailing, styles)| {
            let style = Style {
                leading,
                trailing,
                groups: styles,
            };
            (groups, style)
        })
}

fn type_name(value: UpdateType) -> &'static str {
    match value {
        UpdateType::Software => "Software",
        UpdateType::Driver => "Driver",
    }
}

fn action_name(action: DeploymentAction) -> &'static str {
    match action {
        DeploymentAction::None => "None",
        DeploymentAction::Installation => "Installation",
        DeploymentAction::Uninstallation => "Uninstallation",
        DeploymentAction::Detection => "Detection",
        DeploymentAction::OptionalInstallation => "OptionalInstallation",
    }
}

fn write_term(term: Term, style: &TermStyle, out: &mut String) {
    let quoted = |text: &str| format!("'{}'", recase(text, style.value_case));
    let integer = |value: i64| {
        let zeros = "0".repeat(style.leading_zeros);
        if value < 0 {
            format!("-{zeros}{}", value.unsigned_abs())
        } else {
            format!("{zeros}{value}")
        }
    };
    let equal = |equal: bool| if equal { "=" } else { "!=" };
    let (operator, value) = match term {
        Term::Type { equal: e, value } => (equal(e), quoted(type_name(value))),
        Term::DeploymentAction(None) => ("=", "*".to_owned()),
        Term::DeploymentAction(Some(action)) => ("=", quoted(action_name(action))),
        Term::UpdateId { equal: e, value } => (equal(e), quoted(&value.to_string())),
        Term::RevisionNumber(revision) => ("=", integer(revision.into())),
        Term::CategoryIds(category) => ("contains", quoted(&category.to_string())),
        Term::Flag(_, value) => ("=", integer(value.into())),
    };
    out.push_str(&recase(term.criterion().wua_name(), style.name_case));
    out.push_str(&style.before_operator);
    out.push_str(&recase(operator, style.operator_case));
    out.push_str(&style.after_operator);
    out.push_str(&value);
}

fn write_group(terms: &[Term], styles: &[TermStyle], out: &mut String) {
    let mut start = 0;
    while start < terms.len() {
        let end = (start..terms.len())
            .find(|&index| styles[index].run_ends)
            .map_or(terms.len(), |index| index + 1);
        if start > 0 {
            styles[start].joiner.write("and", out);
        }
        styles[start].run_parens.wrap(out, |out| {
            let run = terms[start..end].iter().zip(&styles[start..end]);
            for (offset, (&term, style)) in run.enumerate() {
                if offset > 0 {
                    style.joiner.write("and", out);
                }
                style.parens.wrap(out, |out| write_term(term, style, out));
            }
        });
        start = end;
    }
}

fn write_criteria(groups: &[Vec<Term>], style: &Style) -> String {
    let mut out = style.leading.clone();
    for (index, (terms, (parens, joiner, term_styles))) in
        groups.iter().zip(&style.groups).enumerate()
    {
        if index > 0 {
            joiner.write("or", &mut out);
        }
        parens.wrap(&mut out, |out| write_group(terms, term_styles, out));
    }
    out.push_str(&style.trailing);
    out
}

proptest! {
    #[test]
    fn written_criteria_parse_to_their_terms((groups, style) in styled_criteria()) {
        let text = write_criteria(&groups, &style);
        let criteria = Criteria::parse(&text)
            .map_err(|error| TestCaseError::fail(format!("{text:?}: {error}")))?;
        prop_assert_eq!(terms_of(&criteria), groups, "{:?}", text);

        let printed = criteria.to_string();
        prop_assert_eq!(Criteria::parse(&printed), Ok(criteria), "{:?}", printed);
    }
}

// ---------------------------------------------------------------------------
// Evaluation against a naive evaluator.

/// Whether the update, in that state, matches criteria given as and-groups,
/// read straight from the documentation.
fn naive_matches(groups: &[Vec<Term>], update: &Update, state: &UpdateState) -> bool {
    groups.iter().any(|terms| {
        let names_action = terms
            .iter()
            .any(|term| matches!(term, Term::DeploymentAction(_)));
        let default_action_holds =
            names_action || update.deployment_action == DeploymentAction::Installation;
        default_action_holds && terms.iter().all(|term| naive_holds(*term, update, state))
    })
}

fn naive_holds(term: Term, update: &Update, state: &UpdateState) -> bool {
    match term {
        Term::Type { equal, value } => (update.update_type == value) == equal,
        Term::DeploymentAction(None) => true,
        Term::DeploymentAction(Some(action)) => update.deployment_action == action,
        Term::UpdateId { equal, value } => (update.identity.update_id == value) == equal,
        Term::RevisionNumber(revision) => update.identity.revision_number == revision,
        Term::CategoryIds(id) => update.categories.iter().any(|category| category.id == id),
        Term::Flag(flag, value) => {
            // Spelled out rather than `Flag::of`, so the reference shares no
            // code with what it checks.
            let actual = match flag {
                Flag::IsAssigned => state.is_assigned,
                Flag::BrowseOnly => update.browse_only,
                Flag::AutoSelectOnWebSites => update.auto_select_on_web_sites,
                Flag::IsInstalled => state.is_installed,
                Flag::IsHidden => state.is_hidden,
                Flag::IsPresent => state.is_present,
                Flag::RebootRequired => state.reboot_required,
            };
            actual == value
        }
    }
}

fn base_update() -> Update {
    serde_json::from_str(include_str!("fixtures/update.json")).expect("the fixture is an update")
}

/// Updates whose searchable fields come from the same small pools as the
/// criteria.
fn update() -> impl Strategy<Value = Update> {
    let base = base_update();
    (
        select(UpdateType::ALL),
        // Mostly Installation, the default action, so that groups without a
        // DeploymentAction term can match.
        prop_oneof![2 => Just(DeploymentAction::Installation), 1 => select(DeploymentAction::ALL)],
        any::<(bool, bool)>(),
        (select(UPDATE_IDS.as_slice()), select(REVISIONS.as_slice())),
        vec(any::<bool>(), CATEGORY_IDS.len()),
    )
        .prop_map(
            move |(update_type, action, (browse_only, auto_select), (id, revision), member)| {
                let mut update = base.clone();
                update.update_type = update_type;
                update.deployment_action = action;
                update.browse_only = browse_only;
                update.auto_select_on_web_sites = auto_select;
                update.identity.update_id = guid(id);
                update.identity.revision_number = revision;
                let template = base.categories[0].clone();
                update.categories = CATEGORY_IDS
                    .iter()
                    .zip(member)
                    .filter(|&(_, member)| member)
                    .map(|(id, _)| {
                        let mut category = template.clone();
                        category.id = guid(*id);
                        category
                    })
                    .collect();
                update
            },
        )
}

fn state() -> impl Strategy<Value = UpdateState> {
    any::<[bool; 7]>().prop_map(
        |[
            is_installed,
            is_hidden,
            is_downloaded,
            eula_accepted,
            reboot_required,
            is_present,
            is_assigned,
        ]| UpdateState {
            is_installed,
            is_hidden,
            is_downloaded,
            eula_accepted,
            reboot_required,
            is_present,
            is_assigned,
        },
    )
}

/// Criteria written plainly, so that this test is about evaluation.
fn plain(groups: &[Vec<Term>]) -> String {
    groups
        .iter()
        .map(|terms| {
            let terms: Vec<String> = terms.iter().map(Term::to_string).collect();
            format!("({})", terms.join(" and "))
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

#[test]
fn evaluation_agrees_with_a_naive_evaluator() {
    const CASES: u32 = 2048;
    let criteria = vec(group(&Pools::small(), 4), 1..=3);
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let matched = Cell::new(0u32);
    let total = Cell::new(0u32);
    let outcome = runner.run(&(criteria, update(), state()), |(groups, update, state)| {
        let text = plain(&groups);
        let criteria = Criteria::parse(&text)
            .map_err(|error| TestCaseError::fail(format!("{text:?}: {error}")))?;
        prop_assert_eq!(terms_of(&criteria), groups.clone());
        let expected = naive_matches(&groups, &update, &state);
        prop_assert_eq!(
            criteria.matches_update(&update, &state),
            expected,
            "{} on {:?} {:?}",
            text,
            update.identity,
            state
        );
        total.set(total.get() + 1);
        matched.set(matched.get() + u32::from(expected));
        Ok(())
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
    // Both outcomes must be common, or the comparison proves little.
    let (matched, total) = (matched.get(), total.get());
    assert!(
        matched * 5 >= total && (total - matched) * 5 >= total,
        "{matched} of {total} cases matched"
    );
}

// ---------------------------------------------------------------------------
// Arbitrary input.

/// Pieces of criteria, and pieces that break them.
const ALPHABET: &[&str] = &[
    "Type",
    "DeploymentAction",
    "IsAssigned",
    "AutoSelectOnWebSites",
    "BrowseOnly",
    "UpdateID",
    "RevisionNumber",
    "CategoryIDs",
    "IsInstalled",
    "IsHidden",
    "IsPresent",
    "RebootRequired",
    "isinstalled",
    "CATEGORYIDS",
    "Title",
    "and",
    "or",
    "AND",
    "Or",
    "contains",
    "CONTAINS",
    "'",
    "[",
    "]",
    "[']",
    "[[]",
    "[]]",
    "(",
    ")",
    "0",
    "1",
    "-",
    "42",
    "2147483648",
    "=",
    "!=",
    "!",
    "*",
    " ",
    " ",
    "\t",
    "\r",
    "\n",
    "'Software'",
    "'driver'",
    "'Installation'",
    "'OptionalInstallation'",
    "'12345678-9abc-def0-1234-56789abcdef0'",
    "0FA1201D-4330-4FA8-8AE9-B877473B6441",
    "é",
    "€",
    "\u{1d11e}",
    "\u{a0}",
    "\0",
];

fn alphabet_soup() -> impl Strategy<Value = String> {
    // Whitespace between pieces often enough for whole terms to form.
    let piece = prop_oneof![2 => select(ALPHABET).prop_map(str::to_owned), 1 => whitespace(1)];
    vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// Parses bytes; an error must point into them, at a character boundary.
fn check_bytes(input: &[u8]) -> Result<(), TestCaseError> {
    match Criteria::parse_bytes(input) {
        Ok(criteria) => {
            let printed = criteria.to_string();
            prop_assert_eq!(Criteria::parse(&printed), Ok(criteria), "{:?}", printed);
        }
        Err(error) => {
            let offset = error.offset();
            prop_assert!(offset <= input.len(), "{:?}: {}", input, error);
            // Before the first invalid byte, or at a boundary of valid text.
            prop_assert!(
                std::str::from_utf8(&input[..offset]).is_ok(),
                "{:?}: {}",
                input,
                error
            );
        }
    }
    Ok(())
}

fn check_text(input: &str) -> Result<(), TestCaseError> {
    match Criteria::parse(input) {
        Ok(criteria) => {
            let printed = criteria.to_string();
            prop_assert_eq!(Criteria::parse(&printed), Ok(criteria), "{:?}", printed);
        }
        Err(error) => {
            prop_assert!(error.offset() <= input.len(), "{:?}: {}", input, error);
            prop_assert!(
                input.is_char_boundary(error.offset()),
                "{:?}: {}",
                input,
                error
            );
        }
    }
    Ok(())
}

/// One change to the bytes of a criteria string.
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, &'static str),
    InsertByte(Index, u8),
    Delete(Index, usize),
    Replace(Index, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Mostly ASCII, so that most edited strings are still UTF-8.
    let byte = || prop_oneof![4 => 0..0x80u8, 1 => any::<u8>()];
    prop_oneof![
        (any::<Index>(), select(ALPHABET)).prop_map(|(at, piece)| Edit::Insert(at, piece)),
        (any::<Index>(), byte()).prop_map(|(at, byte)| Edit::InsertByte(at, byte)),
        (any::<Index>(), 1..8usize).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<Index>(), byte()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
    ]
}

fn apply(edit: &Edit, bytes: &mut Vec<u8>) {
    match *edit {
        Edit::Insert(at, piece) => {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, piece.bytes());
        }
        Edit::InsertByte(at, byte) => bytes.insert(at.index(bytes.len() + 1), byte),
        Edit::Delete(at, len) => {
            let at = at.index(bytes.len() + 1);
            bytes.drain(at..(at + len).min(bytes.len()));
        }
        Edit::Replace(at, byte) => {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
        }
    }
}

proptest! {
    #[test]
    fn alphabet_soup_is_an_error_or_criteria(input in alphabet_soup()) {
        check_text(&input)?;
    }

    #[test]
    fn arbitrary_text_is_an_error_or_criteria(input in any::<String>()) {
        check_text(&input)?;
    }

    #[test]
    fn edited_criteria_are_an_error_or_criteria(
        (groups, style) in styled_criteria(),
        edits in vec(edit(), 1..4),
    ) {
        let mut bytes = write_criteria(&groups, &style).into_bytes();
        for edit in &edits {
            apply(edit, &mut bytes);
        }
        check_bytes(&bytes)?;
    }
}
