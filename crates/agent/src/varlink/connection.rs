//! One client connection: who it is, and its calls, one after another.
//! A reader task reads ahead, so that a running interactive install can
//! take its answers from the same connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use openwua_model::hresult::{E_INVALIDARG, WU_E_PT_QUOTA_EXCEEDED};
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::limits::{self, Admission, Budget, Reservation};
use super::methods::{self, ReplySink};
use super::protocol::{Call, MAX_CALL, MessageReader, ReadError, Reply, decode_call};
use crate::agent::Agent;
use crate::error::AgentError;
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
    /// How long a piece of a reply may wait for the client to read.
    stall: Duration,
}

impl ReplySink for Writer<'_> {
    async fn send(&mut self, reply: Reply) -> std::io::Result<()> {
        if self.silent {
            return Ok(());
        }
        write_reply(self.inner, &reply, self.stall).await
    }
}

/// Writes a reply in pieces, each within `stall`: a client that stops
/// reading loses its connection instead of keeping the reply (up to a
/// search's hundred megabytes) in the agent's memory for ever.
async fn write_reply(
    writer: &mut BufWriter<OwnedWriteHalf>,
    reply: &Reply,
    stall: Duration,
) -> std::io::Result<()> {
    for part in reply.parts() {
        for chunk in part.chunks(limits::WRITE_CHUNK) {
            within(stall, writer.write_all(chunk)).await?;
        }
    }
    within(stall, writer.flush()).await
}

async fn within(
    stall: Duration,
    write: impl Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    tokio::time::timeout(stall, write)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading its reply",
            ))
        })
}

/// What the connection's reader hands on: the client's calls in order, then
/// how the stream ended.
pub enum Incoming {
    /// A call to run.
    Call(Received),
    /// The client sent something that is not a Varlink call, or more than
    /// it may: why.
    Refused(AgentError),
    /// The client closed the connection (or it failed).
    Closed,
}

/// A call read from the client, its bytes counted against the client's
/// budget until it has run.
pub struct Received {
    call: Call,
    _reservation: Reservation,
}

impl std::ops::Deref for Received {
    type Target = Call;

