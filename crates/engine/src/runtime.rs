//! The running engine: the matcher loop and the delivery loop, woken by notifications (an
//! event was written, executions were created, a delivery finished) and by timers (the next
//! retry falls due), and stopped by a cancellation token with a graceful drain.
//!
//! Tests drive the same steps deterministically with [`Engine::match_once`] and
//! [`Engine::deliver_once`].
//!
//! Deliveries (the HTTP exchanges, and the connections' own tasks) can run on a tokio runtime
//! of their own ([`DeliveryConfig::threads`]). The engine's SQLite transactions run inline on
//! the worker that needs them (see `herald_store`'s `inline` module) and keep it for up to
//! milliseconds; tokio cannot take a task off a busy worker, so on one shared runtime the
//! deliveries queued behind such a transaction wait for its end. On threads of their own, the
//! operating system shares the cores between the two, and a delivery goes on meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use herald_domain::automation::ExecutionStatus;
use herald_domain::event::{Event, EventType};
use herald_domain::ids::{ExecutionId, IntegrationId};
use herald_domain::run::RunState;
use herald_domain::run_filter::{RunCondition, RunEventFilter};
use herald_store::{AttemptOutcome, ClaimedExecution, NewAttempt, Store};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::automations::Rule;
use crate::delivery::http::Sender;
use crate::delivery::slack::Pacer;
use crate::delivery::{
    deliver_caught, Deliverer, DeliveryConfig, IntegrationCache, PreparedActions, SecretCache,
};
use crate::matcher::{execution_for, Compiled, Index, RateLimiter, RunFiring};
use crate::run_matching::{run_document, run_variables, HistoryBatch, RunSlots};
use crate::secrets::MasterKey;
use crate::Result;

/// Events read per matcher step.
const MATCH_BATCH: u32 = 500;
/// Longest sleep of an idle loop (a safety net: notifications normally wake them sooner).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often the matcher looks for automation changes made by other processes.
const INDEX_CHECK: Duration = Duration::from_millis(250);
/// Most executions one claim takes: a larger claim holds the one SQLite writer longer.
const CLAIM_BATCH: usize = 512;
/// Least time between two claims that must skip a busy destination's backlog.
const BUSY_CLAIM_SPACING: Duration = Duration::from_millis(25);
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
/// Fewer attempts than this waiting make the recorder wait a millisecond for more.
const RECORD_GATHER: usize = 64;
/// Longest a matcher working through a backlog waits for deliveries to make room for its
/// next batch (see [`Engine::pace`]); after that it matches anyway, storing what does not fit
/// pending for a claim.
const PACE_MAX: Duration = Duration::from_millis(50);
/// How long shutdown waits for deliveries in flight.
const DRAIN: Duration = Duration::from_secs(20);

pub struct Engine {
    store: Arc<dyn Store>,
    key: MasterKey,
    config: DeliveryConfig,
    sender: Sender,
    /// Integration tests' sends, apart from deliveries: its connections are made on the
    /// caller's runtime, and would otherwise join the deliveries' pool.
    test_sender: Sender,
    /// Where deliveries run; `None`: on the runtime that runs the engine.
    delivery_runtime: Option<DeliveryRuntime>,
    index: RwLock<Arc<Index>>,
    events_written: Notify,
    work_ready: Notify,
    in_flight: Mutex<InFlight>,
    /// Something may be due that only a claim finds: the matcher left executions pending, a
    /// redelivery was asked for, or the last claim was cut short by room or busy destinations
    /// (then `starved`, and every delivery that finishes asks for another claim).
    claim_wanted: std::sync::atomic::AtomicBool,
    starved: std::sync::atomic::AtomicBool,
    /// Counts the matcher batches that left pending work for claims, and the count a claim
    /// that found everything due last saw. While work is left behind nothing is handed off,
    /// so later events cannot overtake it (a one-at-a-time destination keeps event order).
    left_behind: std::sync::atomic::AtomicU64,
    caught_up: std::sync::atomic::AtomicU64,
    /// Attempts waiting to be recorded; the recorder task (or a delivery that must wait for
    /// it) writes all of them at once, holding `recording`.
    unrecorded: Mutex<Vec<Sent>>,
    recording: tokio::sync::Mutex<()>,
    /// Wakes the recorder task: an attempt is waiting.
    record_wanted: Notify,
    keys: crate::auth::KeyCache,
    run_slots: RunSlots,
    rates: RateLimiter,
    /// When the last claim that had to skip busy destinations ran, and which they were.
    busy_claim: Mutex<Option<(std::time::Instant, Vec<IntegrationId>)>>,
    /// Attempts handed to the recorder and not yet stored.
    records_pending: std::sync::atomic::AtomicUsize,
    records_done: Notify,
    /// A delivery was sent and left room for the matcher's next batch (told only while the
    /// matcher is `pacing`: waking it at every delivery would cost a task wake-up each).
    sent: Notify,
    pacing: std::sync::atomic::AtomicBool,
    pacer: Pacer,
    integrations: IntegrationCache,
    prepared: PreparedActions,
    secrets: SecretCache,
    withdrawals: crate::delivery::Withdrawals,
    /// Where this process last moved the matcher's cursor; another value in the store means
    /// another process matched in between.
    cursor: Mutex<Option<i64>>,
    /// Set when this process changed automations; otherwise the epoch is checked at most
    /// every INDEX_CHECK, which bounds how stale another replica's changes can be.
    index_dirty: std::sync::atomic::AtomicBool,
    index_checked: Mutex<Option<std::time::Instant>>,
}

/// A tokio runtime for deliveries only. Shut down without waiting when the engine goes (the
/// engine may go inside another runtime, where waiting is not allowed): by then its
/// deliveries are done or abandoned, and an abandoned one is sent again after its lease.
struct DeliveryRuntime(Option<tokio::runtime::Runtime>);

