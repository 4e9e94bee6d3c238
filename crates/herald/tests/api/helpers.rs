//! The harness every test uses (mostly `tests/support`, shared with the other suites):
//! [`spawn_app`] runs the real server on an ephemeral port with a fresh data directory (and so
//! a fresh database), and [`Api`] is a small JSON client acting as one API key. Every request
//! made through it fails the test on a 5xx answer or a non-JSON body, so "no request may
//! produce a 500" holds for the whole suite.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub use crate::support::*;
pub use herald::client::seg;

/// Starts the real app on 127.0.0.1:0 with a fresh temporary data directory, no config file,
/// and only the bootstrap key in its environment.
pub async fn spawn_app() -> TestApp {
    assert_eq!(ADMIN_KEY.len(), 40);
    // A fake environment: only the bootstrap key, nothing from the real process environment.
    let env = vec![(
        "HERALD_BOOTSTRAP_API_KEY".to_string(),
        ADMIN_KEY.to_string(),
    )];
    start_app(None, env).await
}

/// What only these tests need of the client.
impl Api {
    /// Sends `method` to `path` with `body` as JSON, or with no body when it is `Null`.
    pub async fn call(&self, method: &Method, path: &str, body: &Value) -> (StatusCode, Value) {
        let rb = self.request(method.clone(), path);
        let rb = if body.is_null() { rb } else { rb.json(body) };
        self.send(rb).await
    }

    pub async fn create_team(&self, name: &str) -> Value {
        self.create_entity(name, "team").await
    }

    pub async fn create_org(&self, name: &str) -> Value {
        self.create_entity(name, "organization").await
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

/// alice, ADMIN of her team `acme`, with a RUNNING run `r1` in its project `vision`, for the
/// tests that post to a run's file_stream.
pub async fn alice_with_run(app: &TestApp) -> Api {
    let alice = app.create_user("alice").await;
    alice.create_team("acme").await;
    alice.create_project("acme", "vision").await;
    alice
        .create_run("acme", "vision", json!({"id": "r1"}))
        .await;
    alice
}

/// Runs GraphQL operation `name` of `query` with `variables`, as wandb-core sends them, and
/// returns the answer (HTTP 200, with `data` or `errors`).
pub async fn graphql_op(api: &Api, name: &str, query: &str, variables: Value) -> Value {
    let (status, body) = api
        .post(
            "/graphql",
            json!({"operationName": name, "query": query, "variables": variables}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// alice, ADMIN of organization acme-org (with the registry `model`) and of its team acme (with
/// the project vision).
pub async fn acme_in_org(app: &TestApp) -> Api {
    let alice = app.create_user("alice").await;
    alice.create_org("acme-org").await;
    expect(
        alice
            .post(
                "/api/v1/entities",
                json!({"name": "acme", "kind": "team", "organization": "acme-org"}),
            )
            .await,
        StatusCode::CREATED,
    );
    alice.create_project("acme", "vision").await;
    alice.create_registry("acme-org", "model").await;
    alice
}
