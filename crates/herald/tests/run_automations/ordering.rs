//! Fresh executions the matcher hands straight to delivery must not overtake older ones left
//! for a claim: a destination served one at a time gets its messages in event order.

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_off_work_never_overtakes_work_left_for_a_claim() {
    // One delivery at a time in all, so a matcher batch can hand off only one execution.
    let app = spawn_app_with(&[
        ("HERALD_DELIVERY_MAX_IN_FLIGHT", "1"),
        ("HERALD_DELIVERY_PER_DESTINATION", "1"),
    ])
    .await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    api.create_entity("acme", "team").await;
    api.create_project("acme", "proj").await;
    let integration = api
        .create_integration("acme", "hook", &rx.url("/hook"), None, None)
        .await;
    api.create_automation(
        "acme",
        json!({
            "name": "versions", "scope": {"type": "PROJECT", "path": "acme/proj"},
            "event": {"type": "CREATE_ARTIFACT"},
            "action": {"type": "GENERIC_WEBHOOK", "integration_id": integration,
                       "payload": {"version": "${artifact_version_string}"}},
            "rate_limit_per_minute": 100
        }),
    )
    .await;
    let engine = app.engine();

    // v0 is handed off; v1 is left pending for a claim.
    api.create_version("acme", "proj", "clf").await;
    api.create_version("acme", "proj", "clf").await;
    assert_eq!(engine.match_once().await.unwrap(), 2);
    engine.deliver_once().await.unwrap();
    // v2 arrives while v1 still waits: the delivery slot is free, but v2 must queue behind v1.
    api.create_version("acme", "proj", "clf").await;
    assert_eq!(engine.match_once().await.unwrap(), 1);
    while engine.deliver_once().await.unwrap() > 0 {}

    let order: Vec<String> = rx
        .received_at("/hook")
        .iter()
        .map(|r| r.json()["version"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        ["acme/proj/clf:v0", "acme/proj/clf:v1", "acme/proj/clf:v2"]
    );
}
