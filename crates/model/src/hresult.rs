//! `HResult`, WUA's result codes, and the catalog that explains them.
//!
//! The constants (`WU_E_NO_INTERACTIVE_USER`, `E_ACCESSDENIED`, …) and the
//! catalog are generated at build time from `data/codes.tsv`,
//! `data/general-hresults.tsv`, `data/win32-hresults.tsv` (OpenWUA's own:
//! HRESULT_FROM_WIN32 codes such as `ERROR_DISK_FULL`) and
//! `data/messages.tsv`.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Windows HRESULT: bit 31 is the severity (1 = failure), bits 16–26 the
/// facility, bits 0–15 the code. WUA's facility is `0x24`.
///
/// `Display` prints the hex value, the symbolic name and what to do:
/// `0x80240020 WU_E_NO_INTERACTIVE_USER: …`. In JSON it is the hex string
/// (`"0x80240020"`); integers (unsigned or signed) and names are accepted on
/// input.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HResult(u32);

/// One entry of the catalog: a code WUA defines, with OpenWUA's explanation.
#[derive(Debug)]
pub struct CodeInfo {
    /// The symbolic name, as WUA spells it (`WU_E_NO_INTERACTIVE_USER`).
    pub name: &'static str,
    /// The code.
    pub hresult: HResult,
    /// What happened and what to do, in one line.
    pub message: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/codes.rs"));

/// WUA's facility number.
pub const FACILITY_WINDOWSUPDATE: u16 = 0x24;

impl HResult {
    /// The code with this unsigned value.
    pub const fn from_u32(value: u32) -> Self {
        HResult(value)
    }

    /// The code with this signed value (as COM and PowerShell print it).
    pub const fn from_i32(value: i32) -> Self {
        HResult(value as u32)
    }

    /// The unsigned value (`0x80240020`).
    pub const fn to_u32(self) -> u32 {
        self.0
    }

    /// The signed value (`-2145124320`).
    pub const fn to_i32(self) -> i32 {
        self.0 as i32
    }

    /// True when the severity bit is clear (`S_*`, `WU_S_*`).
    pub const fn is_success(self) -> bool {
        self.0 & 0x8000_0000 == 0
    }

    /// True when the severity bit is set (`E_*`, `WU_E_*`).
    pub const fn is_failure(self) -> bool {
        !self.is_success()
    }

    /// The facility (bits 16–26).
    pub const fn facility(self) -> u16 {
        ((self.0 >> 16) & 0x7ff) as u16
    }

    /// The facility-specific code (bits 0–15).
    pub const fn code(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// For WUA's facility, the component that owns the code (the top nibble
    /// of the code: `0x8024_2xxx` is the update handler).
    pub const fn component(self) -> Option<Component> {
        if self.facility() != FACILITY_WINDOWSUPDATE {
            return None;
        }
        Some(Component::ALL[(self.code() >> 12) as usize])
    }

    /// The catalog entry, if the code is one WUA defines.
    pub fn info(self) -> Option<&'static CodeInfo> {
        CATALOG
            .binary_search_by_key(&self, |info| info.hresult)
            .ok()
            .map(|index| &CATALOG[index])
    }

    /// The symbolic name, if the code is one WUA defines.
    pub fn name(self) -> Option<&'static str> {
        self.info().map(|info| info.name)
    }

    /// Every code WUA defines, sorted by value.
    pub fn catalog() -> &'static [CodeInfo] {
        &CATALOG
    }

    /// The code with this symbolic name, in any case (`wu_e_no_update`).
    pub fn from_name(name: &str) -> Option<Self> {
        CATALOG
            .iter()
            .find(|info| info.name.eq_ignore_ascii_case(name))
            .map(|info| info.hresult)
    }

    /// The symbolic name of the facility, for the facilities an update agent
    /// meets (`FACILITY_WINDOWSUPDATE`, `FACILITY_WIN32`, …).
    pub fn facility_name(self) -> Option<&'static str> {
        Some(match self.facility() {
            0 => "FACILITY_NULL",
            1 => "FACILITY_RPC",
            2 => "FACILITY_DISPATCH",
            3 => "FACILITY_STORAGE",
            4 => "FACILITY_ITF",
            7 => "FACILITY_WIN32",
            8 => "FACILITY_WINDOWS",
            9 => "FACILITY_SECURITY",
            FACILITY_WINDOWSUPDATE => "FACILITY_WINDOWSUPDATE",
            _ => return None,
        })
    }

    /// A one-line description of a code the catalog does not know: its
    /// severity, facility and (for WUA) component.
    fn describe_unknown(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = if self.is_success() {
            "success"
        } else {
            "failure"
        };
        write!(
            f,
            "{self:#}: unknown code: {severity}, facility {:#x}",
            self.facility()
        )?;
        if let Some(name) = self.facility_name() {
            write!(f, " ({name})")?;
        }
        match self.component() {
            Some(component) => write!(
                f,
                ", component {:X} ({})",
                component as u8,
                component.description()
            ),
            None => write!(f, ", code {}", self.code()),
        }
    }
}

