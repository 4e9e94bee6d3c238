//! `herald bench`: measurements on this machine, printed as figures (never asserted).
//!
//! `herald bench catalog` starts `herald serve` as a child process on a fresh data directory,
//! reads its idle RSS, then drives catalog writes through the HTTP API with concurrent clients
//! and prints throughput and latency for each kind of write.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Catalog writes per second through the HTTP API, and idle RSS.
    Catalog(CatalogArgs),
    /// Events → matched → delivered to a local webhook: deliveries/s and latency, against the
    /// raw loopback POST rate of the same client.
    Delivery(crate::bench_delivery::DeliveryArgs),
    /// The run-metric evaluator alone: evaluations per second on one core, 100 automations.
    Evaluator(crate::bench_runs::EvaluatorArgs),
    /// Logged values per second through the history API, without and with 100 automations.
    History(crate::bench_runs::HistoryArgs),
    /// Raw POSTs to a URL from this process (`bench delivery` runs its ceiling this way, so
    /// the client is a process apart from the receiver, as herald is).
    #[command(hide = true)]
    RawPosts(crate::bench_delivery::RawPostArgs),
}

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

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Catalog(args) => catalog(args).await,
        BenchCmd::Delivery(args) => crate::bench_delivery::run(args).await,
        BenchCmd::Evaluator(args) => crate::bench_runs::evaluator(args),
        BenchCmd::History(args) => crate::bench_runs::history(args).await,
        BenchCmd::RawPosts(args) => crate::bench_delivery::raw_posts_here(args).await,
    }
}

/// A `herald serve` child process on a temporary data directory, killed on drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub url: String,
    pub admin_key: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts `herald serve` with extra environment variables.
    pub async fn start_with(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = spawn_serve(dir.path(), port, env)?;
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            admin_key: String::new(),
            port,
            _dir: dir,
        };
        server.wait_ready().await?;
        // A replica joining a database that already has users writes no key file.
        server.admin_key = match env.iter().find(|(k, _)| *k == "HERALD_BOOTSTRAP_API_KEY") {
            Some((_, k)) => k.to_string(),
            None => std::fs::read_to_string(server._dir.path().join(crate::app::ADMIN_KEY_FILE))?
                .trim()
                .to_string(),
        };
        Ok(server)
    }

    /// Stops the server (SIGTERM, so it drains) and starts it again on the same data directory
    /// and port with `env`.
    pub async fn restart(&mut self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        terminate(&mut self.child)?;
        self.child = spawn_serve(self._dir.path(), self.port, env)?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = Client::new(&self.url, None);
        while probe.get("/healthz").await.is_err() {
            if Instant::now() > deadline {
                bail!("herald serve did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.child.id())
    }

    /// CPU time the server has used so far (all its threads, user and system).
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(&self.child.id().to_string())
    }

    /// Bytes the server has written to files so far: see [`disk_writes`].
    pub fn disk_writes(&self) -> Option<u64> {
        disk_writes(&self.child.id().to_string())
    }
}

/// Bytes process `pid` has written to files so far (`write_bytes` of `/proc/PID/io`: counted
/// as the process dirties pages of the page cache, whether or not the disk has them yet, so a
/// page written again before the disk took it counts once); `None` where there is no `/proc`.
pub(crate) fn disk_writes(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(Path::new("/proc").join(pid).join("io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// Linux's clock tick for process times in `/proc` (USER_HZ, 100 on every architecture it
/// runs on).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// CPU time (user and system, all threads) of process `pid` (`"self"` for this one), from
/// `/proc/PID/stat`; `None` where there is no `/proc`.
pub(crate) fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).ok()?;
    // Fields after the command name (which may hold spaces, so it is skipped to its ')'):
    // state is field 3, utime field 14 and stime field 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND))
}

/// Time all CPUs of the machine have spent idle (or waiting for I/O), and the time a virtual
/// machine's hypervisor gave them to others (steal), so far, from `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MachineTime {
    pub idle: Duration,
    pub stolen: Duration,
}

pub(crate) fn machine_time() -> Option<MachineTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let time = |ticks: u64| Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND);
    Some(MachineTime {
        idle: time(fields.get(3)? + fields.get(4)?),
        // Older kernels have no steal column: nothing stolen.
        stolen: time(fields.get(7).copied().unwrap_or(0)),
    })
}

fn spawn_serve(dir: &Path, port: u16, env: &[(&str, &str)]) -> anyhow::Result<std::process::Child> {
    std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        // HERALD_BENCH_SERVER_LOG sets the servers' log filter, to see where time goes.
        .env(
            "HERALD_LOG",
            std::env::var("HERALD_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("DATABASE_URL")
        .env_remove("HERALD_CONFIG")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting herald serve")
}

/// Sends SIGTERM and waits for the process to exit (it drains its deliveries first).
fn terminate(child: &mut std::process::Child) -> anyhow::Result<()> {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        child.kill()?;
    }
    child.wait()?;
    Ok(())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `n` requests made by `make(i)` over `concurrency` clients; prints rate and latencies.
pub(crate) async fn drive<F, Fut>(
    label: &str,
    n: usize,
    concurrency: usize,
    unit: (&str, f64),
    make: F,
) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (make, next) = (make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                make(i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let rate = n as f64 / secs;
    out!("{label:<28} {n:>6} requests in {secs:>6.2} s  {rate:>9.0} req/s");
    if unit.1 != 1.0 {
        out!("  ({:.0} {}/s)", rate * unit.1, unit.0);
    }
    outln!(
        "  p50 {:>6.2} ms  p99 {:>6.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    Ok(())
}

async fn catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let server = ServerProcess::start().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = server.rss_kib();
    let c = Client::new(&server.url, Some(server.admin_key.clone()));
    c.post(
        "/api/v1/entities",
        &json!({"name": "bench", "kind": "team"}),
    )
    .await?;
    c.post("/api/v1/entities/bench/projects", &json!({"name": "p"}))
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_writes_count_what_a_process_writes_to_a_file() {
        // Beside the sources rather than in the temporary directory, which may be in memory
        // (tmpfs writes reach no disk and are not counted).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let before = disk_writes("self").expect("/proc/self/io is readable");
        std::fs::write(dir.path().join("f"), vec![7u8; 1 << 20]).unwrap();
        let after = disk_writes("self").unwrap();
        // Other tests of this process may write too, so at least the megabyte.
        assert!(after - before >= 1 << 20, "{before} → {after}");
        assert_eq!(disk_writes("no-such-process"), None);
    }
}
