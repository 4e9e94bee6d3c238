//! Webhook automations saved without a payload send their event family's default: for runs,
//! the run's id, name and link, and the metric, its value and the condition, or the state.

use serde_json::{json, Value};

use crate::helpers::*;

/// `body` without a payload.
fn without_payload(mut body: Value) -> Value {
    body["action"].as_object_mut().unwrap().remove("payload");
    body
}

/// The link every run payload carries (the test server's public URL is its listen address).
fn run_link(run: &str) -> String {
    format!("http://127.0.0.1:0/api/v1/entities/{E}/projects/{P}/runs/{run}")
}

#[tokio::test]
async fn a_metric_automation_without_a_payload_sends_the_run_and_the_metric() {
    let w = world().await;
    let filter = threshold(
        all_runs(),
        json!({ "name": "loss", "agg_op": "AVERAGE", "window_size": 2, "cmp_op": "$gt", "threshold": 0.5 }),
    );
    let body = without_payload(run_automation(
        "loss high",
        PATH,
        "RUN_METRIC",
        filter,
        w.integration,
    ));
    let id = w.automation(body).await;
    // The payload saved is the default, so what will be sent can be read before it is.
    let saved = w.api().get(&format!("/api/v1/automations/{id}")).await.1;
    assert_eq!(
        saved["action"]["payload"]["metric_filter"], "${metric_filter}",
        "{saved}"
    );
    w.run("r1", "my-run-1").await;
    w.log("r1", "loss", &[0.9, 0.7]).await;
    let bodies = w.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        bodies[0],
        json!({
            "event_type": "RUN_METRIC_THRESHOLD",
            "event_author": "admin",
            "automation_name": "loss high",
            "entity_name": E,
            "project_name": P,
            "run_id": "r1",
            "run_name": "my-run-1",
            "metric_name": "loss",
            "metric_value": "0.8",
            "metric_values": "[0.9, 0.7]",
            "metric_filter": "AVERAGE(loss) > 0.5 (last 2)",
            "event_url": run_link("r1"),
        })
    );
}

#[tokio::test]
async fn a_run_state_automation_without_a_payload_sends_the_run_and_its_state() {
    let w = world().await;
    let filter = json!({
        "run_filter": all_runs().to_string(),
        "run_state_filter": { "states": ["FAILED"] }
    });
    let body = without_payload(run_automation(
        "failed",
        PATH,
        "RUN_STATE",
        filter,
        w.integration,
    ));
    w.automation(body).await;
    w.run("r2", "nightly").await;
    w.api().set_state(E, P, "r2", "FAILED").await;
    w.app.step().await;
    assert_eq!(
        w.bodies(),
        [json!({
            "event_type": "RUN_STATE",
            "event_author": "admin",
            "automation_name": "failed",
            "entity_name": E,
            "project_name": P,
            "run_id": "r2",
            "run_name": "nightly",
            "run_status": "FAILED",
            "event_url": run_link("r2"),
        })]
    );
}
