//! `/storage/v1/{key}`: where clients upload and download files with the URLs herald hands out
//! (`herald_engine::blobs`). No API key: the URL's signature is the credential, granting one
//! method on one key until it expires. Uploads stream into the blob store, exempt from the
//! 1 MiB body limit but bounded by the store's per-file limit; downloads stream out.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use herald_blobs::{BlobError, BlobKey, PutOptions};
use herald_engine::blobs::{Access, SignedParams, UrlError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

/// The signature of a download URL, as herald wrote it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// When the URL stops working, in Unix seconds. A request without it (or `sig`) is
    /// refused (403).
    #[param(value_type = Option<i64>)]
    pub expires: Option<String>,
    /// The URL's signature (unpadded base64url).
    pub sig: Option<String>,
}

/// The signature of an upload URL, as herald wrote it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// When the URL stops working, in Unix seconds. A request without it (or `sig`) is
    /// refused (403).
    #[param(value_type = Option<i64>)]
    pub expires: Option<String>,
    /// The MD5 the bytes must have (32 lowercase hex digits), when the URL names one.
    #[param(pattern = r"^[0-9a-f]{32}$")]
    pub md5: Option<String>,
    /// The URL's signature (unpadded base64url).
    pub sig: Option<String>,
}

/// `{key}`: where the file is stored.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    #[param(value_type = crate::doc::BlobKeyPath)]
    pub key: String,
}

/// A stored upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoredBlob {
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// The MD5 of the bytes, base64 (as W&B writes digests).
    pub md5: String,
}

/// Stores the request's bytes under `key`, replacing what was there; nothing is stored unless
/// the whole body arrives and passes.
#[utoipa::path(put, path = "/storage/v1/{*key}", tag = "storage", security(()),
    params(KeyPath, UploadQuery),
    request_body(content = crate::doc::Binary, content_type = "application/octet-stream",
        description = "The file's bytes, streamed: exempt from the API's 1 MiB limit, up to `storage.blobs.max_file_size` (5 GiB by default). The body timeout counts from the last bytes received."),
    responses(
        (status = 200, body = StoredBlob, description = "Stored."),
        (status = 400, body = ErrorBody, description = "Not a blob key (`invalid_key`), bytes whose MD5 is not the one the URL names (`md5_mismatch`), or a body that ended early (`upload_interrupted`)."),
        (status = 403, body = ErrorBody, description = "No signature (`unsigned`), one that does not match this method, key and parameters (`bad_signature`), or an expired URL (`url_expired`)."),
        (status = 408, body = ErrorBody, description = "No part of the body arrived within the body timeout."),
        (status = 413, body = ErrorBody, description = "The file is over the per-file limit (declared or sent); the message names it."),
        (status = 507, body = ErrorBody, description = "Storing the file would take the blob store past its total limit, or its disk is full.")))]
pub async fn upload(
    State(state): State<AppState>,
    ApiPath(KeyPath { key }): ApiPath<KeyPath>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<StoredBlob>> {
    let key = parse_key(&key)?;
    let params = SignedParams {
        expires: q.expires,
        md5: q.md5,
        sig: q.sig,
    };
    let grant = state
        .blobs
        .verify(Access::Upload, &key, &params)
        .map_err(refused)?;
    let declared_len = crate::limits::declared_length(&headers);
    let stream = body.into_data_stream().map_err(body_error).boxed();
    let options = PutOptions {
        md5: grant.md5,
        declared_len,
    };
    let stored = state
        .blobs
        .store()
        .put(&key, stream, options)
        .await
        .map_err(blob_error)?;
    Ok(Json(StoredBlob {
        key: key.to_string(),
        size: stored.size,
        md5: base64::engine::general_purpose::STANDARD.encode(stored.md5),
    }))
}

/// The file under `key` (`HEAD`: its size only).
#[utoipa::path(get, path = "/storage/v1/{*key}", tag = "storage", security(()),
    params(KeyPath, DownloadQuery),
    responses(
        (status = 200, content_type = "application/octet-stream", body = crate::doc::Binary,
         headers(("content-length" = u64, description = "The file's size in bytes.")),
         description = "The file's bytes."),
        (status = 400, body = ErrorBody, description = "Not a blob key (`invalid_key`)."),
        (status = 403, body = ErrorBody, description = "No signature (`unsigned`), one that does not match this method, key and parameters (`bad_signature`), or an expired URL (`url_expired`)."),
        (status = 404, body = ErrorBody, description = "Nothing is stored under the key.")))]
pub async fn download(
    State(state): State<AppState>,
    method: Method,
    ApiPath(KeyPath { key }): ApiPath<KeyPath>,
    ApiQuery(q): ApiQuery<DownloadQuery>,
) -> ApiResult<Response> {
    let key = parse_key(&key)?;
    let params = SignedParams {
        expires: q.expires,
        md5: None,
        sig: q.sig,
    };
    state
        .blobs
        .verify(Access::Download, &key, &params)
        .map_err(refused)?;
    let absent = || ApiError::not_found(format!("nothing is stored under {key}"));
    let (size, body) = if method == Method::HEAD {
        let size = state
            .blobs
            .exists(&key)
            .await
            .map_err(blob_error)?
            .ok_or_else(absent)?;
        (size, Body::empty())
    } else {
        let blob = state
            .blobs
            .open(&key)
            .await
            .map_err(blob_error)?
            .ok_or_else(absent)?;
        (blob.size, Body::from_stream(blob.stream))
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}

fn parse_key(key: &str) -> ApiResult<BlobKey> {
    BlobKey::parse(key)
        .map_err(|e| ApiError::bad_request("invalid_key", e.to_string()).with_path("key"))
}

fn refused(e: UrlError) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string())
}

/// An upload's body failing: its own timeout, or the client going away.
fn body_error(e: axum::Error) -> std::io::Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.is::<crate::limits::UploadStalled>() {
            return std::io::Error::new(std::io::ErrorKind::TimedOut, s.to_string());
        }
        source = s.source();
    }
    std::io::Error::other(e)
}

fn blob_error(e: BlobError) -> ApiError {
    let message = e.to_string();
    match e {
        BlobError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
        }
        BlobError::Full { .. } => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            message,
        ),
        BlobError::Md5Mismatch { .. } => ApiError::bad_request("md5_mismatch", message),
        BlobError::Body(io) if io.kind() == std::io::ErrorKind::TimedOut => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            io.to_string(),
        ),
        BlobError::Body(_) => ApiError::bad_request("upload_interrupted", message),
        BlobError::Backend(e) => herald_engine::Error::Internal(e).into(),
    }
}
