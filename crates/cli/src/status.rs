//! `wua status`: the agent, the machine's update state and the services.

use std::io::Write;

use openwua_model::history::SystemInfo;
use openwua_model::service::ServiceInfo;
use serde::Serialize;

use crate::agent::Target;
use crate::{exit, services};

/// `--json`: the system information with the services beside it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(flatten)]
    system: SystemInfo,
    services: Vec<ServiceInfo>,
}

pub fn run(agent: &Target, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let system = session.system_info()?;
        let services = session.create_update_service_manager().services()?;
        let status = Status { system, services };
        if json {
            serde_json::to_writer_pretty(&mut *out, &status)?;
            writeln!(out)?;
        } else {
            write_text(&status, out)?;
        }
        Ok(exit::SUCCESS)
    })
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
        if system.reboot_required { "yes" } else { "no" }
    )?;
    writeln!(out, "Default service   {default}")?;
    writeln!(out, "Updates known     {}", system.update_count)?;
    writeln!(out, "History entries   {}", system.history_count)?;
    writeln!(out)?;
    services::write_table(&status.services, out)
}
