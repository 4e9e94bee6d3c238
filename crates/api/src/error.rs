//! The one error type at the HTTP boundary and its status table. Every error leaves as
//! `{"error": {"code", "message", "path"?}}`; internal errors are logged with their cause
//! chain and answered with a short generic message.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_domain::InvalidInput;
use herald_store::StoreError;
use serde::{Deserialize, Serialize};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub path: Option<String>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code: `invalid_input`, `invalid_json`, `not_found`, …
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, when there is one (`rows[2].values.loss`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            path: None,
        }
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        self.path = (!p.is_empty()).then_some(p);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn internal(e: anyhow::Error) -> Self {
        tracing::error!(error = ?e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        let message = if e.path.is_empty() {
            e.message
        } else {
            format!("{}: {}", e.path, e.message)
        };
        Self::bad_request("invalid_input", message).with_path(e.path)
    }
}

impl From<herald_engine::Error> for ApiError {
    fn from(e: herald_engine::Error) -> Self {
        use herald_engine::Error as E;
        match e {
            E::Unauthenticated(m) => Self::unauthenticated(m),
            E::Forbidden(m) => Self::forbidden(m),
            E::NotFound(m) => Self::not_found(m),
            E::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            E::Invalid(i) => i.into(),
            E::Internal(e) => Self::internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        herald_engine::Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                path: self.path,
            },
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer, Basic realm=\"herald\""),
            );
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
