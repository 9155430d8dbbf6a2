//! `wua-server rules …` and `wua-server rollouts …`: automatic approval
//! rules and staged rollouts, through the admin API.

use anyhow::Context;
use clap::Subcommand;
use openwua_model::update::MsrcSeverity;
use openwua_server::fleet::ApprovalAction;
use openwua_server::rollouts::{Ring, Rollout, RolloutPlan};
use openwua_server::rules::ApprovalRule;
use openwua_server::rules_api::{RolloutStatus, RunRequest};

use super::ServerArgs;

#[derive(Subcommand)]
pub(crate) enum RulesCommand {
    /// Adds an automatic approval rule (or replaces the one of that name).
    /// Every criterion given must hold; a list matches any of its names.
    Add {
        /// Its name.
        name: String,
        /// A group to approve for (repeatable; at least one).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// A classification name, e.g. "Security Updates" (repeatable).
        #[arg(long = "classification")]
        classifications: Vec<String>,
        /// A product, product family or company name, e.g. bookworm
        /// (repeatable).
        #[arg(long = "product")]
        products: Vec<String>,
        /// An MSRC severity: critical, important, moderate or low
        /// (repeatable).
        #[arg(long = "severity")]
        severities: Vec<String>,
        /// A glob (`*`, `?`) the title must match.
        #[arg(long)]
        title: Option<String>,
        /// A glob the source (the `Product` category: a Debian update's
        /// source package) must match.
        #[arg(long)]
        source: Option<String>,
        /// install or uninstall.
        #[arg(long, default_value = "install")]
        action: String,
        /// The deadline after the rule approves: 3d, 12h (hours at least).
        #[arg(long)]
        deadline_offset: Option<String>,
        /// New revisions of known updates are not evaluated, only new
        /// updates.
        #[arg(long)]
        no_new_revisions: bool,
        /// Added disabled: it fires at no publish, and runs only by name.
        #[arg(long)]
        disabled: bool,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every rule.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One rule, as JSON.
    Show {
        /// Its name.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Removes a rule; the approvals it gave stay.
    Remove {
        /// Its name.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Runs a rule (or every enabled rule) over the updates held now.
    Run {
        /// The rule; every enabled rule when absent.
        name: Option<String>,
        /// Lists what would be approved, approving nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum RolloutsCommand {
    /// Starts a staged rollout of an update: ring by ring, each after the
    /// one before soaked and reported well.
    Start {
        /// The update's ID.
        update_id: String,
        /// A ring, in order: `[PERCENT%:]SOAK:GROUP`, e.g. `1h:Canary`,
        /// `10%:1d:All Computers` (SOAK: 30s, 15m, 1h, 2d).
        #[arg(long = "ring", required = true)]
        rings: Vec<String>,
        /// The highest failure rate (percent of results) that still goes on.
        #[arg(long, default_value_t = 10)]
        max_failure_percent: u8,
        /// Results needed before a ring advances or the rollout halts.
        #[arg(long, default_value_t = 1)]
        min_reported: u32,
        /// The approvals' deadline (RFC 3339).
        #[arg(long)]
        deadline: Option<String>,
        /// Prints the rollout as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every rollout, with its progress.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One rollout: its rings, progress and why it halted.
    Show {
        /// The update's ID.
        update_id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Halts a running rollout.
    Halt {
        /// The update's ID.
        update_id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Resumes a halted rollout; its ring soaks again from now.
    Resume {
        /// The update's ID.
        update_id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Seconds in `30s`, `15m`, `1h`, `2d` (or a bare number of seconds).
fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let (number, unit) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => (&text[..at], unit),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => anyhow::bail!("{text:?}: a duration ends in s, m, h or d"),
    };
    let number: u64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 30s, 15m, 1h or 2d"))?;
    number
        .checked_mul(scale)
        .with_context(|| format!("{text:?} is too long"))
}

/// `[PERCENT%:]SOAK:GROUP`.
fn parse_ring(text: &str) -> anyhow::Result<Ring> {
    let usage = || format!("--ring {text:?} is not [PERCENT%:]SOAK:GROUP");
    let (percent, rest) = match text.split_once("%:") {
        Some((percent, rest)) if percent.bytes().all(|b| b.is_ascii_digit()) => {
            (percent.parse::<u8>().with_context(usage)?, rest)
        }
        _ => (100, text),
    };
    let (soak, group) = rest.split_once(':').with_context(usage)?;
    Ok(Ring {
        group: group.to_owned(),
        percent,
        soak_secs: parse_duration(soak).with_context(usage)?,
    })
}

fn severity(text: &str) -> anyhow::Result<MsrcSeverity> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "critical" => MsrcSeverity::Critical,
        "important" => MsrcSeverity::Important,
        "moderate" => MsrcSeverity::Moderate,
        "low" => MsrcSeverity::Low,
        _ => anyhow::bail!("--severity is critical, important, moderate or low, not {text:?}"),
    })
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn rules(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Add {
            name,
            groups,
            classifications,
            products,
            severities,
            title,
            source,
            action,
            deadline_offset,
            no_new_revisions,
            disabled,
            json,
            server,
        } => {
            let action = ApprovalAction::parse(&action)
                .filter(|action| *action != ApprovalAction::NotApproved)
                .with_context(|| format!("--action is install or uninstall, not {action:?}"))?;
            let deadline_offset_hours = deadline_offset
                .map(|text| {
                    let hours = parse_duration(&text)? / 3600;
                    u32::try_from(hours).with_context(|| format!("{text:?} is too long"))
                })
                .transpose()?;
            let rule = ApprovalRule {
                name,
                classifications,
                products,
                severities: severities
                    .iter()
                    .map(|text| severity(text))
                    .collect::<anyhow::Result<_>>()?,
                title_pattern: title,
                source_pattern: source,
                groups,
                action,
                deadline_offset_hours,
                new_revisions: !no_new_revisions,
                enabled: !disabled,
            };
            let report = server.client(true)?.add_rule(&rule)?;
            if json {
                return print_json(&report);
            }
            let verb = if report.changed { "added" } else { "replaced" };
            println!("{verb} rule {:?}", report.name);
            Ok(())
        }
        RulesCommand::List { json, server } => {
            let rules = server.client(true)?.list_rules()?;
            if json {
                return print_json(&rules);
            }
            println!(
                "{:<24}  {:<8}  {:<9}  {:<32}  MATCHES",
                "RULE", "ENABLED", "ACTION", "GROUPS"
            );
            for rule in &rules {
                let mut matches = Vec::new();
                if !rule.classifications.is_empty() {
                    matches.push(rule.classifications.join("|"));
                }
                if !rule.products.is_empty() {
                    matches.push(format!("product {}", rule.products.join("|")));
                }
                if !rule.severities.is_empty() {
                    let names: Vec<String> =
                        rule.severities.iter().map(|s| format!("{s:?}")).collect();
                    matches.push(names.join("|"));
                }
                if let Some(pattern) = &rule.title_pattern {
                    matches.push(format!("title {pattern}"));
                }
                if let Some(pattern) = &rule.source_pattern {
                    matches.push(format!("source {pattern}"));
                }
                if let Some(hours) = rule.deadline_offset_hours {
                    matches.push(format!("deadline +{hours}h"));
                }
                println!(
                    "{:<24}  {:<8}  {:<9}  {:<32}  {}",
                    rule.name,
                    if rule.enabled { "yes" } else { "no" },
                    rule.action.as_str(),
                    rule.groups.join(", "),
                    if matches.is_empty() {
                        "everything".to_owned()
                    } else {
                        matches.join(", ")
                    }
                );
            }
            Ok(())
        }
        RulesCommand::Show { name, server } => print_json(&server.client(true)?.show_rule(&name)?),
        RulesCommand::Remove { name, server } => {
            server.client(true)?.remove_rule(&name)?;
            println!("removed rule {name:?}");
            Ok(())
        }
        RulesCommand::Run {
            name,
            dry_run,
            json,
            server,
        } => {
            let run = server.client(true)?.run_rules(&RunRequest {
                rule: name,
                dry_run,
            })?;
            if json {
                return print_json(&run);
            }
            println!(
                "{:<24}  {:<36}  {:<9}  GROUP",
                "RULE", "UPDATE ID", "ACTION"
            );
            for line in &run.approvals {
                println!(
                    "{:<24}  {:<36}  {:<9}  {}",
                    line.rule,
                    line.update_id,
                    line.action.as_str(),
                    line.group
                );
            }
            let verb = if run.dry_run { "would give" } else { "gave" };
            println!(
                "{} updates looked at; {verb} {} approvals; catalog version {}",
                run.updates,
                run.approvals.len(),
                run.catalog_version
            );
            Ok(())
        }
    }
}

fn print_rollout(status: &RolloutStatus) {
    let rollout = &status.rollout;
    println!(
        "{}  {}  ring {} of {}  since {}",
        rollout.update_id,
        rollout.state.as_str(),
        rollout.stage + 1,
        rollout.plan.rings.len(),
        rollout.stage_started.strftime("%Y-%m-%d %H:%M:%S")
    );
    for (index, ring) in rollout.plan.rings.iter().enumerate() {
        let mark = if index as u32 <= rollout.stage {
            "admitted"
        } else {
            "waiting"
        };
        println!(
            "  ring {}: {}% of {:?}, soak {} s ({mark})",
            index + 1,
            ring.percent,
            ring.group,
            ring.soak_secs
        );
    }
    let progress = &status.progress;
    println!(
        "  revision {}: {} computers admitted, {} reported, {} failed (at most {}% may fail; {} results needed)",
        status.revision,
        progress.computers,
        progress.reported,
        progress.failed,
        rollout.plan.max_failure_percent,
        rollout.plan.min_reported
    );
    if let Some(halt) = &rollout.halt {
        println!(
            "  halted {}: {}",
            halt.time.strftime("%Y-%m-%d %H:%M:%S"),
            halt.message
        );
        for code in &halt.codes {
            println!(
                "    {} {}: {} computers",
                code.hresult,
                code.name.as_deref().unwrap_or("-"),
                code.computers
            );
        }
    }
}

pub(crate) fn rollouts(command: RolloutsCommand) -> anyhow::Result<()> {
    match command {
        RolloutsCommand::Start {
            update_id,
            rings,
            max_failure_percent,
            min_reported,
            deadline,
            json,
            server,
        } => {
            let plan = RolloutPlan {
                rings: rings
                    .iter()
                    .map(|text| parse_ring(text))
                    .collect::<anyhow::Result<_>>()?,
                max_failure_percent,
                min_reported,
                deadline: deadline
                    .map(|text| {
                        text.parse::<jiff::Timestamp>()
                            .with_context(|| format!("--deadline {text:?} is not RFC 3339"))
                    })
                    .transpose()?,
            };
            let rollout: Rollout = server.client(true)?.start_rollout(&update_id, &plan)?;
            if json {
                return print_json(&rollout);
            }
            println!(
                "rollout of {} started: ring 1 of {}",
                rollout.update_id,
                rollout.plan.rings.len()
            );
            Ok(())
        }
        RolloutsCommand::List { json, server } => {
            let list = server.client(true)?.list_rollouts()?;
            if json {
                return print_json(&list);
            }
            for status in &list {
                print_rollout(status);
            }
            Ok(())
        }
        RolloutsCommand::Show {
            update_id,
            json,
            server,
        } => {
            let status = server.client(true)?.show_rollout(&update_id)?;
            if json {
                return print_json(&status);
            }
            print_rollout(&status);
            Ok(())
        }
        RolloutsCommand::Halt {
            update_id,
            json,
            server,
        } => moved(&server, &update_id, "halt", json),
        RolloutsCommand::Resume {
            update_id,
            json,
            server,
        } => moved(&server, &update_id, "resume", json),
    }
}

fn moved(server: &ServerArgs, update_id: &str, verb: &str, json: bool) -> anyhow::Result<()> {
    let status = server.client(true)?.move_rollout(update_id, verb)?;
    if json {
        return print_json(&status);
    }
    print_rollout(&status);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_and_durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert!(parse_duration("1w").is_err());
        let ring = parse_ring("10%:1h:All Computers").unwrap();
        assert_eq!((ring.percent, ring.soak_secs), (10, 3600));
        assert_eq!(ring.group, "All Computers");
        let ring = parse_ring("0s:Web: front").unwrap();
        assert_eq!((ring.percent, ring.group.as_str()), (100, "Web: front"));
        assert!(parse_ring("Canary").is_err());
    }
}
