//! Each way a receiver can misbehave, recorded in the execution's attempts (status code, error
//! class, response) and retried or stopped as the retry policy says: a timeout, a dropped
//! connection, a 500, a 429 with `Retry-After`, a redirect (never followed), a 410 (which
//! disables the integration), a 100 MB answer (4 KiB kept, memory bounded). Also: a dead
//! destination does not hold up a healthy one, and the SSRF guard refuses loopback by default.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const E: &str = "acme";

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("{v} is not an RFC 3339 time"))
        .with_timezone(&Utc)
}

fn ms(d: chrono::Duration) -> i64 {
    d.num_milliseconds()
}

/// A team whose integration posts to `path` on `rx`, an automation on CREATE_ARTIFACT in
/// `acme/proj` using it, and one artifact creation; returns the execution id.
async fn one_delivery_to(app: &TestApp, rx: &Receiver, path: &str) -> i64 {
    let api = &app.admin;
    let t = team(api, E, rx, path).await;
    let a = api
        .create_automation(E, on_create("fault", E, t.integration))
        .await;
    api.create_version(E, "proj", "clf").await;
    api.first_execution(a["id"].as_i64().unwrap()).await
}

/// The attempts of a settled execution.
fn attempts(x: &Value) -> Vec<Value> {
    x["attempts"].as_array().expect("attempts").clone()
}

