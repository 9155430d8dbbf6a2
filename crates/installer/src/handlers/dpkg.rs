//! The `dpkg` handler: `dpkg --install` of the update's `.deb` files, and
//! `dpkg --remove` of the packages its metadata names.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openwua_catalog::revision::Handler;
use openwua_model::enums::UpdateOperation;
use openwua_model::hresult::{
    WU_E_UH_DOESNOTSUPPORTACTION, WU_E_UH_INSTALLERFAILURE, WU_E_UH_INVALIDMETADATA,
    WU_E_UH_WRONGHANDLER,
};

use super::{
    HandlerContext, HandlerOutcome, Interaction, Program, append_log, describe_status, run_program,
    unfinished,
};
use crate::prompts::debconf::DebconfServer;

/// dpkg gets as long as a command installer does by default.
const TIMEOUT: Duration = Duration::from_secs(3600);

pub(super) fn run(context: &HandlerContext<'_>) -> HandlerOutcome {
    let Handler::Dpkg { remove } = context.handler else {
        return HandlerOutcome::failed(
            WU_E_UH_WRONGHANDLER,
            "the dpkg handler was given another handler's metadata",
        );
    };
    let settings = context.dpkg;
    let mut args = vec![format!("--admindir={}", settings.admindir.display())];
    if let Some(instdir) = &settings.instdir {
        args.push(format!("--instdir={}", instdir.display()));
    }
    args.extend(settings.extra_args.iter().cloned());
    if context.quiet {
        // Keep changed configuration files as they are, without asking.
        args.push("--force-confdef".into());
        args.push("--force-confold".into());
    }
    let (action, operands) = match context.operation {
        UpdateOperation::Installation => match debs(context.content_dir) {
            Ok(debs) if debs.is_empty() => {
                return HandlerOutcome::failed(
                    WU_E_UH_INVALIDMETADATA,
                    format!(
                        "dpkg was not run: the update has no .deb files in {}",
                        context.content_dir.display()
                    ),
                );
            }
            Ok(debs) => (
                "--install",
                debs.iter().map(|deb| deb.display().to_string()).collect(),
            ),
            Err(error) => {
                return HandlerOutcome::failed(
                    WU_E_UH_INSTALLERFAILURE,
                    format!(
                        "dpkg was not run: the content directory {} could not be read: {error}",
                        context.content_dir.display()
                    ),
                );
            }
        },
        UpdateOperation::Uninstallation if remove.is_empty() => {
            return HandlerOutcome::failed(
                WU_E_UH_DOESNOTSUPPORTACTION,
                "the update's dpkg handler names no packages to remove",
            );
        }
        UpdateOperation::Uninstallation => ("--remove", remove.clone()),
    };
    args.push(action.into());
    // "--" keeps a package name or file name from reading as an option.
    args.push("--".into());
    args.extend(operands);

    let name = format!("dpkg {action}");
    // Interactive: debconf asks through its passthrough socket, conffile
    // prompts appear on the terminal.
    let interactive = context
        .interactive()
        .map(|prompter| passthrough(context, prompter, &name));
    let mut interactive = match interactive.transpose() {
        Ok(interactive) => interactive,
        Err(outcome) => return outcome,
    };
    let pipe = interactive
        .as_ref()
        .map(|(_, debconf)| debconf.socket().display().to_string());
    let env: Vec<(&str, &str)> = match &pipe {
        Some(pipe) => vec![("DEBIAN_FRONTEND", "passthrough"), ("DEBCONF_PIPE", pipe)],
        None if context.quiet => vec![("DEBIAN_FRONTEND", "noninteractive")],
        None => Vec::new(),
    };
    let before = stamp(&settings.reboot_required_file);
    let ended = run_program(
        context,
        Program {
            name: &name,
            path: &settings.program,
            args: &args,
            env: &env,
            timeout: TIMEOUT,
            fds: Vec::new(),
        },
        interactive.as_mut().map(|(interaction, _)| interaction),
    );
    let verdict = match interactive {
        Some((interaction, debconf)) => {
            drop(debconf);
            // `interaction` is dropped at the end of this arm.
            interaction.verdict(context, &name, ended)
        }
        None => unfinished(context, &name, ended),
    };
    let status = match verdict {
        Ok(status) => status,
        Err(outcome) => return outcome,
    };
    let log = context.log_path.display();
    match status.code() {
        Some(0) => {
            let after = stamp(&settings.reboot_required_file);
            let reboot = after.is_some() && after != before;
            HandlerOutcome::success(
                reboot,
                Some(0),
                if reboot {
                    format!(
                        "{name} exited with 0 and asked for a restart ({})",
                        settings.reboot_required_file.display()
                    )
                } else {
                    format!("{name} exited with 0")
                },
            )
        }
        Some(code) => HandlerOutcome {
            exit_code: Some(code),
            ..HandlerOutcome::failed(
                WU_E_UH_INSTALLERFAILURE,
                format!("{name} exited with {code} (see {log})"),
            )
        },
        None => HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!("{name} {} (see {log})", describe_status(status)),
        ),
    }
}

/// The terminal and a debconf passthrough server in a fresh directory
/// under the prompt directory.
pub(super) fn passthrough(
    context: &HandlerContext<'_>,
    prompter: &crate::prompts::Prompter,
    name: &str,
) -> Result<(Interaction, DebconfServer), HandlerOutcome> {
    let interaction = Interaction::start(context, prompter, name)?;
    let server = append_log(context.log_path).and_then(|log| {
        DebconfServer::start(
            &context.dpkg.prompt_dir,
            prompter.clone(),
            context.update_id,
            log,
            interaction.aborted.clone(),
        )
    });
    match server {
        Ok(server) => Ok((interaction, server)),
        Err(error) => Err(HandlerOutcome::failed(
            WU_E_UH_INSTALLERFAILURE,
            format!(
                "{name} was not started: no debconf socket in {}: {error}",
                context.dpkg.prompt_dir.display()
            ),
        )),
    }
}

/// Every `*.deb` in the content directory, sorted by name.
fn debs(content_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut debs = Vec::new();
    for entry in std::fs::read_dir(content_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "deb") && path.is_file() {
            debs.push(path);
        }
    }
    debs.sort();
    Ok(debs)
}

/// What identifies one version of the flag file: a touch changes the times,
/// a re-creation the inode.
pub(super) fn stamp(path: &Path) -> Option<(u64, i64, i64, i64, i64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((
        metadata.ino(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.ctime(),
        metadata.ctime_nsec(),
    ))
}
