//! Bad input is a 4xx that names the problem, and nothing is stored: invalid filters, unknown
//! event and scope types, scope/event combinations W&B does not allow, payloads that are not
//! JSON or use unknown variables or secrets, another team's integration, bad integration URLs
//! and names, bad secret names, duplicate automation names, and redelivering an execution that
//! is still on its way.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const E: &str = "acme";

struct Setup {
    app: TestApp,
    rx: Receiver,
    integration: i64,
}

/// Organization `acme` with project `proj` (holding collection `clf`), registry `reg`, the
/// team's secrets and integration, and a secret `OTHER_SECRET` the integration does not use.
async fn setup() -> Setup {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    api.create_registry(E, "reg").await;
    api.create_version(E, "proj", "clf").await;
    api.put_secret(E, "OTHER_SECRET", "not for this integration")
        .await;
    Setup {
        app,
        rx,
        integration: t.integration,
    }
}

fn valid(integration: i64) -> Value {
    json!({
        "name": "n",
        "scope": { "type": "PROJECT", "path": "acme/proj" },
        "event": {
            "type": "ADD_ARTIFACT_ALIAS",
            "filter": { "$or": [ { "$and": [ { "alias": { "$regex": "^prod" } } ] } ] }
        },
        "action": {
            "type": "GENERIC_WEBHOOK",
            "integration_id": integration,
            "payload": { "e": "${event_type}" }
        }
    })
}

/// Asserts a 4xx JSON error with `status` whose message or path mentions every needle.
#[track_caller]
fn assert_refused(answer: (StatusCode, Value), status: StatusCode, needles: &[&str]) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    let error = &body["error"];
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {body}"));
    assert!(error["code"].is_string(), "{body}");
    let text = format!("{message} {}", error["path"].as_str().unwrap_or(""));
    for n in needles {
        assert!(text.contains(n), "the error does not name {n:?}: {body}");
    }
}

