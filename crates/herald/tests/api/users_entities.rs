//! Users, the viewer, entities, members, projects and registries on their good paths.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{expect, expect_error, project, projects, spawn_app};

#[tokio::test]
async fn admin_creates_users_with_a_working_key() {
    let app = spawn_app().await;
    let created = expect(
        app.admin
            .post(
                "/api/v1/users",
                json!({"username": "alice", "email": "alice@example.com"}),
            )
            .await,
        StatusCode::CREATED,
    );
    let user = &created["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["is_admin"], false);
    assert!(user["id"].is_i64());
    assert!(user["created_at"].is_string());
    let key = created["api_key"].as_str().unwrap();
    assert_eq!(key.len(), 40);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));

    let alice = app.with_key(Some(key));
    let viewer = expect(alice.get("/api/v1/viewer").await, StatusCode::OK);
    assert_eq!(viewer["user"], *user);
    // The personal entity comes with the user, alice as its ADMIN.
    let entities = viewer["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1);
    assert_eq!(entities[0]["entity"]["name"], "alice");
    assert_eq!(entities[0]["entity"]["kind"], "user");
    assert_eq!(entities[0]["role"], "ADMIN");

    let viewer = expect(app.admin.get("/api/v1/viewer").await, StatusCode::OK);
    assert_eq!(viewer["user"]["username"], "admin");
    assert_eq!(viewer["user"]["is_admin"], true);

    // A username is taken once; the name is shared with entities.
    expect_error(
        app.admin
            .post("/api/v1/users", json!({"username": "alice"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    alice.create_team("ml").await;
    let msg = expect_error(
        app.admin
            .post("/api/v1/users", json!({"username": "ml"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert!(msg.contains("\"ml\""), "{msg}");
    // ... and the refused user was not half-created.
    let members = expect(
        app.admin.get("/api/v1/entities/ml/members").await,
        StatusCode::OK,
    );
    assert_eq!(members, json!([{"username": "alice", "role": "ADMIN"}]));
}

#[tokio::test]
async fn server_admins_can_create_more_admins() {
    let app = spawn_app().await;
    let created = expect(
        app.admin
            .post("/api/v1/users", json!({"username": "root2", "admin": true}))
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(created["user"]["is_admin"], true);
    let root2 = app.with_key(created["api_key"].as_str());
    expect(
        root2
            .post("/api/v1/users", json!({"username": "bob"}))
            .await,
        StatusCode::CREATED,
    );
}

#[tokio::test]
async fn teams_and_organizations_with_members() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    app.create_user("bob").await;

    let team = alice.create_team("ml").await;
    assert!(team["id"].is_i64());
    assert!(team["created_at"].is_string());
    let org = alice.create_org("acme").await;
    assert_eq!(org["kind"], "organization");
    expect_error(
        alice
            .post("/api/v1/entities", json!({"name": "ml", "kind": "team"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );

    let list = expect(alice.get("/api/v1/entities").await, StatusCode::OK);
    let names: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|er| {
            (
                er["entity"]["name"].as_str().unwrap(),
                er["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("acme", "ADMIN"), ("alice", "ADMIN"), ("ml", "ADMIN")]
    );

    let one = expect(alice.get("/api/v1/entities/ml").await, StatusCode::OK);
    assert_eq!(one["entity"], team);
    assert_eq!(one["role"], "ADMIN");

    let members = "/api/v1/entities/ml/members";
    assert_eq!(
        expect(alice.get(members).await, StatusCode::OK),
        json!([{"username": "alice", "role": "ADMIN"}])
    );
    assert_eq!(
        alice.set_member("ml", "bob", "MEMBER").await,
        json!({"username": "bob", "role": "MEMBER"})
    );
    assert_eq!(
        expect(alice.get(members).await, StatusCode::OK),
        json!([{"username": "alice", "role": "ADMIN"}, {"username": "bob", "role": "MEMBER"}])
    );
    // Setting the same role again is fine; changing it changes it.
    alice.set_member("ml", "bob", "MEMBER").await;
    alice.set_member("ml", "bob", "VIEWER").await;
    assert_eq!(
        expect(alice.get(members).await, StatusCode::OK)[1],
        json!({"username": "bob", "role": "VIEWER"})
    );
    assert_eq!(
        expect(
            alice.delete("/api/v1/entities/ml/members/bob").await,
            StatusCode::NO_CONTENT
        ),
        Value::Null
    );
    assert_eq!(
        expect(alice.get(members).await, StatusCode::OK),
        json!([{"username": "alice", "role": "ADMIN"}])
    );
    expect_error(
        alice.delete("/api/v1/entities/ml/members/bob").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    expect_error(
        alice
            .put(
                "/api/v1/entities/ml/members/nobody",
                json!({"role": "MEMBER"}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Personal entities have exactly one member.
    let msg = expect_error(
        alice
            .put(
                "/api/v1/entities/alice/members/bob",
                json!({"role": "MEMBER"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("personal"), "{msg}");
}

#[tokio::test]
async fn projects_and_registries() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    alice.create_team("ml").await;
    alice.create_org("acme").await;

    let p = expect(
        alice
            .post(
                &projects("ml"),
                json!({"name": "vision", "description": "image models"}),
            )
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(p["entity"], "ml");
    assert_eq!(p["name"], "vision");
    assert_eq!(p["description"], "image models");
    assert_eq!(p["is_registry"], false);
    assert!(p["id"].is_i64());
    let q = alice.create_project("ml", "audio").await;
    assert_eq!(q["description"], Value::Null);
    expect_error(
        alice.post(&projects("ml"), json!({"name": "vision"})).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(
        expect(alice.get(&project("ml", "vision")).await, StatusCode::OK),
        p
    );
    assert_eq!(
        expect(alice.get(&projects("ml")).await, StatusCode::OK),
        json!([q, p])
    );

    let r = expect(
        alice
            .post(
                "/api/v1/entities/acme/registries",
                json!({"name": "model", "description": "blessed models"}),
            )
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(r["entity"], "acme");
    assert_eq!(r["name"], "wandb-registry-model");
    assert_eq!(r["is_registry"], true);
    assert_eq!(r["description"], "blessed models");
    assert_eq!(
        expect(
            alice.get(&project("acme", "wandb-registry-model")).await,
            StatusCode::OK
        ),
        r
    );
    assert_eq!(
        expect(alice.get(&projects("acme")).await, StatusCode::OK),
        json!([r])
    );
    expect_error(
        alice
            .post("/api/v1/entities/acme/registries", json!({"name": "model"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // Registries are created as registries, not as projects with the prefix.
    let (status, body) = alice
        .post(&projects("acme"), json!({"name": "wandb-registry-data"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["path"], "name");
}

/// A team may belong to an organization, named when the team is created or later; only an
/// organization's ADMIN may put teams in it, and only teams belong to one.
#[tokio::test]
async fn teams_belong_to_organizations() {
    let app = spawn_app().await;
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    alice.create_org("acme-org").await;
    bob.create_org("bobs-org").await;

    let team = expect(
        alice
            .post(
                "/api/v1/entities",
                json!({"name": "vision", "kind": "team", "organization": "acme-org"}),
            )
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(team["organization"], "acme-org");
    let got = expect(alice.get("/api/v1/entities/vision").await, StatusCode::OK);
    assert_eq!(got["entity"]["organization"], "acme-org");
    let list = expect(alice.get("/api/v1/entities").await, StatusCode::OK);
    let vision = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"]["name"] == "vision")
        .unwrap();
    assert_eq!(vision["entity"]["organization"], "acme-org");

    // Later: a team made without one joins, moves and leaves.
    let solo = alice.create_team("solo").await;
    assert!(solo.get("organization").is_none(), "{solo}");
    let moved = expect(
        alice
            .patch("/api/v1/entities/solo", json!({"organization": "acme-org"}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(moved["organization"], "acme-org");
    let left = expect(
        alice
            .patch("/api/v1/entities/solo", json!({"organization": null}))
            .await,
        StatusCode::OK,
    );
    assert!(left.get("organization").is_none(), "{left}");
    let got = expect(alice.get("/api/v1/entities/solo").await, StatusCode::OK);
    assert!(got["entity"].get("organization").is_none(), "{got}");

    // Bad paths: nothing changes.
    let msg = expect_error(
        alice
            .post(
                "/api/v1/entities",
                json!({"name": "t2", "kind": "team", "organization": "solo"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("not an organization"), "{msg}");
    let msg = expect_error(
        alice
            .post(
                "/api/v1/entities",
                json!({"name": "t4", "kind": "team", "organization": "no/such"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("organization"), "{msg}");
    // Another's organization is invisible to alice.
    expect_error(
        alice
            .post(
                "/api/v1/entities",
                json!({"name": "t3", "kind": "team", "organization": "bobs-org"}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let msg = expect_error(
        alice
            .post(
                "/api/v1/entities",
                json!({"name": "o2", "kind": "organization", "organization": "acme-org"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("only a team"), "{msg}");
    let msg = expect_error(
        alice
            .patch("/api/v1/entities/acme-org", json!({"organization": null}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("only a team"), "{msg}");
    for name in ["t2", "t3", "t4", "o2"] {
        expect_error(
            alice.get(&format!("/api/v1/entities/{name}")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // A MEMBER of the organization may not put teams in it.
    expect(
        alice
            .put(
                "/api/v1/entities/acme-org/members/bob",
                json!({"role": "MEMBER"}),
            )
            .await,
        StatusCode::OK,
    );
    bob.create_team("bobs-team").await;
    expect_error(
        bob.patch(
            "/api/v1/entities/bobs-team",
            json!({"organization": "acme-org"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let got = expect(bob.get("/api/v1/entities/bobs-team").await, StatusCode::OK);
    assert!(got["entity"].get("organization").is_none(), "{got}");
}
