//! Whatever an event carries, the message Slack gets is one it takes: a 1,000-character title
//! and a message that grows past 10,000 characters once its variables are filled in are cut
//! to Slack's limits (header 150, section 3,000, counted in characters, ending with "…"), and
//! mentions or links in event data stay text.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::fake_slack::{FakeSlack, HOOK_PATH, MAX_HEADER, MAX_SECTION};
use crate::helpers::*;

const E: &str = "acme";
const HOSTILE: &str = "<!channel> ping <@U024BE7LH> & <https://evil.example|click>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_hostile_event_data_still_makes_a_message_slack_takes() {
    let slack = FakeSlack::start().await;
    let app = spawn_app(&slack, Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    api.create_project(E, "p").await;
    let hook = api
        .webhook_integration(E, "hook", "alerts", "HOOK", &slack.hook_url(HOOK_PATH))
        .await;
    let title = "漢".repeat(1000);
    let message = format!("${{artifact_metadata.note}} {}", "😀".repeat(9000));
    let auto = api
        .create_automation_id(
            E,
            notify_on_create(
                "big",
                "acme/p",
                hook,
                json!({ "title": title, "message": message, "severity": "ERROR" }),
            ),
        )
        .await;
    let note = format!("{HOSTILE} {}", "x".repeat(2000));
    expect(
        api.post(
            &format!("/api/v1/entities/{E}/projects/p/artifacts"),
            json!({ "collection": "m", "type": "model", "metadata": { "note": note } }),
        )
        .await,
        StatusCode::CREATED,
    );

    let r = slack
        .wait_for(HOOK_PATH, 1, Duration::from_secs(10))
        .await
        .remove(0);
    slack.assert_all_valid();
    let header = r.body["blocks"][0]["text"]["text"].as_str().unwrap();
    assert_eq!(header.chars().count(), MAX_HEADER);
    assert!(
        header.starts_with("🚨 漢漢") && header.ends_with("漢…"),
        "{header}"
    );
    let section = r.body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert_eq!(section.chars().count(), MAX_SECTION);
    assert!(
        section.starts_with(
            "&lt;!channel&gt; ping &lt;@U024BE7LH&gt; &amp; &lt;https://evil.example|click&gt; xxx"
        ),
        "{}",
        &section[..200]
    );
    assert!(section.ends_with('…'));
    let text = r.body["text"].as_str().unwrap();
    for raw in ["<!channel>", "<@U024BE7LH>", "<https://"] {
        assert!(!text.contains(raw), "the fallback holds {raw:?}");
    }
    assert!(text.contains("&lt;!channel&gt;"));
    api.finished_executions(auto, 1, Duration::from_secs(10))
        .await;
}
