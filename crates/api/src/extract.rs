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
        caller_from_headers(&parts.headers, state).await.map(Caller)
    }
}

/// The user whose API key the request carries (Bearer, or Basic `api:<key>` as W&B's SDK sends).
pub(crate) async fn caller_from_headers(
    headers: &axum::http::HeaderMap,
    state: &AppState,
) -> Result<User, ApiError> {
    let header = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthenticated(
            "missing Authorization header; send `Authorization: Bearer <api key>`",
        )
    })?;
    let header = header
        .to_str()
        .map_err(|_| ApiError::unauthenticated("Authorization header is not valid text"))?;
    let key = api_key_from_header(header)?;
    Ok(state.auth.authenticate(&key).await?)
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
        let is_json = declared_json(req.headers());
        if !is_json {
            return Err(not_json());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: `None` when the body is empty (or only whitespace), whatever its
/// `Content-Type`; otherwise as [`ApiJson`], with the same 413 and 415 answers.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = declared_json(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !is_json {
            return Err(not_json());
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// A JSON body of up to `LIMIT` bytes, for the one route whose bodies outgrow the server's
/// 1 MiB: the SDK's file_stream posts, which carry every history row logged since the last
/// post. (`limits::bound_body` lets their declared length through up to the same limit.)
///
/// U+0000 is let through: a script may print one, and refusing the post would lose the run's
/// history with it. Of a file_stream post herald keeps console lines as text, with the NUL
/// replaced (`ConsolePolicy::kept`); the rest is JSON it parses again and stores escaped.
pub struct LargeJson<T, const LIMIT: usize>(pub T);

impl<T: DeserializeOwned, S: Send + Sync, const LIMIT: usize> FromRequest<S>
    for LargeJson<T, LIMIT>
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !declared_json(req.headers()) {
            return Err(not_json());
        }
        let bytes = axum::body::to_bytes(req.into_body(), LIMIT)
            .await
            .map_err(|e| {
                // A body that stopped arriving in time says so; anything else was too long.
                if std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<crate::limits::BodyTimedOut>())
                {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        e.to_string(),
                    )
                } else {
                    crate::limits::payload_too_large(LIMIT)
                }
            })?;
        parse_json_with_nul(&bytes).map(LargeJson)
    }
}

/// Whether the request says its body is JSON (`application/json` or `…+json`).
pub(crate) fn declared_json(headers: &axum::http::HeaderMap) -> bool {
    headers
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
        .unwrap_or(false)
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "expected a JSON body with `Content-Type: application/json`",
    )
}

/// Parses JSON bytes into `T`, naming the offending path on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul_in_json(bytes)?;
    parse_json_with_nul(bytes)
}

/// [`parse_json`] without refusing U+0000, for a body whose handler deals with it.
fn parse_json_with_nul<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

/// Refuses a body with U+0000 in any string or object key. PostgreSQL stores neither a NUL in
/// text nor `\u0000` in jsonb, and SQLite would keep it, so the two backends would answer
/// differently (PostgreSQL with a 500); no field of the API has a use for it. JSON can only
/// carry a NUL escaped, so a body without the six bytes `\u0000` is passed without parsing it
/// twice; one with them is parsed to find the string's path (or left to the typed parse's
/// syntax error when it is not JSON).
fn refuse_nul_in_json(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match nul_path(&value, &mut String::new()) {
        None => Ok(()),
        Some(path) => {
            let at = if path.is_empty() {
                String::new()
            } else {
                format!(" at {path}")
            };
            Err(ApiError::bad_request(
                "invalid_input",
                format!(
                    "invalid request body{at}: text must not contain the NUL character (U+0000)"
                ),
            )
            .with_path(path))
        }
    }
}

/// The path (`rows[2].values.loss`, as serde_path_to_error writes it) of the first string or
/// object key in `v` that holds U+0000; a key is named with its NUL written `\u0000`.
fn nul_path(v: &serde_json::Value, path: &mut String) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => s.contains('\0').then(|| path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_path(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            if key.contains('\0') {
                path.push_str(&key.replace('\0', "\\u0000"));
                return Some(path.clone());
            }
            path.push_str(key);
            let found = nul_path(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Refuses a path or query parameter holding U+0000 (`%00`), naming it, for the same reason as
/// in bodies.
fn refuse_nul_in_param<'a>(
    kind: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    for (name, value) in params {
        if name.contains('\0') || value.contains('\0') {
            let name = name.replace('\0', "\\u0000");
            return Err(ApiError::bad_request(
                if kind == "path" {
                    "invalid_path"
                } else {
                    "invalid_query"
                },
                format!("{kind} parameter {name} must not contain the NUL character (U+0000)"),
            )
            .with_path(name));
        }
    }
    Ok(())
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
        crate::limits::payload_too_large(crate::MAX_BODY_BYTES)
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
        // Percent-decoded; one that is not UTF-8 is left to `Path`'s own refusal.
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await {
            refuse_nul_in_param("path", raw.iter())?;
        }
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
        if let Ok(axum::extract::Query(pairs)) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        {
            refuse_nul_in_param("query", pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        }
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
