//! The running engine: the matcher loop and the delivery loop, woken by notifications (an
//! event was written, executions were created, a delivery finished) and by timers (the next
//! retry falls due), and stopped by a cancellation token with a graceful drain.
//!
//! Tests drive the same steps deterministically with [`Engine::match_once`] and
//! [`Engine::deliver_once`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use herald_domain::automation::ExecutionStatus;
use herald_domain::ids::IntegrationId;
use herald_store::Store;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::delivery::http::Sender;
use crate::delivery::{deliver, DeliveryConfig};
use crate::matcher::{execution_for, Index, RateWindow};
use crate::secrets::MasterKey;
use crate::Result;

/// Events read per matcher step.
const MATCH_BATCH: u32 = 500;
/// Longest sleep of an idle loop (a safety net: notifications normally wake them sooner).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How long shutdown waits for deliveries in flight.
const DRAIN: Duration = Duration::from_secs(20);

pub struct Engine {
    store: Arc<dyn Store>,
    key: MasterKey,
    config: DeliveryConfig,
    sender: Sender,
    index: RwLock<Arc<Index>>,
    events_written: Notify,
    work_ready: Notify,
    in_flight: Mutex<InFlight>,
    destination_slots: Mutex<HashMap<IntegrationId, Arc<Semaphore>>>,
}

