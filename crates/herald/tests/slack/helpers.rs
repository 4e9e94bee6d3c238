//! The harness: [`spawn_app`] runs the real server in process on 127.0.0.1:0 with a fresh data
//! directory, a config file (`[delivery]`, `[slack]`) and an environment pointing Slack at a
//! [`FakeSlack`](crate::fake_slack::FakeSlack); [`Api`] is a small JSON client; the fixtures
//! create Slack integrations (incoming webhook or bot token) and NOTIFICATION automations.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald::app::App;
use herald::config::{Config, Overrides};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fake_slack::FakeSlack;

/// The bootstrap admin's key (`HERALD_BOOTSTRAP_API_KEY`).
pub const ADMIN_KEY: &str = "slack-tests-admin-key-0123456789abcdef";
/// `HERALD_PUBLIC_URL` of every test server.
pub const PUBLIC_URL: &str = "https://herald.example.com/";

/// Settings of a test server.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[slack] min_interval`; `None` keeps the built-in default (1s).
    pub min_interval: Option<&'static str>,
    /// `[delivery] retry_schedule`.
    pub retry_schedule: Vec<&'static str>,
    pub jitter: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_interval: Some("20ms"),
            retry_schedule: vec!["100ms", "100ms"],
            jitter: 0.0,
        }
    }
}

