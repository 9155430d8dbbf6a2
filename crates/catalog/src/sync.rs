//! What an update server sends an agent that syncs: a full [`Snapshot`], a
//! [`Delta`] from the agent's anchor, or a [`StillCurrent`] statement, each
//! signed, in one [`SignedResponse`] frame.
//!
//! The frame is binary, like the package format's entries: the document's
//! exact JSON bytes and a detached ed25519 signature over them.
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | [`FRAME_MAGIC`], `OWUASYNC` |
//! | 1 | [`FRAME_VERSION`], now 1 |
//! | 1 | the kind: 1 snapshot, 2 delta, 3 still current ([`ResponseKind`]) |
//! | 8 | the payload's length, big-endian; at most the kind's limit |
//! | n | the payload: the document's JSON, `serde_json::to_vec(&document)` |
//! | 64 | the ed25519 signature over exactly the payload |
//!
//! [`SignedResponse::verify`] checks the signature before any JSON is
//! parsed, then parses and validates the document; [`Response::check`]
//! checks it against what the agent holds ([`Anchor`]): service, anchor,
//! versions and dates. [`apply`] applies a delta to a snapshot.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CatalogError;
use crate::package::{MAX_SNAPSHOT_BYTES, parse_signed};
use crate::revision::Revision;
use crate::signing::{PublicKey, SIGNATURE_LEN, SecretKey};
use crate::snapshot::{Snapshot, check_format, validate_revisions};

/// The first bytes of every response frame.
pub const FRAME_MAGIC: &[u8; 8] = b"OWUASYNC";

/// The frame layout this build reads and writes.
pub const FRAME_VERSION: u8 = 1;

/// Magic, frame version, kind and payload length.
pub const HEADER_LEN: usize = FRAME_MAGIC.len() + 1 + 1 + 8;

/// The largest delta payload: a delta is never bigger than a full snapshot
/// is allowed to be.
pub const MAX_DELTA_BYTES: u64 = MAX_SNAPSHOT_BYTES;

/// The largest still-current payload: five short fields.
pub const MAX_STILL_CURRENT_BYTES: u64 = 4096;

/// The largest frame of any kind.
pub const MAX_RESPONSE_BYTES: u64 = HEADER_LEN as u64 + MAX_SNAPSHOT_BYTES + SIGNATURE_LEN as u64;

/// The longest a still-current statement may be valid: it is meant to be
/// re-signed every few hours, and a long one would let a replaying mirror
/// hold agents on old metadata for as long.
pub const MAX_STILL_CURRENT_VALIDITY: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Which document a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// A full [`Snapshot`].
    Snapshot,
    /// A [`Delta`] from the agent's anchor.
    Delta,
    /// A [`StillCurrent`] statement.
    StillCurrent,
}

impl ResponseKind {
    fn code(self) -> u8 {
        match self {
            ResponseKind::Snapshot => 1,
            ResponseKind::Delta => 2,
            ResponseKind::StillCurrent => 3,
        }
    }

    fn from_code(code: u8) -> Result<Self, CatalogError> {
        match code {
            1 => Ok(ResponseKind::Snapshot),
            2 => Ok(ResponseKind::Delta),
            3 => Ok(ResponseKind::StillCurrent),
            other => Err(CatalogError::Malformed(format!(
                "unknown sync response kind {other}"
            ))),
        }
    }

    /// The largest payload of this kind.
    pub fn max_payload(self) -> u64 {
        match self {
            ResponseKind::Snapshot => MAX_SNAPSHOT_BYTES,
            ResponseKind::Delta => MAX_DELTA_BYTES,
            ResponseKind::StillCurrent => MAX_STILL_CURRENT_BYTES,
        }
    }
}

