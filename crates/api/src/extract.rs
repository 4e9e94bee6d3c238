//! Extractors: authentication, and JSON, path and query parsing whose failures are JSON
//! errors that name the offending field, so handlers only see well-formed input.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine as _;
use herald_domain::catalog::User;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

/// The authenticated caller, from `Authorization: Bearer KEY` or HTTP basic auth with the key
/// as password (the user part, `api` for the wandb client, is ignored).
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated(
                "missing Authorization header; send `Authorization: Bearer <api key>`",
            )
        })?;
        let header = header
            .to_str()
            .map_err(|_| ApiError::unauthenticated("Authorization header is not valid text"))?;
        let key = api_key_from_header(header)?;
        let user = state.engine.authenticate(&key).await?;
        Ok(Caller(user))
    }
}

fn api_key_from_header(header: &str) -> Result<String, ApiError> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::unauthenticated("basic credentials are not valid base64"))?;
        let (_, key) = decoded.split_once(':').ok_or_else(|| {
            ApiError::unauthenticated("basic credentials must be `api:<api key>`")
        })?;
        return Ok(key.to_string());
    }
    Err(ApiError::unauthenticated(
        "unsupported Authorization scheme; use Bearer or Basic",
    ))
}

/// A JSON body, parsed with the path of the first offending field in the error.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a JSON body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON bytes into `T`, naming the offending path on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // The typed parse stops at its first error, which is not always the one to report:
        // serde_json calls `null` where an enum belongs a syntax error, and an unknown field
        // is found before the truncation after it. Whether the body is JSON at all decides.
        if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            return ApiError::bad_request("invalid_json", format!("malformed JSON: {syntax}"));
        }
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at {path}")
        };
        ApiError::bad_request(
            "invalid_input",
            format!("invalid request body{at}: {inner}"),
        )
        .with_path(if path == "." { String::new() } else { path })
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn body_error(e: BytesRejection) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(timed_out) = s.downcast_ref::<crate::limits::BodyTimedOut>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                timed_out.to_string(),
            );
        }
        source = s.source();
    }
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        crate::limits::payload_too_large()
    } else {
        ApiError::bad_request(
            "invalid_body",
            format!("could not read the request body: {e}"),
        )
    }
}

/// Path parameters, with JSON errors.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// Query parameters, with JSON errors.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_bearer_and_basic() {
        assert_eq!(api_key_from_header("Bearer abc").unwrap(), "abc");
        let basic = base64::engine::general_purpose::STANDARD.encode("api:secretkey");
        assert_eq!(
            api_key_from_header(&format!("Basic {basic}")).unwrap(),
            "secretkey"
        );
        assert!(api_key_from_header("Digest x").is_err());
        assert!(api_key_from_header("Basic !!!").is_err());
    }
}
