//! An `InRelease`'s signature checked as apt checks it: `gpgv` against the
//! upstream's keyring, and only the text the signature covers is used.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Why a signature was refused, for people.
#[derive(Debug)]
pub(super) enum SignatureError {
    /// The signature does not verify, or not with a key of the keyring.
    Refused(String),
    /// gpgv could not be run or its output read.
    Failed(String),
}

/// Verifies the clearsigned `signed` against `keyring` (binary OpenPGP
/// keys) and returns the text it signs. `scratch` is an empty directory
/// of the caller's (gpgv's home and its files).
pub(super) fn verify_clearsigned(
    keyring: &[u8],
    signed: &[u8],
    scratch: &Path,
    limit: u64,
) -> Result<String, SignatureError> {
    let failed =
        |what: &str, error: std::io::Error| SignatureError::Failed(format!("{what}: {error}"));
    let keyring_path = scratch.join("keyring.gpg");
    let signed_path = scratch.join("InRelease");
    let output_path = scratch.join("Release");
    std::fs::write(&keyring_path, keyring).map_err(|e| failed("writing the keyring", e))?;
    std::fs::write(&signed_path, signed).map_err(|e| failed("writing the InRelease", e))?;
    let output = Command::new("gpgv")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        // gpgv's home is the scratch directory, never the server's user's.
        .env("GNUPGHOME", scratch)
        .arg("--status-fd")
        .arg("1")
        .arg("--keyring")
        .arg(&keyring_path)
        .arg("--output")
        .arg(&output_path)
        .arg(&signed_path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed("running gpgv (install the gpgv package)", e))?;
    let status = String::from_utf8_lossy(&output.stdout);
    let words: Vec<&str> = status
        .lines()
        .filter_map(|line| line.strip_prefix("[GNUPG:] "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let has = |word: &str| words.contains(&word);
    if has("BADSIG") {
        return Err(SignatureError::Refused(
            "the signature does not match the text (it was changed after signing)".into(),
        ));
    }
    if has("NO_PUBKEY") || has("ERRSIG") {
        return Err(SignatureError::Refused(
            "it is not signed by a key of the upstream's keyring".into(),
        ));
    }
    if has("EXPKEYSIG") || has("REVKEYSIG") || has("EXPSIG") {
        return Err(SignatureError::Refused(
            "it is signed by an expired or revoked key, or the signature expired".into(),
        ));
    }
    if !output.status.success() || !has("VALIDSIG") || !has("GOODSIG") {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(SignatureError::Refused(format!(
            "gpgv did not verify it: {}",
            stderr.trim().chars().take(300).collect::<String>()
        )));
    }
    let file = std::fs::File::open(&output_path).map_err(|e| failed("reading gpgv's output", e))?;
    let mut text = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut text)
        .map_err(|e| failed("reading gpgv's output", e))?;
    if text.len() as u64 > limit {
        return Err(SignatureError::Refused(format!(
            "the signed text is larger than {limit} bytes"
        )));
    }
    String::from_utf8(text)
        .map_err(|_| SignatureError::Refused("the signed text is not UTF-8".into()))
}
