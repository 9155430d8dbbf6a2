//! Reaching the agent (`--socket`, `$OPENWUA_SOCKET`, the default socket,
//! or an agent inside wua with `--embedded`), and telling its failures the
//! way every WUA failure is told: the code, what went wrong, what to do.

use std::path::PathBuf;

use openwua_client::ClientError;
use openwua_client::blocking::UpdateSession;
use openwua_model::hresult::{
    E_ACCESSDENIED, E_INVALIDARG, HResult, WU_E_DS_INVALIDOPERATION, WU_E_DS_NODATA,
    WU_E_DS_UNKNOWNSERVICE, WU_E_INVALID_CRITERIA, WU_E_INVALID_OPERATION, WU_E_INVALIDINDEX,
    WU_E_METADATA_BAD_SIGNATURE, WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW,
    WU_E_OL_INVALID_SCANFILE, WU_E_OL_NEWCLIENT_REQUIRED, WU_E_PER_MACHINE_UPDATE_ACCESS_DENIED,
    WU_E_UNKNOWN_ID,
};

use crate::{embedded, exit, text};

/// Sent as `ClientApplicationID`, for the agent's history and logs.
const CLIENT_APPLICATION_ID: &str = "wua";

/// Which agent the command talks to, from the global options.
pub struct Target {
    /// `--socket`; `None` means `$OPENWUA_SOCKET`, else the default.
    pub socket: Option<PathBuf>,
    /// `--embedded`.
    pub embedded: bool,
}

/// A session, and the embedded agent behind it if there is one.
struct Connected {
    session: UpdateSession,
    // Declared after the session, so it is dropped after it: the agent
    // outlives its connection.
    _embedded: Option<embedded::Embedded>,
}

impl Target {
    /// Connects and runs `command` with the session. A failure of the
    /// agent's (or of reaching it) is reported here and becomes the exit
    /// status; other errors go back to the caller.
    pub fn run(
        &self,
        command: impl FnOnce(&UpdateSession) -> anyhow::Result<u8>,
    ) -> anyhow::Result<u8> {
        let connected = match self.connect() {
            Ok(connected) => connected,
            Err(error) => return handled(error),
        };
        command(&connected.session).or_else(handled)
    }

    fn connect(&self) -> anyhow::Result<Connected> {
        let embedded = if self.embedded {
            Some(embedded::start()?)
        } else {
            None
        };
        let mut session = match (&embedded, &self.socket) {
            (Some(agent), _) => UpdateSession::connect(agent.socket())?,
            (None, Some(socket)) => UpdateSession::connect(socket)?,
            (None, None) => UpdateSession::connect_default()?,
        };
        session.set_client_application_id(CLIENT_APPLICATION_ID);
        Ok(Connected {
            session,
            _embedded: embedded,
        })
    }
}

/// Reports a client error and turns it into its exit status; passes any
/// other error on.
fn handled(error: anyhow::Error) -> anyhow::Result<u8> {
    match error.downcast_ref::<ClientError>() {
        Some(client) => Ok(report(client)),
        None => Err(error),
    }
}

/// Prints the failure to standard error: the code with its name and
/// advice, what exactly went wrong, and a hint when there is one to give.
fn report(error: &ClientError) -> u8 {
    eprintln!("wua: {}", error.hresult());
    if let Some(detail) = error.detail() {
        // The agent's detail may quote catalog text.
        eprintln!("  {}", text::paragraphs(&detail));
    }
    if let Some(hint) = hint(error) {
        eprintln!("  hint: {hint}");
    }
    match error {
        ClientError::WuaError { hresult, .. } => status(*hresult),
        _ => exit::ERROR,
    }
}

fn hint(error: &ClientError) -> Option<&'static str> {
    match error {
        ClientError::NotReachable { .. } => Some(
            "start wua-agent (`systemctl start wua-agent`), point --socket or \
             $OPENWUA_SOCKET at a running one, or add --embedded to run one inside wua",
        ),
        ClientError::Varlink { .. } => {
            Some("wua and wua-agent disagree about the interface: install matching versions")
        }
        _ => None,
    }
}

/// The exit status for the agent's verdict: the caller's fault (invalid
/// input), the caller's rights, or anything else.
fn status(hresult: HResult) -> u8 {
    match hresult {
        E_ACCESSDENIED | WU_E_PER_MACHINE_UPDATE_ACCESS_DENIED => exit::DENIED,
        E_INVALIDARG
        | WU_E_INVALID_CRITERIA
        | WU_E_INVALIDINDEX
        | WU_E_UNKNOWN_ID
        | WU_E_DS_NODATA
        | WU_E_DS_UNKNOWNSERVICE
        | WU_E_INVALID_OPERATION
        | WU_E_DS_INVALIDOPERATION
        // A scan package refused: damaged, foreign, stale or too new.
        | WU_E_OL_INVALID_SCANFILE
        | WU_E_OL_NEWCLIENT_REQUIRED
        | WU_E_METADATA_BAD_SIGNATURE
        | WU_E_METADATA_TIMESTAMP_TOKEN_VALIDITY_WINDOW => exit::INVALID,
        _ => exit::ERROR,
    }
}
