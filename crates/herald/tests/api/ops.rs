//! Health checks, the OpenAPI document, and JSON answers for unknown routes and methods.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{expect, expect_error, spawn_app};

/// The methods a route may serve, as the document's path items name them.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The routes the OpenAPI document describes: every path (`/api/v1/entities/{entity}`) with
/// its methods (`get`, …). The server's router is built from the same annotations;
/// `the_document_lists_exactly_what_is_served` checks that the two agree.
pub fn route_table() -> Vec<(String, Vec<&'static str>)> {
    let doc: Value = serde_json::from_str(herald_api::openapi_json()).expect("the document");
    doc["paths"]
        .as_object()
        .expect("paths object")
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .into_iter()
                .filter(|m| item.get(*m).is_some())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A path of the route `template` with every parameter filled in.
pub fn concrete(template: &str) -> String {
    let mut path = template
        .replace("{entity}", "ml")
        .replace("{project}", "vision")
        .replace("{collection}", "resnet")
        .replace("{version}", "v0")
        .replace("{username}", "bob")
        .replace("{alias}", "prod")
        .replace("{tag}", "t")
        .replace("{run}", "r1")
        .replace("{key}", "runs/1/output.log");
    // Any other parameter: a number, which also passes for a name.
    while let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
        path.replace_range(open..=close, "1");
    }
    path
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
async fn the_document_lists_exactly_what_is_served() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    let doc = expect(anon.get("/api/v1/openapi.json").await, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let table = route_table();
    // At least the 27 routes and 32 methods of the first REST API, the health checks and the
    // document itself.
    assert!(table.len() >= 30, "{table:?}");
    assert!(table.iter().map(|(_, m)| m.len()).sum::<usize>() >= 35);
    for (template, methods) in &table {
        let path = concrete(template);
        let mut allowed: Vec<String> = methods.iter().map(|m| m.to_uppercase()).collect();
        if methods.contains(&"get") {
            allowed.push("HEAD".into());
        }
        allowed.sort_unstable();
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let res = anon.request(method, &path).send().await.unwrap();
            let what = format!("{} {template}", m.to_uppercase());
            if methods.contains(&m) {
                // Served: a route needing a key refuses the anonymous caller (rather than the
                // fallbacks' 404 or 405); the public ones answer, those whose credential is a
                // signed URL (a `sig` parameter) by refusing the unsigned request.
                let op = &doc["paths"][template][m];
                let public = op["security"] == json!([{}]);
                let signed = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "sig"));
                let want = match (public, signed) {
                    (true, true) => StatusCode::FORBIDDEN,
                    (true, false) => StatusCode::OK,
                    (false, _) => StatusCode::UNAUTHORIZED,
                };
                assert_eq!(res.status(), want, "{what} is documented but not served so");
            } else {
                assert_eq!(
                    res.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{what} is served but not documented"
                );
                let allow = res.headers()["allow"].to_str().unwrap();
                let mut allow: Vec<&str> = allow.split(',').map(str::trim).collect();
                allow.sort_unstable();
                assert_eq!(allow, allowed, "{what}: Allow");
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

/// Follows `$ref`s (and a `oneOf` with null, as optional fields are written) to the schema.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(alternatives) = schema["oneOf"].as_array() {
        let not_null: Vec<&Value> = alternatives
            .iter()
            .filter(|s| s["type"] != "null")
            .collect();
        if let [one] = not_null[..] {
            return resolve(doc, one);
        }
    }
    schema
}

