//! The server's one error type, and its JSON form.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use openwua_model::hresult::{
    E_ACCESSDENIED, HResult, WU_E_PT_HTTP_STATUS_BAD_METHOD, WU_E_PT_HTTP_STATUS_BAD_REQUEST,
    WU_E_PT_HTTP_STATUS_CONFLICT, WU_E_PT_HTTP_STATUS_DENIED, WU_E_PT_HTTP_STATUS_NOT_FOUND,
    WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT, WU_E_PT_HTTP_STATUS_SERVER_ERROR,
    WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The `Retry-After` every 503 carries, in seconds.
pub const RETRY_AFTER_SECS: &str = "30";

/// What went wrong, as an HTTP status, a WUA code and sentences for people.
#[derive(Debug, thiserror::Error)]
#[error("{hresult}: {message}{}", detail_suffix(.detail))]
pub struct ServerError {
    status: StatusCode,
    hresult: HResult,
    message: String,
    detail: String,
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The WUA code, as hex (`0x80244016`).
    #[schema(value_type = String, example = "0x80244016")]
    pub hresult: HResult,
    /// The code's symbolic name (`WU_E_PT_HTTP_STATUS_BAD_REQUEST`).
    pub name: String,
    /// What happened and what to do, in one sentence.
    pub message: String,
    /// The particulars: which field, which value.
    pub detail: String,
}

impl ServerError {
    /// An error with its status, code, sentence and particulars.
    pub fn new(
        status: StatusCode,
        hresult: HResult,
        message: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        ServerError {
            status,
            hresult,
            message: message.into(),
            detail: detail.into(),
        }
    }

    /// 400: the request is not what the API accepts.
    pub fn bad_request(message: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            WU_E_PT_HTTP_STATUS_BAD_REQUEST,
            message,
            detail,
        )
    }

    /// 401: no credentials, or credentials the server does not know.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            WU_E_PT_HTTP_STATUS_DENIED,
            "this needs an admin token: send `Authorization: Bearer <token>` \
             with the token from the server's admin.token",
            detail,
        )
    }

    /// 401 to a computer: it must register, then present its identity.
    pub fn computer_unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            WU_E_PT_HTTP_STATUS_DENIED,
            "this needs a registered computer: register (POST /api/v1/computers/register) \
             and send `Authorization: Computer <computerId> <secret>`",
            detail,
        )
    }

    /// 404: nothing at this address.
    pub fn not_found(message: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            WU_E_PT_HTTP_STATUS_NOT_FOUND,
            message,
            detail,
        )
    }

    /// 409: the request clashes with what the server holds.
    pub fn conflict(message: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            WU_E_PT_HTTP_STATUS_CONFLICT,
            message,
            detail,
        )
    }

    /// 413: the body is larger than the server accepts.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            WU_E_PT_HTTP_STATUS_BAD_REQUEST,
            "the request body is larger than the server accepts",
            format!("the limit is {limit} bytes"),
        )
    }

    /// 503: the store cannot answer now; try again.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL,
            "the server's store cannot answer now; try again later",
            detail,
        )
    }

    /// 500: a fault of the server's own (its disk, a bug), never the
    /// request's.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            WU_E_PT_HTTP_STATUS_SERVER_ERROR,
            "the server failed; its log says why",
            detail,
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The WUA code.
    pub fn hresult(&self) -> HResult {
        self.hresult
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            hresult: self.hresult,
            name: self.hresult.name().unwrap_or("UNKNOWN").to_owned(),
            message: self.message.clone(),
            detail: self.detail.clone(),
        }
    }

    /// The JSON error a bare status gets (from a layer that knows no
    /// better, such as the timeout).
    pub fn for_status(status: StatusCode) -> Self {
        let hresult = match status {
            StatusCode::UNAUTHORIZED => WU_E_PT_HTTP_STATUS_DENIED,
            StatusCode::FORBIDDEN => E_ACCESSDENIED,
            StatusCode::NOT_FOUND => WU_E_PT_HTTP_STATUS_NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED => WU_E_PT_HTTP_STATUS_BAD_METHOD,
            StatusCode::REQUEST_TIMEOUT => WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT,
            StatusCode::CONFLICT => WU_E_PT_HTTP_STATUS_CONFLICT,
            StatusCode::SERVICE_UNAVAILABLE => WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL,
            status if status.is_server_error() => WU_E_PT_HTTP_STATUS_SERVER_ERROR,
            _ => WU_E_PT_HTTP_STATUS_BAD_REQUEST,
        };
        let reason = status.canonical_reason().unwrap_or("error");
        Self::new(
            status,
            hresult,
            format!("HTTP {} {reason}", status.as_u16()),
            "",
        )
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        // Agents wait this long before they try again (docs/server.md, the sync).
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for ServerError {
    fn from(error: crate::store::StoreError) -> Self {
        ServerError::unavailable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_503_says_when_to_try_again_and_a_400_does_not() {
        let response = ServerError::unavailable("the store is down").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[axum::http::header::RETRY_AFTER],
            RETRY_AFTER_SECS
        );
        let response = ServerError::bad_request("no", "").into_response();
        assert!(
            !response
                .headers()
                .contains_key(axum::http::header::RETRY_AFTER)
        );
    }
}
