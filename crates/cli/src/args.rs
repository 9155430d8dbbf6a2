//! The command line, as clap reads it. The doc comments are the help text.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// OpenWUA: the Windows Update Agent for Linux.
#[derive(Debug, Parser)]
#[command(name = "wua", version, about, propagate_version = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain result codes: 0x80240020, 2149842976, -2145124320,
    /// WU_E_NO_INTERACTIVE_USER (any case), or an enum member such as orcFailed.
    Explain {
        /// The codes or names to explain.
        #[arg(required = true, value_name = "CODE|NAME", allow_hyphen_values = true)]
        codes: Vec<String>,
        /// Print JSON (one array) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Work with WUA search criteria.
    Criteria {
        #[command(subcommand)]
        command: CriteriaCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CriteriaCommand {
    /// Check a criteria string: print its normalized form, or the error with
    /// a caret under its position (exit status 1).
    Check {
        /// The criteria, e.g. "IsInstalled=0 and Type='Software'"; `-` reads
        /// them from standard input. Empty means the default,
        /// IsInstalled=0 and IsHidden=0.
        #[arg(value_name = "CRITERIA", allow_hyphen_values = true)]
        criteria: OsString,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}
