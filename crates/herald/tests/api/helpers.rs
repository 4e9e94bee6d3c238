//! The harness every test uses: [`spawn_app`] runs the real server on an ephemeral port with a
//! fresh data directory (and so a fresh SQLite database), and [`Api`] is a small JSON client
//! acting as one API key. Every request made through it fails the test on a 5xx answer or a
//! non-JSON body, so "no request may produce a 500" holds for the whole suite.

use herald::app::App;
use herald::config::{Config, Overrides};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use herald::client::seg;

/// The bootstrap admin's key, set through `HERALD_BOOTSTRAP_API_KEY`.
pub const ADMIN_KEY: &str = "herald-test-bootstrap-admin-key-00000000";

/// A running server. Dropping it stops the server; the data directory lives as long as it does.
pub struct TestApp {
    pub base: String,
    /// The bootstrap server admin `admin`.
    pub admin: Api,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _data: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the real app on 127.0.0.1:0 with a fresh temporary data directory.
pub async fn spawn_app() -> TestApp {
    assert_eq!(ADMIN_KEY.len(), 40);
    let data = tempfile::tempdir().expect("creating a temporary data directory");
    let overrides = Overrides {
        data_dir: Some(data.path().join("data")),
        listen: Some("127.0.0.1:0".to_string()),
        database_url: herald::testing::database_url_for(data.path()).await,
        ..Default::default()
    };
    // A fake environment: only the bootstrap key, nothing from the real process environment.
    let env = |k: &str| (k == "HERALD_BOOTSTRAP_API_KEY").then(|| ADMIN_KEY.to_string());
    let config = Config::load_from(&overrides, env).expect("test configuration loads");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding an ephemeral port");
    let app = App::build_with_listener(&config, listener)
        .await
        .expect("the app builds");
    assert_eq!(app.bootstrap_admin_key(), Some(ADMIN_KEY));
    let address = app.address();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let base = format!("http://{address}");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("reqwest client");
    let admin = Api {
        base: base.clone(),
        http: http.clone(),
        key: Some(ADMIN_KEY.to_string()),
    };
    TestApp {
        base,
        admin,
        http,
        shutdown,
        _data: data,
    }
}

impl TestApp {
    /// A client that sends no credentials.
    pub fn anonymous(&self) -> Api {
        self.with_key(None)
    }

    /// A client that sends `key` as a bearer token.
    pub fn with_key(&self, key: Option<&str>) -> Api {
        Api {
            base: self.base.clone(),
            http: self.http.clone(),
            key: key.map(str::to_string),
        }
    }

    /// Creates user `username` as the admin and returns a client acting as them.
    pub async fn create_user(&self, username: &str) -> Api {
        let created = expect(
            self.admin
                .post("/api/v1/users", json!({ "username": username }))
                .await,
            StatusCode::CREATED,
        );
        assert_eq!(created["user"]["username"], username);
        let key = created["api_key"].as_str().expect("api_key is a string");
        self.with_key(Some(key))
    }
}

/// A JSON client acting as one API key (or none).
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    key: Option<String>,
}

