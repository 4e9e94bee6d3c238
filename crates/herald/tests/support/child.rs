//! [`ChildServer`]: the real `herald serve` binary as a child process. Each test binary that
//! uses it adds its own `ChildServer::start`, which configures the command and calls
//! [`ChildServer::spawn`].

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, http_client, Api};

/// `herald serve` as a child process on a data directory. Dropping it kills the process.
pub struct ChildServer {
    child: Child,
    pub base: String,
    pub admin: Api,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding")
        .local_addr()
        .expect("address")
        .port()
}

impl ChildServer {
    /// Starts `herald serve --listen 127.0.0.1:PORT --data-dir DIR` on a free port, on the test
    /// backend's database, with nothing from this process's environment that would configure
    /// it, `HERALD_LOG=warn`, and no stdin, stdout or stderr; `configure` then adds its own
    /// arguments and environment (and may redirect stderr). Waits until the server is ready;
    /// [`ChildServer::admin`] acts as `admin_key`.
    pub async fn spawn(
        data_dir: &Path,
        admin_key: &str,
        configure: impl FnOnce(&mut Command),
    ) -> ChildServer {
        Self::spawn_on(data_dir, data_dir, admin_key, configure).await
    }

    /// [`ChildServer::spawn`] on the test database of `database_dir`, which several servers
    /// (replicas, each with its own data directory) can share on PostgreSQL.
    pub async fn spawn_on(
        database_dir: &Path,
        data_dir: &Path,
        admin_key: &str,
        configure: impl FnOnce(&mut Command),
    ) -> ChildServer {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir);
        for k in [
            "DATABASE_URL",
            "HERALD_BOOTSTRAP_API_KEY",
            "HERALD_MASTER_KEY",
            "HERALD_CONFIG",
            "HERALD_LISTEN",
            "HERALD_DATA_DIR",
            "HERALD_LOG_FORMAT",
            "HERALD_DELIVERY_TIMEOUT",
            "HERALD_ALLOWED_DESTINATIONS",
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(herald::testing::child_env(database_dir).await)
            .env("HERALD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        configure(&mut cmd);
        let child = cmd.spawn().expect("starting herald serve");
        let base = format!("http://127.0.0.1:{port}");
        let server = ChildServer {
            child,
            admin: Api::new(&base, admin_key),
            base,
        };
        let http = http_client();
        let ready = format!("{}/readyz", server.base);
        eventually(
            "herald serve to become ready",
            Duration::from_secs(30),
            || {
                let (http, ready) = (http.clone(), ready.clone());
                async move {
                    match http.get(&ready).send().await {
                        Ok(r) if r.status().is_success() => Some(()),
                        _ => None,
                    }
                }
            },
        )
        .await;
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the process (SIGSTOP), so it sends nothing more.
    pub fn freeze(&self) {
        let ok = Command::new("kill")
            .args(["-STOP", &self.pid().to_string()])
            .status()
            .expect("running kill -STOP")
            .success();
        assert!(ok, "kill -STOP failed");
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the child");
    }

    /// A `/proc/<pid>/status` field in kB (`VmRSS`, `VmHWM`), on Linux.
    pub fn memory_kb(&self, field: &str) -> Option<u64> {
        proc_status_kb(self.pid(), field)
    }
}

/// A `/proc/<pid>/status` field in kB.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
