//! The harness (mostly `tests/support`, shared with the other suites): [`spawn_app`] runs the
//! real server in process on 127.0.0.1:0 with a fresh data directory, a config file
//! (`[delivery]`, `[slack]`) and an environment pointing Slack at a
//! [`FakeSlack`](crate::fake_slack::FakeSlack); [`Api`] is a small JSON client; the fixtures
//! create Slack integrations (incoming webhook or bot token) and NOTIFICATION automations.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub use crate::support::*;

use crate::fake_slack::FakeSlack;

/// `HERALD_PUBLIC_URL` of every test server.
pub const PUBLIC_URL: &str = "https://herald.example.com/";

impl Default for Options {
    fn default() -> Self {
        Self {
            allowed_destinations: Some("127.0.0.0/8".into()),
            timeout: "5s".into(),
            retry_schedule: vec!["100ms".into(), "100ms".into()],
            jitter: 0.0,
            // The built-in defaults.
            per_destination: 8,
            max_in_flight: 64,
            min_interval: Some("20ms"),
        }
    }
}

/// Starts the real app (engine loops and all) on 127.0.0.1:0 with `options`, loopback
/// destinations allowed, `chat.postMessage` at `slack`, and links on [`PUBLIC_URL`].
pub async fn spawn_app(slack: &FakeSlack, options: Options) -> TestApp {
    let mut env = options.env();
    env.push(("HERALD_SLACK_BASE_URL".to_string(), slack.base_url()));
    env.push(("HERALD_PUBLIC_URL".to_string(), PUBLIC_URL.to_string()));
    start_app(Some(options.toml()), env).await
}

/// Parses an RFC 3339 time from the API.
#[track_caller]
pub fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v} is not a time")))
        .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// What only these tests need of the client.
impl Api {
    /// GET `path`; returns the status and the raw body.
    pub async fn get_raw(&self, path: &str) -> (StatusCode, String) {
        self.send_raw(self.request(Method::GET, path)).await
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
        self.create_integration_from(
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
        self.create_integration_from(
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
