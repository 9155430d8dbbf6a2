//! Generates the result-code catalog from the fact tables in `data/`:
//! `codes.tsv` and `general-hresults.tsv` (name, value, copied verbatim from
//! WUA's tables), `win32-hresults.tsv` (OpenWUA's own table, not copied
//! from WUA: the HRESULT_FROM_WIN32 codes the agent returns, same format) and
//! `messages.tsv` (name, OpenWUA's own explanation).
//! Every code must have exactly one message, or the build fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let data = Path::new("data");
    let mut codes = Vec::new();
    for table in ["codes.tsv", "general-hresults.tsv", "win32-hresults.tsv"] {
        codes.extend(read_pairs(&data.join(table)));
    }
    let mut messages: BTreeMap<String, String> = read_pairs(&data.join("messages.tsv")).collect();

    let mut entries = Vec::with_capacity(codes.len());
    for (name, hex) in codes {
        let digits = hex
            .strip_prefix("0x")
            .unwrap_or_else(|| panic!("{name}: value {hex} is not 0x-prefixed hex"));
        let value = u32::from_str_radix(digits, 16)
            .unwrap_or_else(|e| panic!("{name}: value {hex} is not a 32-bit number: {e}"));
        let message = messages
            .remove(&name)
            .unwrap_or_else(|| panic!("data/messages.tsv has no message for {name}"));
        entries.push((value, name, message));
    }
    if let Some(extra) = messages.keys().next() {
        panic!("data/messages.tsv has a message for {extra}, which is not a known code");
    }
    entries.sort();
    for pair in entries.windows(2) {
        assert!(
            pair[0].0 != pair[1].0,
            "{} and {} share a value",
            pair[0].1,
            pair[1].1
        );
    }

    let mut out = String::new();
    for (value, name, message) in &entries {
        writeln!(out, "#[doc = {message:?}]").unwrap();
        writeln!(
            out,
            "pub const {name}: HResult = HResult::from_u32({value:#010X});"
        )
        .unwrap();
    }
    writeln!(out, "/// Every known code, sorted by value.").unwrap();
    writeln!(
        out,
        "pub(crate) static CATALOG: [CodeInfo; {}] = [",
        entries.len()
    )
    .unwrap();
    for (_, name, message) in &entries {
        writeln!(
            out,
            "    CodeInfo {{ name: {name:?}, hresult: {name}, message: {message:?} }},"
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();

    let target = Path::new(&std::env::var("OUT_DIR").unwrap()).join("codes.rs");
    std::fs::write(target, out).unwrap();
    println!("cargo::rerun-if-changed=data");
}

/// Reads a two-column, tab-separated table with no header.
fn read_pairs(path: &Path) -> impl Iterator<Item = (String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let display = path.display().to_string();
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(move |(index, line)| {
            let (name, value) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("{display}:{}: expected NAME<TAB>VALUE", index + 1));
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect::<Vec<_>>()
        .into_iter()
}
