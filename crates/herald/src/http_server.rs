//! The HTTP server's connections: accepting them, bounding how many are open and how long a
//! client may take, and closing them on shutdown. The router answers requests; this module
//! decides which connections get to send any.
//!
//! A client that opens a connection and never finishes its request's headers costs a socket
//! and a task and does no work; enough of them use up the process's file descriptors and lock
//! everyone out. So:
//!
//! - a client has `header_timeout` to send a request's headers, on a new connection and between
//!   two requests on a kept-alive one (hyper's header read timeout covers both), after which the
//!   connection is closed;
//! - at most `max_connections` are open at once. Until it has sent a whole request's headers a
//!   connection is *unproven*; when the limit is reached, a new connection closes the oldest
//!   unproven one, so a flood of half-open connections can only push out itself, never a client
//!   that is being served. When every open connection is proven the server stops accepting
//!   until one closes (new clients wait in the kernel's backlog);
//! - running out of descriptors anyway (`accept` failing with EMFILE) pauses accepting briefly
//!   rather than ending the server.
//!
//! Only HTTP/1.1 is served: herald's clients (its CLI, the `wandb` SDK, browsers, curl) speak
//! it, and a second protocol would need its own set of timeouts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How long shutdown waits for requests in progress before it closes their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The limits on clients' connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets requests in progress
/// finish (for up to [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Slots::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = slots.room() => {}
        }
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE, ENFILE) or a connection that died in the
                    // backlog: neither ends the server. The pause lets timeouts free some.
                    tracing::warn!(error = %e, "accepting a connection failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = slots.admit();
        let proven = conn.proven.clone();
        let slots_for_service = slots.clone();
        let id = conn.id;
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            if !proven.swap(true, Ordering::Relaxed) {
                slots_for_service.prove(id);
            }
            router.clone().oneshot(req)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            tokio::select! {
                // Errors here are the client's doing (a timeout, a reset, bad HTTP).
                result = connection => if let Err(e) = result {
                    tracing::debug!(error = %e, "connection closed with an error");
                },
                // Pushed out by a newer connection; dropping the connection closes its socket.
                _ = conn.evicted.cancelled() => {}
            }
            drop(conn);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after {SHUTDOWN_GRACE:?}; closing them");
    }
}

/// The open connections: how many, and which have not yet sent a request (oldest first).
struct Slots {
    max: usize,
    state: Mutex<SlotState>,
    freed: Notify,
}

#[derive(Default)]
struct SlotState {
    open: usize,
    next_id: u64,
    unproven: VecDeque<(u64, CancellationToken)>,
}

/// One open connection's hold on a slot; dropping it frees the slot.
struct Conn {
    slots: Arc<Slots>,
    id: u64,
    proven: Arc<AtomicBool>,
    evicted: CancellationToken,
}

impl Slots {
    fn new(max: usize) -> Self {
        Self {
            max,
            state: Mutex::new(SlotState::default()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, SlotState> {
        self.state.lock()
    }

    /// Waits until a new connection could be admitted: a slot is free, or an unproven
    /// connection could be pushed out.
    async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            {
                let s = self.lock();
                if s.open < self.max || !s.unproven.is_empty() {
                    return;
                }
            }
            freed.await;
        }
    }

    /// Takes a slot for a connection just accepted, pushing out the oldest unproven connection
    /// when none is free. (If that one proved itself meanwhile, the count runs one over until a
    /// connection closes; [`Slots::room`] then waits.)
    fn admit(self: &Arc<Self>) -> Conn {
        let mut s = self.lock();
        if s.open >= self.max {
            if let Some((_, oldest)) = s.unproven.pop_front() {
                oldest.cancel();
            }
        }
        s.open += 1;
        s.next_id += 1;
        let id = s.next_id;
        let evicted = CancellationToken::new();
        s.unproven.push_back((id, evicted.clone()));
        Conn {
            slots: self.clone(),
            id,
            proven: Arc::new(AtomicBool::new(false)),
            evicted,
        }
    }

    /// Marks a connection as having sent a request: it is no longer pushed out.
    fn prove(&self, id: u64) {
        let mut s = self.lock();
        if let Some(i) = s.unproven.iter().position(|(c, _)| *c == id) {
            s.unproven.remove(i);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut s = self.slots.lock();
        s.open -= 1;
        if !self.proven.load(Ordering::Relaxed) {
            if let Some(i) = s.unproven.iter().position(|(c, _)| *c == self.id) {
                s.unproven.remove(i);
            }
        }
        drop(s);
        self.slots.freed.notify_one();
    }
}

/// The default connection limit: most of the process's open-file limit, leaving room for the
/// database, the delivery client's connections and log files.
pub fn default_max_connections() -> usize {
    const RESERVE: usize = 512;
    open_files_limit().map_or(1024, |n| n.saturating_sub(RESERVE).max(64))
}

/// The soft limit on open files (Linux: from `/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(1 << 20);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_pushes_out_its_oldest_unproven_connection() {
        let slots = Arc::new(Slots::new(2));
        let a = slots.admit();
        let b = slots.admit();
        // `a` sends a request; `b` never does.
        a.proven.store(true, Ordering::Relaxed);
        slots.prove(a.id);
        let c = slots.admit();
        assert!(b.evicted.is_cancelled(), "the unproven connection goes");
        assert!(!a.evicted.is_cancelled(), "the proven one stays");
        drop(b);
        assert_eq!(slots.lock().open, 2);
        // Now both are proven: nobody can be pushed out, so there is no room until one closes.
        c.proven.store(true, Ordering::Relaxed);
        slots.prove(c.id);
        let room = slots.room();
        tokio_test_block_on_pending(room);
        drop(a);
        assert_eq!(slots.lock().open, 1);
        assert!(slots.lock().unproven.is_empty());
    }

    /// Polls a future once and asserts it is not ready.
    fn tokio_test_block_on_pending(f: impl std::future::Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let waited = tokio::time::timeout(Duration::from_millis(20), f).await;
            assert!(waited.is_err(), "there must be no room");
        });
    }

    #[test]
    fn the_open_files_limit_is_read() {
        if cfg!(target_os = "linux") {
            assert!(open_files_limit().is_some_and(|n| n > 0));
        }
        assert!(default_max_connections() >= 64);
    }
}
