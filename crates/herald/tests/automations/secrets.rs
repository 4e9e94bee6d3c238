//! Secret values are write-only: no API answer holds them (names only; `***` in execution
//! history and integration test answers), no log line does even at debug level, and the
//! database files never hold them in plaintext. Only the destination sees them.

use chrono::Utc;
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
        assert_eq!(
            keys,
            ["created_at", "name", "previous_values", "updated_at"],
            "{s}"
        );
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

    // The receiver echoes what it got, as many test receivers do: its answer holds the values.
    rx.answer("/hook", Reply::Echo(200));
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
    // ...and so does the answer kept in history, which echoed them.
    let response = stored["attempts"][0]["response"].as_str().unwrap();
    assert!(response.contains("authorization: Bearer ***"), "{response}");
    assert_no_secret("the stored answer", response);
    let test = expect(
        api.post(
            &format!("/api/v1/integrations/{}/test", t.integration),
            json!({ "payload": payload() }),
        )
        .await,
        StatusCode::OK,
    );
    assert!(
        test["response"].as_str().unwrap().contains("Bearer ***"),
        "{test}"
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

    assert_stored_nowhere(&app.data_dir, &[TOKEN_VALUE, SIGNING_VALUE, UNUSED_VALUE]).await;
}

/// No stored row (on PostgreSQL) and no file of the data directory (the SQLite database, its
/// WAL, the key files) holds any of `values` in plaintext.
async fn assert_stored_nowhere(data_dir: &Path, values: &[&str]) {
    // On PostgreSQL, no stored row holds a plaintext value.
    let dump = herald::testing::database_dump(data_dir).await;
    if let Some(dump) = &dump {
        assert!(
            dump.contains("acme/proj/clf"),
            "the dump holds the stored rows"
        );
        for v in values {
            assert!(
                !dump.contains(v),
                "the database holds the plaintext secret {v:?}"
            );
        }
    }
    // Nothing on disk holds a plaintext value: the database (on SQLite), its WAL, the key files.
    let all = files(data_dir);
    assert!(
        dump.is_some() || all.iter().any(|f| f.file_name().unwrap() == "herald.db"),
        "{all:?}"
    );
    for f in all {
        let bytes = std::fs::read(&f).unwrap();
        for v in values {
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
    // The test call is signed under a rotated signing secret and, in its grace period, the
    // value it replaced.
    const ROTATED: &str = "whsec_cm90YXRlZC1pbi10aGUtbG9nLXRlc3Q=";
    api.put_secret(E, SIGNING_SECRET, ROTATED).await;
    expect(
        api.post(
            &format!("/api/v1/integrations/{}/test", t.integration),
            json!({ "payload": payload() }),
        )
        .await,
        StatusCode::OK,
    );
    let received = rx.received_at("/hook");
    assert_eq!(received.len(), 3);
    assert_eq!(
        received[2]
            .header("webhook-signature")
            .map(|h| h.split(' ').count()),
        Some(2),
        "the test call is signed under both values"
    );
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
    assert!(
        !text.contains(ROTATED),
        "the debug log holds the rotated value"
    );
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

/// Rotating a signing secret keeps the value it replaces signing deliveries for a grace period
/// (Standard Webhooks' zero-downtime rotation): `webhook-signature` lists the current value's
/// signature first, then one per previous value still valid. A grace period ends on time, and
/// a rotation with none ends every previous value at once. `X-Wandb-Signature`, one value by
/// W&B's format, is always the current value's. Previous values are stored sealed like the
/// current one, and listed by validity only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_secret_also_signs_with_its_previous_values_until_their_grace_ends() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    api.create_automation(E, on_create("signed", E, t.integration))
        .await;
    let path = format!("/api/v1/entities/{E}/secrets/{SIGNING_SECRET}");
    // The `n`th delivery, of a version created for it.
    let rx = &rx;
    let delivery = |n: usize| async move {
        api.create_version(E, "proj", "clf").await;
        rx.wait_for("/hook", n, Duration::from_secs(10)).await[n - 1].clone()
    };
    #[track_caller]
    fn signed_by(r: &Received, current: &str, previous: &[&str]) {
        let want: Vec<String> = std::iter::once(current)
            .chain(previous.iter().copied())
            .map(|s| standard_signature(r, s))
            .collect();
        assert_eq!(
            r.header("webhook-signature"),
            Some(want.join(" ").as_str()),
            "webhook-signature under {current:?} then {previous:?}"
        );
        verify_signatures(r, current);
    }
    let rotate = |value: &'static str, grace: Option<i64>| {
        let path = path.clone();
        async move {
            let mut body = json!({ "value": value });
            if let Some(g) = grace {
                body["grace_period_seconds"] = json!(g);
            }
            expect(api.put(&path, body).await, StatusCode::OK)
        }
    };
    let validity = |meta: &Value| -> Vec<Duration> {
        meta["previous_values"]
            .as_array()
            .expect("previous_values")
            .iter()
            .map(|p| {
                let at =
                    |k: &str| chrono::DateTime::parse_from_rfc3339(p[k].as_str().unwrap()).unwrap();
                (at("valid_until") - at("retired_at")).to_std().unwrap()
            })
            .collect()
    };

    signed_by(&delivery(1).await, SIGNING_VALUE, &[]);

    // Rotated with the default grace period: a day.
    const SECOND: &str = "whsec_c2Vjb25kLXNpZ25pbmctdmFsdWU=";
    const THIRD: &str = "whsec_dGhpcmQtc2lnbmluZy12YWx1ZQ==";
    const FOURTH: &str = "whsec_Zm91cnRoLXNpZ25pbmctdmFsdWU=";
    let meta = rotate(SECOND, None).await;
    assert_eq!(validity(&meta), vec![Duration::from_secs(86_400)]);
    signed_by(&delivery(2).await, SECOND, &[SIGNING_VALUE]);
    // The same value put again (a configuration tool applying itself again) is no rotation:
    // the previous value keeps its grace period, and the current value does not join it.
    let again = rotate(SECOND, Some(5)).await;
    assert_eq!(again["previous_values"], meta["previous_values"]);

    // Rotated again with one second: both previous values sign, newest first.
    let meta = rotate(THIRD, Some(1)).await;
    assert_eq!(
        validity(&meta),
        vec![Duration::from_secs(1), Duration::from_secs(86_400)]
    );
    signed_by(&delivery(3).await, THIRD, &[SECOND, SIGNING_VALUE]);
    let second_ends = chrono::DateTime::parse_from_rfc3339(
        meta["previous_values"][0]["valid_until"].as_str().unwrap(),
    )
    .unwrap();
    assert_stored_nowhere(&app.data_dir, &[SIGNING_VALUE, SECOND, THIRD]).await;

    // Once its second is up, the second value no longer signs, and is no longer listed.
    while Utc::now() <= second_ends {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signed_by(&delivery(4).await, THIRD, &[SIGNING_VALUE]);
    let listed = expect(
        api.get(&format!("/api/v1/entities/{E}/secrets")).await,
        StatusCode::OK,
    );
    let listed = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == SIGNING_SECRET)
        .unwrap()
        .clone();
    assert_eq!(validity(&listed), vec![Duration::from_secs(86_400)]);
    assert_no_secret("the secret list", &listed.to_string());

    // No grace period: a leaked value stops signing at once, and so does every earlier one.
    let meta = rotate(FOURTH, Some(0)).await;
    assert_eq!(validity(&meta), Vec::<Duration>::new());
    signed_by(&delivery(5).await, FOURTH, &[]);
}

/// A secret keeps at most ten previous values, the newest; deleting it deletes them too, so a
/// secret created again under the same name starts with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_keeps_its_ten_newest_previous_values_and_loses_them_when_deleted() {
    let app = spawn_app(Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    let path = format!("/api/v1/entities/{E}/secrets/ROTATED");
    let retired = |meta: &Value| -> Vec<String> {
        meta["previous_values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["retired_at"].as_str().unwrap().to_string())
            .collect()
    };
    let mut updates = Vec::new();
    for i in 0..13 {
        let (status, meta) = api
            .put(&path, json!({ "value": format!("value-{i}") }))
            .await;
        assert_eq!(
            status,
            if i == 0 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            "{meta}"
        );
        updates.push(meta["updated_at"].as_str().unwrap().to_string());
        if i == 12 {
            // Each rotation retired the value before it when it updated the secret: of the
            // twelve, the values retired by the last ten rotations remain, newest first.
            let want: Vec<String> = updates[3..].iter().rev().cloned().collect();
            assert_eq!(retired(&meta), want);
        }
    }
    expect(api.delete(&path).await, StatusCode::NO_CONTENT);
    let meta = expect(
        api.put(&path, json!({ "value": "again" })).await,
        StatusCode::CREATED,
    );
    assert_eq!(retired(&meta), Vec::<String>::new());
}

/// After the master key is replaced, secrets sealed under the old one cannot be opened until
/// they are put again. Putting one again is then no rotation with a grace period: the value
/// that cannot be opened is not kept, and deliveries are signed under the new value alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_put_again_under_a_new_master_key_keeps_no_previous_value() {
    const OLD_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const NEW_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rx = Receiver::start().await;
    let options = Options::default();
    let server = ChildServer::start(&data, &options, &[("HERALD_MASTER_KEY", OLD_KEY)], None).await;
    let t = team(&server.admin, E, &rx, "/hook").await;
    server
        .admin
        .create_automation(E, on_create("signed", E, t.integration))
        .await;
    drop(server);

    let server = ChildServer::start(&data, &options, &[("HERALD_MASTER_KEY", NEW_KEY)], None).await;
    let api = &server.admin;
    api.put_secret(E, TOKEN_SECRET, TOKEN_VALUE).await;
    let meta = expect(
        api.put(
            &format!("/api/v1/entities/{E}/secrets/{SIGNING_SECRET}"),
            json!({ "value": SIGNING_VALUE }),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(meta["previous_values"], json!([]), "{meta}");
    api.create_version(E, "proj", "clf").await;
    let got = rx.wait_for("/hook", 1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0]
            .header("webhook-signature")
            .map(|h| h.split(' ').count()),
        Some(1)
    );
    verify_signatures(&got[0], SIGNING_VALUE);
}
