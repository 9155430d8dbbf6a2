//! One client connection: who it is, and its calls, one after another.

use std::sync::Arc;

use serde_json::json;
use tokio::io::{BufReader, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;

use super::methods::{self, ReplySink};
use super::protocol::{self, ReadError, Reply};
use crate::agent::Agent;
use crate::caller::{Administrators, Caller, CallerPolicy};
use crate::error::Result;

/// What every call on a connection shares.
pub struct Session {
    /// The agent.
    pub agent: Arc<Agent>,
    /// The peer, read once when it connected.
    pub caller: Caller,
    /// Who may change the agent's state.
    pub admins: Administrators,
}

impl Session {
    /// Fails with `E_ACCESSDENIED` unless the caller is an administrator.
    pub fn require_admin(&self, what: &str) -> Result<()> {
        self.caller.require_admin(&self.admins, what)
    }
}

struct Writer<'a> {
    inner: &'a mut BufWriter<OwnedWriteHalf>,
    /// A oneway call's replies are dropped.
    silent: bool,
}

impl ReplySink for Writer<'_> {
    async fn send(&mut self, reply: Reply) -> std::io::Result<()> {
        if self.silent {
            return Ok(());
        }
        reply.write(self.inner).await
    }
}

/// Serves one connection until the client closes it or breaks the protocol.
pub async fn serve(agent: Arc<Agent>, stream: UnixStream, policy: CallerPolicy) {
    let admins = policy.admins;
    let caller = match Caller::of_socket(&stream, &policy) {
        Ok(caller) => caller,
        Err(error) => {
            tracing::warn!("cannot read the peer's credentials, closing: {error}");
            return;
        }
    };
    tracing::debug!(
        uid = caller.uid,
        pid = caller.pid,
        class = %caller.context.class,
        "connected"
    );
    let session = Session {
        agent,
        caller,
        admins,
    };
    let (read_half, write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    let mut buffer = Vec::new();
    loop {
        let call = match protocol::read_call(&mut reader, &mut buffer).await {
            Ok(call) => call,
            Err(ReadError::Closed) => return,
            Err(ReadError::Io(error)) => {
                tracing::debug!("connection failed: {error}");
                return;
            }
            Err(ReadError::TooLarge) => {
                refuse(
                    &mut writer,
                    &format!("a message is longer than {} bytes", protocol::MAX_MESSAGE),
                )
                .await;
                return;
            }
            Err(ReadError::Malformed(why)) => {
                refuse(&mut writer, &why).await;
                return;
            }
        };
        if call.upgrade {
            let reply = Reply::service_error(
                "org.varlink.service.InvalidParameter",
                json!({ "parameter": "upgrade" }),
            );
            if reply.write(&mut writer).await.is_err() {
                return;
            }
            continue;
        }
        let mut sink = Writer {
            inner: &mut writer,
            silent: call.oneway,
        };
        if let Err(error) = methods::dispatch(&session, &call, &mut sink).await {
            tracing::debug!("client went away: {error}");
            return;
        }
    }
}

/// Tells a client why its connection ends: it sent something that is not
/// a Varlink call, so the stream cannot be trusted to resynchronise.
async fn refuse(writer: &mut BufWriter<OwnedWriteHalf>, why: &str) {
    tracing::warn!("closing a connection: {why}");
    let error = crate::error::AgentError::new(openwua_model::hresult::E_INVALIDARG, why);
    // The connection closes either way.
    let _ = Reply::wua_error(&error).write(writer).await;
}
