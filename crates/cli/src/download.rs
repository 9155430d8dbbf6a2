//! `wua download`: fetches updates' content into the agent's cache, with
//! progress, then the result per update.

use std::io::Write;

use crate::agent::Target;
use crate::args::DownloadArgs;
use crate::operation;

pub fn run(agent: &Target, args: &DownloadArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        let entries = operation::chosen(session, &args.ids, args.all)?;
        if entries.is_empty() {
            return operation::nothing_to_do("download", args.json, out);
        }
        let job = operation::download(session, &entries, args.priority.into(), args.force)?;
        operation::report(&job, args.json, out)
    })
}
