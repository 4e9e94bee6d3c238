//! [`Ledger`]: what this process holds, shared by the parts of the runtime — the in-flight
//! accounting ([`InFlight`], behind one lock) and the wake-ups its changes cause: the delivery
//! loop's (a claim is wanted, a slot was freed) and the matcher's pacing (a delivery left room
//! for its next batch). The matcher hands work off through it, the dispatcher claims and starts
//! work through it, the recorder releases recorded work through it, and the lease heartbeat
//! reads what to renew from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use chrono::Utc;
use herald_domain::automation::ExecutionStatus;
use herald_domain::ids::{ExecutionId, IntegrationId};
use herald_store::{ClaimedExecution, NewExecution};
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use super::in_flight::{InFlight, Limits};
use super::{CLAIM_AHEAD, MATCH_BATCH, PACE_MAX};

pub(super) struct Ledger {
    in_flight: Mutex<InFlight>,
    limits: Limits,
    /// Something may be due that only a claim finds: the matcher left executions pending, a
    /// redelivery was asked for, or the last claim was cut short by room or busy destinations
    /// (then `starved`, and every delivery that finishes asks for another claim).
    claim_wanted: AtomicBool,
    starved: AtomicBool,
    /// Wakes the delivery loop: work may start or be claimed.
    work_ready: Notify,
    /// Counts the matcher batches that left pending work for claims, and the count a claim
    /// that found everything due last saw. While work is left behind nothing is handed off,
    /// so later events cannot overtake it (a one-at-a-time destination keeps event order).
    left_behind: AtomicU64,
    caught_up: AtomicU64,
    /// A delivery was sent and left room for the matcher's next batch (told only while the
    /// matcher is `pacing`: waking it at every delivery would cost a task wake-up each).
    sent: Notify,
    pacing: AtomicBool,
}

impl Ledger {
    pub(super) fn new(max_in_flight: usize, per_destination: usize) -> Self {
        Self {
            in_flight: Mutex::new(InFlight::default()),
            limits: Limits {
                total: max_in_flight,
                per_destination,
            },
            claim_wanted: AtomicBool::new(true),
            starved: AtomicBool::new(false),
            work_ready: Notify::new(),
            left_behind: AtomicU64::new(0),
            caught_up: AtomicU64::new(0),
            sent: Notify::new(),
            pacing: AtomicBool::new(false),
        }
    }

