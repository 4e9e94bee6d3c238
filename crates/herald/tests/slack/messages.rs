//! One event of each family, through the real server to the fake Slack, checked field by
//! field: an artifact alias (incoming webhook), a run metric threshold (bot token and
//! `chat.postMessage`), a run that failed (incoming webhook). Header, message, facts, link
//! button (on `HERALD_PUBLIC_URL`, and the link works), context line, severity colour,
//! plain-text fallback, request shape, and what history recorded.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::{Endpoint, FakeSlack, SlackRequest, HOOK_PATH};
use crate::helpers::*;

const E: &str = "acme";
const P: &str = "vision";
const BOT_TOKEN: &str = "xoxb-1111-2222-msgsTokenAbcdef";
const CHANNEL_ID: &str = "C0123ABCDE";
const STATE_HOOK: &str = "/services/T/B/Y";
const WAIT: Duration = Duration::from_secs(10);

fn header_text(r: &SlackRequest) -> &str {
    let b = &r.body["blocks"][0];
    assert_eq!(b["type"], "header", "first block: {b}");
    assert_eq!(b["text"]["type"], "plain_text");
    b["text"]["text"].as_str().expect("header text")
}

fn attachment_block<'a>(r: &'a SlackRequest, ty: &str) -> &'a Value {
    r.body["attachments"][0]["blocks"]
        .as_array()
        .expect("attachment blocks")
        .iter()
        .find(|b| b["type"] == ty)
        .unwrap_or_else(|| panic!("no {ty} block in {}", r.raw))
}

fn field_texts(r: &SlackRequest) -> Vec<String> {
    attachment_block(r, "section")["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "mrkdwn");
            f["text"].as_str().unwrap().to_string()
        })
        .collect()
}

fn context_text(r: &SlackRequest) -> String {
    let els = attachment_block(r, "context")["elements"]
        .as_array()
        .expect("context elements")
        .clone();
    assert_eq!(els.len(), 1);
    els[0]["text"].as_str().unwrap().to_string()
}

/// The link button's text and URL.
fn button(r: &SlackRequest) -> (String, String) {
    let b = &attachment_block(r, "actions")["elements"][0];
    assert_eq!(b["type"], "button");
    assert_eq!(b["text"]["type"], "plain_text");
    (
        b["text"]["text"].as_str().unwrap().to_string(),
        b["url"].as_str().unwrap().to_string(),
    )
}

