//! OpenWUA's catalog format, shared by the update server and the agent.
//!
//! - [`revision::Revision`]: one update revision — the model's metadata,
//!   its applicability rules, how to install it, and its content files;
//! - [`snapshot::Snapshot`]: a service's whole catalog at one version;
//! - [`signing`]: ed25519 keys and detached signatures over a snapshot's
//!   canonical bytes;
//! - [`package`]: offline scan packages (WUA's `AddScanPackageService`),
//!   one compressed, signed file;
//! - [`manifest`]: the TOML manifests updates are authored in;
//! - [`sync`]: what an update server sends a syncing agent — a full
//!   snapshot, a [`sync::Delta`] from the agent's anchor, or a
//!   [`sync::StillCurrent`] statement — each in a signed
//!   [`sync::SignedResponse`] frame.
//!
//! ```
//! use jiff::{SignedDuration, Timestamp};
//! use openwua_catalog::signing::SecretKey;
//! use openwua_catalog::snapshot::FORMAT_VERSION;
//! use openwua_catalog::sync::{Anchor, Response, SignedResponse, StillCurrent};
//! use uuid::Uuid;
//!
//! let key = SecretKey::generate()?;
//! let service_id = Uuid::from_u128(1);
//! let issued = Timestamp::now();
//! let statement = StillCurrent {
//!     format: FORMAT_VERSION,
//!     service_id,
//!     version: 7,
//!     issued,
//!     valid_until: issued + SignedDuration::from_hours(6),
//! };
//! // The server sends these bytes; the agent verifies them with the pinned key.
//! let bytes = SignedResponse::sign_still_current(&statement, &key)?.to_bytes();
//! let response = SignedResponse::from_bytes(&bytes)?.verify(&key.public_key())?;
//! let anchor = Anchor { service_id, version: Some(7), fresh_until: None };
//! response.check(&anchor, Timestamp::now())?;
//! assert_eq!(response, Response::StillCurrent(statement));
//! # Ok::<(), openwua_catalog::CatalogError>(())
//! ```
//!
//! Nothing here talks to the network or to the agent's store; every error
//! is a [`CatalogError`] with its WUA code.

#![deny(missing_docs)]

mod error;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod manifest;
pub mod package;
pub mod revision;
pub mod signing;
pub mod snapshot;
pub mod sync;

pub use error::CatalogError;
