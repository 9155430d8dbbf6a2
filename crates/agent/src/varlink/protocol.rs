//! Varlink's wire format, from `openwua-varlink` (shared with the client),
//! and the agent's side of it: its errors become `WuaError` replies, and
//! calls are decoded off the async workers when they are large.

use openwua_model::hresult::{E_INVALIDARG, HResult};
use openwua_varlink::WuaErrorSource;
pub use openwua_varlink::{Call, MAX_CALL, Message, MessageReader, ReadError, Reply};

use crate::error::AgentError;

/// Calls longer than this are decoded on a blocking thread: decoding 16 MiB
/// of JSON takes tens of milliseconds, which would stall every other
/// connection served by the same worker.
pub const DECODE_INLINE: usize = 64 * 1024;

impl WuaErrorSource for AgentError {
    fn hresult(&self) -> HResult {
        self.hresult
    }

    fn detail(&self) -> &str {
        &self.detail
    }
}

/// Decodes one message as a call, on a blocking thread when it is large.
pub async fn decode_call(message: Message<'_>) -> Result<Call, AgentError> {
    let decoded = if message.len() > DECODE_INLINE {
        let bytes = message.into_vec();
        tokio::task::spawn_blocking(move || serde_json::from_slice::<Call>(&bytes))
            .await
            .map_err(|error| {
                AgentError::new(
                    openwua_model::hresult::WU_E_UNEXPECTED,
                    format!("decoding a call failed: {error}"),
                )
            })?
    } else {
        serde_json::from_slice::<Call>(&message)
    };
    decoded.map_err(|error| AgentError::new(E_INVALIDARG, format!("not a Varlink call: {error}")))
}