/// The revisions that changed for one agent's groups between two versions of
/// a service's catalog. Applied to the snapshot at `base_version`, it gives
/// exactly the snapshot at `version` ([`apply`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delta {
    /// The format of this document (the snapshot's `FORMAT_VERSION`).
    pub format: u32,
    /// `ServiceID` of the publishing service.
    pub service_id: Uuid,
    /// The service's display name at `version`.
    pub service_name: String,
    /// The version the agent holds: its anchor.
    pub base_version: u64,
    /// The version the delta leads to; greater than `base_version`.
    pub version: u64,
    /// When the catalog at `version` was made (the snapshot's `created`).
    pub created: Timestamp,
    /// After this the agent refuses it (the snapshot's `expires`).
    pub expires: Timestamp,
    /// Revisions added or changed since `base_version`, whole.
    pub changed: Vec<Revision>,
    /// Updates no longer in the catalog: declined, or no longer approved
    /// for the agent's groups.
    pub removed: Vec<Uuid>,
}

impl Delta {
    /// The delta that takes `old` to `new`, both the same service's.
    /// Revisions are compared whole; `removed` and `changed` follow `old`'s
    /// and `new`'s order.
    pub fn between(old: &Snapshot, new: &Snapshot) -> Result<Delta, CatalogError> {
        if old.service_id != new.service_id {
            return Err(CatalogError::Malformed(format!(
                "a delta between services {} and {}",
                old.service_id, new.service_id
            )));
        }
        let before: HashMap<Uuid, &Revision> = old
            .revisions
            .iter()
            .map(|revision| (revision.update.identity.update_id, revision))
            .collect();
        let after: HashSet<Uuid> = new
            .revisions
            .iter()
            .map(|revision| revision.update.identity.update_id)
            .collect();
        let delta = Delta {
            format: new.format,
            service_id: new.service_id,
            service_name: new.service_name.clone(),
            base_version: old.version,
            version: new.version,
            created: new.created,
            expires: new.expires,
            changed: new
                .revisions
                .iter()
                .filter(|revision| {
                    before.get(&revision.update.identity.update_id) != Some(revision)
                })
                .cloned()
                .collect(),
            removed: old
                .revisions
                .iter()
                .map(|revision| revision.update.identity.update_id)
                .filter(|update_id| !after.contains(update_id))
                .collect(),
        };
        delta.validate()?;
        Ok(delta)
    }

    /// Checks what the types cannot: the format, a version after the base,
    /// expiry after creation, the changed revisions as a snapshot's are
    /// checked, and each update at most once among changed and removed.
    pub fn validate(&self) -> Result<(), CatalogError> {
        check_format(self.format)?;
        if self.version <= self.base_version {
            return Err(CatalogError::Malformed(format!(
                "delta version {} is not after its base version {}",
                self.version, self.base_version
            )));
        }
        if self.expires <= self.created {
            return Err(CatalogError::Malformed(format!(
                "expires ({}) is not after created ({})",
                self.expires, self.created
            )));
        }
        validate_revisions(&self.changed)?;
        let changed: HashSet<Uuid> = self
            .changed
            .iter()
            .map(|revision| revision.update.identity.update_id)
            .collect();
        let mut removed = HashSet::with_capacity(self.removed.len());
        for update_id in &self.removed {
            if changed.contains(update_id) || !removed.insert(*update_id) {
                return Err(CatalogError::Malformed(format!(
                    "update {update_id} is removed twice, or both changed and removed"
                )));
            }
        }
        Ok(())
    }
}

/// "Version `version` of the service's catalog is still current until
/// `valid_until`": what a sync with nothing new receives. Short-lived and
/// re-signed by the server on a timer, so a mirror or a man in the middle
/// that replays old responses cannot keep an agent on old metadata past
/// `valid_until` unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StillCurrent {
    /// The format of this document (the snapshot's `FORMAT_VERSION`).
    pub format: u32,
    /// `ServiceID` of the publishing service.
    pub service_id: Uuid,
    /// The catalog version that is still current.
    pub version: u64,
    /// When the server signed the statement.
    pub issued: Timestamp,
    /// Until when it holds; at most [`MAX_STILL_CURRENT_VALIDITY`] after
    /// `issued`.
    pub valid_until: Timestamp,
}