    /// The in-flight accounting. A panic cannot leave it half-changed: the counts are only
    /// ever changed whole under this lock, and `parking_lot` locks are not poisoned.
    pub(super) fn lock(&self) -> MutexGuard<'_, InFlight> {
        self.in_flight.lock()
    }

    pub(super) fn limits(&self) -> Limits {
        self.limits
    }

    /// The most executions this process holds leased (delivering, queued or unrecorded).
    pub(super) fn hold_limit(&self) -> usize {
        self.limits.total * CLAIM_AHEAD
    }

    /// The most executions one destination may have claimed (delivering or waiting).
    pub(super) fn destination_cap(&self) -> usize {
        self.limits.per_destination * CLAIM_AHEAD
    }

    /// Asks the delivery loop for a claim at its next turn.
    pub(super) fn want_claim(&self) {
        self.claim_wanted.store(true, SeqCst);
    }

    /// Whether a claim was asked for since the last call.
    pub(super) fn take_claim_wanted(&self) -> bool {
        self.claim_wanted.swap(false, SeqCst)
    }

    /// Wakes the delivery loop.
    pub(super) fn wake_delivery(&self) {
        self.work_ready.notify_one();
    }

    /// Resolves when the delivery loop is woken.
    pub(super) async fn work_ready(&self) {
        self.work_ready.notified().await
    }

    /// A delivery finished: its slot is free for work a starved claim left behind.
    pub(super) fn slot_freed(&self) {
        if self.starved.load(SeqCst) {
            self.want_claim();
        }
        self.work_ready.notify_one();
    }

    /// A claim found no room for anything.
    pub(super) fn claim_found_no_room(&self) {
        self.starved.store(true, SeqCst);
    }

    /// How many matcher batches left work behind so far; a claim reads it before it starts.
    pub(super) fn left_behind(&self) -> u64 {
        self.left_behind.load(SeqCst)
    }

    /// A claim ended; `starved`: cut short, more may be due than it could take. One that was
    /// not took everything left behind up to `behind` (read before it started).
    pub(super) fn claimed(&self, starved: bool, behind: u64) {
        self.starved.store(starved, SeqCst);
        if !starved {
            self.caught_up.fetch_max(behind, SeqCst);
        }
    }

    /// Waits, at most `PACE_MAX`, until the deliveries this process holds leave room to hand
    /// off a whole batch of executions. A matcher working through a backlog would otherwise
    /// run ahead of delivery and store most of it pending, and claiming that again costs a
    /// second write of every execution. Only destinations that are sending count: a dead one
    /// (its requests timing out) keeps its backlog pending and holds nobody back.
    pub(super) async fn pace(&self) {
        let until = tokio::time::Instant::now() + PACE_MAX;
        loop {
            // Registered (and `pacing` set) before the check: a delivery that makes room after
            // it wakes this wait.
            let sent = self.sent.notified();
            self.pacing.store(true, SeqCst);
            if self.batch_fits(&self.lock()) {
                break;
            }
            if tokio::time::timeout_at(until, sent).await.is_err() {
                break;
            }
        }
        self.pacing.store(false, SeqCst);
    }

    /// Whether a whole batch of executions could be handed off to destinations now sending.
    fn batch_fits(&self, f: &InFlight) -> bool {
        f.room_for(
            MATCH_BATCH as usize,
            self.destination_cap(),
            self.hold_limit(),
            Instant::now(),
        )
    }

    /// A delivery to `destination` was sent. Returns whether the matcher, pacing, should be
    /// told there is room for its batch now (with [`Self::wake_pacer`]).
    pub(super) fn sent_to(&self, destination: Option<IntegrationId>) -> bool {
        let Some(d) = destination else { return false };
        let mut f = self.lock();
        f.sent(d, Instant::now());
        self.pacing.load(SeqCst) && self.batch_fits(&f)
    }

    /// Wakes the matcher's pacing wait.
    pub(super) fn wake_pacer(&self) {
        self.sent.notify_waiters();
    }

    /// Marks the pending executions this process can start soon to be stored already leased
    /// to it for `lease`: as many as a claim would take now, within each destination's
    /// claim-ahead.
    pub(super) fn lease_for_handoff(&self, executions: &mut [NewExecution], lease: Duration) {
        if self.caught_up.load(SeqCst) < self.left_behind.load(SeqCst) {
            return; // earlier work waits for a claim; this batch goes after it
        }
        let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
        let f = self.lock();
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
            if f.unsent(d) + *n >= self.destination_cap() {
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
    pub(super) fn hand_off(&self, executions: Vec<NewExecution>, ids: &[Option<ExecutionId>]) {
        let mut f = self.lock();
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

    /// A matcher batch was stored: `left` executions pending for a claim, `pending` pending
    /// in all (left behind or handed off).
    pub(super) fn matched(&self, left: usize, pending: usize) {
        if left > 0 {
            self.left_behind.fetch_add(1, SeqCst);
            self.want_claim();
        }
        if pending > 0 {
            self.work_ready.notify_one();
        }
    }

    /// These executions' attempts were recorded (or given up on; their leases bring them
    /// back): they no longer count as held.
    pub(super) fn release(
        &self,
        done: impl IntoIterator<Item = (ExecutionId, Option<IntegrationId>)>,
    ) {
        let mut f = self.lock();
        for (id, destination) in done {
            f.recorded(id, destination);
        }
    }

    /// Everything whose lease this process renews.
    pub(super) fn leased(&self) -> Vec<ExecutionId> {
        self.lock().leased.iter().copied().collect()
    }
}
