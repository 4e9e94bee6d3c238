//! Withdrawing work: deleting or disabling an automation, disabling its integration, or a user
//! cancelling one execution stops what waits for a retry (CANCELLED, with the reason), and no
//! new attempt starts afterwards.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const E: &str = "acme";

/// A server whose retries come soon, so that one left waiting would be seen going out.
async fn app() -> TestApp {
    spawn_app(Options {
        retry_schedule: vec!["300ms".into(), "300ms".into(), "300ms".into()],
        ..Options::default()
    })
    .await
}

/// An automation on `integration` whose first delivery failed and waits for its retry;
/// returns (automation id, execution id).
async fn waiting(api: &Api, name: &str, integration: i64) -> (i64, i64) {
    let a = api
        .create_automation(E, on_create(name, E, integration))
        .await;
    let automation = a["id"].as_i64().unwrap();
    api.create_version(E, "proj", &name.replace(' ', "-")).await;
    let x = api.first_execution(automation).await;
    eventually(
        "a failed first attempt",
        Duration::from_secs(10),
        || async move {
            let x = api.execution(x).await;
            (x["attempt_count"].as_i64() >= Some(1) && x["status"] == "PENDING").then_some(())
        },
    )
    .await;
    (automation, x)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_automations_integrations_and_executions_send_nothing_more() {
    let app = app().await;
    let rx = Receiver::start().await;
    rx.answer("/down", Reply::Status(500, "down"));
    rx.answer("/other", Reply::Status(500, "down"));
    let api = &app.admin;
    let t = team(api, E, &rx, "/down").await;
    let other = api
        .create_integration(E, "other", &rx.url("/other"), None, None)
        .await;

    let (deleted, x1) = waiting(api, "deleted", t.integration).await;
    expect(
        api.delete(&format!("/api/v1/automations/{deleted}")).await,
        StatusCode::NO_CONTENT,
    );
    let (disabled, x2) = waiting(api, "disabled", t.integration).await;
    expect(
        api.patch(
            &format!("/api/v1/automations/{disabled}"),
            json!({ "enabled": false }),
        )
        .await,
        StatusCode::OK,
    );
    let (_, x3) = waiting(api, "by integration", other).await;
    expect(
        api.patch(
            &format!("/api/v1/integrations/{other}"),
            json!({ "enabled": false }),
        )
        .await,
        StatusCode::OK,
    );
    let (_, x4) = waiting(api, "by hand", t.integration).await;
    let cancelled = expect(
        api.post(&format!("/api/v1/executions/{x4}/cancel"), json!({}))
            .await,
        StatusCode::OK,
    );
    assert_eq!(cancelled["status"], "CANCELLED");
    let again = expect(
        api.post(&format!("/api/v1/executions/{x4}/cancel"), json!({}))
            .await,
        StatusCode::CONFLICT,
    );
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CANCELLED"),
        "{again}"
    );

    let sent = (
        rx.received_at("/down").len(),
        rx.received_at("/other").len(),
    );
    for (x, why) in [
        (x1, "was deleted"),
        (x2, "was disabled"),
        (x3, "was disabled"),
        (x4, "cancelled by a user"),
    ] {
        let x = api.execution(x).await;
        assert_eq!(x["status"], "CANCELLED", "{x}");
        assert_eq!(x["next_attempt_at"], Value::Null, "{x}");
        assert!(x["reason"].as_str().unwrap().contains(why), "{x}");
    }
    // Three retry periods later, nothing more went out and nothing changed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (
            rx.received_at("/down").len(),
            rx.received_at("/other").len()
        ),
        sent,
        "a cancelled execution was retried"
    );
    for x in [x1, x2, x3, x4] {
        assert_eq!(api.execution(x).await["status"], "CANCELLED");
    }
    // A final execution cannot be cancelled, and a stranger cannot see one.
    let stranger = app.create_user("stranger").await;
    expect(
        stranger
            .post(&format!("/api/v1/executions/{x1}/cancel"), json!({}))
            .await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_shows_the_request_as_sent_secrets_masked() {
    let app = app().await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook?ref=main").await;
    let a = api
        .create_automation(E, on_create("shown", E, t.integration))
        .await;
    api.create_version(E, "proj", "clf").await;
    let x = api.first_execution(a["id"].as_i64().unwrap()).await;
    let x = api
        .wait_status(x, "FINISHED", Duration::from_secs(10))
        .await;
    let request = &x["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], rx.url("/hook?ref=main"));
    let headers = &request["headers"];
    assert_eq!(headers["authorization"], "Bearer ***");
    assert_eq!(headers["x-wandb-signature"], "***");
    assert_eq!(headers["webhook-signature"], "v1,***");
    assert_eq!(headers["webhook-id"], format!("exec_{}", x["id"]));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(request["body"]["event"], "CREATE_ARTIFACT");
    let text = x.to_string();
    assert!(
        !text.contains(TOKEN_VALUE) && !text.contains(SIGNING_VALUE),
        "{text}"
    );
}
