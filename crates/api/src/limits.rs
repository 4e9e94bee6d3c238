//! Limits on a request's body that hold before any handler runs: a body declared larger than
//! [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES) is refused from its `Content-Length` alone, and a
//! body must arrive whole within the body timeout, however slowly its bytes trickle in. Without
//! these a client declaring two megabytes and sending ten bytes held a request (and its
//! connection) open for as long as it liked.
//!
//! Uploads to `/storage/v1/…` are the exception: a file may be gigabytes, so neither limit
//! fits. Their size is bounded by the blob store's own per-file limit (declared or counted as
//! the bytes arrive), and their time by an idle timeout: the body timeout runs from the last
//! bytes received rather than from the headers, so an upload may take as long as it needs while
//! it keeps moving.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse as _, Response};

use crate::error::ApiError;

/// Limits on requests, set by the server's configuration.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Time from a request's headers to the last byte of its body.
    pub body_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The body did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// No part of an upload arrived for this long.
#[derive(Debug, thiserror::Error)]
#[error("no part of the upload arrived for {0:?}")]
pub struct UploadStalled(pub Duration);

/// Whether `req` is an upload to the blob store, exempt from the body size limit.
fn is_upload(req: &axum::extract::Request) -> bool {
    req.method() == axum::http::Method::PUT
        && req
            .uri()
            .path()
            .starts_with(herald_engine::blobs::STORAGE_PATH)
}

/// Whether `req` is a post to the SDK's file_stream, whose bodies may be larger.
fn is_file_stream(req: &axum::extract::Request) -> bool {
    req.method() == axum::http::Method::POST && req.uri().path().ends_with("/file_stream")
}

/// Refuses an oversized declared body, and gives the body a deadline (an upload, an idle
/// timeout).
pub async fn bound_body(
    axum::extract::State(limits): axum::extract::State<RequestLimits>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let upload = is_upload(&req);
    let limit = if is_file_stream(&req) {
        crate::routes::file_stream::MAX_POST_BYTES
    } else {
        crate::MAX_BODY_BYTES
    };
    if !upload && declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return payload_too_large(limit).into_response();
    }
    let (parts, body) = req.into_parts();
    let body = Body::new(Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(limits.body_timeout)),
        timeout: limits.body_timeout,
        idle: upload,
    });
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// The body's length as its `Content-Length` declares it.
pub(crate) fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The 413 answer, for a declared or an actual body over the limit.
pub(crate) fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request body is over the limit of {limit} bytes"),
    )
}

/// A body that fails once its deadline passes before its end; with `idle`, the deadline moves
/// on with each frame received.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    idle: bool,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if self.idle {
                let next = tokio::time::Instant::now() + self.timeout;
                self.sleep.as_mut().reset(next);
            }
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let e = if self.idle {
                axum::Error::new(UploadStalled(self.timeout))
            } else {
                axum::Error::new(BodyTimedOut(self.timeout))
            };
            return Poll::Ready(Some(Err(e)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