/// Follows a link on `PUBLIC_URL` on the test server: it must name something that exists.
async fn follow(app: &TestApp, url: &str) -> Value {
    let path = url
        .strip_prefix(PUBLIC_URL.trim_end_matches('/'))
        .unwrap_or_else(|| panic!("{url} is not on {PUBLIC_URL}"));
    expect(app.admin.get(path).await, StatusCode::OK)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_per_event_family_checked_field_by_field() {
    let slack = FakeSlack::start().await;
    slack.add_bot(BOT_TOKEN, CHANNEL_ID);
    let app = spawn_app(&slack, Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    api.create_project(E, P).await;
    let alice = app.create_user("alice").await;
    api.set_member(E, "alice", "MEMBER").await;

    let hook = api
        .webhook_integration(
            E,
            "ml alerts",
            "#ml-alerts",
            "SLACK_HOOK",
            &slack.hook_url(HOOK_PATH),
        )
        .await;
    let bot = api
        .bot_integration(E, "ops bot", "ml-ops", "SLACK_BOT", BOT_TOKEN, CHANNEL_ID)
        .await;
    let state_hook = api
        .webhook_integration(
            E,
            "run alerts",
            "#runs",
            "STATE_HOOK",
            &slack.hook_url(STATE_HOOK),
        )
        .await;

    let alias_auto = api
        .create_automation_id(
            E,
            json!({
                "name": "prod-alias",
                "scope": { "type": "PROJECT", "path": format!("{E}/{P}") },
                "event": { "type": "ADD_ARTIFACT_ALIAS" },
                "action": { "type": "NOTIFICATION", "integration_id": hook,
                            "message": "Deploying ${artifact_version_string} for ${event_author}" }
            }),
        )
        .await;
    let metric_auto = api
        .create_automation_id(
            E,
            json!({
                "name": "loss-watch",
                "scope": { "type": "PROJECT", "path": format!("{E}/{P}") },
                "event": { "type": "RUN_METRIC", "filter": {
                    "run_filter": "{\"$and\":[]}",
                    "run_metric_filter": { "threshold_filter": {
                        "name": "loss", "agg_op": "AVERAGE", "window_size": 3,
                        "cmp_op": "$gt", "threshold": 0.5 } }
                } },
                "action": { "type": "NOTIFICATION", "integration_id": bot, "severity": "WARN",
                            "message": "Loss on ${run_name} is ${metric_value}" }
            }),
        )
        .await;
    let state_auto = api
        .create_automation_id(
            E,
            json!({
                "name": "failed-runs",
                "scope": { "type": "PROJECT", "path": format!("{E}/{P}") },
                "event": { "type": "RUN_STATE", "filter": {
                    "run_filter": "{\"$and\":[]}",
                    "run_state_filter": { "states": ["FAILED"] }
                } },
                "action": { "type": "NOTIFICATION", "integration_id": state_hook,
                            "severity": "error",
                            "title": "Training ${run_name} crashed",
                            "message": "State: ${run_status}" }
            }),
        )
        .await;

    // Artifact family: alice gives v1 the alias `production`.
    alice.create_version(E, P, "my-model").await;
    alice.create_version(E, P, "my-model").await;
    expect(
        alice
            .post(
                &format!(
                    "/api/v1/entities/{E}/projects/{P}/artifacts/my-model/versions/v1/aliases"
                ),
                json!({ "alias": "production" }),
            )
            .await,
        StatusCode::OK,
    );
    let r = slack.wait_for(HOOK_PATH, 1, WAIT).await.remove(0);
    assert_eq!(r.endpoint, Endpoint::Webhook);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.header("authorization"), None, "a webhook needs no token");
    assert_eq!(header_text(&r), "🚀 New alias production on my-model:v1");
    assert_eq!(r.body["blocks"][1]["type"], "section");
    assert_eq!(
        r.body["blocks"][1]["text"],
        json!({ "type": "mrkdwn", "text": "Deploying acme/vision/my-model:v1 for alice" })
    );
    assert_eq!(
        r.block_types(),
        ["header", "section", "section", "actions", "context"],
        "header and message, then the attachment's facts, link and context"
    );
    assert_eq!(
        r.body["attachments"][0]["color"], "#2eb886",
        "INFO is green"
    );
    assert_eq!(
        field_texts(&r),
        [
            "*Version*\nacme/vision/my-model:v1",
            "*Collection*\nmy-model",
            "*Type*\nmodel",
            "*Alias*\nproduction",
            "*By*\nalice",
        ]
    );
    let version_link =
        "https://herald.example.com/api/v1/entities/acme/projects/vision/artifacts/my-model/versions/v1";
    assert_eq!(
        button(&r),
        ("View my-model:v1".to_string(), version_link.to_string())
    );
    let linked = follow(&app, version_link).await;
    assert!(
        linked.to_string().contains("production"),
        "the link shows the version with its new alias: {linked}"
    );
    assert_eq!(
        context_text(&r),
        "ℹ️ *INFO*  ·  `ADD_ARTIFACT_ALIAS`  ·  acme/vision  ·  automation *prod-alias*"
    );
    assert_eq!(
        r.body["text"],
        format!(
            "INFO: 🚀 New alias production on my-model:v1\n\
             Deploying acme/vision/my-model:v1 for alice\n\
             Version: acme/vision/my-model:v1 · Collection: my-model · Type: model · Alias: production · By: alice\n\
             acme/vision · automation prod-alias\n\
             {version_link}"
        )
    );

    // Run metric family: alice's run logs loss 0.5, 0.75, 1.0; AVERAGE of the last 3 is 0.75.
    expect(
        alice
            .post(
                &format!("/api/v1/entities/{E}/projects/{P}/runs"),
                json!({ "id": "r7x", "display_name": "resnet-50" }),
            )
            .await,
        StatusCode::CREATED,
    );
    let rows: Vec<Value> = [0.5, 0.75, 1.0]
        .iter()
        .enumerate()
        .map(|(i, v)| json!({ "step": i, "values": { "loss": v } }))
        .collect();
    expect(
        alice
            .post(
                &format!("/api/v1/entities/{E}/projects/{P}/runs/r7x/history"),
                json!({ "rows": rows }),
            )
            .await,
        StatusCode::OK,
    );
    let r = slack.wait_for(CHANNEL_ID, 1, WAIT).await.remove(0);
    assert_eq!(r.endpoint, Endpoint::PostMessage);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.body["channel"], CHANNEL_ID);
    assert_eq!(
        header_text(&r),
        "📉 AVERAGE(loss) > 0.5 (last 3) on run resnet-50"
    );
    assert_eq!(
        r.body["blocks"][1]["text"]["text"],
        "Loss on resnet-50 is 0.75"
    );
    assert_eq!(
        r.body["attachments"][0]["color"], "#daa038",
        "WARN is amber"
    );
    assert_eq!(
        field_texts(&r),
        [
            "*Run*\nresnet-50",
            "*Run ID*\nr7x",
            "*Metric*\nloss",
            "*Condition*\nAVERAGE(loss) &gt; 0.5 (last 3)",
            "*Value*\n0.75",
            "*Window*\n[0.5, 0.75, 1]",
            "*By*\nalice",
        ]
    );
    let run_link = "https://herald.example.com/api/v1/entities/acme/projects/vision/runs/r7x";
    assert_eq!(
        button(&r),
        ("View run resnet-50".to_string(), run_link.to_string())
    );
    let linked = follow(&app, run_link).await;
    assert!(linked.to_string().contains("resnet-50"), "{linked}");
    assert_eq!(
        context_text(&r),
        "⚠️ *WARN*  ·  `RUN_METRIC_THRESHOLD`  ·  acme/vision  ·  automation *loss-watch*"
    );
    let text = r.body["text"].as_str().unwrap();
    assert!(text.starts_with("WARN: 📉 AVERAGE(loss) &gt; 0.5 (last 3) on run resnet-50\n"));
    for fact in [
        "Loss on resnet-50 is 0.75",
        "Condition: AVERAGE(loss) &gt; 0.5 (last 3)",
        "Value: 0.75",
        "Window: [0.5, 0.75, 1]",
        "acme/vision · automation loss-watch",
        run_link,
    ] {
        assert!(text.contains(fact), "{fact:?} missing from {text}");
    }

    // Run state family: alice's run fails.
    expect(
        alice
            .patch(
                &format!("/api/v1/entities/{E}/projects/{P}/runs/r7x"),
                json!({ "state": "FAILED" }),
            )
            .await,
        StatusCode::OK,
    );
    let r = slack.wait_for(STATE_HOOK, 1, WAIT).await.remove(0);
    assert_eq!(header_text(&r), "🚨 Training resnet-50 crashed");
    assert_eq!(r.body["blocks"][1]["text"]["text"], "State: FAILED");
    assert_eq!(r.body["attachments"][0]["color"], "#a30200", "ERROR is red");
    assert_eq!(
        field_texts(&r),
        [
            "*Run*\nresnet-50",
            "*Run ID*\nr7x",
            "*State*\nFAILED",
            "*By*\nalice"
        ]
    );
    assert_eq!(
        button(&r),
        ("View run resnet-50".to_string(), run_link.to_string())
    );
    assert_eq!(
        context_text(&r),
        "🚨 *ERROR*  ·  `RUN_STATE`  ·  acme/vision  ·  automation *failed-runs*"
    );
    assert_eq!(
        r.body["text"],
        format!(
            "ERROR: 🚨 Training resnet-50 crashed\n\
             State: FAILED\n\
             Run: resnet-50 · Run ID: r7x · State: FAILED · By: alice\n\
             acme/vision · automation failed-runs\n\
             {run_link}"
        )
    );

    // Every request had the shape Slack takes; each fired once and history shows Slack's answer.
    slack.assert_all_valid();
    assert_eq!(slack.received().len(), 3, "one message per event");
    for (auto, key) in [
        (alias_auto, HOOK_PATH),
        (metric_auto, CHANNEL_ID),
        (state_auto, STATE_HOOK),
    ] {
        let xs = api.finished_executions(auto, 1, WAIT).await;
        let x = api.execution(xs[0]["id"].as_i64().unwrap()).await;
        assert_eq!(x["action_type"], "NOTIFICATION");
        let attempts = x["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{x}");
        assert_eq!(attempts[0]["status_code"], 200);
        assert_eq!(attempts[0]["error_class"], Value::Null);
        assert_eq!(attempts[0]["response"], slack.received_for(key)[0].answer);
    }
    let x = api.executions(metric_auto).await.remove(0);
    let answer: Value = serde_json::from_str(
        api.execution(x["id"].as_i64().unwrap()).await["attempts"][0]["response"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["channel"], CHANNEL_ID);
    assert!(answer["ts"].as_str().is_some_and(|t| !t.is_empty()));
    let x = api.executions(state_auto).await.remove(0);
    assert_eq!(
        x["request"]["slack"],
        json!({ "title": "Training resnet-50 crashed", "message": "State: FAILED", "severity": "ERROR" })
    );
}
