//! Run-metric benchmarks.
//!
//! - `herald bench evaluator`: the streaming evaluator alone, on one core: 100 automations of
//!   every kind watching one project's metrics, fed a stream of values; prints evaluations/s.
//! - `herald bench history`: logged values per second through the HTTP history API (batches of
//!   100 rows × 10 metrics) against a `herald serve` child process, first with no automations,
//!   then with 100 run-metric automations watching those metrics.

use std::time::{Duration, Instant};

use clap::Args;
use herald_domain::event::EventType;
use herald_domain::run_filter::{RunCondition, RunEventFilter};
use herald_domain::window::Evaluator;
use serde_json::{json, Value};

use crate::bench::{drive, ServerProcess};
use crate::client::Client;

#[derive(Args, Debug, Clone)]
pub struct EvaluatorArgs {
    /// Logged values fed to each of the 100 automations.
    #[arg(long, default_value_t = 200_000)]
    pub values: usize,
}

#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Batches of 100 rows × 10 metrics per run of the benchmark.
    #[arg(long, default_value_t = 300)]
    pub batches: usize,
    /// Concurrent clients (each logs to its own run).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

/// The event filter of automation `i` of 100: a mix of every metric condition and window size.
fn filter(i: usize) -> (EventType, Value) {
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

pub fn evaluator(args: EvaluatorArgs) -> anyhow::Result<()> {
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

async fn history_run(
    c: &Client,
    label: &str,
    args: &HistoryArgs,
    runs_prefix: &str,
) -> anyhow::Result<()> {
    for r in 0..args.concurrency.max(1) {
        c.post(
            "/api/v1/entities/bench/projects/p/runs",
            &json!({"id": format!("{runs_prefix}-{r}")}),
        )
        .await?;
    }
    let (cc, prefix, runs) = (c.clone(), runs_prefix.to_string(), args.concurrency.max(1));
    drive(
        label,
        args.batches,
        args.concurrency,
        ("values", 1000.0),
        move |i| {
            let (c, prefix) = (cc.clone(), prefix.clone());
            async move {
                let run = i % runs;
                let batch = i / runs;
                let rows: Vec<Value> = (0..100)
                    .map(|s| {
                        let step = batch * 100 + s;
                        let values: serde_json::Map<String, Value> = (0..10)
                            .map(|m| {
                                (
                                    format!("metric_{m}"),
                                    json!((step as f64 * 0.01).sin() + m as f64),
                                )
                            })
                            .collect();
                        json!({"step": step, "values": values})
                    })
                    .collect();
                c.post(
                    &format!("/api/v1/entities/bench/projects/p/runs/{prefix}-{run}/history"),
                    &json!({"rows": rows}),
                )
                .await?;
                Ok(())
            }
        },
    )
    .await
}

pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let server = ServerProcess::start().await?;
    let c = Client::new(&server.url, Some(server.admin_key.clone()));
    c.post(
        "/api/v1/entities",
        &json!({"name": "bench", "kind": "team"}),
    )
    .await?;
    c.post("/api/v1/entities/bench/projects", &json!({"name": "p"}))
        .await?;
    outln!(
        "herald bench history: {} (SQLite, child process, concurrency {})",
        server.url,
        args.concurrency
    );
    history_run(&c, "no automations", &args, "plain").await?;
    for i in 0..100 {
        let (t, f) = filter(i);
        let body = json!({
            "name": format!("watch {i}"),
            "scope": {"type": "PROJECT", "path": "bench/p"},
            "event": {"type": t.as_str(), "filter": f},
            "action": {"type": "NO_OP"},
        });
        c.post("/api/v1/entities/bench/automations", &body).await?;
    }
    history_run(&c, "100 run-metric automations", &args, "watched").await?;
    // The matcher evaluates behind the API: wait until it has caught up, and report how long.
    let caught_up = Instant::now();
    let deadline = caught_up + Duration::from_secs(120);
    loop {
        if Instant::now() > deadline || matcher_idle(&c).await? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outln!(
        "matcher caught up {:.2} s after the last batch was accepted",
        caught_up.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether the matcher has consumed every event (its cursor is shown on `/readyz`).
async fn matcher_idle(c: &Client) -> anyhow::Result<bool> {
    let ready = c.get("/readyz").await?;
    Ok(ready["matcher_lag"].as_i64() == Some(0))
}
