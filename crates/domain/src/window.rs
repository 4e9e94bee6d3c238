//! The streaming run-metric evaluator: one [`Evaluator`] per (automation, run)
//! is fed each logged value of the watched metric and says whether the condition is met at
//! that point. This module owns the window arithmetic and its numerical care; parsing the
//! conditions is `crate::run_filter`'s, and edge-triggering, cooldowns, storage and which
//! values to feed are the engine's (the small pure helpers [`EdgeTrigger`] and
//! [`cooldown_allows`] are here so those rules are tested once).
//!
//! Semantics (W&B's run-metric conditions):
//! - Threshold: `agg(last window values) cmp threshold`; the window must be full; `agg_op`
//!   null means the newest value.
//! - Change: `cur = agg(newest current_window values)`, `prior = agg(the prior_window values
//!   logged just before them)`, both full; ABSOLUTE `d = cur − prior`, RELATIVE
//!   `d = (cur − prior)/|prior|`, never firing when `prior` is exactly 0; INCREASE `d ≥ amount`,
//!   DECREASE `d ≤ −amount`, ANY `|d| ≥ amount`.
//! - Z-score: mean and population standard deviation of the `window_size` values before the
//!   newest; `z = (x − mean)/sd`; no firing until that window is full or while `sd` is 0.
//!
//! Decisions W&B's documentation leaves open:
//! - Order: the evaluator sees values in the order they are pushed, which must be logging
//!   order. Steps are not its concern: a row logged late with a smaller step is, to the
//!   evaluator, simply the newest value (W&B's windows are "the most recently logged values").
//! - Non-finite values (NaN, ±inf) are ignored: `push` returns `None` and nothing changes, so
//!   `is_met` still describes the last finite value.
//! - AVERAGE: a running sum with Neumaier compensation, re-summed from the ring buffer every
//!   `window` evictions (amortised O(1)) and whenever it stops being finite. Compensation keeps
//!   the error of one period near one rounding, and the re-sum stops error from accumulating
//!   over a long run (the test pushes 10⁶ values and checks 1e-9 relative error).
//! - Z-score statistics: Welford's mean and M2 with the sliding-window replacement update,
//!   recomputed exactly (two passes over the ring) every `window` pushes and whenever M2 falls
//!   below 1e-6 of its peak since the last recompute (a big value leaving the window would
//!   otherwise leave cancellation error that dwarfs the remaining variance).
//! - `sd == 0`: exact when the whole window holds one repeated value (a run-length counter, no
//!   tolerance needed); otherwise `sd ≤ 1e-12·|mean|` ([`SD_ZERO_REL_TOL`]) also counts as 0,
//!   because such an sd is floating-point residue (values that differ in the last bits), far
//!   below the precision any logged metric has, and dividing by it would fire on noise.
//! - RELATIVE with `prior == 0`: compared exactly; the prior of MAX/MIN/null is a logged value
//!   and an AVERAGE is the compensated sum, so 0 means the values really sum to 0.
//! - Memory: every buffer is allocated once, at its window's size, when the evaluator is made;
//!   `push` never allocates except to build the [`Firing`] it returns (use
//!   [`Evaluator::update`] and [`Evaluator::firing`] to pay for that only on an edge).

use std::collections::VecDeque;

use crate::run_filter::{Agg, ChangeDir, ChangeType, CmpOp, RunCondition};

/// W&B's rule: a run event automation fires at most once per run per 24 hours.
pub const DEFAULT_COOLDOWN_SECS: i64 = 24 * 60 * 60;

/// A standard deviation at or below this fraction of `|mean|` is treated as 0 (see the module
/// docs).
pub const SD_ZERO_REL_TOL: f64 = 1e-12;

/// M2 falling below this fraction of its peak since the last recompute triggers a recompute.
const CANCELLATION_RATIO: f64 = 1e-6;

/// A condition met at one logged value.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// Threshold: the aggregate of the window (the newest value when `agg_op` is null).
    /// Change: the current window's aggregate. Z-score: the newest value.
    pub value: f64,
    /// Change: the prior window's aggregate. Z-score: the mean of the window before the newest
    /// value. Threshold: `None`.
    pub baseline: Option<f64>,
    /// Change: `d` (a fraction for RELATIVE). Z-score: `z`. Threshold: `None`.
    pub score: Option<f64>,
    /// The values that met the condition, oldest first: the threshold window; the prior window
    /// then the current one; the z-score window then the newest value.
    pub values: Vec<f64>,
}

/// The state of one metric condition over one run's values. See the module docs.
#[derive(Debug, Clone)]
pub struct Evaluator {
    kind: Kind,
    met: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Threshold {
        window: Window,
        cmp: CmpOp,
        threshold: f64,
    },
    Change {
        cur: Window,
        prior: Window,
        change_type: ChangeType,
        dir: ChangeDir,
        amount: f64,
        /// (cur, prior, d) at the last accepted value, when both windows were full.
        last: Option<(f64, f64, f64)>,
    },
    ZScore {
        stats: ZWindow,
        dir: ChangeDir,
        threshold: f64,
        /// (mean, z) at the last accepted value, when they were defined.
        last: Option<(f64, f64)>,
    },
}

impl Evaluator {
    /// An evaluator with empty windows.
    ///
    /// # Panics
    /// For [`RunCondition::State`], which has no metric to evaluate; use
    /// [`Evaluator::try_new`] when the condition may be one.
    pub fn new(cond: &RunCondition) -> Evaluator {
        Self::try_new(cond).expect("Evaluator::new needs a metric condition, not RUN_STATE")
    }

