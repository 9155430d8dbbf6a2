//! `wua search`: the updates that match WUA criteria, as a table or JSON.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use openwua_client::SearchResult;
use openwua_model::criteria::Criteria;
use openwua_model::enums::{OperationResultCode, ServerSelection};
use openwua_model::search::UpdateEntry;
use openwua_model::service::ServiceKind;
use std::collections::HashSet;
use uuid::Uuid;

use crate::agent::Target;
use crate::args::SearchArgs;
use crate::table::{self, Align, Table};
use crate::text;
use crate::{criteria_check, exit};

/// What each letter of the STATE column means, in its order.
const STATE_LEGEND: &str = "State: I installed, D downloaded, H hidden, E licence to accept,\n       \
                            R restart pending, U may ask the user during installation";

pub fn run(agent: &Target, args: &SearchArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let bytes = args.criteria.as_bytes();
    // Checked here first, so a mistake gets the caret under it and needs
    // no agent; the agent checks them again.
    if let Err(error) = Criteria::parse_bytes(bytes) {
        eprintln!("{}", criteria_check::render_error(bytes, &error));
        return Ok(exit::INVALID);
    }
    let criteria = std::str::from_utf8(bytes).context("the criteria are not UTF-8")?;
    agent.run(|session| {
        let mut searcher = session.create_update_searcher();
        if let Some(service) = args.service {
            searcher.server_selection = ServerSelection::Others;
            searcher.service_id = Some(service);
        }
        searcher.online = args.online;
        searcher.include_potentially_superseded_updates = args.include_superseded;
        let result = searcher.search(criteria)?;
        for warning in &result.warnings {
            eprintln!("wua: warning: {}", warning.hresult);
            eprintln!("  {}", text::line(&warning.message));
        }
        if args.json {
            serde_json::to_writer_pretty(&mut *out, &result)?;
            writeln!(out)?;
        } else {
            // Which results come from apt services: their KB column names
            // the source package and version.
            let apt_services: HashSet<Uuid> = session
                .create_update_service_manager()
                .services()?
                .into_iter()
                .filter(|service| service.kind == ServiceKind::Apt)
                .map(|service| service.service_id)
                .collect();
            write_text(&result, &apt_services, out)?;
        }
        Ok(exit::SUCCESS)
    })
}

fn write_text(
    result: &SearchResult,
    apt_services: &HashSet<Uuid>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if result.result_code != OperationResultCode::Succeeded {
        writeln!(out, "The search ended {:?}.", result.result_code)?;
    }
    if result.updates.is_empty() {
        writeln!(out, "No updates match.")?;
        return Ok(());
    }
    let mut table = Table::new(
        &[
            ("KB", Align::Left),
            ("TITLE", Align::Left),
            ("TYPE", Align::Left),
            ("SEVERITY", Align::Left),
            ("SIZE", Align::Right),
            ("STATE", Align::Left),
        ],
        1,
    );
    for entry in &result.updates {
        let entry = entry?;
        let update = &entry.update;
        let severity = update
            .msrc_severity
            .map_or_else(|| "-".to_owned(), |severity| format!("{severity:?}"));
        table.row(
            vec![
                kb(entry, apt_services.contains(&entry.service_id)),
                update.title.clone(),
                format!("{:?}", update.update_type),
                severity,
                table::size(update.max_download_size),
                state(entry),
            ],
            Some(update.identity.update_id.to_string()),
        );
    }
    table.write(out)?;
    let count = result.updates.len();
    writeln!(
        out,
        "\n{count} update{}.",
        if count == 1 { "" } else { "s" }
    )?;
    writeln!(out, "{STATE_LEGEND}")?;
    Ok(())
}

/// The first security bulletin, else the first KB article and how many
/// more there are, else for an apt update `<source>/<version>` (its title
/// is `<source> <version>`).
fn kb(entry: &UpdateEntry, from_apt: bool) -> String {
    let update = &entry.update;
    if let Some(bulletin) = update.security_bulletin_ids.first() {
        return bulletin.clone();
    }
    match update.kb_article_ids.as_slice() {
        [] if from_apt => update.title.replacen(' ', "/", 1),
        [] => "-".to_owned(),
        [only] => format!("KB{only}"),
        [first, rest @ ..] => format!("KB{first} +{}", rest.len()),
    }
}

/// One letter per fact, `-` where it does not hold, in [`STATE_LEGEND`]'s order.
fn state(entry: &UpdateEntry) -> String {
    let state = &entry.state;
    let update = &entry.update;
    [
        (state.is_installed, 'I'),
        (state.is_downloaded, 'D'),
        (state.is_hidden, 'H'),
        // The agent counts an update without licence terms as accepted.
        (!state.eula_accepted, 'E'),
        (state.reboot_required, 'R'),
        (update.installation_behavior.can_request_user_input, 'U'),
    ]
    .iter()
    .map(|&(holds, letter)| if holds { letter } else { '-' })
    .collect()
}
