//! Requests that break a catalog rule: links into registries, final run states, run history.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{fixture, snapshot, REG};
use crate::helpers::{error_path, expect, expect_error, project, run, version, Catalog};

#[tokio::test]
async fn links_need_a_registry_and_happen_once() {
    let Catalog { app: _app, alice } = fixture().await;
    let v0 = version("ml", "vision", "resnet", "v0");
    expect(
        alice
            .post(&format!("{v0}/links"), json!({"registry": "acme/model"}))
            .await,
        StatusCode::CREATED,
    );
    alice.create_project("acme", "research").await;
    alice
        .create_version_with("ml", "vision", "imagenet", json!({"type": "dataset"}))
        .await;
    let before = snapshot(&alice).await;

    // A plain project is not a registry, in a team or in an organization.
    for registry in ["ml/vision", "acme/research"] {
        let (status, answer) = alice
            .post(&format!("{v0}/links"), json!({"registry": registry}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{registry}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input");
        assert_eq!(error_path(&answer), Some("registry"), "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("not a registry"), "{registry}: {message}");
    }
    // A second link of the same version into the same collection.
    let msg = expect_error(
        alice
            .post(&format!("{v0}/links"), json!({"registry": "acme/model"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert!(msg.contains("already linked"), "{msg}");
    // Registries belong to organizations.
    let msg = expect_error(
        alice
            .post("/api/v1/entities/ml/registries", json!({"name": "model"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("organization"), "{msg}");
    let msg = expect_error(
        alice
            .post(
                "/api/v1/entities/alice/registries",
                json!({"name": "model"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("organization"), "{msg}");
    // Versions and runs are created in projects, not registries.
    let (status, answer) = alice
        .post(
            &format!("{}/artifacts", project("acme", REG)),
            json!({"collection": "resnet", "type": "model"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("registry"));
    expect_error(
        alice
            .post(&format!("{}/runs", project("acme", REG)), json!({}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    // Only links are unlinked: not versions in their home sequence.
    let msg = expect_error(
        alice.delete(&v0).await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("not a registry"), "{msg}");
    // A portfolio holds one type.
    expect_error(
        alice
            .post(
                &format!("{}/links", version("ml", "vision", "imagenet", "v0")),
                json!({"registry": "acme/model", "collection": "resnet"}),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(snapshot(&alice).await, before);
}

#[tokio::test]
async fn runs_do_not_leave_a_final_state() {
    let Catalog { app: _app, alice } = fixture().await;
    let r1 = run("ml", "vision", "r1");
    expect(
        alice.patch(&r1, json!({"state": "KILLED"})).await,
        StatusCode::OK,
    );
    let before = snapshot(&alice).await;
    for to in ["RUNNING", "FINISHED", "FAILED", "CRASHED"] {
        let msg = expect_error(
            alice.patch(&r1, json!({"state": to})).await,
            StatusCode::CONFLICT,
            "conflict",
        );
        assert!(msg.contains("KILLED"), "{msg}");
    }
    assert_eq!(
        expect(
            alice.patch(&r1, json!({"state": "KILLED"})).await,
            StatusCode::OK
        )["state"],
        "KILLED"
    );
    assert_eq!(snapshot(&alice).await, before);
}

#[tokio::test]
async fn history_values_must_be_numbers_at_valid_steps() {
    let Catalog { app: _app, alice } = fixture().await;
    let history = format!("{}/history", run("ml", "vision", "r1"));
    let before = snapshot(&alice).await;
    // (rows, path, message fragment)
    let cases = [
        (
            json!([{"step": 0, "values": {"loss": "0.5"}}]),
            "rows[0].values.loss",
            "not a string",
        ),
        (
            json!([{"step": 0, "values": {"loss": null}}]),
            "rows[0].values.loss",
            "not null",
        ),
        (
            json!([{"step": 0, "values": {"loss": true}}]),
            "rows[0].values.loss",
            "not a boolean",
        ),
        (
            json!([{"step": 0, "values": {"loss": [1]}}]),
            "rows[0].values.loss",
            "not an array",
        ),
        (
            json!([{"step": 0, "values": {"loss": {"x": 1}}}]),
            "rows[0].values.loss",
            "not an object",
        ),
        (
            json!([{"step": 0, "values": {}}]),
            "rows[0].values",
            "at least one",
        ),
        (
            json!([{"step": -1, "values": {"loss": 1}}]),
            "rows[0].step",
            "-1",
        ),
        (
            json!([{"step": 0, "values": {"loss": 1}}, {"step": 1, "values": {"loss": "x"}}]),
            "rows[1].values.loss",
            "finite number",
        ),
        (
            json!([{"step": 0, "values": {"": 1}}]),
            "rows[0].values",
            "must not be empty",
        ),
        (json!([]), "rows", "1 to"),
        (
            Value::Array(
                (0..10_001)
                    .map(|i| json!({"step": i, "values": {"loss": 1}}))
                    .collect(),
            ),
            "rows",
            "got 10001",
        ),
    ];
    for (rows, path, why) in cases {
        let (status, answer) = alice.post(&history, json!({ "rows": rows })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rows}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input", "{answer}");
        let at = error_path(&answer).unwrap_or_default();
        assert!(at.starts_with(path), "{rows}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{rows}: {message}");
        assert!(message.contains(path), "{rows}: {message}");
    }
    // Numbers too big for a double are refused as JSON.
    let (status, _) = alice
        .post_raw(
            &history,
            r#"{"rows": [{"step": 0, "values": {"loss": 1e999}}]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A bad row anywhere refuses the whole batch.
    assert_eq!(snapshot(&alice).await, before);

    // A finished run takes no more history.
    expect(
        alice
            .patch(&run("ml", "vision", "r1"), json!({"state": "FINISHED"}))
            .await,
        StatusCode::OK,
    );
    let before = snapshot(&alice).await;
    let msg = expect_error(
        alice
            .post(
                &history,
                json!({"rows": [{"step": 0, "values": {"loss": 1}}]}),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert!(msg.contains("RUNNING"), "{msg}");
    assert_eq!(snapshot(&alice).await, before);
}
