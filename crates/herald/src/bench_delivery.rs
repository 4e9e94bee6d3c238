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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::routing::post;
use clap::Args;
use serde_json::json;

use crate::bench::{cpu_time, drive, machine_time, MachineTime, ServerProcess};
use crate::client::Client;

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

/// What the receiver saw: arrival time per payload key.
#[derive(Default)]
struct Received {
    at: Mutex<HashMap<String, Instant>>,
    count: AtomicUsize,
}

/// The one field of a payload the receiver reads (raw POSTs carry one too, so the receiver
/// does the same work for every request).
#[derive(serde::Deserialize)]
struct Keyed<'a> {
    #[serde(borrow)]
    key: Option<std::borrow::Cow<'a, str>>,
}

/// Starts the receiver, with room for `expected` keys: growing the map mid-run would stall
/// every request behind its lock while the entries are moved.
async fn receiver(expected: usize) -> anyhow::Result<(String, Arc<Received>)> {
    let state = Arc::new(Received {
        at: Mutex::new(HashMap::with_capacity(expected)),
        count: AtomicUsize::new(0),
    });
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let now = Instant::now();
                if let Ok(Keyed { key: Some(k) }) = serde_json::from_slice(&body) {
                    s.at.lock()
                        .expect("receiver lock")
                        .insert(k.into_owned(), now);
                }
                s.count.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, state))
}

