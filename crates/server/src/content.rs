//! Content files, stored once by SHA-256 in `DATA_DIR/content/<sha256>`:
//! uploads are streamed to a temporary file, bounded, verified and only
//! then renamed into place; downloads honour Range with a strong ETag.

use std::io::SeekFrom;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, IF_RANGE,
    RANGE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use openwua_model::hresult::WU_E_PT_HTTP_STATUS_BAD_REQUEST;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use utoipa::ToSchema;

use crate::api::{Shared, content_length, require_admin, truncate};
use crate::error::{ErrorBody, ServerError};
use crate::setup::UPLOAD_PREFIX;

/// What an upload did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContentReport {
    /// The file's SHA-256.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// False when the server held it already (the body was not read).
    pub stored: bool,
}

/// A content path segment: exactly 64 lower-case hex digits, so nothing
/// else can name a file.
fn parse_digest(text: &str) -> Result<String, ServerError> {
    if text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    {
        Ok(text.to_owned())
    } else {
        Err(ServerError::bad_request(
            "content is addressed by its SHA-256: 64 lower-case hex digits",
            format!("{:?} is not one", truncate(text)),
        ))
    }
}

/// Removes an unfinished upload's file if the request ends early.
struct UploadGuard(Option<PathBuf>);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Off the async thread; a leftover is removed at the next start.
            tokio::task::spawn_blocking(move || std::fs::remove_file(path));
        }
    }
}

/// Uploads a content file; its SHA-256 must match the path.
#[utoipa::path(put, path = "/api/v1/content/{sha256}", security(("admin" = [])),
    params(("sha256" = String, Path, description = "the file's SHA-256, 64 lower-case hex digits")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = ContentReport, description = "held already"),
        (status = 201, body = ContentReport, description = "stored"),
        (status = 400, body = ErrorBody, description = "not a digest, or the bytes do not match it"),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the server's content is at its content base URL"),
        (status = 413, body = ErrorBody)))]
pub async fn put_content(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(sha256): Path<String>,
    body: Body,
) -> Result<Response, ServerError> {
    require_admin(&state, &headers).await?;
    let sha256 = parse_digest(&sha256)?;
    if let Some(base) = &state.content_base_url {
        return Err(ServerError::conflict(
            "this server keeps no content: agents fetch it from its content_base_url; \
             put the file there",
            format!("{base}content/{sha256}"),
        ));
    }
    let limit = state.max_content_bytes;
    if let Some(length) = content_length(&headers)?
        && length > limit
    {
        return Err(ServerError::too_large(limit));
    }
    let final_path = state.content_dir.join(&sha256);
    if let Some(size) = state.store.content_size(&sha256).await?
        && tokio::fs::try_exists(&final_path).await.unwrap_or(false)
    {
        // Read and dropped (bounded), so a client that sent it anyway sees
        // an answer rather than a reset; clients ask with HEAD first.
        let mut body = body;
        let mut read: u64 = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read = read.saturating_add(frame.data_ref().map_or(0, |data| data.len() as u64));
            if read > limit {
                return Err(ServerError::too_large(limit));
            }
        }
        let report = ContentReport {
            sha256,
            size,
            stored: false,
        };
        return Ok((StatusCode::OK, axum::Json(report)).into_response());
    }

    let temp_path = state
        .content_dir
        .join(format!("{UPLOAD_PREFIX}{}", uuid::Uuid::new_v4()));
    let mut guard = UploadGuard(Some(temp_path.clone()));
    let io_error = |error: std::io::Error| ServerError::internal(format!("content store: {error}"));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp_path)
        .await
        .map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|error| ServerError::bad_request("the upload broke off", error.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size = size.saturating_add(data.len() as u64);
        if size > limit {
            return Err(ServerError::too_large(limit));
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(io_error)?;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != sha256 {
        return Err(ServerError::new(
            StatusCode::BAD_REQUEST,
            WU_E_PT_HTTP_STATUS_BAD_REQUEST,
            "the uploaded bytes do not have the SHA-256 in the path",
            format!("their SHA-256 is {actual}"),
        ));
    }
    file.sync_all().await.map_err(io_error)?;
    drop(file);
    tokio::fs::set_permissions(&temp_path, std::fs::Permissions::from_mode(0o644))
        .await
        .map_err(io_error)?;
    tokio::fs::rename(&temp_path, &final_path)
        .await
        .map_err(io_error)?;
    guard.0 = None;
    // The file first, then the row: a row always has its file.
    state.store.add_content(&sha256, size).await?;
    let report = ContentReport {
        sha256,
        size,
        stored: true,
    };
    Ok((StatusCode::CREATED, axum::Json(report)).into_response())
}

/// A satisfiable byte range, inclusive.
#[derive(Debug, PartialEq, Eq)]
struct ByteRange {
    start: u64,
    end: u64,
}

/// What a Range header asks of a file of `size` bytes: `None` for the whole
/// file (absent, or a form this server does not serve in parts, such as
/// several ranges), `Err` when it cannot be satisfied.
fn parse_range(value: &str, size: u64) -> Result<Option<ByteRange>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return Ok(None);
        };
        if suffix == 0 || size == 0 {
            return Err(());
        }
        ByteRange {
            start: size.saturating_sub(suffix),
            end: size - 1,
        }
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return Ok(None);
        };
        let end = if last.is_empty() {
            u64::MAX
        } else {
            match last.parse::<u64>() {
                Ok(end) if end >= start => end,
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(());
        }
        ByteRange {
            start,
            end: end.min(size - 1),
        }
    };
    Ok(Some(range))
}

