//! The load loop the benchmarks share: `n` requests over a number of concurrent clients, with
//! the rate and latency percentiles printed on one line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Runs `n` requests made by `make(i)` over `concurrency` clients; prints rate and latencies.
pub(super) async fn drive<F, Fut>(
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
