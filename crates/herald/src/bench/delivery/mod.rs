//! `herald bench delivery`: drives artifact creations through a `herald serve` child process
//! with one automation that calls a webhook receiver in this process, and measures
//!
//! 1. the raw loopback POST rate of a reqwest client against that receiver (the ceiling), from
//!    a process of its own as herald is, before the other runs and again around each drain of
//!    step 4, each POST shaped like a delivery (same headers and sizes); and for
//!    comparison the same from the receiver's own process, where client and handler share a
//!    runtime and skip the wake-ups across processes that every delivery costs,
//! 2. sustained deliveries per second (events sent as fast as the API takes them), and
//! 3. event-accepted → webhook-received latency at a fixed event rate (default 1,000/s), and
//! 4. the engine's own rate: a backlog of events stored by API-only servers (`engine =
//!    false`), matched and delivered after a restart with the engine on, in rounds: each
//!    round's drain is compared with the raw POST runs just before and after it, and the
//!    engine's ratio is the median of the rounds'. Each event of the
//!    end-to-end run costs an HTTP request into herald as well as the delivery out of it, both
//!    on the same cores as the receiver, so that run cannot reach half the raw POST rate; the
//!    backlog run measures what herald adds after the event is stored. It also prints the CPU
//!    time herald and the receiver took per delivery, how idle the machine stood, and how much
//!    of it the hypervisor gave to other machines (steal: this benchmark runs on small VMs).
//!
//! Both ends of every latency are timed in this process, so they share one clock.

mod raw;
mod receiver;
mod report;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use herald_domain::automation::Integration;
use herald_domain::catalog::ArtifactVersion;
use parking_lot::Mutex;
use serde_json::json;

use super::drive::drive;
use super::server::{create_bench_project, ServerProcess};
use crate::client::Client;
use raw::{raw_client, raw_posts, raw_posts_apart};
pub use raw::{raw_posts_here, RawPostArgs};
use receiver::{receiver, wait_for, Received};
use report::{
    num_cpus, percentile, print_disk_writes, servers_disk_writes, CpuMark, CpuUse, Round,
};

#[derive(Args, Debug, Clone)]
pub struct DeliveryArgs {
    /// Events for the throughput run.
    #[arg(long, default_value_t = 3000)]
    pub events: usize,
    /// Concurrent API clients sending events, concurrent raw POSTs, and herald's
    /// `per_destination` (the requests it may have open to the one receiver).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Event rate for the latency run, per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Length of the latency run, in seconds.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Events in the backlog drained by the engine alone (stored by an API-only server, then
    /// matched and delivered after a restart with the engine on). Large enough that the drain
    /// lasts over a second, so its rate is not a fraction of a second's noise.
    #[arg(long, default_value_t = 30000)]
    pub backlog: usize,
    /// Backlogs drained, each between two raw POST runs; the ratio is the median of theirs.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// A PostgreSQL URL (`postgres://…`): the benchmark uses a fresh schema there instead of SQLite.
    #[arg(long)]
    pub database_url: Option<String>,
    /// `herald serve` replicas sharing the database (PostgreSQL only); events are spread over them.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
}

pub async fn run(args: DeliveryArgs) -> anyhow::Result<()> {
    let schema = format!("herald_bench_{}", std::process::id());
    let database_url = args.database_url.clone();
    let measured = measure(args, &schema).await;
    // The servers are stopped by now; what they stored goes with the schema.
    if let Some(url) = database_url {
        if let Err(e) = herald_store::sql::drop_postgres_schema(&url, &schema).await {
            eprintln!("could not drop the benchmark's schema {schema}: {e:#}");
        }
    }
    measured
}

