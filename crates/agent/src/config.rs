//! `/etc/openwua/agent.toml` and the command-line overrides.
//!
//! Every path can be changed, so the agent runs unprivileged for tests and
//! inside `wua --embedded` with a per-user state directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the system agent reads its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/openwua/agent.toml";

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The store (`agent.db`) and other state.
    pub state_dir: PathBuf,
    /// Downloaded content (used from the download issue on).
    pub cache_dir: PathBuf,
    /// The Varlink socket.
    pub socket: PathBuf,
    /// Members of this group may hide updates, accept EULAs and change
    /// services, besides root. None: only root.
    pub admin_group: Option<String>,
    /// The uid the agent runs as is an administrator too. For an agent a
    /// user runs for themself (`wua --embedded`); never for the system agent.
    pub owner_is_admin: bool,
    /// Where applicability rules read the machine.
    pub facts: FactSources,
    /// Wait for another agent on the same state directory to finish rather
    /// than refuse to start: for `wua --embedded`, whose runs may overlap.
    #[serde(skip)]
    pub wait_for_state_lock: bool,
}

/// The files and tools applicability reads; overridable for tests and for
/// checking another root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactSources {
    /// The directory `file_exists` and `file_sha256` paths are resolved in.
    pub root: PathBuf,
    /// dpkg's database directory (`dpkg --admindir`).
    pub dpkg_admindir: PathBuf,
    /// The os-release file.
    pub os_release: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/openwua"),
            cache_dir: PathBuf::from("/var/cache/openwua"),
            socket: PathBuf::from("/run/openwua/agent.sock"),
            admin_group: None,
            owner_is_admin: false,
            facts: FactSources::default(),
            wait_for_state_lock: false,
        }
    }
}

impl Default for FactSources {
    fn default() -> Self {
        FactSources {
            root: PathBuf::from("/"),
            dpkg_admindir: PathBuf::from("/var/lib/dpkg"),
            os_release: PathBuf::from("/etc/os-release"),
        }
    }
}

impl Config {
    /// Reads a config file. A missing file at the default path means the
    /// defaults; any other missing file is an error.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(error) => Err(anyhow::anyhow!("{}: {error}", path.display())),
        }
    }

    /// A configuration whose every path lies under `dir`: for tests and the
    /// embedded agent.
    pub fn under(dir: &Path) -> Config {
        Config {
            state_dir: dir.join("state"),
            cache_dir: dir.join("cache"),
            socket: dir.join("agent.sock"),
            ..Config::default()
        }
    }

    /// The SQLite store.
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("agent.db")
    }
}
