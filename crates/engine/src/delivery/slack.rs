//! Slack delivery: the message (rendered from the execution's variables), where it goes (an
//! incoming webhook, or `chat.postMessage` with a bot token), pacing at one message per second
//! per channel, and what Slack's answers mean (`ok: false` is a failure; some errors are
//! permanent and disable the integration).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_domain::automation::Integration;
use parking_lot::Mutex;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use super::http::{ErrorClass, Observed, Outgoing};

/// Slack error codes (and HTTP statuses) that retrying cannot fix: the execution fails and the
/// integration is disabled with the reason shown.
pub const PERMANENT_ERRORS: &[&str] = &[
    "channel_not_found",
    "channel_is_archived",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "no_service",
    "account_inactive",
    "token_revoked",
    "no_permission",
    "not_in_channel",
];

/// How herald talks to Slack.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// Where `chat.postMessage` lives (`https://slack.com`; tests point it at a local fake).
    pub base_url: String,
    /// The herald server's public base URL, for links in messages.
    pub public_url: Option<String>,
    /// Least time between two messages to one channel.
    pub min_interval: Duration,
}

impl Default for SlackSettings {
    fn default() -> Self {
        Self {
            base_url: "https://slack.com".into(),
            public_url: None,
            min_interval: Duration::from_secs(1),
        }
    }
}

/// Spaces messages to each channel at least `min_interval` apart; other channels are never held.
#[derive(Default)]
pub struct Pacer {
    channels: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl Pacer {
    /// Runs `send` when the channel's last message is at least `interval` old, holding the channel
    /// until it completes.
    pub async fn paced<F: std::future::Future>(
        &self,
        channel: &str,
        interval: Duration,
        send: F,
    ) -> F::Output {
        let slot = self
            .channels
            .lock()
            .entry(channel.to_string())
            .or_default()
            .clone();
        let mut last = slot.lock().await;
        if let Some(t) = *last {
            tokio::time::sleep_until((t + interval).into()).await;
        }
        let out = send.await;
        *last = Some(Instant::now());
        out
    }
}

/// The opened credential of a Slack integration.
pub enum SlackCredential {
    WebhookUrl(String),
    BotToken(String),
}

/// The request posting `message` (a Block Kit body) through `integration`.
pub fn request(
    settings: &SlackSettings,
    integration: &Integration,
    credential: &SlackCredential,
    message: &Value,
) -> Outgoing {
    let json = (CONTENT_TYPE, "application/json; charset=utf-8".to_string());
    match credential {
        SlackCredential::WebhookUrl(url) => Outgoing {
            url: url.clone(),
            headers: vec![json],
            body: serde_json::to_vec(message).unwrap_or_default(),
        },
        SlackCredential::BotToken(token) => {
            let mut body = message.clone();
            let channel = integration
                .slack
                .as_ref()
                .and_then(|s| s.channel_id.clone())
                .unwrap_or_default();
            if let Value::Object(m) = &mut body {
                m.insert("channel".into(), Value::String(channel));
            }
            Outgoing {
                url: format!(
                    "{}/api/chat.postMessage",
                    settings.base_url.trim_end_matches('/')
                ),
                headers: vec![json, (AUTHORIZATION, format!("Bearer {token}"))],
                body: serde_json::to_vec(&body).unwrap_or_default(),
            }
        }
    }
}

/// Slack's verdict on an answer: `Some(code)` when it refused the message. `chat.postMessage`
/// answers 200 with `{"ok": false, "error": code}`; incoming webhooks answer a non-2xx status
/// with the code as plain text.
pub fn slack_error(observed: &Observed) -> Option<String> {
    let body = observed.response.as_deref().unwrap_or("").trim();
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if v.get("ok") == Some(&Value::Bool(false)) {
            return Some(v["error"].as_str().unwrap_or("unknown_error").to_string());
        }
    }
    match observed.status {
        Some(s)
            if !(200..300).contains(&s)
                && !body.is_empty()
                && body.len() <= 100
                && !body.contains(' ') =>
        {
            Some(body.to_string())
        }
        _ => None,
    }
}

/// Marks an answer Slack refused as a failure, naming Slack's code.
pub fn as_failure(mut observed: Observed, code: &str) -> Observed {
    if observed.error_class.is_none() || observed.error_class == Some(ErrorClass::HttpStatus) {
        observed.error_class = Some(ErrorClass::SlackError);
    }
    observed.error = Some(match observed.status {
        Some(s) => format!("Slack answered {code} (HTTP {s})"),
        None => format!("Slack answered {code}"),
    });
    observed
}

