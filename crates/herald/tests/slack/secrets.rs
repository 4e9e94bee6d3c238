//! A Slack incoming-webhook URL and a bot token are secrets: only Slack sees them. No API
//! answer holds them — integrations, executions and their attempts (successes, Slack's
//! refusals, a webhook URL that cannot be reached), events, secret listings, test calls.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_slack::{FakeSlack, Reply};
use crate::helpers::*;

const E: &str = "acme";
const TOKEN: &str = "xoxb-4242-secretBotTokenValue77";
/// The part of each webhook URL that makes it a credential.
const HOOK_KEY: &str = "XsecretHookKey123";
const DEAD_KEY: &str = "XdeadHookKey456";
const WAIT: Duration = Duration::from_secs(10);

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, HOOK_KEY, DEAD_KEY, "T0SECRET", "TDEAD"] {
        assert!(
            !text.contains(secret),
            "{what} holds the secret {secret:?}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_and_bot_tokens_never_appear_in_api_answers_or_history() {
    let slack = FakeSlack::start().await;
    slack.add_bot(TOKEN, "CSECRET");
    let app = spawn_app(&slack, Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    api.create_project(E, "p").await;

    let hook_path = format!("/services/T0SECRET/B0SECRET/{HOOK_KEY}");
    let hook = api
        .webhook_integration(E, "hook", "alerts", "HOOK_URL", &slack.hook_url(&hook_path))
        .await;
    let bot = api
        .bot_integration(E, "bot", "ops", "BOT_TOKEN", TOKEN, "CSECRET")
        .await;
    // A webhook URL nothing listens on: its connection errors must not show the URL.
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = api
        .webhook_integration(
            E,
            "dead",
            "void",
            "DEAD_URL",
            &format!("http://127.0.0.1:{dead_port}/services/TDEAD/BDEAD/{DEAD_KEY}"),
        )
        .await;
    // The bot is refused once (so history holds Slack's answer), then delivers.
    slack.queue("CSECRET", vec![Reply::ApiError("internal_error")]);

    let mut autos = Vec::new();
    for (name, id) in [("via-hook", hook), ("via-bot", bot), ("via-dead", dead)] {
        autos.push(
            api.create_automation_id(
                E,
                notify_on_create(
                    name,
                    "acme/p",
                    id,
                    json!({ "title": "${artifact_version_string}", "message": "by ${event_author}" }),
                ),
            )
            .await,
        );
    }
    api.create_version(E, "p", "m").await;
    api.finished_executions(autos[0], 1, WAIT).await;
    api.finished_executions(autos[1], 1, WAIT).await;
    let dead_x = api.wait_execution(autos[2], "FAILED", WAIT).await;
    let attempts = dead_x["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{dead_x}");
    assert_eq!(attempts[0]["error_class"], "connect", "{dead_x}");

    // Test calls, successful and refused.
    let mut texts = Vec::new();
    for id in [hook, bot, dead] {
        let (status, text) = api
            .send_raw(api.request(
                reqwest::Method::POST,
                &format!("/api/v1/integrations/{id}/test"),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        texts.push((format!("test of integration {id}"), text));
    }
    let dead_test: Value = serde_json::from_str(&texts[2].1).unwrap();
    assert_eq!(dead_test["ok"], false);
    assert_eq!(dead_test["error_class"], "connect", "{dead_test}");

    let mut paths = vec![
        format!("/api/v1/entities/{E}/integrations"),
        format!("/api/v1/entities/{E}/secrets"),
        format!("/api/v1/entities/{E}/automations"),
        format!("/api/v1/entities/{E}/executions?limit=1000"),
        format!("/api/v1/entities/{E}/events?limit=1000"),
    ];
    for id in [hook, bot, dead] {
        paths.push(format!("/api/v1/integrations/{id}"));
    }
    for &a in &autos {
        paths.push(format!("/api/v1/automations/{a}"));
        paths.push(format!("/api/v1/automations/{a}/executions?limit=1000"));
        for x in api.executions(a).await {
            paths.push(format!("/api/v1/executions/{}", x["id"]));
        }
    }
    for p in paths {
        let (status, text) = api.get_raw(&p).await;
        assert_eq!(status, StatusCode::OK, "GET {p}: {text}");
        texts.push((format!("GET {p}"), text));
    }
    for (what, text) in &texts {
        assert_clean(what, text);
    }

    // The integration shows which secrets it uses, by name.
    let i = api.integration(hook).await;
    assert_eq!(i["slack"]["webhook_url_secret"], "HOOK_URL", "{i}");
    let i = api.integration(bot).await;
    assert_eq!(i["slack"]["bot_token_secret"], "BOT_TOKEN", "{i}");
    assert_eq!(i["slack"]["channel_id"], "CSECRET");

    // Slack, and only Slack, got them.
    assert_eq!(slack.received_for(&hook_path).len(), 2, "delivery and test");
    let bot_posts = slack.received_for("CSECRET");
    assert_eq!(bot_posts.len(), 3, "refused, delivered, test");
    for r in &bot_posts {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    slack.assert_all_valid();
}
