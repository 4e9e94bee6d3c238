//! The event log: one event per change with the fields the design names, none for the
//! automatic move of `latest` or for repeats, and cursor pagination.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    catalog, collection, expect, expect_error, of_type, run, types, version, Catalog,
};

const REG: &str = "wandb-registry-model";

/// Checks the fields every artifact event of `ml/vision/resnet` carries.
#[track_caller]
fn assert_resnet_event(e: &Value, t: &str, version: Option<&str>) {
    assert_eq!(e["type"], t, "{e}");
    assert_eq!(e["entity"], "ml", "{e}");
    assert_eq!(e["project"], "vision", "{e}");
    assert_eq!(e["collection"], "resnet", "{e}");
    assert_eq!(e["artifact_type"], "model", "{e}");
    assert_eq!(e["author"], "alice", "{e}");
    assert_eq!(e["run"], Value::Null, "{e}");
    assert!(e["id"].is_i64(), "{e}");
    assert!(e["created_at"].is_string(), "{e}");
    match version {
        Some(v) => {
            assert_eq!(e["version"], v, "{e}");
            assert!(e["version_id"].is_i64(), "{e}");
        }
        None => {
            assert_eq!(e["version"], Value::Null, "{e}");
            assert_eq!(e["version_id"], Value::Null, "{e}");
        }
    }
}