impl StillCurrent {
    /// Checks the format and the validity window.
    pub fn validate(&self) -> Result<(), CatalogError> {
        check_format(self.format)?;
        if self.valid_until <= self.issued {
            return Err(CatalogError::Malformed(format!(
                "validUntil ({}) is not after issued ({})",
                self.valid_until, self.issued
            )));
        }
        if self.valid_until.duration_since(self.issued) > MAX_STILL_CURRENT_VALIDITY {
            return Err(CatalogError::Malformed(format!(
                "a still-current statement may be valid for at most {} hours; this one runs from {} to {}",
                MAX_STILL_CURRENT_VALIDITY.as_hours(),
                self.issued,
                self.valid_until
            )));
        }
        Ok(())
    }
}

/// A verified, validated response.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Replace the catalog with this one.
    Snapshot(Box<Snapshot>),
    /// Apply these changes to the anchor's catalog.
    Delta(Box<Delta>),
    /// Nothing new: the anchor's catalog is current until a date.
    StillCurrent(StillCurrent),
}

/// What an agent holds of one service: what a response is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The service.
    pub service_id: Uuid,
    /// The catalog version imported; `None` before the first.
    pub version: Option<u64>,
    /// `valid_until` of the last still-current statement accepted for
    /// `version`, if any.
    pub fresh_until: Option<Timestamp>,
}

impl Response {
    /// The service it is for.
    pub fn service_id(&self) -> Uuid {
        match self {
            Response::Snapshot(snapshot) => snapshot.service_id,
            Response::Delta(delta) => delta.service_id,
            Response::StillCurrent(statement) => statement.service_id,
        }
    }

    /// The catalog version the agent holds once it is applied.
    pub fn version(&self) -> u64 {
        match self {
            Response::Snapshot(snapshot) => snapshot.version,
            Response::Delta(delta) => delta.version,
            Response::StillCurrent(statement) => statement.version,
        }
    }

    /// Refuses a response that does not fit what the agent holds at `now`:
    /// another service's (`Malformed`); an expired catalog or statement; a
    /// snapshot or delta not newer than the anchor (a replay or a rollback);
    /// a delta from another base; a statement for another version, or older
    /// than the last one accepted (all `Stale`).
    pub fn check(&self, anchor: &Anchor, now: Timestamp) -> Result<(), CatalogError> {
        if self.service_id() != anchor.service_id {
            return Err(CatalogError::Malformed(format!(
                "the response is for service {}, not {}",
                self.service_id(),
                anchor.service_id
            )));
        }
        let newer_than_anchor = |version: u64| match anchor.version {
            Some(current) if version <= current => Err(CatalogError::Stale(format!(
                "catalog version {version} is not newer than the imported version {current}: \
                 refused as a replay or a rollback"
            ))),
            _ => Ok(()),
        };
        match self {
            Response::Snapshot(snapshot) => {
                snapshot.check_not_expired(now)?;
                newer_than_anchor(snapshot.version)
            }
            Response::Delta(delta) => {
                if anchor.version != Some(delta.base_version) {
                    return Err(CatalogError::Stale(format!(
                        "the delta applies to version {}, but the agent holds {}",
                        delta.base_version,
                        anchor
                            .version
                            .map_or_else(|| "no catalog".to_owned(), |v| format!("version {v}"))
                    )));
                }
                if now >= delta.expires {
                    return Err(CatalogError::Stale(format!(
                        "catalog version {} of service {} expired at {}",
                        delta.version, delta.service_id, delta.expires
                    )));
                }
                newer_than_anchor(delta.version)
            }
            Response::StillCurrent(statement) => {
                if anchor.version != Some(statement.version) {
                    return Err(CatalogError::Stale(format!(
                        "the statement says version {} is current, but the agent holds {}",
                        statement.version,
                        anchor
                            .version
                            .map_or_else(|| "no catalog".to_owned(), |v| format!("version {v}"))
                    )));
                }
                if now >= statement.valid_until {
                    return Err(CatalogError::Stale(format!(
                        "the statement that version {} is current lapsed at {}",
                        statement.version, statement.valid_until
                    )));
                }
                // The same statement again is accepted (the server caches it
                // between re-signings); an older one is a replay.
                if let Some(accepted) = anchor.fresh_until
                    && statement.valid_until < accepted
                {
                    return Err(CatalogError::Stale(format!(
                        "the statement is valid until {}, older than the one accepted, valid until {accepted}",
                        statement.valid_until
                    )));
                }
                Ok(())
            }
        }
    }
}

