//! `wua status`: the agent, the machine's update state, the installer's
//! and the services.

use std::io::Write;

use openwua_client::ClientError;
use openwua_client::blocking::UpdateSession;
use openwua_model::enums::UpdateOperation;
use openwua_model::history::{HistoryEntry, SystemInfo};
use openwua_model::operation::InstallerState;
use openwua_model::service::{ReportingState, ServiceInfo};
use serde::Serialize;

use crate::agent::Target;
use crate::text;
use crate::{exit, services, table};

/// `--json`: the system information with the installer's state and the
/// services beside it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(flatten)]
    system: SystemInfo,
    /// Absent from an agent that does not install yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    installer: Option<InstallerState>,
    services: Vec<ServiceInfo>,
    /// Status reports to each update server; absent from an agent that
    /// does not report yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    reporting: Option<Vec<ReportingState>>,
}

pub fn run(agent: &Target, json: bool, brief: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let system = session.system_info()?;
        let installer = installer_state(session)?;
        let status = exit_status(&system);
        if brief {
            write_brief(&system, installer.as_ref(), out)?;
            return Ok(status);
        }
        let services = session.create_update_service_manager().services()?;
        let reporting = missing_as_none(session.reporting_state())?;
        let status_report = Status {
            system,
            installer,
            services,
            reporting,
        };
        if json {
            serde_json::to_writer_pretty(&mut *out, &status_report)?;
            writeln!(out)?;
        } else {
            write_text(&status_report, out)?;
        }
        Ok(status)
    })
}

/// Scripts learn of a pending restart from the exit status alone.
fn exit_status(system: &SystemInfo) -> u8 {
    if system.reboot_required {
        exit::RESTART_PENDING
    } else {
        exit::SUCCESS
    }
}

/// `--brief`, for a login message: a line for a pending restart and one for
/// updates waiting for an administrator at a terminal, nothing when neither
/// holds. Counts only, no catalog text: it is printed to every login.
fn write_brief(
    system: &SystemInfo,
    installer: Option<&InstallerState>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let pending = installer.map_or(0, |state| state.reboot_pending_updates.len());
    let restart_first = installer.is_some_and(|state| state.reboot_required_before_installation);
    if system.reboot_required || restart_first || pending > 0 {
        match pending {
            0 => writeln!(out, "OpenWUA: a restart is pending.")?,
            count => writeln!(
                out,
                "OpenWUA: restart this machine to finish {count} update{}.",
                plural(count)
            )?,
        }
    }
    let waiting = installer.map_or(0, |state| state.awaiting_interactive_user.len());
    if waiting > 0 {
        writeln!(
            out,
            "OpenWUA: {waiting} update{} that may ask questions wait{} for an administrator \
             at a terminal: `wua status` lists them.",
            plural(waiting),
            if waiting == 1 { "s" } else { "" },
        )?;
    }
    Ok(())
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// The installer's state, or `None` from an agent without the method.
fn installer_state(session: &UpdateSession) -> Result<Option<InstallerState>, ClientError> {
    missing_as_none(session.installer_state())
}

/// A method's answer, or `None` from an older agent without the method.
fn missing_as_none<T>(answer: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match answer {
        Ok(state) => Ok(Some(state)),
        Err(ClientError::Varlink { error, .. })
            if error == "org.varlink.service.MethodNotFound" =>
        {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn write_text(status: &Status, out: &mut dyn Write) -> std::io::Result<()> {
    let system = &status.system;
    let default = match system.default_service_id {
        Some(id) => match status
            .services
            .iter()
            .find(|service| service.service_id == id)
        {
            Some(service) => format!("{id} ({})", service.name),
            None => id.to_string(),
        },
        None => "none".to_owned(),
    };
    writeln!(
        out,
        "Agent             wua-agent {} (protocol {})",
        system.agent_version, system.protocol_version
    )?;
    writeln!(
        out,
        "Restart required  {}",
        if system.reboot_required {
            "yes: restart this machine to finish the updates waiting for it"
        } else {
            "no"
        }
    )?;
    if let Some(installer) = &status.installer {
        let busy = match (installer.is_busy, installer.busy_job_id) {
            (true, Some(job)) => format!("busy (job {job})"),
            (true, None) => "busy".to_owned(),
            (false, _) => "idle".to_owned(),
        };
        writeln!(out, "Installer         {busy}")?;
        writeln!(
            out,
            "Restart first     {}",
            if installer.reboot_required_before_installation {
                "yes: restart before the next installation"
            } else {
                "no"
            }
        )?;
        match installer.reboot_pending_updates.as_slice() {
            [] => writeln!(out, "Awaiting restart  none")?,
            pending => {
                let count = pending.len();
                let plural = if count == 1 { "" } else { "s" };
                writeln!(out, "Awaiting restart  {count} update{plural}:")?;
                for id in pending {
                    writeln!(out, "                  {id}")?;
                }
            }
        }
        write_awaiting_interactive_user(&installer.awaiting_interactive_user, out)?;
    }
    writeln!(out, "Default service   {default}")?;
    writeln!(out, "Updates known     {}", system.update_count)?;
    writeln!(out, "History entries   {}", system.history_count)?;
    writeln!(out)?;
    services::write_table(&status.services, out)?;
    if let Some(reporting) = status.reporting.as_deref().filter(|list| !list.is_empty()) {
        writeln!(out)?;
        write_reporting(reporting, &status.services, out)?;
    }
    Ok(())
}

/// Per update server: what it acknowledged, what waits, what went wrong.
fn write_reporting(
    reporting: &[ReportingState],
    services: &[ServiceInfo],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "Status reports")?;
    for state in reporting {
        let name = services
            .iter()
            .find(|service| service.service_id == state.service_id)
            .map_or_else(
                || state.service_id.to_string(),
                |service| text::line(&service.name).into_owned(),
            );
        let sent = state.last_sent.map_or_else(
            || "never".to_owned(),
            |time| format!("{} UTC", table::time(time)),
        );
        writeln!(
            out,
            "  {name}: acknowledged {}, {} queued, last sent {sent}",
            state.acknowledged, state.queued
        )?;
        if let Some(error) = &state.last_error {
            let when = state
                .last_error_time
                .map(|time| format!(" ({} UTC)", table::time(time)))
                .unwrap_or_default();
            writeln!(out, "    last error{when}: {}", text::line(error))?;
        }
        if let Some(next) = state.next_attempt {
            writeln!(out, "    next attempt {} UTC", table::time(next))?;
        }
    }
    Ok(())
}

/// Updates refused for want of an interactive user, so the next
/// administrator at a terminal sees what waits for them.
fn write_awaiting_interactive_user(
    waiting: &[HistoryEntry],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if waiting.is_empty() {
        return writeln!(out, "Awaiting user     none");
    }
    let count = waiting.len();
    let plural = if count == 1 { "" } else { "s" };
    writeln!(
        out,
        "Awaiting user     {count} update{plural} waiting for an interactive user: they may ask \
         questions, so run them from an administrator's own login (see `wua context`):"
    )?;
    for entry in waiting {
        writeln!(
            out,
            "                  {} {} ({}, refused {} UTC)",
            entry.update_identity.update_id,
            text::line(&entry.title),
            match entry.operation {
                UpdateOperation::Installation => "install",
                UpdateOperation::Uninstallation => "uninstall",
            },
            table::time(entry.date),
        )?;
    }
    Ok(())
}