    /// [`Evaluator::new`], or `None` for a `RUN_STATE` condition.
    pub fn try_new(cond: &RunCondition) -> Option<Evaluator> {
        let kind = match cond {
            RunCondition::Threshold(f) => Kind::Threshold {
                window: Window::new(f.effective_window(), f.agg),
                cmp: f.cmp,
                threshold: f.threshold,
            },
            RunCondition::Change(f) => {
                let (cur, prior) = f.effective_windows();
                Kind::Change {
                    cur: Window::new(cur, f.agg),
                    prior: Window::new(prior, f.agg),
                    change_type: f.change_type,
                    dir: f.change_dir,
                    amount: f.change_amount,
                    last: None,
                }
            }
            RunCondition::ZScore(f) => Kind::ZScore {
                stats: ZWindow::new(f.window_size),
                dir: f.change_dir,
                threshold: f.threshold,
                last: None,
            },
            RunCondition::State(_) => return None,
        };
        Some(Evaluator { kind, met: false })
    }

    /// An evaluator that has seen `history` (oldest first), for restart safety: feeding it the
    /// run's newest [`RunCondition::history_len`] values puts it in the same state as one that
    /// saw every value, so [`Evaluator::is_met`] says whether the newest stored point already
    /// met the condition (seed the engine's [`EdgeTrigger`] with it to avoid firing twice).
    ///
    /// # Panics
    /// For [`RunCondition::State`], like [`Evaluator::new`].
    pub fn rebuild(cond: &RunCondition, history: impl IntoIterator<Item = f64>) -> Evaluator {
        let mut e = Evaluator::new(cond);
        for x in history {
            e.update(x);
        }
        e
    }

    /// Feeds the next logged value; returns what met the condition if it is met at this point
    /// (a level, not an edge). Non-finite values are ignored and return `None`.
    pub fn push(&mut self, x: f64) -> Option<Firing> {
        if self.update(x) {
            self.firing()
        } else {
            None
        }
    }

    /// [`Evaluator::push`] without building the [`Firing`]: never allocates. Returns whether
    /// `x` was finite and the condition is met at it.
    pub fn update(&mut self, x: f64) -> bool {
        if !x.is_finite() {
            return false;
        }
        self.met = match &mut self.kind {
            Kind::Threshold {
                window,
                cmp,
                threshold,
            } => {
                window.push(x);
                window.value().is_some_and(|v| cmp.holds(v, *threshold))
            }
            Kind::Change {
                cur,
                prior,
                change_type,
                dir,
                amount,
                last,
            } => {
                // The value leaving the current window is the newest of the prior one.
                if let Some(out) = cur.push(x) {
                    prior.push(out);
                }
                *last = match (cur.value(), prior.value()) {
                    (Some(c), Some(p)) => match change_type {
                        ChangeType::Absolute => Some((c, p, c - p)),
                        ChangeType::Relative if p == 0.0 => None,
                        ChangeType::Relative => Some((c, p, (c - p) / p.abs())),
                    },
                    _ => None,
                };
                last.is_some_and(|(_, _, d)| dir.holds(d, *amount))
            }
            Kind::ZScore {
                stats,
                dir,
                threshold,
                last,
            } => {
                *last = stats.mean_sd().map(|(mean, sd)| (mean, (x - mean) / sd));
                stats.push(x);
                last.is_some_and(|(_, z)| dir.holds(z, *threshold))
            }
        };
        self.met
    }

    /// What met the condition at the last finite value, if it was met.
    pub fn firing(&self) -> Option<Firing> {
        if !self.met {
            return None;
        }
        Some(match &self.kind {
            Kind::Threshold { window, .. } => Firing {
                value: window.value()?,
                baseline: None,
                score: None,
                values: window.ring.iter().copied().collect(),
            },
            Kind::Change {
                cur, prior, last, ..
            } => {
                let (c, p, d) = (*last)?;
                let mut values = Vec::with_capacity(prior.ring.len() + cur.ring.len());
                values.extend(prior.ring.iter().chain(cur.ring.iter()));
                Firing {
                    value: c,
                    baseline: Some(p),
                    score: Some(d),
                    values,
                }
            }
            Kind::ZScore { stats, last, .. } => {
                let (mean, z) = (*last)?;
                // The window before the newest value is the value it pushed out plus all but
                // the last of the ring; together with the newest that is the evicted value
                // followed by the ring.
                let mut values = Vec::with_capacity(stats.ring.len() + 1);
                values.extend(stats.evicted);
                values.extend(stats.ring.iter());
                Firing {
                    value: *stats.ring.back()?,
                    baseline: Some(mean),
                    score: Some(z),
                    values,
                }
            }
        })
    }

    /// Whether the condition was met at the last finite value pushed.
    pub fn is_met(&self) -> bool {
        self.met
    }

    /// How many values (and deque entries) the evaluator holds; bounded by twice the sum of
    /// its windows whatever the number of values pushed.
    pub fn state_len(&self) -> usize {
        match &self.kind {
            Kind::Threshold { window, .. } => window.state_len(),
            Kind::Change { cur, prior, .. } => cur.state_len() + prior.state_len(),
            Kind::ZScore { stats, .. } => stats.ring.len(),
        }
    }
}

/// Turns a level (condition met or not at each point) into edges: `observe` is true only when
/// the condition goes from not met to met, so a metric that stays above a threshold fires
/// once, and again only after it has dropped below and come back. Feed it
/// [`Evaluator::is_met`] after each push (or skip non-finite values), not
/// `push(x).is_some()`: an ignored NaN returns `None` but is no point at which the condition
/// stopped holding, and would otherwise re-arm the trigger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeTrigger {
    was_met: bool,
}

impl EdgeTrigger {
    /// A trigger whose previous point was (or was not) met: after a restart, seed it with
    /// [`Evaluator::is_met`] of the rebuilt evaluator.
    pub fn new(was_met: bool) -> Self {
        Self { was_met }
    }

    /// Records the level at the next point; true on a false → true transition.
    pub fn observe(&mut self, met: bool) -> bool {
        let rising = met && !self.was_met;
        self.was_met = met;
        rising
    }

    pub fn was_met(&self) -> bool {
        self.was_met
    }
}