/// The part of WUA that owns a code: the top nibble of a `0x8024xxxx` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Component {
    /// `0x80240xxx`: common.
    Common = 0,
    /// `0x80241xxx`: Windows Installer (MSI/MSP) handler.
    Msi = 1,
    /// `0x80242xxx`: update handler.
    UpdateHandler = 2,
    /// `0x80243xxx`: Automatic Updates client UI.
    AuClientUi = 3,
    /// `0x80244xxx`: protocol talker (talks to the update server).
    ProtocolTalker = 4,
    /// `0x80245xxx`: redirector and service-initiated healing.
    Redirector = 5,
    /// `0x80246xxx`: download manager.
    DownloadManager = 6,
    /// `0x80247xxx`: metadata and the offline scan (OL).
    Metadata = 7,
    /// `0x80248xxx`: data store.
    DataStore = 8,
    /// `0x80249xxx`: inventory.
    Inventory = 9,
    /// `0x8024Axxx`: Automatic Updates.
    AutomaticUpdates = 0xA,
    /// `0x8024Bxxx`: Windows Update tasks.
    Tasks = 0xB,
    /// `0x8024Cxxx`: drivers.
    Driver = 0xC,
    /// `0x8024Dxxx`: setup and self-update.
    Setup = 0xD,
    /// `0x8024Exxx`: expression evaluator (applicability rules).
    ExpressionEvaluator = 0xE,
    /// `0x8024Fxxx`: reporter (status reports to the server).
    Reporter = 0xF,
}

impl Component {
    const ALL: [Component; 16] = [
        Component::Common,
        Component::Msi,
        Component::UpdateHandler,
        Component::AuClientUi,
        Component::ProtocolTalker,
        Component::Redirector,
        Component::DownloadManager,
        Component::Metadata,
        Component::DataStore,
        Component::Inventory,
        Component::AutomaticUpdates,
        Component::Tasks,
        Component::Driver,
        Component::Setup,
        Component::ExpressionEvaluator,
        Component::Reporter,
    ];

    /// A short human name.
    pub fn description(self) -> &'static str {
        match self {
            Component::Common => "common",
            Component::Msi => "Windows Installer handler",
            Component::UpdateHandler => "update handler",
            Component::AuClientUi => "Automatic Updates client UI",
            Component::ProtocolTalker => "protocol talker",
            Component::Redirector => "redirector",
            Component::DownloadManager => "download manager",
            Component::Metadata => "metadata",
            Component::DataStore => "data store",
            Component::Inventory => "inventory",
            Component::AutomaticUpdates => "Automatic Updates",
            Component::Tasks => "Windows Update tasks",
            Component::Driver => "driver",
            Component::Setup => "setup",
            Component::ExpressionEvaluator => "expression evaluator",
            Component::Reporter => "reporter",
        }
    }
}

impl fmt::Display for HResult {
    /// `{}`: value, name and message on one line; `{:#}`: the value alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return write!(f, "0x{:08X}", self.0);
        }
        match self.info() {
            Some(info) => write!(f, "0x{:08X} {}: {}", self.0, info.name, info.message),
            None => self.describe_unknown(f),
        }
    }
}

impl fmt::Debug for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{self:#} {name}"),
            None => write!(f, "{self:#}"),
        }
    }
}

/// The text given to [`HResult::from_str`] is neither a number that fits in
/// 32 bits nor a known symbolic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseHResultError {
    input: String,
}

impl fmt::Display for ParseHResultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a result code: give a hex value (0x80240020), an unsigned or \
             signed decimal value (2149842976, -2145124320) or a name (WU_E_NO_INTERACTIVE_USER)",
            self.input
        )
    }
}

