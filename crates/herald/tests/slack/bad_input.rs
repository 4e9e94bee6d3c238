//! Bad Slack integrations and NOTIFICATION actions are refused with a 4xx that names the
//! problem (the field in `path`, the value in the message), and nothing is stored.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::{FakeSlack, HOOK_PATH};
use crate::helpers::*;

const E: &str = "acme";

/// Asserts a 4xx error `{"error": {"code", "message", "path"?}}` whose path is `path` (when
/// given) and whose message names every one of `words`.
#[track_caller]
fn assert_refused(
    what: &str,
    (status, body): (StatusCode, Value),
    path: Option<&str>,
    words: &[&str],
) {
    assert!(
        status.is_client_error(),
        "{what}: expected a 4xx, got {status}: {body}"
    );
    let err = &body["error"];
    assert!(err["code"].is_string(), "{what}: {body}");
    if let Some(p) = path {
        assert_eq!(err["path"], p, "{what}: {body}");
    }
    let message = err["message"].as_str().unwrap_or_default();
    for w in words {
        assert!(
            message.contains(w),
            "{what}: the message {message:?} does not name {w:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_slack_integrations_are_refused_and_nothing_is_stored() {
    let slack = FakeSlack::start().await;
    let app = spawn_app(&slack, Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    api.put_secret(E, "HOOK", &slack.hook_url(HOOK_PATH)).await;
    api.put_secret(E, "BOT", "xoxb-bad-input").await;
    let url = format!("/api/v1/entities/{E}/integrations");

    let cases: Vec<(&str, Value, Option<&str>, &[&str])> = vec![
        (
            "no channel_name",
            json!({ "kind": "slack", "name": "s", "webhook_url_secret": "HOOK" }),
            Some("channel_name"),
            &["channel_name"],
        ),
        (
            "empty channel_name",
            json!({ "kind": "slack", "name": "s", "channel_name": "#", "webhook_url_secret": "HOOK" }),
            Some("channel_name"),
            &["channel_name"],
        ),
        (
            "both a webhook URL and a bot token",
            json!({ "kind": "slack", "name": "s", "channel_name": "c", "webhook_url_secret": "HOOK",
                    "bot_token_secret": "BOT", "channel_id": "C0123" }),
            Some("webhook_url_secret"),
            &["webhook_url_secret", "bot_token_secret"],
        ),
        (
            "neither a webhook URL nor a bot token",
            json!({ "kind": "slack", "name": "s", "channel_name": "c" }),
            Some("webhook_url_secret"),
            &["webhook_url_secret", "bot_token_secret"],
        ),
        (
            "a bot token without channel_id",
            json!({ "kind": "slack", "name": "s", "channel_name": "c", "bot_token_secret": "BOT" }),
            Some("channel_id"),
            &["channel_id"],
        ),
        (
            "a channel_id that is no id",
            json!({ "kind": "slack", "name": "s", "channel_name": "c", "bot_token_secret": "BOT",
                    "channel_id": "#general x" }),
            Some("channel_id"),
            &["channel_id"],
        ),
        (
            "an unknown webhook URL secret",
            json!({ "kind": "slack", "name": "s", "channel_name": "c", "webhook_url_secret": "NO_SUCH_HOOK" }),
            None,
            &["NO_SUCH_HOOK"],
        ),
        (
            "an unknown bot token secret",
            json!({ "kind": "slack", "name": "s", "channel_name": "c", "bot_token_secret": "NO_SUCH_BOT",
                    "channel_id": "C0123" }),
            None,
            &["NO_SUCH_BOT"],
        ),
        (
            "a secret name that cannot exist",
            json!({ "kind": "slack", "name": "s", "channel_name": "c", "webhook_url_secret": "bad-name" }),
            Some("webhook_url_secret"),
            &[],
        ),
        (
            "a url on a Slack integration",
            json!({ "kind": "slack", "name": "s", "channel_name": "c", "webhook_url_secret": "HOOK",
                    "url": "https://hooks.example/x" }),
            Some("url"),
            &["url"],
        ),
        (
            "Slack fields on a webhook",
            json!({ "kind": "webhook", "name": "w", "url": "https://hooks.example/x",
                    "webhook_url_secret": "HOOK" }),
            Some("webhook_url_secret"),
            &["Slack"],
        ),
        (
            "an unknown kind",
            json!({ "kind": "teams", "name": "s", "channel_name": "c", "webhook_url_secret": "HOOK" }),
            None,
            &["teams"],
        ),
    ];
    for (what, body, path, words) in cases {
        assert_refused(what, api.post(&url, body).await, path, words);
    }
    let listed = expect(api.get(&url).await, StatusCode::OK);
    assert_eq!(listed, json!([]), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notification_actions_are_refused_and_nothing_is_stored() {
    let slack = FakeSlack::start().await;
    let app = spawn_app(&slack, Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    api.create_project(E, "p").await;
    let slack_id = api
        .webhook_integration(E, "slack", "alerts", "HOOK", &slack.hook_url(HOOK_PATH))
        .await;
    let webhook_id = api
        .create_integration_from(
            E,
            json!({ "kind": "webhook", "name": "ci", "url": slack.hook_url("/ci") }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    api.create_entity("other", "team").await;
    let foreign = api
        .webhook_integration(
            "other",
            "theirs",
            "x",
            "THEIR_HOOK",
            &slack.hook_url(HOOK_PATH),
        )
        .await;

    let notify = |action: Value| {
        json!({
            "name": "bad",
            "scope": { "type": "PROJECT", "path": "acme/p" },
            "event": { "type": "CREATE_ARTIFACT" },
            "action": action
        })
    };
    let long_title = "t".repeat(1001);
    let cases: Vec<(&str, Value, Option<&str>, Vec<&str>)> = vec![
        (
            "NOTIFICATION through a webhook integration",
            notify(json!({ "type": "NOTIFICATION", "integration_id": webhook_id })),
            Some("action.integration_id"),
            vec!["NOTIFICATION", "Slack"],
        ),
        (
            "GENERIC_WEBHOOK through a Slack integration",
            notify(json!({ "type": "GENERIC_WEBHOOK", "integration_id": slack_id, "payload": {} })),
            Some("action.integration_id"),
            vec!["Slack", "GENERIC_WEBHOOK"],
        ),
        (
            "an unknown severity",
            notify(
                json!({ "type": "NOTIFICATION", "integration_id": slack_id, "severity": "CRITICAL" }),
            ),
            Some("action.severity"),
            vec!["CRITICAL", "INFO, WARN or ERROR"],
        ),
        (
            "an unknown variable in the title",
            notify(json!({ "type": "NOTIFICATION", "integration_id": slack_id,
                           "title": "New ${artifact_version_string} by ${no_such_variable}" })),
            Some("action.title"),
            vec!["no_such_variable"],
        ),
        (
            "an unknown variable in the message",
            notify(json!({ "type": "NOTIFICATION", "integration_id": slack_id,
                           "message": "hello ${also_not_a_variable}" })),
            Some("action.message"),
            vec!["also_not_a_variable"],
        ),
        (
            "a secret in the message",
            notify(json!({ "type": "NOTIFICATION", "integration_id": slack_id,
                           "message": "the hook is ${HOOK}" })),
            Some("action.message"),
            vec!["HOOK"],
        ),
        (
            "a title over 1,000 characters",
            notify(
                json!({ "type": "NOTIFICATION", "integration_id": slack_id, "title": long_title }),
            ),
            Some("action.title"),
            vec!["1000"],
        ),
        (
            "an integration that does not exist",
            notify(json!({ "type": "NOTIFICATION", "integration_id": 99999 })),
            None,
            vec!["99999"],
        ),
        (
            "another team's integration",
            notify(json!({ "type": "NOTIFICATION", "integration_id": foreign })),
            None,
            vec![],
        ),
        (
            "no integration",
            notify(json!({ "type": "NOTIFICATION", "title": "x" })),
            None,
            vec!["integration_id"],
        ),
        (
            "a field NOTIFICATION does not have",
            notify(json!({ "type": "NOTIFICATION", "integration_id": slack_id, "payload": {} })),
            None,
            vec!["payload"],
        ),
    ];
    let url = format!("/api/v1/entities/{E}/automations");
    for (what, body, path, words) in cases {
        assert_refused(what, api.post(&url, body).await, path, &words);
    }
    let listed = expect(api.get(&url).await, StatusCode::OK);
    assert_eq!(listed, json!([]), "nothing stored");

    // The same action with a known variable and a valid severity is taken.
    let ok = api
        .create_automation_id(
            E,
            notify(json!({ "type": "NOTIFICATION", "integration_id": slack_id,
                           "title": "${alias} on ${artifact_collection_name}", "severity": "warn" })),
        )
        .await;
    let saved = expect(
        api.get(&format!("/api/v1/automations/{ok}")).await,
        StatusCode::OK,
    );
    assert_eq!(saved["action"]["severity"], "WARN", "{saved}");
}
