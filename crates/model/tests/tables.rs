//! The generated code catalog and the enums against the fact tables in
//! `data/`, read at test time so that no value is typed twice.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;

use openwua_model::enums::{self, ENUM_TABLES, WuaEnum};
use openwua_model::hresult::{FACILITY_WINDOWSUPDATE, HResult};

/// The rows of a tab-separated table in `data/`, split into columns.
fn table(name: &str) -> Vec<Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split('\t')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Every (name, value) row of `codes.tsv` and `general-hresults.tsv` (WUA's,
/// copied) and `win32-hresults.tsv` (OpenWUA's own).
fn code_rows() -> Vec<(String, u32)> {
    ["codes.tsv", "general-hresults.tsv", "win32-hresults.tsv"]
        .into_iter()
        .flat_map(table)
        .map(|row| {
            let [name, hex] = row.as_slice() else {
                panic!("code row {row:?} is not NAME<TAB>VALUE");
            };
            let digits = hex.strip_prefix("0x").expect("values are 0x-prefixed");
            let value = u32::from_str_radix(digits, 16).expect("values are 32-bit hex");
            (name.clone(), value)
        })
        .collect()
}

/// Every (enum, member, value) row of `enums.tsv`.
fn enum_rows() -> Vec<(String, String, i32)> {
    table("enums.tsv")
        .into_iter()
        .map(|row| {
            let [enum_name, member, value] = row.as_slice() else {
                panic!("enum row {row:?} is not ENUM<TAB>MEMBER<TAB>VALUE");
            };
            let value = value.parse().expect("enum values are integers");
            (enum_name.clone(), member.clone(), value)
        })
        .collect()
}

#[test]
fn every_code_has_its_name_value_and_message() {
    for (name, value) in code_rows() {
        let code = HResult::from_u32(value);
        assert_eq!(HResult::from_name(&name), Some(code), "{name}");
        assert_eq!(code.name(), Some(name.as_str()), "{value:#010X}");

        let info = code.info().expect("a table code is in the catalog");
        assert_eq!(info.name, name);
        assert_eq!(info.hresult, code);
        assert!(!info.message.trim().is_empty(), "{name} has no message");
        assert!(
            !info.message.contains(['\n', '\r']),
            "{name}'s message is more than one line"
        );

        let display = code.to_string();
        let prefix = format!("0x{value:08X} {name}: ");
        assert!(display.starts_with(&prefix), "{display:?}");
        assert_eq!(&display[prefix.len()..], info.message);

        for spelling in [
            value.to_string(),
            code.to_i32().to_string(),
            format!("{code:#}"),
            format!("{value:#x}"),
            name.to_ascii_lowercase(),
        ] {
            assert_eq!(spelling.parse::<HResult>(), Ok(code), "{spelling}");
        }
    }
}

#[test]
fn the_catalog_holds_the_tables_and_nothing_more() {
    let rows = code_rows();
    let catalog = HResult::catalog();
    assert_eq!(catalog.len(), rows.len());
    let names: BTreeSet<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names.len(),
        rows.len(),
        "a name appears twice in the tables"
    );
    for info in catalog {
        assert!(names.contains(info.name), "{} is in no table", info.name);
    }
    assert!(
        catalog
            .windows(2)
            .all(|pair| pair[0].hresult < pair[1].hresult),
        "the catalog is sorted by value, without duplicates"
    );
}

#[test]
fn severity_follows_the_name() {
    for (name, value) in code_rows() {
        let code = HResult::from_u32(value);
        if name.starts_with("WU_S_") || name.starts_with("S_") {
            assert!(code.is_success() && !code.is_failure(), "{name}");
        } else if name.starts_with("WU_E_") || name.starts_with("E_") {
            assert!(code.is_failure() && !code.is_success(), "{name}");
        } else if name.starts_with("ERROR_") {
            // HRESULT_FROM_WIN32: a failure in FACILITY_WIN32.
            assert!(code.is_failure() && !code.is_success(), "{name}");
            assert_eq!(code.facility(), 7, "{name}");
        } else {
            panic!("{name} is neither a success nor a failure name");
        }
        if name.starts_with("WU_") {
            assert_eq!(code.facility(), FACILITY_WINDOWSUPDATE, "{name}");
            assert!(code.component().is_some(), "{name}");
        }
    }
}