impl Api {
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// A request to `path` (starting with `/`) with this client's credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// The same request without credentials.
    pub fn unauthenticated(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request and returns the status and the JSON body (`Null` when empty). Panics on a
    /// 5xx answer and on a non-empty body that is not JSON.
    pub async fn send(&self, rb: RequestBuilder) -> (StatusCode, Value) {
        let req = rb.build().expect("a well-formed request");
        let what = format!("{} {}", req.method(), req.url().path());
        let res = self.http.execute(req).await.unwrap_or_else(|e| {
            panic!("{what}: request failed: {e}");
        });
        let status = res.status();
        let content_type = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !status.is_server_error(),
            "{what} answered {status}: {text}"
        );
        if bytes.is_empty() {
            return (status, Value::Null);
        }
        assert!(
            content_type.starts_with("application/json"),
            "{what} answered {status} with content-type {content_type:?}: {text}"
        );
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what} answered {status} with invalid JSON ({e}): {text}"));
        (status, body)
    }

    /// Sends `method` to `path` with `body` as JSON, or with no body when it is `Null`.
    pub async fn call(&self, method: &Method, path: &str, body: &Value) -> (StatusCode, Value) {
        let rb = self.request(method.clone(), path);
        let rb = if body.is_null() { rb } else { rb.json(body) };
        self.send(rb).await
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

    /// POSTs `raw` bytes as JSON (for malformed bodies).
    pub async fn post_raw(&self, path: &str, raw: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        self.send(
            self.request(Method::POST, path)
                .header(CONTENT_TYPE, "application/json")
                .body(raw),
        )
        .await
    }

    pub async fn create_team(&self, name: &str) -> Value {
        self.create_entity(name, "team").await
    }

    pub async fn create_org(&self, name: &str) -> Value {
        self.create_entity(name, "organization").await
    }

    async fn create_entity(&self, name: &str, kind: &str) -> Value {
        let e = expect(
            self.post("/api/v1/entities", json!({ "name": name, "kind": kind }))
                .await,
            StatusCode::CREATED,
        );
        assert_eq!(e["name"], name);
        assert_eq!(e["kind"], kind);
        e
    }

    pub async fn create_project(&self, entity: &str, name: &str) -> Value {
        expect(
            self.post(&projects(entity), json!({ "name": name })).await,
            StatusCode::CREATED,
        )
    }

    /// Creates registry `name` in organization `org` (the project `wandb-registry-<name>`).
    pub async fn create_registry(&self, org: &str, name: &str) -> Value {
        expect(
            self.post(
                &format!("/api/v1/entities/{org}/registries"),
                json!({ "name": name }),
            )
            .await,
            StatusCode::CREATED,
        )
    }

    /// Creates the next version of `collection` (type `model`) with extra body fields.
    pub async fn create_version(&self, e: &str, p: &str, collection: &str, extra: Value) -> Value {
        let mut body = json!({ "collection": collection, "type": "model" });
        if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(x.clone());
        }
        expect(
            self.post(&format!("{}/artifacts", project(e, p)), body)
                .await,
            StatusCode::CREATED,
        )
    }

    pub async fn create_run(&self, e: &str, p: &str, body: Value) -> Value {
        expect(
            self.post(&format!("{}/runs", project(e, p)), body).await,
            StatusCode::CREATED,
        )
    }

    pub async fn set_member(&self, entity: &str, username: &str, role: &str) -> Value {
        expect(
            self.put(
                &format!("/api/v1/entities/{entity}/members/{username}"),
                json!({ "role": role }),
            )
            .await,
            StatusCode::OK,
        )
    }

    /// Every event of `entity`, oldest first (one page of up to 1000).
    pub async fn events(&self, entity: &str) -> Vec<Value> {
        let page = expect(
            self.get(&format!("/api/v1/entities/{entity}/events?limit=1000"))
                .await,
            StatusCode::OK,
        );
        assert_eq!(page["next_cursor"], Value::Null);
        page["events"].as_array().expect("events array").clone()
    }
}

/// `/api/v1/entities/{e}/projects`.
pub fn projects(e: &str) -> String {
    format!("/api/v1/entities/{e}/projects")
}

/// `/api/v1/entities/{e}/projects/{p}`.
pub fn project(e: &str, p: &str) -> String {
    format!("/api/v1/entities/{e}/projects/{p}")
}

/// `/api/v1/entities/{e}/projects/{p}/artifacts/{c}`.
pub fn collection(e: &str, p: &str, c: &str) -> String {
    format!("/api/v1/entities/{e}/projects/{p}/artifacts/{c}")
}

/// `/api/v1/entities/{e}/projects/{p}/artifacts/{c}/versions/{v}`.
pub fn version(e: &str, p: &str, c: &str, v: &str) -> String {
    format!("{}/versions/{}", collection(e, p, c), seg(v))
}

/// `/api/v1/entities/{e}/projects/{p}/runs/{r}`.
pub fn run(e: &str, p: &str, r: &str) -> String {
    format!("{}/runs/{r}", project(e, p))
}

/// Asserts the status and returns the body.
#[track_caller]
pub fn expect((status, body): (StatusCode, Value), want: StatusCode) -> Value {
    assert_eq!(status, want, "unexpected status; body: {body}");
    body
}

/// Asserts a JSON error `{"error": {"code", "message"}}` with this status and code, and returns
/// the message.
#[track_caller]
pub fn expect_error(answer: (StatusCode, Value), want: StatusCode, code: &str) -> String {
    let (status, body) = answer;
    assert_eq!(status, want, "unexpected status; body: {body}");
    let error = body
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(
        error.get("code"),
        Some(&json!(code)),
        "error code in {body}"
    );
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no error message in {body}"));
    assert!(!message.is_empty(), "empty error message in {body}");
    message.to_string()
}

/// The `error.path` of an error body, if any.
pub fn error_path(body: &Value) -> Option<&str> {
    body["error"]["path"].as_str()
}

/// The events of one type.
pub fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

/// The `type` of each event, in order.
pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("event type").to_string())
        .collect()
}

/// A team `ml` administered by `alice` with a project `vision`, and an organization `acme`
/// (also alice's) with the registry `wandb-registry-model`.
pub struct Catalog {
    pub app: TestApp,
    pub alice: Api,
}

pub async fn catalog() -> Catalog {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    alice.create_team("ml").await;
    alice.create_project("ml", "vision").await;
    alice.create_org("acme").await;
    alice.create_registry("acme", "model").await;
    Catalog { app, alice }
}
