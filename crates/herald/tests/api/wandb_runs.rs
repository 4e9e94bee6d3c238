//! Runs as the `wandb` SDK writes them: `upsertBucket` over GraphQL and the file_stream
//! endpoint, with the offsets that make a resent post add nothing and a gap a 400. The SDK
//! itself drives the same surface in `sdk-tests/test_training.py`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const UPSERT: &str = "mutation UpsertBucket($name: String, $project: String, $entity: String, $displayName: String, $config: JSONString, $tags: [String!]) {
  upsertBucket(input: {name: $name, modelName: $project, entityName: $entity, displayName: $displayName, config: $config, tags: $tags}) {
    bucket { id name displayName config project { id name entity { id name } } historyLineCount }
    inserted } }";

async fn upsert(api: &Api, vars: Value) -> (StatusCode, Value) {
    api.post(
        "/graphql",
        json!({"operationName": "UpsertBucket", "query": UPSERT, "variables": vars}),
    )
    .await
}

fn stream(run: &str) -> String {
    format!("/files/acme/vision/{run}/file_stream")
}

fn history(offset: i64, steps: std::ops::Range<i64>) -> Value {
    let lines: Vec<String> = steps
        .map(|s| json!({"_step": s, "_runtime": 1.5, "loss": 1.0 / (s + 1) as f64}).to_string())
        .collect();
    json!({"files": {"wandb-history.jsonl": {"offset": offset, "content": lines}}})
}

