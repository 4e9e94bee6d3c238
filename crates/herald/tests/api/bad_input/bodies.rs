//! Bodies that are not JSON, not the right JSON, too large or not declared JSON; paths that
//! are not UTF-8.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{fixture, snapshot};
use crate::helpers::{
    collection, error_path, expect, expect_error, project, projects, run, version, Catalog,
};

#[tokio::test]
async fn malformed_json_is_refused() {
    let Catalog { app: _app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    for raw in [
        r#"{"name": "x","#,
        r#"{"name": "x", "kind": "team"} trailing"#,
        r#"{"name": "x", "kind": "team"}{}"#,
        "",
        "not json",
        r#"{'name': 'x'}"#,
    ] {
        let msg = expect_error(
            alice.post_raw("/api/v1/entities", raw).await,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        );
        assert!(msg.contains("malformed JSON"), "{raw}: {msg}");
    }
    // Well-formed JSON of the wrong shape.
    for raw in ["[1]", "null", "\"x\"", "42"] {
        expect_error(
            alice.post_raw("/api/v1/entities", raw).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        );
    }
    // Each body-taking route refuses broken JSON the same way.
    let v0 = version("ml", "vision", "resnet", "v0");
    for (method, path) in [
        (Method::POST, "/api/v1/users".to_string()),
        (Method::PUT, "/api/v1/entities/ml/members/bob".to_string()),
        (Method::POST, projects("ml")),
        (Method::POST, "/api/v1/entities/acme/registries".to_string()),
        (
            Method::POST,
            format!("{}/artifacts", project("ml", "vision")),
        ),
        (Method::POST, format!("{v0}/aliases")),
        (Method::POST, format!("{v0}/tags")),
        (
            Method::POST,
            format!("{}/tags", collection("ml", "vision", "resnet")),
        ),
        (Method::POST, format!("{v0}/links")),
        (Method::POST, format!("{}/runs", project("ml", "vision"))),
        (Method::PATCH, run("ml", "vision", "r1")),
        (
            Method::POST,
            format!("{}/history", run("ml", "vision", "r1")),
        ),
    ] {
        let answer = alice
            .send(
                alice
                    .request(method.clone(), &path)
                    .header(CONTENT_TYPE, "application/json")
                    .body("{\"oops\":"),
            )
            .await;
        expect_error(answer, StatusCode::BAD_REQUEST, "invalid_json");
    }
    assert_eq!(snapshot(&alice).await, before);
}

#[tokio::test]
async fn wrong_types_unknown_fields_and_missing_fields_are_named() {
    let Catalog { app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    let v0 = version("ml", "vision", "resnet", "v0");
    let artifacts = format!("{}/artifacts", project("ml", "vision"));
    let runs = format!("{}/runs", project("ml", "vision"));
    let history = format!("{}/history", run("ml", "vision", "r1"));
    let r1 = run("ml", "vision", "r1");
    let member = "/api/v1/entities/ml/members/bob".to_string();
    let users = "/api/v1/users".to_string();
    let entities = "/api/v1/entities".to_string();

    // (method, path, body, the field the error must name)
    let wrong_types = [
        (
            Method::POST,
            entities.clone(),
            json!({"name": 5, "kind": "team"}),
            "name",
        ),
        (
            Method::POST,
            entities.clone(),
            json!({"name": "x", "kind": "user"}),
            "kind",
        ),
        (
            Method::POST,
            entities.clone(),
            json!({"name": "x", "kind": null}),
            "kind",
        ),
        (
            Method::POST,
            users.clone(),
            json!({"username": ["x"]}),
            "username",
        ),
        (
            Method::POST,
            users.clone(),
            json!({"username": "x", "admin": "yes"}),
            "admin",
        ),
        (
            Method::POST,
            users.clone(),
            json!({"username": "x", "email": "not-an-email"}),
            "email",
        ),
        (
            Method::PUT,
            member.clone(),
            json!({"role": "OWNER"}),
            "role",
        ),
        (
            Method::POST,
            projects("ml"),
            json!({"name": "p", "description": 1}),
            "description",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"collection": "c", "type": "model", "aliases": "prod"}),
            "aliases",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"collection": "c", "type": "model", "tags": [1]}),
            "tags[0]",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"collection": "c", "type": "model", "metadata": [1]}),
            "metadata",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"collection": "c", "type": 7}),
            "type",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"collection": "c", "type": "model", "digest": ""}),
            "digest",
        ),
        (
            Method::POST,
            format!("{v0}/aliases"),
            json!({"alias": true}),
            "alias",
        ),
        (
            Method::POST,
            format!("{v0}/tags"),
            json!({"tag": {}}),
            "tag",
        ),
        (
            Method::POST,
            format!("{v0}/links"),
            json!({"registry": 1}),
            "registry",
        ),
        (
            Method::POST,
            runs.clone(),
            json!({"id": "r9", "config": "lr=1"}),
            "config",
        ),
        (
            Method::POST,
            runs.clone(),
            json!({"id": "r9", "tags": "a"}),
            "tags",
        ),
        (
            Method::POST,
            runs.clone(),
            json!({"id": "r9", "display_name": ""}),
            "display_name",
        ),
        (Method::PATCH, r1.clone(), json!({"state": 3}), "state"),
        (
            Method::PATCH,
            r1.clone(),
            json!({"state": "PAUSED"}),
            "state",
        ),
        (
            Method::POST,
            history.clone(),
            json!({"rows": {"step": 0}}),
            "rows",
        ),
        (
            Method::POST,
            history.clone(),
            json!({"rows": [{"step": "one", "values": {"a": 1}}]}),
            "rows[0].step",
        ),
        (
            Method::POST,
            history.clone(),
            json!({"rows": [{"step": 1.5, "values": {"a": 1}}]}),
            "rows[0].step",
        ),
        (
            Method::POST,
            history.clone(),
            json!({"rows": [{"step": 0, "values": [1]}]}),
            "rows[0].values",
        ),
    ];
    // Users are created by server admins; everything else is alice's.
    let who = |path: &str| if path == users { &app.admin } else { &alice };
    for (method, path, body, field) in wrong_types {
        let (status, answer) = who(&path).call(&method, &path, &body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_input", "{body}: {answer}");
        assert_eq!(
            error_path(&answer),
            Some(field),
            "{method} {path} {body}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }

    // (method, path, body, the unknown field)
    let unknown_fields = [
        (
            Method::POST,
            users.clone(),
            json!({"username": "x", "nickname": "y"}),
            "nickname",
        ),
        (
            Method::POST,
            entities.clone(),
            json!({"name": "x", "kind": "team", "colour": "red"}),
            "colour",
        ),
        (
            Method::PUT,
            member.clone(),
            json!({"role": "MEMBER", "since": 1}),
            "since",
        ),
        (
            Method::POST,
            projects("ml"),
            json!({"name": "p", "public": true}),
            "public",
        ),
        (
            Method::POST,
            "/api/v1/entities/acme/registries".to_string(),
            json!({"name": "r", "x": 1}),
            "x",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"collection": "c", "type": "model", "alias": ["x"]}),
            "alias",
        ),
        (
            Method::POST,
            format!("{v0}/aliases"),
            json!({"alias": "x", "force": true}),
            "force",
        ),
        (
            Method::POST,
            format!("{v0}/tags"),
            json!({"tag": "x", "tags": ["y"]}),
            "tags",
        ),
        (
            Method::POST,
            format!("{v0}/links"),
            json!({"registry": "acme/model", "alias": ["x"]}),
            "alias",
        ),
        (Method::POST, runs.clone(), json!({"name": "r9"}), "name"),
        (
            Method::PATCH,
            r1.clone(),
            json!({"state": "FINISHED", "reason": "done"}),
            "reason",
        ),
        (
            Method::POST,
            history.clone(),
            json!({"rows": [{"step": 0, "values": {"a": 1}, "time": 1}]}),
            "time",
        ),
    ];
    for (method, path, body, field) in unknown_fields {
        let msg = expect_error(
            who(&path).call(&method, &path, &body).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        );
        assert!(
            msg.contains("unknown field") && msg.contains(&format!("`{field}`")),
            "{method} {path} {body}: {msg}"
        );
    }

    // (method, path, body, the missing field)
    let missing_fields = [
        (Method::POST, users.clone(), json!({}), "username"),
        (
            Method::POST,
            entities.clone(),
            json!({"kind": "team"}),
            "name",
        ),
        (Method::POST, entities.clone(), json!({"name": "x"}), "kind"),
        (Method::PUT, member.clone(), json!({}), "role"),
        (
            Method::POST,
            projects("ml"),
            json!({"description": "d"}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/entities/acme/registries".to_string(),
            json!({}),
            "name",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"collection": "c"}),
            "type",
        ),
        (
            Method::POST,
            artifacts.clone(),
            json!({"type": "model"}),
            "collection",
        ),
        (Method::POST, format!("{v0}/aliases"), json!({}), "alias"),
        (Method::POST, format!("{v0}/tags"), json!({}), "tag"),
        (
            Method::POST,
            format!("{v0}/links"),
            json!({"aliases": []}),
            "registry",
        ),
        (Method::PATCH, r1.clone(), json!({}), "state"),
        (Method::POST, history.clone(), json!({}), "rows"),
        (
            Method::POST,
            history.clone(),
            json!({"rows": [{"step": 0}]}),
            "values",
        ),
        (
            Method::POST,
            history.clone(),
            json!({"rows": [{"values": {"a": 1}}]}),
            "step",
        ),
    ];
    for (method, path, body, field) in missing_fields {
        let msg = expect_error(
            who(&path).call(&method, &path, &body).await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        );
        assert!(
            msg.contains("missing field") && msg.contains(&format!("`{field}`")),
            "{method} {path} {body}: {msg}"
        );
    }
    assert_eq!(snapshot(&alice).await, before);
    // No user was created either.
    expect_error(
        app.admin.get("/api/v1/entities/x").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413s() {
    let Catalog { app: _app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    let pad = "x".repeat(1024 * 1024);
    let big = json!({"name": "big", "kind": "team", "pad": pad});
    let msg = expect_error(
        alice.post("/api/v1/entities", big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(msg.contains("1048576"), "{msg}");
    let big =
        json!({"collection": "resnet", "type": "model", "description": "d".repeat(1024 * 1024)});
    expect_error(
        alice
            .post(&format!("{}/artifacts", project("ml", "vision")), big)
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let rows: Vec<Value> = (0..40_000)
        .map(|i| json!({"step": i, "values": {"loss": 0.5}}))
        .collect();
    expect_error(
        alice
            .post(
                &format!("{}/history", run("ml", "vision", "r1")),
                json!({ "rows": rows }),
            )
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_eq!(snapshot(&alice).await, before);
    // Just under the limit is read (and then judged on its content).
    let under = json!({"collection": "resnet", "type": "model", "metadata": {"k": "m".repeat(1000 * 1000)}});
    let msg = expect_error(
        alice
            .post(&format!("{}/artifacts", project("ml", "vision")), under)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("metadata"), "{msg}");
}

#[tokio::test]
async fn bodies_must_be_declared_json() {
    let Catalog { app: _app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    let body = r#"{"name": "newteam", "kind": "team"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let mut rb = alice.request(Method::POST, "/api/v1/entities").body(body);
        if let Some(ct) = content_type {
            rb = rb.header(CONTENT_TYPE, ct);
        }
        let msg = expect_error(
            alice.send(rb).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
        assert!(msg.contains("application/json"), "{msg}");
    }
    assert_eq!(snapshot(&alice).await, before);
    for (name, content_type) in [
        ("t1", "application/json; charset=utf-8"),
        ("t2", "Application/JSON"),
        ("t3", "application/merge-patch+json"),
    ] {
        let answer = alice
            .send(
                alice
                    .request(Method::POST, "/api/v1/entities")
                    .header(CONTENT_TYPE, content_type)
                    .body(format!(r#"{{"name": "{name}", "kind": "team"}}"#)),
            )
            .await;
        expect(answer, StatusCode::CREATED);
    }
}

#[tokio::test]
async fn path_segments_must_be_utf8() {
    let Catalog { app: _app, alice } = fixture().await;
    for (method, path) in [
        (Method::GET, "/api/v1/entities/%FF".to_string()),
        (
            Method::GET,
            format!("{}/artifacts/%C3%28", project("ml", "vision")),
        ),
        (
            Method::DELETE,
            format!("{}/aliases/%FF", version("ml", "vision", "resnet", "v0")),
        ),
    ] {
        expect_error(
            alice.send(alice.request(method, &path)).await,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        );
    }
}
