//! herald's HTTP API: the REST routes under `/api/v1`, their OpenAPI document, health checks,
//! the signed file URLs under `/storage/v1`, and the layers every request passes (request ids,
//! tracing, body limit). Handlers translate
//! requests into engine and store calls and nothing more; extractors do authentication and
//! parsing.
#![forbid(unsafe_code)]

mod doc;
mod error;
mod extract;
pub mod graphql;
mod limits;
mod openapi;
pub mod responses;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::Router;
use herald_domain::console::ConsolePolicy;
use herald_engine::auth::Authenticator;
use herald_engine::blobs::Blobs;
use herald_engine::Engine;
use herald_store::Store;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ApiResult};
pub use limits::RequestLimits;
pub use openapi::openapi_json;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    /// Who an API key belongs to; apart from the engine, which an API-only server never runs.
    pub auth: Arc<Authenticator>,
    /// `POST /graphql`'s schema, built once.
    pub graphql: graphql::HeraldSchema,
    /// Files (run files, artifact files and manifests) and the signed URLs clients reach them
    /// by: `presign_upload`, `presign_download`, `exists`, `open`, `read`.
    pub blobs: Arc<Blobs>,
    /// What is kept of the console lines runs stream (`runs.console`).
    pub console: ConsolePolicy,
}

impl AppState {
    /// The state of a server on `store`, authenticating API keys against it, keeping files in
    /// `blobs`.
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>, blobs: Arc<Blobs>) -> Self {
        Self {
            auth: Arc::new(Authenticator::new(store.clone())),
            graphql: graphql::schema(),
            store,
            engine,
            blobs,
            console: ConsolePolicy::default(),
        }
    }

    /// The same state keeping console lines by `policy`.
    pub fn with_console(self, policy: ConsolePolicy) -> Self {
        Self {
            console: policy,
            ..self
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface, ready to serve.
pub fn router(state: AppState, limits: RequestLimits) -> Router {
    let (routes, _) = routes::routes();
    routes
        .fallback(routes::ops::not_found)
        .method_not_allowed_fallback(routes::ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), wake_matcher))
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            limits::bound_body,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
                })
                .on_response(|res: &axum::http::Response<_>, latency: Duration, _span: &tracing::Span| {
                    tracing::debug!(status = res.status().as_u16(), latency_us = latency.as_micros() as u64, "response");
                }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// After any successful write, tells the matcher new events may be waiting, so automations
/// fire without waiting for its poll.
async fn wake_matcher(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let writes =
        req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD;
    let res = next.run(req).await;
    if writes && res.status().is_success() {
        state.engine.notify_events();
    }
    res
}
