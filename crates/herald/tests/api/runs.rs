//! Runs: creation, listing with paging, state changes, and history with paging.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{catalog, expect, expect_error, project, run, Catalog};

#[tokio::test]
async fn runs_are_created_listed_and_found() {
    let Catalog { app: _app, alice } = catalog().await;
    let r = alice
        .create_run(
            "ml",
            "vision",
            json!({
                "id": "run-1",
                "display_name": "first try",
                "tags": ["baseline", "gpu"],
                "config": {"lr": 0.01, "layers": [64, 64]},
            }),
        )
        .await;
    assert_eq!(r["id"], "run-1");
    assert_eq!(r["entity"], "ml");
    assert_eq!(r["project"], "vision");
    assert_eq!(r["display_name"], "first try");
    assert_eq!(r["username"], "alice");
    assert_eq!(r["state"], "RUNNING");
    assert_eq!(r["tags"], json!(["baseline", "gpu"]));
    assert_eq!(r["config"], json!({"lr": 0.01, "layers": [64, 64]}));
    assert!(r["created_at"].is_string());
    assert!(r["updated_at"].is_string());

    // Without an id, herald makes one up like W&B does; the display name defaults to it.
    let generated = alice.create_run("ml", "vision", json!({})).await;
    let id = generated["id"].as_str().unwrap();
    assert_eq!(id.len(), 8);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    assert_eq!(generated["display_name"], id);
    assert_eq!(generated["tags"], json!([]));
    assert_eq!(generated["config"], json!({}));

    expect_error(
        alice
            .post(
                &format!("{}/runs", project("ml", "vision")),
                json!({"id": "run-1"}),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );

    assert_eq!(
        expect(
            alice.get(&run("ml", "vision", "run-1")).await,
            StatusCode::OK
        ),
        r
    );
    let all = expect(
        alice
            .get(&format!("{}/runs", project("ml", "vision")))
            .await,
        StatusCode::OK,
    );
    assert_eq!(all["runs"], json!([r, generated]));
    assert_eq!(all["next_cursor"], Value::Null);

    // Paging: a full page has a cursor, the page after it the rest.
    let first = expect(
        alice
            .get(&format!("{}/runs?limit=1", project("ml", "vision")))
            .await,
        StatusCode::OK,
    );
    assert_eq!(first["runs"], json!([r]));
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_string();
    let second = expect(
        alice
            .get(&format!(
                "{}/runs?limit=1&after={cursor}",
                project("ml", "vision")
            ))
            .await,
        StatusCode::OK,
    );
    assert_eq!(second["runs"], json!([generated]));
    let cursor = second["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    let third = expect(
        alice
            .get(&format!(
                "{}/runs?limit=1&after={cursor}",
                project("ml", "vision")
            ))
            .await,
        StatusCode::OK,
    );
    assert_eq!(third, json!({"runs": [], "next_cursor": null}));

    expect_error(
        alice.get(&run("ml", "vision", "run-9")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn run_states_change_once_and_repeat_idempotently() {
    let Catalog { app: _app, alice } = catalog().await;
    let r1 = run("ml", "vision", "r1");
    let created = alice.create_run("ml", "vision", json!({"id": "r1"})).await;
    // Repeating RUNNING changes nothing.
    let same = expect(
        alice.patch(&r1, json!({"state": "RUNNING"})).await,
        StatusCode::OK,
    );
    assert_eq!(same, created);

    let finished = expect(
        alice.patch(&r1, json!({"state": "FINISHED"})).await,
        StatusCode::OK,
    );
    assert_eq!(finished["state"], "FINISHED");
    assert_eq!(
        expect(alice.get(&r1).await, StatusCode::OK)["state"],
        "FINISHED"
    );
    // Repeating the final state is fine; leaving it is not.
    expect(
        alice.patch(&r1, json!({"state": "finished"})).await,
        StatusCode::OK,
    );
    for to in ["RUNNING", "FAILED", "KILLED"] {
        let msg = expect_error(
            alice.patch(&r1, json!({"state": to})).await,
            StatusCode::CONFLICT,
            "conflict",
        );
        assert!(msg.contains("FINISHED"), "{msg}");
    }
    assert_eq!(
        expect(alice.get(&r1).await, StatusCode::OK)["state"],
        "FINISHED"
    );

    // CRASHED is W&B's word for FAILED.
    alice.create_run("ml", "vision", json!({"id": "r2"})).await;
    let r2 = run("ml", "vision", "r2");
    let crashed = expect(
        alice.patch(&r2, json!({"state": "CRASHED"})).await,
        StatusCode::OK,
    );
    assert_eq!(crashed["state"], "FAILED");
    expect(
        alice.patch(&r2, json!({"state": "FAILED"})).await,
        StatusCode::OK,
    );

    alice.create_run("ml", "vision", json!({"id": "r3"})).await;
    let killed = expect(
        alice
            .patch(&run("ml", "vision", "r3"), json!({"state": "KILLED"}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(killed["state"], "KILLED");

    expect_error(
        alice
            .patch(&run("ml", "vision", "nope"), json!({"state": "FINISHED"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn history_is_logged_in_batches_and_read_in_pages() {
    let Catalog { app: _app, alice } = catalog().await;
    alice.create_run("ml", "vision", json!({"id": "r1"})).await;
    let history = format!("{}/history", run("ml", "vision", "r1"));

    let logged = expect(
        alice
            .post(
                &history,
                json!({"rows": [
                    {"step": 0, "values": {"loss": 1.0, "acc": 0.1}},
                    {"step": 1, "values": {"loss": 0.5, "train/acc": 0.4}},
                    {"step": 2, "values": {"loss": 0.25}},
                ]}),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        logged,
        json!({"rows": 3, "values": 5, "first_step": 0, "last_step": 2})
    );
    let logged = expect(
        alice
            .post(
                &history,
                json!({"rows": [
                    {"step": 3, "values": {"loss": 0.125}},
                    {"step": 4, "values": {"loss": 7}},
                ]}),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        logged,
        json!({"rows": 2, "values": 2, "first_step": 3, "last_step": 4})
    );

    let all = expect(alice.get(&history).await, StatusCode::OK);
    assert_eq!(all["next_cursor"], Value::Null);
    let rows = all["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["step"], 0);
    assert_eq!(rows[0]["values"], json!({"acc": 0.1, "loss": 1.0}));
    assert_eq!(rows[1]["values"], json!({"loss": 0.5, "train/acc": 0.4}));
    assert_eq!(rows[4]["values"]["loss"].as_f64(), Some(7.0));

    // Walk it two rows at a time.
    let mut walked = Vec::new();
    let mut after = String::new();
    loop {
        let page = expect(
            alice.get(&format!("{history}?limit=2&after={after}")).await,
            StatusCode::OK,
        );
        let got = page["rows"].as_array().unwrap();
        assert!(got.len() <= 2);
        walked.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(got.len(), 2, "only full pages have a cursor");
                assert_eq!(c, got[1]["seq"].as_i64().unwrap().to_string());
                after = c.to_string();
            }
            None => break,
        }
    }
    assert_eq!(&walked, rows);
    let seqs: Vec<i64> = walked.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // A finished run takes no more history, and keeps what it has.
    expect(
        alice
            .patch(&run("ml", "vision", "r1"), json!({"state": "FINISHED"}))
            .await,
        StatusCode::OK,
    );
    let msg = expect_error(
        alice
            .post(
                &history,
                json!({"rows": [{"step": 5, "values": {"loss": 0.1}}]}),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert!(msg.contains("FINISHED"), "{msg}");
    assert_eq!(expect(alice.get(&history).await, StatusCode::OK), all);

    expect_error(
        alice
            .get(&format!("{}/history", run("ml", "vision", "nope")))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
