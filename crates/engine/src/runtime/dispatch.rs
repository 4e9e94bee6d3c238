//! [`Dispatch`]: the delivery loop — claims due executions, starts them within the concurrency
//! limits (queueing the rest per destination in the [`Ledger`]), and runs each delivery, which
//! passes its slot on to the next queued execution when it is done. It hands every attempt to
//! the [`Recorder`], and is woken through the ledger (a claim is wanted, a slot was freed).
//!
//! Deliveries (the HTTP exchanges, and the connections' own tasks) can run on a tokio runtime
//! of their own ([`DeliveryConfig::threads`](crate::delivery::DeliveryConfig::threads)),
//! started with the first delivery, so a process that never delivers (an API-only replica)
//! starts no such threads. The engine's SQLite transactions run inline on the worker that
//! needs them and keep it for up to milliseconds; tokio cannot take a task off a busy worker,
//! so on one shared runtime the deliveries queued behind such a transaction wait for its end.
//! On threads of their own, the operating system shares the cores between the two, and a
//! delivery goes on meanwhile.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use herald_domain::ids::IntegrationId;
use herald_store::{ClaimedExecution, Store};
use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use super::parts::DeliveryParts;
use super::recorder::{Recorder, Sent};
use super::{IDLE_POLL, UNRECORDED_AHEAD};
use crate::delivery::deliver_caught;
use crate::Result;

/// Most executions one claim takes: a larger claim holds the one SQLite writer longer.
const CLAIM_BATCH: usize = 512;
/// Least time between two claims that must skip a busy destination's backlog.
const BUSY_CLAIM_SPACING: Duration = Duration::from_millis(25);
/// How long shutdown waits for deliveries in flight.
const DRAIN: Duration = Duration::from_secs(20);

pub(super) struct Dispatch {
    store: Arc<dyn Store>,
    ledger: Arc<Ledger>,
    recorder: Arc<Recorder>,
    parts: Arc<DeliveryParts>,
    /// When the last claim that had to skip busy destinations ran, and which they were.
    busy_claim: Mutex<Option<(Instant, Vec<IntegrationId>)>>,
    /// Where deliveries run, once the first one starts; `None` inside: on the runtime that
    /// runs the engine.
    runtime: OnceLock<Option<DeliveryRuntime>>,
}

/// What a claim step did.
enum Claim {
    /// Claimed this many executions (0: none due, or no room).
    Claimed(usize),
    /// Claimed nothing: the same destinations are still busy as at the last claim, which was
    /// less than the spacing ago. Try again after this long, or when a delivery finishes.
    Spaced(Duration),
}

impl Dispatch {
    pub(super) fn new(
        ledger: Arc<Ledger>,
        recorder: Arc<Recorder>,
        parts: Arc<DeliveryParts>,
    ) -> Self {
        Self {
            store: parts.store.clone(),
            ledger,
            recorder,
            parts,
            busy_claim: Mutex::new(None),
            runtime: OnceLock::new(),
        }
    }