impl Options {
    fn toml(&self) -> String {
        let schedule: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
        let mut t = format!(
            "[delivery]\nretry_schedule = [{}]\njitter = {:?}\n",
            schedule.join(", "),
            self.jitter
        );
        if let Some(i) = self.min_interval {
            t.push_str(&format!("\n[slack]\nmin_interval = {i:?}\n"));
        }
        t
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
    pub base: String,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the real app (engine loops and all) on 127.0.0.1:0 with `options`, loopback
/// destinations allowed, `chat.postMessage` at `slack`, and links on [`PUBLIC_URL`].
pub async fn spawn_app(slack: &FakeSlack, options: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config_file = dir.path().join("herald.toml");
    std::fs::write(&config_file, options.toml()).expect("writing the config file");
    let overrides = Overrides {
        config_file: Some(config_file),
        data_dir: Some(dir.path().join("data")),
        listen: Some("127.0.0.1:0".into()),
        database_url: herald::testing::database_url_for(dir.path()).await,
    };
    // A fake environment: nothing from the real process environment.
    let env: HashMap<&str, String> = [
        ("HERALD_BOOTSTRAP_API_KEY", ADMIN_KEY.to_string()),
        ("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8".to_string()),
        ("HERALD_DELIVERY_TIMEOUT", "5s".to_string()),
        ("HERALD_SLACK_BASE_URL", slack.base_url()),
        ("HERALD_PUBLIC_URL", PUBLIC_URL.to_string()),
    ]
    .into_iter()
    .collect();
    let config = Config::load_from(&overrides, |k| env.get(k).cloned()).expect("test config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let app = App::build_with_listener(&config, listener)
        .await
        .expect("the app builds");
    let base = format!("http://{}", app.address());
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        admin: Api::new(&base, ADMIN_KEY),
        base,
        shutdown,
        _dir: dir,
    }
}

impl TestApp {
    /// Creates user `username` and returns a client acting as them.
    pub async fn create_user(&self, username: &str) -> Api {
        let created = expect(
            self.admin
                .post("/api/v1/users", json!({ "username": username }))
                .await,
            StatusCode::CREATED,
        );
        Api::new(&self.base, created["api_key"].as_str().expect("api_key"))
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

/// Asserts the status and returns the body.
#[track_caller]
pub fn expect((status, body): (StatusCode, Value), want: StatusCode) -> Value {
    assert_eq!(status, want, "unexpected status; body: {body}");
    body
}

/// Parses an RFC 3339 time from the API.
#[track_caller]
pub fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v} is not a time")))
        .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
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

    /// GET `path`; returns the status and the raw body.
    pub async fn get_raw(&self, path: &str) -> (StatusCode, String) {
        self.send_raw(self.request(Method::GET, path)).await
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

    /// Creates an integration from `body`; returns it.
    pub async fn create_integration(&self, entity: &str, body: Value) -> Value {
        expect(
            self.post(&format!("/api/v1/entities/{entity}/integrations"), body)
                .await,
            StatusCode::CREATED,
        )
    }

    /// Stores `url` as secret `secret` and creates a Slack integration posting through it as
    /// an incoming webhook; returns the integration's id.
    pub async fn webhook_integration(
        &self,
        entity: &str,
        name: &str,
        channel_name: &str,
        secret: &str,
        url: &str,
    ) -> i64 {
        self.put_secret(entity, secret, url).await;
        self.create_integration(
            entity,
            json!({ "kind": "slack", "name": name, "channel_name": channel_name,
                    "workspace_name": "Acme", "webhook_url_secret": secret }),
        )
        .await["id"]
            .as_i64()
            .expect("integration id")
    }

    /// Stores `token` as secret `secret` and creates a Slack integration posting to
    /// `channel_id` with `chat.postMessage`; returns the integration's id.
    pub async fn bot_integration(
        &self,
        entity: &str,
        name: &str,
        channel_name: &str,
        secret: &str,
        token: &str,
        channel_id: &str,
    ) -> i64 {
        self.put_secret(entity, secret, token).await;
        self.create_integration(
            entity,
            json!({ "kind": "slack", "name": name, "channel_name": channel_name,
                    "bot_token_secret": secret, "channel_id": channel_id }),
        )
        .await["id"]
            .as_i64()
            .expect("integration id")
    }

    pub async fn integration(&self, id: i64) -> Value {
        expect(
            self.get(&format!("/api/v1/integrations/{id}")).await,
            StatusCode::OK,
        )
    }

    /// Creates an automation and returns its id.
    pub async fn create_automation(&self, entity: &str, body: Value) -> i64 {
        expect(
            self.post(&format!("/api/v1/entities/{entity}/automations"), body)
                .await,
            StatusCode::CREATED,
        )["id"]
            .as_i64()
            .expect("automation id")
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
        expect(
            self.get(&format!("/api/v1/automations/{id}/executions?limit=1000"))
                .await,
            StatusCode::OK,
        )["executions"]
            .as_array()
            .expect("executions")
            .clone()
    }

    /// One execution with its attempts.
    pub async fn execution(&self, id: i64) -> Value {
        expect(
            self.get(&format!("/api/v1/executions/{id}")).await,
            StatusCode::OK,
        )
    }

    /// Waits until automation `automation` has an execution with status `status`; returns
    /// the first such, with its attempts.
    pub async fn wait_execution(&self, automation: i64, status: &str, timeout: Duration) -> Value {
        let id = eventually(
            &format!("a {status} execution of automation {automation}"),
            timeout,
            || async move {
                self.executions(automation)
                    .await
                    .into_iter()
                    .find(|x| x["status"] == status)
                    .and_then(|x| x["id"].as_i64())
            },
        )
        .await;
        self.execution(id).await
    }

    /// Waits until automation `id` has `n` executions, all FINISHED; returns them.
    pub async fn finished_executions(&self, id: i64, n: usize, timeout: Duration) -> Vec<Value> {
        eventually(
            &format!("{n} FINISHED executions of automation {id}"),
            timeout,
            || async move {
                let xs = self.executions(id).await;
                (xs.len() == n && xs.iter().all(|x| x["status"] == "FINISHED")).then_some(xs)
            },
        )
        .await
    }
}

/// A NOTIFICATION automation `name` on CREATE_ARTIFACT in project `path` through
/// `integration`, with `extra` merged into the action (title, message, severity).
pub fn notify_on_create(name: &str, path: &str, integration: i64, extra: Value) -> Value {
    let mut action = json!({ "type": "NOTIFICATION", "integration_id": integration });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            action[k] = v;
        }
    }
    json!({
        "name": name,
        "scope": { "type": "PROJECT", "path": path },
        "event": { "type": "CREATE_ARTIFACT" },
        "action": action,
        "rate_limit_per_minute": 1000
    })
}
