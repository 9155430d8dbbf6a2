//! `wua-server`: OpenWUA's update server, the role WSUS plays for Windows.
//!
//! - [`store::Store`]: the server's state behind one interface, with an
//!   SQLite and a PostgreSQL back end; every answer comes from it, so any
//!   number of front ends on one PostgreSQL database agree;
//! - [`api::router`]: the HTTP API (axum), described by [`api::ApiDoc`]
//!   (OpenAPI, served at `/api/v1/openapi.json`);
//! - [`fleet`]: computer groups, computers and approvals, and
//!   [`fleet::effective_approval`], the inheritance rule;
//!   [`fleet_api`] serves them, computer registration and the signed
//!   `POST /api/v1/sync`;
//! - [`reports`]: computers' status reports (`POST /api/v1/reports`, each
//!   stored in one transaction, duplicates acknowledged and ignored) and
//!   the admin's summaries of them ([`reports::summarise_updates`] counts
//!   Unknown from approvals);
//! - [`airgap`]: offline exports for air-gapped sites and the import of
//!   their reports;
//! - [`rules`]: automatic approval rules, fired in the publish
//!   transaction and run on demand ([`rules_api`] serves them and
//!   rollouts); [`rollouts`]: staged approvals whose rings gate what a
//!   computer is offered, advanced or halted by [`rollouts::decide`];
//! - [`console`]: the web console under `/console` (server-rendered HTML,
//!   sessions, a read-only role);
//! - [`upstream`]: upstream Debian/Ubuntu repositories synced into the
//!   catalog (verified with gpgv, mapped by `openwua-apt`), their `.deb`s
//!   fetched on approval;
//! - [`error::ServerError`]: the one error type; every 4xx carries a JSON
//!   body with a WUA code;
//! - [`client::Client`]: what `wua-server publish`, `decline`, `updates`,
//!   `groups`, `computers`, `approve`, `report` and `key` use to talk to a running
//!   server.
//!
//! The server installs nothing and trusts no request: every body is bounded
//! and checked before the store sees it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), openwua_server::store::StoreError> {
//! let store = openwua_server::store::Store::open_sqlite("/tmp/server.sqlite".as_ref()).await?;
//! println!("catalog version {}", store.catalog_version().await?);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod airgap;
pub mod api;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod content;
pub mod error;
pub mod fleet;
pub mod fleet_api;
pub mod limits;
pub mod maintenance;
pub mod reports;
pub mod rollouts;
pub mod rules;
pub mod rules_api;
pub mod serve;
pub mod setup;
pub mod store;
pub mod sync_cache;
pub mod tls;
pub mod upstream;
