//! `herald bench evaluator`: the streaming run-metric evaluator alone, on one core: 100
//! automations of every kind watching one project's metrics, fed a stream of values; prints
//! evaluations per second.

use std::time::Instant;

use clap::Args;
use herald_domain::event::EventType;
use herald_domain::run_filter::{RunCondition, RunEventFilter};
use herald_domain::window::Evaluator;
use serde_json::{json, Value};

#[derive(Args, Debug, Clone)]
pub struct EvaluatorArgs {
    /// Logged values fed to each of the 100 automations.
    #[arg(long, default_value_t = 200_000)]
    pub values: usize,
}

/// The event filter of automation `i` of 100: a mix of every metric condition and window size.
pub(super) fn filter(i: usize) -> (EventType, Value) {
    let metric = format!("metric_{}", i % 10);
    let run_filter = r#"{"$and":[]}"#;
    match i % 5 {
        0 => (
            EventType::RunMetric,
            json!({"run_filter": run_filter, "run_metric_filter": {"threshold_filter":
            {"name": metric, "agg_op": "AVERAGE", "window_size": 10 + i, "cmp_op": "$gt", "threshold": 1e9}}}),
        ),
        1 => (
            EventType::RunMetric,
            json!({"run_filter": run_filter, "run_metric_filter": {"threshold_filter":
            {"name": metric, "agg_op": "MAX", "window_size": 5 + i, "cmp_op": "$lt", "threshold": -1e9}}}),
        ),
        2 => (
            EventType::RunMetric,
            json!({"run_filter": run_filter, "run_metric_filter": {"threshold_filter":
            {"name": metric, "agg_op": null, "window_size": 1, "cmp_op": "$gte", "threshold": 1e9}}}),
        ),
        3 => (
            EventType::RunMetricChange,
            json!({"run_filter": run_filter, "run_metric_filter": {"change_filter":
            {"name": metric, "agg_op": "AVERAGE", "current_window_size": 5, "prior_window_size": 20,
             "change_type": "RELATIVE", "change_dir": "ANY", "change_amount": 1e9}}}),
        ),
        _ => (
            EventType::RunMetricZscore,
            json!({"run_filter": run_filter, "run_metric_filter": {"zscore_filter":
            {"name": metric, "window_size": 30, "threshold": 1e9, "change_dir": "ANY"}}}),
        ),
    }
}

fn conditions() -> anyhow::Result<Vec<RunCondition>> {
    (0..100)
        .map(|i| {
            let (t, f) = filter(i);
            RunEventFilter::parse(t, &f)
                .map(|r| r.condition)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect()
}

pub(super) fn evaluator(args: EvaluatorArgs) -> anyhow::Result<()> {
    let mut evaluators: Vec<Evaluator> = conditions()?.iter().map(Evaluator::new).collect();
    // A deterministic, non-trivial series: a slow wave with noise from a small LCG.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let values: Vec<f64> = (0..args.values)
        .map(|i| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (i as f64 / 1000.0).sin() + (seed >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect();
    let start = Instant::now();
    let mut met = 0usize;
    for x in &values {
        for e in evaluators.iter_mut() {
            met += usize::from(e.update(*x));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let evaluations = values.len() * evaluators.len();
    outln!("herald bench evaluator: 100 automations (threshold AVERAGE/MAX/newest, change, z-score), one core");
    outln!(
        "{evaluations} evaluations in {secs:.3} s: {:.1} M evaluations/s ({met} met)",
        evaluations as f64 / secs / 1e6
    );
    Ok(())
}
