//! [`InFlight`]: the counts behind this process's deliveries — what it holds leased, what waits
//! for a slot per destination, what is being sent, and what was sent and is not yet recorded.
//! Plain data with no locking or waking of its own: [`super::ledger::Ledger`] keeps it behind
//! one lock, and every change is made whole under it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use herald_domain::automation::ActionType;
use herald_domain::ids::{ExecutionId, IntegrationId};
use herald_store::ClaimedExecution;

use super::PACE_MAX;

#[derive(Default)]
pub(super) struct InFlight {
    /// Deliveries sent but not yet recorded, per destination.
    pub(super) unrecorded: HashMap<IntegrationId, usize>,
    /// When each destination last finished sending a delivery, or, until its first one
    /// finishes, when it was given the work it holds: one that has done neither for a while
    /// (a dead receiver, timing out) does not hold back the matcher.
    pub(super) live_at: HashMap<IntegrationId, Instant>,
    /// Every execution this process has claimed and not yet recorded: their leases are renewed.
    pub(super) leased: HashSet<ExecutionId>,
    /// Deliveries under way, each holding one of `max_in_flight` slots.
    pub(super) total: usize,
    /// Claimed executions per destination, under way or queued.
    pub(super) by_destination: HashMap<IntegrationId, usize>,
    /// Deliveries under way per destination (at most `per_destination`).
    pub(super) active: HashMap<IntegrationId, usize>,
    /// Claimed executions waiting for a slot. They hold no slot, so a slow or dead
    /// destination's backlog never takes room that others need; freed slots go to the
    /// destinations with work waiting in turn.
    /// Ordered by id, for the turns.
    pub(super) queued: BTreeMap<IntegrationId, VecDeque<ClaimedExecution>>,
}

/// The concurrency limits deliveries start within.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    pub(super) total: usize,
    pub(super) per_destination: usize,
}

impl InFlight {
    /// Gives back a delivery's slot: its place in the total and its destination's count.
    pub(super) fn free_slot(&mut self, destination: Option<IntegrationId>) {
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
    pub(super) fn unsent(&self, d: IntegrationId) -> usize {
        let held = self.by_destination.get(&d).copied().unwrap_or(0);
        held.saturating_sub(self.unrecorded.get(&d).copied().unwrap_or(0))
    }

    /// Whether `batch` more executions fit, unsent, within `cap` for every destination that
    /// sent something in the last `PACE_MAX` before `now`, and within `hold` for all of them.
    /// Destinations that are not sending (a dead receiver) are left out: waiting for them
    /// would hold everyone back. A limit smaller than two batches needs room for only half of
    /// itself: waiting for more could never end.
    pub(super) fn room_for(&self, batch: usize, cap: usize, hold: usize, now: Instant) -> bool {
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
    pub(super) fn queue(&mut self, d: IntegrationId, x: ClaimedExecution) {
        self.leased.insert(x.id);
        *self.by_destination.entry(d).or_default() += 1;
        // Work just given counts as sending: a destination that has sent nothing yet (every
        // one, just after a start) would otherwise take no room, and the matcher would hand
        // it batch after batch, past its claim-ahead, leaving the rest to be claimed again.
        self.live_at.entry(d).or_insert_with(Instant::now);
        self.queued.entry(d).or_default().push_back(x);
    }

    /// Holds leased `x`, which has no destination (NO_OP), in a slot of its own at once.
    pub(super) fn start_at_once(&mut self, x: &ClaimedExecution) {
        self.leased.insert(x.id);
        self.total += 1;
    }

    /// Everything leased and not yet sent, in all.
    pub(super) fn held_unsent(&self) -> usize {
        let unrecorded: usize = self.unrecorded.values().sum();
        self.leased.len().saturating_sub(unrecorded)
    }

    /// Everything handed off or claimed and waiting for a slot, in all.
    pub(super) fn queued_len(&self) -> usize {
        self.queued.values().map(VecDeque::len).sum()
    }

    /// A delivery to `d` was sent: it waits for the recorder now.
    pub(super) fn sent(&mut self, d: IntegrationId, now: Instant) {
        *self.unrecorded.entry(d).or_default() += 1;
        self.live_at.insert(d, now);
    }

    /// Execution `id`'s attempt was recorded (or given up on): it no longer counts as held.
    pub(super) fn recorded(&mut self, id: ExecutionId, destination: Option<IntegrationId>) {
        self.leased.remove(&id);
        let Some(d) = destination else { return };
        if let Some(c) = self.by_destination.get_mut(&d) {
            *c -= 1;
            if *c == 0 {
                self.by_destination.remove(&d);
                self.live_at.remove(&d);
            }
        }
        if let Some(c) = self.unrecorded.get_mut(&d) {
            *c -= 1;
            if *c == 0 {
                self.unrecorded.remove(&d);
            }
        }
    }

    /// Takes a slot for the next queued execution that may start now, if any: destinations
    /// take turns (in id order, starting after `after`), each up to its own limit, all
    /// together up to the total.
    pub(super) fn next_ready(
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
                let limit = if queue.front().is_some_and(is_notification) {
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

/// Whether `x` posts a Slack message (its stored action's `type`).
fn is_notification(x: &ClaimedExecution) -> bool {
    x.action["type"].as_str().and_then(ActionType::from_db) == Some(ActionType::Notification)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::ids::{AutomationId, EntityId};
    use serde_json::Value;

    fn execution(id: i64, destination: i64, kind: ActionType) -> ClaimedExecution {
        ClaimedExecution {
            id: ExecutionId(id),
            entity_id: EntityId(1),
            automation_id: AutomationId(1),
            integration_id: Some(IntegrationId(destination)),
            action: serde_json::json!({ "type": kind.as_str() }).into(),
            variables: Value::Null,
            attempt_count: 0,
            round_attempts: 0,
        }
    }

    fn queued(f: &mut InFlight, id: i64, destination: i64, kind: ActionType) {
        let d = IntegrationId(destination);
        f.queued
            .entry(d)
            .or_default()
            .push_back(execution(id, destination, kind));
    }

    #[test]
    fn queued_executions_take_room_from_the_next_batch_until_sent() {
        let mut f = InFlight::default();
        let now = Instant::now();
        let d = IntegrationId(1);
        // A matcher batch handed off: queued, not yet started, to a destination that has sent
        // nothing yet (as at a start): it counts as sending from now.
        for id in 0..600 {
            f.queue(d, execution(id, 1, ActionType::GenericWebhook));
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
            queued(&mut f, id, 7, ActionType::GenericWebhook);
        }
        // One destination: its own limit, in queue order.
        assert_eq!(drain(&mut f, None, LIMITS), vec![(1, 7), (2, 7)]);
        assert_eq!((f.total, f.active[&IntegrationId(7)]), (2, 2));
        for id in 6..=8 {
            queued(&mut f, id, 9, ActionType::GenericWebhook);
        }
        for id in 10..=12 {
            queued(&mut f, id, 3, ActionType::Notification);
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
        let now = Instant::now();
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
            queued(&mut f, id, d, ActionType::GenericWebhook);
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
