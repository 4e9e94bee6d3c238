//! Artifact collections and versions: creation, lookup by index and alias, aliases, tags,
//! links into registries and unlinks, and the rules `latest` follows.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    catalog, collection, expect, expect_error, project, types, version, Api, Catalog,
};

const REG: &str = "wandb-registry-model";

fn aliases(v: &Value) -> Vec<&str> {
    v["aliases"]
        .as_array()
        .expect("aliases array")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

async fn get_version(api: &Api, e: &str, p: &str, c: &str, v: &str) -> Value {
    expect(api.get(&version(e, p, c, v)).await, StatusCode::OK)
}

#[tokio::test]
async fn versions_are_created_listed_and_found_by_index_and_alias() {
    let Catalog { app: _app, alice } = catalog().await;
    let v0 = alice
        .create_version_with(
            "ml",
            "vision",
            "resnet",
            json!({
                "digest": "sha256:0",
                "description": "first",
                "metadata": {"epochs": 3, "lr": 0.1},
                "aliases": ["best", "candidate"],
                "tags": ["europe", "baseline"],
            }),
        )
        .await;
    assert!(v0["id"].is_i64());
    assert_eq!(v0["entity"], "ml");
    assert_eq!(v0["project"], "vision");
    assert_eq!(v0["collection"], "resnet");
    assert_eq!(v0["collection_kind"], "SEQUENCE");
    assert_eq!(v0["type"], "model");
    assert_eq!(v0["version"], "v0");
    assert_eq!(v0["version_index"], 0);
    assert_eq!(aliases(&v0), ["best", "candidate", "latest"]);
    assert_eq!(v0["tags"], json!(["baseline", "europe"]));
    assert_eq!(v0["digest"], "sha256:0");
    assert_eq!(v0["description"], "first");
    assert_eq!(v0["metadata"], json!({"epochs": 3, "lr": 0.1}));
    assert_eq!(v0["created_by"], "alice");
    assert_eq!(v0["run_id"], Value::Null);
    assert!(v0["created_at"].is_string());
    assert_eq!(
        v0["source"],
        json!({"entity": "ml", "project": "vision", "collection": "resnet", "version": "v0"})
    );

    let v1 = alice
        .create_version_with("ml", "vision", "resnet", json!({}))
        .await;
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["metadata"], json!({}));
    assert_eq!(v1["digest"], Value::Null);
    assert_eq!(aliases(&v1), ["latest"]);
    assert_ne!(v1["id"], v0["id"]);
    // A second collection of another type in the same project.
    alice
        .create_version_with("ml", "vision", "imagenet", json!({"type": "dataset"}))
        .await;

    // Collections.
    let colls = expect(
        alice
            .get(&format!("{}/artifacts", project("ml", "vision")))
            .await,
        StatusCode::OK,
    );
    let colls = colls.as_array().unwrap();
    assert_eq!(colls.len(), 2);
    assert_eq!(colls[0]["name"], "imagenet");
    assert_eq!(colls[0]["type"], "dataset");
    assert_eq!(colls[1]["name"], "resnet");
    let resnet = expect(
        alice.get(&collection("ml", "vision", "resnet")).await,
        StatusCode::OK,
    );
    assert_eq!(resnet, colls[1]);
    assert_eq!(resnet["entity"], "ml");
    assert_eq!(resnet["project"], "vision");
    assert_eq!(resnet["kind"], "SEQUENCE");
    assert_eq!(resnet["type"], "model");
    assert_eq!(resnet["tags"], json!([]));
    assert!(resnet["id"].is_i64());

    // Versions, oldest first; latest has moved to v1.
    let versions = expect(
        alice
            .get(&format!(
                "{}/versions",
                collection("ml", "vision", "resnet")
            ))
            .await,
        StatusCode::OK,
    );
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], "v0");
    assert_eq!(aliases(&versions[0]), ["best", "candidate"]);
    assert_eq!(versions[1], v1);

    // One version by index, by alias and by `latest`.
    let by_index = get_version(&alice, "ml", "vision", "resnet", "v0").await;
    assert_eq!(by_index, versions[0]);
    assert_eq!(
        get_version(&alice, "ml", "vision", "resnet", "best").await,
        by_index
    );
    assert_eq!(
        get_version(&alice, "ml", "vision", "resnet", "latest").await,
        v1
    );
    assert_eq!(
        get_version(&alice, "ml", "vision", "resnet", "v1").await,
        v1
    );

    // A collection holds one type.
    let msg = expect_error(
        alice
            .post(
                &format!("{}/artifacts", project("ml", "vision")),
                json!({"collection": "resnet", "type": "dataset"}),
            )
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert!(msg.contains("\"model\""), "{msg}");

    // The refused version left nothing behind: no index taken, no event written. A version
    // created with an alias another version holds takes it, and the event says from where.
    let events_before = alice.events("ml").await.len();
    let v2 = alice
        .create_version_with(
            "ml",
            "vision",
            "resnet",
            json!({"aliases": ["best", "best"], "tags": ["europe"]}),
        )
        .await;
    assert_eq!(v2["version"], "v2");
    assert_eq!(aliases(&v2), ["best", "latest"]);
    assert_eq!(
        aliases(&get_version(&alice, "ml", "vision", "resnet", "v0").await),
        ["candidate"]
    );
    let events = alice.events("ml").await;
    assert_eq!(
        types(&events[events_before..]),
        ["CREATE_ARTIFACT", "ADD_ARTIFACT_ALIAS", "ADD_ARTIFACT_TAG"]
    );
    let moved = &events[events_before + 1];
    assert_eq!(moved["alias"], "best");
    assert_eq!(moved["version"], "v2");
    assert_eq!(moved["body"]["previous_version"], "v0");
}

