//! herald's errors as GraphQL errors. Each carries `extensions.code` (`BAD_USER_INPUT`,
//! `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`, `INTERNAL`); those the SDK must see as an HTTP status
//! also carry `extensions.status`, which the handler answers with.

use async_graphql::{ErrorExtensions, ServerError};
use axum::http::StatusCode;
use herald_domain::InvalidInput;

/// The extension that sets the HTTP status of the whole answer.
pub const STATUS: &str = "status";

/// A problem with what the caller sent, naming the input field (`input.eventFilter`).
pub fn invalid(field: &str, message: impl std::fmt::Display) -> async_graphql::Error {
    let message = if field.is_empty() {
        message.to_string()
    } else {
        format!("{field}: {message}")
    };
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))
}

/// An engine error as a GraphQL error; input errors name `field` before their own path,
/// translated from REST's field names to the GraphQL input's by `rename`.
pub fn engine(e: herald_engine::Error, rename: fn(&str) -> String) -> async_graphql::Error {
    use herald_engine::Error as E;
    let (code, message, status) = match e {
        E::Unauthenticated(m) => ("UNAUTHENTICATED", m, Some(401)),
        E::Forbidden(m) => ("FORBIDDEN", m, None),
        E::NotFound(m) => ("NOT_FOUND", m, None),
        // The SDK reads a taken automation name from the status alone.
        E::Conflict(m) => ("CONFLICT", m, Some(409)),
        E::Invalid(InvalidInput { path, message }) => {
            return invalid(&rename(&path), message);
        }
        E::Internal(e) => {
            tracing::error!(error = ?e, "internal error in a GraphQL resolver");
            (
                "INTERNAL",
                "internal error; see the server log".to_string(),
                Some(500),
            )
        }
    };
    async_graphql::Error::new(message).extend_with(|_, x| {
        x.set("code", code);
        if let Some(s) = status {
            x.set(STATUS, s);
        }
    })
}

/// An engine error, with REST's field names kept.
pub fn plain(e: herald_engine::Error) -> async_graphql::Error {
    engine(e, |p| p.to_string())
}

/// A store error, as [`plain`].
pub fn store(e: herald_store::StoreError) -> async_graphql::Error {
    plain(e.into())
}

/// Something the caller named by id that does not exist, or that it may not see; `status`
/// makes the whole answer that HTTP status (W&B answers 404 to an update of a missing
/// automation, and the SDK relies on it).
pub fn not_found(message: impl Into<String>, status: Option<u16>) -> async_graphql::Error {
    let message = message.into();
    async_graphql::Error::new(message).extend_with(|_, x| {
        x.set("code", "NOT_FOUND");
        if let Some(s) = status {
            x.set(STATUS, s);
        }
    })
}

/// Turns a not-found engine error into [`not_found`] with `status`; others as [`plain`].
pub fn missing_is(status: u16) -> impl Fn(herald_engine::Error) -> async_graphql::Error {
    move |e| match e {
        herald_engine::Error::NotFound(m) => not_found(m, Some(status)),
        other => plain(other),
    }
}

/// The status of an answer: the first error's `status` extension, else 200 (GraphQL errors
/// travel in the body).
pub fn status_of(errors: &[ServerError]) -> StatusCode {
    errors
        .iter()
        .find_map(|e| {
            let ext = e.extensions.as_ref()?;
            match ext.get(STATUS)? {
                async_graphql::Value::Number(n) => n.as_u64(),
                _ => None,
            }
        })
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK)
}
