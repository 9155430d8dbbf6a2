//! OpenWUA's catalog format, shared by the update server and the agent.
//!
//! - [`revision::Revision`]: one update revision — the model's metadata,
//!   its applicability rules, how to install it, and its content files;
//! - [`snapshot::Snapshot`]: a service's whole catalog at one version;
//! - [`signing`]: ed25519 keys and detached signatures over a snapshot's
//!   canonical bytes;
//! - [`package`]: offline scan packages (WUA's `AddScanPackageService`),
//!   one compressed, signed file;
//! - [`manifest`]: the TOML manifests updates are authored in.
//!
//! Nothing here talks to the network or to the agent's store; every error
//! is a [`CatalogError`] with its WUA code.

#![deny(missing_docs)]

mod error;
pub mod manifest;
pub mod package;
pub mod revision;
pub mod signing;
pub mod snapshot;

pub use error::CatalogError;