/// One response as it travels: its kind, the document's exact bytes and
/// the signature over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResponse {
    kind: ResponseKind,
    payload: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
}

impl SignedResponse {
    /// Validates and signs a full snapshot.
    pub fn sign_snapshot(snapshot: &Snapshot, key: &SecretKey) -> Result<Self, CatalogError> {
        snapshot.validate()?;
        Self::sign(ResponseKind::Snapshot, snapshot, key)
    }

    /// Validates and signs a delta.
    pub fn sign_delta(delta: &Delta, key: &SecretKey) -> Result<Self, CatalogError> {
        delta.validate()?;
        Self::sign(ResponseKind::Delta, delta, key)
    }

    /// Validates and signs a still-current statement.
    pub fn sign_still_current(
        statement: &StillCurrent,
        key: &SecretKey,
    ) -> Result<Self, CatalogError> {
        statement.validate()?;
        Self::sign(ResponseKind::StillCurrent, statement, key)
    }

    fn sign<T: Serialize>(
        kind: ResponseKind,
        document: &T,
        key: &SecretKey,
    ) -> Result<Self, CatalogError> {
        let payload = serde_json::to_vec(document)
            .map_err(|error| CatalogError::Authoring(format!("encoding: {error}")))?;
        if payload.len() as u64 > kind.max_payload() {
            return Err(CatalogError::Authoring(format!(
                "the {kind:?} is {} bytes; agents accept at most {}",
                payload.len(),
                kind.max_payload()
            )));
        }
        let signature = key.sign(&payload);
        Ok(SignedResponse {
            kind,
            payload,
            signature,
        })
    }

    /// The kind of document it carries.
    pub fn kind(&self) -> ResponseKind {
        self.kind
    }

    /// The document's exact JSON bytes, as signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The ed25519 signature over [`SignedResponse::payload`].
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The frame's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.payload.len() + SIGNATURE_LEN);
        bytes.extend_from_slice(FRAME_MAGIC);
        bytes.push(FRAME_VERSION);
        bytes.push(self.kind.code());
        bytes.extend_from_slice(&(self.payload.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&self.payload);
        bytes.extend_from_slice(&self.signature);
        bytes
    }

