//! What the first start makes in the data directory, and what every start
//! reads from it: the signing key and the admin token.

use std::fs::{self, DirBuilder};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use openwua_catalog::signing::SecretKey;
use sha2::{Digest, Sha256};

/// The signing key's file in the data directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// The generated admin token's file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The content store's directory in the data directory.
pub const CONTENT_DIR: &str = "content";
/// The SQLite database in the data directory.
pub const SQLITE_FILE: &str = "server.sqlite";
/// Uploads in progress start with this, in the content directory.
pub const UPLOAD_PREFIX: &str = ".upload-";
/// The longest token accepted, from a file or a request.
pub const MAX_TOKEN_BYTES: usize = 256;

/// Makes the data directory and its content directory (0700) if missing,
/// and removes uploads a killed server left behind.
pub fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let content = data_dir.join(CONTENT_DIR);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&content)
        .with_context(|| format!("creating {}", content.display()))?;
    for entry in fs::read_dir(&content).with_context(|| format!("reading {}", content.display()))? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(UPLOAD_PREFIX)
        {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(content)
}

/// The signing key at DATA_DIR/signing.key, made (0600) on first start.
pub fn signing_key(data_dir: &Path) -> anyhow::Result<SecretKey> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    let key = SecretKey::generate()?;
    if write_new_private(&path, key.to_file_text().as_bytes())? {
        return Ok(key);
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.parse::<SecretKey>()
        .with_context(|| format!("reading {}", path.display()))
}

/// The admin token: from the configured file, else DATA_DIR/admin.token,
/// made (0600) on first start.
pub fn admin_token(data_dir: &Path, configured: Option<&Path>) -> anyhow::Result<String> {
    if let Some(path) = configured {
        return read_token(path);
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no random source: {error}"))?;
    let token = hex::encode(bytes);
    if write_new_private(&path, format!("{token}\n").as_bytes())? {
        return Ok(token);
    }
    read_token(&path)
}

/// Reads a token file: one line, bounded.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        anyhow::bail!(
            "{}: a token is one word of 1 to {MAX_TOKEN_BYTES} bytes",
            path.display()
        );
    }
    Ok(token.to_owned())
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Writes `bytes` to a new 0600 file; false if it exists already (another
/// start made it first). The file appears whole or not at all: it is
/// written beside `path` and hard-linked into place, which fails if `path`
/// exists, so a server starting at the same moment never reads it half
/// written.
fn write_new_private(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let directory = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".new-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(directory)
        .with_context(|| format!("creating a file in {}", directory.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    match fs::hard_link(temp.path(), path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}
