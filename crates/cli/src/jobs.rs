//! `wua jobs`, `wua watch` and `wua abort`: the agent's download, install
//! and uninstall jobs, which run on whether or not anyone watches.

use std::collections::HashMap;
use std::io::Write;

use openwua_model::operation::JobInfo;
use uuid::Uuid;

use crate::agent::Target;
use crate::exit;
use crate::operation;
use crate::progress::Progress;
use crate::table::{self, Align, Table};

pub fn list(agent: &Target, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let jobs = session.jobs()?;
        if json {
            operation::write_json(&jobs, out)?;
        } else {
            write_table(&jobs, out)?;
        }
        Ok(exit::SUCCESS)
    })
}

fn write_table(jobs: &[JobInfo], out: &mut dyn Write) -> std::io::Result<()> {
    if jobs.is_empty() {
        return writeln!(out, "No jobs.");
    }
    // The ID goes in the note: too long for a column, and never cut.
    let mut table = Table::new(
        &[
            ("STARTED (UTC)", Align::Left),
            ("KIND", Align::Left),
            ("STATE", Align::Left),
            ("UPDATES", Align::Right),
            ("RESULT", Align::Left),
        ],
        4,
    );
    for job in jobs {
        let result = job.result.as_ref().map_or_else(
            || "-".to_owned(),
            |result| format!("{:?}", result.result_code),
        );
        table.row(
            vec![
                table::time(job.started),
                format!("{:?}", job.kind),
                format!("{:?}", job.state),
                job.update_ids.len().to_string(),
                result,
            ],
            Some(format!("job {}", job.job_id)),
        );
    }
    table.write(out)
}

pub fn watch(agent: &Target, id: Uuid, json: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        // The titles first: the session is taken while the job streams.
        let update_ids = session
            .jobs()?
            .into_iter()
            .find(|job| job.job_id == id)
            .map(|job| job.update_ids)
            .unwrap_or_default();
        let titles: HashMap<Uuid, String> = update_ids
            .into_iter()
            .filter_map(|update_id| {
                // An update gone from the catalog is shown by its ID.
                let details = session.get_update(update_id).ok()?;
                Some((update_id, details.entry.update.title))
            })
            .collect();
        let mut progress = Progress::new(titles);
        let job = session.watch_job(id, |job| progress.show(job))?;
        drop(progress);
        operation::report(&job, json, out)
    })
}

pub fn abort(agent: &Target, id: Uuid, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        session.abort_job(id)?;
        writeln!(
            out,
            "Asked job {id} to stop before its next update; `wua watch {id}` follows it to its end."
        )?;
        Ok(exit::SUCCESS)
    })
}