/// Downloads a content file, whole or one byte range.
#[utoipa::path(get, path = "/api/v1/content/{sha256}",
    params(("sha256" = String, Path, description = "the file's SHA-256, 64 lower-case hex digits"),
        ("Range" = Option<String>, Header, description = "one range: bytes=first-last, bytes=first- or bytes=-suffix")),
    responses(
        (status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 206, description = "the range", content_type = "application/octet-stream"),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody)))]
pub async fn get_content(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Path(sha256): Path<String>,
) -> Result<Response, ServerError> {
    let sha256 = parse_digest(&sha256)?;
    let not_found = || ServerError::not_found("the server holds no such content", sha256.clone());
    let Some(size) = state.store.content_size(&sha256).await? else {
        return Err(not_found());
    };
    let etag = format!("\"{sha256}\"");
    let etag_value =
        HeaderValue::from_str(&etag).map_err(|error| ServerError::internal(error.to_string()))?;
    let matches_etag = |value: &HeaderValue| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        })
    };
    if headers.get(IF_NONE_MATCH).is_some_and(matches_etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag_value)]).into_response());
    }
    // If-Range with another validator: the whole file.
    let range_allowed = headers
        .get(IF_RANGE)
        .is_none_or(|value| value.as_bytes() == etag.as_bytes());
    let range = match headers.get(RANGE).and_then(|value| value.to_str().ok()) {
        Some(value) if range_allowed => parse_range(value, size).map_err(|()| {
            ServerError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                openwua_model::hresult::WU_E_PT_HTTP_STATUS_BAD_REQUEST,
                "the range is not within the file",
                format!("the file has {size} bytes"),
            )
        }),
        _ => Ok(None),
    };
    let range = match range {
        Ok(range) => range,
        Err(error) => {
            let mut response = error.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };

    let mut file = match tokio::fs::File::open(state.content_dir.join(&sha256)).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(error) => return Err(ServerError::internal(format!("content store: {error}"))),
    };
    let (status, start, length) = match &range {
        Some(range) => (
            StatusCode::PARTIAL_CONTENT,
            range.start,
            range.end - range.start + 1,
        ),
        None => (StatusCode::OK, 0, size),
    };
    let mut response = Response::builder()
        .status(status)
        .header(ETAG, etag_value)
        .header(ACCEPT_RANGES, "bytes")
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, length);
    if let Some(range) = &range {
        response = response.header(
            CONTENT_RANGE,
            format!("bytes {}-{}/{size}", range.start, range.end),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|error| ServerError::internal(format!("content store: {error}")))?;
        Body::from_stream(tokio_util::io::ReaderStream::new(file.take(length)))
    };
    response
        .body(body)
        .map_err(|error| ServerError::internal(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let range = |start, end| Ok(Some(ByteRange { start, end }));
        assert_eq!(parse_range("bytes=0-9", 100), range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), range(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), range(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), range(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("bytes=5-1", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 100), Ok(None));
    }

    #[test]
    fn digests() {
        assert!(parse_digest(&"a".repeat(64)).is_ok());
        assert!(parse_digest(&"A".repeat(64)).is_err());
        assert!(parse_digest("..").is_err());
        assert!(parse_digest(&"a".repeat(65)).is_err());
    }
}
