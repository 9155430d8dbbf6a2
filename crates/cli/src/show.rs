//! `wua show`: everything the agent knows about one update.

use std::io::Write;

use openwua_model::search::{ApplicabilityReport, AptUpdateDetails, UpdateEntry};
use openwua_model::update::InstallationBehavior;
use uuid::Uuid;

use crate::agent::Target;
use crate::exit;
use crate::table;
use crate::text;

pub fn run(agent: &Target, id: Uuid, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let details = session.get_update(id)?;
        if json {
            serde_json::to_writer_pretty(&mut *out, &details)?;
            writeln!(out)?;
        } else {
            write_text(&details.entry, &details.applicability, out)?;
            if let Some(apt) = &details.apt {
                write_apt(apt, out)?;
            }
        }
        Ok(exit::SUCCESS)
    })
}

/// Whether searches here see it, and why not.
fn applies_here(applicability: &ApplicabilityReport) -> String {
    match (
        &applicability.reason,
        applicability.superseded_by.as_slice(),
    ) {
        (Some(reason), _) => format!("no: {reason}"),
        (None, []) => "yes".to_owned(),
        (None, superseding) => {
            let ids: Vec<String> = superseding.iter().map(Uuid::to_string).collect();
            format!(
                "superseded by {} (searches leave it out unless they include superseded updates)",
                ids.join(", ")
            )
        }
    }
}

fn write_text(
    entry: &UpdateEntry,
    applicability: &ApplicabilityReport,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let update = &entry.update;
    let state = &entry.state;
    // Every value may hold catalog text.
    let mut field = |name: &str, value: &str| writeln!(out, "{name:<18}{}", text::line(value));

    field("Title", &update.title)?;
    field("Update ID", &update.identity.update_id.to_string())?;
    field("Revision", &update.identity.revision_number.to_string())?;
    field("Service", &entry.service_id.to_string())?;
    field("Applies here", &applies_here(applicability))?;
    field("Type", &format!("{:?}", update.update_type))?;
    field("Deployment", &format!("{:?}", update.deployment_action))?;
    let kbs: Vec<String> = update
        .kb_article_ids
        .iter()
        .map(|kb| format!("KB{kb}"))
        .collect();
    field("KB articles", &list(&kbs))?;
    field(
        "Severity",
        &update
            .msrc_severity
            .map_or_else(|| "-".to_owned(), |severity| format!("{severity:?}")),
    )?;
    field("CVEs", &list(&update.cve_ids))?;
    field("Bulletins", &list(&update.security_bulletin_ids))?;
    let categories: Vec<String> = update
        .categories
        .iter()
        .map(|category| format!("{} ({})", category.name, category.category_type))
        .collect();
    field("Categories", &list(&categories))?;
    field("Support URL", update.support_url.as_deref().unwrap_or("-"))?;
    field(
        "Release notes",
        update.release_notes.as_deref().unwrap_or("-"),
    )?;
    field(
        "Deadline",
        &update.deadline.map_or_else(
            || "-".to_owned(),
            |deadline| format!("{} UTC", table::time(deadline)),
        ),
    )?;
    field("Mandatory", yes_no(update.is_mandatory))?;
    field("Browse only", yes_no(update.browse_only))?;
    field("Auto-select", yes_no(update.auto_select_on_web_sites))?;
    let superseded: Vec<String> = update
        .superseded_update_ids
        .iter()
        .map(Uuid::to_string)
        .collect();
    field("Supersedes", &list(&superseded))?;
    let bundled: Vec<String> = update
        .bundled_updates
        .iter()
        .map(ToString::to_string)
        .collect();
    field("Bundles", &list(&bundled))?;
    field("Installation", &behavior(&update.installation_behavior))?;
    field(
        "Uninstallation",
        &update
            .uninstallation_behavior
            .as_ref()
            .map_or_else(|| "not supported".to_owned(), behavior),
    )?;
    field(
        "Download size",
        &format!(
            "{} to {}",
            table::size(update.min_download_size),
            table::size(update.max_download_size)
        ),
    )?;
    let eula = match (&update.eula_text, state.eula_accepted) {
        (None, true) => "none".to_owned(),
        (Some(_), true) => "accepted".to_owned(),
        (_, false) => "not accepted yet (`wua eula show` prints them)".to_owned(),
    };
    field("Licence terms", &eula)?;
    let facts = [
        (state.is_installed, "installed"),
        (state.is_present, "present"),
        (state.is_downloaded, "downloaded"),
        (state.is_hidden, "hidden"),
        (state.is_assigned, "assigned"),
        (state.reboot_required, "restart pending"),
    ];
    let held: Vec<String> = facts
        .iter()
        .filter(|(holds, _)| *holds)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    field("State", &list(&held))?;

    writeln!(out, "Files")?;
    if update.download_contents.is_empty() {
        writeln!(out, "  -")?;
    }
    for file in &update.download_contents {
        writeln!(
            out,
            "  {}  {}",
            text::line(&file.file_name),
            table::size(file.size)
        )?;
        writeln!(out, "    sha256 {}", file.sha256)?;
    }
    if !update.description.is_empty() {
        writeln!(out, "Description")?;
        for line in update.description.lines() {
            writeln!(out, "  {}", text::line(line))?;
        }
    }
    Ok(())
}

/// An apt update's packages: the version installed here and the one it
/// brings, then its pockets and, once downloaded, its changelog's CVEs.
fn write_apt(apt: &AptUpdateDetails, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Packages")?;
    if apt.packages.is_empty() {
        writeln!(out, "  -")?;
    }
    for package in &apt.packages {
        writeln!(
            out,
            "  {}:{}  {} -> {}",
            text::line(&package.name),
            text::line(&package.architecture),
            text::line(
                package
                    .installed_version
                    .as_deref()
                    .unwrap_or("not installed")
            ),
            text::line(&package.version)
        )?;
    }
    if !apt.pockets.is_empty() {
        writeln!(
            out,
            "{:<18}{}",
            "Pockets",
            text::line(&apt.pockets.join(", "))
        )?;
    }
    let cves = if apt.cves.is_empty() {
        "- (the changelog is read once the packages are downloaded)".to_owned()
    } else {
        apt.cves.join(", ")
    };
    writeln!(out, "{:<18}{}", "Changelog CVEs", text::line(&cves))
}

fn behavior(behavior: &InstallationBehavior) -> String {
    format!(
        "{:?} impact, {:?}{}{}",
        behavior.impact,
        behavior.reboot_behavior,
        if behavior.can_request_user_input {
            ", may ask the user"
        } else {
            ""
        },
        if behavior.requires_network_connectivity {
            ", needs the network"
        } else {
            ""
        }
    )
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}