#[tokio::test]
async fn aliases_and_tags_are_added_and_removed() {
    let Catalog { app: _app, alice } = catalog().await;
    alice
        .create_version_with("ml", "vision", "resnet", json!({}))
        .await;
    let v0 = version("ml", "vision", "resnet", "v0");

    let after = expect(
        alice
            .post(
                &format!("{v0}/aliases"),
                json!({"alias": "production candidate"}),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(after["version"], "v0");
    assert_eq!(aliases(&after), ["latest", "production candidate"]);
    let found = get_version(&alice, "ml", "vision", "resnet", "production candidate").await;
    assert_eq!(found["version"], "v0");
    let after = expect(
        alice
            .delete(&format!(
                "{v0}/aliases/{}",
                crate::helpers::seg("production candidate")
            ))
            .await,
        StatusCode::OK,
    );
    assert_eq!(aliases(&after), ["latest"]);
    expect_error(
        alice
            .get(&version("ml", "vision", "resnet", "production candidate"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Version tags.
    let after = expect(
        alice
            .post(&format!("{v0}/tags"), json!({"tag": "reviewed"}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(after["tags"], json!(["reviewed"]));
    // Tags are not unique across versions.
    alice
        .create_version_with("ml", "vision", "resnet", json!({"tags": ["reviewed"]}))
        .await;
    let after = expect(
        alice
            .post(
                &format!("{}/tags", version("ml", "vision", "resnet", "latest")),
                json!({"tag": "gpu"}),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(after["version"], "v1");
    assert_eq!(after["tags"], json!(["gpu", "reviewed"]));
    let after = expect(
        alice.delete(&format!("{v0}/tags/reviewed")).await,
        StatusCode::OK,
    );
    assert_eq!(after["tags"], json!([]));
    assert_eq!(
        get_version(&alice, "ml", "vision", "resnet", "v1").await["tags"],
        json!(["gpu", "reviewed"])
    );

    // Collection tags.
    let coll = collection("ml", "vision", "resnet");
    let after = expect(
        alice
            .post(&format!("{coll}/tags"), json!({"tag": "vision"}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(after["name"], "resnet");
    assert_eq!(after["tags"], json!(["vision"]));
    assert_eq!(
        expect(alice.get(&coll).await, StatusCode::OK)["tags"],
        json!(["vision"])
    );
    let after = expect(
        alice.delete(&format!("{coll}/tags/vision")).await,
        StatusCode::OK,
    );
    assert_eq!(after["tags"], json!([]));
    expect_error(
        alice.delete(&format!("{coll}/tags/vision")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn an_alias_moves_to_the_version_it_is_added_to() {
    let Catalog { app: _app, alice } = catalog().await;
    for _ in 0..2 {
        alice
            .create_version_with("ml", "vision", "resnet", json!({}))
            .await;
    }
    let v = |r: &str| version("ml", "vision", "resnet", r);
    expect(
        alice
            .post(&format!("{}/aliases", v("v0")), json!({"alias": "prod"}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        get_version(&alice, "ml", "vision", "resnet", "prod").await["version"],
        "v0"
    );
    let moved = expect(
        alice
            .post(&format!("{}/aliases", v("v1")), json!({"alias": "prod"}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(aliases(&moved), ["latest", "prod"]);
    assert_eq!(
        aliases(&get_version(&alice, "ml", "vision", "resnet", "v0").await),
        Vec::<&str>::new()
    );
    assert_eq!(
        get_version(&alice, "ml", "vision", "resnet", "prod").await["version"],
        "v1"
    );
    // Removing it from the version that no longer holds it is a 404.
    expect_error(
        alice.delete(&format!("{}/aliases/prod", v("v0"))).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn latest_follows_the_newest_version() {
    let Catalog { app: _app, alice } = catalog().await;
    for i in 0..3 {
        let v = alice
            .create_version_with("ml", "vision", "resnet", json!({}))
            .await;
        assert_eq!(aliases(&v), ["latest"]);
        assert_eq!(
            get_version(&alice, "ml", "vision", "resnet", "latest").await["version"],
            format!("v{i}")
        );
        if i > 0 {
            let prev = get_version(&alice, "ml", "vision", "resnet", &format!("v{}", i - 1)).await;
            assert_eq!(aliases(&prev), Vec::<&str>::new());
        }
    }
}

#[tokio::test]
async fn links_put_versions_into_registry_portfolios() {
    let Catalog { app: _app, alice } = catalog().await;
    let v0 = alice
        .create_version_with("ml", "vision", "resnet", json!({"digest": "d0"}))
        .await;
    let link = |r: &str| format!("{}/links", version("ml", "vision", "resnet", r));

    let linked = expect(
        alice
            .post(
                &link("v0"),
                json!({"registry": "acme/model", "collection": "classifier", "aliases": ["prod", "staging"]}),
            )
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(
        linked["id"], v0["id"],
        "the same version, seen through the portfolio"
    );
    assert_eq!(linked["entity"], "acme");
    assert_eq!(linked["project"], REG);
    assert_eq!(linked["collection"], "classifier");
    assert_eq!(linked["collection_kind"], "PORTFOLIO");
    assert_eq!(linked["type"], "model");
    assert_eq!(linked["version"], "v0");
    assert_eq!(aliases(&linked), ["latest", "prod", "staging"]);
    assert_eq!(linked["digest"], "d0");
    assert_eq!(linked["created_by"], "alice");
    assert_eq!(linked["source"], v0["source"]);

    // The portfolio is a collection of the registry.
    let portfolio = expect(
        alice.get(&collection("acme", REG, "classifier")).await,
        StatusCode::OK,
    );
    assert_eq!(portfolio["kind"], "PORTFOLIO");
    assert_eq!(portfolio["type"], "model");
    assert_eq!(
        get_version(&alice, "acme", REG, "classifier", "prod").await,
        linked
    );
    // The source keeps its own aliases.
    assert_eq!(
        aliases(&get_version(&alice, "ml", "vision", "resnet", "v0").await),
        ["latest"]
    );

    // The registry's full project name and the default collection name work too.
    let again = expect(
        alice
            .post(
                &link("v0"),
                json!({"registry": "acme/wandb-registry-model"}),
            )
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(again["collection"], "resnet");
    assert_eq!(aliases(&again), ["latest"]);

    // Unlink: the membership goes, the version stays.
    assert_eq!(
        expect(
            alice
                .delete(&version("acme", REG, "classifier", "v0"))
                .await,
            StatusCode::NO_CONTENT
        ),
        Value::Null
    );
    expect_error(
        alice.get(&version("acme", REG, "classifier", "v0")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        alice.get(&version("acme", REG, "classifier", "prod")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        alice
            .delete(&version("acme", REG, "classifier", "v0"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    get_version(&alice, "ml", "vision", "resnet", "v0").await;
    // Once unlinked it can be linked again, at the portfolio's next index.
    let relinked = expect(
        alice
            .post(
                &link("v0"),
                json!({"registry": "acme/model", "collection": "classifier"}),
            )
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(relinked["version"], "v1");
}

#[tokio::test]
async fn latest_in_a_portfolio_follows_the_newest_link_and_falls_back_on_unlink() {
    let Catalog { app: _app, alice } = catalog().await;
    for _ in 0..3 {
        alice
            .create_version_with("ml", "vision", "resnet", json!({}))
            .await;
    }
    let link = |r: &str| format!("{}/links", version("ml", "vision", "resnet", r));
    let latest = || get_version(&alice, "acme", REG, "resnet", "latest");

    // Link out of order: the newest link, not the newest source version, is `latest`.
    let l0 = expect(
        alice
            .post(&link("v2"), json!({"registry": "acme/model"}))
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(l0["version"], "v0");
    assert_eq!(l0["source"]["version"], "v2");
    assert_eq!(latest().await["source"]["version"], "v2");
    let l1 = expect(
        alice
            .post(&link("v0"), json!({"registry": "acme/model"}))
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(l1["version"], "v1");
    assert_eq!(aliases(&l1), ["latest"]);
    let now = latest().await;
    assert_eq!(now["version"], "v1");
    assert_eq!(now["source"]["version"], "v0");
    assert_eq!(
        aliases(&get_version(&alice, "acme", REG, "resnet", "v0").await),
        Vec::<&str>::new()
    );

    // Unlinking the newest link moves latest back to the previous one.
    expect(
        alice.delete(&version("acme", REG, "resnet", "v1")).await,
        StatusCode::NO_CONTENT,
    );
    let now = latest().await;
    assert_eq!(now["version"], "v0");
    assert_eq!(now["source"]["version"], "v2");
    assert_eq!(aliases(&now), ["latest"]);

    // Unlinking the last link leaves no latest at all.
    expect(
        alice
            .delete(&version("acme", REG, "resnet", "latest"))
            .await,
        StatusCode::NO_CONTENT,
    );
    expect_error(
        alice.get(&version("acme", REG, "resnet", "latest")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let versions = expect(
        alice
            .get(&format!("{}/versions", collection("acme", REG, "resnet")))
            .await,
        StatusCode::OK,
    );
    assert_eq!(versions, json!([]));
}

#[tokio::test]
async fn a_bare_registry_name_means_the_sources_own_organization() {
    let Catalog { app: _app, alice } = catalog().await;
    alice.create_project("acme", "research").await;
    alice
        .create_version_with("acme", "research", "bert", json!({}))
        .await;
    let linked = expect(
        alice
            .post(
                &format!("{}/links", version("acme", "research", "bert", "v0")),
                json!({"registry": "model"}),
            )
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(linked["entity"], "acme");
    assert_eq!(linked["project"], REG);
    assert_eq!(linked["source"]["project"], "research");
}

#[tokio::test]
async fn versions_can_name_the_run_that_made_them() {
    let Catalog { app: _app, alice } = catalog().await;
    alice
        .create_run("ml", "vision", json!({"id": "run-1"}))
        .await;
    let v = alice
        .create_version_with("ml", "vision", "resnet", json!({"run_id": "run-1"}))
        .await;
    assert_eq!(v["run_id"], "run-1");
    let msg = expect_error(
        alice
            .post(
                &format!("{}/artifacts", project("ml", "vision")),
                json!({"collection": "resnet", "type": "model", "run_id": "run-2"}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(msg.contains("run-2"), "{msg}");
}

#[tokio::test]
async fn versions_created_at_once_each_get_their_own_index_and_event() {
    let Catalog { app: _app, alice } = catalog().await;
    const N: usize = 40;
    // Half of them in one collection (which exists only once the first lands), the rest
    // spread over a second; all at once.
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let alice = alice.clone();
            let coll = if i % 2 == 0 { "resnet" } else { "vit" };
            tokio::spawn(async move {
                alice
                    .create_version_with("ml", "vision", coll, json!({ "tags": [format!("t{i}")] }))
                    .await
            })
        })
        .collect();
    let mut created = Vec::with_capacity(N);
    for t in tasks {
        created.push(t.await.expect("creation task"));
    }
    for coll in ["resnet", "vit"] {
        let mut indexes: Vec<i64> = created
            .iter()
            .filter(|v| v["collection"] == coll)
            .map(|v| v["version_index"].as_i64().unwrap())
            .collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (0..(N / 2) as i64).collect::<Vec<_>>(), "{coll}");
        let newest = format!("v{}", N / 2 - 1);
        assert_eq!(
            get_version(&alice, "ml", "vision", coll, "latest").await["version"],
            newest.as_str()
        );
    }
    // One CREATE_ARTIFACT and one ADD_ARTIFACT_TAG per version, naming the version it made.
    let events = alice.events("ml").await;
    for v in &created {
        let about: Vec<String> = events
            .iter()
            .filter(|e| e["collection"] == v["collection"] && e["version"] == v["version"])
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(about, ["CREATE_ARTIFACT", "ADD_ARTIFACT_TAG"], "{v}");
    }
    assert_eq!(events.len(), 2 * N);
}

/// A bare registry name in a link (`model`, `wandb-registry-model`) is the registry of the
/// organization the source's team belongs to, as in W&B.
#[tokio::test]
async fn a_bare_registry_name_is_in_the_teams_organization() {
    let Catalog { app: _app, alice } = catalog().await;
    alice
        .create_version_with("ml", "vision", "resnet", json!({}))
        .await;
    let link = format!("{}/links", version("ml", "vision", "resnet", "v0"));
    // While `ml` is in no organization, a bare name is looked for in `ml` itself.
    let msg = expect_error(
        alice.post(&link, json!({"registry": "model"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(msg.contains("\"ml\""), "{msg}");

    expect(
        alice
            .patch("/api/v1/entities/ml", json!({"organization": "acme"}))
            .await,
        StatusCode::OK,
    );
    for (registry, collection) in [("model", "clf"), ("wandb-registry-model", "clf2")] {
        let linked = expect(
            alice
                .post(
                    &link,
                    json!({"registry": registry, "collection": collection}),
                )
                .await,
            StatusCode::CREATED,
        );
        assert_eq!(linked["entity"], "acme", "{registry}");
        assert_eq!(linked["project"], REG, "{registry}");
        assert_eq!(linked["collection"], collection, "{registry}");
    }
    // A registry the organization does not have is still a 404 naming it.
    let msg = expect_error(
        alice.post(&link, json!({"registry": "dataset"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(
        msg.contains("wandb-registry-dataset") && msg.contains("acme"),
        "{msg}"
    );
}
