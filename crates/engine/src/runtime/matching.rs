//! [`Matching`]: the matcher loop — reads events past the matcher's cursor, matches them
//! against the automation index (rebuilt when automations change), and stores their executions
//! with the new cursor in one transaction. It owns the index, the cursor this process last
//! moved, the run-metric evaluators and the rate windows. Through the [`Ledger`] it leases the
//! executions it can hand straight to delivery, queues them there, paces itself by the room
//! delivery leaves, and asks for a claim when it leaves work pending.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use herald_domain::automation::ExecutionStatus;
use herald_domain::event::{Event, EventType};
use herald_domain::run::{Run, RunState};
use herald_domain::run_filter::{RunCondition, RunEventFilter};
use herald_store::Store;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use super::{IDLE_POLL, MATCH_BATCH};
use crate::automations::Rule;
use crate::matcher::{execution_for, Compiled, Index, RateLimiter, RunFiring};
use crate::run_matching::{run_document, run_variables, HistoryBatch, RunSlots};
use crate::Result;

/// How often the matcher looks for automation changes made by other processes.
const INDEX_CHECK: Duration = Duration::from_millis(250);

/// What an event fired: each automation, with what a run event adds to its execution.
type Fired = Vec<(Arc<Compiled>, Option<RunFiring>)>;

pub(super) struct Matching {
    store: Arc<dyn Store>,
    ledger: Arc<Ledger>,
    /// How long executions handed straight to delivery are stored leased.
    lease: Duration,
    /// The server's public address, for links in Slack messages.
    public_url: Option<String>,
    index: RwLock<Arc<Index>>,
    /// Set when this process changed automations; otherwise the epoch is checked at most
    /// every INDEX_CHECK, which bounds how stale another replica's changes can be.
    index_dirty: AtomicBool,
    index_checked: Mutex<Option<Instant>>,
    /// Where this process last moved the matcher's cursor; another value in the store means
    /// another process matched in between.
    cursor: Mutex<Option<i64>>,
    run_slots: RunSlots,
    rates: RateLimiter,
    events_written: Notify,
}

impl Matching {
    pub(super) fn new(
        store: Arc<dyn Store>,
        ledger: Arc<Ledger>,
        lease: Duration,
        public_url: Option<String>,
    ) -> Self {
        Self {
            store,
            ledger,
            lease,
            public_url,
            index: RwLock::new(Arc::new(Index::stale())),
            index_dirty: AtomicBool::new(true),
            index_checked: Mutex::new(None),
            cursor: Mutex::new(None),
            run_slots: RunSlots::default(),
            rates: RateLimiter::default(),
            events_written: Notify::new(),
        }
    }

    /// New events may be waiting.
    pub(super) fn notify_events(&self) {
        self.events_written.notify_one();
    }

    /// Automations changed here: the next step reloads them.
    pub(super) fn automations_changed(&self) {
        self.index_dirty.store(true, SeqCst);
    }

    /// Rebuilds the automation index if automations changed since it was built.
    pub(super) async fn refresh_index(&self) -> Result<Arc<Index>> {
        let dirty = self.index_dirty.swap(false, SeqCst);
        let recent = self
            .index_checked
            .lock()
            .is_some_and(|t| t.elapsed() < INDEX_CHECK);
        if !dirty && recent {
            return Ok(self.index.read().clone());
        }
        *self.index_checked.lock() = Some(Instant::now());
        let epoch = self.store.automation_epoch().await?;
        let current = self.index.read().clone();
        if current.epoch == epoch {
            return Ok(current);
        }
        let fresh = Arc::new(Index::build(self.store.enabled_automations().await?, epoch));
        tracing::debug!(automations = fresh.len(), epoch, "automation index rebuilt");
        *self.index.write() = fresh.clone();
        // Evaluators were fed only while their automations stayed as they were; start over.
        self.run_slots.clear();
        Ok(fresh)
    }

