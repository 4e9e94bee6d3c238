//! The harness: [`spawn_app`] runs the real server in process on 127.0.0.1:0 with a fresh data
//! directory and a delivery configuration chosen per test; [`ChildServer`] runs the real
//! `herald serve` binary; [`Receiver`] is a real HTTP server on loopback that records every
//! request and answers as each test tells it to (a status, `Retry-After`, a redirect, a delay,
//! a dropped connection, a 100 MB body); [`Api`] is a small JSON client.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::Utc;
use herald::app::App;
use herald::config::{Config, Overrides};
use hmac::{Hmac, Mac};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The bootstrap admin's key (`HERALD_BOOTSTRAP_API_KEY`).
pub const ADMIN_KEY: &str = "automations-test-admin-key-0123456789abcdef";

/// Values of the secrets every [`team`] stores: an access token and a Standard Webhooks
/// signing secret (`whsec_` + base64 of 24 bytes).
pub const TOKEN_VALUE: &str = "tok_7f3c91d2e8a4b6c0d5e2f1a9b8c7d6e5";
pub const SIGNING_VALUE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const TOKEN_SECRET: &str = "HOOK_TOKEN";
pub const SIGNING_SECRET: &str = "HOOK_SIGNING";

/// Delivery settings of a test server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `HERALD_ALLOWED_DESTINATIONS`; `None` leaves loopback refused.
    pub allowed_destinations: Option<String>,
    /// `HERALD_DELIVERY_TIMEOUT`.
    pub timeout: String,
    /// `[delivery] retry_schedule` in the config file.
    pub retry_schedule: Vec<String>,
    pub jitter: f64,
    pub per_destination: usize,
    pub max_in_flight: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            allowed_destinations: Some("127.0.0.0/8".into()),
            timeout: "2s".into(),
            retry_schedule: vec!["200ms".into(), "400ms".into()],
            jitter: 0.0,
            per_destination: 8,
            max_in_flight: 64,
        }
    }
}

impl Options {
    /// The config file's text.
    pub fn toml(&self) -> String {
        let schedule: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
        format!(
            "[delivery]\nretry_schedule = [{}]\njitter = {:?}\nper_destination = {}\nmax_in_flight = {}\n",
            schedule.join(", "),
            self.jitter,
            self.per_destination,
            self.max_in_flight
        )
    }

