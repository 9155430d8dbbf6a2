//! The `apt` handler: exact versions of Debian packages, through apt.
//!
//! Placeholder API, filled in by the apt-handler work of issue 13.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use openwua_catalog::revision::AptPackage;
use openwua_model::hresult::WU_E_UH_DOESNOTSUPPORTACTION;

use super::{DpkgSettings, HandlerContext, HandlerOutcome};

/// How the `apt` handler runs apt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSettings {
    /// The program (`apt-get`, found on the handlers' `PATH`).
    pub program: PathBuf,
    /// apt's `Dir`: its configuration (`etc/apt`), lists and cache live
    /// beneath it; `/` for the machine's own apt.
    pub root: PathBuf,
    /// How long to wait for dpkg's lock while another program holds it.
    pub lock_wait: Duration,
}

impl Default for AptSettings {
    fn default() -> Self {
        AptSettings {
            program: PathBuf::from("apt-get"),
            root: PathBuf::from("/"),
            lock_wait: Duration::from_secs(120),
        }
    }
}

/// One download of an apt update's packages into apt's cache.
#[derive(Debug)]
pub struct AptDownload<'a> {
    /// How apt runs.
    pub apt: &'a AptSettings,
    /// dpkg's database (which packages the machine has).
    pub dpkg: &'a DpkgSettings,
    /// The update's packages; those the machine has are fetched.
    pub packages: &'a [AptPackage],
    /// Where apt's output is appended.
    pub log_path: &'a std::path::Path,
    /// `RequestAbort`.
    pub abort: &'a AtomicBool,
}

/// Installs (upgrade only) the update's packages the machine has.
pub(super) fn run(_context: &HandlerContext<'_>) -> HandlerOutcome {
    HandlerOutcome::failed(
        WU_E_UH_DOESNOTSUPPORTACTION,
        "the apt handler is not built yet",
    )
}

/// Fetches the packages the machine has into apt's cache, reporting bytes
/// done and the total.
pub fn download(_request: &AptDownload<'_>, _progress: &mut dyn FnMut(u64, u64)) -> HandlerOutcome {
    HandlerOutcome::failed(
        WU_E_UH_DOESNOTSUPPORTACTION,
        "the apt handler is not built yet",
    )
}

/// Whether every package the machine has of `packages` is in apt's cache
/// with the index's size and SHA-256.
pub fn is_downloaded(_apt: &AptSettings, _dpkg: &DpkgSettings, _packages: &[AptPackage]) -> bool {
    false
}

/// After an interrupted run: finishes what dpkg left half-configured
/// (`dpkg --configure -a`), its output appended to `log`; None when dpkg
/// had nothing to finish.
pub fn repair_interrupted(_dpkg: &DpkgSettings, _log: &std::path::Path) -> Option<HandlerOutcome> {
    None
}

/// The CVE IDs the newest entry of a `.deb`'s changelog names.
pub fn changelog_cves(_deb: &std::path::Path) -> Vec<String> {
    Vec::new()
}
