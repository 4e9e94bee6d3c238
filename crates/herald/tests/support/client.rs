//! [`Api`]: a small JSON client acting as one API key (or none). Every request made through it
//! fails the test on a 5xx answer, and [`Api::send`] also on a non-empty body that is not JSON,
//! so "no request may produce a 500" holds for every suite.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use super::{expect, http_client};

/// A JSON client acting as one API key (or none).
#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    key: Option<String>,
}

impl Api {
    /// A client of the server at `base` acting as `key`, with its own HTTP client.
    pub fn new(base: &str, key: &str) -> Self {
        Self::with_client(base, http_client(), Some(key))
    }

    /// A client of the server at `base` sending `key` (if any) through `http`.
    pub fn with_client(base: &str, http: reqwest::Client, key: Option<&str>) -> Self {
        Self {
            base: base.to_string(),
            http,
            key: key.map(str::to_string),
        }
    }

    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// A request to `path` (starting with `/`) with this client's credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.unauthenticated(method, path);
        match &self.key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// The same request without credentials.
    pub fn unauthenticated(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request; returns what it was (`METHOD /path`), the status, the content type and
    /// the body. Panics when the request fails, on a 5xx answer, and on an unreadable body.
    async fn exchange(&self, rb: RequestBuilder) -> (String, StatusCode, String, Vec<u8>) {
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
        assert!(
            !status.is_server_error(),
            "{what} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        (what, status, content_type, bytes.to_vec())
    }

    /// Sends a request; returns the status and the raw body. Panics on a 5xx.
    pub async fn send_raw(&self, rb: RequestBuilder) -> (StatusCode, String) {
        let (_, status, _, bytes) = self.exchange(rb).await;
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Sends a request and returns the status and the JSON body (`Null` when empty). Panics on a
    /// 5xx answer and on a non-empty body that is not JSON.
    pub async fn send(&self, rb: RequestBuilder) -> (StatusCode, Value) {
        let (what, status, content_type, bytes) = self.exchange(rb).await;
        if bytes.is_empty() {
            return (status, Value::Null);
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            content_type.starts_with("application/json"),
            "{what} answered {status} with content-type {content_type:?}: {text}"
        );
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what} answered {status} with invalid JSON ({e}): {text}"));
        (status, body)
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

    /// POSTs `raw` bytes as JSON (for malformed bodies, or what `serde_json::Value` cannot hold).
    pub async fn post_raw(&self, path: &str, raw: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        self.send(
            self.request(Method::POST, path)
                .header(CONTENT_TYPE, "application/json")
                .body(raw),
        )
        .await
    }

    /// GETs `path`, expecting 200, and returns the array under `field` of the answer.
    pub async fn get_list(&self, path: &str, field: &str) -> Vec<Value> {
        expect(self.get(path).await, StatusCode::OK)[field]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no {field} array"))
            .clone()
    }

    /// Creates user `username` (acting as an admin) and returns their API key.
    pub async fn create_user(&self, username: &str) -> String {
        let created = expect(
            self.post("/api/v1/users", json!({ "username": username }))
                .await,
            StatusCode::CREATED,
        );
        assert_eq!(created["user"]["username"], username);
        let key = created["api_key"].as_str().expect("api_key is a string");
        key.to_string()
    }

    /// Creates entity `name` of `kind` (`team` or `organization`) and returns it.
    pub async fn create_entity(&self, name: &str, kind: &str) -> Value {
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
            self.post(
                &format!("/api/v1/entities/{entity}/projects"),
                json!({ "name": name }),
            )
            .await,
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

    /// Stores secret `name` of `entity` (created or replaced).
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
    pub async fn create_integration_from(&self, entity: &str, body: Value) -> Value {
        expect(
            self.post(&format!("/api/v1/entities/{entity}/integrations"), body)
                .await,
            StatusCode::CREATED,
        )
    }

    /// Creates a webhook integration to `url`, with the secrets `token` (access token) and
    /// `signing` when given, and returns its id.
    pub async fn create_integration(
        &self,
        entity: &str,
        name: &str,
        url: &str,
        token: Option<&str>,
        signing: Option<&str>,
    ) -> i64 {
        let body = self
            .create_integration_from(
                entity,
                json!({ "kind": "webhook", "name": name, "url": url,
                        "access_token_secret": token, "signing_secret": signing }),
            )
            .await;
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

    /// Creates an automation and returns its id.
    pub async fn create_automation_id(&self, entity: &str, body: Value) -> i64 {
        self.create_automation(entity, body).await["id"]
            .as_i64()
            .expect("automation id")
    }

    /// Creates the next version of `collection` (type `model`) in `entity/project`.
    pub async fn create_version(&self, entity: &str, project: &str, collection: &str) -> Value {
        self.create_version_with(entity, project, collection, json!({}))
            .await
    }

    /// Creates the next version of `collection` (type `model`) in `entity/project`, with the
    /// fields of `extra` added to the body.
    pub async fn create_version_with(
        &self,
        entity: &str,
        project: &str,
        collection: &str,
        extra: Value,
    ) -> Value {
        let mut body = json!({ "collection": collection, "type": "model" });
        if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(x.clone());
        }
        expect(
            self.post(
                &format!("/api/v1/entities/{entity}/projects/{project}/artifacts"),
                body,
            )
            .await,
            StatusCode::CREATED,
        )
    }

    /// Starts a run in `entity/project`; `body` is `{id?, display_name?, tags?, config?}`.
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

    /// Every execution of automation `id`, oldest first.
    pub async fn executions(&self, id: i64) -> Vec<Value> {
        self.get_list(
            &format!("/api/v1/automations/{id}/executions?limit=1000"),
            "executions",
        )
        .await
    }

    /// One execution with its attempts.
    pub async fn execution(&self, id: i64) -> Value {
        expect(
            self.get(&format!("/api/v1/executions/{id}")).await,
            StatusCode::OK,
        )
    }
}
