//! `POST /api/v1/integrations/{id}/test` on a Slack integration posts a test message (or the
//! caller's payload) through it now and returns Slack's answer, success or refusal.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::{Endpoint, FakeSlack, Reply, HOOK_PATH};
use crate::helpers::*;

const E: &str = "acme";
const TOKEN: &str = "xoxb-test-endpoint-9f8e7d6c";
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn test_call(api: &Api, id: i64, body: Option<Value>) -> Value {
    let rb = api.request(
        reqwest::Method::POST,
        &format!("/api/v1/integrations/{id}/test"),
    );
    let rb = match body {
        Some(b) => rb.json(&b),
        None => rb,
    };
    expect(api.send(rb).await, StatusCode::OK)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_an_integration_posts_now_and_returns_slacks_answer() {
    let slack = FakeSlack::start().await;
    slack.add_bot(TOKEN, "CTEST");
    let app = spawn_app(&slack, Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    let hook = api
        .webhook_integration(E, "hook", "#alerts", "HOOK", &slack.hook_url(HOOK_PATH))
        .await;
    let bot = api
        .bot_integration(E, "bot", "ml-ops", "BOT", TOKEN, "CTEST")
        .await;

    // Incoming webhook: Slack answers `ok`.
    let out = test_call(api, hook, None).await;
    let got = slack.wait_for(HOOK_PATH, 1, WAIT).await.remove(0);
    assert_eq!(got.endpoint, Endpoint::Webhook);
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["status_code"], 200);
    assert_eq!(out["error_class"], Value::Null);
    assert_eq!(out["response"], "ok");
    assert_eq!(
        out["request_body"], got.body,
        "the answer shows what was sent"
    );
    assert_eq!(
        got.body["blocks"][0]["text"]["text"],
        "✅ herald test message"
    );
    assert!(
        got.body["text"].as_str().unwrap().contains("#alerts"),
        "{}",
        got.raw
    );

    // Bot token: chat.postMessage's JSON answer comes back as it was.
    let out = test_call(api, bot, Some(json!({}))).await;
    let got = slack.wait_for("CTEST", 1, WAIT).await.remove(0);
    assert_eq!(got.endpoint, Endpoint::PostMessage);
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(got.body["channel"], "CTEST");
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["status_code"], 200);
    assert_eq!(out["response"], got.answer);
    let answer: Value = serde_json::from_str(out["response"].as_str().unwrap()).unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["channel"], "CTEST");
    assert!(answer["ts"].is_string());

    // The caller's own message.
    let custom = json!({ "text": "custom hello", "blocks": [
        { "type": "section", "text": { "type": "mrkdwn", "text": "*custom* hello" } }
    ] });
    let out = test_call(api, bot, Some(json!({ "payload": custom }))).await;
    assert_eq!(out["ok"], true, "{out}");
    let got = slack.wait_for("CTEST", 2, WAIT).await.remove(1);
    let mut want = custom.clone();
    want["channel"] = json!("CTEST");
    assert_eq!(got.body, want);

    // Refusals come back with Slack's code.
    slack.queue("CTEST", vec![Reply::ApiError("invalid_auth")]);
    let out = test_call(api, bot, None).await;
    assert_eq!(out["ok"], false, "{out}");
    assert_eq!(out["status_code"], 200);
    assert_eq!(out["error_class"], "slack_error");
    assert!(
        out["error"].as_str().unwrap().contains("invalid_auth"),
        "{out}"
    );
    let answer: Value = serde_json::from_str(out["response"].as_str().unwrap()).unwrap();
    assert_eq!(answer, json!({ "ok": false, "error": "invalid_auth" }));

    slack.queue(HOOK_PATH, vec![Reply::Plain(404, "no_service")]);
    let out = test_call(api, hook, None).await;
    assert_eq!(out["ok"], false, "{out}");
    assert_eq!(out["status_code"], 404);
    assert_eq!(slack.received().last().unwrap().status, 404);
    assert_eq!(out["error_class"], "slack_error");
    assert!(
        out["error"].as_str().unwrap().contains("no_service"),
        "{out}"
    );
    assert_eq!(out["response"], "no_service");

    assert_eq!(slack.received().len(), 5, "one post per test call");
    slack.assert_all_valid();
}