    /// Forgets what this process saw of matching: the evaluators and rate windows were fed
    /// events that another process matched, or a batch that was not stored.
    fn forget(&self) {
        self.run_slots.clear();
        self.rates.clear();
    }

    /// One matcher step: matches the next batch of events and records their executions
    /// together with the cursor. Returns how many events it handled.
    pub(super) async fn match_once(&self) -> Result<usize> {
        let started = Instant::now();
        let cursor = self.store.matcher_cursor().await?;
        // The cursor is not where this process left it: another process sharing the store
        // matched events since, which this process's evaluators and rate windows never saw.
        let mine = *self.cursor.lock();
        if mine.is_some_and(|m| m != cursor) {
            self.forget();
        }
        let events = self.store.events_after(cursor, MATCH_BATCH).await?;
        let Some(last) = events.last().map(|e| e.id.0) else {
            return Ok(0);
        };
        // The index is read after the events: an automation saved before an event was written
        // is then always in it. (Read first, an event written just after the automation could
        // be matched against an index from before it, and the firing would be lost.)
        let index = self.refresh_index().await?;
        let mut executions = Vec::new();
        let now_ms = Utc::now().timestamp_millis();
        // Milliseconds: in whole seconds a 1 s cooldown could end a few ms after it began.
        let now = Utc::now().timestamp_millis();
        for e in &events {
            let fired: Fired = match e.event_type {
                EventType::LogRunHistory => self.match_history(&index, e, now).await?,
                EventType::RunState => self.match_state(&index, e).await?,
                _ => index.matching(e).map(|c| (c.clone(), None)).collect(),
            };
            for (c, run) in fired {
                let (status, reason) =
                    if self.rates.admit(&*self.store, &c.automation, now_ms).await {
                        (ExecutionStatus::Pending, None)
                    } else {
                        (
                            ExecutionStatus::Skipped,
                            Some(format!(
                                "rate limit: more than {} executions in a minute",
                                c.automation.rate_limit_per_minute
                            )),
                        )
                    };
                executions.push(
                    execution_for(
                        &*self.store,
                        &c,
                        e,
                        status,
                        reason,
                        run,
                        self.public_url.as_deref(),
                    )
                    .await,
                );
            }
        }
        self.ledger.lease_for_handoff(&mut executions, self.lease);
        let ids = match self.store.record_matches(cursor, last, &executions).await {
            Ok(Some(ids)) => ids,
            outcome => {
                // Not recorded (an error, or another process matched these events first): the
                // evaluators and rate windows saw a batch that did not happen here.
                self.forget();
                *self.cursor.lock() = None;
                return match outcome {
                    Err(e) => Err(e.into()),
                    _ => Ok(events.len()),
                };
            }
        };
        *self.cursor.lock() = Some(last);
        let pending = executions
            .iter()
            .filter(|x| x.status == ExecutionStatus::Pending)
            .count();
        // Stored pending for a claim, not handed off.
        let left = executions
            .iter()
            .filter(|x| x.status == ExecutionStatus::Pending && x.lease_until.is_none())
            .count();
        tracing::debug!(
            events = events.len(),
            executions = executions.len(),
            left,
            elapsed_us = started.elapsed().as_micros() as u64,
            oldest_event_age_us = (Utc::now() - events[0].created_at).num_microseconds(),
            "matched"
        );
        self.ledger.hand_off(executions, &ids);
        self.ledger.matched(left, pending);
        Ok(events.len())
    }