    fn deref(&self) -> &Call {
        &self.call
    }
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
async fn read_calls(stream: OwnedReadHalf, calls: mpsc::Sender<Incoming>, budget: Budget) {
    let mut reader = MessageReader::new(stream, MAX_CALL);
    loop {
        let incoming = read_call(&mut reader, &budget).await;
        let last = !matches!(incoming, Incoming::Call(_));
        if calls.send(incoming).await.is_err() || last {
            return;
        }
    }
}

/// Reads the next call, refusing one that is too long, over the client's
/// budget or too slow to arrive.
async fn read_call(reader: &mut MessageReader<OwnedReadHalf>, budget: &Budget) -> Incoming {
    // Waiting between calls is bounded by the connection's idle timeout;
    // once a call starts, it must arrive within CALL_TIMEOUT.
    match reader.wait_for_data().await {
        Ok(true) => {}
        Ok(false) => return Incoming::Closed,
        Err(error) => {
            tracing::debug!("connection failed: {error}");
            return Incoming::Closed;
        }
    }
    let call_timeout = budget.settings().call_timeout();
    let deadline = tokio::time::Instant::now() + call_timeout;
    let mut reservation = budget.reservation();
    let refusal =
        match tokio::time::timeout_at(deadline, reader.read(|bytes| reservation.grow(bytes))).await
        {
            Ok(Ok(message)) => {
                return match decode_call(message).await {
                    Ok(call) => Incoming::Call(Received {
                        call,
                        _reservation: reservation,
                    }),
                    Err(error) => Incoming::Refused(error),
                };
            }
            Ok(Err(ReadError::Closed)) => return Incoming::Closed,
            Ok(Err(ReadError::Io(error))) => {
                tracing::debug!("connection failed: {error}");
                return Incoming::Closed;
            }
            Ok(Err(ReadError::TooLarge { limit })) => AgentError::new(
                E_INVALIDARG,
                format!(
                    "a call is longer than {limit} bytes, the most the agent reads; \
                     send fewer or shorter values"
                ),
            ),
            Ok(Err(ReadError::OverBudget)) => AgentError::new(
                WU_E_PT_QUOTA_EXCEEDED,
                format!(
                    "this user's connections already hold {} MiB of calls not yet run, the \
                     most one user may; wait for them to finish",
                    limits::MAX_BUFFERED_PER_USER / (1024 * 1024)
                ),
            ),
            Ok(Err(error)) => AgentError::new(E_INVALIDARG, error.to_string()),
            Err(_) => {
                return Incoming::Refused(AgentError::new(
                    E_INVALIDARG,
                    format!(
                        "a call did not arrive whole within {} seconds of its first byte",
                        call_timeout.as_secs()
                    ),
                ));
            }
        };
    drop(reservation);
    // The rest of the refused call is read and dropped, up to its NUL, so
    // that the client reads the refusal: closing with unread data would
    // reset the connection instead.
    match tokio::time::timeout_at(deadline, reader.discard()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!("skipping a refused call: {error}"),
        Err(_) => tracing::debug!("a refused call did not end in time"),
    }
    Incoming::Refused(refusal)
}

/// Serves one connection until the client closes it or breaks the protocol.
pub async fn serve(
    agent: Arc<Agent>,
    stream: UnixStream,
    admins: Administrators,
    settings: CallerSettings,
    admission: Admission,
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
    let caps = admission.settings();
    let stall = caps.write_stall_timeout();
    let (read_half, write_half) = stream.into_split();
    // One call read ahead: enough for answers to reach a running install.
    let (sender, receiver) = mpsc::channel(1);
    let reader = AbortOnDrop(tokio::spawn(read_calls(
        read_half,
        sender,
        admission.budget(),
    )));
    let mut inbox = Inbox {
        receiver,
        put_back: VecDeque::new(),
    };
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    loop {
        // Only between calls: one that runs (a followed job, an
        // interactive install) keeps the connection however long it takes.
        let Ok(incoming) = tokio::time::timeout(caps.idle_timeout(), inbox.next()).await else {
            tracing::debug!("closing a connection idle for {:?}", caps.idle_timeout());
            break;
        };
        let call = match incoming {
            Incoming::Call(call) => call,
            Incoming::Closed => break,
            Incoming::Refused(error) => {
                refuse(&mut writer, &error, stall).await;
                break;
            }
        };
        if call.upgrade {
            let reply = Reply::service_error(
                "org.varlink.service.InvalidParameter",
                json!({ "parameter": "upgrade" }),
            );
            if write_reply(&mut writer, &reply, stall).await.is_err() {
                break;
            }
            continue;
        }
        let mut sink = Writer {
            inner: &mut writer,
            silent: call.oneway,
            stall,
        };
        if let Err(error) = methods::dispatch(&session, &call, &mut sink, &mut inbox).await {
            tracing::debug!("client went away: {error}");
            break;
        }
    }
    drop(reader);
    drop(admission);
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
/// a Varlink call, or more than it may, so the stream cannot be trusted to
/// resynchronise.
async fn refuse(writer: &mut BufWriter<OwnedWriteHalf>, error: &AgentError, stall: Duration) {
    tracing::warn!("closing a connection: {}", error.detail);
    // The connection closes either way.
    let _ = write_reply(writer, &Reply::wua_error(error), stall).await;
}

/// Refuses a connection over the limits: writes why, then, with `drain`,
/// reads and drops the client's first call (briefly) so that it reads the
/// refusal rather than a reset, and closes.
pub async fn refuse_connection(
    stream: UnixStream,
    error: AgentError,
    drain: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    tracing::debug!("refusing a connection: {}", error.detail);
    let (read_half, write_half) = stream.into_split();
    let mut writer = BufWriter::new(write_half);
    // A refused client gets as long to read why as to send its first call.
    if write_reply(
        &mut writer,
        &Reply::wua_error(&error),
        limits::REFUSAL_DRAIN_TIMEOUT,
    )
    .await
    .is_err()
    {
        return;
    }
    if let Some(_permit) = drain {
        let mut reader = MessageReader::new(read_half, MAX_CALL);
        let _ = tokio::time::timeout(limits::REFUSAL_DRAIN_TIMEOUT, reader.discard()).await;
    }
}
