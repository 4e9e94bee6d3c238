//! `herald bench history`: logged values per second through the HTTP history API (batches of
//! 100 rows × 10 metrics) against a `herald serve` child process, first with no automations,
//! then with 100 run-metric automations (those of `bench evaluator`) watching those metrics.

use std::time::{Duration, Instant};

use clap::Args;
use herald_api::responses::Readiness;
use serde_json::{json, Value};

use super::drive::drive;
use super::evaluator::filter;
use super::server::{create_bench_project, ServerProcess};
use crate::client::Client;

#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Batches of 100 rows × 10 metrics per run of the benchmark.
    #[arg(long, default_value_t = 300)]
    pub batches: usize,
    /// Concurrent clients (each logs to its own run).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
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

pub(super) async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let server = ServerProcess::start().await?;
    let c = server.admin();
    create_bench_project(&c).await?;
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
    let ready: Readiness = c.get("/readyz").await?.parse()?;
    Ok(ready.matcher_lag == Some(0))
}