    /// Run-metric automations on a logged history batch: those watching a metric in the batch,
    /// whose run filter admits the run, and whose condition newly holds outside the cooldown.
    async fn match_history(&self, index: &Index, e: &Event, now: i64) -> Result<Fired> {
        let metrics: Vec<&str> = e.body["metrics"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Only automations watching a metric this batch holds are touched.
        let relevant: Vec<(&Arc<Compiled>, &RunEventFilter)> = metrics
            .iter()
            .flat_map(|m| index.watching(e.entity_id, m))
            .filter(|c| c.in_scope(e))
            .filter_map(|c| match &c.rule {
                Rule::Run(r) => Some((c, r)),
                Rule::Artifact(_) => None,
            })
            .collect();
        if relevant.is_empty() {
            return Ok(vec![]);
        }
        let Some(run) = self.run_of(e).await? else {
            return Ok(vec![]);
        };
        let (Some(first), Some(last)) = (e.body["first_seq"].as_i64(), e.body["last_seq"].as_i64())
        else {
            return Ok(vec![]);
        };
        let rows = self.store.history_range(run.row_id, first, last).await?;
        let doc = run_document(&run);
        let batch = HistoryBatch {
            run: &run,
            rows: &rows,
            first_seq: first,
            now,
        };
        let mut out = Vec::new();
        for (c, r) in relevant {
            if !r.run_filter.matches(&doc) {
                continue;
            }
            let firing = self
                .run_slots
                .evaluate(&*self.store, &c.automation, &r.condition, &batch)
                .await?;
            if let Some(f) = firing {
                let variables = run_variables(&run, r, Some(&f));
                out.push((
                    c.clone(),
                    Some(RunFiring {
                        variables,
                        fired_run: Some(run.row_id),
                    }),
                ));
            }
        }
        Ok(out)
    }

    /// The run `e` is about, if it names one that exists.
    async fn run_of(&self, e: &Event) -> Result<Option<Run>> {
        let (Some(project), Some(run_name)) = (&e.project, &e.run) else {
            return Ok(None);
        };
        Ok(self
            .store
            .run_for_event(e.entity_id, project, run_name)
            .await?)
    }

    /// Run-state automations on a state change into one of their states (KILLED never fires).
    async fn match_state(&self, index: &Index, e: &Event) -> Result<Fired> {
        let Some(state) = e.body["state"].as_str().and_then(RunState::from_db) else {
            return Ok(vec![]);
        };
        let candidates = index.candidates(e);
        // The run is needed to match it, or to drop a finished run's evaluators.
        let forget = state.is_final() && !self.run_slots.is_empty();
        if candidates.is_empty() && !forget {
            return Ok(vec![]);
        }
        let Some(run) = self.run_of(e).await? else {
            return Ok(vec![]);
        };
        if state.is_final() {
            self.run_slots.forget_run(run.row_id);
        }
        if state == RunState::Killed {
            return Ok(vec![]);
        }
        let doc = run_document(&run);
        let mut out = Vec::new();
        for c in candidates.iter().filter(|c| c.in_scope(e)) {
            let Rule::Run(r) = &c.rule else { continue };
            let RunCondition::State(states) = &r.condition else {
                continue;
            };
            if states.contains(state) && r.run_filter.matches(&doc) {
                // The run as of this event: its state is the one the event recorded.
                let mut vars = run_variables(&run, r, None);
                vars.insert(
                    "run_status".into(),
                    Value::String(state.as_str().to_string()),
                );
                out.push((
                    c.clone(),
                    Some(RunFiring {
                        variables: vars,
                        fired_run: None,
                    }),
                ));
            }
        }
        Ok(out)
    }

    /// Matches until `shutdown`: at once while events wait, pacing a backlog by the room
    /// delivery leaves, and otherwise when told of new events (or every IDLE_POLL).
    pub(super) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // A full batch means a backlog: the next one waits for room to hand it off.
        let mut behind = false;
        while !shutdown.is_cancelled() {
            if behind {
                self.ledger.pace().await;
            }
            let step = self.match_once().await;
            behind = matches!(step, Ok(n) if n >= MATCH_BATCH as usize);
            match step {
                Ok(0) => {
                    tokio::select! {
                        _ = self.events_written.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    *self.cursor.lock() = None;
                    tracing::error!(error = %e, "matcher step failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }
}