#[tokio::test]
async fn artifact_changes_are_recorded_once_each() {
    let Catalog { app: _app, alice } = catalog().await;
    let v0 = alice
        .create_version_with(
            "ml",
            "vision",
            "resnet",
            json!({"digest": "d0", "aliases": ["best", "best"], "tags": ["t1"]}),
        )
        .await;
    let events = alice.events("ml").await;
    assert_eq!(
        types(&events),
        ["CREATE_ARTIFACT", "ADD_ARTIFACT_ALIAS", "ADD_ARTIFACT_TAG"]
    );
    let create = &events[0];
    assert_resnet_event(create, "CREATE_ARTIFACT", Some("v0"));
    assert_eq!(create["version_id"], v0["id"]);
    assert_eq!(create["alias"], Value::Null);
    assert_eq!(create["tag"], Value::Null);
    assert_eq!(create["body"]["digest"], "d0");
    assert_eq!(create["body"]["tags"], json!(["t1"]));
    assert_eq!(create["body"]["run_id"], Value::Null);
    assert_resnet_event(&events[1], "ADD_ARTIFACT_ALIAS", Some("v0"));
    assert_eq!(events[1]["alias"], "best");
    assert_eq!(events[1]["body"]["previous_version"], Value::Null);
    assert_resnet_event(&events[2], "ADD_ARTIFACT_TAG", Some("v0"));
    assert_eq!(events[2]["tag"], "t1");

    // A second version: `latest` moves without an ADD_ARTIFACT_ALIAS.
    let v1 = alice
        .create_version_with("ml", "vision", "resnet", json!({}))
        .await;
    assert_eq!(v1["aliases"], json!(["latest"]));
    let events = alice.events("ml").await;
    assert_eq!(events.len(), 4);
    assert_resnet_event(&events[3], "CREATE_ARTIFACT", Some("v1"));

    let v = |r: &str| version("ml", "vision", "resnet", r);
    // Moving `best` from v0 to v1 records where it came from.
    expect(
        alice
            .post(&format!("{}/aliases", v("v1")), json!({"alias": "best"}))
            .await,
        StatusCode::OK,
    );
    // Repeats change nothing and record nothing.
    expect(
        alice
            .post(&format!("{}/aliases", v("v1")), json!({"alias": "best"}))
            .await,
        StatusCode::OK,
    );
    expect(
        alice.delete(&format!("{}/aliases/best", v("v1"))).await,
        StatusCode::OK,
    );
    for _ in 0..2 {
        expect(
            alice
                .post(&format!("{}/tags", v("v1")), json!({"tag": "t2"}))
                .await,
            StatusCode::OK,
        );
    }
    // The tag t1 is already on v0.
    expect(
        alice
            .post(&format!("{}/tags", v("v0")), json!({"tag": "t1"}))
            .await,
        StatusCode::OK,
    );
    expect(
        alice.delete(&format!("{}/tags/t2", v("v1"))).await,
        StatusCode::OK,
    );
    let coll = collection("ml", "vision", "resnet");
    for _ in 0..2 {
        expect(
            alice
                .post(&format!("{coll}/tags"), json!({"tag": "c1"}))
                .await,
            StatusCode::OK,
        );
    }
    expect(
        alice.delete(&format!("{coll}/tags/c1")).await,
        StatusCode::OK,
    );

    let events = alice.events("ml").await;
    assert_eq!(
        types(&events[4..]),
        [
            "ADD_ARTIFACT_ALIAS",
            "REMOVE_ARTIFACT_ALIAS",
            "ADD_ARTIFACT_TAG",
            "REMOVE_ARTIFACT_TAG",
            "ADD_COLLECTION_TAG",
            "REMOVE_COLLECTION_TAG",
        ]
    );
    let moved = &events[4];
    assert_resnet_event(moved, "ADD_ARTIFACT_ALIAS", Some("v1"));
    assert_eq!(moved["alias"], "best");
    assert_eq!(moved["version_id"], v1["id"]);
    assert_eq!(moved["body"]["previous_version"], "v0");
    assert_resnet_event(&events[5], "REMOVE_ARTIFACT_ALIAS", Some("v1"));
    assert_eq!(events[5]["alias"], "best");
    assert_resnet_event(&events[6], "ADD_ARTIFACT_TAG", Some("v1"));
    assert_eq!(events[6]["tag"], "t2");
    assert_resnet_event(&events[7], "REMOVE_ARTIFACT_TAG", Some("v1"));
    assert_eq!(events[7]["tag"], "t2");
    assert_resnet_event(&events[8], "ADD_COLLECTION_TAG", None);
    assert_eq!(events[8]["tag"], "c1");
    assert_resnet_event(&events[9], "REMOVE_COLLECTION_TAG", None);
    assert_eq!(events[9]["tag"], "c1");

    // `latest` never appears in an alias event.
    assert!(events.iter().all(|e| e["alias"] != "latest"), "{events:?}");
    // Ids grow.
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn links_and_unlinks_are_recorded_in_the_registrys_organization() {
    let Catalog { app: _app, alice } = catalog().await;
    let v0 = alice
        .create_version_with("ml", "vision", "resnet", json!({}))
        .await;
    let v1 = alice
        .create_version_with("ml", "vision", "resnet", json!({}))
        .await;
    let team_events = alice.events("ml").await.len();
    let link = |r: &str| format!("{}/links", version("ml", "vision", "resnet", r));

    expect(
        alice
            .post(
                &link("v0"),
                json!({"registry": "acme/model", "aliases": ["prod"]}),
            )
            .await,
        StatusCode::CREATED,
    );
    expect(
        alice
            .post(
                &link("v1"),
                json!({"registry": "acme/model", "aliases": ["prod"]}),
            )
            .await,
        StatusCode::CREATED,
    );
    expect(
        alice.delete(&version("acme", REG, "resnet", "v1")).await,
        StatusCode::NO_CONTENT,
    );

    // Nothing of this lands in the source's team.
    assert_eq!(alice.events("ml").await.len(), team_events);
    let events = alice.events("acme").await;
    assert_eq!(
        types(&events),
        [
            "LINK_MODEL",
            "ADD_ARTIFACT_ALIAS",
            "LINK_MODEL",
            "ADD_ARTIFACT_ALIAS",
            "UNLINK_ARTIFACT",
        ]
    );
    for e in &events {
        assert_eq!(e["entity"], "acme", "{e}");
        assert_eq!(e["project"], REG, "{e}");
        assert_eq!(e["collection"], "resnet", "{e}");
        assert_eq!(e["artifact_type"], "model", "{e}");
        assert_eq!(e["author"], "alice", "{e}");
    }
    let source = |v: &str| json!({"entity": "ml", "project": "vision", "collection": "resnet", "version": v});
    let links = of_type(&events, "LINK_MODEL");
    assert_eq!(links[0]["version"], "v0");
    assert_eq!(links[0]["version_id"], v0["id"]);
    assert_eq!(links[0]["body"]["source"], source("v0"));
    assert_eq!(links[0]["body"]["aliases"], json!(["prod"]));
    assert_eq!(links[1]["version"], "v1");
    assert_eq!(links[1]["version_id"], v1["id"]);
    assert_eq!(links[1]["body"]["source"], source("v1"));

    let alias_events = of_type(&events, "ADD_ARTIFACT_ALIAS");
    assert_eq!(alias_events[0]["alias"], "prod");
    assert_eq!(alias_events[0]["version"], "v0");
    assert_eq!(alias_events[0]["body"]["previous_version"], Value::Null);
    assert_eq!(alias_events[1]["alias"], "prod");
    assert_eq!(alias_events[1]["version"], "v1");
    assert_eq!(alias_events[1]["body"]["previous_version"], "v0");

    let unlink = &events[4];
    assert_eq!(unlink["version"], "v1");
    assert_eq!(unlink["version_id"], v1["id"]);
    assert_eq!(unlink["body"]["source"], source("v1"));
    assert_eq!(unlink["body"]["aliases"], json!(["prod"]));
}

#[tokio::test]
async fn run_state_changes_and_history_are_recorded() {
    let Catalog { app: _app, alice } = catalog().await;
    alice.create_run("ml", "vision", json!({"id": "r1"})).await;
    let r1 = run("ml", "vision", "r1");
    expect(
        alice
            .post(
                &format!("{r1}/history"),
                json!({"rows": [
                    {"step": 0, "values": {"loss": 1.0}},
                    {"step": 5, "values": {"loss": 0.5, "acc": 0.9}},
                ]}),
            )
            .await,
        StatusCode::OK,
    );
    // Repeating RUNNING records nothing.
    expect(
        alice.patch(&r1, json!({"state": "RUNNING"})).await,
        StatusCode::OK,
    );
    expect(
        alice.patch(&r1, json!({"state": "FINISHED"})).await,
        StatusCode::OK,
    );
    expect(
        alice.patch(&r1, json!({"state": "FINISHED"})).await,
        StatusCode::OK,
    );
    alice.create_run("ml", "vision", json!({"id": "r2"})).await;
    expect(
        alice
            .patch(&run("ml", "vision", "r2"), json!({"state": "CRASHED"}))
            .await,
        StatusCode::OK,
    );

    let events = alice.events("ml").await;
    assert_eq!(
        types(&events),
        [
            "RUN_STATE",
            "LOG_RUN_HISTORY",
            "RUN_STATE",
            "RUN_STATE",
            "RUN_STATE"
        ]
    );
    for e in &events {
        assert_eq!(e["entity"], "ml", "{e}");
        assert_eq!(e["project"], "vision", "{e}");
        assert_eq!(e["author"], "alice", "{e}");
        assert_eq!(e["collection"], Value::Null, "{e}");
        assert_eq!(e["version"], Value::Null, "{e}");
    }
    assert_eq!(events[0]["run"], "r1");
    assert_eq!(
        events[0]["body"],
        json!({"state": "RUNNING", "previous_state": null})
    );
    let logged = &events[1];
    assert_eq!(logged["run"], "r1");
    assert_eq!(logged["body"]["rows"], 2);
    assert_eq!(logged["body"]["values"], 3);
    assert_eq!(logged["body"]["first_step"], 0);
    assert_eq!(logged["body"]["last_step"], 5);
    assert_eq!(logged["body"]["metrics"], json!(["acc", "loss"]));
    assert_eq!(events[2]["run"], "r1");
    assert_eq!(
        events[2]["body"],
        json!({"state": "FINISHED", "previous_state": "RUNNING"})
    );
    assert_eq!(events[3]["run"], "r2");
    assert_eq!(
        events[3]["body"],
        json!({"state": "RUNNING", "previous_state": null})
    );
    assert_eq!(events[4]["run"], "r2");
    assert_eq!(
        events[4]["body"],
        json!({"state": "FAILED", "previous_state": "RUNNING"})
    );
}

#[tokio::test]
async fn events_are_paged_with_a_cursor() {
    let Catalog { app: _app, alice } = catalog().await;
    // 11 events: an odd number, so the last page of two is a partial one.
    alice
        .create_version_with("ml", "vision", "resnet", json!({}))
        .await;
    let coll = collection("ml", "vision", "resnet");
    for i in 0..10 {
        expect(
            alice
                .post(&format!("{coll}/tags"), json!({"tag": format!("tag-{i}")}))
                .await,
            StatusCode::OK,
        );
    }
    let all = alice.events("ml").await;
    assert_eq!(all.len(), 11);
    let all_ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();

    let mut walked = Vec::new();
    let mut pages = 0;
    let mut url = "/api/v1/entities/ml/events?limit=2".to_string();
    loop {
        pages += 1;
        assert!(pages <= 6, "the walk does not end");
        let page = expect(alice.get(&url).await, StatusCode::OK);
        let events = page["events"].as_array().unwrap();
        walked.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(events.len(), 2);
                assert_eq!(cursor, events[1]["id"].as_i64().unwrap().to_string());
                url = format!("/api/v1/entities/ml/events?limit=2&after={cursor}");
            }
            None => {
                assert_eq!(events.len(), 1, "the last page is the partial one");
                break;
            }
        }
    }
    assert_eq!(pages, 6);
    // Same events, same order: no duplicates, no gaps.
    assert_eq!(walked, all_ids);
    assert!(walked.windows(2).all(|w| w[0] < w[1]), "{walked:?}");

    // After the last event there is nothing, and no cursor.
    let last = all_ids.last().unwrap();
    let page = expect(
        alice
            .get(&format!("/api/v1/entities/ml/events?after={last}"))
            .await,
        StatusCode::OK,
    );
    assert_eq!(page, json!({"events": [], "next_cursor": null}));
    // The default page holds them all.
    let page = expect(
        alice.get("/api/v1/entities/ml/events").await,
        StatusCode::OK,
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 11);

    // Bad cursors and limits.
    for (query, names) in [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("after=1.5", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=-2", "limit"),
        ("limit=99999999999", "limit"),
    ] {
        let (status, body) = alice
            .get(&format!("/api/v1/entities/ml/events?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let code = body["error"]["code"].as_str().unwrap();
        assert!(
            code == "invalid_input" || code == "invalid_query",
            "{query}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
    expect_error(
        alice.get("/api/v1/entities/ml/events?after=abc").await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
}
