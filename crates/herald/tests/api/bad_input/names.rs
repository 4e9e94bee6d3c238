//! Names that break the naming rules, aliases herald reserves, and names of things that do
//! not exist.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{fixture, snapshot, REG};
use crate::helpers::{
    collection, error_path, expect_error, project, projects, run, version, Catalog,
};

#[tokio::test]
async fn names_are_1_to_128_characters_without_separators() {
    let Catalog { app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    let v0 = version("ml", "vision", "resnet", "v0");
    let artifacts = format!("{}/artifacts", project("ml", "vision"));
    let long = "x".repeat(129);
    let bad: [(&str, &str); 4] = [
        ("", "must not be empty"),
        (&long, "129 characters long; the limit is 128"),
        ("a/b", "must not contain '/'"),
        ("a:b", "must not contain ':'"),
    ];
    for (name, why) in bad {
        // (who, method, path, body, field)
        let cases = [
            (
                &app.admin,
                Method::POST,
                "/api/v1/users".to_string(),
                json!({"username": name}),
                "username",
            ),
            (
                &alice,
                Method::POST,
                "/api/v1/entities".to_string(),
                json!({"name": name, "kind": "team"}),
                "name",
            ),
            (
                &alice,
                Method::POST,
                "/api/v1/entities".to_string(),
                json!({"name": name, "kind": "organization"}),
                "name",
            ),
            (
                &alice,
                Method::POST,
                projects("ml"),
                json!({"name": name}),
                "name",
            ),
            (
                &alice,
                Method::POST,
                "/api/v1/entities/acme/registries".to_string(),
                json!({"name": name}),
                "name",
            ),
            (
                &alice,
                Method::POST,
                artifacts.clone(),
                json!({"collection": name, "type": "model"}),
                "collection",
            ),
            (
                &alice,
                Method::POST,
                artifacts.clone(),
                json!({"collection": "resnet", "type": name}),
                "type",
            ),
            (
                &alice,
                Method::POST,
                artifacts.clone(),
                json!({"collection": "resnet", "type": "model", "aliases": ["ok", name]}),
                "aliases[1]",
            ),
            (
                &alice,
                Method::POST,
                artifacts.clone(),
                json!({"collection": "resnet", "type": "model", "tags": [name]}),
                "tags[0]",
            ),
            (
                &alice,
                Method::POST,
                format!("{v0}/aliases"),
                json!({"alias": name}),
                "alias",
            ),
            (
                &alice,
                Method::POST,
                format!("{v0}/tags"),
                json!({"tag": name}),
                "tag",
            ),
            (
                &alice,
                Method::POST,
                format!("{}/tags", collection("ml", "vision", "resnet")),
                json!({"tag": name}),
                "tag",
            ),
            (
                &alice,
                Method::POST,
                format!("{v0}/links"),
                json!({"registry": "acme/model", "collection": name}),
                "collection",
            ),
            (
                &alice,
                Method::POST,
                format!("{v0}/links"),
                json!({"registry": "acme/model", "aliases": [name]}),
                "aliases[0]",
            ),
            (
                &alice,
                Method::POST,
                format!("{}/runs", project("ml", "vision")),
                json!({"id": name}),
                "id",
            ),
            (
                &alice,
                Method::POST,
                format!("{}/runs", project("ml", "vision")),
                json!({"id": "r9", "tags": [name]}),
                "tags[0]",
            ),
        ];
        for (who, method, path, body, field) in cases {
            let (status, answer) = who.call(&method, &path, &body).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{method} {path} {body}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "invalid_input", "{answer}");
            assert_eq!(
                error_path(&answer),
                Some(field),
                "{method} {path} {body}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(why), "{method} {path} {body}: {message}");
        }
    }
    // Names that are free text elsewhere are still identifiers here.
    for name in ["a b", "é", ".."] {
        expect_error(
            alice
                .post("/api/v1/entities", json!({"name": name, "kind": "team"}))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        );
    }
    // Labels may not have surrounding whitespace or control characters.
    for name in [" prod", "prod ", "pr\u{7}od"] {
        expect_error(
            alice
                .post(&format!("{v0}/aliases"), json!({"alias": name}))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        );
    }
    // Bad names in paths are refused the same way.
    let msg = expect_error(
        alice
            .delete(&format!("{v0}/tags/{}", "t".repeat(129)))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("129"), "{msg}");
    expect_error(
        alice
            .delete(&format!("{v0}/aliases/{}", crate::helpers::seg("a:b")))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert_eq!(snapshot(&alice).await, before);

    // 128 characters is fine.
    let max = "y".repeat(128);
    alice.create_team(&max).await;
    alice.create_project("ml", &max).await;
    let v = alice
        .create_version_with(
            "ml",
            "vision",
            &max,
            json!({"aliases": [max.clone()], "tags": [max.clone()]}),
        )
        .await;
    assert_eq!(v["collection"], max.as_str());
    assert_eq!(v["tags"], json!([max.clone()]));
}

#[tokio::test]
async fn latest_and_version_strings_are_not_aliases_users_give() {
    let Catalog { app: _app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    let v0 = version("ml", "vision", "resnet", "v0");
    for (alias, why) in [
        ("latest", "managed by herald"),
        ("v3", "reserved"),
        ("v0", "reserved"),
        // Of the form vN even if no index that large can exist.
        ("v99999999999999999999", "reserved"),
    ] {
        for (path, body, field) in [
            (format!("{v0}/aliases"), json!({"alias": alias}), "alias"),
            (
                format!("{}/artifacts", project("ml", "vision")),
                json!({"collection": "resnet", "type": "model", "aliases": [alias]}),
                "aliases[0]",
            ),
            (
                format!("{v0}/links"),
                json!({"registry": "acme/model", "aliases": [alias]}),
                "aliases[0]",
            ),
        ] {
            let (status, answer) = alice.post(&path, body.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
            assert_eq!(error_path(&answer), Some(field), "{answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(why), "{path} {body}: {message}");
        }
    }
    // Nor can `latest` be taken away.
    let msg = expect_error(
        alice.delete(&format!("{v0}/aliases/latest")).await,
        StatusCode::BAD_REQUEST,
        "invalid_input",
    );
    assert!(msg.contains("managed by herald"), "{msg}");
    assert_eq!(snapshot(&alice).await, before);
}

#[tokio::test]
async fn unknown_things_are_404s_that_name_them() {
    let Catalog { app: _app, alice } = fixture().await;
    let before = snapshot(&alice).await;
    let v0 = version("ml", "vision", "resnet", "v0");
    let cases = [
        (
            Method::GET,
            "/api/v1/entities/nosuch".to_string(),
            Value::Null,
            "nosuch",
        ),
        (
            Method::GET,
            "/api/v1/entities/nosuch/events".to_string(),
            Value::Null,
            "nosuch",
        ),
        (Method::GET, project("ml", "nosuch"), Value::Null, "nosuch"),
        (
            Method::GET,
            format!("{}/artifacts", project("ml", "nosuch")),
            Value::Null,
            "nosuch",
        ),
        (
            Method::GET,
            collection("ml", "vision", "nosuch"),
            Value::Null,
            "nosuch",
        ),
        (
            Method::GET,
            format!("{}/versions", collection("ml", "vision", "nosuch")),
            Value::Null,
            "nosuch",
        ),
        (
            Method::GET,
            version("ml", "vision", "nosuch", "v0"),
            Value::Null,
            "nosuch",
        ),
        (
            Method::GET,
            version("ml", "vision", "resnet", "v7"),
            Value::Null,
            "v7",
        ),
        (
            Method::GET,
            version("ml", "vision", "resnet", "nosuch"),
            Value::Null,
            "nosuch",
        ),
        (
            Method::GET,
            run("ml", "vision", "nosuch"),
            Value::Null,
            "nosuch",
        ),
        (
            Method::POST,
            format!("{}/aliases", version("ml", "vision", "resnet", "v7")),
            json!({"alias": "a"}),
            "v7",
        ),
        (
            Method::POST,
            format!("{}/tags", version("ml", "vision", "resnet", "nosuch")),
            json!({"tag": "t"}),
            "nosuch",
        ),
        (
            Method::POST,
            format!("{}/tags", collection("ml", "vision", "nosuch")),
            json!({"tag": "t"}),
            "nosuch",
        ),
        (
            Method::DELETE,
            format!("{v0}/aliases/nosuch"),
            Value::Null,
            "nosuch",
        ),
        (
            Method::DELETE,
            format!("{v0}/tags/nosuch"),
            Value::Null,
            "nosuch",
        ),
        (
            Method::DELETE,
            format!("{}/tags/nosuch", collection("ml", "vision", "resnet")),
            Value::Null,
            "nosuch",
        ),
        (
            Method::POST,
            format!("{}/links", version("ml", "vision", "resnet", "v7")),
            json!({"registry": "acme/model"}),
            "v7",
        ),
        (
            Method::POST,
            format!("{v0}/links"),
            json!({"registry": "acme/nosuch"}),
            "nosuch",
        ),
        (
            Method::POST,
            format!("{v0}/links"),
            json!({"registry": "nosuch/model"}),
            "nosuch",
        ),
        (
            Method::DELETE,
            version("acme", REG, "nosuch", "v0"),
            Value::Null,
            "nosuch",
        ),
        (
            Method::POST,
            format!("{}/artifacts", project("ml", "nosuch")),
            json!({"collection": "c", "type": "model"}),
            "nosuch",
        ),
        (
            Method::POST,
            format!("{}/runs", project("ml", "nosuch")),
            json!({}),
            "nosuch",
        ),
        (
            Method::PATCH,
            run("ml", "vision", "nosuch"),
            json!({"state": "FINISHED"}),
            "nosuch",
        ),
        (
            Method::POST,
            format!("{}/history", run("ml", "vision", "nosuch")),
            json!({"rows": [{"step": 0, "values": {"a": 1}}]}),
            "nosuch",
        ),
        (
            Method::GET,
            format!("{}/history", run("ml", "vision", "nosuch")),
            Value::Null,
            "nosuch",
        ),
        (
            Method::PUT,
            "/api/v1/entities/ml/members/nosuch".to_string(),
            json!({"role": "MEMBER"}),
            "nosuch",
        ),
        (
            Method::DELETE,
            "/api/v1/entities/ml/members/bob".to_string(),
            Value::Null,
            "bob",
        ),
    ];
    for (method, path, body, name) in cases {
        let msg = expect_error(
            alice.call(&method, &path, &body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert!(msg.contains(name), "{method} {path}: {msg}");
    }
    assert_eq!(snapshot(&alice).await, before);
}