impl std::error::Error for ParseHResultError {}

impl FromStr for HResult {
    type Err = ParseHResultError;

    /// Accepts `0x80240020` (any case), `2149842976`, `-2145124320` and
    /// `WU_E_NO_INTERACTIVE_USER` (any case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let hex = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"));
        let parsed = match hex {
            // from_str_radix would also take a sign ("0x+1"); hex has none.
            Some(digits) if !digits.bytes().all(|b| b.is_ascii_hexdigit()) => None,
            Some(digits) => u32::from_str_radix(digits, 16).ok().map(HResult),
            None if trimmed.starts_with('-') => trimmed.parse::<i32>().ok().map(HResult::from_i32),
            None => trimmed
                .parse::<u32>()
                .ok()
                .map(HResult)
                .or_else(|| HResult::from_name(trimmed)),
        };
        parsed.ok_or_else(|| ParseHResultError {
            input: text.to_owned(),
        })
    }
}

impl Serialize for HResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{self:#}"))
    }
}

impl<'de> Deserialize<'de> for HResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Unsigned(u32),
            Signed(i32),
            Text(String),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Unsigned(value) => Ok(HResult(value)),
            Wire::Signed(value) => Ok(HResult::from_i32(value)),
            Wire::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for HResult {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HResult".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An HRESULT as 0x-prefixed, 8-digit upper-case hex (\"0x80240020\").",
            "type": "string",
            "pattern": "^0x[0-9A-F]{8}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_value_name_and_message() {
        let text = WU_E_NO_INTERACTIVE_USER.to_string();
        assert!(
            text.starts_with("0x80240020 WU_E_NO_INTERACTIVE_USER: "),
            "{text}"
        );
        assert!(text.len() > "0x80240020 WU_E_NO_INTERACTIVE_USER: ".len() + 20);
    }

    #[test]
    fn unknown_codes_name_their_parts() {
        let text = HResult::from_u32(0x8024_9FFF).to_string();
        assert_eq!(
            text,
            "0x80249FFF: unknown code: failure, facility 0x24 (FACILITY_WINDOWSUPDATE), \
             component 9 (inventory)"
        );
        let text = HResult::from_u32(0x8007_0002).to_string();
        assert_eq!(
            text,
            "0x80070002: unknown code: failure, facility 0x7 (FACILITY_WIN32), code 2"
        );
    }

    #[test]
    fn parses_every_spelling() {
        for text in [
            "0x80240020",
            "0X80240020",
            "0x80240020 ",
            "2149842976",
            "-2145124320",
            "WU_E_NO_INTERACTIVE_USER",
            "wu_e_no_interactive_user",
        ] {
            assert_eq!(
                text.parse::<HResult>(),
                Ok(WU_E_NO_INTERACTIVE_USER),
                "{text}"
            );
        }
        for text in [
            "",
            "0x",
            "0x1FFFFFFFF",
            "4294967296",
            "-2147483649",
            "WU_E_NOPE",
            "12a",
        ] {
            assert!(text.parse::<HResult>().is_err(), "{text}");
        }
    }

    #[test]
    fn json_is_hex_and_reads_numbers_too() {
        let json = serde_json::to_string(&WU_E_NO_UPDATE).unwrap();
        assert_eq!(json, "\"0x80240024\"");
        for input in [
            "\"0x80240024\"",
            "2149842980",
            "-2145124316",
            "\"WU_E_NO_UPDATE\"",
        ] {
            let back: HResult = serde_json::from_str(input).unwrap();
            assert_eq!(back, WU_E_NO_UPDATE, "{input}");
        }
    }

    #[test]
    fn parts() {
        assert!(WU_S_REBOOT_REQUIRED.is_success());
        assert!(WU_E_NO_INTERACTIVE_USER.is_failure());
        assert_eq!(WU_E_NO_INTERACTIVE_USER.facility(), FACILITY_WINDOWSUPDATE);
        assert_eq!(WU_E_NO_INTERACTIVE_USER.code(), 0x0020);
        assert_eq!(
            WU_E_UH_CANREQUIREINPUT.component(),
            Some(Component::UpdateHandler)
        );
        assert_eq!(E_ACCESSDENIED.component(), None);
        assert_eq!(WU_E_NO_INTERACTIVE_USER.to_i32(), -2_145_124_320);
    }
}
