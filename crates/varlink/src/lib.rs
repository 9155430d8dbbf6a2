//! Varlink as `wua-agent` and its clients speak it, shared by both ends so
//! that they cannot disagree: the framing, the wire types and the
//! parameters of every `org.openwua.Agent` method.
//!
//! - [`MessageReader`] reads one NUL-terminated message at a time, up to a
//!   size limit, into a buffer it reuses (and gives back after a big
//!   message); [`Reply::write`] writes one.
//! - [`Call`] is a call as the agent decodes it, [`encode_call`] a call as
//!   a client sends it, expecting one reply, [`Replies::More`] or none
//!   (refused over [`MAX_CALL`]); [`Reply`] and
//!   [`ReplyMessage`] are a reply either way, [`WuaErrorParameters`] the
//!   parameters of [`WUA_ERROR`].
//! - [`parameters`] has one struct per method: the agent decodes them
//!   (unknown fields are refused) and clients encode them.
//!
//! It holds no agent logic and no policy: who may call what, and how many
//! connections or bytes a caller may hold, are the agent's.
//!
//! ```
//! # async fn example() -> Result<(), openwua_varlink::ReadError> {
//! use openwua_varlink::{Call, MAX_CALL, MessageReader, Replies, encode_call};
//! use openwua_varlink::parameters::HistoryParameters;
//!
//! let bytes = encode_call(
//!     "org.openwua.Agent.QueryHistory",
//!     &HistoryParameters { start: 0, count: 10 },
//!     Replies::One,
//! )
//! .expect("a small call");
//! let mut reader = MessageReader::new(&bytes[..], MAX_CALL);
//! let message = reader.read(|_| true).await?;
//! let call: Call = serde_json::from_slice(&message).expect("a call");
//! assert_eq!(call.method, "org.openwua.Agent.QueryHistory");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod frame;
pub mod parameters;
mod wire;

pub use frame::{Message, MessageReader, ReadError};
pub use wire::{
    Call, EncodeCallError, Replies, Reply, ReplyMessage, WUA_ERROR, WuaErrorParameters,
    WuaErrorSource, encode_call,
};

/// The longest call, in bytes without its NUL: the agent reads no more of
/// one (it answers `E_INVALIDARG` and closes), and a client refuses to send
/// more. Replies have no such bound here: each client sets its own.
pub const MAX_CALL: usize = 16 * 1024 * 1024;
