//! The harness (mostly `tests/support`, shared with the other suites). [`spawn_app`] serves the
//! real API on 127.0.0.1:0 over a fresh data directory *without* the engine's background loops:
//! a test steps the matcher and the delivery by hand ([`TestApp::step`]), so "this batch fires,
//! that one does not" is exact and needs no sleeps. [`ChildServer`] runs the real `herald serve`
//! binary (engine loops and all) for the restart tests. [`Receiver`] is a real HTTP server on
//! loopback that records every request; [`Api`] is a small JSON client acting as one API key.
//!
//! This suite's [`TestApp`] (stepped by hand) stands in for the shared one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herald::config::{Config, Overrides};
use herald_api::AppState;
use herald_engine::secrets::MasterKey;
use herald_engine::Engine;
use herald_store::sql::{SqlOptions, SqlStore};
use herald_store::Store;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use crate::support::receiver::*;
pub use crate::support::*;

// ---------------------------------------------------------------------------------------------
// The in-process server, stepped by hand
// ---------------------------------------------------------------------------------------------

/// A server running in this process whose matcher and delivery run only when the test says.
/// Dropping it stops the server.
pub struct TestApp {
    pub admin: Api,
    pub base: String,
    engine: Arc<Engine>,
    /// Stops the server when dropped (before the data directory goes).
    _shutdown: DropGuard,
    _dir: TempDir,
}

/// Starts the API on 127.0.0.1:0 with a fresh data directory, loopback destinations allowed,
/// and no engine loops (see [`TestApp::step`]).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with more variables in its environment.
pub async fn spawn_app_with(extra: &[(&'static str, &'static str)]) -> TestApp {
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
    .chain(extra.iter().copied())
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
    let delivery = config.delivery_config().expect("delivery config");
    let key = MasterKey::generate();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    // Files in memory: these tests upload none.
    let blob_store = herald_blobs::ObjectBlobStore::in_memory(herald_blobs::Limits::default());
    let blobs = herald_engine::blobs::Blobs::new(
        Arc::new(blob_store),
        &key,
        &base,
        herald_engine::blobs::UrlLifetimes::default(),
    )
    .expect("blobs");
    let engine = Engine::new(store.clone(), key, delivery);
    let router = herald_api::router(
        AppState::new(store, engine.clone(), Arc::new(blobs)),
        herald_api::RequestLimits::default(),
    );
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
        _shutdown: shutdown.drop_guard(),
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

    /// The engine, for tests that step the matcher and deliveries one at a time.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// A client acting as `key`.
    pub fn as_key(&self, key: &str) -> Api {
        Api::new(&self.base, key)
    }

    /// Creates user `username` and returns a client acting as them.
    pub async fn create_user(&self, username: &str) -> Api {
        self.as_key(&self.admin.create_user(username).await)
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------------

impl ChildServer {
    /// Starts `herald serve --listen 127.0.0.1:PORT --data-dir DIR` with loopback destinations
    /// allowed, waits until it is ready, and acts as the admin whose key it wrote to
    /// `DIR/admin-api-key` at its first start.
    pub async fn start(data_dir: &Path) -> ChildServer {
        let mut server = ChildServer::spawn(data_dir, "", |cmd| {
            cmd.env("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8");
        })
        .await;
        let key = std::fs::read_to_string(data_dir.join("admin-api-key"))
            .expect("reading DIR/admin-api-key");
        server.admin = Api::new(&server.base, key.trim());
        server
    }
}

/// For servers whose matcher runs on its own: waits until it has matched every event written
/// so far. A run created in entity `probe` fires a NO_OP RUN_STATE automation, and the matcher
/// handles events in order, so once that execution exists everything before it is matched.
pub async fn sync_matcher(api: &Api) {
    sync_matcher_on(
        api,
        json!({ "type": "RUN_STATE", "filter": {
            "run_filter": "{\"$and\":[]}",
            "run_state_filter": { "states": ["RUNNING"] }
        } }),
        api.create_run("probe", "p", json!({})),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// What only these tests need of the client
// ---------------------------------------------------------------------------------------------

impl Api {
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
        self.get_list(
            &format!("/api/v1/entities/{entity}/executions?limit=1000"),
            "executions",
        )
        .await
    }
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
        .create_integration(E, "hook", &rx.url("/hook"), None, None)
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

/// A data directory for a child server, kept as long as the returned guard.
pub fn data_dir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    (dir, data)
}
