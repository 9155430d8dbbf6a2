//! `wua services`: list, add, remove and choose the default update service.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use openwua_client::AddedService;
use openwua_client::blocking::UpdateSession;
use openwua_model::service::{ServiceInfo, ServiceKind};

use crate::agent::Target;
use crate::args::{AddPackageArgs, AddServerArgs, ServicesCommand};
use crate::table::{self, Align, Table};
use crate::text;
use crate::{exit, sync};

/// How a public key's text begins; anything else names a file holding it.
const KEY_PREFIX: &str = "ed25519:";

pub fn run(agent: &Target, command: ServicesCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    match command {
        ServicesCommand::List { json } => agent.run(|session| {
            let services = session.create_update_service_manager().services()?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &services)?;
                writeln!(out)?;
            } else {
                write_table(&services, out)?;
            }
            Ok(exit::SUCCESS)
        }),
        ServicesCommand::AddPackage(args) => {
            // Read before connecting: a wrong path is the user's to fix first.
            let key = public_key(&args.pubkey)?;
            agent.run(|session| add_package(session, &args, &key, out))
        }
        ServicesCommand::AddServer(args) => {
            let key = public_key(&args.pubkey)?;
            agent.run(|session| add_server(session, &args, &key, out))
        }
        ServicesCommand::AddApt(args) => agent.run(|session| {
            let added = session.create_update_service_manager().add_apt_service(
                args.name.as_deref(),
                args.apt_root.as_deref(),
                args.default,
            )?;
            write_added(&added, args.json, out)
        }),
        ServicesCommand::Remove { id } => agent.run(|session| {
            session.create_update_service_manager().remove_service(id)?;
            writeln!(out, "Removed {id}.")?;
            Ok(exit::SUCCESS)
        }),
        ServicesCommand::Default { id } => agent.run(|session| {
            session
                .create_update_service_manager()
                .set_default_service(id)?;
            writeln!(out, "{id} is the default service.")?;
            Ok(exit::SUCCESS)
        }),
    }
}

fn add_package(
    session: &UpdateSession,
    args: &AddPackageArgs,
    key: &str,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let added = session
        .create_update_service_manager()
        .add_scan_package_service(
            args.name.as_deref(),
            &args.file,
            key,
            args.default,
            args.content_base.as_deref(),
        )?;
    write_added(&added, args.json, out)
}

fn add_server(
    session: &UpdateSession,
    args: &AddServerArgs,
    key: &str,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let ca_pem = match &args.ca_file {
        Some(path) => Some(read_ca_file(path)?),
        None => None,
    };
    let added = session
        .create_update_service_manager()
        .add_server_service_with_ca(
            &args.url,
            key,
            args.group.as_deref(),
            args.name.as_deref(),
            args.default,
            ca_pem.as_deref(),
        )?;
    write_added(&added, args.json, out)
}

fn write_added(added: &AddedService, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    if json {
        serde_json::to_writer_pretty(&mut *out, added)?;
        writeln!(out)?;
    } else {
        let service = &added.service;
        writeln!(
            out,
            "Added {} ({}).",
            service.service_id,
            text::line(&service.name)
        )?;
        if service.is_default {
            writeln!(out, "It is the default service.")?;
        }
        writeln!(out, "Synced: {}.", sync::describe(&added.sync))?;
    }
    Ok(exit::SUCCESS)
}

/// The key as given, or read from the file it names.
fn public_key(argument: &OsStr) -> anyhow::Result<String> {
    if let Some(key) = argument
        .to_str()
        .filter(|text| text.starts_with(KEY_PREFIX))
    {
        return Ok(key.to_owned());
    }
    let path = Path::new(argument);
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--pubkey takes {KEY_PREFIX}<hex> or a file holding it; reading {}",
            path.display()
        )
    })?;
    Ok(text.trim().to_owned())
}

/// The services as a table, the default one marked, each with its source
/// and last sync beneath.
pub fn write_table(services: &[ServiceInfo], out: &mut dyn Write) -> std::io::Result<()> {
    if services.is_empty() {
        return writeln!(
            out,
            "No update services. Add one with `wua services add-server URL --pubkey KEY` \
             or `wua services add-package FILE --pubkey KEY`, or this machine's own Debian \
             repositories with `wua services add-apt`."
        );
    }
    let mut table = Table::new(
        &[
            ("SERVICE ID", Align::Left),
            ("NAME", Align::Left),
            ("DEFAULT", Align::Left),
            ("VERSION", Align::Right),
            ("UPDATES", Align::Right),
        ],
        1,
    );
    for service in services {
        let kind = match service.kind {
            _ if service.is_scan_package_service => "scan package",
            ServiceKind::Apt => "apt",
            ServiceKind::ScanPackage | ServiceKind::UpdateServer => "server",
        };
        let synced = service.last_sync.map_or_else(
            || "never synced".to_owned(),
            |time| format!("synced {} UTC", table::time(time)),
        );
        table.row(
            vec![
                service.service_id.to_string(),
                service.name.clone(),
                if service.is_default { "yes" } else { "" }.to_owned(),
                service
                    .catalog_version
                    .map_or_else(|| "-".to_owned(), |version| version.to_string()),
                service.update_count.to_string(),
            ],
            Some(format!("{kind} {}, {synced}", service.source)),
        );
    }
    table.write(out)
}

/// The CA file's text; the agent checks what it holds.
fn read_ca_file(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    const MAX: u64 = 64 * 1024;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX + 1).read_to_string(&mut text))
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX {
        anyhow::bail!("{}: a CA file is at most {MAX} bytes", path.display());
    }
    Ok(text)
}