    /// The environment a server with these options gets.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "HERALD_BOOTSTRAP_API_KEY".to_string(),
                ADMIN_KEY.to_string(),
            ),
            ("HERALD_DELIVERY_TIMEOUT".to_string(), self.timeout.clone()),
        ];
        if let Some(a) = &self.allowed_destinations {
            env.push(("HERALD_ALLOWED_DESTINATIONS".to_string(), a.clone()));
        }
        env
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A server running in this process. Dropping it stops the server.
pub struct TestApp {
    pub admin: Api,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Waits until the running matcher has matched every event written so far. It writes a probe
/// event in a separate entity `probe`, watched by a NO_OP automation, and waits for its
/// execution: the matcher handles events in order, so everything before it is matched too.
pub async fn sync_matcher(api: &Api) {
    let (status, _) = api.get("/api/v1/entities/probe").await;
    let automation = if status == StatusCode::NOT_FOUND {
        api.create_entity("probe", "team").await;
        api.create_project("probe", "p").await;
        api.create_automation(
            "probe",
            json!({
                "name": "probe",
                "scope": { "type": "PROJECT", "path": "probe/p" },
                "event": { "type": "CREATE_ARTIFACT" },
                "action": { "type": "NO_OP" },
                "rate_limit_per_minute": 10000
            }),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    } else {
        expect(
            api.get("/api/v1/entities/probe/automations").await,
            StatusCode::OK,
        )[0]["id"]
            .as_i64()
            .unwrap()
    };
    let before = api.executions(automation).await.len();
    api.create_version("probe", "p", "c").await;
    eventually(
        "the matcher to reach the probe",
        Duration::from_secs(10),
        || async { (api.executions(automation).await.len() > before).then_some(()) },
    )
    .await;
}

/// Starts the real app on 127.0.0.1:0 with a fresh data directory and `options`.
pub async fn spawn_app(options: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config_file = dir.path().join("herald.toml");
    std::fs::write(&config_file, options.toml()).expect("writing the config file");
    let data_dir = dir.path().join("data");
    let overrides = Overrides {
        config_file: Some(config_file),
        data_dir: Some(data_dir.clone()),
        listen: Some("127.0.0.1:0".into()),
        database_url: herald::testing::database_url_for(&data_dir).await,
    };
    let env: HashMap<String, String> = options.env().into_iter().collect();
    let config = Config::load_from(&overrides, |k| env.get(k).cloned()).expect("test config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let app = App::build_with_listener(&config, listener)
        .await
        .expect("the app builds");
    assert_eq!(app.bootstrap_admin_key(), Some(ADMIN_KEY));
    let base = format!("http://{}", app.address());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        admin: Api::new(&base, ADMIN_KEY),
        data_dir,
        shutdown,
        _dir: dir,
    }
}

/// The real `herald serve` binary as a child process.
pub struct ChildServer {
    child: std::process::Child,
    pub base: String,
    pub admin: Api,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding")
        .local_addr()
        .expect("address")
        .port()
}

impl ChildServer {
    /// Starts `herald serve` on `data_dir` with `options` (written to a config file next to
    /// the data directory) and extra environment, sending stderr to `stderr` when given, and
    /// waits until it is ready.
    pub async fn start(
        data_dir: &Path,
        options: &Options,
        extra_env: &[(&str, &str)],
        stderr: Option<&Path>,
    ) -> ChildServer {
        let config_file = data_dir.with_extension("toml");
        std::fs::write(&config_file, options.toml()).expect("writing the config file");
        let port = free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(&config_file)
            .env_remove("DATABASE_URL")
            .envs(herald::testing::child_env(data_dir).await)
            .env_remove("HERALD_MASTER_KEY")
            .env_remove("HERALD_ALLOWED_DESTINATIONS")
            .env_remove("HERALD_LOG_FORMAT")
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        for (k, v) in options.env() {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        match stderr {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("opening the log file");
                cmd.stderr(f);
            }
            None => {
                cmd.stderr(std::process::Stdio::null());
            }
        }
        let child = cmd.spawn().expect("starting herald serve");
        let base = format!("http://127.0.0.1:{port}");
        let server = ChildServer {
            child,
            admin: Api::new(&base, ADMIN_KEY),
            base,
        };
        let http = http_client();
        let ready = format!("{}/readyz", server.base);
        eventually(
            "herald serve to become ready",
            Duration::from_secs(30),
            || {
                let http = http.clone();
                let ready = ready.clone();
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
        let ok = std::process::Command::new("kill")
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

/// Polls `f` every 20 ms until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A JSON client acting as one API key.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    key: String,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.to_string(),
            http: http_client(),
            key: key.to_string(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// Sends a request; returns the status and the raw body. Panics on a 5xx.
    pub async fn send_raw(&self, rb: RequestBuilder) -> (StatusCode, String) {
        let req = rb.build().expect("a well-formed request");
        let what = format!("{} {}", req.method(), req.url().path());
        let res = self
            .http
            .execute(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert!(
            !status.is_server_error(),
            "{what} answered {status}: {text}"
        );
        (status, text)
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn send(&self, rb: RequestBuilder) -> (StatusCode, Value) {
        let (status, text) = self.send_raw(rb).await;
        if text.is_empty() {
            return (status, Value::Null);
        }
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn create_entity(&self, name: &str, kind: &str) {
        expect(
            self.post("/api/v1/entities", json!({ "name": name, "kind": kind }))
                .await,
            StatusCode::CREATED,
        );
    }

    pub async fn create_project(&self, entity: &str, name: &str) {
        expect(
            self.post(
                &format!("/api/v1/entities/{entity}/projects"),
                json!({ "name": name }),
            )
            .await,
            StatusCode::CREATED,
        );
    }

    pub async fn create_registry(&self, org: &str, name: &str) {
        expect(
            self.post(
                &format!("/api/v1/entities/{org}/registries"),
                json!({ "name": name }),
            )
            .await,
            StatusCode::CREATED,
        );
    }

    pub async fn put_secret(&self, entity: &str, name: &str, value: &str) {
        let (status, body) = self
            .put(
                &format!("/api/v1/entities/{entity}/secrets/{name}"),
                json!({ "value": value }),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}: {body}"
        );
    }

    /// Creates a webhook integration and returns its id.
    pub async fn create_integration(
        &self,
        entity: &str,
        name: &str,
        url: &str,
        token: Option<&str>,
        signing: Option<&str>,
    ) -> i64 {
        let body = expect(
            self.post(
                &format!("/api/v1/entities/{entity}/integrations"),
                json!({ "kind": "webhook", "name": name, "url": url,
                        "access_token_secret": token, "signing_secret": signing }),
            )
            .await,
            StatusCode::CREATED,
        );
        body["id"].as_i64().expect("integration id")
    }

    /// Creates an automation and returns it.
    pub async fn create_automation(&self, entity: &str, body: Value) -> Value {
        expect(
            self.post(&format!("/api/v1/entities/{entity}/automations"), body)
                .await,
            StatusCode::CREATED,
        )
    }

    /// Creates the next version of `collection` (type `model`) in `entity/project`.
    pub async fn create_version(&self, entity: &str, project: &str, collection: &str) -> Value {
        expect(
            self.post(
                &format!("/api/v1/entities/{entity}/projects/{project}/artifacts"),
                json!({ "collection": collection, "type": "model" }),
            )
            .await,
            StatusCode::CREATED,
        )
    }

    /// Every execution of automation `id`, oldest first.
    pub async fn executions(&self, id: i64) -> Vec<Value> {
        let page = expect(
            self.get(&format!("/api/v1/automations/{id}/executions?limit=1000"))
                .await,
            StatusCode::OK,
        );
        page["executions"].as_array().expect("executions").clone()
    }

    /// One execution with its attempts.
    pub async fn execution(&self, id: i64) -> Value {
        expect(
            self.get(&format!("/api/v1/executions/{id}")).await,
            StatusCode::OK,
        )
    }

    /// Waits until automation `id` has `n` executions and all of them are final
    /// (FINISHED, FAILED, SKIPPED or CANCELLED); returns them.
    pub async fn settled_executions(&self, id: i64, n: usize, timeout: Duration) -> Vec<Value> {
        eventually(
            &format!("{n} settled executions of automation {id}"),
            timeout,
            || async move {
                let xs = self.executions(id).await;
                let settled = xs.len() == n
                    && xs.iter().all(|x| {
                        ["FINISHED", "FAILED", "SKIPPED", "CANCELLED"]
                            .contains(&x["status"].as_str().unwrap_or(""))
                    });
                settled.then_some(xs)
            },
        )
        .await
    }

    /// Waits until execution `id` has status `status`; returns it with its attempts.
    pub async fn wait_status(&self, id: i64, status: &str, timeout: Duration) -> Value {
        eventually(
            &format!("execution {id} to be {status}"),
            timeout,
            || async move {
                let x = self.execution(id).await;
                (x["status"] == status).then_some(x)
            },
        )
        .await
    }

    /// Waits until automation `id` has at least one execution; returns the first one's id.
    pub async fn first_execution(&self, id: i64) -> i64 {
        eventually(
            &format!("an execution of automation {id}"),
            Duration::from_secs(10),
            || async move {
                self.executions(id)
                    .await
                    .first()
                    .and_then(|x| x["id"].as_i64())
            },
        )
        .await
    }
}

/// Asserts the status and returns the body.
#[track_caller]
pub fn expect((status, body): (StatusCode, Value), want: StatusCode) -> Value {
    assert_eq!(status, want, "unexpected status; body: {body}");
    body
}

/// A team set up for deliveries: organization `name` with project `proj`, the secrets
/// [`TOKEN_SECRET`] and [`SIGNING_SECRET`], and a webhook integration to `rx` at `hook_path`
/// that uses both.
pub struct Team {
    pub integration: i64,
}

pub async fn team(api: &Api, name: &str, rx: &Receiver, hook_path: &str) -> Team {
    api.create_entity(name, "organization").await;
    api.create_project(name, "proj").await;
    api.put_secret(name, TOKEN_SECRET, TOKEN_VALUE).await;
    api.put_secret(name, SIGNING_SECRET, SIGNING_VALUE).await;
    let integration = api
        .create_integration(
            name,
            "ci hook",
            &rx.url(hook_path),
            Some(TOKEN_SECRET),
            Some(SIGNING_SECRET),
        )
        .await;
    Team { integration }
}

/// A GENERIC_WEBHOOK automation body on CREATE_ARTIFACT in `entity/proj`.
pub fn on_create(name: &str, entity: &str, integration: i64) -> Value {
    json!({
        "name": name,
        "scope": { "type": "PROJECT", "path": format!("{entity}/proj") },
        "event": { "type": "CREATE_ARTIFACT" },
        "action": {
            "type": "GENERIC_WEBHOOK",
            "integration_id": integration,
            "payload": { "event": "${event_type}", "version": "${artifact_version_string}" }
        }
    })
}

/// The numeric execution id in a `webhook-id` header (`exec_<id>`).
pub fn execution_id_of(webhook_id: &str) -> i64 {
    webhook_id
        .strip_prefix("exec_")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("webhook-id {webhook_id:?} is not exec_<execution id>"))
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(msg);
    B64.encode(mac.finalize().into_bytes())
}

/// Checks both signatures of a delivery independently of herald's code: `X-Wandb-Signature`
/// is base64 HMAC-SHA256 of the raw body keyed by the secret string, and `webhook-signature`
/// is `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` keyed by the base64-decoded `whsec_`
/// secret. The timestamp must be current.
#[track_caller]
pub fn verify_signatures(r: &Received, signing_secret: &str) {
    let wandb = r.header("x-wandb-signature").expect("X-Wandb-Signature");
    assert_eq!(
        wandb,
        hmac_b64(signing_secret.as_bytes(), &r.body),
        "X-Wandb-Signature"
    );
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let ts_n: i64 = ts.parse().expect("webhook-timestamp is an integer");
    assert!(
        (Utc::now().timestamp() - ts_n).abs() < 300,
        "webhook-timestamp {ts} is not current"
    );
    let key = B64
        .decode(
            signing_secret
                .strip_prefix("whsec_")
                .expect("whsec_ secret"),
        )
        .expect("base64 key");
    let mut signed = Vec::new();
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(ts.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(&r.body);
    let want = format!("v1,{}", hmac_b64(&key, &signed));
    let header = r.header("webhook-signature").expect("webhook-signature");
    assert!(
        header.split(' ').any(|s| s == want),
        "webhook-signature {header:?} does not contain {want:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------------

/// How the receiver answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with this body.
    Status(u16, &'static str),
    /// This status with a `Retry-After` header (seconds).
    RetryAfter(u16, u64),
    /// A redirect with this status to this path on the receiver.
    Redirect(u16, &'static str),
    /// Waits this long, then answers 200.
    Delay(Duration),
    /// Drops the connection without answering (TCP reset).
    Reset,
    /// 200 with a body of this many bytes, streamed.
    Huge(u64),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "delivery body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn webhook_id(&self) -> String {
        self.header("webhook-id").expect("webhook-id").to_string()
    }
}

#[derive(Default)]
struct Route {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
}

#[derive(Default)]
struct Inner {
    routes: Mutex<HashMap<String, Route>>,
    received: Mutex<Vec<Received>>,
}

/// A real HTTP server on 127.0.0.1:0 that records every request. Paths answer 200 "ok"
/// unless told otherwise.
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let addr = listener.local_addr().expect("address");
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(
                ResettableListener(listener),
                app.into_make_service_with_connect_info::<Conn>(),
            )
            .await
            .expect("receiver serves");
        });
        Receiver {
            addr,
            inner,
            _task: task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request to `path` gets `reply` (after any queued replies).
    pub fn answer(&self, path: &str, reply: Reply) {
        self.inner
            .routes
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .default = Some(reply);
    }

    /// The next requests to `path` get these replies, one each, in order.
    pub fn queue(&self, path: &str, replies: Vec<Reply>) {
        self.inner
            .routes
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .queue
            .extend(replies);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The requests to `path` so far.
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `path` has received at least `n` requests; returns them.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        eventually(&format!("{n} requests to {path}"), timeout, || async move {
            let got = self.received_at(path);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    inner.received.lock().unwrap().push(Received {
        at: Instant::now(),
        method: parts.method.to_string(),
        path: path.clone(),
        headers,
        body,
    });
    let reply = {
        let mut routes = inner.routes.lock().unwrap();
        let route = routes.entry(path).or_default();
        route.queue.pop_front().or_else(|| route.default.clone())
    };
    let status = |c: u16| AxStatus::from_u16(c).expect("status code");
    match reply.unwrap_or(Reply::Status(200, "ok")) {
        Reply::Status(c, body) => (status(c), body).into_response(),
        Reply::RetryAfter(c, secs) => {
            (status(c), [("retry-after", secs.to_string())], "slow down").into_response()
        }
        Reply::Redirect(c, to) => {
            let mut r = (status(c), "moved").into_response();
            r.headers_mut()
                .insert("location", HeaderValue::from_static(to));
            r
        }
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            (AxStatus::OK, "late").into_response()
        }
        Reply::Reset => {
            conn.0.store(true, Ordering::SeqCst);
            (AxStatus::OK, "never sent").into_response()
        }
        Reply::Huge(n) => Response::new(Body::new(HugeBody { remaining: n })),
    }
}

static FILLER: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// A streamed body of `remaining` bytes that allocates nothing per chunk.
struct HugeBody {
    remaining: u64,
}

impl http_body::Body for HugeBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(FILLER.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &FILLER[..n],
        )))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// A listener whose connections a handler can reset: the connection's kill switch is its
/// connect info, and once set, the next write fails and the socket closes with a zero linger,
/// which sends a TCP RST instead of an answer.
struct ResettableListener(TcpListener);

struct ResettableIo {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Conn(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, ResettableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        Conn(stream.io().killed.clone())
    }
}

impl Listener for ResettableListener {
    type Io = ResettableIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((s, a)) => {
                    let _ = s.set_nodelay(true);
                    return (
                        ResettableIo {
                            inner: s,
                            killed: Arc::new(AtomicBool::new(false)),
                        },
                        a,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl ResettableIo {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by test",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for ResettableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
