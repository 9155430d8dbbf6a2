//! Varlink's wire format: JSON objects, each ended by a NUL byte.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::AgentError;

/// The largest message the agent reads; a bigger one ends the connection.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// A method call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// `interface.Method`.
    pub method: String,
    /// The parameters object, decoded by the method.
    #[serde(default)]
    pub parameters: Option<Box<RawValue>>,
    /// The caller accepts several replies.
    #[serde(default)]
    pub more: bool,
    /// The caller wants no reply.
    #[serde(default)]
    pub oneway: bool,
    /// The caller asks to switch protocols (not supported).
    #[serde(default)]
    pub upgrade: bool,
}

/// Why reading a message failed.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between messages.
    Closed,
    /// Longer than [`MAX_MESSAGE`].
    TooLarge,
    /// Not a call: bad JSON, not UTF-8, or a cut-off message.
    Malformed(String),
    /// The socket failed.
    Io(std::io::Error),
}

/// Reads one NUL-terminated call.
pub async fn read_call(
    reader: &mut (impl AsyncBufRead + Unpin),
    buffer: &mut Vec<u8>,
) -> Result<Call, ReadError> {
    buffer.clear();
    loop {
        let available = reader.fill_buf().await.map_err(ReadError::Io)?;
        if available.is_empty() {
            return Err(if buffer.is_empty() {
                ReadError::Closed
            } else {
                ReadError::Malformed("the connection closed in the middle of a message".into())
            });
        }
        let (taken, complete) = match available.iter().position(|&byte| byte == 0) {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        let body = if complete {
            &available[..taken - 1]
        } else {
            available
        };
        if buffer.len() + body.len() > MAX_MESSAGE {
            return Err(ReadError::TooLarge);
        }
        buffer.extend_from_slice(body);
        reader.consume(taken);
        if complete {
            return serde_json::from_slice(buffer)
                .map_err(|error| ReadError::Malformed(format!("not a Varlink call: {error}")));
        }
    }
}

/// A reply, encoded once and written as is.
#[derive(Debug)]
pub enum Reply {
    /// Parameters (a JSON object's text); `continues` for all but the last
    /// reply of a `more` call.
    Parameters {
        /// The encoded parameters.
        json: String,
        /// More replies follow.
        continues: bool,
    },
    /// An error with its qualified name and parameters.
    Error {
        /// `interface.ErrorName`.
        name: &'static str,
        /// The encoded parameters.
        json: String,
    },
}

/// `org.openwua.Agent.WuaError`'s parameters.
#[derive(Debug, Serialize)]
struct WuaErrorParameters<'a> {
    hresult: String,
    name: &'a str,
    message: &'a str,
    detail: &'a str,
}

impl Reply {
    /// Parameters encoded from a value.
    pub fn of<T: Serialize>(value: &T) -> Reply {
        match serde_json::to_string(value) {
            Ok(json) => Reply::Parameters {
                json,
                continues: false,
            },
            Err(error) => Reply::wua_error(&AgentError::new(
                openwua_model::hresult::WU_E_UNEXPECTED,
                format!("encoding the reply: {error}"),
            )),
        }
    }

    /// The agent's error reply, with the code's name and advice.
    pub fn wua_error(error: &AgentError) -> Reply {
        let info = error.hresult.info();
        let parameters = WuaErrorParameters {
            hresult: format!("{:#}", error.hresult),
            name: info.map_or("", |info| info.name),
            message: info.map_or("", |info| info.message),
            detail: &error.detail,
        };
        Reply::Error {
            name: "org.openwua.Agent.WuaError",
            json: serde_json::to_string(&parameters).unwrap_or_else(|_| "{}".to_owned()),
        }
    }

    /// One of the standard `org.varlink.service` errors.
    pub fn service_error(name: &'static str, parameters: serde_json::Value) -> Reply {
        Reply::Error {
            name,
            json: parameters.to_string(),
        }
    }

    /// Writes the reply and its NUL, piece by piece: a search reply can be
    /// a hundred megabytes, and is not copied again here.
    pub async fn write(&self, writer: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        match self {
            Reply::Parameters { json, continues } => {
                writer.write_all(br#"{"parameters":"#).await?;
                writer.write_all(json.as_bytes()).await?;
                if *continues {
                    writer.write_all(br#","continues":true"#).await?;
                }
            }
            Reply::Error { name, json } => {
                writer.write_all(br#"{"error":""#).await?;
                writer.write_all(name.as_bytes()).await?;
                writer.write_all(br#"","parameters":"#).await?;
                writer.write_all(json.as_bytes()).await?;
            }
        }
        writer.write_all(b"}\0").await?;
        writer.flush().await
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tokio::io::BufReader;

    use super::*;

    fn read_all(bytes: &[u8], capacity: usize) -> Vec<Result<Call, ReadError>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut reader = BufReader::with_capacity(capacity, bytes);
            let mut buffer = Vec::new();
            let mut results = Vec::new();
            loop {
                let result = read_call(&mut reader, &mut buffer).await;
                let stop = result.is_err();
                results.push(result);
                if stop {
                    return results;
                }
            }
        })
    }

    #[test]
    fn calls_split_across_reads_and_packed_into_one_are_both_read() {
        let stream =
            b"{\"method\":\"a.B\",\"more\":true}\0{\"method\":\"a.C\",\"parameters\":{\"x\":1}}\0";
        for capacity in [1, 3, 64 * 1024] {
            let results = read_all(stream, capacity);
            assert_eq!(results.len(), 3, "capacity {capacity}");
            let first = results[0].as_ref().expect("a call");
            assert_eq!((first.method.as_str(), first.more), ("a.B", true));
            let second = results[1].as_ref().expect("a call");
            assert_eq!(
                second.parameters.as_ref().map(|raw| raw.get()),
                Some("{\"x\":1}")
            );
            assert!(matches!(results[2], Err(ReadError::Closed)));
        }
    }

    #[test]
    fn a_message_cut_off_is_malformed_not_closed() {
        let results = read_all(b"{\"method\":\"a.B\"", 8);
        assert!(matches!(results[0], Err(ReadError::Malformed(_))));
    }

    proptest! {
        /// Whatever arrives, reading ends in a call, a clean close or an
        /// error: never a panic and never an endless loop.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), capacity in 1usize..64) {
            let results = read_all(&bytes, capacity);
            prop_assert!(results.len() <= bytes.iter().filter(|&&byte| byte == 0).count() + 1);
        }
    }
}
