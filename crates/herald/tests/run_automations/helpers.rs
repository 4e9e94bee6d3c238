//! The harness. [`spawn_app`] serves the real API on 127.0.0.1:0 over a fresh SQLite data
//! directory *without* the engine's background loops: a test steps the matcher and the
//! delivery by hand ([`TestApp::step`]), so "this batch fires, that one does not" is exact and
//! needs no sleeps. [`ChildServer`] runs the real `herald serve` binary (engine loops and all)
//! for the restart tests. [`Receiver`] is a real HTTP server on loopback that records every
//! request; [`Api`] is a small JSON client acting as one API key.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode as AxStatus;
use axum::Router;
use herald::config::{Config, Overrides};
use herald_api::AppState;
use herald_engine::secrets::MasterKey;
use herald_engine::Engine;
use herald_store::sql::{SqlOptions, SqlStore};
use herald_store::Store;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The bootstrap admin's key of in-process servers.
pub const ADMIN_KEY: &str = "run-automations-admin-key-0123456789abcd";

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

// ---------------------------------------------------------------------------------------------
// The in-process server, stepped by hand
// ---------------------------------------------------------------------------------------------

/// A server running in this process whose matcher and delivery run only when the test says.
/// Dropping it stops the server.
pub struct TestApp {
    pub admin: Api,
    pub base: String,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the API on 127.0.0.1:0 with a fresh data directory, loopback destinations allowed,
/// and no engine loops (see [`TestApp::step`]).
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let overrides = Overrides {
        data_dir: Some(dir.path().join("data")),
        listen: Some("127.0.0.1:0".into()),
        database_url: herald::testing::database_url_for(dir.path()).await,
        ..Default::default()
    };
    // A fake environment: nothing from the real process environment.
    let env: HashMap<&str, &str> = [
        ("HERALD_BOOTSTRAP_API_KEY", ADMIN_KEY),
        ("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8"),
        ("HERALD_DELIVERY_TIMEOUT", "5s"),
    ]
    .into_iter()
    .collect();
    let config =
        Config::load_from(&overrides, |k| env.get(k).map(|v| v.to_string())).expect("config");
    std::fs::create_dir_all(&config.data_dir).expect("data directory");
    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(&config.effective_database_url(), &SqlOptions::default())
            .await
            .expect("the store opens"),
    );
    let key = herald_engine::auth::bootstrap_admin(&*store, Some(ADMIN_KEY))
        .await
        .expect("bootstrap admin");
    assert_eq!(key.as_deref(), Some(ADMIN_KEY));
    let delivery = config.delivery.to_engine().expect("delivery config");
    let engine = Engine::new(store.clone(), MasterKey::generate(), delivery);
    let router = herald_api::router(AppState {
        store,
        engine: engine.clone(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone().cancelled_owned();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
            .expect("serving");
    });
    TestApp {
        admin: Api::new(&base, ADMIN_KEY),
        base,
        engine,
        shutdown,
        _dir: dir,
    }
}

impl TestApp {
    /// Matches every event written so far, then delivers every execution that is due, waiting
    /// for the deliveries to finish.
    pub async fn step(&self) {
        while self.engine.match_once().await.expect("matcher step") > 0 {}
        while self.engine.deliver_once().await.expect("delivery step") > 0 {}
    }

    /// A client acting as `key`.
    pub fn as_key(&self, key: &str) -> Api {
        Api::new(&self.base, key)
    }