    /// The deliveries' own runtime, started the first time it is asked for.
    fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime
            .get_or_init(|| DeliveryRuntime::start(self.parts.config.threads))
            .as_ref()
            .and_then(DeliveryRuntime::handle)
    }

    /// Starts the deliveries' own runtime now, not at the first delivery.
    pub(super) fn start_runtime(&self) {
        let _ = self.runtime();
    }

    /// One delivery step: claims the due executions there is room for and delivers them,
    /// waiting for those deliveries to finish. Returns how many it delivered.
    pub(super) async fn deliver_once(self: &Arc<Self>) -> Result<usize> {
        let mut set = JoinSet::new();
        // What the matcher handed off is queued; the deliveries started here go through it.
        let handed = self.ledger.lock().queued_len();
        self.start_ready(&mut set);
        let n = loop {
            match self.claim_and_spawn(&mut set).await? {
                Claim::Claimed(n) => break n + handed,
                Claim::Spaced(left) => tokio::time::sleep(left).await,
            }
        };
        while set.join_next().await.is_some() {}
        self.recorder.wait_recorded().await;
        Ok(n)
    }

    async fn claim_and_spawn(self: &Arc<Self>, set: &mut JoinSet<()>) -> Result<Claim> {
        let (room, mut busy) = {
            let f = self.ledger.lock();
            let busy: Vec<IntegrationId> = f
                .by_destination
                .iter()
                // A destination may have a few batches' worth claimed ahead of its slots, so a
                // busy one is fed in batches; beyond that it is left out of claims entirely.
                .filter(|(_, n)| **n >= self.ledger.destination_cap())
                .map(|(id, _)| *id)
                .collect();
            let room = self.ledger.hold_limit().saturating_sub(f.leased.len());
            (room.min(CLAIM_BATCH), busy)
        };
        if room == 0 {
            self.ledger.claim_found_no_room();
            return Ok(Claim::Claimed(0));
        }
        if !busy.is_empty() {
            // Skipping a busy destination's backlog means reading past it, which costs in
            // proportion to the backlog; such claims are spaced so a deep backlog cannot turn
            // every finished delivery into a scan. Other destinations wait at most this long.
            // A destination that stops being busy is claimed for at once: the set changed.
            busy.sort_unstable_by_key(|d| d.0);
            let mut last = self.busy_claim.lock();
            if let Some((at, set)) = &*last {
                let left = BUSY_CLAIM_SPACING.saturating_sub(at.elapsed());
                if *set == busy && !left.is_zero() {
                    return Ok(Claim::Spaced(left));
                }
            }
            *last = Some((Instant::now(), busy.clone()));
        }
        let now = Utc::now();
        let lease = now + chrono::Duration::from_std(self.parts.config.lease).unwrap_or_default();
        // Read before the claim: left-behind work counted after it may be newer than the claim saw.
        let behind = self.ledger.left_behind();
        let started = Instant::now();
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
        self.ledger.claimed(!busy.is_empty() || n >= room, behind);
        self.start(claimed, set);
        Ok(Claim::Claimed(n))
    }

    /// Starts queued executions there are slots for (destinations taking turns).
    fn start_ready(self: &Arc<Self>, set: &mut JoinSet<()>) {
        let mut start = Vec::new();
        {
            let mut f = self.ledger.lock();
            let mut after = None;
            while let Some(x) = f.next_ready(after, self.ledger.limits()) {
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
            let mut f = self.ledger.lock();
            for x in claimed {
                match x.integration_id {
                    Some(d) => f.queue(d, x),
                    None => {
                        // NO_OP: nothing to send, done at once.
                        f.start_at_once(&x);
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
        match self.runtime() {
            Some(runtime) => set.spawn_on(task, runtime),
            None => set.spawn(task),
        };
    }

    /// Delivers `x`, then, keeping its slot, the next queued execution that may start.
    async fn deliver_from(self: Arc<Self>, mut x: ClaimedExecution) {
        let ledger = &*self.ledger;
        let mut slot = Slot {
            ledger,
            destination: x.integration_id,
            held: true,
        };
        let unrecorded_cap = ledger.limits().per_destination * UNRECORDED_AHEAD;
        loop {
            // Sent but unrecorded deliveries are the ones a crash would send again, so each
            // destination may have only so many waiting for the database. A delivery that
            // must wait records them itself (or waits for whoever is recording).
            if let Some(dest) = x.integration_id {
                while ledger
                    .lock()
                    .unrecorded
                    .get(&dest)
                    .is_some_and(|n| *n >= unrecorded_cap)
                {
                    self.recorder.flush().await;
                }
            }
            let started = Instant::now();
            let done = deliver_caught(&self.parts.deliverer(), &x).await;
            tracing::trace!(
                elapsed_us = started.elapsed().as_micros() as u64,
                sent_us = done.1.duration.as_micros() as u64,
                "delivered"
            );
            // The attempt is recorded on the side, by the recorder task: the destination's
            // next delivery need not wait for the database. Until it is recorded, the
            // execution still counts as claimed for its destination, so claims stay bounded.
            let destination = x.integration_id;
            let room = ledger.sent_to(destination);
            self.recorder.push(Sent { done, destination });
            if room {
                ledger.wake_pacer();
            }
            match slot.pass_on() {
                Some(queued) => {
                    slot = Slot {
                        ledger,
                        destination: queued.integration_id,
                        held: true,
                    };
                    x = queued;
                }
                None => {
                    // Only a slot left free is news to the delivery loop: a claim may fill it.
                    ledger.slot_freed();
                    return;
                }
            }
        }
    }

    /// Claims and starts deliveries until `shutdown`, then waits (up to a bound) for those in
    /// flight and their records.
    pub(super) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut set = JoinSet::new();
        // Claims run when something may be due (`claim_wanted`), and otherwise when the next
        // retry falls due, or at least every IDLE_POLL (leases of a replica that died).
        let mut claim_at = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            while set.try_join_next().is_some() {}
            self.start_ready(&mut set);
            if self.ledger.take_claim_wanted() || tokio::time::Instant::now() >= claim_at {
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
                _ = self.ledger.work_ready() => {}
                _ = tokio::time::sleep_until(claim_at) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        let drained = tokio::time::timeout(DRAIN, async {
            while set.join_next().await.is_some() {}
            self.recorder.wait_recorded().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown: some deliveries were still in flight; they will be retried at the next start");
        }
    }
}

/// A delivery's hold on one of the in-flight slots. A delivery passes it on to the next
/// queued execution when it is done; if the task ends any other way (a panic, a cancelled
/// runtime), dropping it gives the slot back, so a destination never loses one for good.
struct Slot<'a> {
    ledger: &'a Ledger,
    destination: Option<IntegrationId>,
    held: bool,
}

impl Slot<'_> {
    /// Frees this slot and, under the same lock, hands it to the next destination in turn
    /// that has work waiting (which then holds a slot of its own).
    fn pass_on(&mut self) -> Option<ClaimedExecution> {
        let mut f = self.ledger.lock();
        f.free_slot(self.destination);
        self.held = false;
        f.next_ready(self.destination, self.ledger.limits())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.ledger.lock().free_slot(self.destination);
            self.ledger.slot_freed();
        }
    }
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
            .thread_name(super::DELIVERY_THREAD_NAME)
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
