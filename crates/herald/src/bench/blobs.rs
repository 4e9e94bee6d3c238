//! `herald bench blobs`: upload and download throughput of one large file through a `herald
//! serve` child process on loopback, with signed URLs as the GraphQL API hands them out, into
//! its local blob store (`<data_dir>/blobs`), and the server's RSS after each, which shows that
//! files stream rather than sit in memory.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use herald_blobs::BlobKey;
use herald_engine::blobs::{Access, UrlSigner};
use herald_engine::secrets::MasterKey;

use super::server::ServerProcess;

#[derive(Args, Debug, Clone)]
pub struct BlobsArgs {
    /// Size of the file, in MiB.
    #[arg(long, default_value_t = 64)]
    pub mib: usize,
    /// Uploads and downloads of it (each a new key).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

pub(super) async fn blobs(args: BlobsArgs) -> anyhow::Result<()> {
    // The server signs with a key derived from its master key: give it one we know, so this
    // process can sign URLs it accepts.
    let master = MasterKey::generate();
    let server =
        ServerProcess::start_with(&[("HERALD_MASTER_KEY", master.to_base64().as_str())]).await?;
    let signer = UrlSigner::new(&master);
    let size = args.mib << 20;
    let file = bytes::Bytes::from(
        (0..size)
            .map(|i| (i * 31 + i / 4093) as u8)
            .collect::<Vec<u8>>(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let url = |access, key: &BlobKey| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let expires = now.map_or(0, |d| d.as_secs() as i64) + 3600;
        format!(
            "{}/storage/v1/{key}?{}",
            server.url,
            signer.query(access, key, expires, None)
        )
    };
    outln!(
        "herald bench blobs: {} (one {} MiB file, {} rounds, local blob store, child process)",
        server.url,
        args.mib,
        args.rounds
    );
    let rss = |server: &ServerProcess| {
        server
            .rss_kib()
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "unknown".into())
    };
    outln!("idle RSS: {}", rss(&server));
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let key = BlobKey::run_file(1, &format!("bench/{round}.bin"))?;
        let started = Instant::now();
        let res = http
            .put(url(Access::Upload, &key))
            .body(file.clone())
            .send()
            .await
            .context("uploading")?;
        if !res.status().is_success() {
            bail!("upload answered {}: {}", res.status(), res.text().await?);
        }
        res.bytes().await?;
        let up = started.elapsed();
        let rss_after_upload = rss(&server);

        let started = Instant::now();
        let mut res = http.get(url(Access::Download, &key)).send().await?;
        if !res.status().is_success() {
            bail!("download answered {}", res.status());
        }
        let mut received = 0;
        while let Some(chunk) = res.chunk().await? {
            received += chunk.len();
        }
        let down = started.elapsed();
        if received != size {
            bail!("downloaded {received} bytes of {size}");
        }
        outln!(
            "round {}: upload {:>7.1} MB/s, download {:>7.1} MB/s (RSS after upload {})",
            round + 1,
            mb_per_s(size, up),
            mb_per_s(size, down),
            rss_after_upload
        );
        ups.push(mb_per_s(size, up));
        downs.push(mb_per_s(size, down));
    }
    outln!(
        "median: upload {:.1} MB/s, download {:.1} MB/s; RSS at the end {}",
        median(&mut ups),
        median(&mut downs),
        rss(&server)
    );
    Ok(())
}

/// Megabytes (10^6 bytes) per second.
fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}
