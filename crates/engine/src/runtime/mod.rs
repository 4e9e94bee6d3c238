//! The running engine: the matcher loop and the delivery loop, woken by notifications (an
//! event was written, executions were created, a delivery finished) and by timers (the next
//! retry falls due), and stopped by a cancellation token with a graceful drain.
//!
//! [`Engine`] is the handle the API and tests hold; each job is a part that owns its state:
//!
//! - [`matching`]: the matcher loop — automation index, cursor, evaluators, rate windows;
//! - [`dispatch`]: claims, slots and per-destination limits, running deliveries (on threads
//!   of their own when configured);
//! - [`recorder`]: attempts sent and not yet stored, written in group commits;
//! - [`leases`]: the heartbeat renewing what this process holds;
//! - [`retention`]: deleting old history;
//! - [`ledger`] (with [`in_flight`]): what this process holds, and the wake-ups between the
//!   parts — the one piece of state they share;
//! - [`parts`]: what a delivery needs (senders, caches, pacer, withdrawals).
//!
//! Tests drive the same steps deterministically with [`Engine::match_once`] and
//! [`Engine::deliver_once`].

mod dispatch;
mod in_flight;
mod leases;
mod ledger;
mod matching;
mod parts;
mod recorder;
mod retention;

use std::sync::Arc;
use std::time::Duration;

use herald_domain::automation::{Execution, Integration};
use herald_domain::catalog::Entity;
use herald_domain::ids::{AutomationId, ExecutionId};
use herald_store::Store;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use self::dispatch::Dispatch;
use self::leases::Leases;
use self::ledger::Ledger;
use self::matching::Matching;
use self::parts::DeliveryParts;
use self::recorder::Recorder;
use self::retention::Retention;
use crate::delivery::{DeliveryConfig, TestOutcome, Withdrawn};
use crate::matcher::Index;
use crate::secrets::MasterKey;
use crate::Result;

/// Events read per matcher step.
const MATCH_BATCH: u32 = 500;
/// Longest sleep of an idle loop (a safety net: notifications normally wake them sooner).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How many times its concurrency limit a destination may have claimed (delivering or waiting),
/// and how many times `max_in_flight` this process may hold leased in all. Work held ahead
/// waits in memory for a slot (its leases renewed), so a backlog is claimed in a few large
/// transactions instead of one small one per finished delivery.
const CLAIM_AHEAD: usize = 64;
/// How many times its concurrency limit a destination may have sent but not yet recorded.
/// A crash can make a destination receive twice what was being sent or sent and unrecorded:
/// at most `(UNRECORDED_AHEAD + 1) × per_destination`. More lets deliveries go on while the
/// one SQLite writer is busy (a matcher batch holds it for tens of milliseconds), and lets
/// the recorder write bigger batches.
pub const UNRECORDED_AHEAD: usize = 16;
/// Longest a matcher working through a backlog waits for deliveries to make room for its
/// next batch (see [`ledger::Ledger::pace`]); after that it matches anyway, storing what does
/// not fit pending for a claim.
const PACE_MAX: Duration = Duration::from_millis(50);
/// The name of the deliveries' own threads (at most 15 bytes: what Linux keeps of a name).
pub const DELIVERY_THREAD_NAME: &str = "herald-delivery";

pub struct Engine {
    store: Arc<dyn Store>,
    parts: Arc<DeliveryParts>,
    ledger: Arc<Ledger>,
    matching: Arc<Matching>,
    recorder: Arc<Recorder>,
    dispatch: Arc<Dispatch>,
}

impl Engine {
    /// An engine on `store`. It starts nothing: [`Engine::run`] runs its loops (and the
    /// deliveries' threads, if configured); an API-only server never calls it.
    pub fn new(store: Arc<dyn Store>, key: MasterKey, config: DeliveryConfig) -> Arc<Self> {
        let ledger = Arc::new(Ledger::new(config.max_in_flight, config.per_destination));
        let matching = Arc::new(Matching::new(
            store.clone(),
            ledger.clone(),
            config.lease,
            config.slack.public_url.clone(),
        ));
        let parts = Arc::new(DeliveryParts::new(store.clone(), key, config));
        let recorder = Arc::new(Recorder::new(store.clone(), ledger.clone()));
        let dispatch = Arc::new(Dispatch::new(
            ledger.clone(),
            recorder.clone(),
            parts.clone(),
        ));
        Arc::new(Self {
            store,
            parts,
            ledger,
            matching,
            recorder,
            dispatch,
        })
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.parts.key
    }

    /// Sends a test payload (or message) through `integration` now.
    pub async fn test_integration(
        &self,
        integration: &Integration,
        payload: Option<Value>,
    ) -> Result<TestOutcome> {
        crate::delivery::test_send(&self.parts.test_deliverer(), integration, payload).await
    }

