//! What can go wrong talking to the agent, each failure with its WUA code.

use std::io;
use std::path::PathBuf;

use openwua_model::hresult::{
    E_INVALIDARG, E_NOTIMPL, HResult, WU_E_INVALID_SERIALIZATION_VERSION, WU_E_NO_SERVICE,
    WU_E_PT_QUOTA_EXCEEDED, WU_E_SERVICE_STOP, WU_E_UNEXPECTED,
};

use crate::PROTOCOL_VERSION;

/// A failed call: the agent's own answer, or why there was none.
///
/// Every variant has a WUA code ([`ClientError::hresult`]), so a program can
/// report it like any other WUA failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The agent refused or failed the call (`org.openwua.Agent.WuaError`).
    #[error("{hresult}{}", .detail.as_ref().map(|detail| format!(" ({detail})")).unwrap_or_default())]
    WuaError {
        /// The WUA code.
        hresult: HResult,
        /// What exactly went wrong, when the agent said.
        detail: Option<String>,
    },
    /// The agent answered with one of Varlink's own errors
    /// (`org.varlink.service.MethodNotFound`, `InvalidParameter`, …): it
    /// and this client disagree about the interface.
    #[error("wua-agent rejected the call: {error} {parameters}")]
    Varlink {
        /// The qualified error name.
        error: String,
        /// The error's parameters.
        parameters: serde_json::Value,
    },
    /// Nothing answers at the agent's socket.
    #[error("cannot reach wua-agent at {}: {error}", .socket.display())]
    NotReachable {
        /// The socket tried.
        socket: PathBuf,
        /// Why connecting failed (part of the message, so not a `source`).
        error: io::Error,
    },
    /// The agent closed the connection before its reply was complete.
    #[error("wua-agent closed the connection before replying")]
    Disconnected,
    /// The agent speaks another version of the protocol.
    #[error("wua-agent speaks protocol version {agent}; this client speaks {PROTOCOL_VERSION}")]
    ProtocolVersion {
        /// The agent's version.
        agent: u32,
    },
    /// A reply was longer than the client accepts.
    #[error("a reply from wua-agent is longer than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A reply broke the protocol: not JSON, or not the expected shape.
    #[error("wua-agent's reply breaks the protocol: {0}")]
    Protocol(String),
    /// An argument cannot be sent as given.
    #[error("{0}")]
    InvalidArgument(String),
    /// Reading or writing the socket failed.
    #[error("talking to wua-agent: {0}")]
    Io(io::Error),
}

impl ClientError {
    /// The WUA code for this failure: the agent's own, or the closest one
    /// for a failure on the way (`WU_E_NO_SERVICE` when no agent answers).
    pub fn hresult(&self) -> HResult {
        match self {
            ClientError::WuaError { hresult, .. } => *hresult,
            ClientError::Varlink { error, .. } => match error.as_str() {
                "org.varlink.service.InterfaceNotFound"
                | "org.varlink.service.MethodNotFound"
                | "org.varlink.service.MethodNotImplemented" => E_NOTIMPL,
                "org.varlink.service.InvalidParameter" => E_INVALIDARG,
                _ => WU_E_UNEXPECTED,
            },
            ClientError::NotReachable { .. } => WU_E_NO_SERVICE,
            // The agent went away mid-call, as it does when it stops.
            ClientError::Disconnected => WU_E_SERVICE_STOP,
            ClientError::ProtocolVersion { .. } => WU_E_INVALID_SERIALIZATION_VERSION,
            ClientError::TooLarge { .. } => WU_E_PT_QUOTA_EXCEEDED,
            ClientError::InvalidArgument(_) => E_INVALIDARG,
            ClientError::Protocol(_) | ClientError::Io(_) => WU_E_UNEXPECTED,
        }
    }

    /// What exactly went wrong, beyond the code's own message: the agent's
    /// detail, or this error's description for failures on the way.
    pub fn detail(&self) -> Option<String> {
        match self {
            ClientError::WuaError { detail, .. } => detail.clone(),
            other => Some(other.to_string()),
        }
    }

    /// An I/O error, recognising the ones that mean the agent went away.
    pub(crate) fn from_io(error: io::Error) -> ClientError {
        match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => ClientError::Disconnected,
            _ => ClientError::Io(error),
        }
    }
}