/// Asserts the gaps between attempt start times honour the test schedule (200 ms, 400 ms),
/// and that the receiver saw the same spacing.
fn assert_schedule_kept(attempts: &[Value], seen: &[Received]) {
    let starts: Vec<DateTime<Utc>> = attempts.iter().map(|a| time(&a["started_at"])).collect();
    for (i, want) in [200, 400].into_iter().enumerate() {
        let gap = ms(starts[i + 1] - starts[i]);
        assert!(
            gap >= want,
            "attempt {} came {gap} ms after the one before; the schedule says {want} ms",
            i + 2
        );
        assert!(gap < want + 3000, "attempt {} came {gap} ms late", i + 2);
    }
    assert_eq!(seen.len(), attempts.len(), "the receiver saw every attempt");
    for (i, want) in [200u128, 400].into_iter().enumerate() {
        let gap = seen[i + 1].at.duration_since(seen[i].at).as_millis();
        assert!(
            gap >= want,
            "the receiver saw attempt {} {gap} ms after the one before",
            i + 2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_on_the_schedule_then_fail() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    rx.answer("/boom", Reply::Status(500, "boom: database on fire"));
    let x = one_delivery_to(&app, &rx, "/boom").await;
    let x = app
        .admin
        .wait_status(x, "FAILED", Duration::from_secs(10))
        .await;
    assert_eq!(x["attempt_count"], 3, "the first attempt and two retries");
    let reason = x["reason"].as_str().unwrap();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(x["next_attempt_at"], Value::Null);
    let att = attempts(&x);
    for (i, a) in att.iter().enumerate() {
        assert_eq!(a["number"], i + 1);
        assert_eq!(a["status_code"], 500);
        assert_eq!(a["error_class"], "http_status");
        assert_eq!(a["response"], "boom: database on fire");
    }
    let seen = rx.received_at("/boom");
    assert_schedule_kept(&att, &seen);
    // Every retry is the same message.
    assert!(seen
        .iter()
        .all(|r| r.webhook_id() == format!("exec_{}", x["id"])));
    assert!(seen.iter().all(|r| r.body == seen[0].body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_recorded_and_retried() {
    let app = spawn_app(Options {
        timeout: "500ms".into(),
        ..Options::default()
    })
    .await;
    let rx = Receiver::start().await;
    rx.answer("/slow", Reply::Delay(Duration::from_secs(5)));
    let x = one_delivery_to(&app, &rx, "/slow").await;
    let x = app
        .admin
        .wait_status(x, "FAILED", Duration::from_secs(15))
        .await;
    let att = attempts(&x);
    assert_eq!(att.len(), 3);
    for a in &att {
        assert_eq!(a["status_code"], Value::Null);
        assert_eq!(a["error_class"], "timeout");
        assert_eq!(a["response"], Value::Null);
        let d = a["duration_ms"].as_f64().unwrap();
        assert!(
            (450.0..2000.0).contains(&d),
            "an attempt lasted {d} ms with a 500 ms timeout"
        );
        assert!(a["error"].as_str().unwrap().contains("timed out"), "{a}");
    }
    assert_schedule_kept(&att, &rx.received_at("/slow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_recorded_and_retried() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    rx.queue("/flaky", vec![Reply::Reset, Reply::Reset]);
    let x = one_delivery_to(&app, &rx, "/flaky").await;
    let x = app
        .admin
        .wait_status(x, "FINISHED", Duration::from_secs(10))
        .await;
    let att = attempts(&x);
    assert_eq!(att.len(), 3, "two resets, then a success");
    for a in &att[..2] {
        assert_eq!(a["status_code"], Value::Null, "{a}");
        assert_eq!(a["response"], Value::Null, "{a}");
        let class = a["error_class"].as_str().expect("an error class");
        assert_eq!(class, "connection_reset", "{a}");
        let error = a["error"].as_str().unwrap().to_ascii_lowercase();
        assert!(
            error.contains("reset"),
            "the error names the reset: {error}"
        );
    }
    assert_eq!(att[2]["status_code"], 200);
    assert_eq!(att[2]["error_class"], Value::Null);
    assert_schedule_kept(&att, &rx.received_at("/flaky"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_honours_retry_after() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    rx.queue("/busy", vec![Reply::RetryAfter(429, 1)]);
    let x = one_delivery_to(&app, &rx, "/busy").await;
    let api = &app.admin;
    // Between the two attempts: PENDING, due when the destination said, not 200 ms later.
    let waiting = eventually("the first attempt", Duration::from_secs(10), || async {
        let v = api.execution(x).await;
        (v["attempt_count"] == 1).then_some(v)
    })
    .await;
    assert_eq!(waiting["status"], "PENDING");
    let first = &attempts(&waiting)[0];
    assert_eq!(first["status_code"], 429);
    assert_eq!(first["error_class"], "http_status");
    assert_eq!(first["response"], "slow down");
    let due = time(&waiting["next_attempt_at"]);
    let wait = ms(due - time(&first["started_at"]));
    assert!(
        (1000..2500).contains(&wait),
        "next_attempt_at is {wait} ms after the attempt; Retry-After said 1 s"
    );
    let done = api
        .wait_status(x, "FINISHED", Duration::from_secs(10))
        .await;
    let att = attempts(&done);
    assert_eq!(att.len(), 2);
    assert_eq!(att[1]["status_code"], 200);
    let gap = ms(time(&att[1]["started_at"]) - time(&att[0]["started_at"]));
    assert!(gap >= 1000, "retried {gap} ms later despite Retry-After: 1");
    let seen = rx.received_at("/busy");
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_recorded_and_not_followed() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    rx.answer("/moved", Reply::Redirect(301, "/target"));
    let x = one_delivery_to(&app, &rx, "/moved").await;
    let x = app
        .admin
        .wait_status(x, "FAILED", Duration::from_secs(10))
        .await;
    let att = attempts(&x);
    assert_eq!(att.len(), 3, "a redirect is a failure, retried like one");
    for a in &att {
        assert_eq!(a["status_code"], 301);
        assert_eq!(a["error_class"], "redirect");
        assert_eq!(a["response"], "moved");
        let error = a["error"].as_str().unwrap();
        assert!(
            error.contains("not followed") && error.contains("/target"),
            "{error}"
        );
    }
    assert_schedule_kept(&att, &rx.received_at("/moved"));
    assert!(
        rx.received_at("/target").is_empty(),
        "the redirect was followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_fails_and_disables_the_integration() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    rx.answer("/gone", Reply::Status(410, "this hook was deleted"));
    let api = &app.admin;
    let x = one_delivery_to(&app, &rx, "/gone").await;
    let x = api.wait_status(x, "FAILED", Duration::from_secs(10)).await;
    let att = attempts(&x);
    assert_eq!(att.len(), 1, "410 is not retried");
    assert_eq!(att[0]["status_code"], 410);
    assert_eq!(att[0]["error_class"], "http_status");
    assert_eq!(att[0]["response"], "this hook was deleted");
    assert!(x["reason"].as_str().unwrap().contains("410"));

    let integrations = expect(
        api.get(&format!("/api/v1/entities/{E}/integrations")).await,
        StatusCode::OK,
    );
    let i = &integrations[0];
    assert_eq!(i["enabled"], false);
    let why = i["disabled_reason"].as_str().expect("a reason");
    assert!(why.contains("410"), "{why}");

    // Later executions for it are cancelled as disabled, without calling it.
    api.create_version(E, "proj", "clf").await;
    let automation = x["automation_id"].as_i64().unwrap();
    let xs = api
        .settled_executions(automation, 2, Duration::from_secs(10))
        .await;
    let later = api.execution(xs[1]["id"].as_i64().unwrap()).await;
    assert_eq!(later["status"], "CANCELLED");
    let reason = later["reason"].as_str().unwrap();
    assert!(
        reason.contains("disabled") && reason.contains("410"),
        "{reason}"
    );
    assert_eq!(attempts(&later).len(), 0, "nothing was attempted");
    assert_eq!(rx.received_at("/gone").len(), 1);

    // Re-enabling clears the reason, and (with a new URL) takes effect for the very next
    // delivery: what deliveries cache of an integration is dropped when it changes.
    let i = expect(
        api.patch(
            &format!("/api/v1/integrations/{}", i["id"]),
            json!({ "enabled": true, "url": rx.url("/back") }),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(i["enabled"], true);
    assert_eq!(i["disabled_reason"], Value::Null);
    api.create_version(E, "proj", "clf").await;
    let xs = api
        .settled_executions(automation, 3, Duration::from_secs(10))
        .await;
    assert_eq!(xs[2]["status"], "FINISHED", "{:?}", xs[2]);
    assert_eq!(rx.received_at("/back").len(), 1);
    assert_eq!(rx.received_at("/gone").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_cut_at_4_kib_and_memory_stays_bounded() {
    const HUNDRED_MB: u64 = 100 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.answer("/huge", Reply::Huge(HUNDRED_MB));
    let server = ChildServer::start(&dir.path().join("data"), &Options::default(), &[], None).await;
    let api = &server.admin;
    let t = team(api, E, &rx, "/huge").await;
    let a = api
        .create_automation(E, on_create("huge", E, t.integration))
        .await;
    let id = a["id"].as_i64().unwrap();
    for _ in 0..3 {
        api.create_version(E, "proj", "clf").await;
    }
    let xs = api.settled_executions(id, 3, Duration::from_secs(20)).await;
    for x in xs {
        let x = api.execution(x["id"].as_i64().unwrap()).await;
        assert_eq!(x["status"], "FINISHED");
        let att = attempts(&x);
        assert_eq!(att.len(), 1);
        assert_eq!(att[0]["status_code"], 200);
        let response = att[0]["response"].as_str().unwrap();
        assert_eq!(response.len(), 4096, "the first 4 KiB are kept");
        assert!(response.bytes().all(|b| b == b'x'));
    }
    // The integration test call keeps the same bound.
    let r = expect(
        api.post(
            &format!("/api/v1/integrations/{}/test", t.integration),
            json!({}),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["response"].as_str().unwrap().len(), 4096);
    // Four 100 MB answers went by; the server's peak resident memory stayed far below one.
    if let Some(peak_kb) = server.memory_kb("VmHWM") {
        assert!(
            peak_kb < 80 * 1024,
            "herald's peak RSS was {} MB while receiving 100 MB answers",
            peak_kb / 1024
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_destination_does_not_slow_a_healthy_one() {
    let app = spawn_app(Options {
        timeout: "20s".into(),
        per_destination: 2,
        max_in_flight: 4,
        ..Options::default()
    })
    .await;
    let rx = Receiver::start().await;
    rx.answer("/dead", Reply::Delay(Duration::from_secs(60)));
    let api = &app.admin;
    let t = team(api, E, &rx, "/healthy").await;
    let dead = api
        .create_integration(E, "dead hook", &rx.url("/dead"), None, None)
        .await;
    let on = |name: &str, collection: &str, integration: i64| {
        let mut body = on_create(name, E, integration);
        body["event"]["filter"] =
            json!({ "$or": [ { "$and": [ { "collection_name": { "$eq": collection } } ] } ] });
        body
    };
    let mut tagged = on("to dead", "d", dead);
    tagged["event"]["type"] = json!("ADD_ARTIFACT_TAG");
    let to_dead = api.create_automation(E, tagged).await;
    let to_healthy = api
        .create_automation(E, on("to healthy", "h", t.integration))
        .await;
    // A backlog for the dead destination first, all due at once (one version with twelve tags
    // is twelve ADD_ARTIFACT_TAG events in one transaction), then work for the healthy one.
    let tags: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    expect(
        api.post(
            &format!("/api/v1/entities/{E}/projects/proj/artifacts"),
            json!({ "collection": "d", "type": "model", "tags": tags }),
        )
        .await,
        StatusCode::CREATED,
    );
    rx.wait_for("/dead", 2, Duration::from_secs(10)).await;
    let started = std::time::Instant::now();
    for _ in 0..12 {
        api.create_version(E, "proj", "h").await;
    }
    let healthy = rx.wait_for("/healthy", 12, Duration::from_secs(5)).await;
    assert_eq!(healthy.len(), 12);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "healthy deliveries took {took:?}"
    );
    let xs = api
        .settled_executions(
            to_healthy["id"].as_i64().unwrap(),
            12,
            Duration::from_secs(5),
        )
        .await;
    assert!(xs.iter().all(|x| x["status"] == "FINISHED"));
    // Meanwhile the dead one is still hanging: no more than its concurrency limit was sent,
    // and none of its executions finished.
    let dead_seen = rx.received_at("/dead").len();
    assert!(
        dead_seen <= 2,
        "{dead_seen} requests in flight to one destination; the limit is 2"
    );
    let dead_xs = api.executions(to_dead["id"].as_i64().unwrap()).await;
    assert_eq!(dead_xs.len(), 12);
    assert!(dead_xs
        .iter()
        .all(|x| x["status"] == "PENDING" || x["status"] == "RUNNING"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_destinations_are_refused_unless_allowed() {
    let app = spawn_app(Options {
        allowed_destinations: None,
        ..Options::default()
    })
    .await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    api.create_entity(E, "organization").await;
    api.create_project(E, "proj").await;
    // An address herald may never call is refused when the integration is saved.
    for url in [
        rx.url("/hook"),
        "http://10.1.2.3/hook".to_string(),
        "http://169.254.169.254/latest".to_string(),
        "http://[::1]:9/hook".to_string(),
    ] {
        let body = json!({"kind": "webhook", "name": "literal", "url": url});
        let err = expect(
            api.post(&format!("/api/v1/entities/{E}/integrations"), body)
                .await,
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(err["error"]["path"], "url", "{err}");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(msg.contains("HERALD_ALLOWED_DESTINATIONS"), "{msg}");
    }
    // A name is checked when connecting, since what it resolves to may change.
    let by_name = api
        .create_integration(
            E,
            "by name",
            &format!("http://localhost:{}/named", rx.port()),
            None,
            None,
        )
        .await;
    // Nor can an integration be moved onto such an address.
    let err = expect(
        api.patch(
            &format!("/api/v1/integrations/{by_name}"),
            json!({"url": rx.url("/moved")}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(err["error"]["path"], "url", "{err}");
    let a = api
        .create_automation(E, on_create("named", E, by_name))
        .await;
    api.create_version(E, "proj", "clf").await;
    let id = api.first_execution(a["id"].as_i64().unwrap()).await;
    let x = api.wait_status(id, "FAILED", Duration::from_secs(10)).await;
    let att = attempts(&x);
    assert_eq!(att.len(), 1, "a refused destination is not retried");
    assert_eq!(att[0]["error_class"], "blocked");
    assert_eq!(att[0]["status_code"], Value::Null);
    let error = att[0]["error"].as_str().unwrap();
    assert!(error.contains("HERALD_ALLOWED_DESTINATIONS"), "{error}");
    let r = expect(
        api.post(&format!("/api/v1/integrations/{by_name}/test"), json!({}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(r["ok"], false);
    assert_eq!(r["error_class"], "blocked");
    // The refusal says the destination is not allowed, not what the name resolved to.
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("not allowed"), "{error}");
    assert!(
        !error.contains("127.0.0.1") && !error.contains("::1"),
        "{error}"
    );
    assert!(rx.received().is_empty(), "the receiver was called");
}

/// A delivery that panics (a bug in herald, injected here through the integration's name) is
/// recorded as a failed attempt and retried, and gives its slot back: with one slot for the
/// destination, every later execution still gets delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_panics_is_retried_and_gives_back_its_slot() {
    let app = spawn_app(Options {
        per_destination: 1,
        ..Options::default()
    })
    .await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    api.create_entity(E, "organization").await;
    api.create_project(E, "proj").await;
    let faulty = api
        .create_integration(E, "fault panic once", &rx.url("/hook"), None, None)
        .await;
    let a = api
        .create_automation(E, on_create("panics first", E, faulty))
        .await;
    let automation = a["id"].as_i64().unwrap();
    for collection in ["a", "b", "c"] {
        api.create_version(E, "proj", collection).await;
    }
    let xs = api
        .settled_executions(automation, 3, Duration::from_secs(20))
        .await;
    for x in &xs {
        assert_eq!(x["status"], "FINISHED", "{x}");
        let x = api.execution(x["id"].as_i64().unwrap()).await;
        let att = attempts(&x);
        assert_eq!(att.len(), 2, "{x}");
        assert_eq!(att[0]["error_class"], "internal", "{x}");
        let why = att[0]["error"].as_str().unwrap();
        assert!(why.contains("injected fault"), "{why}");
        assert_eq!(att[1]["status_code"], 200, "{x}");
    }
    assert_eq!(rx.received_at("/hook").len(), 3);
}
