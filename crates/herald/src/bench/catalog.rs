//! `herald bench catalog`: catalog writes per second through the HTTP API against a `herald
//! serve` child process (artifact creations, alias moves, history batches), and its idle RSS.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::drive::drive;
use super::server::{create_bench_project, ServerProcess};

#[derive(Args, Debug, Clone)]
pub struct CatalogArgs {
    /// Artifact versions to create.
    #[arg(long, default_value_t = 2000)]
    pub artifacts: usize,
    /// Alias adds (each moves an alias to another version).
    #[arg(long, default_value_t = 2000)]
    pub aliases: usize,
    /// History batches of 100 rows × 10 metrics.
    #[arg(long, default_value_t = 200)]
    pub batches: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

pub(super) async fn catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let server = ServerProcess::start().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.rss_kib();
    let c = server.admin();
    create_bench_project(&c).await?;
    let base = "/api/v1/entities/bench/projects/p".to_string();
    outln!(
        "herald bench catalog: {} (concurrency {}, SQLite, child process)",
        server.url,
        args.concurrency
    );
    outln!(
        "idle RSS after start: {}",
        idle.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "unknown".into())
    );

    let (cc, b) = (c.clone(), base.clone());
    drive("artifact creations", args.artifacts, args.concurrency, ("versions", 1.0), move |i| {
        let (c, b) = (cc.clone(), b.clone());
        async move {
            let body = json!({"collection": format!("model-{}", i % 16), "type": "model", "metadata": {"i": i}});
            c.post(&format!("{b}/artifacts"), &body).await?;
            Ok(())
        }
    })
    .await?;

    let (cc, b) = (c.clone(), base.clone());
    drive(
        "alias adds (moves)",
        args.aliases,
        args.concurrency,
        ("aliases", 1.0),
        move |i| {
            let (c, b) = (cc.clone(), b.clone());
            async move {
                let url = format!(
                    "{b}/artifacts/model-{}/versions/v{}/aliases",
                    i % 16,
                    (i / 16) % 8
                );
                c.post(&url, &json!({"alias": format!("stage-{}", i % 4)}))
                    .await?;
                Ok(())
            }
        },
    )
    .await?;

    let runs = args.concurrency.max(1);
    for r in 0..runs {
        c.post(&format!("{base}/runs"), &json!({"id": format!("run-{r}")}))
            .await?;
    }
    let (cc, b) = (c.clone(), base.clone());
    drive(
        "history batches 100x10",
        args.batches,
        args.concurrency,
        ("values", 1000.0),
        move |i| {
            let (c, b) = (cc.clone(), b.clone());
            async move {
                let rows: Vec<Value> = (0..100)
                    .map(|s| {
                        let values: serde_json::Map<String, Value> = (0..10)
                            .map(|m| {
                                (
                                    format!("metric_{m}"),
                                    json!((i * 100 + s) as f64 * 0.001 + m as f64),
                                )
                            })
                            .collect();
                        json!({"step": i * 100 + s, "values": values})
                    })
                    .collect();
                c.post(
                    &format!("{b}/runs/run-{}/history", i % runs),
                    &json!({"rows": rows}),
                )
                .await?;
                Ok(())
            }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    outln!(
        "RSS after the load: {}",
        server
            .rss_kib()
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}
