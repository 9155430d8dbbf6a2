//! `wua eula show` and `wua eula accept`: an update's licence terms.

use std::io::Write;

use crate::agent::Target;
use crate::args::EulaCommand;
use crate::exit;
use crate::text;

pub fn run(agent: &Target, command: EulaCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    agent.run(|session| {
        match command {
            EulaCommand::Show { id } => {
                let entry = session.get_update(id)?.entry;
                let update = &entry.update;
                match &update.eula_text {
                    Some(text) => {
                        writeln!(out, "{}", text::paragraphs(text))?;
                        if !entry.state.eula_accepted {
                            eprintln!("wua: to accept these terms: wua eula accept {id}");
                        }
                    }
                    None => writeln!(
                        out,
                        "{} has no licence terms to accept.",
                        text::line(&update.title)
                    )?,
                }
            }
            EulaCommand::Accept { id } => {
                session.accept_eula(id)?;
                writeln!(out, "Accepted the licence terms of {id}.")?;
            }
        }
        Ok(exit::SUCCESS)
    })
}
