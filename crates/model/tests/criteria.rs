//! The criteria language against WUA's documented examples, valid and
//! invalid, from `fixtures/criteria-*.txt`.

use openwua_model::criteria::{Criteria, CriteriaErrorKind, escape_string};
use openwua_model::hresult::WU_E_INVALID_CRITERIA;

const VALID: &str = include_str!("fixtures/criteria-valid.txt");
const INVALID: &str = include_str!("fixtures/criteria-invalid.txt");

/// A fixture's lines, without its `#` comments.
fn fixture_lines(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines().filter(|line| !line.starts_with('#'))
}

#[test]
fn documented_examples_parse_and_normalize() {
    for line in fixture_lines(VALID) {
        let (input, normalized) = line.split_once(" => ").expect("fixture line has =>");
        let criteria = Criteria::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(
            criteria.to_string(),
            normalized,
            "normalized form of {input:?}"
        );
        let again = Criteria::parse(normalized).expect("normalized form parses");
        assert_eq!(again, criteria, "round trip of {input:?}");
    }
}

#[test]
fn documented_invalid_forms_fail_at_the_right_byte() {
    for line in fixture_lines(INVALID) {
        let (input, rest) = line.rsplit_once(" @ ").expect("fixture line has @");
        let (offset, fragment) = rest.split_once(" : ").expect("fixture line has :");
        let error = Criteria::parse(input).expect_err(input);
        assert_eq!(error.hresult(), WU_E_INVALID_CRITERIA);
        assert_eq!(
            error.offset(),
            offset.parse::<usize>().unwrap(),
            "{input:?}: {error}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with("0x80240032 WU_E_INVALID_CRITERIA: at byte "),
            "{message}"
        );
        assert!(
            message.contains(fragment),
            "{input:?}: {message:?} lacks {fragment:?}"
        );
    }
}

#[test]
fn multi_line_criteria_are_accepted() {
    let criteria = Criteria::parse("\r\n  IsInstalled=0\r\n  and IsHidden=0\n").unwrap();
    assert_eq!(criteria.to_string(), "IsInstalled=0 and IsHidden=0");
}

#[test]
fn escaped_strings_are_decoded() {
    let error = Criteria::parse("Type='it[']s [[]x[]]'").unwrap_err();
    // The value decodes to "it's [x]", which is not a type: the error points at the value.
    assert_eq!(error.offset(), 5);
    assert_eq!(escape_string("it's [x]"), "it[']s [[]x[]]");
    assert_eq!(escape_string("plain"), "plain");
}

#[test]
fn hostile_inputs_are_errors_not_crashes() {
    let deep = format!(
        "{}IsInstalled=0{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert_eq!(Criteria::parse(&deep).unwrap().to_string(), "IsInstalled=0");

    let unclosed = "(".repeat(100_000);
    let error = Criteria::parse(&unclosed).unwrap_err();
    assert_eq!(error.offset(), 100_000);

    let huge = format!("Type='{}'", "x".repeat(10 << 20));
    let error = Criteria::parse(&huge).unwrap_err();
    assert!(matches!(
        error.kind(),
        CriteriaErrorKind::InvalidValue { .. }
    ));
    assert!(
        error.to_string().len() < 200,
        "the error does not echo the 10 MB value"
    );

    let huge_name = "x".repeat(10 << 20);
    let error = Criteria::parse(&huge_name).unwrap_err();
    assert!(error.to_string().len() < 400);

    let error = Criteria::parse("Type='Soft\0ware'").unwrap_err();
    assert_eq!(
        (error.offset(), error.kind()),
        (10, &CriteriaErrorKind::NulCharacter)
    );
    let error = Criteria::parse("IsInstalled=0\0").unwrap_err();
    assert_eq!(error.offset(), 13);

    let error = Criteria::parse_bytes(b"IsInstalled=0 and Type='\xff'").unwrap_err();
    assert_eq!(
        (error.offset(), error.kind()),
        (24, &CriteriaErrorKind::InvalidUtf8)
    );
}

#[test]
fn unicode_strings_are_allowed_and_offsets_are_bytes() {
    let error = Criteria::parse("Type='Logiciel é'  or").unwrap_err();
    assert_eq!(error.offset(), 5);
    let error = Criteria::parse("Type='é[x'").unwrap_err();
    assert_eq!(
        (error.offset(), error.kind()),
        (8, &CriteriaErrorKind::LoneBracket)
    );
    let error = Criteria::parse("IsInstalled=0 and Typé='x'").unwrap_err();
    assert_eq!(error.offset(), 18);
    assert!(
        error
            .to_string()
            .contains("'Typé' is not a search criterion"),
        "{error}"
    );
}