    /// Creates user `username` and returns a client acting as them.
    pub async fn create_user(&self, username: &str) -> Api {
        let created = expect(
            self.admin
                .post("/api/v1/users", json!({ "username": username }))
                .await,
            StatusCode::CREATED,
        );
        self.as_key(created["api_key"].as_str().expect("api_key"))
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------------

/// `herald serve` as a child process on a data directory. Dropping it kills the process.
pub struct ChildServer {
    child: std::process::Child,
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
    /// Starts `herald serve --listen 127.0.0.1:PORT --data-dir DIR` with loopback destinations
    /// allowed, waits until it is ready, and acts as the admin whose key it wrote to
    /// `DIR/admin-api-key` at its first start.
    pub async fn start(data_dir: &Path) -> ChildServer {
        let port = free_port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
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
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(herald::testing::child_env(data_dir).await);
        cmd.env("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8")
            .env("HERALD_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn().expect("starting herald serve");
        let base = format!("http://127.0.0.1:{port}");
        let http = http_client();
        let ready = format!("{base}/readyz");
        let mut server = ChildServer {
            child,
            admin: Api::new(&base, ""),
        };
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
        let key = std::fs::read_to_string(data_dir.join("admin-api-key"))
            .expect("reading DIR/admin-api-key");
        server.admin = Api::new(&base, key.trim());
        server
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the child");
    }
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

/// For servers whose matcher runs on its own: waits until it has matched every event written
/// so far. A run created in entity `probe` fires a NO_OP RUN_STATE automation, and the matcher
/// handles events in order, so once that execution exists everything before it is matched.
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
                "event": { "type": "RUN_STATE", "filter": {
                    "run_filter": "{\"$and\":[]}",
                    "run_state_filter": { "states": ["RUNNING"] }
                } },
                "action": { "type": "NO_OP" },
                "rate_limit_per_minute": 10000
            }),
        )
        .await
    } else {
        expect(
            api.get("/api/v1/entities/probe/automations").await,
            StatusCode::OK,
        )[0]
        .clone()
    };
    let id = automation["id"].as_i64().expect("probe automation id");
    let before = api.executions(id).await.len();
    api.create_run("probe", "p", json!({})).await;
    eventually(
        "the matcher to reach the probe",
        Duration::from_secs(10),
        || async { (api.executions(id).await.len() > before).then_some(()) },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The JSON client
// ---------------------------------------------------------------------------------------------

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

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty). Panics on a
    /// 5xx and on a body that is not JSON.
    pub async fn send(&self, rb: RequestBuilder) -> (StatusCode, Value) {
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
        if text.is_empty() {
            return (status, Value::Null);
        }
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what} answered {status}, not JSON ({e}): {text}"));
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    /// POSTs `raw` as a JSON body (for what `serde_json::Value` cannot hold).
    pub async fn post_raw(&self, path: &str, raw: &str) -> (StatusCode, Value) {
        self.send(
            self.request(Method::POST, path)
                .header("content-type", "application/json")
                .body(raw.to_string()),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
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

    pub async fn set_member(&self, entity: &str, username: &str, role: &str) {
        expect(
            self.put(
                &format!("/api/v1/entities/{entity}/members/{username}"),
                json!({ "role": role }),
            )
            .await,
            StatusCode::OK,
        );
    }

    /// Creates a webhook integration to `url` (no secrets) and returns its id.
    pub async fn create_integration(&self, entity: &str, name: &str, url: &str) -> i64 {
        expect(
            self.post(
                &format!("/api/v1/entities/{entity}/integrations"),
                json!({ "kind": "webhook", "name": name, "url": url }),
            )
            .await,
            StatusCode::CREATED,
        )["id"]
            .as_i64()
            .expect("integration id")
    }

    /// Creates an automation and returns it.
    pub async fn create_automation(&self, entity: &str, body: Value) -> Value {
        expect(
            self.post(&format!("/api/v1/entities/{entity}/automations"), body)
                .await,
            StatusCode::CREATED,
        )
    }

    /// The entity's automations.
    pub async fn automations(&self, entity: &str) -> Vec<Value> {
        expect(
            self.get(&format!("/api/v1/entities/{entity}/automations"))
                .await,
            StatusCode::OK,
        )
        .as_array()
        .expect("automations array")
        .clone()
    }

    /// Creates a model version in `entity/project/collection` (so the collection exists).
    pub async fn create_version(&self, entity: &str, project: &str, collection: &str) {
        expect(
            self.post(
                &format!("/api/v1/entities/{entity}/projects/{project}/artifacts"),
                json!({ "collection": collection, "type": "model" }),
            )
            .await,
            StatusCode::CREATED,
        );
    }

    /// Starts a run; `body` is `{id?, display_name?, tags?, config?}`.
    pub async fn create_run(&self, entity: &str, project: &str, body: Value) -> Value {
        expect(
            self.post(
                &format!("/api/v1/entities/{entity}/projects/{project}/runs"),
                body,
            )
            .await,
            StatusCode::CREATED,
        )
    }

    /// Logs one history batch of `metric`'s values, one row per value, steps from `step`.
    pub async fn log(&self, entity: &str, project: &str, run: &str, metric: &str, values: &[f64]) {
        let rows: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| json!({ "step": i, "values": { metric: v } }))
            .collect();
        self.log_rows(entity, project, run, rows).await;
    }

    /// Logs one history batch of raw rows.
    pub async fn log_rows(&self, entity: &str, project: &str, run: &str, rows: Vec<Value>) {
        expect(
            self.post(
                &format!("/api/v1/entities/{entity}/projects/{project}/runs/{run}/history"),
                json!({ "rows": rows }),
            )
            .await,
            StatusCode::OK,
        );
    }

    /// Moves a run to `state`.
    pub async fn set_state(&self, entity: &str, project: &str, run: &str, state: &str) -> Value {
        expect(
            self.patch(
                &format!("/api/v1/entities/{entity}/projects/{project}/runs/{run}"),
                json!({ "state": state }),
            )
            .await,
            StatusCode::OK,
        )
    }

    /// Every execution of automation `id`, oldest first.
    pub async fn executions(&self, id: i64) -> Vec<Value> {
        expect(
            self.get(&format!("/api/v1/automations/{id}/executions?limit=1000"))
                .await,
            StatusCode::OK,
        )["executions"]
            .as_array()
            .expect("executions")
            .clone()
    }

    /// The executions of automation `id` that fired (not SKIPPED), oldest first.
    pub async fn fired(&self, id: i64) -> Vec<Value> {
        self.executions(id)
            .await
            .into_iter()
            .filter(|x| x["status"] != "SKIPPED")
            .collect()
    }

    /// Every execution of `entity`, oldest first.
    pub async fn entity_executions(&self, entity: &str) -> Vec<Value> {
        expect(
            self.get(&format!("/api/v1/entities/{entity}/executions?limit=1000"))
                .await,
            StatusCode::OK,
        )["executions"]
            .as_array()
            .expect("executions")
            .clone()
    }
}

