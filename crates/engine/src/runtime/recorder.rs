//! [`Recorder`]: delivery attempts made and not yet stored, and their group commits. Deliveries
//! hand it each attempt ([`Recorder::push`]) and go on; its task ([`Recorder::run`]) writes all
//! that are waiting in one transaction, then releases them in the [`Ledger`]. A delivery that
//! must not run further ahead of the database writes them itself ([`Recorder::flush`]).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_domain::ids::{ExecutionId, IntegrationId};
use herald_store::{AttemptOutcome, NewAttempt, Store};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;

/// Fewer attempts than this waiting make the recorder wait a millisecond for more.
const RECORD_GATHER: usize = 64;

/// A delivery attempt made and not yet recorded.
pub(super) struct Sent {
    pub(super) done: (ExecutionId, NewAttempt, AttemptOutcome),
    pub(super) destination: Option<IntegrationId>,
}

pub(super) struct Recorder {
    store: Arc<dyn Store>,
    ledger: Arc<Ledger>,
    /// Attempts waiting to be recorded; whoever holds `recording` writes all of them at once.
    unrecorded: Mutex<Vec<Sent>>,
    recording: tokio::sync::Mutex<()>,
    /// Wakes the recorder task: an attempt is waiting.
    record_wanted: Notify,
    /// Attempts handed to the recorder and not yet stored.
    pending: AtomicUsize,
    done: Notify,
}

impl Recorder {
    pub(super) fn new(store: Arc<dyn Store>, ledger: Arc<Ledger>) -> Self {
        Self {
            store,
            ledger,
            unrecorded: Mutex::new(Vec::new()),
            recording: tokio::sync::Mutex::new(()),
            record_wanted: Notify::new(),
            pending: AtomicUsize::new(0),
            done: Notify::new(),
        }
    }

    /// Takes an attempt to record. Until it is recorded, its execution still counts as held
    /// in the ledger, so claims stay bounded.
    pub(super) fn push(&self, sent: Sent) {
        self.pending.fetch_add(1, SeqCst);
        self.unrecorded.lock().push(sent);
        self.record_wanted.notify_one();
    }

    /// Waits until every attempt handed to the recorder is stored, recording them itself if
    /// no one else is.
    pub(super) async fn wait_recorded(&self) {
        loop {
            let done = self.done.notified();
            self.flush().await;
            if self.pending.load(SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }

    /// Records attempts as deliveries make them, a batch per transaction, until `stop`; then
    /// records what is left.
    pub(super) async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wanted = self.record_wanted.notified();
            self.flush().await;
            if stop.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = wanted => {}
                _ = stop.cancelled() => {}
            }
            // A busy server's attempts arrive a few at a time; gathering them for a moment
            // makes one commit (the bulk of a small batch's cost) serve many.
            let waiting = self.unrecorded.lock().len();
            if waiting < RECORD_GATHER && !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Records every attempt waiting, in one transaction (group commit: attempts made while
    /// one batch is being written wait for the next), then frees what they held. When this
    /// returns, everything waiting when it was called is stored (or the failure was logged,
    /// and the lease will bring the executions back).
    pub(super) async fn flush(&self) {
        let _turn = self.recording.lock().await;
        let batch = std::mem::take(&mut *self.unrecorded.lock());
        if batch.is_empty() {
            return; // an earlier holder wrote them
        }
        let (attempts, destinations): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|s| (s.done, s.destination)).unzip();
        let started = Instant::now();
        let recorded = self.store.record_attempts(&attempts).await;
        tracing::debug!(
            attempts = attempts.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "recorded"
        );
        if let Err(e) = recorded {
            tracing::error!(error = %e, attempts = attempts.len(), "could not record delivery attempts; they will be retried");
        }
        self.ledger.release(
            attempts
                .iter()
                .map(|(id, ..)| *id)
                .zip(destinations.iter().copied()),
        );
        self.pending.fetch_sub(attempts.len(), SeqCst);
        self.done.notify_waiters();
        // A retry's time is new to the delivery loop's timer: it reads it again.
        if attempts
            .iter()
            .any(|(_, _, outcome)| matches!(outcome, AttemptOutcome::RetryAt(_)))
        {
            self.ledger.want_claim();
        }
        self.ledger.slot_freed();
    }
}
