//! `wua`: the command line of OpenWUA. This file is a shim: it parses the
//! arguments, runs one command and maps its outcome to an exit status.

mod args;
mod criteria_check;
mod explain;

use std::process::ExitCode;

use clap::Parser;

use args::{Args, Command, CriteriaCommand};

/// Exit statuses, for scripts.
mod exit {
    /// The command did what was asked.
    pub const SUCCESS: u8 = 0;
    /// The input was understood and judged invalid (bad criteria).
    pub const INVALID: u8 = 1;
    /// The command could not run (bad arguments, I/O errors).
    pub const ERROR: u8 = 2;
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("wua: {error:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn run(args: Args) -> anyhow::Result<u8> {
    match args.command {
        Command::Explain { codes, json } => explain::run(&codes, json),
        Command::Criteria {
            command: CriteriaCommand::Check { criteria, json },
        } => criteria_check::run(&criteria, json),
    }
}