/// Whether an automation that last fired for a run at `last_fired_at` (`None` if never) may
/// fire again at `now`: at least `cooldown` must have passed. All three are in one unit; the
/// engine uses milliseconds, since in whole seconds a 1 s cooldown could end a few
/// milliseconds after the firing. A cooldown of 0 or less never blocks; a clock that went
/// backwards (`now` before `last_fired_at`) blocks until the cooldown has passed from the
/// later time, so a skew cannot cause a double firing.
pub fn cooldown_allows(last_fired_at: Option<i64>, now: i64, cooldown: i64) -> bool {
    match last_fired_at {
        None => true,
        _ if cooldown <= 0 => true,
        Some(t) => now.saturating_sub(t) >= cooldown,
    }
}

/// A sliding window of the newest `cap` values with its aggregate.
#[derive(Debug, Clone)]
struct Window {
    cap: usize,
    ring: VecDeque<f64>,
    agg: AggState,
    /// Values ever pushed; the sequence number of the newest.
    seq: u64,
}

#[derive(Debug, Clone)]
enum AggState {
    /// No aggregation: the newest value.
    Last,
    /// MAX (`max: true`) or MIN: a monotonic deque of (sequence number, value), whose front is
    /// the extreme of the window. Each value enters and leaves once: O(1) amortised.
    Extreme {
        max: bool,
        deque: VecDeque<(u64, f64)>,
    },
    Average(RunningSum),
}

impl Window {
    fn new(cap: usize, agg: Option<Agg>) -> Window {
        let cap = cap.max(1);
        let agg = match agg {
            None => AggState::Last,
            Some(Agg::Max) | Some(Agg::Min) => AggState::Extreme {
                max: agg == Some(Agg::Max),
                deque: VecDeque::with_capacity(cap),
            },
            Some(Agg::Average) => AggState::Average(RunningSum::default()),
        };
        Window {
            cap,
            ring: VecDeque::with_capacity(cap),
            agg,
            seq: 0,
        }
    }

    /// Adds `x` as the newest value; returns the value it pushes out, once the window is full.
    fn push(&mut self, x: f64) -> Option<f64> {
        let evicted = if self.ring.len() == self.cap {
            self.ring.pop_front()
        } else {
            None
        };
        self.ring.push_back(x);
        self.seq += 1;
        match &mut self.agg {
            AggState::Last => {}
            AggState::Extreme { max, deque } => {
                // Expire first so the deque never holds more than `cap` entries (no growth).
                let oldest_kept = self.seq.saturating_sub(self.cap as u64);
                while deque.front().is_some_and(|&(s, _)| s <= oldest_kept) {
                    deque.pop_front();
                }
                // A value dominated by a newer one can never be the extreme again.
                while deque
                    .back()
                    .is_some_and(|&(_, b)| if *max { b <= x } else { b >= x })
                {
                    deque.pop_back();
                }
                deque.push_back((self.seq, x));
            }
            AggState::Average(sum) => {
                sum.add(x);
                if let Some(out) = evicted {
                    sum.add(-out);
                    sum.since_resum += 1;
                }
                if sum.since_resum >= self.cap || !sum.total().is_finite() {
                    sum.resum(&self.ring);
                }
            }
        }
        evicted
    }

    /// The aggregate, once the window is full.
    fn value(&self) -> Option<f64> {
        if self.ring.len() < self.cap {
            return None;
        }
        match &self.agg {
            AggState::Last => self.ring.back().copied(),
            AggState::Extreme { deque, .. } => deque.front().map(|&(_, v)| v),
            AggState::Average(sum) => Some(sum.total() / self.ring.len() as f64),
        }
    }

    fn state_len(&self) -> usize {
        self.ring.len()
            + match &self.agg {
                AggState::Extreme { deque, .. } => deque.len(),
                _ => 0,
            }
    }
}

/// A Neumaier-compensated sum: `sum + comp` carries about twice the precision of `sum`.
#[derive(Debug, Clone, Default)]
struct RunningSum {
    sum: f64,
    comp: f64,
    /// Evictions since the last re-sum.
    since_resum: usize,
}

impl RunningSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.comp += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    fn total(&self) -> f64 {
        self.sum + self.comp
    }

    fn resum(&mut self, values: &VecDeque<f64>) {
        *self = RunningSum::default();
        for &v in values {
            self.add(v);
        }
    }
}

/// The z-score window: the newest `cap` values with their mean and M2 (sum of squared
/// deviations), maintained by Welford's updates.
#[derive(Debug, Clone)]
struct ZWindow {
    cap: usize,
    ring: VecDeque<f64>,
    mean: f64,
    m2: f64,
    /// Largest M2 since the last exact recompute, to detect cancellation.
    m2_peak: f64,
    /// Pushes since the last exact recompute.
    since_recompute: usize,
    /// How many of the newest values are equal (capped at `cap`): the window is constant, and
    /// its sd exactly 0, when this reaches `cap`.
    same: usize,
    /// The value the last push moved out of the window.
    evicted: Option<f64>,
}

impl ZWindow {
    fn new(cap: usize) -> ZWindow {
        let cap = cap.max(1);
        ZWindow {
            cap,
            ring: VecDeque::with_capacity(cap),
            mean: 0.0,
            m2: 0.0,
            m2_peak: 0.0,
            since_recompute: 0,
            same: 0,
            evicted: None,
        }
    }

    /// Mean and population sd of the window, once full and when the sd is not 0.
    fn mean_sd(&self) -> Option<(f64, f64)> {
        if self.ring.len() < self.cap || self.same >= self.cap {
            return None;
        }
        let sd = (self.m2.max(0.0) / self.cap as f64).sqrt();
        if sd == 0.0 || sd <= SD_ZERO_REL_TOL * self.mean.abs() || !sd.is_finite() {
            return None;
        }
        Some((self.mean, sd))
    }