#[derive(Default)]
struct InFlight {
    total: usize,
    by_destination: HashMap<IntegrationId, usize>,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, key: MasterKey, config: DeliveryConfig) -> Arc<Self> {
        let sender = Sender::new(config.allow.clone(), config.timeout);
        Arc::new(Self {
            store,
            key,
            config,
            sender,
            index: RwLock::new(Arc::new(Index::stale())),
            events_written: Notify::new(),
            work_ready: Notify::new(),
            in_flight: Mutex::new(InFlight::default()),
            destination_slots: Mutex::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Tells the matcher that new events may be waiting.
    pub fn notify_events(&self) {
        self.events_written.notify_one();
    }

    /// Tells the delivery loop that executions may have become due (e.g. a redelivery).
    pub fn notify_work(&self) {
        self.work_ready.notify_one();
    }

    /// Rebuilds the automation index if automations changed since it was built.
    pub async fn refresh_index(&self) -> Result<Arc<Index>> {
        let epoch = self.store.automation_epoch().await?;
        let current = self.index.read().expect("index lock").clone();
        if current.epoch == epoch {
            return Ok(current);
        }
        let fresh = Arc::new(Index::build(self.store.enabled_automations().await?, epoch));
        tracing::debug!(automations = fresh.len(), epoch, "automation index rebuilt");
        *self.index.write().expect("index lock") = fresh.clone();
        Ok(fresh)
    }

    /// One matcher step: matches the next batch of events and records their executions
    /// together with the cursor. Returns how many events it handled.
    pub async fn match_once(&self) -> Result<usize> {
        let index = self.refresh_index().await?;
        let cursor = self.store.matcher_cursor().await?;
        let events = self.store.events_after(cursor, MATCH_BATCH).await?;
        let Some(last) = events.last().map(|e| e.id.0) else {
            return Ok(0);
        };
        let mut executions = Vec::new();
        let mut window = RateWindow::default();
        for e in &events {
            for c in index.matching(e) {
                let (status, reason) = if window.admit(&*self.store, &c.automation).await {
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
                executions.push(execution_for(&*self.store, c, e, status, reason).await);
            }
        }
        self.store.record_matches(last, &executions).await?;
        if executions
            .iter()
            .any(|x| x.status == ExecutionStatus::Pending)
        {
            self.work_ready.notify_one();
        }
        Ok(events.len())
    }

    /// One delivery step: claims the due executions there is room for and delivers them,
    /// waiting for those deliveries to finish. Returns how many it delivered.
    pub async fn deliver_once(self: &Arc<Self>) -> Result<usize> {
        let mut set = JoinSet::new();
        let n = self.claim_and_spawn(&mut set).await?;
        while set.join_next().await.is_some() {}
        Ok(n)
    }

    async fn claim_and_spawn(self: &Arc<Self>, set: &mut JoinSet<()>) -> Result<usize> {
        let (room, busy) = {
            let f = self.in_flight.lock().expect("in-flight lock");
            let busy: Vec<IntegrationId> = f
                .by_destination
                .iter()
                .filter(|(_, n)| **n >= self.config.per_destination)
                .map(|(id, _)| *id)
                .collect();
            (self.config.max_in_flight.saturating_sub(f.total), busy)
        };
        if room == 0 {
            return Ok(0);
        }
        let now = Utc::now();
        let lease = now + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let claimed = self.store.claim_due(now, lease, room as u32, &busy).await?;
        for x in &claimed {
            let mut f = self.in_flight.lock().expect("in-flight lock");
            f.total += 1;
            if let Some(d) = x.integration_id {
                *f.by_destination.entry(d).or_default() += 1;
            }
        }
        let n = claimed.len();
        for x in claimed {
            let engine = self.clone();
            // A batch may hold more for one destination than its limit; the extra wait here for
            // a slot, holding nothing that other destinations need.
            let slot = x.integration_id.map(|d| self.destination_slot(d));
            set.spawn(async move {
                let _permit = match &slot {
                    Some(s) => Some(
                        s.clone()
                            .acquire_owned()
                            .await
                            .expect("destination semaphores are never closed"),
                    ),
                    None => None,
                };
                deliver(
                    &*engine.store,
                    &engine.key,
                    &engine.sender,
                    &engine.config.retry,
                    &x,
                )
                .await;
                let mut f = engine.in_flight.lock().expect("in-flight lock");
                f.total -= 1;
                if let Some(d) = x.integration_id {
                    if let Some(c) = f.by_destination.get_mut(&d) {
                        *c -= 1;
                        if *c == 0 {
                            f.by_destination.remove(&d);
                        }
                    }
                }
                drop(f);
                engine.work_ready.notify_one();
            });
        }
        Ok(n)
    }

    fn destination_slot(&self, d: IntegrationId) -> Arc<Semaphore> {
        self.destination_slots
            .lock()
            .expect("slots lock")
            .entry(d)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_destination.max(1))))
            .clone()
    }

    /// Runs the matcher and delivery loops until `shutdown`, then waits (up to a bound) for
    /// deliveries in flight. Executions left RUNNING by a previous process are released first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        match self.store.release_running().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                executions = n,
                "resuming deliveries interrupted by the last stop"
            ),
            Err(e) => tracing::error!(error = %e, "could not release interrupted executions"),
        }
        let matcher = tokio::spawn(self.clone().matcher_loop(shutdown.clone()));
        self.clone().delivery_loop(shutdown).await;
        let _ = matcher.await;
    }

    async fn matcher_loop(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.match_once().await {
                Ok(0) => {
                    tokio::select! {
                        _ = self.events_written.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "matcher step failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn delivery_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut set = JoinSet::new();
        while !shutdown.is_cancelled() {
            while set.try_join_next().is_some() {}
            let claimed = match self.claim_and_spawn(&mut set).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "claiming deliveries failed; retrying");
                    0
                }
            };
            if claimed > 0 {
                continue;
            }
            // Something already due but not claimed waits for a destination to free up (each
            // finished delivery notifies); otherwise sleep until the next retry falls due.
            let wait = match self.store.next_due().await {
                Ok(Some(t)) => match (t - Utc::now()).to_std() {
                    Ok(d) if !d.is_zero() => d.min(IDLE_POLL),
                    _ => IDLE_POLL,
                },
                _ => IDLE_POLL,
            };
            tokio::select! {
                _ = self.work_ready.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        let drained =
            tokio::time::timeout(DRAIN, async { while set.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("shutdown: some deliveries were still in flight; they will be retried at the next start");
        }
    }
}