    /// `execution`'s request as its integration sends it now: URL and headers, secrets masked.
    pub fn shown_request(&self, integration: Option<&Integration>, execution: &Execution) -> Value {
        crate::delivery::shown_request(
            integration,
            execution.id,
            &execution.request,
            &self.parts.config.slack,
        )
    }

    /// Refuses a webhook URL whose host is an address this server may not call.
    pub fn check_destination_url(&self, url: &str) -> Result<()> {
        Ok(crate::delivery::ssrf::check_destination_url(
            url,
            &self.parts.config.allow,
        )?)
    }

    /// An automation was deleted or disabled (its waiting executions were cancelled in the
    /// same transaction): the ones this process claimed before do not start either.
    pub fn automation_withdrawn(&self, id: AutomationId) {
        self.parts.withdrawals.add(Withdrawn::Automation(id));
        self.automations_changed();
    }

    /// An automation was saved enabled: executions it fires from now on are delivered, also
    /// when it was disabled a moment ago. (One claimed here before that and still queued would
    /// then be sent; its stored status stays CANCELLED.)
    pub fn automation_restored(&self, id: AutomationId) {
        self.parts.withdrawals.remove(Withdrawn::Automation(id));
        self.automations_changed();
    }

    /// An automation was replaced: enabled, it fires from now on; disabled, its waiting
    /// executions were cancelled with the change and those claimed here stay put.
    pub fn automation_saved(&self, a: &herald_domain::automation::Automation) {
        if a.enabled {
            self.automation_restored(a.id);
        } else {
            self.automation_withdrawn(a.id);
        }
    }

    /// Cancels execution `id` of `entity`: no new attempt starts.
    pub async fn cancel_execution(&self, entity: &Entity, id: ExecutionId) -> Result<Execution> {
        let x = self.store.cancel_execution(entity, id).await?;
        self.parts.withdrawals.add(Withdrawn::Execution(id));
        Ok(x)
    }

    /// Tells deliveries that integrations changed here, so they read them again.
    pub fn integrations_changed(&self) {
        self.parts.integrations.clear();
    }

    /// Tells deliveries that secrets changed here (set, rotated or deleted), so they read
    /// them again.
    pub fn secrets_changed(&self) {
        self.parts.secrets.clear();
    }

    /// Tells the matcher that new events may be waiting.
    pub fn notify_events(&self) {
        self.matching.notify_events();
    }

    /// Tells the delivery loop that executions may have become due (e.g. a redelivery).
    pub fn notify_work(&self) {
        self.ledger.want_claim();
        self.ledger.wake_delivery();
    }

    /// Tells the matcher that automations changed here, so its next step reloads them.
    pub fn automations_changed(&self) {
        self.matching.automations_changed();
    }

    /// Rebuilds the automation index if automations changed since it was built.
    pub async fn refresh_index(&self) -> Result<Arc<Index>> {
        self.matching.refresh_index().await
    }

    /// One matcher step: matches the next batch of events and records their executions
    /// together with the cursor. Returns how many events it handled.
    pub async fn match_once(&self) -> Result<usize> {
        self.matching.match_once().await
    }

    /// One delivery step: claims the due executions there is room for and delivers them,
    /// waiting for those deliveries to finish. Returns how many it delivered.
    pub async fn deliver_once(self: &Arc<Self>) -> Result<usize> {
        self.dispatch.deliver_once().await
    }

    /// Runs the matcher and delivery loops until `shutdown`, then waits (up to a bound) for
    /// deliveries in flight. Executions left RUNNING by a previous process are released first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.dispatch.start_runtime();
        match self.store.release_running().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                executions = n,
                "resuming deliveries interrupted by the last stop"
            ),
            Err(e) => tracing::error!(error = %e, "could not release interrupted executions"),
        }
        let matcher = tokio::spawn(self.matching.clone().run(shutdown.clone()));
        let retention = Retention {
            store: self.store.clone(),
            keep: self.parts.config.retention,
        };
        let sweeper = tokio::spawn(retention.run(shutdown.clone()));
        let leases = Leases {
            store: self.store.clone(),
            ledger: self.ledger.clone(),
            lease: self.parts.config.lease,
        };
        let heart = tokio::spawn(leases.run(shutdown.clone()));
        // The recorder outlives the delivery loop: deliveries still finishing at shutdown
        // need their attempts recorded.
        let recorder_stop = CancellationToken::new();
        let recorder = tokio::spawn(self.recorder.clone().run(recorder_stop.clone()));
        self.dispatch.clone().run(shutdown).await;
        recorder_stop.cancel();
        let _ = recorder.await;
        let _ = matcher.await;
        let _ = sweeper.await;
        heart.abort();
    }
}
