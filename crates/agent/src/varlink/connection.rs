//! One client connection: who it is, and its calls, one after another.
//! A reader task reads ahead, so that a running interactive install can
//! take its answers from the same connection.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::json;
use tokio::io::{BufReader, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::methods::{self, ReplySink};
use super::protocol::{self, Call, ReadError, Reply};
use crate::agent::Agent;
use crate::policy::{Administrators, Requester};
use openwua_caller::{Caller, CallerSettings};

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
    /// The caller, for one call naming `client_application_id`.
    pub fn requester(&self, client_application_id: Option<String>) -> Requester {
        Requester::of(&self.caller, &self.admins, client_application_id)
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

/// What the connection's reader hands on: the client's calls in order, then
/// how the stream ended.
pub enum Incoming {
    /// A call to run.
    Call(Call),
    /// The client sent something that is not a Varlink call: why.
    Refused(String),
    /// The client closed the connection (or it failed).
    Closed,
}

/// The calls a client has sent that have not run yet. A streamed call that
/// takes answers on the same connection (an interactive install) reads
/// them from here while it runs and puts the others back for later.
pub struct Inbox {
    receiver: mpsc::Receiver<Incoming>,
    put_back: VecDeque<Incoming>,
}

impl Inbox {
    /// The next call to run, those put back first.
    pub async fn next(&mut self) -> Incoming {
        match self.put_back.pop_front() {
            Some(incoming) => incoming,
            None => self.receive().await,
        }
    }

    /// The next message from the client, skipping those put back.
    pub async fn receive(&mut self) -> Incoming {
        self.receiver.recv().await.unwrap_or(Incoming::Closed)
    }

    /// Keeps a message for after the current call, in order.
    pub fn put_back(&mut self, incoming: Incoming) {
        self.put_back.push_back(incoming);
    }

    /// Whether it may read more during a call: a client that keeps sending
    /// other calls while one streams is not read further until it ends.
    pub fn may_receive(&self) -> bool {
        self.put_back.len() < MAX_PUT_BACK
    }
}

/// How many calls a streaming call keeps for after it.
const MAX_PUT_BACK: usize = 16;

/// Reads calls until the stream ends or breaks; the connection stops it
/// when it is done.
async fn read_calls(stream: OwnedReadHalf, calls: mpsc::Sender<Incoming>) {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut buffer = Vec::new();
    loop {
        let incoming = match protocol::read_call(&mut reader, &mut buffer).await {
            Ok(call) => Incoming::Call(call),
            Err(ReadError::Closed) => Incoming::Closed,
            Err(ReadError::Io(error)) => {
                tracing::debug!("connection failed: {error}");
                Incoming::Closed
            }
            Err(ReadError::TooLarge) => Incoming::Refused(format!(
                "a message is longer than {} bytes",
                protocol::MAX_MESSAGE
            )),
            Err(ReadError::Malformed(why)) => Incoming::Refused(why),
        };
        let last = !matches!(incoming, Incoming::Call(_));
        if calls.send(incoming).await.is_err() || last {
            return;
        }
    }
}

/// Serves one connection until the client closes it or breaks the protocol.
pub async fn serve(
    agent: Arc<Agent>,
    stream: UnixStream,
    admins: Administrators,
    settings: CallerSettings,
) {
    // Reading the peer reads procfs and may look up users: a blocking thread.
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!("cannot take the connection: {error}");
            return;
        }
    };
    let peer = tokio::task::spawn_blocking(move || {
        let caller = Caller::of_socket(&stream, &settings, |uid, gid, groups| {
            admins.admit(uid, gid, groups)
        });
        (stream, caller)
    })
    .await;
    let (stream, caller) = match peer {
        Ok((stream, Ok(caller))) => (stream, caller),
        Ok((_, Err(error))) => {
            tracing::warn!("cannot read the peer's credentials, closing: {error}");
            return;
        }
        Err(error) => {
            tracing::warn!("classifying a caller failed: {error}");
            return;
        }
    };
    let stream = match UnixStream::from_std(stream) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!("cannot register the connection: {error}");
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
    // One call read ahead: enough for answers to reach a running install.
    let (sender, receiver) = mpsc::channel(1);
    let reader = AbortOnDrop(tokio::spawn(read_calls(read_half, sender)));
    let mut inbox = Inbox {
        receiver,
        put_back: VecDeque::new(),
    };
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    loop {
        let call = match inbox.next().await {
            Incoming::Call(call) => call,
            Incoming::Closed => break,
            Incoming::Refused(why) => {
                refuse(&mut writer, &why).await;
                break;
            }
        };
        if call.upgrade {
            let reply = Reply::service_error(
                "org.varlink.service.InvalidParameter",
                json!({ "parameter": "upgrade" }),
            );
            if reply.write(&mut writer).await.is_err() {
                break;
            }
            continue;
        }
        let mut sink = Writer {
            inner: &mut writer,
            silent: call.oneway,
        };
        if let Err(error) = methods::dispatch(&session, &call, &mut sink, &mut inbox).await {
            tracing::debug!("client went away: {error}");
            break;
        }
    }
    drop(reader);
}

/// Stops the reader task with the connection, even if the client keeps
/// its end open.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