/// Waits until the receiver holds `n` keys. It looks every millisecond rather than being woken
/// by each request: arrival times are taken in the handler, so this costs the measured
/// processes no wake-up per delivery.
async fn wait_for(received: &Received, n: usize, deadline: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + deadline;
    while received.at.lock().expect("receiver lock").len() < n {
        if Instant::now() > end {
            bail!(
                "only {} of {n} deliveries arrived within {deadline:?}",
                received.at.lock().expect("receiver lock").len()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// One round of the engine's drain: its rate and the raw POST rate around it.
#[derive(Clone, Copy)]
struct Round {
    engine: f64,
    raw: f64,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.engine / self.raw
    }

    /// The round whose ratio is the median (the lower middle one of an even count).
    fn median(rounds: &[Round]) -> Round {
        let mut sorted = rounds.to_vec();
        sorted.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        sorted[(sorted.len() - 1) / 2]
    }
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
    let clients: Vec<Client> = servers
        .iter()
        .map(|s| Client::new(&s.url, Some(s.admin_key.clone())))
        .collect();
    let c = clients[0].clone();
    c.post(
        "/api/v1/entities",
        &json!({"name": "bench", "kind": "team"}),
    )
    .await?;
    c.post("/api/v1/entities/bench/projects", &json!({"name": "p"}))
        .await?;
    // Signed, with an access token, as webhooks in production usually are.
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
        .await?;
    let automation = json!({
        "name": "deliver every version",
        "scope": {"type": "PROJECT", "path": "bench/p"},
        "event": {"type": "CREATE_ARTIFACT", "filter": {"$or": [{"$and": []}]}},
        "action": {"type": "GENERIC_WEBHOOK", "integration_id": integration["id"],
                   "payload": {"key": "${artifact_version_string}", "event": "${event_type}"}},
        "rate_limit_per_minute": 1_000_000,
    });
    c.post("/api/v1/entities/bench/automations", &automation)
        .await?;
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
    let base = received.at.lock().expect("receiver lock").len();
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
    let total = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tasks = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let written = servers_disk_writes(&servers);
    let started = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (c, acc) = (clients[i % clients.len()].clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let out = c
                .post(
                    "/api/v1/entities/bench/projects/p/artifacts",
                    &json!({"collection": format!("l{}", i % 32), "type": "model"}),
                )
                .await?;
            let key = format!(
                "bench/p/{}:{}",
                out["collection"].as_str().unwrap_or(""),
                out["version"].as_str().unwrap_or("")
            );
            acc.lock().expect("accept lock").insert(key, Instant::now());
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    wait_for(
        &received,
        base + args.events + total,
        Duration::from_secs(120),
    )
    .await
    .context("latency run")?;
    let mut lat: Vec<Duration> = {
        let got = received.at.lock().expect("receiver lock");
        accepted
            .lock()
            .expect("accept lock")
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
    print_disk_writes(written.zip(servers_disk_writes(&servers)), total, "event");

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
            .expect("receiver lock")
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

/// What the `herald serve` processes have written to files so far, all together.
fn servers_disk_writes(servers: &[ServerProcess]) -> Option<u64> {
    servers.iter().map(ServerProcess::disk_writes).sum()
}

/// "disk: herald wrote … KiB per <what>", from the processes' writes before and after `n`
/// of them (the page cache's view: see [`crate::bench::disk_writes`]).
fn print_disk_writes(before_after: Option<(u64, u64)>, n: usize, what: &str) {
    if let Some((before, after)) = before_after {
        outln!(
            "  disk: herald wrote {:.1} KiB per {what} (database and write-ahead log)",
            after.saturating_sub(before) as f64 / 1024.0 / n.max(1) as f64
        );
    }
}

/// Posts `n` small JSON bodies, keyed `<prefix>/<i>`, straight to the receiver with `client`,
/// `concurrency` at a time, and returns the rate. Each request has the shape of one of
/// herald's deliveries in this benchmark (the same headers, values of the same length, a
/// body of the same size), and its answer is read, so the two rates compare the same
/// exchanges; only the work of making them (matching, rendering, signing, recording) is left
/// out.
async fn raw_posts(
    label: &str,
    client: &reqwest::Client,
    hook: &str,
    n: usize,
    concurrency: usize,
    prefix: &str,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let (r, h, p) = (client.clone(), hook.to_string(), prefix.to_string());
    drive(label, n, concurrency, ("posts", 1.0), move |i| {
        let (r, h) = (r.clone(), h.clone());
        let key = format!("{p}/{i}");
        async move {
            r.post(&h)
                .json(&json!({"key": key, "event": "CREATE_ARTIFACT"}))
                .header("Authorization", "Bearer bench-token")
                .header("X-Wandb-Signature", RAW_SIGNATURE)
                .header("webhook-id", format!("exec_{}", 100_000 + i))
                .header("webhook-timestamp", "1764288000")
                .header("webhook-signature", format!("v1,{RAW_SIGNATURE}"))
                .send()
                .await?
                .error_for_status()?
                // Read, as herald reads each answer for its history.
                .bytes()
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// A client configured as herald's deliveries' (no redirects, herald's user agent).
fn raw_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `herald bench raw-posts`: what [`raw_posts_apart`] runs in a process of its own.
#[derive(Args, Debug, Clone)]
pub struct RawPostArgs {
    /// The receiver's URL.
    #[arg(long)]
    pub url: String,
    /// POSTs to send.
    #[arg(long)]
    pub requests: usize,
    /// POSTs in flight at once.
    #[arg(long)]
    pub concurrency: usize,
    /// Payload keys are `<prefix>/<i>`.
    #[arg(long)]
    pub prefix: String,
    /// The label of the printed line.
    #[arg(long)]
    pub label: String,
}

/// The lines of a `raw-posts` child's output that carry its rate and its CPU time (seconds).
const RATE_LINE: &str = "raw-posts rate ";
const CPU_LINE: &str = "raw-posts cpu ";

pub async fn raw_posts_here(args: RawPostArgs) -> anyhow::Result<()> {
    let rate = raw_posts(
        &args.label,
        &raw_client()?,
        &args.url,
        args.requests,
        args.concurrency,
        &args.prefix,
    )
    .await?;
    outln!("{RATE_LINE}{rate}");
    if let Some(cpu) = cpu_time("self") {
        outln!("{CPU_LINE}{}", cpu.as_secs_f64());
    }
    Ok(())
}

/// [`raw_posts`] from a child process: a client apart from the receiver, as herald is. The
/// receiver's own process would have the edge of a shared runtime: a request and its handler
/// can run on one thread, without the cross-process wake-ups every delivery costs.
async fn raw_posts_apart(
    label: &str,
    hook: &str,
    n: usize,
    concurrency: usize,
    prefix: &str,
) -> anyhow::Result<f64> {
    let mark = CpuMark::now();
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "bench",
            "raw-posts",
            "--url",
            hook,
            "--prefix",
            prefix,
            "--label",
            label,
        ])
        .args(["--requests", &n.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("starting the raw POST process")?;
    if !out.status.success() {
        bail!("the raw POST process failed: {}", out.status);
    }
    let (mut rate, mut client_cpu) = (None, None);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(r) = line.strip_prefix(RATE_LINE) {
            rate = Some(r.parse::<f64>().context("the raw POST process's rate")?);
        } else if let Some(c) = line.strip_prefix(CPU_LINE) {
            client_cpu = c.parse::<f64>().ok().map(Duration::from_secs_f64);
        } else {
            outln!("{line}");
        }
    }
    outln!(
        "  {}",
        CpuUse::since(&mark, client_cpu, n).describe("while posting", "client")
    );
    rate.context("the raw POST process printed no rate")
}

/// A base64 HMAC-SHA256's length, as in herald's signature headers.
const RAW_SIGNATURE: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG=";

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

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Where the machine's CPU went during a run (the engine's drain, from the restart until the
/// last delivery arrived, or a raw POST run): the costs the ratio to raw POSTs is made of.
struct CpuUse {
    /// The sending processes: all `herald serve` processes, including their start (a few tens
    /// of milliseconds), or the raw POST process.
    sender: Option<Duration>,
    /// This process: the receiver, and the loop waiting for it to hold every delivery.
    receiver: Option<Duration>,
    /// All cores: idle or waiting for I/O, and stolen by the hypervisor (a virtual machine's
    /// cores running someone else's work: the rates of such a run are lower for it).
    machine: Option<MachineTime>,
    wall: Duration,
    /// Deliveries or POSTs.
    requests: usize,
}

/// This process's CPU time, the machine's idle time and the time, at the start of a run.
struct CpuMark {
    own: Option<Duration>,
    machine: Option<MachineTime>,
    at: Instant,
}

impl CpuMark {
    fn now() -> Self {
        Self {
            own: cpu_time("self"),
            machine: machine_time(),
            at: Instant::now(),
        }
    }
}

impl CpuUse {
    /// The run since `mark`, in which the senders took `sender` for `requests`.
    fn since(mark: &CpuMark, sender: Option<Duration>, requests: usize) -> Self {
        Self {
            sender,
            receiver: cpu_time("self")
                .zip(mark.own)
                .map(|(a, b)| a.saturating_sub(b)),
            machine: machine_time().zip(mark.machine).map(|(a, b)| MachineTime {
                idle: a.idle.saturating_sub(b.idle),
                stolen: a.stolen.saturating_sub(b.stolen),
            }),
            wall: mark.at.elapsed(),
            requests,
        }
    }

    /// "CPU <what>: <sender> … µs per request (… cores); receiver …; machine idle …%, stolen …%".
    fn describe(&self, what: &str, sender: &str) -> String {
        let per = |d: Option<Duration>| match d {
            Some(d) => format!(
                "{:.1} µs per request ({:.2} cores)",
                d.as_secs_f64() * 1e6 / self.requests.max(1) as f64,
                d.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
            ),
            None => "unknown".into(),
        };
        let share = |d: Duration| {
            format!(
                "{:.0}%",
                100.0 * d.as_secs_f64() / (self.wall.as_secs_f64() * num_cpus() as f64).max(1e-9)
            )
        };
        let machine = match self.machine {
            Some(m) => format!("idle {}, stolen {}", share(m.idle), share(m.stolen)),
            None => "unknown".into(),
        };
        format!(
            "CPU {what}: {sender} {}; receiver (this process) {}; machine {machine}",
            per(self.sender),
            per(self.receiver)
        )
    }
}
