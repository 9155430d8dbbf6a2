//! WUA's object model as data: no I/O, no async, no OS calls.
//!
//! - [`hresult::HResult`] and the catalog of WUA's result codes, each with
//!   its symbolic name and what to do (`hresult::WU_E_NO_INTERACTIVE_USER`);
//! - [`enums`]: WUA's enumerations with their numeric values;
//! - [`update::Update`] and [`update::UpdateState`]: one update revision and
//!   one machine's state of it, with stable JSON;
//! - [`criteria::Criteria`]: the search-criteria language, parsed, checked
//!   and compiled;
//! - [`search::SearchResult`], [`service::ServiceInfo`],
//!   [`history::HistoryEntry`]: what the agent answers with;
//! - [`prompt::Question`] and [`prompt::PromptEvent`]: what an interactive
//!   installer asks, streamed to the connection that asked for the install.
//! - [`caller::CallerContext`]: how the agent sees a caller, with the evidence.
//! - [`automatic::AutomaticUpdatesState`]: Automatic Updates' settings,
//!   schedule and the agent's restarts.
//!
//! ```
//! use openwua_model::hresult::{HResult, WU_E_NO_INTERACTIVE_USER};
//!
//! let code: HResult = "-2145124320".parse()?;
//! assert_eq!(code, WU_E_NO_INTERACTIVE_USER);
//! assert!(code.to_string().starts_with("0x80240020 WU_E_NO_INTERACTIVE_USER: "));
//! # Ok::<(), openwua_model::hresult::ParseHResultError>(())
//! ```

#![deny(missing_docs)]

pub mod automatic;
pub mod caller;
pub mod criteria;
pub mod enums;
pub mod history;
pub mod hresult;
pub mod operation;
pub mod prompt;
pub mod search;
pub mod service;
pub mod update;