/// Asserts the status and returns the body.
#[track_caller]
pub fn expect((status, body): (StatusCode, Value), want: StatusCode) -> Value {
    assert_eq!(status, want, "unexpected status; body: {body}");
    body
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The payload every test automation sends: each run variable under a short key.
pub fn payload() -> Value {
    json!({
        "run_id": "${run_id}",
        "run_name": "${run_name}",
        "run_status": "${run_status}",
        "metric_name": "${metric_name}",
        "metric_value": "${metric_value}",
        "metric_values": "${metric_values}",
        "metric_filter": "${metric_filter}",
        "event_type": "${event_type}",
        "entity": "${entity_name}",
        "project": "${project_name}",
        "automation": "${automation_name}"
    })
}

/// A GENERIC_WEBHOOK automation `name` at PROJECT scope `entity/project` on `event_type` with
/// event filter `filter`, sending [`payload`], with the default cooldown.
pub fn run_automation(
    name: &str,
    path: &str,
    event_type: &str,
    filter: Value,
    integration: i64,
) -> Value {
    json!({
        "name": name,
        "scope": { "type": "PROJECT", "path": path },
        "event": { "type": event_type, "filter": filter },
        "action": { "type": "GENERIC_WEBHOOK", "integration_id": integration, "payload": payload() }
    })
}

/// A RUN_METRIC event filter: `run_filter` (a filter object, sent as W&B's JSON string) and a
/// threshold filter.
pub fn threshold(run_filter: Value, threshold_filter: Value) -> Value {
    json!({
        "run_filter": run_filter.to_string(),
        "run_metric_filter": { "threshold_filter": threshold_filter },
        "metric_filter": null
    })
}

/// `{"$and": []}`: every run.
pub fn all_runs() -> Value {
    json!({ "$and": [] })
}

/// A team `ml` with project `p` administered by the admin, a receiver, and a webhook
/// integration to the receiver's `/hook`.
pub struct World {
    pub app: TestApp,
    pub rx: Receiver,
    pub integration: i64,
}

pub const E: &str = "ml";
pub const P: &str = "p";
pub const PATH: &str = "ml/p";

pub async fn world() -> World {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    app.admin.create_entity(E, "team").await;
    app.admin.create_project(E, P).await;
    let integration = app
        .admin
        .create_integration(E, "hook", &rx.url("/hook"))
        .await;
    World {
        app,
        rx,
        integration,
    }
}

impl World {
    pub fn api(&self) -> &Api {
        &self.app.admin
    }

    /// Creates an automation in `ml` and returns its id.
    pub async fn automation(&self, body: Value) -> i64 {
        self.api().create_automation(E, body).await["id"]
            .as_i64()
            .expect("automation id")
    }

    /// Starts run `id` in `ml/p` with display name `name`.
    pub async fn run(&self, id: &str, name: &str) {
        self.api()
            .create_run(E, P, json!({ "id": id, "display_name": name }))
            .await;
    }

    /// Logs `values` of `metric` to run `run` as one batch, then steps the engine.
    pub async fn log(&self, run: &str, metric: &str, values: &[f64]) {
        self.api().log(E, P, run, metric, values).await;
        self.app.step().await;
    }

    /// The bodies received at `/hook` so far, oldest first.
    pub fn bodies(&self) -> Vec<Value> {
        self.rx.bodies("/hook")
    }

    /// The bodies received for automation `name`.
    pub fn bodies_of(&self, name: &str) -> Vec<Value> {
        self.bodies()
            .into_iter()
            .filter(|b| b["automation"] == name)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------------

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub webhook_id: Option<String>,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "delivery body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    /// Paths whose next request is answered only after this delay.
    delay_once: Mutex<HashMap<String, Duration>>,
}

/// A real HTTP server on 127.0.0.1:0 that records every request and answers 200, except that
/// it can be told to hold the next request to a path for a while.
pub struct Receiver {
    addr: std::net::SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let addr = listener.local_addr().expect("address");
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("receiver serves");
        });
        Receiver { addr, inner, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request to `path` is recorded at once but answered only after `d`.
    pub fn delay_next(&self, path: &str, d: Duration) {
        self.inner
            .delay_once
            .lock()
            .unwrap()
            .insert(path.to_string(), d);
    }

    /// The requests to `path` so far, oldest first.
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.inner
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The JSON bodies received at `path`, oldest first.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.received_at(path).iter().map(Received::json).collect()
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

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> (AxStatus, &'static str) {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let webhook_id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    inner.received.lock().unwrap().push(Received {
        path: path.clone(),
        webhook_id,
        body,
    });
    let delay = inner.delay_once.lock().unwrap().remove(&path);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    (AxStatus::OK, "ok")
}

/// A data directory for a child server, kept as long as the returned guard.
pub fn data_dir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    (dir, data)
}
