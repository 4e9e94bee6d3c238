//! Authentication (bearer and basic), roles within an entity, and isolation between teams.

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    catalog, collection, expect, expect_error, project, projects, run, spawn_app, version, Api,
    Catalog, ADMIN_KEY,
};

#[tokio::test]
async fn api_keys_are_required_and_checked() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let key = alice.key().unwrap().to_string();
    let basic = |user: &str, key: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{key}"))
        )
    };

    // A valid key works as a bearer token and as basic auth `api:KEY` (what wandb sends).
    for header in [format!("Bearer {key}"), basic("api", &key)] {
        let answer = alice
            .send(
                alice
                    .unauthenticated(Method::GET, "/api/v1/viewer")
                    .header(AUTHORIZATION, &header),
            )
            .await;
        assert_eq!(expect(answer, StatusCode::OK)["user"]["username"], "alice");
    }
    // A write with basic auth too.
    let answer = alice
        .send(
            alice
                .unauthenticated(Method::POST, "/api/v1/entities")
                .header(AUTHORIZATION, basic("api", &key))
                .json(&json!({"name": "ml", "kind": "team"})),
        )
        .await;
    expect(answer, StatusCode::CREATED);

    let bad_headers = [
        format!("Bearer {key}x"),
        "Bearer ".to_string(),
        format!("Bearer {}", "0".repeat(40)),
        basic("api", "wrong-key-wrong-key-wrong-key-wrong-key1"),
        basic("api", ""),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("no-colon")
        ),
        "Basic !!!not-base64!!!".to_string(),
        format!("Token {key}"),
        key.clone(),
    ];
    for header in &bad_headers {
        for (method, path) in [
            (Method::GET, "/api/v1/viewer"),
            (Method::GET, "/api/v1/entities/ml"),
            (Method::POST, "/api/v1/entities"),
        ] {
            let res = alice
                .unauthenticated(method.clone(), path)
                .header(AUTHORIZATION, header)
                .json(&json!({"name": "other", "kind": "team"}))
                .send()
                .await
                .unwrap();
            assert!(res.headers().get(WWW_AUTHENTICATE).is_some());
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            expect_error((status, body), StatusCode::UNAUTHORIZED, "unauthenticated");
        }
    }
    // No header at all.
    let anon = app.anonymous();
    let msg = expect_error(
        anon.get("/api/v1/viewer").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert!(msg.contains("Authorization"), "{msg}");
    expect_error(
        anon.post("/api/v1/users", json!({"username": "mallory"}))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    expect_error(
        anon.get("/api/v1/entities/ml/events").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // Nothing was created by the refused requests.
    let entities = expect(app.admin.get("/api/v1/entities").await, StatusCode::OK);
    assert_eq!(entities.as_array().unwrap().len(), 1, "{entities}");
    expect_error(
        app.admin.get("/api/v1/entities/other").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        app.admin.get("/api/v1/entities/mallory").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // The bootstrap key works.
    assert_eq!(app.admin.key(), Some(ADMIN_KEY));
}

#[tokio::test]
async fn only_server_admins_create_users() {
    let Catalog { app, alice } = catalog().await;
    let msg = expect_error(
        alice
            .post("/api/v1/users", json!({"username": "bob"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert!(msg.contains("admin"), "{msg}");
    // Not even as ADMIN of a team.
    expect_error(
        alice
            .post("/api/v1/users", json!({"username": "bob", "admin": true}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    expect_error(
        app.admin.get("/api/v1/entities/bob").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

/// Every write a MEMBER may do and a VIEWER may not, against the `catalog()` fixture with a
/// version `resnet:v0` and a run `r1`.
fn catalog_writes() -> Vec<(Method, String, Value)> {
    let v0 = version("ml", "vision", "resnet", "v0");
    vec![
        (Method::POST, projects("ml"), json!({"name": "p2"})),
        (
            Method::POST,
            "/api/v1/entities/acme/registries".to_string(),
            json!({"name": "r2"}),
        ),
        (
            Method::POST,
            format!("{}/artifacts", project("ml", "vision")),
            json!({"collection": "resnet", "type": "model"}),
        ),
        (
            Method::POST,
            format!("{v0}/aliases"),
            json!({"alias": "prod"}),
        ),
        (Method::DELETE, format!("{v0}/aliases/best"), Value::Null),
        (Method::POST, format!("{v0}/tags"), json!({"tag": "t"})),
        (Method::DELETE, format!("{v0}/tags/t0"), Value::Null),
        (
            Method::POST,
            format!("{}/tags", collection("ml", "vision", "resnet")),
            json!({"tag": "t"}),
        ),
        (
            Method::DELETE,
            format!("{}/tags/c0", collection("ml", "vision", "resnet")),
            Value::Null,
        ),
        // Unlink first: `fill` linked v0 already.
        (
            Method::DELETE,
            version("acme", "wandb-registry-model", "resnet", "v0"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("{v0}/links"),
            json!({"registry": "acme/model"}),
        ),
        (
            Method::POST,
            format!("{}/runs", project("ml", "vision")),
            json!({"id": "r2"}),
        ),
        (
            Method::POST,
            format!("{}/history", run("ml", "vision", "r1")),
            json!({"rows": [{"step": 0, "values": {"loss": 1}}]}),
        ),
        (
            Method::PATCH,
            run("ml", "vision", "r1"),
            json!({"state": "FINISHED"}),
        ),
    ]
}

/// Every read in the `catalog()` fixture's entities.
fn catalog_reads() -> Vec<String> {
    vec![
        "/api/v1/entities/ml".to_string(),
        "/api/v1/entities/ml/members".to_string(),
        projects("ml"),
        project("ml", "vision"),
        format!("{}/artifacts", project("ml", "vision")),
        collection("ml", "vision", "resnet"),
        format!("{}/versions", collection("ml", "vision", "resnet")),
        version("ml", "vision", "resnet", "v0"),
        version("ml", "vision", "resnet", "latest"),
        format!("{}/runs", project("ml", "vision")),
        run("ml", "vision", "r1"),
        format!("{}/history", run("ml", "vision", "r1")),
        "/api/v1/entities/ml/events".to_string(),
        "/api/v1/entities/acme".to_string(),
        projects("acme"),
        version("acme", "wandb-registry-model", "resnet", "v0"),
        "/api/v1/entities/acme/events".to_string(),
    ]
}

/// Fills the fixture: a version with an alias and tags, linked into the registry, and a run.
async fn fill(alice: &Api) {
    alice
        .create_version_with(
            "ml",
            "vision",
            "resnet",
            json!({"aliases": ["best"], "tags": ["t0"]}),
        )
        .await;
    expect(
        alice
            .post(
                &format!("{}/tags", collection("ml", "vision", "resnet")),
                json!({"tag": "c0"}),
            )
            .await,
        StatusCode::OK,
    );
    expect(
        alice
            .post(
                &format!("{}/links", version("ml", "vision", "resnet", "v0")),
                json!({"registry": "acme/model"}),
            )
            .await,
        StatusCode::CREATED,
    );
    alice.create_run("ml", "vision", json!({"id": "r1"})).await;
}

#[tokio::test]
async fn viewers_read_but_do_not_write() {
    let Catalog { app, alice } = catalog().await;
    fill(&alice).await;
    let carol = app.create_user("carol").await;
    alice.set_member("ml", "carol", "VIEWER").await;
    alice.set_member("acme", "carol", "VIEWER").await;
    let ml_events = alice.events("ml").await;
    let acme_events = alice.events("acme").await;

    for path in catalog_reads() {
        let (status, body) = carol.get(&path).await;
        assert_eq!(status, StatusCode::OK, "VIEWER GET {path}: {body}");
    }
    assert_eq!(
        expect(carol.get("/api/v1/entities/ml").await, StatusCode::OK)["role"],
        "VIEWER"
    );
    for (method, path, body) in catalog_writes() {
        let msg = expect_error(
            carol.call(&method, &path, &body).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert!(msg.contains("MEMBER"), "VIEWER {method} {path}: {msg}");
    }
    // Nor manage members.
    expect_error(
        carol
            .put(
                "/api/v1/entities/ml/members/carol",
                json!({"role": "ADMIN"}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    expect_error(
        carol.delete("/api/v1/entities/ml/members/alice").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(alice.events("ml").await, ml_events);
    assert_eq!(alice.events("acme").await, acme_events);
    assert_eq!(
        expect(alice.get(&projects("ml")).await, StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn members_write_the_catalog_but_do_not_manage_members() {
    let Catalog { app, alice } = catalog().await;
    fill(&alice).await;
    let bob = app.create_user("bob").await;
    app.create_user("carol").await;
    alice.set_member("ml", "bob", "MEMBER").await;
    alice.set_member("acme", "bob", "MEMBER").await;

    for (method, path, body) in catalog_writes() {
        let (status, answer) = bob.call(&method, &path, &body).await;
        assert!(
            status.is_success(),
            "MEMBER {method} {path}: {status} {answer}"
        );
    }
    for path in catalog_reads() {
        if path.contains("wandb-registry-model") {
            continue; // bob unlinked and relinked v0 above
        }
        let (status, body) = bob.get(&path).await;
        assert_eq!(status, StatusCode::OK, "MEMBER GET {path}: {body}");
    }
    let members_before = expect(
        alice.get("/api/v1/entities/ml/members").await,
        StatusCode::OK,
    );
    for (answer, what) in [
        (
            bob.put(
                "/api/v1/entities/ml/members/carol",
                json!({"role": "VIEWER"}),
            )
            .await,
            "add",
        ),
        (
            bob.put("/api/v1/entities/ml/members/bob", json!({"role": "ADMIN"}))
                .await,
            "promote self",
        ),
        (
            bob.delete("/api/v1/entities/ml/members/alice").await,
            "remove",
        ),
    ] {
        let msg = expect_error(answer, StatusCode::FORBIDDEN, "forbidden");
        assert!(msg.contains("ADMIN"), "{what}: {msg}");
    }
    assert_eq!(
        expect(
            alice.get("/api/v1/entities/ml/members").await,
            StatusCode::OK
        ),
        members_before
    );
}

#[tokio::test]
async fn admins_manage_members_but_never_remove_the_last_admin() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    app.create_user("carol").await;
    alice.create_team("ml").await;

    // The only ADMIN can neither be demoted nor removed.
    for role in ["MEMBER", "VIEWER"] {
        let msg = expect_error(
            alice
                .put("/api/v1/entities/ml/members/alice", json!({"role": role}))
                .await,
            StatusCode::CONFLICT,
            "conflict",
        );
        assert!(msg.contains("ADMIN"), "{msg}");
    }
    expect_error(
        alice.delete("/api/v1/entities/ml/members/alice").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // Not even by a server admin.
    expect_error(
        app.admin.delete("/api/v1/entities/ml/members/alice").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(
        expect(
            alice.get("/api/v1/entities/ml/members").await,
            StatusCode::OK
        ),
        json!([{"username": "alice", "role": "ADMIN"}])
    );

    // A second ADMIN may manage members, and then the first may step down.
    alice.set_member("ml", "bob", "ADMIN").await;
    bob.set_member("ml", "carol", "MEMBER").await;
    bob.set_member("ml", "alice", "MEMBER").await;
    expect_error(
        bob.put("/api/v1/entities/ml/members/bob", json!({"role": "VIEWER"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    expect_error(
        bob.delete("/api/v1/entities/ml/members/bob").await,
        StatusCode::CONFLICT,
        "conflict",
    );
    expect(
        bob.delete("/api/v1/entities/ml/members/carol").await,
        StatusCode::NO_CONTENT,
    );
    assert_eq!(
        expect(bob.get("/api/v1/entities/ml/members").await, StatusCode::OK),
        json!([{"username": "alice", "role": "MEMBER"}, {"username": "bob", "role": "ADMIN"}])
    );
    // alice is a MEMBER now.
    expect_error(
        alice
            .put(
                "/api/v1/entities/ml/members/carol",
                json!({"role": "VIEWER"}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

/// Replaces whole-word occurrences of the entity names by a placeholder.
fn without_names(s: &str, names: &[&str]) -> String {
    let mut out = s.to_string();
    for n in names {
        out = out.replace(&format!("\"{n}\""), "\"<name>\"");
    }
    out
}

#[tokio::test]
async fn other_teams_are_invisible() {
    let app = spawn_app().await;
    // bob's team `teamb` and organization `orgb`, filled with everything there is.
    let bob = app.create_user("bob").await;
    bob.create_team("teamb").await;
    bob.create_project("teamb", "p").await;
    bob.create_org("orgb").await;
    bob.create_registry("orgb", "model").await;
    bob.create_version_with("teamb", "p", "c", json!({"aliases": ["prod"]}))
        .await;
    expect(
        bob.post(
            &format!("{}/links", version("teamb", "p", "c", "v0")),
            json!({"registry": "orgb/model"}),
        )
        .await,
        StatusCode::CREATED,
    );
    bob.create_run("teamb", "p", json!({"id": "r"})).await;
    // eve has her own team, but is in none of bob's.
    let eve = app.create_user("eve").await;
    eve.create_team("teame").await;
    eve.create_project("teame", "mine").await;
    eve.create_version_with("teame", "mine", "c", json!({}))
        .await;
    let teamb_events = bob.events("teamb").await;
    let orgb_events = bob.events("orgb").await;

    let reads = |e: &str, o: &str| {
        vec![
            format!("/api/v1/entities/{e}"),
            format!("/api/v1/entities/{e}/members"),
            projects(e),
            project(e, "p"),
            format!("{}/artifacts", project(e, "p")),
            collection(e, "p", "c"),
            format!("{}/versions", collection(e, "p", "c")),
            version(e, "p", "c", "v0"),
            version(e, "p", "c", "prod"),
            format!("{}/runs", project(e, "p")),
            run(e, "p", "r"),
            format!("{}/history", run(e, "p", "r")),
            format!("/api/v1/entities/{e}/events"),
            projects(o),
            version(o, "wandb-registry-model", "c", "v0"),
            format!("/api/v1/entities/{o}/events"),
        ]
    };
    let writes = |e: &str, o: &str| {
        let v0 = version(e, "p", "c", "v0");
        vec![
            (Method::POST, projects(e), json!({"name": "p2"})),
            (
                Method::POST,
                format!("/api/v1/entities/{o}/registries"),
                json!({"name": "r2"}),
            ),
            (
                Method::PUT,
                format!("/api/v1/entities/{e}/members/eve"),
                json!({"role": "ADMIN"}),
            ),
            (
                Method::DELETE,
                format!("/api/v1/entities/{e}/members/bob"),
                Value::Null,
            ),
            (
                Method::POST,
                format!("{}/artifacts", project(e, "p")),
                json!({"collection": "c", "type": "model"}),
            ),
            (Method::POST, format!("{v0}/aliases"), json!({"alias": "x"})),
            (Method::DELETE, format!("{v0}/aliases/prod"), Value::Null),
            (Method::POST, format!("{v0}/tags"), json!({"tag": "x"})),
            (
                Method::POST,
                format!("{}/tags", collection(e, "p", "c")),
                json!({"tag": "x"}),
            ),
            (
                Method::POST,
                format!("{v0}/links"),
                json!({"registry": format!("{o}/model")}),
            ),
            (
                Method::DELETE,
                version(o, "wandb-registry-model", "c", "v0"),
                Value::Null,
            ),
            (
                Method::POST,
                format!("{}/runs", project(e, "p")),
                json!({"id": "r2"}),
            ),
            (Method::PATCH, run(e, "p", "r"), json!({"state": "KILLED"})),
            (
                Method::POST,
                format!("{}/history", run(e, "p", "r")),
                json!({"rows": [{"step": 0, "values": {"loss": 1}}]}),
            ),
            // A link from eve's own project into bob's registry.
            (
                Method::POST,
                format!("{}/links", version("teame", "mine", "c", "v0")),
                json!({"registry": format!("{o}/model")}),
            ),
        ]
    };

    let names = ["teamb", "orgb", "ghost-team", "ghost-org"];
    let existing_reads = reads("teamb", "orgb");
    let ghost_reads = reads("ghost-team", "ghost-org");
    for (real, ghost) in existing_reads.iter().zip(&ghost_reads) {
        let real_msg = expect_error(eve.get(real).await, StatusCode::NOT_FOUND, "not_found");
        let ghost_msg = expect_error(eve.get(ghost).await, StatusCode::NOT_FOUND, "not_found");
        assert_eq!(
            without_names(&real_msg, &names),
            without_names(&ghost_msg, &names),
            "GET {real} tells more than GET {ghost}"
        );
        // The owner sees it.
        let (status, body) = bob.get(real).await;
        assert_eq!(status, StatusCode::OK, "owner GET {real}: {body}");
    }
    for ((method, real, body), (_, ghost, ghost_body)) in writes("teamb", "orgb")
        .into_iter()
        .zip(writes("ghost-team", "ghost-org"))
    {
        let real_msg = expect_error(
            eve.call(&method, &real, &body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        let ghost_msg = expect_error(
            eve.call(&method, &ghost, &ghost_body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_eq!(
            without_names(&real_msg, &names),
            without_names(&ghost_msg, &names),
            "{method} {real} tells more than {method} {ghost}"
        );
    }

    // bob's entities are not in eve's lists, and nothing of eve's attempts reached them.
    let listed = expect(eve.get("/api/v1/entities").await, StatusCode::OK);
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|er| er["entity"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["eve", "teame"]);
    assert_eq!(bob.events("teamb").await, teamb_events);
    assert_eq!(bob.events("orgb").await, orgb_events);
    assert_eq!(
        expect(
            bob.get("/api/v1/entities/teamb/members").await,
            StatusCode::OK
        ),
        json!([{"username": "bob", "role": "ADMIN"}])
    );
}

#[tokio::test]
async fn every_api_route_needs_a_valid_key() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    let wrong = app.with_key(Some("not-a-key-not-a-key-not-a-key-not-a-key0"));
    let mut checked = 0;
    for (template, methods) in crate::ops::route_table() {
        // Health checks and the API's own description are public.
        if !template.starts_with("/api/v1") || template.ends_with("openapi.json") {
            continue;
        }
        let path = crate::ops::concrete(&template);
        for m in methods {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            for api in [&anon, &wrong] {
                let mut rb = api.request(method.clone(), &path);
                if method != Method::GET && method != Method::DELETE {
                    rb = rb.json(&json!({}));
                }
                expect_error(
                    api.send(rb).await,
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                );
                checked += 1;
            }
        }
    }
    // Every method of every /api/v1 route but the OpenAPI document, both ways: at least the
    // 32 of the first REST API.
    assert!(checked >= 2 * 32, "{checked}");
}
