//! What the API shows of an execution's request: the stored request holds only the body (the
//! URL may change, and the signature headers are made afresh for every attempt), so the method,
//! URL and headers are added as the execution's integration sends them now, secrets masked.

use herald_domain::automation::Integration;
use herald_domain::template::MASK;
use serde_json::Value;

use super::slack::SlackSettings;
use super::{webhook_id, WANDB_SIGNATURE, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};

/// An execution's stored request completed with where it goes and the headers it carries, as
/// `integration` sends it now, secrets masked: the stored request holds only the body, since
/// the URL may change and the signature headers are made afresh for every attempt.
pub fn shown_request(
    integration: Option<&Integration>,
    execution: herald_domain::ids::ExecutionId,
    stored: &Value,
    settings: &SlackSettings,
) -> Value {
    let mut shown = stored.clone();
    let Some(i) = integration else {
        return shown;
    };
    let mut headers = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        headers.insert(k.to_string(), Value::String(v));
    };
    let url = match &i.slack {
        Some(slack) => {
            put("content-type", "application/json; charset=utf-8".into());
            if slack.bot_token_secret.is_some() {
                put("authorization", format!("Bearer {MASK}"));
                format!(
                    "{}/api/chat.postMessage",
                    settings.base_url.trim_end_matches('/')
                )
            } else {
                // An incoming-webhook URL is itself the credential.
                MASK.to_string()
            }
        }
        None => {
            put("content-type", "application/json".into());
            if i.access_token_secret.is_some() {
                put("authorization", format!("Bearer {MASK}"));
            }
            put(WEBHOOK_ID, webhook_id(execution));
            if i.signing_secret.is_some() {
                put(WANDB_SIGNATURE, MASK.into());
                put(WEBHOOK_TIMESTAMP, "(the time of each attempt)".into());
                put(WEBHOOK_SIGNATURE, format!("v1,{MASK}"));
            }
            super::webhook_url(i)
        }
    };
    if let Value::Object(m) = &mut shown {
        m.insert("method".into(), Value::String("POST".into()));
        m.insert("url".into(), Value::String(url));
        m.insert("headers".into(), Value::Object(headers));
    }
    shown
}