impl DeliveryRuntime {
    /// A runtime of `threads` workers, or `None` (deliveries then share the engine's runtime)
    /// if `threads` is 0 or the threads cannot be started.
    fn start(threads: usize) -> Option<Self> {
        if threads == 0 {
            return None;
        }
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("herald-delivery")
            .enable_all()
            .build()
        {
            Ok(rt) => Some(Self(Some(rt))),
            Err(e) => {
                tracing::warn!(error = %e, threads, "could not start the delivery threads; deliveries share the engine's");
                None
            }
        }
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

impl Drop for DeliveryRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A delivery attempt made and not yet recorded.
struct Sent {
    done: (ExecutionId, NewAttempt, AttemptOutcome),
    destination: Option<IntegrationId>,
}

/// What a claim step did.
enum Claim {
    /// Claimed this many executions (0: none due, or no room).
    Claimed(usize),
    /// Claimed nothing: the same destinations are still busy as at the last claim, which was
    /// less than the spacing ago. Try again after this long, or when a delivery finishes.
    Spaced(Duration),
}

#[derive(Default)]
struct InFlight {
    /// Deliveries sent but not yet recorded, per destination.
    unrecorded: HashMap<IntegrationId, usize>,
    /// When each destination last finished sending a delivery, or, until its first one
    /// finishes, when it was given the work it holds: one that has done neither for a while
    /// (a dead receiver, timing out) does not hold back the matcher.
    live_at: HashMap<IntegrationId, std::time::Instant>,
    /// Every execution this process has claimed and not yet recorded: their leases are renewed.
    leased: std::collections::HashSet<ExecutionId>,
    /// Deliveries under way, each holding one of `max_in_flight` slots.
    total: usize,
    /// Claimed executions per destination, under way or queued.
    by_destination: HashMap<IntegrationId, usize>,
    /// Deliveries under way per destination (at most `per_destination`).
    active: HashMap<IntegrationId, usize>,
    /// Claimed executions waiting for a slot. They hold no slot, so a slow or dead
    /// destination's backlog never takes room that others need; freed slots go to the
    /// destinations with work waiting in turn.
    /// Ordered by id, for the turns.
    queued: std::collections::BTreeMap<IntegrationId, VecDeque<ClaimedExecution>>,
}

/// The concurrency limits deliveries start within.
#[derive(Clone, Copy)]
struct Limits {
    total: usize,
    per_destination: usize,
}

impl InFlight {
    /// Gives back a delivery's slot: its place in the total and its destination's count.
    fn free_slot(&mut self, destination: Option<IntegrationId>) {
        self.total -= 1;
        if let Some(d) = destination {
            if let Some(a) = self.active.get_mut(&d) {
                *a -= 1;
                if *a == 0 {
                    self.active.remove(&d);
                }
            }
        }
    }

    /// Executions claimed for `d` and not yet sent (queued, or being sent).
    fn unsent(&self, d: IntegrationId) -> usize {
        let held = self.by_destination.get(&d).copied().unwrap_or(0);
        held.saturating_sub(self.unrecorded.get(&d).copied().unwrap_or(0))
    }

    /// Whether `batch` more executions fit, unsent, within `cap` for every destination that
    /// sent something in the last `PACE_MAX` before `now`, and within `hold` for all of them.
    /// Destinations that are not sending (a dead receiver) are left out: waiting for them
    /// would hold everyone back. A limit smaller than two batches needs room for only half of
    /// itself: waiting for more could never end.
    fn room_for(&self, batch: usize, cap: usize, hold: usize, now: std::time::Instant) -> bool {
        let (per_destination, hold_room) = (batch.min(cap / 2), batch.min(hold / 2));
        let mut sending = 0;
        for d in self.by_destination.keys() {
            let recent = self
                .live_at
                .get(d)
                .is_some_and(|t| now.saturating_duration_since(*t) < PACE_MAX);
            if recent {
                let unsent = self.unsent(*d);
                if unsent + per_destination > cap {
                    return false;
                }
                sending += unsent;
            }
        }
        sending + hold_room <= hold
    }

    /// Holds leased `x` for destination `d`, queued behind what `d` already has.
    fn queue(&mut self, d: IntegrationId, x: ClaimedExecution) {
        self.leased.insert(x.id);
        *self.by_destination.entry(d).or_default() += 1;
        // Work just given counts as sending: a destination that has sent nothing yet (every
        // one, just after a start) would otherwise take no room, and the matcher would hand
        // it batch after batch, past its claim-ahead, leaving the rest to be claimed again.
        self.live_at
            .entry(d)
            .or_insert_with(std::time::Instant::now);
        self.queued.entry(d).or_default().push_back(x);
    }

    /// Everything leased and not yet sent, in all.
    fn held_unsent(&self) -> usize {
        let unrecorded: usize = self.unrecorded.values().sum();
        self.leased.len().saturating_sub(unrecorded)
    }

    /// Takes a slot for the next queued execution that may start now, if any: destinations
    /// take turns (in id order, starting after `after`), each up to its own limit, all
    /// together up to the total.
    fn next_ready(
        &mut self,
        after: Option<IntegrationId>,
        limits: Limits,
    ) -> Option<ClaimedExecution> {
        if self.total >= limits.total {
            return None;
        }
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let (later, rest) = match after {
            Some(a) => ((Excluded(a), Unbounded), (Unbounded, Included(a))),
            None => (
                (Unbounded, Unbounded),
                (Unbounded, Excluded(IntegrationId(i64::MIN))),
            ),
        };
        let d = self
            .queued
            .range(later)
            .chain(self.queued.range(rest))
            .find(|(d, queue)| {
                // A Slack channel takes one message at a time anyway (the pacer), so its
                // messages go one by one, in order, instead of racing for the channel.
                let limit = if queue
                    .front()
                    .is_some_and(|x| x.action["type"] == "NOTIFICATION")
                {
                    1
                } else {
                    limits.per_destination
                };
                self.active.get(d).copied().unwrap_or(0) < limit
            })
            .map(|(d, _)| *d)?;
        let queue = self.queued.get_mut(&d)?;
        let x = queue.pop_front();
        if queue.is_empty() {
            self.queued.remove(&d);
        }
        *self.active.entry(d).or_default() += 1;
        self.total += 1;
        x
    }
}

/// A delivery's hold on one of the in-flight slots. A delivery passes it on to the next
/// queued execution when it is done; if the task ends any other way (a panic, a cancelled
/// runtime), dropping it gives the slot back, so a destination never loses one for good.
struct Slot<'a> {
    engine: &'a Engine,
    destination: Option<IntegrationId>,
    held: bool,
}

impl Slot<'_> {
    /// Frees this slot and, under the same lock, hands it to the next destination in turn
    /// that has work waiting (which then holds a slot of its own).
    fn pass_on(&mut self) -> Option<ClaimedExecution> {
        let mut guard = self.engine.lock_in_flight();
        let f = &mut *guard;
        f.free_slot(self.destination);
        self.held = false;
        f.next_ready(self.destination, self.engine.limits())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.engine.lock_in_flight().free_slot(self.destination);
            self.engine.slot_freed();
        }
    }
}

