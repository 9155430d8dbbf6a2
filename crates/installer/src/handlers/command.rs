//! The `command` handler: runs an installer program and reads its exit code
//! through the update's exit-code map.

use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use openwua_catalog::revision::{ExitCodeMap, ExitOutcome, Handler};
use openwua_model::enums::UpdateOperation;
use openwua_model::hresult::{
    WU_E_UH_DOESNOTSUPPORTACTION, WU_E_UH_INSTALLERFAILURE, WU_E_UH_INVALIDMETADATA,
};

use command_fds::FdMapping;

use super::{
    HandlerContext, HandlerOutcome, Interaction, Program, append_log, describe_status, run_program,
    unfinished,
};
use crate::prompts::installer::AnswerChannel;

/// The catalog's default `timeout_seconds`.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3600;

pub(super) fn run(context: &HandlerContext<'_>) -> HandlerOutcome {
    let Handler::Command {
        program,
        args,
        uninstall,
        exit_codes,
        timeout_seconds,
    } = context.handler
    else {
        return HandlerOutcome::failed(
            openwua_model::hresult::WU_E_UH_WRONGHANDLER,
            "the command handler was given another handler's metadata",
        );
    };
    let (name, args): (&str, &[String]) = match context.operation {
        UpdateOperation::Installation => (program, args),
        UpdateOperation::Uninstallation => match uninstall.as_deref() {
            Some([program, args @ ..]) => (program, args),
            Some([]) | None => {
                return HandlerOutcome::failed(
                    WU_E_UH_DOESNOTSUPPORTACTION,
                    "the update's command handler has no uninstall program",
                );
            }
        },
    };
    let path = match resolve(context.content_dir, name) {
        Ok(path) => path,
        Err(outcome) => return outcome,
    };
    let timeout = Duration::from_secs(timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS));
    let interactive = context
        .interactive()
        .map(|prompter| answer_channel(context, prompter, name));
    let mut interactive = match interactive.transpose() {
        Ok(interactive) => interactive,
        Err(outcome) => return outcome,
    };
    let env: &[(&str, &str)] = if interactive.is_some() {
        &[("OPENWUA_PROMPT_FD", "3")]
    } else {
        &[]
    };
    let ended = run_program(
        context,
        Program {
            name,
            path: &path,
            args,
            env,
            timeout,
            fds: Vec::new(),
        },
        interactive.as_mut().map(|(interaction, _)| interaction),
    );
    let verdict = match interactive {
        Some((interaction, channel)) => {
            channel.finish();
            // The terminal's last output reaches the log before the
            // outcome: `interaction` is dropped at the end of this arm.
            interaction.verdict(context, name, ended)
        }
        None => unfinished(context, name, ended),
    };
    let status = match verdict {
        Ok(status) => status,
        Err(outcome) => return outcome,
    };
    let log = context.log_path.display();
    let Some(code) = status.code() else {
        return HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!("{name} {} (see {log})", describe_status(status)),
        );
    };
    outcome_of(exit_codes, name, code, &log.to_string())
}

/// The installer's terminal and its answer channel on fd 3: a socket pair
/// whose other end a thread serves with the prompter.
fn answer_channel(
    context: &HandlerContext<'_>,
    prompter: &crate::prompts::Prompter,
    name: &str,
) -> Result<(Interaction, AnswerChannel), HandlerOutcome> {
    let mut interaction = Interaction::start(context, prompter, name)?;
    let channel = UnixStream::pair().and_then(|(ours, theirs)| {
        let log = append_log(context.log_path)?;
        let channel = AnswerChannel::start(
            ours,
            prompter.clone(),
            context.update_id,
            log,
            interaction.aborted.clone(),
        )?;
        Ok((channel, theirs))
    });
    match channel {
        Ok((channel, theirs)) => {
            interaction.fds.push(FdMapping {
                parent_fd: theirs.into(),
                child_fd: 3,
            });
            Ok((interaction, channel))
        }
        Err(error) => Err(HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!("{name} was not started: no channel for its questions: {error}"),
        )),
    }
}

/// What exit `code` means under `map`.
fn outcome_of(map: &ExitCodeMap, name: &str, code: i32, log: &str) -> HandlerOutcome {
    match map.outcome(code) {
        ExitOutcome::Succeeded => HandlerOutcome::success(
            false,
            Some(code),
            format!("{name} exited with {code}, which means it succeeded"),
        ),
        ExitOutcome::SucceededRebootRequired => HandlerOutcome::success(
            true,
            Some(code),
            format!(
                "{name} exited with {code}, which means it succeeded and a restart finishes it"
            ),
        ),
        ExitOutcome::Failed => HandlerOutcome {
            exit_code: Some(code),
            ..HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!("{name} exited with {code} (see {log})"),
            )
        },
    }
}

/// A relative program is a file in the content directory (and may not
/// leave it); an absolute one is the system's.
fn resolve(content_dir: &Path, program: &str) -> Result<PathBuf, HandlerOutcome> {
    let path = Path::new(program);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let invalid = |why: &str| {
        HandlerOutcome::failed(
            WU_E_UH_INVALIDMETADATA,
            format!("the installer {program:?} {why}"),
        )
    };
    if program.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid("is not a path inside the update's content"));
    }
    let full = content_dir.join(path);
    // Symbolic links inside the content may not point out of it either.
    match (full.canonicalize(), content_dir.canonicalize()) {
        (Ok(resolved), Ok(base)) if resolved.starts_with(&base) && resolved.is_file() => Ok(full),
        (Ok(resolved), Ok(base)) if resolved.starts_with(&base) => {
            Err(invalid("is not a file in the update's content"))
        }
        (Ok(_), Ok(_)) => Err(invalid("points outside the update's content")),
        (Err(_), _) | (_, Err(_)) => Err(invalid(&format!(
            "is not among the update's content files in {}",
            content_dir.display()
        ))),
    }
}
