//! The messages: calls, replies and the agent's error.

use openwua_model::hresult::{HResult, WU_E_UNEXPECTED};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::MAX_CALL;

/// The agent's error, with a WUA code; its parameters are
/// [`WuaErrorParameters`].
pub const WUA_ERROR: &str = "org.openwua.Agent.WuaError";

/// A method call as the agent reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// `interface.Method`.
    pub method: String,
    /// The parameters object, left as text for the method to decode.
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

/// How many replies a call expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replies {
    /// Exactly one.
    One,
    /// Any number, the last without `continues` (`more`).
    More,
    /// None (`oneway`).
    None,
}

/// A call as a client sends it.
#[derive(Serialize)]
struct OutgoingCall<'a, P> {
    method: &'a str,
    parameters: &'a P,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    more: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    oneway: bool,
}

/// Why a call could not be encoded.
#[derive(Debug)]
#[non_exhaustive]
pub enum EncodeCallError {
    /// The parameters do not encode as JSON.
    Json(serde_json::Error),
    /// The call is longer than [`MAX_CALL`].
    TooLarge {
        /// Its length in bytes.
        length: usize,
    },
}

impl std::fmt::Display for EncodeCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeCallError::Json(error) => write!(f, "the parameters do not encode: {error}"),
            EncodeCallError::TooLarge { length } => write!(
                f,
                "the call is {length} bytes and the agent reads at most {MAX_CALL}: \
                 send fewer or shorter values"
            ),
        }
    }
}

impl std::error::Error for EncodeCallError {}

/// One call's bytes, ending with its NUL, ready to write; refused when
/// longer than [`MAX_CALL`], which the agent would not read.
pub fn encode_call<P: Serialize>(
    method: &str,
    parameters: &P,
    replies: Replies,
) -> Result<Vec<u8>, EncodeCallError> {
    let call = OutgoingCall {
        method,
        parameters,
        more: replies == Replies::More,
        oneway: replies == Replies::None,
    };
    let mut bytes = serde_json::to_vec(&call).map_err(EncodeCallError::Json)?;
    if bytes.len() > MAX_CALL {
        return Err(EncodeCallError::TooLarge {
            length: bytes.len(),
        });
    }
    bytes.push(0);
    Ok(bytes)
}

/// A reply as a client reads it. The parameters stay text until the
/// caller's type decodes them, so a large reply is decoded once.
#[derive(Debug, Deserialize)]
pub struct ReplyMessage {
    /// The parameters object (absent when empty).
    #[serde(default)]
    pub parameters: Option<Box<RawValue>>,
    /// More replies follow.
    #[serde(default)]
    pub continues: bool,
    /// The qualified error name, for an error.
    #[serde(default)]
    pub error: Option<String>,
}

/// [`WUA_ERROR`]'s parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WuaErrorParameters {
    /// The code.
    pub hresult: HResult,
    /// Its symbolic name (`WU_E_NO_INTERACTIVE_USER`), empty if unknown.
    #[serde(default)]
    pub name: String,
    /// What it means and what to do, empty if unknown.
    #[serde(default)]
    pub message: String,
    /// What exactly went wrong (the agent always says; other services
    /// may send none).
    #[serde(default)]
    pub detail: Option<String>,
}

/// An error that becomes a [`WUA_ERROR`] reply.
pub trait WuaErrorSource {
    /// Its code.
    fn hresult(&self) -> HResult;
    /// What exactly went wrong.
    fn detail(&self) -> &str;
}

/// A reply as the agent sends it, encoded once and written as is.
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

impl Reply {
    /// Parameters encoded from a value.
    pub fn of<T: Serialize>(value: &T) -> Reply {
        match serde_json::to_string(value) {
            Ok(json) => Reply::Parameters {
                json,
                continues: false,
            },
            Err(error) => Reply::wua_error(&Unexpected(format!("encoding the reply: {error}"))),
        }
    }

    /// A [`WUA_ERROR`] reply, with the code's name and advice.
    pub fn wua_error(error: &impl WuaErrorSource) -> Reply {
        let hresult = error.hresult();
        let info = hresult.info();
        let parameters = WuaErrorParameters {
            hresult,
            name: info.map_or("", |info| info.name).to_owned(),
            message: info.map_or("", |info| info.message).to_owned(),
            detail: Some(error.detail().to_owned()),
        };
        Reply::Error {
            name: WUA_ERROR,
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

    /// The reply's bytes in the order they go out, NUL included, without
    /// copying the parameters (a search reply can be a hundred megabytes).
    pub fn parts(&self) -> [&[u8]; 5] {
        match self {
            Reply::Parameters { json, continues } => [
                br#"{"parameters":"#,
                json.as_bytes(),
                if *continues {
                    br#","continues":true}"#
                } else {
                    b"}"
                },
                b"\0",
                b"",
            ],
            Reply::Error { name, json } => [
                br#"{"error":""#,
                name.as_bytes(),
                br#"","parameters":"#,
                json.as_bytes(),
                b"}\0",
            ],
        }
    }

    /// Writes the reply and its NUL, then flushes.
    pub async fn write(&self, writer: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        for part in self.parts() {
            writer.write_all(part).await?;
        }
        writer.flush().await
    }
}

/// Encoding a reply failed: a bug, reported as `WU_E_UNEXPECTED`.
struct Unexpected(String);

impl WuaErrorSource for Unexpected {
    fn hresult(&self) -> HResult {
        WU_E_UNEXPECTED
    }

    fn detail(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(reply: &Reply) -> serde_json::Value {
        let bytes = reply.parts().concat();
        assert_eq!(bytes.last(), Some(&0));
        serde_json::from_slice(&bytes[..bytes.len() - 1]).expect("JSON")
    }

    #[test]
    fn replies_are_varlink_messages() {
        let reply = Reply::Parameters {
            json: "{\"a\":1}".into(),
            continues: true,
        };
        assert_eq!(
            written(&reply),
            serde_json::json!({ "parameters": { "a": 1 }, "continues": true })
        );
        let reply = Reply::service_error(
            "org.varlink.service.InvalidParameter",
            serde_json::json!({ "parameter": "x" }),
        );
        assert_eq!(
            written(&reply)["error"],
            "org.varlink.service.InvalidParameter"
        );
    }

    #[test]
    fn a_call_over_the_limit_is_not_encoded() {
        let long = "x".repeat(MAX_CALL);
        assert!(matches!(
            encode_call("a.B", &long, Replies::One),
            Err(EncodeCallError::TooLarge { .. })
        ));
        let bytes = encode_call("a.B", &"x", Replies::More).expect("a small call");
        let call: Call = serde_json::from_slice(&bytes[..bytes.len() - 1]).expect("a call");
        assert!(call.more && !call.oneway);
    }
}
