//! A small Varlink client: each call and each reply is a JSON object ended
//! by a NUL byte on a Unix stream socket. The framing and wire types are
//! `openwua-varlink`'s, the agent's own, so the two cannot disagree; a call
//! longer than the agent reads ([`MAX_CALL`]) fails here with
//! [`ClientError::InvalidArgument`] instead of being cut off there.
//!
//! [`Connection`] knows the wire format and nothing of the agent's methods,
//! so a program can make calls this crate does not wrap yet:
//!
//! ```no_run
//! # async fn example() -> Result<(), openwua_client::ClientError> {
//! use openwua_client::varlink::Connection;
//!
//! let mut connection = Connection::connect("/run/openwua/agent.sock".as_ref()).await?;
//! let reply: serde_json::Value = connection
//!     .call("org.openwua.Agent.GetSystemInfo", &serde_json::json!({}))
//!     .await?;
//! println!("{reply}");
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

pub use openwua_varlink::MAX_CALL;
use openwua_varlink::{
    EncodeCallError, MessageReader, ReadError, Replies as Expect, ReplyMessage, WUA_ERROR,
    WuaErrorParameters, encode_call,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::error::ClientError;

/// The longest reply accepted by default, in bytes (without its NUL). A
/// longer one fails the call with [`ClientError::TooLarge`] instead of
/// growing the client's memory without bound. A search of 100,000 updates
/// is about 75 MB; [`Connection::set_max_reply`] changes the limit.
pub const MAX_REPLY: usize = 512 * 1024 * 1024;

/// One connection to a Varlink service. Calls on it are answered in order,
/// one at a time, as Varlink requires.
#[derive(Debug)]
pub struct Connection {
    /// Keeps the reply read so far, so that a cancelled read loses nothing.
    reader: MessageReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The last call still has replies to come, because its caller stopped
    /// reading them; the next call skips them first.
    owed: bool,
    /// The stream stopped between message boundaries (a reply was too long
    /// or not JSON, or a call was cut off while being written).
    broken: bool,
    /// Where it connected, to connect again when the agent has closed the
    /// connection between calls (it closes idle ones); none for a stream
    /// given to [`Connection::new`].
    socket: Option<PathBuf>,
}

/// A successful single reply, decoded with its parameters' own type.
#[derive(Deserialize)]
struct Success<R> {
    parameters: Option<R>,
    #[serde(default)]
    continues: bool,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

impl Connection {
    /// Connects to the service listening at `socket`.
    pub async fn connect(socket: &Path) -> Result<Connection, ClientError> {
        let stream =
            UnixStream::connect(socket)
                .await
                .map_err(|error| ClientError::NotReachable {
                    socket: socket.to_owned(),
                    error,
                })?;
        let mut connection = Connection::new(stream);
        connection.socket = Some(socket.to_owned());
        Ok(connection)
    }

    /// A connection over a stream that is already connected.
    pub fn new(stream: UnixStream) -> Connection {
        let (reader, writer) = stream.into_split();
        Connection {
            reader: MessageReader::new(reader, MAX_REPLY),
            writer,
            owed: false,
            broken: false,
            socket: None,
        }
    }

    /// Changes the longest reply accepted (default [`MAX_REPLY`]).
    pub fn set_max_reply(&mut self, limit: usize) {
        self.reader.set_limit(limit);
    }

    /// Calls `method` (qualified: `org.openwua.Agent.Search`) and decodes
    /// its one reply's parameters.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        parameters: &P,
    ) -> Result<R, ClientError> {
        // A successful reply decodes straight into `R`, in one pass over a
        // reply that may be a hundred megabytes; anything else takes the
        // general path.
        self.call_with(method, parameters, |bytes| {
            match serde_json::from_slice::<Success<R>>(&bytes) {
                Ok(Success {
                    parameters: Some(parameters),
                    continues: false,
                    error: None,
                }) => Ok(parameters),
                _ => Err(bytes),
            }
        })
        .await
    }

    /// Calls `method` for one reply, which `success` decodes from the
    /// whole message (it may keep the message); a reply it gives back, an
    /// error or one it does not recognise, takes the general path.
    pub(crate) async fn call_with<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        parameters: &P,
        success: impl FnOnce(Vec<u8>) -> Result<R, Vec<u8>>,
    ) -> Result<R, ClientError> {
        self.send(method, parameters, false).await?;
        let bytes = match success(self.read_message().await?) {
            Ok(result) => {
                self.owed = false;
                return Ok(result);
            }
            Err(bytes) => bytes,
        };
        let message = self.parse_reply(&bytes)?;
        if message.continues {
            return Err(ClientError::Protocol(format!(
                "{method} was called for one reply and more were announced"
            )));
        }
        decode(method, message)
    }

    /// Calls `method` with `more`: the service may answer with several
    /// replies, read one by one from the returned [`Replies`].
    pub async fn call_more<P: Serialize>(
        &mut self,
        method: &str,
        parameters: &P,
    ) -> Result<Replies<'_>, ClientError> {
        self.send(method, parameters, true).await?;
        Ok(Replies {
            method: method.to_owned(),
            connection: self,
            done: false,
        })
    }

    async fn send<P: Serialize>(
        &mut self,
        method: &str,
        parameters: &P,
        more: bool,
    ) -> Result<(), ClientError> {
        if self.broken {
            return Err(ClientError::Protocol(
                "the connection is unusable after an earlier failure; connect again".into(),
            ));
        }
        // Replies an earlier caller left unread would be taken for ours.
        while self.owed {
            self.read_reply().await?;
        }
        let expect = if more { Expect::More } else { Expect::One };
        match self.write_call(method, parameters, expect).await {
            // The agent closed the connection while no call was on it (it
            // closes connections idle for a minute): nothing of this call
            // was read, so it goes on a new connection.
            Err(ClientError::Disconnected) if self.socket.is_some() => {
                self.reconnect().await?;
                self.write_call(method, parameters, expect).await?;
            }
            result => result?,
        }
        self.owed = true;
        Ok(())
    }

    async fn reconnect(&mut self) -> Result<(), ClientError> {
        let Some(socket) = self.socket.take() else {
            return Err(ClientError::Disconnected);
        };
        let limit = self.reader.limit();
        *self = Connection::connect(&socket).await?;
        self.set_max_reply(limit);
        Ok(())
    }

    async fn write_call<P: Serialize>(
        &mut self,
        method: &str,
        parameters: &P,
        expect: Expect,
    ) -> Result<(), ClientError> {
        let bytes = encode_call(method, parameters, expect).map_err(|error| match error {
            EncodeCallError::TooLarge { .. } => {
                ClientError::InvalidArgument(format!("{method}: {error}"))
            }
            error => ClientError::InvalidArgument(format!(
                "cannot encode the parameters of {method}: {error}"
            )),
        })?;
        // Stays set if this future is dropped mid-write: half a call
        // cannot be taken back.
        self.broken = true;
        self.writer
            .write_all(&bytes)
            .await
            .map_err(ClientError::from_io)?;
        self.broken = false;
        Ok(())
    }

    /// Reads one reply, noting whether its call has more to come.
    async fn read_reply(&mut self) -> Result<ReplyMessage, ClientError> {
        let bytes = self.read_message().await?;
        self.parse_reply(&bytes)
    }

    /// Parses one reply, noting whether its call has more to come.
    fn parse_reply(&mut self, bytes: &[u8]) -> Result<ReplyMessage, ClientError> {
        let message: ReplyMessage = serde_json::from_slice(bytes).map_err(|error| {
            // Whether more replies follow is unknowable now.
            self.broken = true;
            ClientError::Protocol(format!("a reply is not a Varlink message: {error}"))
        })?;
        self.owed = message.continues && message.error.is_none();
        Ok(message)
    }

    /// Reads up to the next NUL, which it drops.
    async fn read_message(&mut self) -> Result<Vec<u8>, ClientError> {
        match self.reader.read(|_| true).await {
            Ok(message) => Ok(message.into_vec()),
            Err(ReadError::Closed | ReadError::Cut) => Err(ClientError::Disconnected),
            Err(ReadError::Io(error)) => Err(ClientError::from_io(error)),
            Err(ReadError::TooLarge { limit }) => {
                self.broken = true;
                Err(ClientError::TooLarge { limit })
            }
            Err(error) => {
                self.broken = true;
                Err(ClientError::Protocol(error.to_string()))
            }
        }
    }
}