#[test]
fn enum_tables_hold_the_rows_and_nothing_more() {
    let rows = enum_rows();
    for (enum_name, member, value) in &rows {
        let table = ENUM_TABLES
            .iter()
            .find(|table| table.name == enum_name)
            .unwrap_or_else(|| panic!("no table for {enum_name}"));
        let found = table.members.iter().find(|(name, _)| name == member);
        assert_eq!(found, Some(&(member.as_str(), *value)), "{enum_name}");
    }

    let from_rows: BTreeSet<(&str, &str, i32)> = rows
        .iter()
        .map(|(enum_name, member, value)| (enum_name.as_str(), member.as_str(), *value))
        .collect();
    let from_tables: BTreeSet<(&str, &str, i32)> = ENUM_TABLES
        .iter()
        .flat_map(|table| {
            table
                .members
                .iter()
                .map(|&(member, value)| (table.name, member, value))
        })
        .collect();
    assert_eq!(from_rows.len(), rows.len(), "a row appears twice");
    assert_eq!(from_tables, from_rows);
    let member_count: usize = ENUM_TABLES.iter().map(|table| table.members.len()).sum();
    assert_eq!(member_count, rows.len(), "a table lists a member twice");

    for table in ENUM_TABLES {
        assert!(
            table.members.is_sorted_by_key(|&(_, value)| value),
            "{} is not in value order",
            table.name
        );
    }
}

/// Checks one Rust enum against the rows for its WUA name; returns that name.
fn check_enum<T: WuaEnum + PartialEq + Debug>(rows: &[(String, String, i32)]) -> &'static str {
    let mut expected: Vec<(&str, i32)> = rows
        .iter()
        .filter(|(enum_name, _, _)| enum_name == T::WUA_NAME)
        .map(|(_, member, value)| (member.as_str(), *value))
        .collect();
    let mut actual: Vec<(&str, i32)> = T::ALL
        .iter()
        .map(|member| (member.wua_name(), member.value()))
        .collect();
    assert!(
        T::ALL.is_sorted_by_key(|member| member.value()),
        "{}::ALL is not in value order",
        T::WUA_NAME
    );
    expected.sort_unstable();
    actual.sort_unstable();
    assert_eq!(actual, expected, "{}", T::WUA_NAME);

    for &member in T::ALL {
        assert_eq!(T::from_value(member.value()), Some(member));
    }
    let values: BTreeSet<i32> = T::ALL.iter().map(|member| member.value()).collect();
    for outside in [
        i32::MIN,
        -1,
        values.last().map_or(0, |max| max + 1),
        i32::MAX,
    ] {
        if !values.contains(&outside) {
            assert_eq!(T::from_value(outside), None, "{} {outside}", T::WUA_NAME);
        }
    }
    T::WUA_NAME
}

#[test]
fn every_rust_enum_matches_its_rows() {
    let rows = enum_rows();
    let checked = BTreeSet::from([
        check_enum::<enums::AddServiceFlag>(&rows),
        check_enum::<enums::AutoDownloadMode>(&rows),
        check_enum::<enums::AutoSelectionMode>(&rows),
        check_enum::<enums::AutomaticUpdatesNotificationLevel>(&rows),
        check_enum::<enums::AutomaticUpdatesPermissionType>(&rows),
        check_enum::<enums::AutomaticUpdatesScheduledInstallationDay>(&rows),
        check_enum::<enums::AutomaticUpdatesUserType>(&rows),
        check_enum::<enums::DeploymentAction>(&rows),
        check_enum::<enums::DownloadPhase>(&rows),
        check_enum::<enums::DownloadPriority>(&rows),
        check_enum::<enums::InstallationImpact>(&rows),
        check_enum::<enums::InstallationRebootBehavior>(&rows),
        check_enum::<enums::OperationResultCode>(&rows),
        check_enum::<enums::SearchScope>(&rows),
        check_enum::<enums::ServerSelection>(&rows),
        check_enum::<enums::UpdateExceptionContext>(&rows),
        check_enum::<enums::UpdateLockdownOption>(&rows),
        check_enum::<enums::UpdateOperation>(&rows),
        check_enum::<enums::UpdateServiceOption>(&rows),
        check_enum::<enums::UpdateServiceRegistrationState>(&rows),
        check_enum::<enums::UpdateType>(&rows),
    ]);
    let in_rows: BTreeSet<&str> = rows
        .iter()
        .map(|(enum_name, _, _)| enum_name.as_str())
        .collect();
    assert_eq!(checked, in_rows, "every enum of the table has a Rust type");
}
