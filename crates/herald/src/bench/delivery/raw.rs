//! Raw POSTs: the ceiling `bench delivery` compares herald with. The same exchanges as
//! herald's deliveries (headers, sizes, the answer read), sent straight to the receiver, from
//! a child process (`herald bench raw-posts`) as herald is one, or from this process.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::json;

use super::report::{CpuMark, CpuUse};
use crate::bench::drive::drive;
use crate::bench::procfs::cpu_time;

/// Posts `n` small JSON bodies, keyed `<prefix>/<i>`, straight to the receiver with `client`,
/// `concurrency` at a time, and returns the rate. Each request has the shape of one of
/// herald's deliveries in this benchmark (the same headers, values of the same length, a
/// body of the same size), and its answer is read, so the two rates compare the same
/// exchanges; only the work of making them (matching, rendering, signing, recording) is left
/// out.
pub(super) async fn raw_posts(
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
pub(super) fn raw_client() -> anyhow::Result<reqwest::Client> {
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
pub(super) async fn raw_posts_apart(
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
