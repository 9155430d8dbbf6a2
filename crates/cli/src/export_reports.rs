//! `wua export-reports`: the machine's status report for an offline scan
//! package service (one `wua-server export` wrote), for a disconnected
//! site's administrator to carry to the server's `wua-server
//! import-reports`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use uuid::Uuid;

use crate::agent::Target;
use crate::exit;

pub fn run(
    agent: &Target,
    service: Option<Uuid>,
    output: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    agent.run(|session| {
        let document = session.export_reports(service)?;
        match output {
            None => writeln!(out, "{document}")?,
            Some(path) => {
                // Whole or not at all: written beside, then renamed.
                let mut text = document.into_bytes();
                text.push(b'\n');
                let temp = path.with_extension("tmp-export-reports");
                std::fs::write(&temp, &text)
                    .with_context(|| format!("writing {}", temp.display()))?;
                std::fs::rename(&temp, path).with_context(|| {
                    format!("renaming {} to {}", temp.display(), path.display())
                })?;
                writeln!(
                    out,
                    "wrote {}; import it on the update server with: wua-server import-reports {}",
                    path.display(),
                    path.display()
                )?;
            }
        }
        Ok(exit::SUCCESS)
    })
}
