//! `wua`: the command line of OpenWUA. This file is a shim: it parses the
//! arguments, runs one command and maps its outcome to an exit status.

mod agent;
mod args;
mod auto;
mod context;
mod criteria_check;
mod download;
mod embedded;
mod eula;
mod explain;
mod export_reports;
mod hide;
mod history;
mod install;
mod jobs;
mod operation;
mod package;
mod progress;
mod questions;
mod search;
mod services;
mod show;
mod status;
mod sync;
mod table;
mod text;
mod update;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use openwua_dist::ManSection;

use args::{Args, Command, CriteriaCommand};

/// Exit statuses, for scripts.
mod exit {
    /// The command did what was asked.
    pub const SUCCESS: u8 = 0;
    /// The input was understood and judged invalid (bad criteria).
    pub const INVALID: u8 = 1;
    /// The command could not run (bad arguments, I/O errors).
    pub const ERROR: u8 = 2;
    /// The agent refused the caller: run it as root or as an authorized user.
    pub const DENIED: u8 = 3;
    /// Some updates succeeded and some failed (SucceededWithErrors).
    pub const PARTIAL: u8 = 4;
    /// The operation failed for every update, or was aborted.
    pub const FAILED: u8 = 5;
    /// `wua status` only: a restart is pending (`RebootRequired`).
    pub const RESTART_PENDING: u8 = 6;
}

fn main() -> ExitCode {
    // Build time: the man pages and completions (scripts/build-deb).
    if let Some(status) = openwua_dist::generate_if_asked(Args::command, ManSection::UserCommands) {
        return status;
    }
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
    let agent = agent::Target {
        socket: args.socket,
        embedded: args.embedded,
    };
    let status = match args.command {
        Command::Explain { codes, json } => explain::run(&codes, json, out)?,
        Command::Criteria {
            command: CriteriaCommand::Check { criteria, json },
        } => criteria_check::run(&criteria, json, out)?,
        Command::Search(search) => search::run(&agent, &search, out)?,
        Command::Show { id, json } => show::run(&agent, id, json, out)?,
        Command::Hide { ids } => hide::run(&agent, &ids, true, out)?,
        Command::Unhide { ids } => hide::run(&agent, &ids, false, out)?,
        Command::Eula { command } => eula::run(&agent, command, out)?,
        Command::History(history) => history::run(&agent, &history, out)?,
        Command::Services { command } => services::run(&agent, command, out)?,
        Command::Download(download) => download::run(&agent, &download, out)?,
        Command::Install(install) => install::run(&agent, &install, out)?,
        Command::Uninstall(uninstall) => install::uninstall(&agent, &uninstall, out)?,
        Command::Update(update) => update::run(&agent, &update, out)?,
        Command::Jobs { json } => jobs::list(&agent, json, out)?,
        Command::Watch { id, json } => jobs::watch(&agent, id, json, out)?,
        Command::Abort { id } => jobs::abort(&agent, id, out)?,
        Command::Sync {
            service,
            online,
            json,
        } => sync::run(&agent, service, online, json, out)?,
        Command::Context { json } => context::run(&agent, json, out)?,
        Command::Status { json, brief } => status::run(&agent, json, brief, out)?,
        Command::Auto { command } => auto::run(&agent, command, out)?,
        Command::Package { command } => package::run(command, out)?,
        Command::ExportReports { service, output } => {
            export_reports::run(&agent, service, output.as_deref(), out)?
        }
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