impl Engine {
    /// The in-flight accounting, also after a panic elsewhere poisoned its lock: the counts
    /// are only ever changed whole under it.
    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn new(store: Arc<dyn Store>, key: MasterKey, config: DeliveryConfig) -> Arc<Self> {
        let egress = crate::delivery::http::Egress {
            proxy: config.proxy.clone(),
            ..crate::delivery::http::Egress::direct(config.allow.clone())
        };
        let sender = Sender::new(&egress, config.timeout);
        let test_sender = Sender::new(&egress, config.timeout);
        let delivery_runtime = DeliveryRuntime::start(config.threads);
        Arc::new(Self {
            store,
            key,
            config,
            sender,
            test_sender,
            delivery_runtime,
            index: RwLock::new(Arc::new(Index::stale())),
            events_written: Notify::new(),
            work_ready: Notify::new(),
            in_flight: Mutex::new(InFlight::default()),
            claim_wanted: std::sync::atomic::AtomicBool::new(true),
            starved: std::sync::atomic::AtomicBool::new(false),
            left_behind: std::sync::atomic::AtomicU64::new(0),
            caught_up: std::sync::atomic::AtomicU64::new(0),
            unrecorded: Mutex::new(Vec::new()),
            recording: tokio::sync::Mutex::new(()),
            record_wanted: Notify::new(),
            keys: crate::auth::KeyCache::default(),
            run_slots: RunSlots::default(),
            rates: RateLimiter::default(),
            busy_claim: Mutex::new(None),
            records_pending: std::sync::atomic::AtomicUsize::new(0),
            records_done: Notify::new(),
            sent: Notify::new(),
            pacing: std::sync::atomic::AtomicBool::new(false),
            pacer: Pacer::default(),
            integrations: IntegrationCache::default(),
            prepared: PreparedActions::default(),
            secrets: SecretCache::default(),
            withdrawals: Default::default(),
            cursor: Mutex::new(None),
            index_dirty: std::sync::atomic::AtomicBool::new(true),
            index_checked: Mutex::new(None),
        })
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// The user an API key belongs to (cached briefly).
    pub async fn authenticate(&self, key: &str) -> Result<herald_domain::catalog::User> {
        self.keys.authenticate(&*self.store, key).await
    }

    /// Sends a test payload (or message) through `integration` now.
    pub async fn test_integration(
        &self,
        integration: &herald_domain::automation::Integration,
        payload: Option<Value>,
    ) -> Result<crate::delivery::TestOutcome> {
        let deliverer = Deliverer {
            sender: &self.test_sender,
            ..self.deliverer()
        };
        crate::delivery::test_send(&deliverer, integration, payload).await
    }

    fn deliverer(&self) -> Deliverer<'_> {
        Deliverer {
            store: &*self.store,
            withdrawals: &self.withdrawals,
            prepared: &self.prepared,
            integrations: &self.integrations,
            secrets: &self.secrets,
            key: &self.key,
            sender: &self.sender,
            policy: &self.config.retry,
            slack: &self.config.slack,
            pacer: &self.pacer,
        }
    }

    /// `execution`'s request as its integration sends it now: URL and headers, secrets masked.
    pub fn shown_request(
        &self,
        integration: Option<&herald_domain::automation::Integration>,
        execution: &herald_domain::automation::Execution,
    ) -> Value {
        crate::delivery::shown_request(
            integration,
            execution.id,
            &execution.request,
            &self.config.slack,
        )
    }

    /// Refuses a webhook URL whose host is an address this server may not call.
    pub fn check_destination_url(&self, url: &str) -> Result<()> {
        Ok(crate::delivery::ssrf::check_destination_url(
            url,
            &self.config.allow,
        )?)
    }

    /// An automation was deleted or disabled (its waiting executions were cancelled in the
    /// same transaction): the ones this process claimed before do not start either.
    pub fn automation_withdrawn(&self, id: herald_domain::ids::AutomationId) {
        self.withdrawals
            .add(crate::delivery::Withdrawn::Automation(id));
        self.automations_changed();
    }

    /// An automation was saved enabled: executions it fires from now on are delivered, also
    /// when it was disabled a moment ago. (One claimed here before that and still queued would
    /// then be sent; its stored status stays CANCELLED.)
    pub fn automation_restored(&self, id: herald_domain::ids::AutomationId) {
        self.withdrawals
            .remove(crate::delivery::Withdrawn::Automation(id));
        self.automations_changed();
    }

    /// Cancels execution `id` of `entity`: no new attempt starts.
    pub async fn cancel_execution(
        &self,
        entity: &herald_domain::catalog::Entity,
        id: herald_domain::ids::ExecutionId,
    ) -> Result<herald_domain::automation::Execution> {
        let x = self.store.cancel_execution(entity, id).await?;
        self.withdrawals
            .add(crate::delivery::Withdrawn::Execution(id));
        Ok(x)
    }

