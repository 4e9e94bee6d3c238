//! Health checks, the OpenAPI document, and JSON answers for unknown routes and methods.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect, expect_error, spawn_app};

/// The source of the route table.
const ROUTES_SOURCE: &str = include_str!("../../../api/src/routes/mod.rs");

/// The route table, read from `crates/api/src/routes/mod.rs` so that a route added there is
/// checked here too: every path (`/api/v1/entities/{entity}`) with its methods (`get`, …).
pub fn route_table() -> Vec<(String, Vec<&'static str>)> {
    // `const P: &str = "...";` lines name path prefixes.
    let consts: HashMap<&str, &str> = ROUTES_SOURCE
        .lines()
        .filter_map(|l| l.trim().strip_prefix("const "))
        .filter_map(|l| l.split_once(": &str = "))
        .map(|(name, value)| (name.trim(), value.trim_end_matches(';').trim_matches('"')))
        .collect();
    let mut table = Vec::new();
    for chunk in ROUTES_SOURCE.split(".route(").skip(1) {
        let call = up_to_closing_paren(chunk);
        let (first, rest) = split_first_argument(call);
        let first = first.trim();
        let path = if let Some(lit) = first.strip_prefix('"') {
            lit.trim_end_matches('"').to_string()
        } else if let Some(fmt) = first.strip_prefix("&format!(") {
            let lit = fmt.trim_end_matches(')').trim_matches('"');
            let mut path = lit.replace("{{", "\u{1}").replace("}}", "\u{2}");
            for (name, value) in &consts {
                path = path.replace(&format!("{{{name}}}"), value);
            }
            path.replace('\u{1}', "{").replace('\u{2}', "}")
        } else {
            consts
                .get(first)
                .unwrap_or_else(|| panic!("route path {first:?} is not understood"))
                .to_string()
        };
        let methods: Vec<&'static str> = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .filter(|m| {
                rest.match_indices(&format!("{m}(")).any(|(i, _)| {
                    !rest[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
            .collect();
        assert!(!methods.is_empty(), "no methods found for {path}");
        table.push((path, methods));
    }
    table
}

/// The text of a call's arguments: `chunk` up to the parenthesis that closes the call.
fn up_to_closing_paren(chunk: &str) -> &str {
    let mut depth = 1;
    for (i, c) in chunk.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &chunk[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in the route table");
}

/// Splits a call's arguments at the first top-level comma.
fn split_first_argument(args: &str) -> (&str, &str) {
    let mut depth = 0;
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => return (&args[..i], &args[i + 1..]),
            _ => {}
        }
    }
    panic!("a route without a handler: {args}");
}

#[test]
fn the_route_table_is_read_completely() {
    let table = route_table();
    assert_eq!(table.len(), ROUTES_SOURCE.matches(".route(").count());
    // Spot checks of each way a path is written.
    let find = |p: &str| {
        table
            .iter()
            .find(|(path, _)| path == p)
            .unwrap_or_else(|| panic!("{p} not in {table:?}"))
            .1
            .clone()
    };
    assert_eq!(find("/healthz"), ["get"]);
    assert_eq!(find("/api/v1/entities"), ["get", "post"]);
    assert_eq!(
        find("/api/v1/entities/{entity}/projects/{project}"),
        ["get"]
    );
    assert_eq!(
        find("/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}"),
        ["get", "delete"]
    );
    assert_eq!(
        find("/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/tags/{tag}"),
        ["delete"]
    );
    assert_eq!(
        find("/api/v1/entities/{entity}/projects/{project}/runs/{run}"),
        ["get", "patch"]
    );
    // At least the 27 routes of the first REST API (32 methods under /api/v1).
    assert!(table.len() >= 27, "{table:?}");
}

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    assert_eq!(
        expect(anon.get("/healthz").await, StatusCode::OK),
        json!({"status": "ok"})
    );
    let ready = expect(anon.get("/readyz").await, StatusCode::OK);
    assert_eq!(ready["status"], "ready");
    // The matcher's backlog: events written but not yet matched against automations.
    assert!(
        ready["matcher_lag"].as_i64().is_some_and(|n| n >= 0),
        "{ready}"
    );
}

#[tokio::test]
async fn every_request_gets_a_request_id() {
    let app = spawn_app().await;
    let res = app
        .anonymous()
        .request(Method::GET, "/healthz")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("x-request-id").is_some());
    let res = app
        .anonymous()
        .request(Method::GET, "/healthz")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn openapi_documents_every_route_of_the_table() {
    let app = spawn_app().await;
    let doc = expect(
        app.anonymous().get("/api/v1/openapi.json").await,
        StatusCode::OK,
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths object");
    let table = route_table();
    for (path, methods) in &table {
        if !path.starts_with("/api/v1") && !["/healthz", "/readyz"].contains(&path.as_str()) {
            continue;
        }
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"));
        for m in methods {
            assert!(
                item.get(*m).is_some(),
                "{} {path} is not in the OpenAPI document",
                m.to_uppercase()
            );
        }
    }
    // And the document describes nothing that is not served.
    for (path, item) in paths {
        let (_, methods) = table
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("{path} is documented but not served"));
        for m in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&m.as_str()) {
                assert!(
                    methods.contains(&m.as_str()),
                    "{} {path} is documented but not served",
                    m.to_uppercase()
                );
            }
        }
    }
    // Both ways of authenticating are declared.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    // Every schema the document refers to is in it.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.contains(&"#/components/schemas/PreviousSecretValue"));
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} is referred to but not defined"
        );
    }
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v1/entities/ml/projects/p/artifacts/c/versions/v0/nope",
    ] {
        let msg = expect_error(
            app.admin.get(path).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert!(msg.contains("no such route"), "{msg}");
        // Without credentials too.
        expect_error(
            app.anonymous().get(path).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

#[tokio::test]
async fn wrong_methods_are_json_405s() {
    let app = spawn_app().await;
    let cases = [
        (Method::GET, "/api/v1/users", vec!["POST"]),
        (Method::DELETE, "/api/v1/users", vec!["POST"]),
        (Method::POST, "/healthz", vec!["GET", "HEAD"]),
        (Method::PUT, "/api/v1/entities", vec!["GET", "HEAD", "POST"]),
        (
            Method::POST,
            "/api/v1/entities/ml/events",
            vec!["GET", "HEAD"],
        ),
        (
            Method::PATCH,
            "/api/v1/entities/ml/projects/p/artifacts",
            vec!["GET", "HEAD", "POST"],
        ),
        (Method::GET, "/api/v1/entities/ml/registries", vec!["POST"]),
    ];
    for (method, path, allowed) in cases {
        let answer = app
            .admin
            .send(app.admin.request(method.clone(), path))
            .await;
        let msg = expect_error(answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert!(msg.contains("method not allowed"), "{method} {path}: {msg}");
        // HTTP requires a 405 to say what is allowed.
        let res = app
            .admin
            .request(method.clone(), path)
            .send()
            .await
            .unwrap();
        let allow = res.headers()["allow"].to_str().unwrap().to_string();
        let mut allow: Vec<&str> = allow.split(',').map(str::trim).collect();
        allow.sort_unstable();
        assert_eq!(allow, allowed, "{method} {path}");
    }
}

/// The data directory is its owner's alone: the directory 0700; the database, its log and
/// shared-memory files and the key files 0600, also when an older herald left them readable.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // SQLite whatever the test backend: the files are what is checked.
    let overrides = herald::config::Overrides {
        data_dir: Some(data.clone()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let env =
        |k: &str| (k == "HERALD_BOOTSTRAP_API_KEY").then(|| crate::helpers::ADMIN_KEY.to_string());
    let config = herald::config::Config::load_from(&overrides, env).unwrap();
    let names = [
        "herald.db",
        "herald.db-wal",
        "herald.db-shm",
        "master-key",
        "admin-api-key",
    ];
    let mode = |name: &str| {
        std::fs::metadata(data.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    let start = || async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        herald::app::App::build_with_listener(&config, listener)
            .await
            .expect("the app builds")
    };
    let app = start().await;
    assert_eq!(mode(""), 0o700, "the data directory");
    for name in names {
        assert_eq!(mode(name), 0o600, "{name}");
    }
    // An older herald's files, readable by all, are made private at the next start.
    for name in [""].into_iter().chain(names) {
        let m = if name.is_empty() { 0o755 } else { 0o644 };
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(m)).unwrap();
    }
    drop(app);
    let _app = start().await;
    assert_eq!(mode(""), 0o700, "the data directory");
    for name in names {
        assert_eq!(mode(name), 0o600, "{name}");
    }
}
