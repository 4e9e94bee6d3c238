//! Run events: metric conditions evaluated on each logged history batch, and state changes.
//!
//! Each (automation, run) pair has an evaluator whose windows hold the run's newest values of
//! the watched metric. The evaluators are a cache: when one is missing (first use, a restart,
//! automations changed) it is rebuilt from the run's stored history *before* the batch being
//! matched, so a restart neither forgets a window nor evaluates a point twice. Firing is
//! edge-triggered (the condition must go from not met to met) and at most once per run per
//! cooldown; the time of the last firing is stored with the execution, so cooldowns survive
//! restarts too.

use parking_lot::Mutex;
use std::collections::HashMap;

use herald_domain::automation::{Automation, DEFAULT_COOLDOWN_SECONDS};
use herald_domain::ids::{AutomationId, RunId};
use herald_domain::run::Run;
use herald_domain::run_filter::{RunCondition, RunEventFilter};
use herald_domain::window::{cooldown_allows, EdgeTrigger, Evaluator, Firing};
use herald_store::{Store, StoredHistoryRow};
use serde_json::{json, Map, Value};

use crate::Result;

/// History rows read per page when rebuilding a window.
const REBUILD_PAGE: u32 = 1000;
/// Most rows a rebuild reads looking for a sparse metric's values.
const REBUILD_MAX_ROWS: usize = 200_000;
/// Most evaluators kept; beyond it the cache starts over (they rebuild on demand).
const MAX_SLOTS: usize = 100_000;

struct Slot {
    eval: Evaluator,
    edge: EdgeTrigger,
    /// Unix milliseconds.
    last_fired: Option<i64>,
}

/// One logged history batch of a run, as the matcher evaluates it.
#[derive(Clone, Copy)]
pub struct HistoryBatch<'a> {
    pub run: &'a Run,
    /// The batch's rows, from `first_seq` on, in logging order.
    pub rows: &'a [StoredHistoryRow],
    pub first_seq: i64,
    /// Unix milliseconds, for cooldowns.
    pub now: i64,
}

/// The evaluators of every (automation, run) pair seen since the cache was last cleared.
#[derive(Default)]
pub struct RunSlots {
    slots: Mutex<HashMap<(AutomationId, RunId), Slot>>,
}

impl RunSlots {
    /// Forgets every evaluator (automations changed, or a batch failed to commit).
    pub fn clear(&self) {
        self.slots.lock().clear();
    }

    /// Forgets a finished run's evaluators.
    pub fn forget_run(&self, run: RunId) {
        self.slots.lock().retain(|(_, r), _| *r != run);
    }

    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds the batch `rows` (the run's history from `first_seq` on) to `a`'s evaluator for
    /// `run`, and returns the firing if the automation fires on this batch (at most once).
    pub async fn evaluate(
        &self,
        store: &dyn Store,
        a: &Automation,
        cond: &RunCondition,
        batch: &HistoryBatch<'_>,
    ) -> Result<Option<Firing>> {
        let Some(metric) = cond.metric().map(|m| m.as_str().to_string()) else {
            return Ok(None);
        };
        let HistoryBatch {
            run,
            rows,
            first_seq,
            now,
        } = *batch;
        let key = (a.id, run.row_id);
        let existing = self.slots.lock().remove(&key);
        let mut slot = match existing {
            Some(s) => s,
            None => rebuild(store, a, cond, run, &metric, first_seq).await?,
        };
        let cooldown_ms = i64::from(a.cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN_SECONDS)) * 1000;
        let mut fired = None;
        for row in rows {
            // Non-finite values are not points of the series: they change neither the windows
            // nor the edge (else NaN, then a value meeting the condition, would fire twice).
            let Some(x) = row
                .values
                .get(&metric)
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite())
            else {
                continue;
            };
            let met = slot.eval.update(x);
            if slot.edge.observe(met)
                && fired.is_none()
                && cooldown_allows(slot.last_fired, now, cooldown_ms)
            {
                fired = slot.eval.firing();
                slot.last_fired = Some(now);
            }
        }
        let mut slots = self.slots.lock();
        if slots.len() >= MAX_SLOTS {
            slots.clear();
        }
        slots.insert(key, slot);
        Ok(fired)
    }
}

/// An evaluator that has seen the run's values of `metric` logged before `before_seq`.
async fn rebuild(
    store: &dyn Store,
    a: &Automation,
    cond: &RunCondition,
    run: &Run,
    metric: &str,
    before_seq: i64,
) -> Result<Slot> {
    let need = cond.history_len();
    let mut newest_first = Vec::with_capacity(need);
    let mut cursor = before_seq;
    let mut scanned = 0;
    while newest_first.len() < need && scanned < REBUILD_MAX_ROWS {
        let page = store
            .history_before(run.row_id, cursor, REBUILD_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        scanned += page.len();
        newest_first.extend(
            page.iter()
                .filter_map(|r| r.values.get(metric).and_then(Value::as_f64))
                .filter(|x| x.is_finite()),
        );
    }
    newest_first.truncate(need);
    let eval = Evaluator::rebuild(cond, newest_first.into_iter().rev());
    let edge = EdgeTrigger::new(eval.is_met());
    let last_fired = store
        .last_fired(a.id, run.row_id)
        .await?
        .map(|t| t.timestamp_millis());
    Ok(Slot {
        eval,
        edge,
        last_fired,
    })
}

/// The fields run filters see: `display_name`, `username`, `tags`, `config.<key>`.
pub fn run_document(run: &Run) -> Value {
    json!({
        "display_name": run.display_name,
        "username": run.username,
        "tags": run.tags,
        "config": run.config,
    })
}

/// Template variables of a run event.
pub fn run_variables(
    run: &Run,
    filter: &RunEventFilter,
    firing: Option<&Firing>,
) -> Map<String, Value> {
    let mut v = Map::new();
    let mut put = |k: &str, s: String| {
        v.insert(k.to_string(), Value::String(s));
    };
    put("run_id", run.id.clone());
    put("run_name", run.display_name.clone());
    put("run_status", run.state.as_str().to_string());
    put("metric_filter", filter.describe());
    if let (Some(f), Some(m)) = (firing, filter.condition.metric()) {
        put("metric_name", m.as_str().to_string());
        put("metric_value", number(f.value));
        put(
            "metric_values",
            format!(
                "[{}]",
                f.values
                    .iter()
                    .map(|x| number(*x))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    v
}

/// A number as people write it: no trailing `.0` noise beyond what f64 formatting gives.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(-2.5), "-2.5");
    }
}
