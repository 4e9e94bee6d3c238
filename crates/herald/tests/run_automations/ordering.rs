//! Fresh executions the matcher hands straight to delivery must not overtake older ones left
//! for a claim: a destination served one at a time gets its messages in event order.

use serde_json::json;

use crate::helpers::*;

/// A server delivering one message at a time in all, with an automation sending each new
/// version of acme/proj to a receiver: the server, the receiver and the automation's id.
async fn one_at_a_time() -> (TestApp, Receiver, i64) {
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
    let automation = api
        .create_automation_id(
            "acme",
            json!({
                "name": "versions", "scope": {"type": "PROJECT", "path": "acme/proj"},
                "event": {"type": "CREATE_ARTIFACT"},
                "action": {"type": "GENERIC_WEBHOOK", "integration_id": integration,
                           "payload": {"version": "${artifact_version_string}"}},
                "rate_limit_per_minute": 1000
            }),
        )
        .await;
    (app, rx, automation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_off_work_never_overtakes_work_left_for_a_claim() {
    // One delivery at a time in all, so a matcher batch can hand off only one execution.
    let (app, rx, _) = one_at_a_time().await;
    let api = &app.admin;
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

/// A destination may have only `per_destination × UNRECORDED_AHEAD` deliveries sent and not yet
/// recorded. A delivery step with no recorder task running (as here) must record them itself
/// when it reaches that bound, instead of waiting for a recorder that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_step_past_the_unrecorded_bound_records_its_own_attempts() {
    let (app, rx, automation) = one_at_a_time().await;
    let api = &app.admin;
    // Over twice the bound (1 × UNRECORDED_AHEAD = 16) for the one destination.
    let n = 3 * herald_engine::runtime::UNRECORDED_AHEAD;
    for _ in 0..n {
        api.create_version("acme", "proj", "clf").await;
    }
    let engine = app.engine();
    while engine.match_once().await.unwrap() > 0 {}
    let mut delivered = 0;
    while delivered < n {
        let step = tokio::time::timeout(std::time::Duration::from_secs(30), engine.deliver_once())
            .await
            .expect("a delivery step waits for a recorder that is not running");
        delivered += step.unwrap();
    }

    let order: Vec<String> = rx
        .received_at("/hook")
        .iter()
        .map(|r| r.json()["version"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("acme/proj/clf:v{i}")).collect();
    assert_eq!(order, expected);
    let executions = api.executions(automation).await;
    assert_eq!(executions.len(), n);
    assert!(
        executions
            .iter()
            .all(|x| x["status"] == "FINISHED" && x["attempt_count"] == 1),
        "every execution recorded once, finished: {executions:?}"
    );
}
