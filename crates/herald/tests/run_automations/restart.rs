//! Restart safety with the real `herald serve` binary, killed with SIGKILL: a window half
//! logged before a restart fires exactly when the second half fills it, once; a run that
//! fired before a restart stays in its cooldown after it; and an execution in flight at the
//! kill is delivered again as the same execution, never as a second one.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(10);

fn filtered(name: &str, contains: &str, tf: Value, integration: i64) -> Value {
    run_automation(
        name,
        PATH,
        "RUN_METRIC",
        threshold(
            json!({ "$and": [ { "display_name": { "$contains": contains } } ] }),
            tf,
        ),
        integration,
    )
}

/// Team `ml` with project `p` and a webhook integration to `url` on a fresh server.
async fn setup(api: &Api, url: &str) -> i64 {
    api.create_entity(E, "team").await;
    api.create_project(E, P).await;
    api.create_integration(E, "hook", url, None, None).await
}

async fn automation(api: &Api, body: Value) -> i64 {
    api.create_automation(E, body).await["id"]
        .as_i64()
        .expect("automation id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_cooldowns_survive_kill_9_and_nothing_fires_twice() {
    let (_dir, data) = data_dir();
    let rx = Receiver::start().await;

    let server = ChildServer::start(&data).await;
    let api = server.admin.clone();
    let integration = setup(&api, &rx.url("/hook")).await;
    let split = automation(
        &api,
        filtered(
            "split",
            "split",
            json!({ "name": "loss", "agg_op": "AVERAGE", "window_size": 4, "cmp_op": "$gt", "threshold": 2 }),
            integration,
        ),
    )
    .await;
    let cool = automation(
        &api,
        filtered(
            "cool",
            "cool",
            json!({ "name": "loss", "cmp_op": "$gt", "threshold": 2 }),
            integration,
        ),
    )
    .await;
    api.create_run(E, P, json!({ "id": "r1", "display_name": "split-run" }))
        .await;
    api.create_run(E, P, json!({ "id": "r2", "display_name": "cool-run" }))
        .await;

    // Before the kill: half of r1's window; r2 fires, then drops below (re-arming its edge).
    api.log(E, P, "r1", "loss", &[1.0]).await;
    api.log(E, P, "r1", "loss", &[2.0]).await;
    api.log(E, P, "r2", "loss", &[3.0]).await;
    let got = rx.wait_for("/hook", 1, WAIT).await;
    assert_eq!(got[0].json()["automation"], "cool");
    assert_eq!(got[0].json()["metric_values"], "[3]");
    api.log(E, P, "r2", "loss", &[1.0]).await;
    sync_matcher(&api).await;
    assert_eq!(rx.received_at("/hook").len(), 1);
    server.kill();

    // After: r1's third value does not fill the window (the first two were not forgotten, nor
    // counted twice); r2's new rising edge is inside the cooldown of its firing before the kill.
    let server = ChildServer::start(&data).await;
    let api = server.admin.clone();
    api.log(E, P, "r1", "loss", &[3.0]).await;
    api.log(E, P, "r2", "loss", &[3.0]).await;
    sync_matcher(&api).await;
    assert_eq!(rx.received_at("/hook").len(), 1, "{:?}", rx.bodies("/hook"));
    // The fourth value fills r1's window: AVERAGE(1, 2, 3, 4) = 2.5 > 2.
    api.log(E, P, "r1", "loss", &[4.0]).await;
    let got = rx.wait_for("/hook", 2, WAIT).await;
    assert_eq!(
        got[1].json(),
        json!({
            "run_id": "r1",
            "run_name": "split-run",
            "run_status": "RUNNING",
            "metric_name": "loss",
            "metric_value": "2.5",
            "metric_values": "[1, 2, 3, 4]",
            "metric_filter": "AVERAGE(loss) > 2 (last 4)",
            "event_type": "RUN_METRIC_THRESHOLD",
            "entity": E,
            "project": P,
            "automation": "split"
        })
    );
    api.log(E, P, "r1", "loss", &[5.0, 6.0]).await;
    sync_matcher(&api).await;
    server.kill();

    // After a second kill: r1 is still above (no edge), then drops and rises again inside the
    // cooldown; r2 likewise. Nothing fires.
    let server = ChildServer::start(&data).await;
    let api = server.admin.clone();
    api.log(E, P, "r1", "loss", &[7.0]).await;
    api.log(E, P, "r1", "loss", &[0.0, 0.0, 0.0, 0.0]).await;
    api.log(E, P, "r1", "loss", &[9.0, 9.0, 9.0, 9.0]).await;
    api.log(E, P, "r2", "loss", &[0.0]).await;
    api.log(E, P, "r2", "loss", &[5.0]).await;
    sync_matcher(&api).await;
    let bodies = rx.bodies("/hook");
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(api.fired(split).await.len(), 1);
    assert_eq!(api.fired(cool).await.len(), 1);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_in_flight_at_kill_9_is_delivered_again_not_duplicated() {
    let (_dir, data) = data_dir();
    let rx = Receiver::start().await;
    // The first delivery is held long enough to be in flight at the kill.
    rx.delay_next("/slow", Duration::from_secs(30));

    let server = ChildServer::start(&data).await;
    let api = server.admin.clone();
    let integration = setup(&api, &rx.url("/slow")).await;
    let id = automation(
        &api,
        filtered(
            "slow",
            "run",
            json!({ "name": "loss", "cmp_op": "$gte", "threshold": 1 }),
            integration,
        ),
    )
    .await;
    api.create_run(E, P, json!({ "id": "r", "display_name": "a-run" }))
        .await;
    api.log(E, P, "r", "loss", &[0.0, 1.0]).await;
    let first = rx.wait_for("/slow", 1, WAIT).await;
    server.kill();

    let server = ChildServer::start(&data).await;
    let api = server.admin.clone();
    let got = rx.wait_for("/slow", 2, WAIT).await;
    assert_eq!(
        got[1].webhook_id, first[0].webhook_id,
        "redelivered as the same execution"
    );
    assert!(first[0].webhook_id.is_some());
    assert_eq!(got[1].body, first[0].body);
    assert_eq!(got[0].json()["metric_values"], "[1]");
    let xs = eventually("the execution to finish", WAIT, || async {
        let xs = api.executions(id).await;
        (!xs.is_empty() && xs.iter().all(|x| x["status"] == "FINISHED")).then_some(xs)
    })
    .await;
    assert_eq!(xs.len(), 1, "{xs:?}");

    // Neither the restart nor more values above the threshold make a second execution.
    api.log(E, P, "r", "loss", &[2.0, 3.0]).await;
    api.log(E, P, "r", "loss", &[0.0]).await;
    api.log(E, P, "r", "loss", &[4.0]).await;
    sync_matcher(&api).await;
    assert_eq!(api.fired(id).await.len(), 1);
    assert_eq!(rx.received_at("/slow").len(), 2);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_logged_just_before_kill_9_fires_once() {
    let (_dir, data) = data_dir();
    let rx = Receiver::start().await;
    let server = ChildServer::start(&data).await;
    let api = server.admin.clone();
    let integration = setup(&api, &rx.url("/hook")).await;
    let id = automation(
        &api,
        filtered(
            "last",
            "run",
            json!({ "name": "acc", "agg_op": "MIN", "window_size": 3, "cmp_op": "$gte", "threshold": 0.9 }),
            integration,
        ),
    )
    .await;
    api.create_run(E, P, json!({ "id": "r", "display_name": "a-run" }))
        .await;
    api.log(E, P, "r", "acc", &[0.95]).await;
    api.log(E, P, "r", "acc", &[0.5, 0.92]).await;
    // The batch that completes the window, and the kill at once: whether the matcher got to
    // it, delivered it, or neither, the restarted server must end with one firing.
    api.log(E, P, "r", "acc", &[0.91, 0.97]).await;
    server.kill();

    let server = ChildServer::start(&data).await;
    let api = server.admin.clone();
    let got = rx.wait_for("/hook", 1, WAIT).await;
    assert_eq!(got[0].json()["metric_values"], "[0.92, 0.91, 0.97]");
    assert_eq!(got[0].json()["metric_value"], "0.91");
    sync_matcher(&api).await;
    let xs = eventually("the execution to finish", WAIT, || async {
        let xs = api.executions(id).await;
        (!xs.is_empty() && xs.iter().all(|x| x["status"] == "FINISHED")).then_some(xs)
    })
    .await;
    assert_eq!(xs.len(), 1, "{xs:?}");
    // A delivery under way at the kill may be repeated, but only as the same execution.
    let ids: Vec<Option<String>> = rx
        .received_at("/hook")
        .into_iter()
        .map(|r| r.webhook_id)
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    drop(server);
}
