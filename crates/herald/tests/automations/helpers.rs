//! The harness (mostly `tests/support`, shared with the other suites): [`spawn_app`] runs the
//! real server in process on 127.0.0.1:0 with a fresh data directory and a delivery
//! configuration chosen per test; [`ChildServer`] runs the real `herald serve` binary;
//! [`Receiver`] is a real HTTP server on loopback that records every request and answers as
//! each test tells it to (a status, `Retry-After`, a redirect, a delay, a dropped connection, a
//! 100 MB body); [`Api`] is a small JSON client.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub use crate::support::receiver::*;
pub use crate::support::*;

/// Values of the secrets every [`team`] stores: an access token and a Standard Webhooks
/// signing secret (`whsec_` + base64 of 24 bytes).
pub const TOKEN_VALUE: &str = "tok_7f3c91d2e8a4b6c0d5e2f1a9b8c7d6e5";
pub const SIGNING_VALUE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const TOKEN_SECRET: &str = "HOOK_TOKEN";
pub const SIGNING_SECRET: &str = "HOOK_SIGNING";

impl Default for Options {
    fn default() -> Self {
        Self {
            allowed_destinations: Some("127.0.0.0/8".into()),
            timeout: "2s".into(),
            retry_schedule: vec!["200ms".into(), "400ms".into()],
            jitter: 0.0,
            per_destination: 8,
            max_in_flight: 64,
            min_interval: None,
        }
    }
}

/// Starts the real app on 127.0.0.1:0 with a fresh data directory and `options`.
pub async fn spawn_app(options: Options) -> TestApp {
    start_app(Some(options.toml()), options.env()).await
}

/// Waits until the running matcher has matched every event written so far. It writes a probe
/// event in a separate entity `probe`, watched by a NO_OP automation, and waits for its
/// execution: the matcher handles events in order, so everything before it is matched too.
pub async fn sync_matcher(api: &Api) {
    sync_matcher_on(
        api,
        json!({ "type": "CREATE_ARTIFACT" }),
        api.create_version("probe", "p", "c"),
    )
    .await;
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
        ChildServer::spawn(data_dir, ADMIN_KEY, |cmd| {
            cmd.arg("--config").arg(&config_file);
            cmd.envs(options.env());
            cmd.envs(extra_env.iter().copied());
            if let Some(path) = stderr {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("opening the log file");
                cmd.stderr(f);
            }
        })
        .await
    }
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
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let ts_n: i64 = ts.parse().expect("webhook-timestamp is an integer");
    assert!(
        (Utc::now().timestamp() - ts_n).abs() < 300,
        "webhook-timestamp {ts} is not current"
    );
    let want = standard_signature(r, signing_secret);
    let header = r.header("webhook-signature").expect("webhook-signature");
    assert!(
        header.split(' ').any(|s| s == want),
        "webhook-signature {header:?} does not contain {want:?}"
    );
}

/// The Standard Webhooks signature of `r` under `signing_secret` (a `whsec_` secret),
/// computed here from the spec: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn standard_signature(r: &Received, signing_secret: &str) -> String {
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
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
    format!("v1,{}", hmac_b64(&key, &signed))
}
