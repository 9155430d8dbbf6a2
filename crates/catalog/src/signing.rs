//! ed25519 keys and detached signatures.
//!
//! Key files are one line of text: `openwua-ed25519-secret <64 hex digits>`
//! for a signing key (its 32-byte seed), `ed25519:<64 hex digits>` for a
//! public key. The public key's text form is also how a service pins it.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::CatalogError;

const SECRET_PREFIX: &str = "openwua-ed25519-secret ";
const PUBLIC_PREFIX: &str = "ed25519:";

/// A key that signs snapshots. Keep its file private.
pub struct SecretKey(SigningKey);

/// A key that verifies snapshots: what a service registration pins.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// The length of a detached signature.
pub const SIGNATURE_LEN: usize = 64;

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, CatalogError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|error| CatalogError::Authoring(format!("no random source: {error}")))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// A detached signature over `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(bytes).to_bytes()
    }

    /// The key file's text (one line, with a newline).
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", hex::encode(self.0.to_bytes()))
    }
}

impl FromStr for SecretKey {
    type Err = CatalogError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex_seed = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            CatalogError::Authoring(format!(
                "a signing key file starts with {SECRET_PREFIX:?}; make one with `wua package keygen`"
            ))
        })?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(hex_seed.trim(), &mut seed)
            .map_err(|error| CatalogError::Authoring(format!("signing key: {error}")))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }
}

impl fmt::Debug for SecretKey {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public_key())
    }
}

impl PublicKey {
    /// Checks a detached signature over `bytes`.
    pub fn verify(&self, bytes: &[u8], signature: &[u8]) -> Result<(), CatalogError> {
        let signature = Signature::from_slice(signature).map_err(|_| {
            CatalogError::BadSignature(format!(
                "the signature is {} bytes, not {SIGNATURE_LEN}",
                signature.len()
            ))
        })?;
        self.0.verify(bytes, &signature).map_err(|_| {
            CatalogError::BadSignature(format!(
                "the catalog was not signed by the pinned key {self}, or was changed after signing"
            ))
        })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", hex::encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = CatalogError;

    /// Reads `ed25519:<hex>`, as printed and as written to `.pub` files.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: String| {
            CatalogError::Authoring(format!(
                "a public key is written ed25519:<64 hex digits> ({why})"
            ))
        };
        let hex_key = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| invalid("missing ed25519: prefix".into()))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes).map_err(|error| invalid(error.to_string()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|error| invalid(error.to_string()))
    }
}
