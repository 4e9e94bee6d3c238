//! A `herald serve` child process for a benchmark to measure: started on a fresh data
//! directory and a free port, restarted with other settings, killed when dropped.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::json;

use super::procfs::{cpu_time, disk_writes, rss_kib};
use crate::client::Client;

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

    /// A client acting as the server's admin.
    pub fn admin(&self) -> Client {
        Client::new(&self.url, Some(self.admin_key.clone()))
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

/// Creates the team `bench` and its project `p`, where the benchmarks write.
pub(super) async fn create_bench_project(c: &Client) -> anyhow::Result<()> {
    c.post(
        "/api/v1/entities",
        &json!({"name": "bench", "kind": "team"}),
    )
    .await?;
    c.post("/api/v1/entities/bench/projects", &json!({"name": "p"}))
        .await?;
    Ok(())
}
