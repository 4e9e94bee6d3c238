//! Stopping a run, as W&B's Stop button does: `POST …/runs/{run}/stop` or the `stopRun`
//! mutation flags it, file_stream answers `stopped: true` from then on (wandb-core keeps the
//! last answer, and the SDK polling it interrupts the script), and the script's last post ends
//! the run KILLED. The SDK itself is stopped this way in `sdk-tests/test_training.py`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const STREAM: &str = "/files/acme/vision/r1/file_stream";
const RUN: &str = "/api/v1/entities/acme/projects/vision/runs/r1";

/// The documents wandb-core 0.31 sends: `stopRun` (`Api().run().stop()`, the sweep scheduler)
/// and `RunState` (the sweep scheduler's check that a run exists); `RunStoppedStatus` is what
/// older wandb-core polled for the flag.
const STOP_RUN: &str =
    "mutation StopRun ($id: ID!) {\n\tstopRun(input: {id:$id}) {\n\t\tsuccess\n\t}\n}";
const RUN_STATE: &str = "query RunState ($entity: String!, $project: String!, $run: String!) {\n\tproject(name: $project, entityName: $entity) {\n\t\trun(name: $run) {\n\t\t\tid\n\t\t\tstate\n\t\t}\n\t}\n}";
const RUN_STOPPED_STATUS: &str =
    "query RunStoppedStatus($entityName: String, $projectName: String, $runId: String!) {
  project(name: $projectName, entityName: $entityName) { run(name: $runId) { stopped } } }";

/// alice and her RUNNING run `acme/vision/r1` (see `alice_with_run`), with the run's GraphQL id.
async fn running_run(app: &TestApp) -> (Api, String) {
    let alice = alice_with_run(app).await;
    let id = run_state(&alice).await["id"].as_str().unwrap().to_string();
    (alice, id)
}

async fn run_state(api: &Api) -> Value {
    let body = graphql_op(
        api,
        "RunState",
        RUN_STATE,
        json!({"entity": "acme", "project": "vision", "run": "r1"}),
    )
    .await;
    body["data"]["project"]["run"].clone()
}

async fn stop_run(api: &Api, id: &str) -> Value {
    graphql_op(api, "StopRun", STOP_RUN, json!({"id": id})).await
}

/// Posts `body` to r1's file_stream and returns herald's answer.
async fn stream(api: &Api, body: Value) -> Value {
    expect(api.post(STREAM, body).await, StatusCode::OK)
}

fn history(offset: i64) -> Value {
    json!({"files": {"wandb-history.jsonl": {"offset": offset, "content": [json!({"_step": offset, "loss": 0.5}).to_string()]}}})
}

fn exit(code: i64) -> Value {
    json!({"complete": true, "exitcode": code})
}

#[tokio::test]
async fn a_stopped_run_is_told_so_and_ends_killed() {
    let app = spawn_app().await;
    let (alice, _) = running_run(&app).await;
    assert_eq!(stream(&alice, history(0)).await, json!({"stopped": false}));

    // A viewer may not stop it; a non-member does not find it.
    let carol = app.create_user("carol").await;
    let (status, _) = carol.post(&format!("{RUN}/stop"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    alice.set_member("acme", "carol", "VIEWER").await;
    let (status, _) = carol.post(&format!("{RUN}/stop"), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let run = expect(
        alice.post(&format!("{RUN}/stop"), Value::Null).await,
        StatusCode::OK,
    );
    assert_eq!(
        (run["state"].as_str(), &run["stop_requested"]),
        (Some("RUNNING"), &json!(true))
    );
    // Asking again changes nothing.
    let again = expect(
        alice.post(&format!("{RUN}/stop"), Value::Null).await,
        StatusCode::OK,
    );
    assert_eq!(again, run);

    // The script keeps logging until the SDK's next poll; every answer says stop.
    assert_eq!(stream(&alice, history(1)).await, json!({"stopped": true}));
    // Interrupted, it exits 255: the run ends KILLED (one RUN_STATE event), not FAILED.
    stream(&alice, exit(255)).await;
    let run = expect(alice.get(RUN).await, StatusCode::OK);
    assert_eq!(run["state"], "KILLED");
    let states: Vec<Value> = alice
        .events("acme")
        .await
        .into_iter()
        .filter(|e| e["type"] == "RUN_STATE")
        .map(|e| e["body"]["state"].clone())
        .collect();
    assert_eq!(states, [json!("RUNNING"), json!("KILLED")]);

    // An ended run cannot be stopped.
    let (status, body) = alice.post(&format!("{RUN}/stop"), Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("KILLED"),
        "{body}"
    );
    let (status, _) = alice
        .post(
            "/api/v1/entities/acme/projects/vision/runs/nope/stop",
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stop_run_and_run_state_answer_as_wandb_core_reads_them() {
    let app = spawn_app().await;
    let (alice, id) = running_run(&app).await;
    assert_eq!(run_state(&alice).await["state"], "running");

    // Only a member finds the run to stop.
    let carol = app.create_user("carol").await;
    let body = stop_run(&carol, &id).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{body}"
    );
    let body = stop_run(&alice, "not-an-id").await;
    assert!(body["errors"][0]["message"].as_str().is_some(), "{body}");

    let body = stop_run(&alice, &id).await;
    assert_eq!(body["data"]["stopRun"]["success"], true, "{body}");
    let body = graphql_op(
        &alice,
        "RunStoppedStatus",
        RUN_STOPPED_STATUS,
        json!({"entityName": "acme", "projectName": "vision", "runId": "r1"}),
    )
    .await;
    assert_eq!(body["data"]["project"]["run"]["stopped"], true, "{body}");
    assert_eq!(stream(&alice, history(0)).await, json!({"stopped": true}));

    // A script that catches the interrupt and exits 0 ends on its own terms: FINISHED.
    stream(&alice, exit(0)).await;
    assert_eq!(run_state(&alice).await["state"], "finished");
    let body = stop_run(&alice, &id).await;
    assert_eq!(body["data"]["stopRun"]["success"], false, "{body}");
}

#[tokio::test]
async fn a_resumed_run_forgets_the_stop_of_its_last_life() {
    let app = spawn_app().await;
    let (alice, id) = running_run(&app).await;
    stop_run(&alice, &id).await;
    stream(&alice, exit(255)).await;
    assert_eq!(run_state(&alice).await["state"], "killed");

    // `resume="must"`: UpsertBucket names the run by its id.
    let body = graphql_op(
        &alice,
        "UpsertBucket",
        "mutation UpsertBucket($id: String) { upsertBucket(input: {id: $id}) { bucket { state stopped } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        body["data"]["upsertBucket"]["bucket"],
        json!({"state": "running", "stopped": false}),
        "{body}"
    );
    assert_eq!(stream(&alice, history(0)).await, json!({"stopped": false}));
    stream(&alice, exit(1)).await;
    assert_eq!(run_state(&alice).await["state"], "failed");
}