    /// Tells deliveries that integrations changed here, so they read them again.
    pub fn integrations_changed(&self) {
        self.integrations.clear();
    }

    /// Tells deliveries that secrets changed here (set, rotated or deleted), so they read
    /// them again.
    pub fn secrets_changed(&self) {
        self.secrets.clear();
    }

    /// Tells the matcher that new events may be waiting.
    pub fn notify_events(&self) {
        self.events_written.notify_one();
    }

    /// Tells the delivery loop that executions may have become due (e.g. a redelivery).
    pub fn notify_work(&self) {
        self.want_claim();
        self.work_ready.notify_one();
    }

    fn want_claim(&self) {
        self.claim_wanted
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The most executions this process holds leased (delivering, queued or unrecorded).
    fn hold_limit(&self) -> usize {
        self.config.max_in_flight * CLAIM_AHEAD
    }

    /// A delivery finished: its slot is free for work a starved claim left behind.
    fn slot_freed(&self) {
        if self.starved.load(std::sync::atomic::Ordering::SeqCst) {
            self.want_claim();
        }
        self.work_ready.notify_one();
    }

    /// Tells the matcher that automations changed here, so its next step reloads them.
    pub fn automations_changed(&self) {
        self.index_dirty
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Rebuilds the automation index if automations changed since it was built.
    pub async fn refresh_index(&self) -> Result<Arc<Index>> {
        let dirty = self
            .index_dirty
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        let recent = self
            .index_checked
            .lock()
            .expect("index clock lock")
            .is_some_and(|t| t.elapsed() < INDEX_CHECK);
        if !dirty && recent {
            return Ok(self.index.read().expect("index lock").clone());
        }
        *self.index_checked.lock().expect("index clock lock") = Some(std::time::Instant::now());
        let epoch = self.store.automation_epoch().await?;
        let current = self.index.read().expect("index lock").clone();
        if current.epoch == epoch {
            return Ok(current);
        }
        let fresh = Arc::new(Index::build(self.store.enabled_automations().await?, epoch));
        tracing::debug!(automations = fresh.len(), epoch, "automation index rebuilt");
        *self.index.write().expect("index lock") = fresh.clone();
        // Evaluators were fed only while their automations stayed as they were; start over.
        self.run_slots.clear();
        Ok(fresh)
    }

    /// Waits, at most `PACE_MAX`, until the deliveries this process holds leave room to hand
    /// off a whole batch of executions. A matcher working through a backlog would otherwise
    /// run ahead of delivery and store most of it pending, and claiming that again costs a
    /// second write of every execution. Only destinations that are sending count: a dead one
    /// (its requests timing out) keeps its backlog pending and holds nobody back.
    async fn pace(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let until = tokio::time::Instant::now() + PACE_MAX;
        loop {
            // Registered (and `pacing` set) before the check: a delivery that makes room after
            // it wakes this wait.
            let sent = self.sent.notified();
            self.pacing.store(true, SeqCst);
            if self.room_for_batch() {
                break;
            }
            if tokio::time::timeout_at(until, sent).await.is_err() {
                break;
            }
        }
        self.pacing.store(false, SeqCst);
    }

    /// Whether a whole batch of executions could be handed off to destinations now sending.
    fn room_for_batch(&self) -> bool {
        self.batch_fits(&self.in_flight.lock().expect("in-flight lock"))
    }

    /// [`Self::room_for_batch`] under a lock the caller already holds.
    fn batch_fits(&self, f: &InFlight) -> bool {
        f.room_for(
            MATCH_BATCH as usize,
            self.config.per_destination * CLAIM_AHEAD,
            self.hold_limit(),
            std::time::Instant::now(),
        )
    }

    /// One matcher step: matches the next batch of events and records their executions
    /// together with the cursor. Returns how many events it handled.
    pub async fn match_once(&self) -> Result<usize> {
        let started = std::time::Instant::now();
        let cursor = self.store.matcher_cursor().await?;
        // The cursor is not where this process left it: another process sharing the store
        // matched events since, which this process's evaluators and rate windows never saw.
        let mine = *self.cursor.lock().expect("cursor lock");
        if mine.is_some_and(|m| m != cursor) {
            self.run_slots.clear();
            self.rates.clear();
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
            let fired: Vec<(Arc<Compiled>, Option<RunFiring>)> = match e.event_type {
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
                        self.config.slack.public_url.as_deref(),
                    )
                    .await,
                );
            }
        }
        self.lease_for_handoff(&mut executions);
        let ids = match self.store.record_matches(cursor, last, &executions).await {
            Ok(Some(ids)) => ids,
            outcome => {
                // Not recorded (an error, or another process matched these events first): the
                // evaluators and rate windows saw a batch that did not happen here.
                self.run_slots.clear();
                self.rates.clear();
                *self.cursor.lock().expect("cursor lock") = None;
                return match outcome {
                    Err(e) => Err(e.into()),
                    _ => Ok(events.len()),
                };
            }
        };
        *self.cursor.lock().expect("cursor lock") = Some(last);
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
        self.hand_off(executions, &ids);
        if left > 0 {
            self.left_behind
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.want_claim();
        }
        if pending > 0 {
            self.work_ready.notify_one();
        }
        Ok(events.len())
    }

