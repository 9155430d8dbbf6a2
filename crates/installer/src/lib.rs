//! What installs an update on this machine, and how an installer's
//! questions reach the person who asked for the install.
//!
//! [`handlers::run`] runs one update's [`handlers::HandlerContext`] — a
//! `command`, `dpkg` or placed `files` — and ends in a
//! [`handlers::HandlerOutcome`] with WUA's code. With a [`prompts::Prompter`]
//! in the context, the installer gets a pseudo-terminal, fd 3 and debconf's
//! passthrough, whose questions travel to the [`prompts::PromptStream`] the
//! caller's connection holds. This crate knows neither the agent's store,
//! the catalog's signing, nor Varlink: the agent decides what runs and for
//! whom, this crate runs it.
//!
//! ```no_run
//! # fn example(context: &openwua_installer::handlers::HandlerContext<'_>) {
//! let outcome = openwua_installer::handlers::run(context);
//! println!("{}: {}", outcome.hresult, outcome.detail);
//! # }
//! ```

#![deny(missing_docs)]

pub mod handlers;
pub mod prompts;

use std::fmt;

use openwua_model::hresult::HResult;

/// A refusal from this crate: WUA's code and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallerError {
    /// WUA's code.
    pub hresult: HResult,
    /// What exactly went wrong, for people.
    pub detail: String,
}

impl InstallerError {
    /// An error with a code and a detail.
    pub fn new(hresult: HResult, detail: impl Into<String>) -> Self {
        InstallerError {
            hresult,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for InstallerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.hresult, self.detail)
    }
}

impl std::error::Error for InstallerError {}
