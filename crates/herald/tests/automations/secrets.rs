//! Secret values are write-only: no API answer holds them (names only; `***` in execution
//! history and integration test answers), no log line does even at debug level, and the
//! database files never hold them in plaintext. Only the destination sees them.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const E: &str = "acme";
const UNUSED_VALUE: &str = "unused-plaintext-value-8c1f0b7e2d";

fn payload() -> Value {
    json!({
        "auth": "${ACCESS_TOKEN}",
        "sig": "${HOOK_SIGNING}",
        "${HOOK_TOKEN}": "a secret as a key",
        "v": "${artifact_version_string}"
    })
}

#[track_caller]
fn assert_no_secret(what: &str, text: &str) {
    for v in [TOKEN_VALUE, SIGNING_VALUE, UNUSED_VALUE] {
        assert!(
            !text.contains(v),
            "{what} holds the secret value {v:?}: {text}"
        );
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_api_answers_or_stored_history() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    api.put_secret(E, "UNUSED", UNUSED_VALUE).await;

    // Secret listings: names and times only.
    let (status, text) = api
        .send_raw(api.request(
            reqwest::Method::GET,
            &format!("/api/v1/entities/{E}/secrets"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_no_secret("GET secrets", &text);
    let listed: Value = serde_json::from_str(&text).unwrap();
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, [SIGNING_SECRET, TOKEN_SECRET, "UNUSED"]);
    for s in listed.as_array().unwrap() {
        let mut keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["created_at", "name", "updated_at"], "{s}");
    }
    // Rotating answers the same way.
    let (status, text) = api
        .send_raw(
            api.request(
                reqwest::Method::PUT,
                &format!("/api/v1/entities/{E}/secrets/UNUSED"),
            )
            .json(&json!({ "value": UNUSED_VALUE })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_no_secret("PUT secret", &text);

    let mut body = on_create("with secrets", E, t.integration);
    body["action"]["payload"] = payload();
    let a = api.create_automation(E, body).await;
    let automation = a["id"].as_i64().unwrap();
    api.create_version(E, "proj", "clf").await;
    let x = api.first_execution(automation).await;
    api.wait_status(x, "FINISHED", Duration::from_secs(10))
        .await;

    // The destination gets the real values...
    let got = rx.wait_for("/hook", 1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].json(),
        json!({ "auth": TOKEN_VALUE, "sig": SIGNING_VALUE, TOKEN_VALUE: "a secret as a key",
                "v": "acme/proj/clf:v0" })
    );
    // ...history keeps them masked.
    let stored = api.execution(x).await;
    assert_eq!(
        stored["request"]["body"],
        json!({ "auth": "***", "sig": "***", "***": "a secret as a key", "v": "acme/proj/clf:v0" })
    );
    let test = expect(
        api.post(
            &format!("/api/v1/integrations/{}/test", t.integration),
            json!({ "payload": payload() }),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(test["request_body"]["auth"], "***");
    assert_eq!(test["request_body"]["sig"], "***");
    assert_no_secret("the test call's answer", &test.to_string());

    for path in [
        format!("/api/v1/entities/{E}/secrets"),
        format!("/api/v1/entities/{E}/integrations"),
        format!("/api/v1/integrations/{}", t.integration),
        format!("/api/v1/entities/{E}/automations"),
        format!("/api/v1/automations/{automation}"),
        format!("/api/v1/automations/{automation}/executions"),
        format!("/api/v1/entities/{E}/executions"),
        format!("/api/v1/executions/{x}"),
        format!("/api/v1/entities/{E}/events"),
    ] {
        let (status, text) = api.send_raw(api.request(reqwest::Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        assert_no_secret(&path, &text);
    }

    // On PostgreSQL, no stored row holds a plaintext value.
    let dump = herald::testing::database_dump(&app.data_dir).await;
    if let Some(dump) = &dump {
        assert!(
            dump.contains("acme/proj/clf"),
            "the dump holds the stored rows"
        );
        for v in [TOKEN_VALUE, SIGNING_VALUE, UNUSED_VALUE] {
            assert!(
                !dump.contains(v),
                "the database holds the plaintext secret {v:?}"
            );
        }
    }
    // Nothing on disk holds a plaintext value: the database (on SQLite), its WAL, the key files.
    let all = files(&app.data_dir);
    assert!(
        dump.is_some() || all.iter().any(|f| f.file_name().unwrap() == "herald.db"),
        "{all:?}"
    );
    for f in all {
        let bytes = std::fs::read(&f).unwrap();
        for v in [TOKEN_VALUE, SIGNING_VALUE, UNUSED_VALUE] {
            assert!(
                !contains(&bytes, v.as_bytes()),
                "{} holds the plaintext secret {v:?}",
                f.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_debug_logs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("herald.log");
    let rx = Receiver::start().await;
    rx.queue("/hook", vec![Reply::Status(500, "try again")]);
    let server = ChildServer::start(
        &dir.path().join("data"),
        &Options::default(),
        &[("HERALD_LOG", "debug")],
        Some(&log),
    )
    .await;
    let api = &server.admin;
    let t = team(api, E, &rx, "/hook").await;
    api.put_secret(E, "UNUSED", UNUSED_VALUE).await;
    let gone = api
        .create_integration(E, "gone", &rx.url("/gone"), Some(TOKEN_SECRET), None)
        .await;
    rx.answer("/gone", Reply::Status(410, "gone"));
    let mut body = on_create("with secrets", E, t.integration);
    body["action"]["payload"] = payload();
    let a = api.create_automation(E, body).await;
    let mut body = on_create("to gone", E, gone);
    body["action"]["payload"] = json!({ "t": "${ACCESS_TOKEN}" });
    let b = api.create_automation(E, body).await;
    api.create_version(E, "proj", "clf").await;
    // A failure, a retry and a success; a 410 that disables an integration; a test call.
    let x = api.first_execution(a["id"].as_i64().unwrap()).await;
    let x = api
        .wait_status(x, "FINISHED", Duration::from_secs(10))
        .await;
    assert_eq!(x["attempt_count"], 2);
    let y = api.first_execution(b["id"].as_i64().unwrap()).await;
    api.wait_status(y, "FAILED", Duration::from_secs(10)).await;
    expect(
        api.post(
            &format!("/api/v1/integrations/{}/test", t.integration),
            json!({ "payload": payload() }),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(rx.received_at("/hook").len(), 3);
    drop(server);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("herald is listening"),
        "stderr was not captured: {text}"
    );
    assert!(text.contains("DEBUG"), "debug logging was not on");
    assert!(
        text.contains("integration disabled"),
        "the 410 was not logged"
    );
    assert_no_secret("the debug log", &text);
    assert!(!text.contains(ADMIN_KEY), "the debug log holds an API key");
}

/// Deliveries keep secrets read for a moment (so a busy destination does not read them for
/// every message); a secret set through the API is used from the very next delivery on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_used_by_the_next_delivery() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    api.create_automation(E, on_create("signed", E, t.integration))
        .await;

    api.create_version(E, "proj", "clf").await;
    // Carries `token` as its bearer token and is signed with `signing`.
    let sent_with = |r: &Received, token: &str, signing: &str| {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        verify_signatures(r, signing);
    };
    let first = rx.wait_for("/hook", 1, Duration::from_secs(10)).await;
    sent_with(&first[0], TOKEN_VALUE, SIGNING_VALUE);

    // Rotated, then used at once: well within the time a read secret is kept.
    let (token, signing) = (
        "tok_rotated_0b6e2c",
        "whsec_cm90YXRlZC1zaWduaW5nLXNlY3JldA==",
    );
    api.put_secret(E, TOKEN_SECRET, token).await;
    api.put_secret(E, SIGNING_SECRET, signing).await;
    api.create_version(E, "proj", "clf").await;
    let both = rx.wait_for("/hook", 2, Duration::from_secs(10)).await;
    sent_with(&both[1], token, signing);
}