/// The replies to a call made with `more`, read in order.
///
/// Dropping it before the last reply is fine: the connection skips the
/// rest before its next call.
#[derive(Debug)]
pub struct Replies<'a> {
    connection: &'a mut Connection,
    method: String,
    done: bool,
}

impl Replies<'_> {
    /// The next reply's parameters, or `None` after the last one.
    pub async fn next<R: DeserializeOwned>(&mut self) -> Result<Option<R>, ClientError> {
        if self.done {
            return Ok(None);
        }
        let message = match self.connection.read_reply().await {
            Ok(message) => message,
            Err(error) => {
                self.done = true;
                return Err(error);
            }
        };
        self.done = !message.continues;
        decode(&self.method, message).map(Some)
    }

    /// Sends a `oneway` call (no reply) while this call's replies are still
    /// coming: how a client answers the questions of an interactive
    /// install on the connection that asked for it. [`Replies::next`] may
    /// be cancelled for it (a `select!`) without losing a reply.
    pub async fn send_oneway<P: Serialize>(
        &mut self,
        method: &str,
        parameters: &P,
    ) -> Result<(), ClientError> {
        self.connection
            .write_call(method, parameters, Expect::None)
            .await
    }
}

/// A reply's parameters as `R`, or its error.
fn decode<R: DeserializeOwned>(method: &str, message: ReplyMessage) -> Result<R, ClientError> {
    // Varlink lets a reply without parameters leave them out.
    let parameters = message.parameters.as_deref().map_or("{}", RawValue::get);
    match message.error {
        None => serde_json::from_str(parameters).map_err(|error| {
            ClientError::Protocol(format!("the reply to {method} is not as expected: {error}"))
        }),
        Some(error) if error == WUA_ERROR => {
            let WuaErrorParameters {
                hresult, detail, ..
            } = serde_json::from_str(parameters).map_err(|error| {
                ClientError::Protocol(format!("{WUA_ERROR} is not as expected: {error}"))
            })?;
            Err(ClientError::WuaError {
                hresult,
                detail: detail.filter(|detail| !detail.is_empty()),
            })
        }
        Some(error) => Err(ClientError::Varlink {
            error,
            parameters: serde_json::from_str(parameters).unwrap_or(Value::Null),
        }),
    }
}