async fn steps(api: &Api, run: &str) -> Vec<i64> {
    let page = expect(
        api.get(&format!(
            "/api/v1/entities/acme/projects/vision/runs/{run}/history?limit=1000"
        ))
        .await,
        StatusCode::OK,
    );
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn upsert_bucket_creates_then_changes_only_what_it_is_given() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    alice.create_team("acme").await;

    // First call: the project is made on first use; config keys come wrapped.
    let (status, body) = upsert(
        &alice,
        json!({"name": "r1", "project": "vision", "entity": "acme", "displayName": "baseline",
               "tags": ["nightly"], "config": "{\"lr\":{\"value\":0.1},\"_wandb\":{\"value\":{\"t\":1}}}"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let out = &body["data"]["upsertBucket"];
    assert_eq!(out["inserted"], true, "{body}");
    assert_eq!(out["bucket"]["project"]["entity"]["name"], "acme");
    let config: Value = serde_json::from_str(out["bucket"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(config, json!({"lr": {"value": 0.1}}));

    // Later calls send nulls for what they leave alone.
    let (_, body) = upsert(
        &alice,
        json!({"name": "r1", "project": "vision", "entity": "acme", "config": "{\"lr\":{\"value\":0.2}}"}),
    )
    .await;
    assert_eq!(body["data"]["upsertBucket"]["inserted"], false, "{body}");
    let run = expect(
        alice
            .get("/api/v1/entities/acme/projects/vision/runs/r1")
            .await,
        StatusCode::OK,
    );
    assert_eq!(run["display_name"], "baseline");
    assert_eq!(run["tags"], json!(["nightly"]));
    assert_eq!(run["config"], json!({"lr": 0.2}));

    // No entity: the caller's own, as W&B resolves it from the key.
    let (_, body) = upsert(&alice, json!({"name": "mine", "project": "solo"})).await;
    assert_eq!(
        body["data"]["upsertBucket"]["bucket"]["project"]["entity"]["name"], "alice",
        "{body}"
    );

    // Run files go to URLs signed for them, under the run; a name that is no file name is refused.
    let files = |names: Value| {
        json!({"operationName": "CreateRunFiles",
               "query": "mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, $files: [String!]!) {
                  createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, files: $files}) {
                    runID uploadHeaders files { name uploadUrl } } }",
               "variables": {"entity": "acme", "project": "vision", "run": "r1", "files": names}})
    };
    let (_, body) = alice
        .post(
            "/graphql",
            files(json!(["config.yaml", "../../etc/passwd"])),
        )
        .await;
    let m = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(m.contains("input.files[1]"), "{body}");
    let (_, body) = alice.post("/graphql", files(json!(["config.yaml"]))).await;
    let url = body["data"]["createRunFiles"]["files"][0]["uploadUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let put = reqwest::Client::new()
        .put(&url)
        .body("lr: 0.1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let run_row: i64 = {
        let id = body["data"]["createRunFiles"]["runID"].as_str().unwrap();
        let text = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, id).unwrap(),
        )
        .unwrap();
        text.rsplit_once(':').unwrap().1.parse().unwrap()
    };
    let key = herald_blobs::BlobKey::run_file(run_row, "config.yaml").unwrap();
    assert_eq!(app.blobs.exists(&key).await.unwrap(), Some(8));

    // Bad input is named; a non-member cannot log into the team.
    for (vars, names) in [
        (
            json!({"name": "bad id!", "project": "vision", "entity": "acme"}),
            "input.name",
        ),
        (
            json!({"name": "r2", "project": "vision", "entity": "acme", "config": "[1]"}),
            "input.config",
        ),
        (
            json!({"name": "r2", "project": "vision", "entity": "acme", "config": "{nope"}),
            "input.config",
        ),
        (
            json!({"name": "r2", "project": "vision", "entity": "acme", "tags": ["a/b"]}),
            "input.tags",
        ),
    ] {
        let (status, body) = upsert(&alice, vars).await;
        assert_eq!(status, StatusCode::OK);
        let m = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(m.contains(names), "{names}: {body}");
    }
    let carol = app.create_user("carol").await;
    let (_, body) = upsert(
        &carol,
        json!({"name": "x", "project": "vision", "entity": "acme"}),
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{body}"
    );
}

#[tokio::test]
async fn file_stream_offsets_make_resends_harmless_and_gaps_an_error() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    alice.create_team("acme").await;
    alice.create_project("acme", "vision").await;
    let (_, body) = upsert(
        &alice,
        json!({"name": "r1", "project": "vision", "entity": "acme"}),
    )
    .await;
    assert_eq!(body["data"]["upsertBucket"]["inserted"], true, "{body}");

    expect(
        alice.post(&stream("r1"), history(0, 0..3)).await,
        StatusCode::OK,
    );
    // The SDK resends a post it got no answer to, sometimes with more lines after it.
    expect(
        alice.post(&stream("r1"), history(0, 0..3)).await,
        StatusCode::OK,
    );
    expect(
        alice.post(&stream("r1"), history(2, 2..5)).await,
        StatusCode::OK,
    );
    assert_eq!(steps(&alice, "r1").await, [0, 1, 2, 3, 4]);

    // A post past what arrived would leave a gap: refused, naming the file, and nothing kept.
    let (status, body) = alice.post(&stream("r1"), history(9, 9..10)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["path"], "files.wandb-history.jsonl.offset");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("5"),
        "{body}"
    );
    let bad_line = json!({"files": {"wandb-history.jsonl": {"offset": 5, "content": ["{\"_step\": 5, \"loss\": 1}", "not json"]}}});
    let (status, body) = alice.post(&stream("r1"), bad_line).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["path"],
        "files.wandb-history.jsonl.content[1]"
    );
    assert_eq!(steps(&alice, "r1").await, [0, 1, 2, 3, 4]);

    // The summary is replaced whole; the last post ends the run by its exit code.
    let last = json!({
        "files": {"wandb-summary.json": {"offset": 0, "content": ["{\"loss\": 0.2, \"best\": 0.9}"]},
                  "output.log": {"offset": 0, "content": ["step 0", "step 1"]}},
        "complete": true, "exitcode": 1,
    });
    expect(alice.post(&stream("r1"), last).await, StatusCode::OK);
    let run = expect(
        alice
            .get("/api/v1/entities/acme/projects/vision/runs/r1")
            .await,
        StatusCode::OK,
    );
    assert_eq!(run["state"], "FAILED");
    assert_eq!(run["summary"], json!({"loss": 0.2, "best": 0.9}));
    let events = alice.events("acme").await;
    let states: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "RUN_STATE")
        .map(|e| &e["body"]["state"])
        .collect();
    assert_eq!(states, [&json!("RUNNING"), &json!("FAILED")]);

    // An ended run takes no new history (a resent one still adds nothing and is fine).
    expect(
        alice.post(&stream("r1"), history(3, 3..5)).await,
        StatusCode::OK,
    );
    let (status, _) = alice.post(&stream("r1"), history(5, 5..6)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Unknown runs and non-members: 404.
    let (status, _) = alice.post(&stream("nope"), history(0, 0..1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let carol = app.create_user("carol").await;
    let (status, _) = carol.post(&stream("r1"), history(5, 5..6)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