    fn push(&mut self, x: f64) {
        self.same = match self.ring.back() {
            Some(&last) if last == x => (self.same + 1).min(self.cap),
            _ => 1,
        };
        if self.ring.len() < self.cap {
            self.evicted = None;
            self.ring.push_back(x);
            let n = self.ring.len() as f64;
            let d = x - self.mean;
            self.mean += d / n;
            self.m2 += d * (x - self.mean);
        } else {
            let y = self.ring.pop_front().expect("a full window is not empty");
            self.evicted = Some(y);
            self.ring.push_back(x);
            // Replacing y by x at constant n: mean' = mean + (x − y)/n and
            // M2' = M2 + (x − y)(x − mean' + y − mean).
            let old_mean = self.mean;
            self.mean += (x - y) / self.cap as f64;
            self.m2 += (x - y) * (x - self.mean + y - old_mean);
        }
        self.since_recompute += 1;
        self.m2_peak = self.m2_peak.max(self.m2);
        if self.since_recompute >= self.cap
            || self.m2 < self.m2_peak * CANCELLATION_RATIO
            || !self.m2.is_finite()
            || !self.mean.is_finite()
        {
            self.recompute();
        }
    }

    /// Two-pass mean and M2 from the ring: exact up to one rounding per value.
    fn recompute(&mut self) {
        let mut sum = RunningSum::default();
        for &v in &self.ring {
            sum.add(v);
        }
        let n = self.ring.len().max(1) as f64;
        self.mean = sum.total() / n;
        self.m2 = self.ring.iter().map(|v| (v - self.mean).powi(2)).sum();
        self.m2_peak = self.m2;
        self.since_recompute = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::event::EventType;
    use crate::names::MetricName;
    use crate::run_filter::{ChangeFilter, RunEventFilter, ThresholdFilter, ZScoreFilter};

    fn name() -> MetricName {
        MetricName::parse("m").unwrap()
    }

    fn threshold(agg: Option<Agg>, window: usize, cmp: CmpOp, t: f64) -> RunCondition {
        RunCondition::Threshold(ThresholdFilter {
            name: name(),
            agg,
            window_size: window,
            cmp,
            threshold: t,
        })
    }

    fn change(
        agg: Option<Agg>,
        cur: usize,
        prior: usize,
        change_type: ChangeType,
        dir: ChangeDir,
        amount: f64,
    ) -> RunCondition {
        RunCondition::Change(ChangeFilter {
            name: name(),
            agg,
            current_window_size: cur,
            prior_window_size: prior,
            change_type,
            change_dir: dir,
            change_amount: amount,
        })
    }

    fn zscore(window: usize, t: f64, dir: ChangeDir) -> RunCondition {
        RunCondition::ZScore(ZScoreFilter {
            name: name(),
            window_size: window,
            threshold: t,
            change_dir: dir,
        })
    }

    /// Which pushes fired, as a string of `.` and `F` (ignored values show as `-`).
    fn trace(cond: &RunCondition, xs: &[f64]) -> String {
        let mut e = Evaluator::new(cond);
        xs.iter()
            .map(|&x| match e.push(x) {
                Some(_) => 'F',
                None if !x.is_finite() => '-',
                None => '.',
            })
            .collect()
    }

    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    #[test]
    fn threshold_table() {
        use Agg::*;
        use CmpOp::*;
        let cases: Vec<(RunCondition, Vec<f64>, &str)> = vec![
            // Single value, each comparison, equality at the threshold.
            (threshold(None, 1, Gt, 0.5), vec![0.4, 0.5, 0.6], "..F"),
            (threshold(None, 1, Gte, 0.5), vec![0.4, 0.5, 0.6], ".FF"),
            (threshold(None, 1, Lt, 0.5), vec![0.4, 0.5, 0.6], "F.."),
            (threshold(None, 1, Lte, 0.5), vec![0.4, 0.5, 0.6], "FF."),
            (threshold(None, 1, Eq, 0.5), vec![0.4, 0.5, 0.6], ".F."),
            (threshold(None, 1, Ne, 0.5), vec![0.4, 0.5, 0.6], "F.F"),
            // agg null ignores window_size.
            (threshold(None, 5, Gt, 0.5), vec![0.9], "F"),
            // Window not yet full: no firing even though the values qualify.
            (
                threshold(Some(Max), 3, Gt, 0.5),
                vec![0.9, 0.9, 0.1, 0.1, 0.1, 0.1],
                "..FF..",
            ),
            (
                threshold(Some(Min), 3, Lt, 0.5),
                vec![0.1, 0.9, 0.9, 0.9, 0.9],
                "..F..",
            ),
            (
                threshold(Some(Min), 2, Gte, 1.0),
                vec![1.0, 2.0, 0.5, 3.0, 1.0],
                ".F..F",
            ),
            (
                threshold(Some(Average), 2, Gte, 1.0),
                vec![0.0, 2.0, 0.0, 3.0],
                ".FFF",
            ),
            (
                threshold(Some(Average), 2, Gt, 1.0),
                vec![0.0, 2.0, 0.0, 3.0],
                "...F",
            ),
            (
                threshold(Some(Average), 3, Eq, 2.0),
                vec![1.0, 2.0, 3.0, 1.0, 4.0],
                "..FF.",
            ),
            // NaN and ±inf are ignored: they neither fill nor break the window.
            (
                threshold(Some(Max), 2, Gt, 0.5),
                vec![0.9, NAN, INF, 0.1, -INF, 0.2],
                ".--F-.",
            ),
            (threshold(None, 1, Gt, 0.5), vec![NAN, 0.6, INF], "-F-"),
        ];
        for (cond, xs, want) in cases {
            assert_eq!(trace(&cond, &xs), want, "{} on {xs:?}", cond.describe());
        }
    }

    #[test]
    fn change_table() {
        use Agg::*;
        use ChangeDir::*;
        use ChangeType::*;
        let cases: Vec<(RunCondition, Vec<f64>, &str)> = vec![
            // Newest vs the one before.
            (
                change(None, 1, 1, Absolute, Increase, 1.0),
                vec![0.0, 1.0, 1.5, 2.5],
                ".F.F",
            ),
            (
                change(None, 1, 1, Absolute, Decrease, 1.0),
                vec![3.0, 2.0, 1.5, 0.5],
                ".F.F",
            ),
            (
                change(None, 1, 1, Absolute, Any, 1.0),
                vec![0.0, 1.0, 0.0, 0.5],
                ".FF.",
            ),
            // Windows not full: needs cur + prior values.
            (
                change(Some(Average), 2, 3, Absolute, Increase, 1.0),
                vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
                "....F..",
            ),
            (
                change(Some(Average), 2, 2, Absolute, Increase, 1.0),
                vec![0.0, 0.0, 1.0, 1.0],
                "...F",
            ),
            (
                change(Some(Max), 1, 2, Absolute, Decrease, 2.0),
                vec![5.0, 1.0, 3.0, 0.0, 3.0],
                "..FF.",
            ),
            (
                change(Some(Min), 2, 1, Absolute, Any, 1.0),
                vec![5.0, 4.0, 4.5, 3.9, 3.0],
                "..F.F",
            ),
            // Relative: a fraction of |prior|; prior 0 never fires; negative priors use |prior|.
            (
                change(None, 1, 1, Relative, Increase, 0.5),
                vec![2.0, 3.0, 4.0, 6.0],
                ".F.F",
            ),
            (
                change(None, 1, 1, Relative, Decrease, 0.25),
                vec![4.0, 3.0, 2.5, 0.0, 5.0],
                ".F.F.",
            ),
            (
                change(None, 1, 1, Relative, Any, 0.5),
                vec![0.0, 1.0, 0.0, -1.0, -2.0],
                "..F.F",
            ),
            (
                change(None, 1, 1, Relative, Increase, 0.5),
                vec![-2.0, -1.0],
                ".F",
            ),
            (
                change(Some(Average), 2, 2, Relative, Any, 0.1),
                vec![1.0, -1.0, 5.0, 5.0],
                "....",
            ),
            // Equality at the amount fires (inclusive).
            (
                change(None, 1, 1, Absolute, Increase, 0.5),
                vec![1.0, 1.5, 1.75],
                ".F.",
            ),
            // Non-finite values ignored.
            (
                change(None, 1, 1, Absolute, Any, 1.0),
                vec![0.0, NAN, 2.0, INF, 2.5],
                ".-F-.",
            ),
        ];
        for (cond, xs, want) in cases {
            assert_eq!(trace(&cond, &xs), want, "{} on {xs:?}", cond.describe());
        }
    }

    #[test]
    fn zscore_table() {
        use ChangeDir::*;
        let cases: Vec<(RunCondition, Vec<f64>, &str)> = vec![
            // Window [0, 2]: mean 1, sd 1 exactly; z of 3 is 2 (fires at ≥ 2), of 2.9 is 1.9.
            (zscore(2, 2.0, Increase), vec![0.0, 2.0, 3.0], "..F"),
            (zscore(2, 2.0, Increase), vec![0.0, 2.0, 2.9], "..."),
            (zscore(2, 2.0, Decrease), vec![0.0, 2.0, -1.0], "..F"),
            (zscore(2, 2.0, Decrease), vec![0.0, 2.0, 3.0], "..."),
            (zscore(2, 2.0, Any), vec![0.0, 2.0, -1.0], "..F"),
            (zscore(2, 2.0, Any), vec![0.0, 2.0, 3.0], "..F"),
            // Not full: nothing before window_size prior values.
            (zscore(3, 1.0, Any), vec![0.0, 100.0, 0.0, 50.0], "...."),
            (zscore(3, 1.0, Any), vec![0.0, 100.0, 0.0, 100.0], "...F"),
            // sd == 0: a constant window never fires, however far the newest value is.
            (
                zscore(3, 0.5, Any),
                vec![1.0, 1.0, 1.0, 100.0, 1.0],
                "....F",
            ),
            (zscore(1, 0.1, Any), vec![1.0, 5.0, -5.0], "..."),
            // NaN / inf are ignored (not part of the window).
            (
                zscore(2, 2.0, Increase),
                vec![0.0, NAN, 2.0, INF, 3.0],
                ".-.-F",
            ),
        ];
        for (cond, xs, want) in cases {
            assert_eq!(trace(&cond, &xs), want, "{} on {xs:?}", cond.describe());
        }
    }

    #[test]
    fn firings_carry_the_windows_and_the_statistic() {
        let mut e = Evaluator::new(&threshold(Some(Agg::Average), 3, CmpOp::Gt, 1.0));
        assert_eq!(e.push(1.0), None);
        assert_eq!(e.push(NAN), None);
        assert_eq!(e.push(2.0), None);
        let f = e.push(3.0).unwrap();
        assert_eq!(f.value, 2.0);
        assert_eq!(f.values, vec![1.0, 2.0, 3.0]);
        assert_eq!((f.baseline, f.score), (None, None));
        assert!(e.is_met());
        // A NaN changes nothing, not even is_met.
        assert_eq!(e.push(NAN), None);
        assert!(e.is_met());
        assert_eq!(e.firing(), Some(f));

        let mut e = Evaluator::new(&change(
            Some(Agg::Average),
            2,
            3,
            ChangeType::Relative,
            ChangeDir::Decrease,
            0.25,
        ));
        for x in [4.0, 4.0, 4.0, 4.0, 3.0] {
            assert_eq!(e.push(x), None, "{x}");
        }
        let f = e.push(2.0).unwrap();
        // prior = avg(4, 4, 4) = 4, cur = avg(3, 2) = 2.5: d = −0.375.
        assert_eq!(f.values, vec![4.0, 4.0, 4.0, 3.0, 2.0]);
        assert_eq!(
            (f.value, f.baseline, f.score),
            (2.5, Some(4.0), Some(-0.375))
        );

        let mut e = Evaluator::new(&zscore(2, 2.0, ChangeDir::Any));
        e.push(0.0);
        e.push(2.0);
        let f = e.push(-1.0).unwrap();
        assert_eq!(f.values, vec![0.0, 2.0, -1.0]);
        assert_eq!(
            (f.value, f.baseline, f.score),
            (-1.0, Some(1.0), Some(-2.0))
        );
        assert!(!e.update(1.5));
        assert_eq!(e.firing(), None);
    }

    #[test]
    fn out_of_order_steps_are_logging_order_to_the_evaluator() {
        // Rows logged as steps 10, 20, then a late step 15: the evaluator sees 0.1, 0.2, 0.9
        // and the window of 2 newest logged values is (0.2, 0.9), whatever their steps.
        let rows = [(10, 0.1), (20, 0.2), (15, 0.9)];
        let mut e = Evaluator::new(&threshold(Some(Agg::Max), 2, CmpOp::Gt, 0.5));
        let fired: Vec<_> = rows.iter().map(|&(_, x)| e.push(x)).collect();
        assert!(fired[..2].iter().all(Option::is_none));
        assert_eq!(fired[2].as_ref().unwrap().values, vec![0.2, 0.9]);
    }

    #[test]
    fn average_does_not_drift_over_a_million_values() {
        // Two adversarial streams for a running sum: values near 1 with a 1e12 spike every 997
        // values (each spike entering and leaving the sum would wipe out the low digits of the
        // small values; the last window is spike-free, so lost digits would show), and values
        // of mixed magnitude around a large offset.
        let window = 1000;
        let n = 1_000_000;
        let spiky = |i: usize| {
            let spike = i.is_multiple_of(997) && i < n - 2 * window;
            1.0 + (i as f64 * 0.618).sin() * 0.5 + if spike { 1e12 } else { 0.0 }
        };
        let offset = |i: usize| {
            let x = i as f64;
            1e6 + (x * 0.618).sin() * 1e5 + if i.is_multiple_of(7) { 1e-3 } else { 0.0 }
                - if i % 1000 == 3 { 3e5 } else { 0.0 }
        };
        let streams: [&dyn Fn(usize) -> f64; 2] = [&spiky, &offset];
        for value in streams {
            let cond = threshold(Some(Agg::Average), window, CmpOp::Gt, -1e300);
            let mut e = Evaluator::new(&cond);
            for i in 0..n {
                e.update(value(i));
                if (i + 1) % 100_000 == 0 {
                    let got = e.firing().unwrap().value;
                    // Reference: a compensated sum of the window, from scratch.
                    let mut sum = RunningSum::default();
                    for j in i + 1 - window..=i {
                        sum.add(value(j));
                    }
                    let want = sum.total() / window as f64;
                    assert!(
                        ((got - want) / want).abs() <= 1e-9,
                        "after {} values: got {got}, want {want}",
                        i + 1
                    );
                }
            }
            assert!(e.state_len() <= window);
        }
    }

    #[test]
    fn state_stays_bounded_by_the_windows() {
        let conds = [
            (threshold(Some(Agg::Max), 7, CmpOp::Gt, 0.0), 14),
            (threshold(Some(Agg::Min), 7, CmpOp::Gt, 0.0), 14),
            (threshold(Some(Agg::Average), 7, CmpOp::Gt, 0.0), 7),
            (threshold(None, 7, CmpOp::Gt, 0.0), 1),
            (
                change(
                    Some(Agg::Max),
                    3,
                    5,
                    ChangeType::Absolute,
                    ChangeDir::Any,
                    1.0,
                ),
                16,
            ),
            (zscore(9, 1.0, ChangeDir::Any), 9),
        ];
        for (cond, bound) in conds {
            let mut e = Evaluator::new(&cond);
            for i in 0..100_000u32 {
                // Increasing, decreasing and repeated stretches exercise the deques.
                let x = f64::from((i / 10) % 13) * if i % 2 == 0 { 1.0 } else { -1.0 };
                e.update(x);
                assert!(
                    e.state_len() <= bound,
                    "{}: {}",
                    cond.describe(),
                    e.state_len()
                );
            }
        }
    }

    #[test]
    fn zscore_recovers_from_a_huge_value_leaving_the_window() {
        // After a 1e9 spike leaves, the window is [1, 2, 1, 2, …] (sd 0.5); cancellation from
        // the spike must not distort the z of the next value.
        let cond = zscore(4, 2.0, ChangeDir::Any);
        let mut e = Evaluator::new(&cond);
        for x in [1e9, 1.0, 2.0, 1.0, 2.0] {
            e.update(x);
        }
        let f = e.push(2.5).unwrap();
        // mean 1.5, sd 0.5: z = 2.
        assert!((f.score.unwrap() - 2.0).abs() < 1e-12, "{f:?}");
        // And a constant window after a spike is exactly sd 0.
        let mut e = Evaluator::new(&zscore(3, 1.0, ChangeDir::Any));
        for x in [1e12, 0.1, 0.1, 0.1] {
            e.update(x);
        }
        assert!(!e.update(5.0));
    }

    #[test]
    fn rebuild_replays_history() {
        let conds = [
            threshold(Some(Agg::Average), 4, CmpOp::Gte, 2.0),
            change(
                Some(Agg::Min),
                2,
                3,
                ChangeType::Absolute,
                ChangeDir::Increase,
                1.0,
            ),
            zscore(3, 1.0, ChangeDir::Increase),
        ];
        let history: Vec<f64> = (0..50).map(|i| f64::from((i * 7) % 11) / 2.0).collect();
        for cond in conds {
            let mut live = Evaluator::new(&cond);
            for &x in &history {
                live.update(x);
            }
            let tail = &history[history.len() - cond.history_len()..];
            let rebuilt = Evaluator::rebuild(&cond, tail.iter().copied());
            assert_eq!(rebuilt.is_met(), live.is_met(), "{}", cond.describe());
            assert_eq!(rebuilt.firing(), live.firing());
            // And both go on identically.
            let (mut a, mut b) = (live, rebuilt);
            for x in [0.0, 5.0, 5.0, 1.0, 9.0, 0.5] {
                assert_eq!(a.push(x), b.push(x), "{}", cond.describe());
            }
        }
    }

    #[test]
    fn evaluators_come_from_parsed_filters() {
        let f = RunEventFilter::parse(
            EventType::RunMetric,
            &json!({"run_metric_filter": {"threshold_filter": {"name": "acc", "agg_op": null, "window_size": 1, "cmp_op": "$gte", "threshold": 0.9}}}),
        )
        .unwrap();
        let mut e = Evaluator::new(&f.condition);
        assert!(e.push(0.8).is_none());
        assert_eq!(e.push(0.9).unwrap().value, 0.9);
        let state = RunEventFilter::parse(
            EventType::RunState,
            &json!({"run_state_filter": {"states": ["FAILED"]}}),
        )
        .unwrap();
        assert!(Evaluator::try_new(&state.condition).is_none());
    }

    #[test]
    fn edge_trigger_fires_on_rising_edges_only() {
        let mut t = EdgeTrigger::default();
        let levels = [false, true, true, false, true, false, false, true];
        let edges: Vec<bool> = levels.iter().map(|&m| t.observe(m)).collect();
        assert_eq!(edges, [false, true, false, false, true, false, false, true]);
        // Seeded after a restart at a met point: staying met does not fire again.
        let mut t = EdgeTrigger::new(true);
        assert!(!t.observe(true));
        assert!(t.was_met());
    }

    #[test]
    fn cooldowns() {
        let day = DEFAULT_COOLDOWN_SECS;
        assert!(cooldown_allows(None, 0, day));
        assert!(!cooldown_allows(Some(100), 100, day));
        assert!(!cooldown_allows(Some(100), 100 + day - 1, day));
        assert!(cooldown_allows(Some(100), 100 + day, day));
        assert!(!cooldown_allows(Some(100), 50, day), "clock went backwards");
        assert!(cooldown_allows(Some(100), 50, 0));
        assert!(cooldown_allows(Some(i64::MIN), i64::MAX, day));
        assert!(!cooldown_allows(Some(i64::MAX), i64::MIN, day));
    }

    // ---- Property tests against a naive reference that recomputes from the full list. ----

    /// Margin under which the streaming and the naive computation may legitimately disagree.
    const TOL: f64 = 1e-9;

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() <= TOL * (1.0 + a.abs() + b.abs())
    }