    /// Run-metric automations on a logged history batch: those watching a metric in the batch,
    /// whose run filter admits the run, and whose condition newly holds outside the cooldown.
    async fn match_history(
        &self,
        index: &Index,
        e: &Event,
        now: i64,
    ) -> Result<Vec<(Arc<Compiled>, Option<RunFiring>)>> {
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
        let (Some(project), Some(run_name)) = (&e.project, &e.run) else {
            return Ok(vec![]);
        };
        let Some(run) = self
            .store
            .run_for_event(e.entity_id, project, run_name)
            .await?
        else {
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

    /// Run-state automations on a state change into one of their states (KILLED never fires).
    async fn match_state(
        &self,
        index: &Index,
        e: &Event,
    ) -> Result<Vec<(Arc<Compiled>, Option<RunFiring>)>> {
        let Some(state) = e.body["state"].as_str().and_then(RunState::from_db) else {
            return Ok(vec![]);
        };
        let candidates = index.candidates(e);
        // The run is needed to match it, or to drop a finished run's evaluators.
        let forget = state.is_final() && !self.run_slots.is_empty();
        if candidates.is_empty() && !forget {
            return Ok(vec![]);
        }
        let (Some(project), Some(run_name)) = (&e.project, &e.run) else {
            return Ok(vec![]);
        };
        let Some(run) = self
            .store
            .run_for_event(e.entity_id, project, run_name)
            .await?
        else {
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

    /// Marks the pending executions this process can start soon to be stored already leased
    /// to it: as many as a claim would take now, within each destination's claim-ahead.
    fn lease_for_handoff(&self, executions: &mut [herald_store::NewExecution]) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.caught_up.load(SeqCst) < self.left_behind.load(SeqCst) {
            return; // earlier work waits for a claim; this batch goes after it
        }
        let until = Utc::now() + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let f = self.in_flight.lock().expect("in-flight lock");
        // What a claim would take now (the delivery loop may claim meanwhile, so the two can
        // together hold a little more than the limit for a moment). Sent executions wait only
        // for the recorder, so only what is held and unsent takes room.
        let mut room = self.hold_limit().saturating_sub(f.held_unsent());
        let mut taken: HashMap<IntegrationId, usize> = HashMap::new();
        for x in executions
            .iter_mut()
            .filter(|x| x.status == ExecutionStatus::Pending)
        {
            if room == 0 {
                break;
            }
            // Pending executions always have a destination (NO_OP finishes at match); one
            // without would be left for a claim, which starts it at once.
            let Some(d) = x.integration_id else { continue };
            let n = taken.entry(d).or_default();
            if f.unsent(d) + *n >= self.config.per_destination * CLAIM_AHEAD {
                continue;
            }
            *n += 1;
            room -= 1;
            x.lease_until = Some(until);
        }
    }

    /// Queues the executions stored leased to this process for their destinations, as a
    /// claim's would be, for the delivery loop (or a delivery freeing its slot) to start:
    /// fresh work skips the claim, a transaction and a wake-up on its way out. Queued at once,
    /// they count as held from now on, so the matcher's pacing sees them, and the heartbeat
    /// renews their leases even before they start.
    fn hand_off(&self, executions: Vec<herald_store::NewExecution>, ids: &[Option<ExecutionId>]) {
        let mut f = self.in_flight.lock().expect("in-flight lock");
        let mine = executions
            .into_iter()
            .zip(ids)
            .filter(|(x, _)| x.lease_until.is_some())
            .filter_map(|(x, id)| {
                // Only executions with a destination are leased here (lease_for_handoff).
                let d = x.integration_id?;
                Some((
                    d,
                    ClaimedExecution {
                        id: (*id)?,
                        entity_id: x.entity_id,
                        automation_id: x.automation_id,
                        integration_id: x.integration_id,
                        action: x.action,
                        variables: x.variables,
                        attempt_count: 0,
                        round_attempts: 0,
                    },
                ))
            });
        for (d, x) in mine {
            f.queue(d, x);
        }
    }

    /// One delivery step: claims the due executions there is room for and delivers them,
    /// waiting for those deliveries to finish. Returns how many it delivered.
    pub async fn deliver_once(self: &Arc<Self>) -> Result<usize> {
        let mut set = JoinSet::new();
        // What the matcher handed off is queued; the deliveries started here go through it.
        let handed: usize = {
            let f = self.in_flight.lock().expect("in-flight lock");
            f.queued.values().map(VecDeque::len).sum()
        };
        self.start_ready(&mut set);
        let n = loop {
            match self.claim_and_spawn(&mut set).await? {
                Claim::Claimed(n) => break n + handed,
                Claim::Spaced(left) => tokio::time::sleep(left).await,
            }
        };
        while set.join_next().await.is_some() {}
        self.wait_recorded().await;
        Ok(n)
    }

    async fn claim_and_spawn(self: &Arc<Self>, set: &mut JoinSet<()>) -> Result<Claim> {
        let (room, mut busy) = {
            let f = self.in_flight.lock().expect("in-flight lock");
            let busy: Vec<IntegrationId> = f
                .by_destination
                .iter()
                // A destination may have a few batches' worth claimed ahead of its slots, so a
                // busy one is fed in batches; beyond that it is left out of claims entirely.
                .filter(|(_, n)| **n >= self.config.per_destination * CLAIM_AHEAD)
                .map(|(id, _)| *id)
                .collect();
            let room = self.hold_limit().saturating_sub(f.leased.len());
            (room.min(CLAIM_BATCH), busy)
        };
        if room == 0 {
            self.starved
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(Claim::Claimed(0));
        }
        if !busy.is_empty() {
            // Skipping a busy destination's backlog means reading past it, which costs in
            // proportion to the backlog; such claims are spaced so a deep backlog cannot turn
            // every finished delivery into a scan. Other destinations wait at most this long.
            // A destination that stops being busy is claimed for at once: the set changed.
            busy.sort_unstable_by_key(|d| d.0);
            let mut last = self.busy_claim.lock().expect("claim clock lock");
            if let Some((at, set)) = &*last {
                let left = BUSY_CLAIM_SPACING.saturating_sub(at.elapsed());
                if *set == busy && !left.is_zero() {
                    return Ok(Claim::Spaced(left));
                }
            }
            *last = Some((std::time::Instant::now(), busy.clone()));
        }
        let now = Utc::now();
        let lease = now + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        // Read before the claim: left-behind work counted after it may be newer than the claim saw.
        let behind = self.left_behind.load(std::sync::atomic::Ordering::SeqCst);
        let started = std::time::Instant::now();
        let mut claimed = self.store.claim_due(now, lease, room as u32, &busy).await?;
        tracing::debug!(
            claimed = claimed.len(),
            room,
            busy = busy.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "claimed"
        );
        // Oldest first (the database returns claimed rows in no set order), so that a
        // destination served one at a time gets its messages in the order of their events.
        claimed.sort_by_key(|x| x.id.0);
        let n = claimed.len();
        // Cut short: more may be due than this claim could take.
        let starved = !busy.is_empty() || n >= room;
        self.starved
            .store(starved, std::sync::atomic::Ordering::SeqCst);
        if !starved {
            self.caught_up
                .fetch_max(behind, std::sync::atomic::Ordering::SeqCst);
        }
        self.start(claimed, set);
        Ok(Claim::Claimed(n))
    }

    /// Starts queued executions there are slots for (destinations taking turns).
    fn start_ready(self: &Arc<Self>, set: &mut JoinSet<()>) {
        let mut start = Vec::new();
        {
            let mut f = self.in_flight.lock().expect("in-flight lock");
            let mut after = None;
            while let Some(x) = f.next_ready(after, self.limits()) {
                after = x.integration_id;
                start.push(x);
            }
        }
        for x in start {
            self.spawn_delivery(set, x);
        }
    }

    /// Starts claimed executions within the concurrency limits, queueing the rest per destination.
    fn start(self: &Arc<Self>, claimed: Vec<ClaimedExecution>, set: &mut JoinSet<()>) {
        let mut at_once = Vec::new();
        {
            let mut f = self.in_flight.lock().expect("in-flight lock");
            for x in claimed {
                match x.integration_id {
                    Some(d) => f.queue(d, x),
                    None => {
                        // NO_OP: nothing to send, done at once.
                        f.leased.insert(x.id);
                        f.total += 1;
                        at_once.push(x);
                    }
                }
            }
        }
        for x in at_once {
            self.spawn_delivery(set, x);
        }
        self.start_ready(set);
    }

    /// Starts delivering `x` (and what its slot takes next) on the deliveries' runtime.
    fn spawn_delivery(self: &Arc<Self>, set: &mut JoinSet<()>, x: ClaimedExecution) {
        let task = self.clone().deliver_from(x);
        match self
            .delivery_runtime
            .as_ref()
            .and_then(DeliveryRuntime::handle)
        {
            Some(runtime) => set.spawn_on(task, runtime),
            None => set.spawn(task),
        };
    }

    fn limits(&self) -> Limits {
        Limits {
            total: self.config.max_in_flight,
            per_destination: self.config.per_destination,
        }
    }

    /// Delivers `x`, then, keeping its slot, the next queued execution that may start.
    async fn deliver_from(self: Arc<Self>, mut x: ClaimedExecution) {
        let mut slot = Slot {
            engine: &self,
            destination: x.integration_id,
            held: true,
        };
        loop {
            // Sent but unrecorded deliveries are the ones a crash would send again, so each
            // destination may have only so many waiting for the database. A delivery that
            // must wait records them itself (or waits for whoever is recording).
            if let Some(dest) = x.integration_id {
                while self
                    .in_flight
                    .lock()
                    .expect("in-flight lock")
                    .unrecorded
                    .get(&dest)
                    .is_some_and(|n| *n >= self.config.per_destination * UNRECORDED_AHEAD)
                {
                    self.flush_records().await;
                }
            }
            let started = std::time::Instant::now();
            let done = deliver_caught(&self.deliverer(), &x).await;
            tracing::trace!(
                elapsed_us = started.elapsed().as_micros() as u64,
                sent_us = done.1.duration.as_micros() as u64,
                "delivered"
            );
            // The attempt is recorded on the side, by the recorder task: the destination's
            // next delivery need not wait for the database. Until it is recorded, the
            // execution still counts as claimed for its destination, so claims stay bounded.
            self.records_pending
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let destination = x.integration_id;
            let room = match destination {
                Some(d) => {
                    let mut f = self.in_flight.lock().expect("in-flight lock");
                    *f.unrecorded.entry(d).or_default() += 1;
                    f.live_at.insert(d, std::time::Instant::now());
                    self.pacing.load(std::sync::atomic::Ordering::SeqCst) && self.batch_fits(&f)
                }
                None => false,
            };
            self.unrecorded
                .lock()
                .expect("unrecorded lock")
                .push(Sent { done, destination });
            self.record_wanted.notify_one();
            if room {
                self.sent.notify_waiters();
            }
            match slot.pass_on() {
                Some(queued) => {
                    slot = Slot {
                        engine: &self,
                        destination: queued.integration_id,
                        held: true,
                    };
                    x = queued;
                }
                None => {
                    // Only a slot left free is news to the delivery loop: a claim may fill it.
                    self.slot_freed();
                    return;
                }
            }
        }
    }

    /// Waits until every attempt handed to the recorder is stored, recording them itself if
    /// no one else is.
    async fn wait_recorded(&self) {
        loop {
            let done = self.records_done.notified();
            self.flush_records().await;
            if self
                .records_pending
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0
            {
                return;
            }
            done.await;
        }
    }

    /// Records attempts as deliveries make them, a batch per transaction, until `stop`; then
    /// records what is left.
    async fn recorder_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wanted = self.record_wanted.notified();
            self.flush_records().await;
            if stop.is_cancelled() {
                return;
            }
            tokio::select! {
                _ = wanted => {}
                _ = stop.cancelled() => {}
            }
            // A busy server's attempts arrive a few at a time; gathering them for a moment
            // makes one commit (the bulk of a small batch's cost) serve many.
            let waiting = self.unrecorded.lock().expect("unrecorded lock").len();
            if waiting < RECORD_GATHER && !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Records every attempt waiting, in one transaction (group commit: attempts made while
    /// one batch is being written wait for the next), then frees what they held. When this
    /// returns, everything waiting when it was called is stored (or the failure was logged,
    /// and the lease will bring the executions back).
    async fn flush_records(&self) {
        let _turn = self.recording.lock().await;
        let batch = std::mem::take(&mut *self.unrecorded.lock().expect("unrecorded lock"));
        if batch.is_empty() {
            return; // an earlier holder wrote them
        }
        let (attempts, destinations): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|s| (s.done, s.destination)).unzip();
        let started = std::time::Instant::now();
        let recorded = self.store.record_attempts(&attempts).await;
        tracing::debug!(
            attempts = attempts.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "recorded"
        );
        if let Err(e) = recorded {
            tracing::error!(error = %e, attempts = attempts.len(), "could not record delivery attempts; they will be retried");
        }
        {
            let mut guard = self.in_flight.lock().expect("in-flight lock");
            let f = &mut *guard;
            for ((id, ..), destination) in attempts.iter().zip(&destinations) {
                f.leased.remove(id);
                let Some(d) = destination else { continue };
                if let Some(c) = f.by_destination.get_mut(d) {
                    *c -= 1;
                    if *c == 0 {
                        f.by_destination.remove(d);
                        f.live_at.remove(d);
                    }
                }
                if let Some(c) = f.unrecorded.get_mut(d) {
                    *c -= 1;
                    if *c == 0 {
                        f.unrecorded.remove(d);
                    }
                }
            }
        }
        self.records_pending
            .fetch_sub(attempts.len(), std::sync::atomic::Ordering::SeqCst);
        self.records_done.notify_waiters();
        // A retry's time is new to the delivery loop's timer: it reads it again.
        if attempts
            .iter()
            .any(|(_, _, outcome)| matches!(outcome, AttemptOutcome::RetryAt(_)))
        {
            self.want_claim();
        }
        self.slot_freed();
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
        let sweeper = tokio::spawn(self.clone().retention_loop(shutdown.clone()));
        let heart = tokio::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        // The recorder outlives the delivery loop: deliveries still finishing at shutdown
        // need their attempts recorded.
        let recorder_stop = CancellationToken::new();
        let recorder = tokio::spawn(self.clone().recorder_loop(recorder_stop.clone()));
        self.clone().delivery_loop(shutdown).await;
        recorder_stop.cancel();
        let _ = recorder.await;
        let _ = matcher.await;
        let _ = sweeper.await;
        heart.abort();
    }

    /// Renews the leases of everything this process holds, three times per lease, so a live
    /// process keeps its work however long it takes, and a dead one's expires soon.
    async fn heartbeat_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.config.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => {}
            }
            let ids: Vec<ExecutionId> = self
                .in_flight
                .lock()
                .expect("in-flight lock")
                .leased
                .iter()
                .copied()
                .collect();
            if !ids.is_empty() {
                let until =
                    Utc::now() + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
                if let Err(e) = self.store.renew_leases(&ids, until).await {
                    tracing::error!(error = %e, "could not renew delivery leases");
                }
            }
            if shutdown.is_cancelled() && ids.is_empty() {
                return;
            }
        }
    }