/// Whether a refusal is permanent.
pub fn is_permanent(code: Option<&str>, status: Option<u16>) -> bool {
    code.is_some_and(|c| PERMANENT_ERRORS.contains(&c)) || matches!(status, Some(404) | Some(410))
}

/// The test message for `POST /integrations/{id}/test`.
pub fn test_message(integration: &Integration) -> Value {
    let channel = integration
        .slack
        .as_ref()
        .map(|s| s.channel_name.as_str())
        .unwrap_or("");
    herald_domain::slack::render_test(integration.name.as_str(), channel)
}

/// Opens the secret a Slack integration posts with.
pub async fn open_credential(
    d: &super::Deliverer<'_>,
    integration: &Integration,
) -> Result<SlackCredential, String> {
    let target = integration
        .slack
        .as_ref()
        .ok_or("the integration has no Slack settings")?;
    let (name, webhook) = match (&target.webhook_url_secret, &target.bot_token_secret) {
        (Some(n), _) => (n, true),
        (None, Some(n)) => (n, false),
        (None, None) => {
            return Err("the Slack integration names no webhook URL or bot token secret".into())
        }
    };
    let value = super::open_secret(d, integration.entity_id, name.as_str()).await?;
    Ok(if webhook {
        SlackCredential::WebhookUrl(value)
    } else {
        SlackCredential::BotToken(value)
    })
}

/// The Block Kit message of a NOTIFICATION execution, from its action and the variables the
/// matcher took from the event.
pub fn message(
    action: &herald_domain::automation::Action,
    variables: &Value,
    settings: &SlackSettings,
) -> Value {
    use herald_domain::automation::Action;
    use herald_domain::event::EventType;
    use herald_domain::slack::{render, MessageInput};
    use herald_domain::template::Template;

    let Action::Notification {
        title,
        message,
        severity,
        ..
    } = action
    else {
        return Value::Null;
    };
    let var = |k: &str| {
        variables
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let lookup = |k: &str| var(k).map(str::to_string);
    let render_text = |t: &Option<String>| {
        t.as_ref()
            .and_then(|t| Template::parse(&Value::String(t.clone())).ok())
            .and_then(|tpl| match tpl.render(&lookup) {
                Value::String(s) if !s.is_empty() => Some(s),
                _ => None,
            })
    };
    let (title, body) = (render_text(title), render_text(message));
    let event_type = var("event_type")
        .and_then(|t| EventType::parse(t).ok())
        .unwrap_or(EventType::CreateArtifact);
    let link = link(settings, variables, event_type);
    let mut input = MessageInput::new(
        event_type,
        var("automation_name").unwrap_or(""),
        var("entity_name").unwrap_or(""),
    );
    input.title = title.as_deref();
    input.message = body.as_deref();
    input.severity = *severity;
    input.project = var("project_name");
    input.author = var("event_author");
    input.link = link.as_deref();
    input.collection = var("artifact_collection_name");
    input.artifact_type = var("artifact_type");
    input.version = var("artifact_version_string");
    input.alias = var("alias");
    input.tag = var("tag");
    input.run_id = var("run_id");
    input.run_name = var("run_name");
    input.run_state = var("run_status");
    input.metric_name = var("metric_name");
    input.condition = var("metric_filter");
    input.metric_value = var("metric_value");
    input.metric_values = var("metric_values");
    render(&input)
}

/// A link to what the event is about, on the herald server's public URL.
fn link(
    settings: &SlackSettings,
    v: &Value,
    event_type: herald_domain::event::EventType,
) -> Option<String> {
    use crate::variables::Linked;
    use herald_domain::slack::EventFamily;
    let base = settings.public_url.as_deref()?;
    let var = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (entity, project) = (var("entity_name")?, var("project_name")?);
    let what = match EventFamily::of(event_type) {
        EventFamily::Artifact => Linked::Version {
            collection: var("artifact_collection_name")?,
            version: var("artifact_version_string")
                .and_then(|s| s.rsplit_once(':'))
                .map(|(_, version)| version),
        },
        EventFamily::RunMetric | EventFamily::RunState => Linked::Run(var("run_id")?),
    };
    Some(crate::variables::link(base, entity, project, what))
}

pub use herald_domain::names::url_segment as seg;
