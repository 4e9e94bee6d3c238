//! Pacing: messages to one channel (one integration) are spaced by `slack.min_interval`
//! (Slack's one message per second per channel by default), while another channel is never
//! held behind it. Spacing is measured where it matters, at the fake Slack's receipt times.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::fake_slack::{FakeSlack, SlackRequest};
use crate::helpers::*;

const E: &str = "acme";
/// Timer slack allowed below the interval.
const TOLERANCE: Duration = Duration::from_millis(5);

/// Asserts consecutive receipts are at least `interval` apart (less [`TOLERANCE`]).
#[track_caller]
fn assert_spaced(what: &str, got: &[SlackRequest], interval: Duration) {
    for (i, pair) in got.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap + TOLERANCE >= interval,
            "{what}: messages {i} and {} arrived {gap:?} apart, under {interval:?}",
            i + 1
        );
    }
}

/// The pair of integrations: `busy` (a bot posting to channel `CBUSY`, for project `a`) and
/// `quiet` (an incoming webhook, for project `b`), each with a NOTIFICATION automation on
/// CREATE_ARTIFACT. Returns the automations' ids.
async fn two_channels(api: &Api, slack: &FakeSlack, quiet_hook: &str) -> (i64, i64) {
    api.create_entity(E, "team").await;
    api.create_project(E, "a").await;
    api.create_project(E, "b").await;
    slack.add_bot("xoxb-busy-channel", "CBUSY");
    let busy = api
        .bot_integration(E, "busy", "busy", "BUSY_BOT", "xoxb-busy-channel", "CBUSY")
        .await;
    let quiet = api
        .webhook_integration(
            E,
            "quiet",
            "quiet",
            "QUIET_HOOK",
            &slack.hook_url(quiet_hook),
        )
        .await;
    let a = api
        .create_automation_id(
            E,
            notify_on_create(
                "busy",
                "acme/a",
                busy,
                json!({ "title": "busy ${artifact_version_string}" }),
            ),
        )
        .await;
    let b = api
        .create_automation_id(
            E,
            notify_on_create(
                "quiet",
                "acme/b",
                quiet,
                json!({ "title": "quiet ${artifact_version_string}" }),
            ),
        )
        .await;
    (a, b)
}

/// Posts `busy` versions in project `a` and `quiet` ones in project `b`, the quiet ones among
/// the first busy ones, so that the quiet channel's messages are due while the busy channel
/// still has most of its backlog.
async fn burst(api: &Api, busy: usize, quiet: usize) {
    for i in 0..busy {
        api.create_version(E, "a", "m").await;
        if i < quiet {
            api.create_version(E, "b", "m").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_channel_is_paced_by_the_configured_interval_and_never_slows_another() {
    let interval = Duration::from_millis(200);
    let slack = FakeSlack::start().await;
    let app = spawn_app(
        &slack,
        Options {
            min_interval: Some("200ms"),
            ..Options::default()
        },
    )
    .await;
    let api = &app.admin;
    let quiet_hook = "/services/T/B/QUIET";
    let (a, b) = two_channels(api, &slack, quiet_hook).await;
    let started = Instant::now();
    burst(api, 20, 3).await;

    let quiet = slack.wait_for(quiet_hook, 3, Duration::from_secs(5)).await;
    let busy = slack.wait_for("CBUSY", 20, Duration::from_secs(20)).await;
    assert_eq!(busy.len(), 20);
    assert_eq!(quiet.len(), 3);
    assert_spaced("busy channel", &busy, interval);
    assert_spaced("quiet channel", &quiet, interval);
    let span = busy[19].at - busy[0].at;
    assert!(span + TOLERANCE >= interval * 19, "20 messages in {span:?}");

    // The quiet channel is not queued behind the busy one: its three messages are done in
    // the first second or two, long before the busy channel's backlog.
    let first = busy[0].at.min(quiet[0].at);
    let quiet_done = quiet[2].at - first;
    assert!(
        quiet_done < Duration::from_secs(2),
        "the quiet channel's last message came {quiet_done:?} after the first message"
    );
    assert!(
        quiet[2].at < busy[10].at,
        "the quiet channel waited behind the busy one"
    );
    assert!(
        quiet[2].at - started < Duration::from_secs(3),
        "quiet channel done {:?} after the burst began",
        quiet[2].at - started
    );

    // Each message went once, in order, and every execution finished at its first attempt.
    let titles: Vec<String> = busy
        .iter()
        .map(|r| {
            r.body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("ℹ️ busy acme/a/m:v{i}")).collect();
    assert_eq!(titles, want);
    for (auto, n) in [(a, 20), (b, 3)] {
        let xs = api
            .finished_executions(auto, n, Duration::from_secs(5))
            .await;
        assert!(xs.iter().all(|x| x["attempt_count"] == 1), "{xs:?}");
    }
    slack.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_channel_gets_at_most_one_message_per_second() {
    let slack = FakeSlack::start().await;
    let app = spawn_app(
        &slack,
        Options {
            min_interval: None,
            ..Options::default()
        },
    )
    .await;
    let api = &app.admin;
    let quiet_hook = "/services/T/B/QUIET1S";
    let (a, _) = two_channels(api, &slack, quiet_hook).await;
    burst(api, 4, 1).await;

    let quiet = slack.wait_for(quiet_hook, 1, Duration::from_secs(5)).await;
    let busy = slack.wait_for("CBUSY", 4, Duration::from_secs(10)).await;
    assert_spaced("busy channel", &busy, Duration::from_secs(1));
    let first = busy[0].at.min(quiet[0].at);
    assert!(
        quiet[0].at - first < Duration::from_secs(1),
        "the quiet channel waited {:?}",
        quiet[0].at - first
    );
    api.finished_executions(a, 4, Duration::from_secs(5)).await;
    assert_eq!(slack.received_for("CBUSY").len(), 4);
    slack.assert_all_valid();
}
