//! Searches the agent for updates and prints them.
//!
//! ```sh
//! cargo run -p openwua-client --example search -- "IsInstalled=0 and Type='Software'"
//! ```
//!
//! The agent's socket is `$OPENWUA_SOCKET`, else `/run/openwua/agent.sock`.

use std::process::ExitCode;

use openwua_client::{ClientError, UpdateSession};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let criteria = std::env::args().nth(1).unwrap_or_default();
    match search(&criteria).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Every failure has a WUA code; its Display says what to do.
            eprintln!("{}", error.hresult());
            if let Some(detail) = error.detail() {
                eprintln!("  {detail}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn search(criteria: &str) -> Result<(), ClientError> {
    let mut session = UpdateSession::connect_default().await?;
    session.set_client_application_id("openwua-client example");
    let searcher = session.create_update_searcher();
    let result = searcher.search(criteria).await?;
    println!(
        "{:?}: {} updates (agent {})",
        result.result_code,
        result.updates.len(),
        session.agent_info().agent_version
    );
    for entry in &result.updates {
        let entry = entry?;
        let update = &entry.update;
        let kb = update
            .kb_article_ids
            .first()
            .map_or_else(|| "-".to_owned(), |id| format!("KB{id}"));
        println!(
            "{}  {kb}  {}{}",
            update.identity.update_id,
            update.title,
            if entry.state.is_hidden {
                " (hidden)"
            } else {
                ""
            }
        );
    }
    for warning in &result.warnings {
        eprintln!("warning: {:#}: {}", warning.hresult, warning.message);
    }
    Ok(())
}
