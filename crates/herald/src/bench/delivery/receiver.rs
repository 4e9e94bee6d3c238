//! The webhook receiver `bench delivery` delivers to, in the benchmark's own process so that
//! both ends of every latency are timed on one clock: it notes when each payload key arrived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::routing::post;
use parking_lot::Mutex;

/// What the receiver saw: arrival time per payload key.
#[derive(Default)]
pub(super) struct Received {
    pub(super) at: Mutex<HashMap<String, Instant>>,
    pub(super) count: AtomicUsize,
}

/// The one field of a payload the receiver reads (raw POSTs carry one too, so the receiver
/// does the same work for every request).
#[derive(serde::Deserialize)]
struct Keyed<'a> {
    #[serde(borrow)]
    key: Option<std::borrow::Cow<'a, str>>,
}

/// Starts the receiver, with room for `expected` keys: growing the map mid-run would stall
/// every request behind its lock while the entries are moved.
pub(super) async fn receiver(expected: usize) -> anyhow::Result<(String, Arc<Received>)> {
    let state = Arc::new(Received {
        at: Mutex::new(HashMap::with_capacity(expected)),
        count: AtomicUsize::new(0),
    });
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let now = Instant::now();
                if let Ok(Keyed { key: Some(k) }) = serde_json::from_slice(&body) {
                    s.at.lock().insert(k.into_owned(), now);
                }
                s.count.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, state))
}

/// Waits until the receiver holds `n` keys. It looks every millisecond rather than being woken
/// by each request: arrival times are taken in the handler, so this costs the measured
/// processes no wake-up per delivery.
pub(super) async fn wait_for(
    received: &Received,
    n: usize,
    deadline: Duration,
) -> anyhow::Result<()> {
    let end = Instant::now() + deadline;
    while received.at.lock().len() < n {
        if Instant::now() > end {
            bail!(
                "only {} of {n} deliveries arrived within {deadline:?}",
                received.at.lock().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}
