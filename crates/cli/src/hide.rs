//! `wua hide` and `wua unhide`: `IUpdate.IsHidden` for each update.

use std::io::Write;

use uuid::Uuid;

use crate::agent::Target;
use crate::exit;

pub fn run(agent: &Target, ids: &[Uuid], hidden: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        session.set_hidden(ids, hidden)?;
        let verb = if hidden { "Hidden" } else { "Unhidden" };
        for id in ids {
            writeln!(out, "{verb}: {id}")?;
        }
        Ok(exit::SUCCESS)
    })
}
