//! The harness the test binaries under `tests/` share (`api`, `automations`, `run_automations`,
//! `slack`, `replicas`, `cli`). Each includes it with `#[path = "../support/mod.rs"] mod support;` (or
//! `"support/mod.rs"` from a single-file test) and, where it has one, re-exports it from its own
//! `helpers` module, which keeps only what is specific to that binary.
//!
//! - [`start_app`] runs the real server in process on 127.0.0.1:0 with a fresh data directory,
//!   an optional config file built from [`Options`], and a fake environment; [`TestApp`] owns it.
//! - [`ChildServer`] runs the real `herald serve` binary.
//! - [`Api`] is a small JSON client acting as one API key (or none).
//! - [`receiver::Receiver`] is a real HTTP server on loopback that records every request and
//!   answers as each test tells it to.
//! - `waits` polls until a deadline for what the engine does in the background: executions
//!   reaching a state, the matcher catching up.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

mod app;
mod child;
mod client;
pub mod receiver;
mod waits;

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

// The items of each file, for `use crate::support::*`; a binary that uses none of a file's
// items would otherwise be warned that its re-export is unused.
#[allow(unused_imports)]
pub use {app::*, child::*, client::*, waits::*};

/// The bootstrap admin's key of every in-process server (`HERALD_BOOTSTRAP_API_KEY`).
pub const ADMIN_KEY: &str = "herald-test-bootstrap-admin-key-00000000";

/// The HTTP client behind every [`Api`] and readiness check.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// Polls `f` every 20 ms until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts the status and returns the body.
#[track_caller]
pub fn expect((status, body): (StatusCode, Value), want: StatusCode) -> Value {
    assert_eq!(status, want, "unexpected status; body: {body}");
    body
}