    /// Reads one frame from `bytes`, which must hold exactly one. The size
    /// is checked against the kind's limit before anything else is read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CatalogError> {
        if bytes.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(CatalogError::Malformed(format!(
                "the response is {} bytes; at most {MAX_RESPONSE_BYTES} are accepted",
                bytes.len()
            )));
        }
        let mut reader = bytes;
        let frame = Self::read_from(&mut reader)?;
        if !reader.is_empty() {
            return Err(CatalogError::Malformed(format!(
                "{} bytes after the response's signature",
                reader.len()
            )));
        }
        Ok(frame)
    }

    /// Reads one frame from a stream: the header, then no more than the
    /// length it gives, which is checked against the kind's limit first.
    /// Nothing after the frame is read.
    pub fn read_from(reader: &mut impl Read) -> Result<Self, CatalogError> {
        let truncated =
            |error: std::io::Error| CatalogError::Malformed(format!("truncated response: {error}"));
        let mut header = [0u8; HEADER_LEN];
        reader.read_exact(&mut header).map_err(truncated)?;
        let (magic, rest) = header.split_at(FRAME_MAGIC.len());
        if magic != FRAME_MAGIC {
            return Err(CatalogError::Malformed(
                "not an OpenWUA sync response (wrong magic)".into(),
            ));
        }
        let (version, rest) = (rest[0], &rest[1..]);
        if version != FRAME_VERSION {
            return Err(CatalogError::FormatTooNew {
                found: u32::from(version),
                supported: u32::from(FRAME_VERSION),
            });
        }
        let kind = ResponseKind::from_code(rest[0])?;
        let mut length = [0u8; 8];
        length.copy_from_slice(&rest[1..]);
        let length = u64::from_be_bytes(length);
        if length > kind.max_payload() {
            return Err(CatalogError::Malformed(format!(
                "the {kind:?} payload is {length} bytes; at most {} are accepted",
                kind.max_payload()
            )));
        }
        // Bounded above; read in pieces so a lying length costs only what
        // actually arrives.
        let mut payload = Vec::new();
        reader
            .by_ref()
            .take(length)
            .read_to_end(&mut payload)
            .map_err(truncated)?;
        if payload.len() as u64 != length {
            return Err(CatalogError::Malformed(format!(
                "truncated response: {} of {length} payload bytes",
                payload.len()
            )));
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        reader.read_exact(&mut signature).map_err(truncated)?;
        Ok(SignedResponse {
            kind,
            payload,
            signature,
        })
    }

    /// Checks the signature with the service's pinned key, then parses and
    /// validates the document. Unsigned bytes never reach the parser.
    pub fn verify(&self, key: &PublicKey) -> Result<Response, CatalogError> {
        key.verify(&self.payload, &self.signature)?;
        Ok(match self.kind {
            ResponseKind::Snapshot => {
                let snapshot: Snapshot = parse_signed(&self.payload, "snapshot")?;
                snapshot.validate()?;
                Response::Snapshot(Box::new(snapshot))
            }
            ResponseKind::Delta => {
                let delta: Delta = parse_signed(&self.payload, "delta")?;
                delta.validate()?;
                Response::Delta(Box::new(delta))
            }
            ResponseKind::StillCurrent => {
                let statement: StillCurrent = parse_signed(&self.payload, "still-current")?;
                statement.validate()?;
                Response::StillCurrent(statement)
            }
        })
    }
}

/// Applies `delta` to `base`, the snapshot at its base version: changed
/// revisions replace the base's in place, new ones follow in the delta's
/// order, removed ones go. Refuses a delta for another service or base, or
/// one that removes an update the base does not hold.
pub fn apply(base: &Snapshot, delta: &Delta) -> Result<Snapshot, CatalogError> {
    if base.service_id != delta.service_id {
        return Err(CatalogError::Malformed(format!(
            "the delta is for service {}, not {}",
            delta.service_id, base.service_id
        )));
    }
    if base.version != delta.base_version {
        return Err(CatalogError::Stale(format!(
            "the delta applies to version {}, not {}",
            delta.base_version, base.version
        )));
    }
    delta.validate()?;
    let mut changed: HashMap<Uuid, &Revision> = delta
        .changed
        .iter()
        .map(|revision| (revision.update.identity.update_id, revision))
        .collect();
    let mut removed: HashSet<Uuid> = delta.removed.iter().copied().collect();
    let mut revisions = Vec::with_capacity(base.revisions.len() + delta.changed.len());
    for revision in &base.revisions {
        let update_id = revision.update.identity.update_id;
        if removed.remove(&update_id) {
            continue;
        }
        revisions.push(match changed.remove(&update_id) {
            Some(replacement) => replacement.clone(),
            None => revision.clone(),
        });
    }
    if let Some(missing) = removed.into_iter().next() {
        return Err(CatalogError::Malformed(format!(
            "the delta removes update {missing}, which version {} does not hold",
            base.version
        )));
    }
    revisions.extend(
        delta
            .changed
            .iter()
            .filter(|revision| changed.contains_key(&revision.update.identity.update_id))
            .cloned(),
    );
    let snapshot = Snapshot {
        format: delta.format,
        service_id: delta.service_id,
        service_name: delta.service_name.clone(),
        version: delta.version,
        created: delta.created,
        expires: delta.expires,
        revisions,
    };
    snapshot.validate()?;
    Ok(snapshot)
}
