//! The NUL character (U+0000): PostgreSQL stores it in neither text nor jsonb, so every
//! backend refuses it the same way, with a 400 naming where it was: in a body's string or key
//! at any depth, in a path segment (`%00`) or in a query value.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{fixture, snapshot};
use crate::helpers::{error_path, expect, project, projects, run, version, Api, Catalog};

/// Asserts a 400 whose `error.path` is `path` and whose message names the NUL character.
#[track_caller]
fn refused(what: &str, (status, body): (StatusCode, Value), code: &str, path: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert_eq!(error_path(&body), Some(path), "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("U+0000"), "{what}: {body}");
}

async fn automations(alice: &Api) -> Value {
    expect(
        alice.get("/api/v1/entities/ml/automations").await,
        StatusCode::OK,
    )
}

fn no_op(name: &str) -> Value {
    json!({
        "name": name,
        "scope": { "type": "PROJECT", "path": "ml/vision" },
        "event": { "type": "CREATE_ARTIFACT" },
        "action": { "type": "NO_OP" },
    })
}

#[tokio::test]
async fn a_nul_anywhere_in_a_body_is_refused_by_name() {
    let Catalog { app, alice } = fixture().await;
    let automation = alice.create_automation("ml", no_op("kept")).await;
    let automation = format!("/api/v1/automations/{}", automation["id"]);
    let before = (snapshot(&alice).await, automations(&alice).await);
    let artifacts = format!("{}/artifacts", project("ml", "vision"));
    let artifact = |extra: Value| {
        let mut body = json!({ "collection": "resnet", "type": "model" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let mut described = no_op("described");
    described["description"] = json!("a\u{0}b");
    let cases: Vec<(&str, Method, String, Value, &str)> = vec![
        (
            "version description",
            Method::POST,
            artifacts.clone(),
            artifact(json!({ "description": "a\u{0}b" })),
            "description",
        ),
        (
            "digest",
            Method::POST,
            artifacts.clone(),
            artifact(json!({ "digest": "\u{0}" })),
            "digest",
        ),
        (
            "a string deep in metadata",
            Method::POST,
            artifacts.clone(),
            artifact(json!({ "metadata": { "a": { "list": [1, "x\u{0}"] } } })),
            "metadata.a.list[1]",
        ),
        (
            "a key in metadata",
            Method::POST,
            artifacts.clone(),
            artifact(json!({ "metadata": { "a": { "b\u{0}c": 1 } } })),
            "metadata.a.b\\u0000c",
        ),
        (
            "an alias",
            Method::POST,
            artifacts.clone(),
            artifact(json!({ "aliases": ["ok", "\u{0}"] })),
            "aliases[1]",
        ),
        (
            "project description",
            Method::POST,
            projects("ml"),
            json!({ "name": "p2", "description": "\u{0}" }),
            "description",
        ),
        (
            "registry description",
            Method::POST,
            "/api/v1/entities/acme/registries".into(),
            json!({ "name": "r2", "description": "x\u{0}" }),
            "description",
        ),
        (
            "user email",
            Method::POST,
            "/api/v1/users".into(),
            json!({ "username": "carol", "email": "carol\u{0}@example.com" }),
            "email",
        ),
        (
            "run config",
            Method::POST,
            format!("{}/runs", project("ml", "vision")),
            json!({ "id": "r2", "config": { "lr": "\u{0}" } }),
            "config.lr",
        ),
        (
            "a metric name",
            Method::POST,
            format!("{}/history", run("ml", "vision", "r1")),
            json!({ "rows": [{ "step": 1, "values": { "loss\u{0}": 1.0 } }] }),
            "rows[0].values.loss\\u0000",
        ),
        (
            "automation description",
            Method::POST,
            "/api/v1/entities/ml/automations".into(),
            described.clone(),
            "description",
        ),
        (
            "automation description in a patch",
            Method::PATCH,
            automation.clone(),
            json!({ "description": "\u{0}" }),
            "description",
        ),
        (
            "an unknown field's name",
            Method::POST,
            "/api/v1/entities".into(),
            json!({ "name": "t2", "kind": "team", "\u{0}": 1 }),
            "\\u0000",
        ),
    ];
    for (what, method, path, body, at) in cases {
        // The admin too: server admins may create users.
        let api = if path == "/api/v1/users" {
            &app.admin
        } else {
            &alice
        };
        refused(
            what,
            api.call(&method, &path, &body).await,
            "invalid_input",
            at,
        );
    }
    // A NUL in a body that is only a string; then an escaped backslash before `u0000`, which
    // is no NUL but the text `\u0000`, is taken.
    let (status, body) = alice.post_raw("/api/v1/entities", r#""\u0000""#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_path(&body), None, "the body itself: {body}");
    assert_eq!(snapshot(&alice).await, before.0);
    assert_eq!(automations(&alice).await, before.1);
    let v = alice
        .create_version_with(
            "ml",
            "vision",
            "resnet",
            json!({ "description": "C:\\u0000" }),
        )
        .await;
    assert_eq!(v["description"], "C:\\u0000");
}

#[tokio::test]
async fn a_nul_in_a_path_segment_or_query_value_is_refused_by_name() {
    let Catalog { app: _app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    let cases: Vec<(&str, Method, String, &str, &str)> = vec![
        (
            "entity",
            Method::GET,
            "/api/v1/entities/m%00l".into(),
            "invalid_path",
            "entity",
        ),
        (
            "project",
            Method::GET,
            project("ml", "vi%00sion"),
            "invalid_path",
            "project",
        ),
        (
            "version",
            Method::GET,
            version("ml", "vision", "resnet", "v0").replace("/v0", "/%00"),
            "invalid_path",
            "version",
        ),
        (
            "a run being changed",
            Method::PATCH,
            run("ml", "vision", "r%001"),
            "invalid_path",
            "run",
        ),
        (
            "a member",
            Method::DELETE,
            "/api/v1/entities/ml/members/b%00ob".into(),
            "invalid_path",
            "username",
        ),
        (
            "a secret",
            Method::PUT,
            "/api/v1/entities/ml/secrets/S%00".into(),
            "invalid_path",
            "name",
        ),
        (
            "an automation name filter",
            Method::GET,
            "/api/v1/entities/ml/automations?name=a%00".into(),
            "invalid_query",
            "name",
        ),
        (
            "an event cursor",
            Method::GET,
            "/api/v1/entities/ml/events?after=%00".into(),
            "invalid_query",
            "after",
        ),
        (
            "an execution status",
            Method::GET,
            "/api/v1/entities/ml/executions?status=%00".into(),
            "invalid_query",
            "status",
        ),
    ];
    for (what, method, path, code, at) in cases {
        let body = match method {
            Method::PATCH => json!({ "state": "FINISHED" }),
            Method::PUT => json!({ "value": "v" }),
            _ => Value::Null,
        };
        refused(what, alice.call(&method, &path, &body).await, code, at);
    }
    assert_eq!(snapshot(&alice).await, before);
}