    fn agg_naive(agg: Option<Agg>, w: &[f64]) -> f64 {
        match agg {
            None => *w.last().unwrap(),
            Some(Agg::Max) => w.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Some(Agg::Min) => w.iter().copied().fold(f64::INFINITY, f64::min),
            Some(Agg::Average) => w.iter().sum::<f64>() / w.len() as f64,
        }
    }

    /// Exact arithmetic for windows of small integers, so boundary cases are compared exactly.
    fn integral(w: &[f64]) -> bool {
        w.iter().all(|v| v.fract() == 0.0)
    }

    /// `Some((met, what met it))` when the result is certain, `None` when too close to call.
    type Verdict<T> = Option<(bool, Option<T>)>;

    /// The naive verdict at the end of `xs` (finite values only): `Some(met)` when the result
    /// is certain, `None` when the statistic is within rounding of a boundary.
    fn naive_threshold(f: &ThresholdFilter, xs: &[f64]) -> Verdict<(f64, Vec<f64>)> {
        let w = f.effective_window();
        if xs.len() < w {
            return Some((false, None));
        }
        let win = &xs[xs.len() - w..];
        let v = agg_naive(f.agg, win);
        if !integral(win) && near(v, f.threshold) {
            return None;
        }
        let met = f.cmp.holds(v, f.threshold);
        Some((met, met.then(|| (v, win.to_vec()))))
    }

