//! The README's rendered Slack messages are what herald renders: each example is rebuilt with
//! the renderer from the facts it shows and compared as JSON, so the docs cannot drift.

use herald_domain::event::EventType;
use herald_domain::slack::{render, MessageInput, Severity};
use serde_json::Value;

const README: &str = include_str!("../../../README.md");

/// The first ```json block after `marker`.
fn example_after(marker: &str) -> Value {
    let start = README
        .find(marker)
        .unwrap_or_else(|| panic!("README has no {marker:?}"));
    let rest = &README[start..];
    let open = rest.find("```json\n").expect("a json block") + "```json\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    serde_json::from_str(&rest[open..open + close]).expect("the README example is valid JSON")
}

#[test]
fn artifact_example() {
    let link =
        "http://herald.example/api/v1/entities/acme/projects/vision/artifacts/my-model/versions/v3";
    let mut m = MessageInput::new(EventType::AddArtifactAlias, "promote-to-prod", "acme");
    m.project = Some("vision");
    m.author = Some("alice");
    m.link = Some(link);
    m.collection = Some("my-model");
    m.artifact_type = Some("model");
    m.version = Some("acme/vision/my-model:v3");
    m.alias = Some("production");
    assert_eq!(
        render(&m),
        example_after("An artifact event (`ADD_ARTIFACT_ALIAS`")
    );
}

#[test]
fn run_metric_example() {
    let link = "http://herald.example/api/v1/entities/acme/projects/vision/runs/3xk9q2";
    let mut m = MessageInput::new(EventType::RunMetric, "loss-watch", "acme");
    m.severity = Severity::Warn;
    m.message = Some("Loss is *not* going down. Check the learning rate.");
    m.project = Some("vision");
    m.author = Some("bob");
    m.link = Some(link);
    m.run_id = Some("3xk9q2");
    m.run_name = Some("my-run");
    m.metric_name = Some("loss");
    m.condition = Some("AVERAGE(loss) > 0.5 (last 5)");
    m.metric_value = Some("0.62");
    m.metric_values = Some("0.58, 0.61, 0.6, 0.66, 0.65");
    assert_eq!(
        render(&m),
        example_after("A run metric event (`RUN_METRIC_THRESHOLD`")
    );
}

#[test]
fn run_state_example() {
    let link = "http://herald.example/api/v1/entities/acme/projects/vision/runs/7hq1";
    let mut m = MessageInput::new(EventType::RunState, "failed-runs", "acme");
    m.severity = Severity::Error;
    m.title = Some("Training crashed");
    m.project = Some("vision");
    m.author = Some("carol");
    m.link = Some(link);
    m.run_id = Some("7hq1");
    m.run_name = Some("resnet-50-sweep");
    m.run_state = Some("FAILED");
    assert_eq!(render(&m), example_after("A run state event (`RUN_STATE`"));
}

/// The README's default payloads have the keys herald's defaults have, for each family.
#[test]
fn default_payload_examples() {
    for (marker, event_type) in [
        (
            "The default for an artifact event",
            EventType::AddArtifactAlias,
        ),
        ("The default for a run metric event", EventType::RunMetric),
        ("The default for a run state event", EventType::RunState),
    ] {
        let shown = example_after(marker);
        let mut shown: Vec<&String> = shown.as_object().unwrap().keys().collect();
        let default = herald_domain::template::default_payload(event_type);
        let mut keys: Vec<&String> = default.as_object().unwrap().keys().collect();
        shown.sort();
        keys.sort();
        assert_eq!(shown, keys, "{marker}");
    }
}