async fn automation_count(api: &Api) -> usize {
    expect(
        api.get(&format!("/api/v1/entities/{E}/automations")).await,
        StatusCode::OK,
    )
    .as_array()
    .unwrap()
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_automations_are_refused_and_nothing_is_stored() {
    let s = setup().await;
    let api = &s.app.admin;
    let other_team_integration = {
        api.create_entity("rivals", "team").await;
        api.create_integration("rivals", "theirs", "https://example.com/hook", None, None)
            .await
    };
    let with = |pointer: &str, v: Value| {
        let mut b = valid(s.integration);
        *b.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = v;
        b
    };
    let filter = |f: Value| with("/event/filter", f);
    let wrap = |cond: Value| json!({ "$or": [ { "$and": [ cond ] } ] });
    let payload = |p: Value| with("/action/payload", p);
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "unknown operator",
            filter(wrap(json!({ "alias": { "$like": "prod" } }))),
            vec!["$like", "event.filter"],
        ),
        (
            "unknown field",
            filter(wrap(json!({ "aliass": { "$eq": "prod" } }))),
            vec!["aliass", "event.filter"],
        ),
        (
            "bad regex",
            filter(wrap(json!({ "alias": { "$regex": "(unclosed" } }))),
            vec!["regex", "event.filter"],
        ),
        (
            "filter of the wrong shape",
            filter(json!({ "$or": "alias=prod" })),
            vec!["$or", "event.filter"],
        ),
        (
            "filter that is a list",
            filter(json!([{ "alias": "prod" }])),
            vec!["event.filter"],
        ),
        (
            "$in without a list",
            filter(wrap(json!({ "alias": { "$in": "prod" } }))),
            vec!["$in", "event.filter"],
        ),
        (
            "unknown event type",
            with("/event/type", json!("EXPLODE")),
            vec!["EXPLODE", "event"],
        ),
        (
            "unknown scope type",
            with("/scope/type", json!("GALAXY")),
            vec!["GALAXY", "scope.type"],
        ),
        (
            "CREATE_ARTIFACT at ENTITY scope",
            {
                let mut b = with("/scope", json!({ "type": "ENTITY", "path": "acme" }));
                b["event"] = json!({ "type": "CREATE_ARTIFACT" });
                b
            },
            vec!["CREATE_ARTIFACT", "ENTITY"],
        ),
        (
            "CREATE_ARTIFACT in a registry",
            {
                let mut b = with(
                    "/scope",
                    json!({ "type": "PROJECT", "path": "acme/wandb-registry-reg" }),
                );
                b["event"] = json!({ "type": "CREATE_ARTIFACT" });
                b
            },
            vec!["CREATE_ARTIFACT", "registry"],
        ),
        (
            "a scope path that does not exist",
            with("/scope/path", json!("acme/nope")),
            vec!["nope", "scope.path"],
        ),
        (
            "a scope path outside the entity",
            with("/scope/path", json!("rivals/proj")),
            vec!["scope.path"],
        ),
        (
            "a collection scope without a collection",
            with(
                "/scope",
                json!({ "type": "ARTIFACT_COLLECTION", "path": "acme/proj" }),
            ),
            vec!["scope.path"],
        ),
        (
            "a string payload that is not JSON",
            payload(json!("{\"e\": \"${event_type}\"")),
            vec!["JSON"],
        ),
        (
            "an unknown template variable",
            payload(json!({ "e": "${event_typo}" })),
            vec!["${event_typo}"],
        ),
        (
            "a secret the integration does not use",
            payload(json!({ "e": "${OTHER_SECRET}" })),
            vec!["${OTHER_SECRET}"],
        ),
        (
            "a secret that does not exist",
            payload(json!({ "${NO_SUCH_SECRET}": 1 })),
            vec!["${NO_SUCH_SECRET}"],
        ),
        (
            "another team's integration",
            with("/action/integration_id", json!(other_team_integration)),
            vec!["action.integration_id"],
        ),
        (
            "an integration that does not exist",
            with("/action/integration_id", json!(999_999)),
            vec!["action.integration_id", "999999"],
        ),
        (
            "a rate limit of zero",
            {
                let mut b = valid(s.integration);
                b["rate_limit_per_minute"] = json!(0);
                b
            },
            vec!["rate_limit_per_minute"],
        ),
        ("an empty name", with("/name", json!("")), vec!["name"]),
    ];
    for (what, body, needles) in cases {
        let answer = api
            .post(&format!("/api/v1/entities/{E}/automations"), body)
            .await;
        assert!(
            answer.0.is_client_error(),
            "{what}: {} {}",
            answer.0,
            answer.1
        );
        assert_refused(answer, StatusCode::BAD_REQUEST, &needles);
        assert_eq!(
            automation_count(api).await,
            0,
            "{what}: something was stored"
        );
    }

    // A valid one is stored; a second with the same name conflicts and is not.
    let first = api.create_automation(E, valid(s.integration)).await;
    assert_eq!(first["name"], "n");
    assert_refused(
        api.post(
            &format!("/api/v1/entities/{E}/automations"),
            valid(s.integration),
        )
        .await,
        StatusCode::CONFLICT,
        &["n"],
    );
    assert_eq!(automation_count(api).await, 1);

    // The same checks hold for a full replace and a PATCH, which leave the stored one as it was.
    let id = first["id"].as_i64().unwrap();
    assert_refused(
        api.put(
            &format!("/api/v1/automations/{id}"),
            filter(wrap(json!({ "alias": { "$regex": "([" } }))),
        )
        .await,
        StatusCode::BAD_REQUEST,
        &["event.filter"],
    );
    assert_refused(
        api.patch(
            &format!("/api/v1/automations/{id}"),
            json!({ "event": { "type": "CREATE_ARTIFACT" }, "scope": { "type": "ENTITY", "path": "acme" } }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        &["CREATE_ARTIFACT"],
    );
    let stored = expect(
        api.get(&format!("/api/v1/automations/{id}")).await,
        StatusCode::OK,
    );
    assert_eq!(stored["event"]["type"], "ADD_ARTIFACT_ALIAS");
    assert_eq!(stored["scope"]["type"], "PROJECT");
    assert_eq!(stored["event"]["filter"], valid(0)["event"]["filter"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_integrations_and_secrets_are_refused_and_nothing_is_stored() {
    let s = setup().await;
    let api = &s.app.admin;
    let integrations = |api: &Api| {
        let api = api.clone();
        async move {
            expect(
                api.get(&format!("/api/v1/entities/{E}/integrations")).await,
                StatusCode::OK,
            )
            .as_array()
            .unwrap()
            .len()
        }
    };
    let base = json!({ "kind": "webhook", "name": "ok name", "url": "https://example.com/hook" });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "an ftp URL",
            with("url", json!("ftp://example.com/hook")),
            vec!["url", "http"],
        ),
        (
            "a URL without a scheme",
            with("url", json!("example.com/hook")),
            vec!["url"],
        ),
        (
            "a javascript: URL",
            with("url", json!("javascript:alert(1)")),
            vec!["url"],
        ),
        (
            "credentials in the URL",
            with("url", json!("https://u:p@example.com/")),
            vec!["url"],
        ),
        (
            "a name with punctuation",
            with("name", json!("bad!name")),
            vec!["name", "bad!name"],
        ),
        (
            "a name with a leading space",
            with("name", json!(" lead")),
            vec!["name"],
        ),
        (
            "a name over 64 characters",
            with("name", json!("n".repeat(65))),
            vec!["name", "64"],
        ),
        (
            "an invalid secret name",
            with("access_token_secret", json!("1BAD")),
            vec!["access_token_secret"],
        ),
        (
            "an unknown kind",
            with("kind", json!("carrier_pigeon")),
            vec!["carrier_pigeon"],
        ),
    ];
    let before = integrations(api).await;
    for (what, body, needles) in cases {
        let answer = api
            .post(&format!("/api/v1/entities/{E}/integrations"), body)
            .await;
        assert!(
            answer.0.is_client_error(),
            "{what}: {} {}",
            answer.0,
            answer.1
        );
        assert_refused(answer, StatusCode::BAD_REQUEST, &needles);
        assert_eq!(
            integrations(api).await,
            before,
            "{what}: something was stored"
        );
    }

    let secrets = |api: &Api| {
        let api = api.clone();
        async move {
            expect(
                api.get(&format!("/api/v1/entities/{E}/secrets")).await,
                StatusCode::OK,
            )
        }
    };
    let before = secrets(api).await;
    for bad in [
        "1BAD",
        "A-B",
        "with%20space",
        "ACCESS_TOKEN",
        &"S".repeat(129),
    ] {
        assert_refused(
            api.put(
                &format!("/api/v1/entities/{E}/secrets/{bad}"),
                json!({ "value": "v" }),
            )
            .await,
            StatusCode::BAD_REQUEST,
            &["name"],
        );
    }
    assert_refused(
        api.put(
            &format!("/api/v1/entities/{E}/secrets/GOOD_NAME"),
            json!({ "value": "" }),
        )
        .await,
        StatusCode::BAD_REQUEST,
        &["value"],
    );
    // A rotation with a grace period out of range, or not a number of seconds, leaves the
    // secret as it was: same value, same time, no previous value kept.
    for grace in [json!(-1), json!(604_801), json!("1d"), json!(1.5)] {
        assert_refused(
            api.put(
                &format!("/api/v1/entities/{E}/secrets/{TOKEN_SECRET}"),
                json!({ "value": "rotated", "grace_period_seconds": grace }),
            )
            .await,
            StatusCode::BAD_REQUEST,
            &["grace_period_seconds"],
        );
    }
    assert_eq!(secrets(api).await, before, "a bad secret was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_still_on_its_way_cannot_be_redelivered() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    // An hour's Retry-After keeps the execution PENDING for the whole test.
    rx.answer("/later", Reply::RetryAfter(429, 3600));
    let api = &app.admin;
    let t = team(api, E, &rx, "/later").await;
    let a = api
        .create_automation(E, on_create("pending", E, t.integration))
        .await;
    api.create_version(E, "proj", "clf").await;
    let x = api.first_execution(a["id"].as_i64().unwrap()).await;
    let pending = eventually("the first attempt", Duration::from_secs(10), || async {
        let v = api.execution(x).await;
        (v["attempt_count"] == 1).then_some(v)
    })
    .await;
    assert_eq!(pending["status"], "PENDING");
    assert_refused(
        api.post(&format!("/api/v1/executions/{x}/redeliver"), json!({}))
            .await,
        StatusCode::CONFLICT,
        &["PENDING"],
    );
    let after = api.execution(x).await;
    assert_eq!(after["status"], "PENDING");
    assert_eq!(after["attempt_count"], 1);
    assert_eq!(after["next_attempt_at"], pending["next_attempt_at"]);
    assert_eq!(rx.received_at("/later").len(), 1);
    // Unknown executions are a 404, not a conflict.
    let (status, _) = api
        .post("/api/v1/executions/987654/redeliver", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_endpoint_refuses_a_payload_that_is_not_an_object() {
    let s = setup().await;
    let api = &s.app.admin;
    let path = format!("/api/v1/integrations/{}/test", s.integration);
    for payload in [
        json!([false]),
        json!(true),
        json!(7),
        json!("[1, 2]"),
        json!("not json"),
    ] {
        assert_refused(
            api.post(&path, json!({ "payload": payload })).await,
            StatusCode::BAD_REQUEST,
            &["payload"],
        );
    }
    // Nothing was sent for any of them: only the object (and the string holding one) go out.
    assert!(s.rx.received_at("/hook").is_empty());
    for payload in [json!({ "a": 1 }), json!("{\"a\": 1}")] {
        let r = expect(
            api.post(&path, json!({ "payload": payload })).await,
            StatusCode::OK,
        );
        assert_eq!(r["request_body"], json!({ "a": 1 }), "{r}");
    }
    assert_eq!(s.rx.received_at("/hook").len(), 2);
    // A body must say it is JSON, as everywhere else; no body at all needs no type.
    let (status, body) = api
        .send(
            api.request(reqwest::Method::POST, &path)
                .header(reqwest::header::CONTENT_TYPE, "text/plain")
                .body(r#"{"payload": {"a": 1}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type", "{body}");
    expect(
        api.send(api.request(reqwest::Method::POST, &path)).await,
        StatusCode::OK,
    );
    assert_eq!(s.rx.received_at("/hook").len(), 3);
}
