//! What Slack's refusals mean. A 429 with `Retry-After` is honoured over the retry schedule;
//! an `ok:false` answer is a failure recorded with Slack's error code (error class
//! `slack_error`) and retried by the schedule; the permanent ones (`channel_not_found`,
//! `channel_is_archived`, `invalid_auth`, `no_service`, a 404, a 410) fail the execution at
//! once and disable the integration, with the reason shown by the API.

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use serde_json::{json, Value};

use crate::fake_slack::{FakeSlack, Reply, HOOK_PATH};
use crate::helpers::*;

const E: &str = "acme";
const PATH: &str = "acme/p";
const WAIT: Duration = Duration::from_secs(10);

/// A team `acme` with project `p`, on a server that retries after 100 ms (twice) and paces
/// Slack at 20 ms, so anything slower than that comes from Slack's answer.
async fn world(slack: &FakeSlack) -> TestApp {
    let app = spawn_app(slack, Options::default()).await;
    app.admin.create_entity(E, "team").await;
    app.admin.create_project(E, "p").await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_retry_after_is_honoured_for_webhooks_and_the_web_api() {
    let slack = FakeSlack::start().await;
    slack.add_bot("xoxb-429-token", "C429");
    // With jitter on the schedule: Retry-After itself must not be jittered shorter.
    let app = spawn_app(
        &slack,
        Options {
            jitter: 0.5,
            ..Options::default()
        },
    )
    .await;
    app.admin.create_entity(E, "team").await;
    app.admin.create_project(E, "p").await;
    let api = &app.admin;
    let hook = api
        .webhook_integration(E, "hook", "general", "HOOK", &slack.hook_url(HOOK_PATH))
        .await;
    let bot = api
        .bot_integration(E, "bot", "ops", "BOT", "xoxb-429-token", "C429")
        .await;
    slack.queue(HOOK_PATH, vec![Reply::RateLimited(2)]);
    slack.queue("C429", vec![Reply::RateLimited(2)]);
    let a_hook = api
        .create_automation_id(E, notify_on_create("via-hook", PATH, hook, json!({})))
        .await;
    let a_bot = api
        .create_automation_id(E, notify_on_create("via-bot", PATH, bot, json!({})))
        .await;
    api.create_version(E, "p", "m").await;

    // While each waits out its 429, the retry is scheduled Retry-After later, not 100 ms later.
    for (auto, key) in [(a_hook, HOOK_PATH), (a_bot, "C429")] {
        let pending = eventually("the 429 to be recorded", WAIT, || async move {
            let xs = api.executions(auto).await;
            let x = xs.first()?;
            (x["attempt_count"] == 1).then(|| x["id"].as_i64().unwrap())
        })
        .await;
        let x = api.execution(pending).await;
        assert_eq!(x["status"], "PENDING", "{key}: {x}");
        let first = time(&x["attempts"][0]["started_at"]);
        let next = time(&x["next_attempt_at"]);
        assert!(
            next - first >= ChronoDuration::seconds(2),
            "{key}: retry at {next}, first attempt at {first}: {x}"
        );
        let a = &x["attempts"][0];
        assert_eq!(a["status_code"], 429, "{x}");
        assert_eq!(a["error_class"], "slack_error", "{x}");
        let code = if key == HOOK_PATH {
            "rate_limited"
        } else {
            "ratelimited"
        };
        assert!(
            a["error"].as_str().unwrap().contains(code),
            "the attempt names Slack's code {code}: {x}"
        );
    }

    for (auto, key, integration) in [(a_hook, HOOK_PATH, hook), (a_bot, "C429", bot)] {
        let got = slack.wait_for(key, 2, WAIT).await;
        let gap = got[1].at - got[0].at;
        assert!(
            gap >= Duration::from_secs(2),
            "{key}: retried after {gap:?}, before Retry-After: 2"
        );
        let xs = api.finished_executions(auto, 1, WAIT).await;
        let x = api.execution(xs[0]["id"].as_i64().unwrap()).await;
        let attempts = x["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{x}");
        assert!(
            time(&attempts[1]["started_at"]) - time(&attempts[0]["started_at"])
                >= ChronoDuration::seconds(2)
        );
        assert_eq!(attempts[1]["status_code"], 200);
        assert_eq!(attempts[1]["error_class"], Value::Null);
        // Rate limits are not the integration's fault.
        assert_eq!(api.integration(integration).await["enabled"], true);
    }
    slack.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ok_false_is_a_failure_with_slacks_code_retried_by_the_schedule() {
    let slack = FakeSlack::start().await;
    slack.add_bot("xoxb-transient", "CTRANSIENT");
    slack.add_bot("xoxb-hopeless", "CHOPELESS");
    let app = world(&slack).await;
    let api = &app.admin;
    let transient = api
        .bot_integration(E, "transient", "a", "BOT_A", "xoxb-transient", "CTRANSIENT")
        .await;
    let hopeless = api
        .bot_integration(E, "hopeless", "b", "BOT_B", "xoxb-hopeless", "CHOPELESS")
        .await;
    let hook = api
        .webhook_integration(E, "hook", "c", "HOOK", &slack.hook_url(HOOK_PATH))
        .await;
    // One transient refusal, then success.
    slack.queue("CTRANSIENT", vec![Reply::ApiError("internal_error")]);
    // Refused every time: the execution fails once the schedule (two retries) is used up.
    slack.answer("CHOPELESS", Reply::ApiError("fatal_error"));
    // An incoming webhook's error status with a plain-text code.
    slack.queue(HOOK_PATH, vec![Reply::Plain(500, "rollup_error")]);
    let a1 = api
        .create_automation_id(E, notify_on_create("transient", PATH, transient, json!({})))
        .await;
    let a2 = api
        .create_automation_id(E, notify_on_create("hopeless", PATH, hopeless, json!({})))
        .await;
    let a3 = api
        .create_automation_id(E, notify_on_create("hook", PATH, hook, json!({})))
        .await;
    api.create_version(E, "p", "m").await;

    for (auto, code, status) in [(a1, "internal_error", 200), (a3, "rollup_error", 500)] {
        let xs = api.finished_executions(auto, 1, WAIT).await;
        let x = api.execution(xs[0]["id"].as_i64().unwrap()).await;
        let attempts = x["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2, "refused once, then delivered: {x}");
        assert_eq!(attempts[0]["status_code"], status);
        assert_eq!(attempts[0]["error_class"], "slack_error", "{x}");
        let error = attempts[0]["error"].as_str().unwrap();
        assert!(error.contains(code), "{error:?} names {code}");
        assert!(
            attempts[0]["response"].as_str().unwrap().contains(code),
            "{x}"
        );
        assert_eq!(attempts[1]["error_class"], Value::Null);
    }

    let x = api.wait_execution(a2, "FAILED", WAIT).await;
    let attempts = x["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "the first attempt and two retries: {x}");
    for a in attempts {
        assert_eq!(a["status_code"], 200, "{x}");
        assert_eq!(a["error_class"], "slack_error", "{x}");
        assert!(a["error"].as_str().unwrap().contains("fatal_error"), "{x}");
        let answer: Value = serde_json::from_str(a["response"].as_str().unwrap()).unwrap();
        assert_eq!(answer, json!({ "ok": false, "error": "fatal_error" }));
    }
    assert!(
        x["reason"].as_str().unwrap().contains("fatal_error"),
        "the reason names Slack's code: {x}"
    );
    assert_eq!(slack.received_for("CHOPELESS").len(), 3);
    // Not a permanent error: the integrations stay enabled.
    for id in [transient, hopeless, hook] {
        let i = api.integration(id).await;
        assert_eq!(i["enabled"], true, "{i}");
        assert_eq!(i["disabled_reason"], Value::Null, "{i}");
    }
    slack.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_at_once_and_disable_the_integration() {
    let slack = FakeSlack::start().await;
    let app = world(&slack).await;
    let api = &app.admin;

    // (integration name, how it posts, Slack's answer, what the reason must name, error class)
    enum Via {
        Bot(&'static str),
        Hook(&'static str),
    }
    let cases = [
        (
            "not-found",
            Via::Bot("CNOTFOUND"),
            Reply::ApiError("channel_not_found"),
            "channel_not_found",
            "slack_error",
        ),
        (
            "archived",
            Via::Bot("CARCHIVED"),
            Reply::ApiError("channel_is_archived"),
            "channel_is_archived",
            "slack_error",
        ),
        (
            "bad-auth",
            Via::Bot("CBADAUTH"),
            Reply::ApiError("invalid_auth"),
            "invalid_auth",
            "slack_error",
        ),
        (
            "revoked",
            Via::Hook("/services/T/B/REVOKED"),
            Reply::Plain(404, "no_service"),
            "no_service",
            "slack_error",
        ),
        (
            "plain-404",
            Via::Hook("/services/T/B/GONE404"),
            Reply::Plain(404, "Not Found"),
            "404",
            "http_status",
        ),
        (
            "plain-410",
            Via::Hook("/services/T/B/GONE410"),
            Reply::Plain(410, ""),
            "410",
            "http_status",
        ),
        (
            "archived-hook",
            Via::Hook("/services/T/B/ARCHIVED"),
            Reply::Plain(410, "channel_is_archived"),
            "channel_is_archived",
            "slack_error",
        ),
    ];
    let mut set = Vec::new();
    for (i, (name, via, reply, code, class)) in cases.into_iter().enumerate() {
        let (id, key) = match via {
            Via::Bot(channel) => {
                let token = format!("xoxb-perm-{i}");
                slack.add_bot(&token, channel);
                let id = api
                    .bot_integration(E, name, name, &format!("BOT_{i}"), &token, channel)
                    .await;
                (id, channel)
            }
            Via::Hook(path) => {
                let id = api
                    .webhook_integration(E, name, name, &format!("HOOK_{i}"), &slack.hook_url(path))
                    .await;
                (id, path)
            }
        };
        slack.answer(key, reply);
        let auto = api
            .create_automation_id(E, notify_on_create(name, PATH, id, json!({})))
            .await;
        set.push((name, id, key, auto, code, class));
    }
    api.create_version(E, "p", "m").await;

    for &(name, id, key, auto, code, class) in &set {
        let x = api.wait_execution(auto, "FAILED", WAIT).await;
        let attempts = x["attempts"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "{name}: no retry of a permanent error: {x}"
        );
        assert_eq!(attempts[0]["error_class"], class, "{name}: {x}");
        assert!(
            attempts[0]["error"].as_str().unwrap().contains(code),
            "{name}: the attempt names {code}: {x}"
        );
        assert!(
            x["reason"].as_str().unwrap().contains(code),
            "{name}: the reason names {code}: {x}"
        );
        let i = api.integration(id).await;
        assert_eq!(i["enabled"], false, "{name}: {i}");
        let reason = i["disabled_reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(code),
            "{name}: disabled_reason {reason:?} names {code}"
        );
        assert_eq!(slack.received_for(key).len(), 1, "{name}");
    }

    // A disabled integration posts nothing more: the next event's executions are cancelled.
    api.create_version(E, "p", "m").await;
    for &(name, _, key, auto, _, _) in &set {
        let xs = eventually("second executions to be cancelled", WAIT, || async move {
            let xs = api.executions(auto).await;
            (xs.len() == 2 && xs.iter().any(|x| x["status"] == "CANCELLED")).then_some(xs)
        })
        .await;
        let x = api.execution(xs[1]["id"].as_i64().unwrap()).await;
        assert_eq!(x["status"], "CANCELLED", "{name}: {x}");
        assert!(
            x["reason"].as_str().unwrap().contains("disabled"),
            "{name}: {x}"
        );
        assert_eq!(
            x["attempts"].as_array().map(Vec::len),
            Some(0),
            "{name}: {x}"
        );
        assert_eq!(slack.received_for(key).len(), 1, "{name}: nothing posted");
    }

    // Re-enabling clears the reason.
    let (_, id, key, auto, _, _) = set[0];
    slack.answer(key, Reply::Ok);
    let i = expect(
        api.patch(
            &format!("/api/v1/integrations/{id}"),
            json!({ "enabled": true }),
        )
        .await,
        reqwest::StatusCode::OK,
    );
    assert_eq!(i["enabled"], true);
    assert_eq!(i["disabled_reason"], Value::Null);
    api.create_version(E, "p", "m").await;
    eventually("delivery after re-enabling", WAIT, || async move {
        let xs = api.executions(auto).await;
        (xs.len() == 3 && xs[2]["status"] == "FINISHED").then_some(())
    })
    .await;
    slack.assert_all_valid();
}