async fn measure(args: DeliveryArgs, schema: &str) -> anyhow::Result<()> {
    // As many raw POSTs as the backlog the engine drains, so both rates are taken over a
    // similar stretch of time (a fraction of a second of raw POSTs is mostly noise).
    let n_raw = (args.events * 3).max(args.backlog);
    let rounds = args.rounds.max(1);
    let (hook, received) = receiver(
        (3 + 2 * rounds) * n_raw
            + args.events
            + (args.rate * args.seconds) as usize
            + rounds * args.backlog,
    )
    .await?;
    let n = args.replicas.max(1);
    let backend = match &args.database_url {
        Some(url) => Some(herald_store::sql::postgres_schema_url(url, schema).await?),
        None if n > 1 => {
            bail!("--replicas needs --database-url postgres://…: SQLite is one process")
        }
        None => None,
    };
    let mut env = vec![
        ("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8".to_string()),
        // Herald may keep as many requests open to the receiver as the raw run does.
        (
            "HERALD_DELIVERY_PER_DESTINATION",
            args.concurrency.to_string(),
        ),
        (
            "HERALD_BOOTSTRAP_API_KEY",
            "bench-admin-key-0123456789abcdef".to_string(),
        ),
        (
            "HERALD_MASTER_KEY",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".to_string(),
        ),
    ];
    if let Some(url) = &backend {
        env.push(("DATABASE_URL", url.clone()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut servers: Vec<ServerProcess> = Vec::with_capacity(n);
    for _ in 0..n {
        servers.push(ServerProcess::start_with(&env).await?);
    }
    let clients: Vec<Client> = servers.iter().map(ServerProcess::admin).collect();
    let c = clients[0].clone();
    create_bench_project(&c).await?;
    deliver_every_version(&c, &hook).await?;
    outln!(
        "herald bench delivery: {n} herald serve ({}) → webhook receiver on {hook}; {} cores",
        if backend.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        num_cpus()
    );

    // 1. The ceiling: the same kind of client posting straight to the receiver. It is taken
    // again after the drain, and the ratio uses the mean of both: this machine's speed drifts
    // over the seconds between them.
    let raw_before =
        raw_posts_apart("raw loopback POST", &hook, n_raw, args.concurrency, "raw").await?;
    // The same from the receiver's own process, for comparison with earlier figures.
    let raw = raw_client()?;
    let near_before = raw_posts(
        "raw POST (receiver's process)",
        &raw,
        &hook,
        n_raw,
        args.concurrency,
        "near",
    )
    .await?;

    // 2. Sustained deliveries: events as fast as the API accepts them, until all are delivered.
    let base = received.at.lock().len();
    let start = Instant::now();
    create_events("events accepted (API)", &clients, args.events, &args, "t").await?;
    wait_for(&received, base + args.events, Duration::from_secs(120))
        .await
        .context("throughput run")?;
    let secs = start.elapsed().as_secs_f64();
    let delivery_rate = args.events as f64 / secs;
    outln!(
        "{:<28} {:>6} deliveries in {secs:>6.2} s  {delivery_rate:>9.0} deliveries/s",
        "deliveries (end to end)",
        args.events
    );

    // 3. Latency at a fixed rate: each event's accept time against its receipt time.
    let total = latency_run(&args, &clients, &servers, &received, base + args.events).await?;

    // 4. The engine alone, draining a backlog stored while it was off, in rounds. Each round's
    // drain is compared with raw POST runs just before and just after it: this machine's speed
    // drifts over seconds, so rates taken far apart do not compare. The median of the rounds'
    // ratios is the figure, so one slow second moves one round, not the result.
    let off: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .chain([("HERALD_ENGINE", "false")])
        .collect();
    let mut want = base + args.events + total;
    let mut drains = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        for s in servers.iter_mut() {
            s.restart(&off).await?;
        }
        let prefix = format!("r{round}x");
        create_events(
            &format!("backlog stored, round {round}"),
            &clients,
            args.backlog,
            &args,
            &prefix,
        )
        .await?;
        let round_before = raw_posts_apart(
            "  raw loopback POST (before)",
            &hook,
            n_raw,
            args.concurrency,
            &format!("raw{round}b"),
        )
        .await?;
        let before = received.count.load(Ordering::Relaxed);
        let restarted = Instant::now();
        let mark = CpuMark::now();
        for s in servers.iter_mut() {
            s.restart(&env).await?;
        }
        want += n_raw + args.backlog;
        wait_for(&received, want, Duration::from_secs(300))
            .await
            .context("backlog run")?;
        let all = restarted.elapsed().as_secs_f64();
        let drain_cpu = CpuUse::since(
            &mark,
            servers.iter().map(ServerProcess::cpu_time).sum(),
            args.backlog,
        );
        let key = format!("bench/p/{prefix}");
        let times: Vec<Instant> = received
            .at
            .lock()
            .iter()
            .filter(|(k, _)| k.starts_with(&key))
            .map(|(_, t)| *t)
            .collect();
        let (first, last) = (
            times.iter().min().copied().unwrap_or(restarted),
            times.iter().max().copied().unwrap_or(restarted),
        );
        let engine_rate = (times.len().saturating_sub(1)) as f64
            / last
                .saturating_duration_since(first)
                .as_secs_f64()
                .max(1e-9);
        outln!(
            "{:<28} {:>6} deliveries in {:>6.2} s  {engine_rate:>9.0} deliveries/s  ({all:.2} s from restart; {} duplicates)",
            "  backlog drained (engine)",
            times.len(),
            last.saturating_duration_since(first).as_secs_f64(),
            received.count.load(Ordering::Relaxed).saturating_sub(before + args.backlog),
        );
        outln!("  {}", drain_cpu.describe("while draining", "herald"));
        // Fresh processes: everything they wrote, they wrote for this drain.
        print_disk_writes(
            servers_disk_writes(&servers).map(|w| (0, w)),
            args.backlog,
            "delivery",
        );
        let round_after = raw_posts_apart(
            "  raw loopback POST (after)",
            &hook,
            n_raw,
            args.concurrency,
            &format!("raw{round}a"),
        )
        .await?;
        want += n_raw;
        let raw_rate = (round_before + round_after) / 2.0;
        outln!(
            "  round {round}: ratio {:.2} ({engine_rate:.0} / {raw_rate:.0}, the mean of the raw runs before and after)",
            engine_rate / raw_rate
        );
        drains.push(Round {
            engine: engine_rate,
            raw: raw_rate,
        });
    }
    let near_after = raw_posts(
        "raw POST (receiver's, after)",
        &raw,
        &hook,
        n_raw,
        args.concurrency,
        "near2",
    )
    .await?;
    let middle = Round::median(&drains);
    let raw_rate =
        (raw_before + drains.iter().map(|r| r.raw).sum::<f64>()) / (1 + drains.len()) as f64;
    let near_rate = (near_before + near_after) / 2.0;
    outln!(
        "ratio deliveries/s ÷ raw POST/s: engine {:.2} (the median of {} rounds: {}); end to end through the API {:.2} ({delivery_rate:.0} / {raw_rate:.0}, the mean of every raw run)",
        middle.ratio(),
        drains.len(),
        drains
            .iter()
            .map(|r| format!("{:.2}", r.ratio()))
            .collect::<Vec<_>>()
            .join(", "),
        delivery_rate / raw_rate
    );
    outln!(
        "  against raw POSTs from the receiver's own process: engine {:.2} ({:.0} / {near_rate:.0})",
        middle.engine / near_rate,
        middle.engine
    );
    outln!(
        "herald RSS after the runs: {}",
        servers[0]
            .rss_kib()
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "unknown".into())
    );
    Ok(())
}

/// The one automation every event meets: each new version in `bench/p` is delivered to
/// `hook`, signed and with an access token, as webhooks in production usually are.
async fn deliver_every_version(c: &Client, hook: &str) -> anyhow::Result<()> {
    for (name, value) in [
        ("BENCH_TOKEN", "bench-token"),
        ("BENCH_SIGNING", "bench-signing"),
    ] {
        c.put(
            &format!("/api/v1/entities/bench/secrets/{name}"),
            &json!({ "value": value }),
        )
        .await?;
    }
    let integration = c
        .post(
            "/api/v1/entities/bench/integrations",
            &json!({"kind": "webhook", "name": "sink", "url": hook,
                    "access_token_secret": "BENCH_TOKEN", "signing_secret": "BENCH_SIGNING"}),
        )
        .await?
        .parse::<Integration>()?;
    let automation = json!({
        "name": "deliver every version",
        "scope": {"type": "PROJECT", "path": "bench/p"},
        "event": {"type": "CREATE_ARTIFACT", "filter": {"$or": [{"$and": []}]}},
        "action": {"type": "GENERIC_WEBHOOK", "integration_id": integration.id,
                   "payload": {"key": "${artifact_version_string}", "event": "${event_type}"}},
        "rate_limit_per_minute": 1_000_000,
    });
    c.post("/api/v1/entities/bench/automations", &automation)
        .await?;
    Ok(())
}

/// Events at `args.rate` per second for `args.seconds`, spread over `clients`: prints the
/// latency from each event's acceptance to its delivery, once the receiver holds
/// `delivered_before` deliveries and these; returns how many events were sent.
async fn latency_run(
    args: &DeliveryArgs,
    clients: &[Client],
    servers: &[ServerProcess],
    received: &Received,
    delivered_before: usize,
) -> anyhow::Result<usize> {
    let total = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tasks = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let written = servers_disk_writes(servers);
    let started = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (c, acc) = (clients[i % clients.len()].clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let v: ArtifactVersion = c
                .post(
                    "/api/v1/entities/bench/projects/p/artifacts",
                    &json!({"collection": format!("l{}", i % 32), "type": "model"}),
                )
                .await?
                .parse()?;
            let key = format!("bench/p/{}:{}", v.collection, v.version);
            acc.lock().insert(key, Instant::now());
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    wait_for(received, delivered_before + total, Duration::from_secs(120))
        .await
        .context("latency run")?;
    let mut lat: Vec<Duration> = {
        let got = received.at.lock();
        accepted
            .lock()
            .iter()
            .filter_map(|(k, t)| got.get(k).map(|r| r.saturating_duration_since(*t)))
            .collect()
    };
    lat.sort();
    outln!(
        "latency at {offered:.0} events/s ({} events): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    print_disk_writes(written.zip(servers_disk_writes(servers)), total, "event");
    Ok(total)
}

/// Creates `n` artifact versions through the API, spread over `clients` and over 32
/// collections named `<prefix>0`…`<prefix>31`, and prints the rate the API accepted them at.
async fn create_events(
    label: &str,
    clients: &[Client],
    n: usize,
    args: &DeliveryArgs,
    prefix: &str,
) -> anyhow::Result<()> {
    let clients = clients.to_vec();
    let prefix = prefix.to_string();
    drive(label, n, args.concurrency, ("events", 1.0), move |i| {
        let c = clients[i % clients.len()].clone();
        let collection = format!("{prefix}{}", i % 32);
        async move {
            c.post(
                "/api/v1/entities/bench/projects/p/artifacts",
                &json!({"collection": collection, "type": "model"}),
            )
            .await?;
            Ok(())
        }
    })
    .await
}
