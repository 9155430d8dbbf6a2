//! `wua auto`: Automatic Updates (`IAutomaticUpdates`) — its settings,
//! schedule, the updates it looks after and the agent's restarts.

use std::io::Write;

use jiff::{SignedDuration, Timestamp};
use openwua_client::SetAutomaticUpdatesParameters;
use openwua_model::automatic::{AutomaticUpdatesState, RestartOutcome};
use openwua_model::enums::{AutomaticUpdatesScheduledInstallationDay as Day, WuaEnum};

use crate::agent::Target;
use crate::args::{AutoCommand, AutoSetArgs};
use crate::exit;
use crate::table::{self, Align, Table};
use crate::text;

pub fn run(agent: &Target, command: AutoCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let (state, json) = match command {
            AutoCommand::Show { json } => (session.automatic_updates()?, json),
            AutoCommand::Set(args) => (session.set_automatic_updates(&change(&args))?, args.json),
            AutoCommand::DetectNow => {
                session.detect_now()?;
                writeln!(
                    out,
                    "Detection started; `wua auto show` shows its date when it is done."
                )?;
                return Ok(exit::SUCCESS);
            }
            AutoCommand::Pause { until, days, json } => {
                let until = until.or_else(|| {
                    days.map(|days| {
                        (Timestamp::now() + SignedDuration::from_hours(i64::from(days) * 24))
                            .to_string()
                    })
                });
                (session.pause_automatic_updates(until)?, json)
            }
            AutoCommand::Resume { json } => (session.resume_automatic_updates()?, json),
        };
        if json {
            serde_json::to_writer_pretty(&mut *out, &state)?;
            writeln!(out)?;
        } else {
            write_text(&state, out)?;
        }
        Ok(exit::SUCCESS)
    })
}

fn change(args: &AutoSetArgs) -> SetAutomaticUpdatesParameters {
    SetAutomaticUpdatesParameters {
        notification_level: args.level.clone(),
        scheduled_installation_day: args.day.clone(),
        scheduled_installation_time: args.hour,
        include_recommended_updates: args.include_recommended,
        non_administrators_elevated: args.non_administrators_elevated,
    }
}

fn when(time: Option<Timestamp>) -> String {
    time.map_or_else(
        || "never".to_owned(),
        |time| format!("{} UTC", table::time(time)),
    )
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn write_text(state: &AutomaticUpdatesState, out: &mut dyn Write) -> std::io::Result<()> {
    let settings = &state.settings;
    let level = settings.notification_level;
    writeln!(
        out,
        "Notification level      {} ({})",
        level.wua_name(),
        level.value()
    )?;
    let day = match settings.scheduled_installation_day {
        Day::EveryDay => "every day".to_owned(),
        day => format!("every {}", day.wua_name().trim_start_matches("ausidEvery")),
    };
    writeln!(
        out,
        "Scheduled installation  {day} at {:02}:00 (the agent's time zone)",
        settings.scheduled_installation_time
    )?;
    writeln!(
        out,
        "Recommended updates     {}",
        if settings.include_recommended_updates {
            "included"
        } else {
            "not included"
        }
    )?;
    writeln!(
        out,
        "Non-administrators      {}",
        if settings.non_administrators_elevated {
            "may install from their own login (NonAdministratorsElevated)"
        } else {
            "may not install"
        }
    )?;
    if let Some(until) = state.paused_until {
        writeln!(out, "Paused until            {}", when(Some(until)))?;
    }
    writeln!(
        out,
        "Last detection          {}",
        when(state.results.last_search_success_date)
    )?;
    if let Some(next) = state.next_detection {
        writeln!(out, "Next detection          {}", when(Some(next)))?;
    }
    writeln!(
        out,
        "Last installation       {}",
        when(state.results.last_installation_success_date)
    )?;
    if let Some(next) = state.next_scheduled_installation {
        writeln!(out, "Next installation       {}", when(Some(next)))?;
    }
    let restart = &state.restart;
    writeln!(out, "Restart policy          {}", restart.policy)?;
    writeln!(out, "Restart pending         {}", yes_no(restart.pending))?;
    if let Some(at) = restart.scheduled_for {
        writeln!(out, "Restart planned         {}", when(Some(at)))?;
    }
    if let Some(deadline) = restart.deadline {
        writeln!(
            out,
            "Restart by              {} (a deadline)",
            when(Some(deadline))
        )?;
    }
    if !restart.held_by_users.is_empty() {
        writeln!(
            out,
            "Restart held back by    {} (logged in)",
            text::line(&restart.held_by_users.join(", "))
        )?;
    }
    if !state.pending_updates.is_empty() {
        writeln!(out)?;
        writeln!(out, "Updates it looks after")?;
        let mut updates = Table::new(
            &[
                ("ID", Align::Left),
                ("TITLE", Align::Left),
                ("DEADLINE", Align::Left),
                ("DOWNLOADED", Align::Left),
            ],
            1,
        );
        for update in &state.pending_updates {
            updates.row(
                vec![
                    update.update_id.to_string(),
                    update.title.clone(),
                    update.deadline.map_or_else(|| "-".to_owned(), table::time),
                    yes_no(update.is_downloaded).to_owned(),
                ],
                update.may_ask.then(|| {
                    "may ask questions: installed only by an administrator at a terminal".to_owned()
                }),
            );
        }
        updates.write(out)?;
    }
    if !state.awaiting_interactive_user.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Waiting for an administrator at a terminal (`wua install` there)"
        )?;
        for entry in &state.awaiting_interactive_user {
            writeln!(
                out,
                "  {}  {}",
                entry.update_identity.update_id,
                text::line(&entry.title)
            )?;
        }
    }
    if !restart.history.is_empty() {
        writeln!(out)?;
        writeln!(out, "Restarts")?;
        let mut restarts = Table::new(
            &[
                ("REQUESTED", Align::Left),
                ("OUTCOME", Align::Left),
                ("REASON", Align::Left),
            ],
            2,
        );
        for record in &restart.history {
            let outcome = match record.outcome {
                RestartOutcome::Requested => "requested",
                RestartOutcome::Confirmed => "done (new boot)",
                RestartOutcome::Failed => "failed",
                RestartOutcome::NotRestarted => "did not happen",
            };
            restarts.row(
                vec![
                    table::time(record.requested),
                    outcome.to_owned(),
                    record.reason.clone(),
                ],
                record.detail.clone(),
            );
        }
        restarts.write(out)?;
    }
    Ok(())
}
