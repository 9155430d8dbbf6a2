//! `wua download`: fetches updates' content into the agent's cache, with
//! progress, then the result per update.

use std::io::Write;

use crate::agent::Target;
use crate::args::DownloadArgs;
use crate::exit;
use crate::operation;

pub fn run(agent: &Target, args: &DownloadArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let entries = operation::chosen(session, &args.ids, args.all)?;
        // Only `--all` can find nothing; the agent would refuse the empty
        // list with WU_E_NO_UPDATE, which is no failure here.
        if entries.is_empty() {
            if args.json {
                operation::write_json(&serde_json::Value::Null, out)?;
            } else {
                writeln!(out, "No updates to download.")?;
            }
            return Ok(exit::SUCCESS);
        }
        let job = operation::download(session, &entries, args.priority.into(), args.force)?;
        operation::report(&job, args.json, out)
    })
}