    fn naive_change(f: &ChangeFilter, xs: &[f64]) -> Verdict<(f64, f64, Vec<f64>)> {
        let (c, p) = f.effective_windows();
        if xs.len() < c + p {
            return Some((false, None));
        }
        let all = &xs[xs.len() - c - p..];
        let (pw, cw) = all.split_at(p);
        let (cur, prior) = (agg_naive(f.agg, cw), agg_naive(f.agg, pw));
        let exact = integral(all);
        if !exact && near(prior, 0.0) && f.change_type == ChangeType::Relative {
            return None;
        }
        let d = match f.change_type {
            ChangeType::Absolute => cur - prior,
            ChangeType::Relative if prior == 0.0 => return Some((false, None)),
            ChangeType::Relative => (cur - prior) / prior.abs(),
        };
        let a = f.change_amount;
        if !exact && (near(d, a) || near(d, -a) || near(d.abs(), a)) {
            return None;
        }
        let met = f.change_dir.holds(d, a);
        Some((met, met.then(|| (cur, d, all.to_vec()))))
    }

    fn naive_zscore(f: &ZScoreFilter, xs: &[f64]) -> Verdict<(f64, Vec<f64>)> {
        let w = f.window_size;
        if xs.len() < w + 1 {
            return Some((false, None));
        }
        let all = &xs[xs.len() - w - 1..];
        let (win, x) = (&all[..w], all[w]);
        if win.iter().all(|&v| v == win[0]) {
            return Some((false, None));
        }
        let mean = win.iter().sum::<f64>() / w as f64;
        let sd = (win.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w as f64).sqrt();
        let tol = SD_ZERO_REL_TOL * mean.abs();
        if (sd - tol).abs() <= 1e-3 * tol + f64::MIN_POSITIVE {
            return None;
        }
        if sd <= tol {
            return Some((false, None));
        }
        let z = (x - mean) / sd;
        let t = f.threshold;
        if near(z, t) || near(z, -t) || near(z.abs(), t) {
            return None;
        }
        let met = f.change_dir.holds(z, t);
        Some((met, met.then(|| (z, all.to_vec()))))
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => (-3i32..=3).prop_map(f64::from),
            3 => -100.0f64..100.0,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
        ]
    }

    fn values() -> impl Strategy<Value = Vec<f64>> {
        prop_oneof![
            prop::collection::vec(value(), 0..120),
            // Few distinct values: repeats, constant windows, zeros.
            prop::collection::vec(prop_oneof![Just(0.0), Just(1.0), Just(f64::NAN)], 0..60),
        ]
    }

    fn agg() -> impl Strategy<Value = Option<Agg>> {
        prop_oneof![
            Just(None),
            Just(Some(Agg::Max)),
            Just(Some(Agg::Min)),
            Just(Some(Agg::Average))
        ]
    }

    fn dir() -> impl Strategy<Value = ChangeDir> {
        prop::sample::select(ChangeDir::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn threshold_agrees_with_naive(
            agg in agg(),
            window in 1usize..=8,
            cmp in prop::sample::select(CmpOp::ALL.to_vec()),
            t in (-6i32..=6).prop_map(|k| f64::from(k) / 2.0),
            xs in values(),
        ) {
            let f = ThresholdFilter { name: name(), agg, window_size: window, cmp, threshold: t };
            let mut e = Evaluator::new(&RunCondition::Threshold(f.clone()));
            let mut seen = Vec::new();
            for &x in &xs {
                let got = e.push(x);
                if !x.is_finite() {
                    prop_assert!(got.is_none());
                    continue;
                }
                seen.push(x);
                let Some((met, detail)) = naive_threshold(&f, &seen) else { continue };
                prop_assert_eq!(got.is_some(), met, "at {} of {:?}", seen.len(), seen);
                prop_assert_eq!(e.is_met(), met);
                if let (Some(g), Some((v, win))) = (got, detail) {
                    prop_assert!(near(g.value, v), "{} vs {}", g.value, v);
                    prop_assert_eq!(g.values, win);
                }
                prop_assert!(e.state_len() <= 2 * window);
            }
        }

        #[test]
        fn change_agrees_with_naive(
            agg in agg(),
            cur in 1usize..=8,
            prior in 1usize..=8,
            change_type in prop::sample::select(ChangeType::ALL.to_vec()),
            dir in dir(),
            amount in (1i32..=8).prop_map(|k| f64::from(k) / 4.0),
            xs in values(),
        ) {
            let f = ChangeFilter {
                name: name(), agg, current_window_size: cur, prior_window_size: prior,
                change_type, change_dir: dir, change_amount: amount,
            };
            let mut e = Evaluator::new(&RunCondition::Change(f.clone()));
            let mut seen = Vec::new();
            for &x in &xs {
                let got = e.push(x);
                if !x.is_finite() {
                    prop_assert!(got.is_none());
                    continue;
                }
                seen.push(x);
                let Some((met, detail)) = naive_change(&f, &seen) else { continue };
                prop_assert_eq!(got.is_some(), met, "at {} of {:?}", seen.len(), seen);
                if let (Some(g), Some((c, d, all))) = (got, detail) {
                    prop_assert!(near(g.value, c), "{} vs {}", g.value, c);
                    prop_assert!(near(g.score.unwrap(), d), "{:?} vs {}", g.score, d);
                    prop_assert_eq!(g.values, all);
                }
                prop_assert!(e.state_len() <= 2 * (cur + prior));
            }
        }

        #[test]
        fn zscore_agrees_with_naive(
            window in 1usize..=8,
            t in prop::sample::select(vec![0.5, 1.0, 1.5, 2.0, 3.0]),
            dir in dir(),
            xs in values(),
        ) {
            let f = ZScoreFilter { name: name(), window_size: window, threshold: t, change_dir: dir };
            let mut e = Evaluator::new(&RunCondition::ZScore(f.clone()));
            let mut seen = Vec::new();
            for &x in &xs {
                let got = e.push(x);
                if !x.is_finite() {
                    prop_assert!(got.is_none());
                    continue;
                }
                seen.push(x);
                let Some((met, detail)) = naive_zscore(&f, &seen) else { continue };
                prop_assert_eq!(got.is_some(), met, "at {} of {:?}", seen.len(), seen);
                if let (Some(g), Some((z, all))) = (got, detail) {
                    prop_assert!(near(g.score.unwrap(), z), "{:?} vs {}", g.score, z);
                    prop_assert_eq!(g.value, x);
                    prop_assert_eq!(g.values, all);
                }
                prop_assert!(e.state_len() <= window);
            }
        }

        #[test]
        fn rebuild_from_the_tail_matches_the_full_history(
            which in 0usize..3,
            window in 1usize..=6,
            xs in prop::collection::vec(value(), 0..80),
        ) {
            let cond = match which {
                0 => threshold(Some(Agg::Average), window, CmpOp::Gte, 0.5),
                1 => change(Some(Agg::Max), window, window + 1, ChangeType::Absolute, ChangeDir::Any, 1.0),
                _ => zscore(window, 1.0, ChangeDir::Any),
            };
            let finite: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
            let full = Evaluator::rebuild(&cond, xs.iter().copied());
            let tail = &finite[finite.len().saturating_sub(cond.history_len())..];
            let rebuilt = Evaluator::rebuild(&cond, tail.iter().copied());
            let want = match &cond {
                RunCondition::Threshold(f) => naive_threshold(f, &finite).map(|(m, _)| m),
                RunCondition::Change(f) => naive_change(f, &finite).map(|(m, _)| m),
                RunCondition::ZScore(f) => naive_zscore(f, &finite).map(|(m, _)| m),
                RunCondition::State(_) => unreachable!(),
            };
            if let Some(met) = want {
                prop_assert_eq!(full.is_met(), met);
                prop_assert_eq!(rebuilt.is_met(), met);
            }
        }
    }
}
