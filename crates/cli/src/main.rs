//! `wua`: the command line of OpenWUA. This file is a shim: it parses the
//! arguments, runs one command and maps its outcome to an exit status.

mod args;
mod criteria_check;
mod explain;

use std::io::{self, Write};
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
    match run(args, &mut io::stdout().lock()) {
        Ok(status) => ExitCode::from(status),
        // The reader went away (`wua … | head`): stop quietly, like other tools.
        Err(error) if is_broken_pipe(&error) => ExitCode::from(exit::SUCCESS),
        Err(error) => {
            eprintln!("wua: {error:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<u8> {
    let status = match args.command {
        Command::Explain { codes, json } => explain::run(&codes, json, out)?,
        Command::Criteria {
            command: CriteriaCommand::Check { criteria, json },
        } => criteria_check::run(&criteria, json, out)?,
    };
    out.flush()?;
    Ok(status)
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|json| json.io_error_kind())
                == Some(io::ErrorKind::BrokenPipe)
    })
}