#[tokio::test]
async fn openapi_parameters_errors_and_limits_are_the_servers() {
    let app = spawn_app().await;
    let doc = expect(
        app.anonymous().get("/api/v1/openapi.json").await,
        StatusCode::OK,
    );
    let (mut listings, mut queries) = (0, 0);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let in_path: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            // Path parameters are exactly the path's `{x}`s, all required; nothing else is one.
            let declared: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let mut sorted = declared.clone();
            sorted.sort_unstable();
            let mut want = in_path.clone();
            want.sort_unstable();
            assert_eq!(sorted, want, "{what}: path parameters");
            queries += params.iter().filter(|p| p["in"] == "query").count();
            for p in &params {
                assert!(
                    ["path", "query"].contains(&p["in"].as_str().unwrap()),
                    "{what}: {p}"
                );
                if p["in"] == "path" {
                    assert_eq!(p["required"], true, "{what}: {p}");
                } else {
                    assert_ne!(
                        p["required"], true,
                        "{what}: query parameters are optional: {p}"
                    );
                }
            }
            // Listings page through `after` and `limit`, both optional query parameters.
            for name in ["after", "limit"] {
                if let Some(p) = params.iter().find(|p| p["name"] == name) {
                    assert_eq!(p["in"], "query", "{what}: {p}");
                    if name == "limit" {
                        listings += 1;
                        assert_eq!(p["schema"]["minimum"], 1, "{what}: {p}");
                        assert_eq!(p["schema"]["maximum"], 1000, "{what}: {p}");
                    } else {
                        // A cursor is the string `next_cursor` gave: digits, or empty.
                        assert_eq!(p["schema"]["type"], "string", "{what}: {p}");
                        assert_eq!(p["schema"]["pattern"], "^[0-9]{0,19}$", "{what}: {p}");
                    }
                }
            }
            // The errors each operation can answer, all with the error body.
            let responses = op["responses"].as_object().unwrap();
            let public = op["security"] == json!([{}]);
            let mut needed = Vec::new();
            if !public {
                needed.push("401");
            }
            if op.get("requestBody").is_some() {
                needed.extend(["400", "413"]);
            }
            // Only a JSON body has a content type to get wrong; an upload takes any bytes.
            if op["requestBody"]["content"]
                .get("application/json")
                .is_some()
            {
                needed.push("415");
            }
            if !params.is_empty() {
                needed.push("400");
            }
            if !in_path.is_empty() {
                needed.push("404");
            }
            for status in needed {
                assert!(
                    responses.contains_key(status),
                    "{what} does not document {status}"
                );
            }
            for (status, response) in responses {
                // GraphQL's own answers carry `errors`; the body limit answers as REST does.
                let body = if path == "/graphql" && status != "413" {
                    "#/components/schemas/GraphqlAnswer"
                } else {
                    "#/components/schemas/ErrorBody"
                };
                if status.starts_with('4') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], body,
                        "{what}: {status}"
                    );
                }
            }
        }
    }
    // Links from what a POST creates to the operations on it fill every path parameter of
    // an operation that exists, from a field the created body has.
    let operations: HashMap<&str, (&str, &Value)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .values()
                .map(move |op| (op["operationId"].as_str().unwrap(), (path.as_str(), op)))
        })
        .collect();
    let mut links = 0;
    for (id, (path, op)) in &operations {
        let Some(created) = op["responses"]["201"].as_object() else {
            continue;
        };
        let body = resolve(&doc, &created["content"]["application/json"]["schema"]);
        for (name, link) in created
            .get("links")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            links += 1;
            let target = link["operationId"].as_str().unwrap();
            let (target_path, _) = operations
                .get(target)
                .unwrap_or_else(|| panic!("{id} links to {name}, no operation"));
            let wanted: Vec<&str> = target_path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let given = link["parameters"].as_object().unwrap();
            assert_eq!(given.len(), wanted.len(), "{id} -> {target}");
            for p in wanted {
                let field = given[p]
                    .as_str()
                    .and_then(|f| f.strip_prefix("$response.body#/"))
                    .unwrap_or_else(|| panic!("{id} -> {target}: {p}"));
                assert!(
                    body["properties"].get(field).is_some(),
                    "{path}: no {field}"
                );
            }
        }
    }
    assert!(links >= 40, "{links} links");
    let entity_link =
        &doc["paths"]["/api/v1/entities"]["post"]["responses"]["201"]["links"]["get_entity"];
    assert_eq!(entity_link["parameters"]["entity"], "$response.body#/name");

    assert_eq!(listings, 6, "the six listings with pages");
    assert_eq!(
        queries, 22,
        "after, limit, status, automation and name on seven listings; a signed URL's expires, \
         sig (and an upload's md5) on the two storage routes"
    );
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        json!([{}]),
        "health checks need no key"
    );

    // The limits the server enforces, as the document states them.
    let schemas = &doc["components"]["schemas"];
    let field = |schema: &str, name: &str| resolve(&doc, &schemas[schema]["properties"][name]);
    let identifier = resolve(&doc, &schemas["Identifier"]);
    assert_eq!(identifier["maxLength"], 128);
    assert_eq!(identifier["minLength"], 1);
    assert_eq!(field("CreateEntity", "name"), identifier);
    assert_eq!(field("CreateProject", "name"), identifier);
    assert_eq!(field("CreateRegistry", "name")["maxLength"], 113);
    assert_eq!(field("CreateProject", "description")["maxLength"], 16384);
    assert_eq!(field("AliasBody", "alias")["maxLength"], 128);
    assert_eq!(field("CreateArtifact", "aliases")["maxItems"], 100);
    assert_eq!(field("CreateArtifact", "digest")["maxLength"], 256);
    assert_eq!(field("CreateRun", "display_name")["maxLength"], 256);
    assert_eq!(field("LogHistory", "rows")["maxItems"], 10000);
    assert_eq!(field("LogHistory", "rows")["minItems"], 1);
    assert_eq!(field("RawHistoryRow", "values")["maxProperties"], 1000);
    assert_eq!(field("CreateUser", "email")["maxLength"], 320);
    assert_eq!(field("SecretValue", "value")["maxLength"], 16384);
    assert_eq!(
        field("SecretValue", "grace_period_seconds")["maximum"],
        604800
    );
    assert_eq!(field("SecretValue", "grace_period_seconds")["minimum"], 0);
    assert_eq!(field("CreateIntegration", "name")["maxLength"], 64);
    assert_eq!(field("CreateIntegration", "url")["maxLength"], 4096);
    assert_eq!(
        field("CreateIntegration", "signing_secret")["maxLength"],
        128
    );
    assert_eq!(field("AutomationInput", "name")["maxLength"], 255);
    assert_eq!(
        field("AutomationInput", "rate_limit_per_minute")["minimum"],
        1
    );
    assert_eq!(
        field("AutomationInput", "rate_limit_per_minute")["maximum"],
        1_000_000
    );
    assert_eq!(
        field("AutomationInput", "cooldown_seconds")["maximum"],
        31_536_000
    );
    for (filter, windows) in [
        ("ThresholdFilter", &["window_size"][..]),
        (
            "ChangeFilter",
            &["current_window_size", "prior_window_size"][..],
        ),
        ("ZScoreFilter", &["window_size"][..]),
    ] {
        for w in windows {
            assert_eq!(field(filter, w)["minimum"], 1, "{filter}.{w}");
            assert_eq!(field(filter, w)["maximum"], 10000, "{filter}.{w}");
        }
    }
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("1 MiB"),
        "the body limit is stated"
    );

    // The patterns say what the server's rules say.
    let pattern = |schema: &Value| regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
    let id = pattern(identifier);
    for ok in ["a", "my-team", "A-B_c.d", &"x".repeat(128)] {
        assert!(id.is_match(ok), "{ok}");
    }
    for bad in ["", "a/b", "a:b", "a b", "é", &"x".repeat(129)] {
        assert!(!id.is_match(bad), "{bad}");
    }
    let label = pattern(resolve(&doc, &schemas["Label"]));
    for ok in ["best", "v3", "prod candidate", "x", "ü", &"x".repeat(128)] {
        assert!(label.is_match(ok), "{ok}");
    }
    for bad in [
        "",
        " best",
        "best ",
        "a/b",
        "a:b",
        "a\tb",
        "a\u{0}b",
        "a\u{85}b",
        &"x".repeat(129),
    ] {
        assert!(!label.is_match(bad), "{bad:?}");
    }
    let secret = pattern(resolve(&doc, &schemas["SecretName"]));
    for ok in ["HOOK_TOKEN", "_x", "a1"] {
        assert!(secret.is_match(ok), "{ok}");
    }
    for bad in ["1a", "a-b", "", &"x".repeat(129)] {
        assert!(!secret.is_match(bad), "{bad}");
    }
}