    /// Deletes history older than the retention period, hourly.
    async fn retention_loop(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let cutoff =
                Utc::now() - chrono::Duration::from_std(self.config.retention).unwrap_or_default();
            match self.store.purge_executions(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    executions = n,
                    "deleted execution history past its retention"
                ),
                Err(e) => tracing::error!(error = %e, "could not delete old execution history"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    async fn matcher_loop(self: Arc<Self>, shutdown: CancellationToken) {
        // A full batch means a backlog: the next one waits for room to hand it off.
        let mut behind = false;
        while !shutdown.is_cancelled() {
            if behind {
                self.pace().await;
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
                    *self.cursor.lock().expect("cursor lock") = None;
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
        // Claims run when something may be due (`claim_wanted`), and otherwise when the next
        // retry falls due, or at least every IDLE_POLL (leases of a replica that died).
        let mut claim_at = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            while set.try_join_next().is_some() {}
            self.start_ready(&mut set);
            let wanted = self
                .claim_wanted
                .swap(false, std::sync::atomic::Ordering::SeqCst);
            if wanted || tokio::time::Instant::now() >= claim_at {
                let wait = match self.claim_and_spawn(&mut set).await {
                    Ok(Claim::Claimed(0)) => {
                        // Sleep until the next retry falls due; something already due but not
                        // claimed waits for a destination to free up (`starved`).
                        match self.store.next_due().await {
                            Ok(Some(t)) => match (t - Utc::now()).to_std() {
                                Ok(d) if !d.is_zero() => d.min(IDLE_POLL),
                                _ => IDLE_POLL,
                            },
                            _ => IDLE_POLL,
                        }
                    }
                    Ok(Claim::Claimed(_)) => Duration::ZERO,
                    Ok(Claim::Spaced(left)) => left,
                    Err(e) => {
                        tracing::error!(error = %e, "claiming deliveries failed; retrying");
                        IDLE_POLL
                    }
                };
                claim_at = tokio::time::Instant::now() + wait;
                if wait.is_zero() {
                    continue;
                }
            }
            tokio::select! {
                _ = self.work_ready.notified() => {}
                _ = tokio::time::sleep_until(claim_at) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        let drained = tokio::time::timeout(DRAIN, async {
            while set.join_next().await.is_some() {}
            self.wait_recorded().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown: some deliveries were still in flight; they will be retried at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::ids::{AutomationId, EntityId};

    fn execution(id: i64, destination: i64, kind: &str) -> ClaimedExecution {
        ClaimedExecution {
            id: ExecutionId(id),
            entity_id: EntityId(1),
            automation_id: AutomationId(1),
            integration_id: Some(IntegrationId(destination)),
            action: serde_json::json!({ "type": kind }).into(),
            variables: Value::Null,
            attempt_count: 0,
            round_attempts: 0,
        }
    }

    fn queued(f: &mut InFlight, id: i64, destination: i64, kind: &str) {
        let d = IntegrationId(destination);
        f.queued
            .entry(d)
            .or_default()
            .push_back(execution(id, destination, kind));
    }

    #[test]
    fn queued_executions_take_room_from_the_next_batch_until_sent() {
        let mut f = InFlight::default();
        let now = std::time::Instant::now();
        let d = IntegrationId(1);
        // A matcher batch handed off: queued, not yet started, to a destination that has sent
        // nothing yet (as at a start): it counts as sending from now.
        for id in 0..600 {
            f.queue(d, execution(id, 1, "GENERIC_WEBHOOK"));
        }
        assert_eq!(
            (f.unsent(d), f.held_unsent(), f.leased.len()),
            (600, 600, 600)
        );
        assert!(
            !f.room_for(500, 1024, 4096, now),
            "600 held + 500 exceed 1,024"
        );
        assert!(f.room_for(400, 1024, 4096, now));
        assert!(
            f.room_for(500, 1024, 4096, now + 2 * PACE_MAX),
            "given work and silent since (its requests hang), it holds nobody back"
        );
        // Started and sent (waiting for the recorder), they no longer take room.
        let limits = Limits {
            total: 1000,
            per_destination: 1000,
        };
        assert_eq!(drain(&mut f, None, limits).len(), 600);
        f.unrecorded.insert(d, 600);
        assert!(f.room_for(500, 1024, 4096, now));
    }

    /// Takes every execution that may start now, as `start` does, as (execution, destination)
    /// pairs.
    fn drain(f: &mut InFlight, after: Option<i64>, limits: Limits) -> Vec<(i64, i64)> {
        let mut after = after.map(IntegrationId);
        std::iter::from_fn(|| {
            let x = f.next_ready(after, limits)?;
            after = x.integration_id;
            Some((x.id.0, x.integration_id?.0))
        })
        .collect()
    }

    const LIMITS: Limits = Limits {
        total: 4,
        per_destination: 2,
    };

    #[test]
    fn slots_respect_the_destination_and_total_limits() {
        let mut f = InFlight::default();
        for id in 1..=5 {
            queued(&mut f, id, 7, "GENERIC_WEBHOOK");
        }
        // One destination: its own limit, in queue order.
        assert_eq!(drain(&mut f, None, LIMITS), vec![(1, 7), (2, 7)]);
        assert_eq!((f.total, f.active[&IntegrationId(7)]), (2, 2));
        for id in 6..=8 {
            queued(&mut f, id, 9, "GENERIC_WEBHOOK");
        }
        for id in 10..=12 {
            queued(&mut f, id, 3, "NOTIFICATION");
        }
        // Two slots of the total are left: destination 3 (after 9 in id order, wrapping) and
        // 9 take one each; a Slack channel never gets a second.
        assert_eq!(drain(&mut f, Some(7), LIMITS), vec![(6, 9), (10, 3)]);
        assert_eq!(f.total, 4);
        assert!(
            drain(&mut f, None, LIMITS).is_empty(),
            "the total is reached"
        );
        // Queues left: 7 holds 3, 4, 5; 9 holds 7, 8; 3 holds 11, 12.
        assert_eq!(f.queued[&IntegrationId(7)].len(), 3);
    }

    #[test]
    fn a_backlog_waits_only_for_destinations_that_are_sending() {
        let mut f = InFlight::default();
        let now = std::time::Instant::now();
        let (live, dead) = (IntegrationId(1), IntegrationId(2));
        // `live` holds 900 claimed, 100 of them sent and waiting to be recorded.
        f.by_destination.insert(live, 900);
        f.unrecorded.insert(live, 100);
        f.live_at.insert(live, now);
        assert_eq!(f.unsent(live), 800);
        assert!(f.room_for(200, 1000, 4000, now), "800 + 200 fit in 1000");
        assert!(!f.room_for(201, 1000, 4000, now), "800 + 201 do not");
        assert!(!f.room_for(200, 1000, 999, now), "nor in all, within 999");
        // Recorded deliveries free room too: what is sent no longer counts.
        *f.unrecorded.get_mut(&live).unwrap() += 300;
        assert!(f.room_for(500, 1000, 4000, now));
        // A destination that has sent nothing lately (its requests hang) holds nobody back,
        // however much it holds; once it sends again, it counts.
        f.by_destination.insert(dead, 1000);
        f.live_at.insert(dead, now - PACE_MAX);
        assert!(f.room_for(500, 1000, 4000, now));
        f.live_at.insert(dead, now);
        assert!(!f.room_for(1, 1000, 4000, now));
        // Limits below two batches wait for half of themselves, not for a whole batch.
        let mut small = InFlight::default();
        small.by_destination.insert(live, 64);
        small.live_at.insert(live, now);
        assert!(small.room_for(500, 128, 4000, now));
        *small.by_destination.get_mut(&live).unwrap() += 1;
        assert!(!small.room_for(500, 128, 4000, now));
    }

    #[test]
    fn a_freed_slot_goes_to_the_next_destination_in_turn() {
        let mut f = InFlight::default();
        for (id, d) in [(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 3)] {
            queued(&mut f, id, d, "GENERIC_WEBHOOK");
        }
        let one = Limits {
            total: 1,
            per_destination: 2,
        };
        assert_eq!(drain(&mut f, None, one), vec![(1, 1)]);
        // Each time the slot is given back, the destination after the last one served gets it.
        let mut order = Vec::new();
        let mut last = 1;
        for _ in 0..5 {
            f.total -= 1;
            *f.active.get_mut(&IntegrationId(last)).unwrap() -= 1;
            let next = drain(&mut f, Some(last), one);
            assert_eq!(next.len(), 1);
            last = next[0].1;
            order.push(next[0]);
        }
        assert_eq!(order, vec![(2, 2), (3, 3), (4, 1), (5, 2), (6, 3)]);
        assert!(f.queued.is_empty());
    }
}
