//! `--embedded`: an agent inside wua, so a newcomer (or a test) needs no
//! daemon. It keeps its state in a per-user directory, runs as the user
//! (who is its administrator), and serves the bundled sample service,
//! rebuilt from `examples/sample-service` and signed with a key of its own
//! on every start.
//!
//! Directory: `$OPENWUA_EMBEDDED_DIR`, else `$XDG_STATE_HOME/openwua/embedded`,
//! else `~/.local/state/openwua/embedded`. Sample: `$OPENWUA_SAMPLE_SERVICE`,
//! else `examples/sample-service` as it was built into this binary
//! (`build.rs`), written out under the directory: an installed `wua`
//! needs no source tree.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use openwua_agent::{Background, Config};
use openwua_catalog::package;
use openwua_catalog::signing::SecretKey;
use openwua_client::blocking::UpdateSession;

// `SAMPLE_FILES`: examples/sample-service, embedded by build.rs.
include!(concat!(env!("OUT_DIR"), "/sample_service.rs"));

/// How long a freshly built sample package stays valid.
const SAMPLE_VALIDITY: SignedDuration = SignedDuration::from_hours(30 * 24);

/// A running in-process agent.
pub struct Embedded {
    agent: Background,
}

impl Embedded {
    /// The socket to connect to.
    pub fn socket(&self) -> &Path {
        self.agent.socket()
    }
}

fn state_dir() -> anyhow::Result<PathBuf> {
    let from_env = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = from_env("OPENWUA_EMBEDDED_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = from_env("XDG_STATE_HOME") {
        return Ok(PathBuf::from(dir).join("openwua/embedded"));
    }
    let home = from_env("HOME").context("neither $OPENWUA_EMBEDDED_DIR nor $HOME is set")?;
    Ok(PathBuf::from(home).join(".local/state/openwua/embedded"))
}

/// Starts an agent inside this process and registers (or refreshes) the
/// sample service.
pub fn start() -> anyhow::Result<Embedded> {
    let dir = state_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let mut config = Config::under(&dir);
    // One socket per process: two embedded runs at once share the store,
    // not the socket.
    config.socket = dir.join(format!("agent-{}.sock", std::process::id()));
    config.owner_is_admin = true;
    // Two wua --embedded at once take turns with the store.
    config.wait_for_state_lock = true;
    let agent = Background::start(config).context("starting the embedded agent")?;
    let embedded = Embedded { agent };
    let sample = match std::env::var_os("OPENWUA_SAMPLE_SERVICE") {
        Some(sample) => PathBuf::from(sample),
        None => write_bundled_sample(&dir.join("sample-service"))?,
    };
    if sample.join("service.toml").is_file() {
        register_sample(&dir, &sample, embedded.socket())?;
    }
    Ok(embedded)
}

/// Writes the embedded sample service to `target` afresh (so a file the
/// sample no longer has does not linger) and returns it.
fn write_bundled_sample(target: &Path) -> anyhow::Result<PathBuf> {
    match std::fs::remove_dir_all(target) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("removing {}", target.display()));
        }
    }
    for (relative, bytes) in SAMPLE_FILES {
        let path = target.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(target.to_owned())
}

/// Builds the sample into a package signed by this directory's own key and
/// adds it, or syncs it when it is already registered.
fn register_sample(dir: &Path, sample: &Path, socket: &Path) -> anyhow::Result<()> {
    let key = sample_key(&dir.join("sample.key"))?;
    let package_path = dir.join("sample-service.owpkg");
    let build = |version: u64| {
        package::build_service_dir(sample, version, SAMPLE_VALIDITY, true, &key, &package_path)
            .with_context(|| format!("building the sample service from {}", sample.display()))
    };
    // Seconds since the epoch: each build is newer than the last.
    let snapshot = build(Timestamp::now().as_second().unsigned_abs())?;
    let session = UpdateSession::connect(socket)?;
    let manager = session.create_update_service_manager();
    let registered = manager
        .services()?
        .into_iter()
        .find(|service| service.service_id == snapshot.service_id);
    match registered {
        None => {
            manager.add_scan_package_service(
                None,
                &package_path,
                &key.public_key().to_string(),
                true,
                None,
            )?;
        }
        Some(service) => {
            // After the clock went back, the seconds are not newer: follow
            // on from the stored version rather than be refused as a rollback.
            if let Some(stored) = service
                .catalog_version
                .filter(|stored| *stored > snapshot.version)
            {
                build(stored + 1)?;
            }
            session.sync(Some(service.service_id), |_| {})?;
        }
    }
    Ok(())
}

/// The embedded directory's signing key, made on first use.
fn sample_key(path: &Path) -> anyhow::Result<SecretKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.parse()?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            std::io::Write::write_all(&mut file, key.to_file_text().as_bytes())?;
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}
