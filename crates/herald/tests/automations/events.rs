//! Every artifact and collection event type at every scope it is allowed at, with no filter, a
//! matching filter and a non-matching one: exactly the right automations fire, and the
//! receiver gets the exact body and headers (bearer token, both signatures verified
//! independently, `webhook-id` = `exec_<execution id>`). Also NO_OP, redelivery, the
//! per-automation rate limit, enabling and disabling, and the integration test call.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const E: &str = "acme";
const REG: &str = "wandb-registry-reg";

/// Where an automation watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum At {
    /// ARTIFACT_COLLECTION acme/proj/clf
    CollectionInProject,
    /// ARTIFACT_COLLECTION acme/wandb-registry-reg/regclf
    CollectionInRegistry,
    /// PROJECT acme/proj
    Project,
    /// PROJECT acme/wandb-registry-reg
    Registry,
    /// ENTITY acme
    Entity,
}

impl At {
    fn scope(self) -> Value {
        let (t, p) = match self {
            At::CollectionInProject => ("ARTIFACT_COLLECTION", "acme/proj/clf".to_string()),
            At::CollectionInRegistry => ("ARTIFACT_COLLECTION", format!("acme/{REG}/regclf")),
            At::Project => ("PROJECT", "acme/proj".to_string()),
            At::Registry => ("PROJECT", format!("acme/{REG}")),
            At::Entity => ("ENTITY", "acme".to_string()),
        };
        json!({ "type": t, "path": p })
    }

    fn contains(self, ev: &Ev) -> bool {
        match self {
            At::CollectionInProject => ev.project == "proj" && ev.collection == "clf",
            At::CollectionInRegistry => ev.project == REG && ev.collection == "regclf",
            At::Project => ev.project == "proj",
            At::Registry => ev.project == REG,
            At::Entity => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Variant {
    NoFilter,
    Matching,
    NotMatching,
}

/// For each event type: the scopes it is tested at, and a filter every event of the type in
/// this test passes and one none passes (W&B's `{"$or":[{"$and":[…]}]}` wire shape).
fn cases() -> Vec<(&'static str, Vec<At>, Value, Value)> {
    let wrap = |conds: Vec<Value>| json!({ "$or": [ { "$and": conds } ] });
    let all = vec![
        At::CollectionInProject,
        At::CollectionInRegistry,
        At::Project,
        At::Registry,
        At::Entity,
    ];
    let tags = |names: &[&str], none: &str| {
        (
            wrap(vec![json!({ "tag": { "$in": names } })]),
            wrap(vec![json!({ "tag": { "$eq": none } })]),
        )
    };
    let (artifact_tag_yes, artifact_tag_no) = tags(&["gold", "silver"], "bronze");
    let (coll_tag_yes, coll_tag_no) = (
        wrap(vec![
            json!({ "tag": { "$eq": "vision" } }),
            json!({ "entity_name": { "$eq": "acme" } }),
        ]),
        wrap(vec![json!({ "tag": { "$eq": "audio" } })]),
    );
    vec![
        (
            "CREATE_ARTIFACT",
            vec![At::CollectionInProject, At::Project],
            wrap(vec![
                json!({ "artifact_type": { "$eq": "model" } }),
                json!({ "collection_name": { "$regex": "^cl" } }),
            ]),
            wrap(vec![json!({ "artifact_type": { "$eq": "dataset" } })]),
        ),
        (
            "LINK_MODEL",
            all.clone(),
            wrap(vec![json!({ "alias": { "$in": ["candidate"] } })]),
            wrap(vec![json!({ "alias": { "$regex": "^prod" } })]),
        ),
        (
            "UNLINK_ARTIFACT",
            all.clone(),
            wrap(vec![json!({ "collection_name": { "$eq": "regclf" } })]),
            wrap(vec![json!({ "collection_name": { "$eq": "clf" } })]),
        ),
        (
            "ADD_ARTIFACT_ALIAS",
            all.clone(),
            wrap(vec![json!({ "alias": { "$regex": "^(prod|cand)" } })]),
            wrap(vec![json!({ "alias": { "$regex": "^staging$" } })]),
        ),
        (
            "ADD_ARTIFACT_TAG",
            all.clone(),
            artifact_tag_yes.clone(),
            artifact_tag_no.clone(),
        ),
        (
            "REMOVE_ARTIFACT_TAG",
            all.clone(),
            artifact_tag_yes,
            artifact_tag_no,
        ),
        (
            "ADD_COLLECTION_TAG",
            all.clone(),
            coll_tag_yes.clone(),
            coll_tag_no.clone(),
        ),
        ("REMOVE_COLLECTION_TAG", all, coll_tag_yes, coll_tag_no),
    ]
}

/// Every variable herald offers, so the exact body shows each one rendered.
fn payload() -> Value {
    json!({
        "event": "${event_type}",
        "automation": "${automation_name}",
        "entity": "${entity_name}",
        "project": "${project_name}",
        "collection": "${artifact_collection_name}",
        "version": "${artifact_version_string}",
        "index": "${artifact_version_index}",
        "artifact": "${artifact_version}",
        "alias": "${alias}",
        "tag": "${tag}",
        "author": "${event_author}",
        "token": "${ACCESS_TOKEN}",
        "run": "${run_id}",
        "${tag}-key": "tags render in keys too"
    })
}

/// An event the test caused, as the payload should describe it.
#[derive(Debug, Clone)]
struct Ev {
    event_type: &'static str,
    project: String,
    collection: String,
    /// `(index, version id)` for version events.
    version: Option<(i64, i64)>,
    alias: Option<&'static str>,
    tag: Option<&'static str>,
}

impl Ev {
    fn new(event_type: &'static str, project: &str, collection: &str) -> Self {
        Self {
            event_type,
            project: project.to_string(),
            collection: collection.to_string(),
            version: None,
            alias: None,
            tag: None,
        }
    }

    fn version(mut self, index: i64, id: i64) -> Self {
        self.version = Some((index, id));
        self
    }

    fn alias(mut self, a: &'static str) -> Self {
        self.alias = Some(a);
        self
    }

    fn tag(mut self, t: &'static str) -> Self {
        self.tag = Some(t);
        self
    }

    /// The body automation `name` must deliver for this event.
    fn body(&self, name: &str) -> Value {
        let public = if self.event_type == "LINK_MODEL" {
            "LINK_ARTIFACT"
        } else {
            self.event_type
        };
        let (version, index, artifact) = match self.version {
            Some((i, id)) => (
                format!("acme/{}/{}:v{i}", self.project, self.collection),
                i.to_string(),
                format!(
                    "wandb-artifact://_id/{}",
                    B64.encode(format!("Artifact:{id}"))
                ),
            ),
            None => Default::default(),
        };
        let tag = self.tag.unwrap_or("");
        json!({
            "event": public,
            "automation": name,
            "entity": "acme",
            "project": self.project,
            "collection": self.collection,
            "version": version,
            "index": index,
            "artifact": artifact,
            "alias": self.alias.unwrap_or(""),
            "tag": tag,
            "author": "admin",
            "token": TOKEN_VALUE,
            "run": "",
            format!("{tag}-key"): "tags render in keys too"
        })
    }
}

struct Auto {
    id: i64,
    name: String,
    event_type: &'static str,
    at: At,
    variant: Variant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_artifact_event_at_every_scope_with_and_without_filters() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    api.create_registry(E, "reg").await;
    let art = |p: &str| format!("/api/v1/entities/{E}/projects/{p}/artifacts");

    // The collections the scopes name must exist: clf:v0, linked into regclf as v0.
    api.create_version(E, "proj", "clf").await;
    expect(
        api.post(
            &format!("{}/clf/versions/v0/links", art("proj")),
            json!({ "registry": "reg", "collection": "regclf" }),
        )
        .await,
        StatusCode::CREATED,
    );
    // Those set-up events are matched before any automation exists.
    sync_matcher(api).await;

    let mut autos = Vec::new();
    for (event_type, scopes, yes, no) in cases() {
        for at in scopes {
            for variant in [Variant::NoFilter, Variant::Matching, Variant::NotMatching] {
                let name = format!("{event_type} {at:?} {variant:?}");
                let mut event = json!({ "type": event_type });
                match variant {
                    Variant::NoFilter => {}
                    Variant::Matching => event["filter"] = yes.clone(),
                    Variant::NotMatching => event["filter"] = no.clone(),
                }
                let a = api
                    .create_automation(
                        E,
                        json!({
                            "name": name,
                            "scope": at.scope(),
                            "event": event,
                            "action": {
                                "type": "GENERIC_WEBHOOK",
                                "integration_id": t.integration,
                                "payload": payload(),
                            }
                        }),
                    )
                    .await;
                autos.push(Auto {
                    id: a["id"].as_i64().unwrap(),
                    name,
                    event_type,
                    at,
                    variant,
                });
            }
        }
    }
    assert_eq!(autos.len(), 2 * 3 + 7 * 5 * 3);

    // The changes, each with the events it must emit.
    let mut events = Vec::new();
    let v1 = api.create_version(E, "proj", "clf").await;
    let vid = v1["id"].as_i64().unwrap();
    assert_eq!(v1["version"], "v1");
    events.push(Ev::new("CREATE_ARTIFACT", "proj", "clf").version(1, vid));

    let linked = expect(
        api.post(
            &format!("{}/clf/versions/v1/links", art("proj")),
            json!({ "registry": "reg", "collection": "regclf", "aliases": ["candidate"] }),
        )
        .await,
        StatusCode::CREATED,
    );
    assert_eq!(linked["version"], "v1");
    events.push(Ev::new("LINK_MODEL", REG, "regclf").version(1, vid));
    events.push(
        Ev::new("ADD_ARTIFACT_ALIAS", REG, "regclf")
            .version(1, vid)
            .alias("candidate"),
    );

    let ok = |r: (StatusCode, Value)| expect(r, StatusCode::OK);
    ok(api
        .post(
            &format!("{}/clf/versions/v1/aliases", art("proj")),
            json!({ "alias": "prod" }),
        )
        .await);
    events.push(
        Ev::new("ADD_ARTIFACT_ALIAS", "proj", "clf")
            .version(1, vid)
            .alias("prod"),
    );

    ok(api
        .post(
            &format!("{}/regclf/versions/v1/tags", art(REG)),
            json!({ "tag": "gold" }),
        )
        .await);
    events.push(
        Ev::new("ADD_ARTIFACT_TAG", REG, "regclf")
            .version(1, vid)
            .tag("gold"),
    );
    ok(api
        .post(
            &format!("{}/clf/versions/v1/tags", art("proj")),
            json!({ "tag": "silver" }),
        )
        .await);
    events.push(
        Ev::new("ADD_ARTIFACT_TAG", "proj", "clf")
            .version(1, vid)
            .tag("silver"),
    );
    ok(api
        .delete(&format!("{}/clf/versions/v1/tags/gold", art("proj")))
        .await);
    events.push(
        Ev::new("REMOVE_ARTIFACT_TAG", "proj", "clf")
            .version(1, vid)
            .tag("gold"),
    );
    ok(api
        .delete(&format!("{}/regclf/versions/v1/tags/silver", art(REG)))
        .await);
    events.push(
        Ev::new("REMOVE_ARTIFACT_TAG", REG, "regclf")
            .version(1, vid)
            .tag("silver"),
    );

    for (p, c) in [("proj", "clf"), (REG, "regclf")] {
        ok(api
            .post(&format!("{}/{c}/tags", art(p)), json!({ "tag": "vision" }))
            .await);
        events.push(Ev::new("ADD_COLLECTION_TAG", p, c).tag("vision"));
    }
    for (p, c) in [("proj", "clf"), (REG, "regclf")] {
        ok(api.delete(&format!("{}/{c}/tags/vision", art(p))).await);
        events.push(Ev::new("REMOVE_COLLECTION_TAG", p, c).tag("vision"));
    }

    let (status, _) = api
        .delete(&format!("{}/regclf/versions/v1", art(REG)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    events.push(Ev::new("UNLINK_ARTIFACT", REG, "regclf").version(1, vid));

    // What must arrive: one delivery per (event, automation of its type whose scope holds it
    // and whose filter, if any, matches).
    let mut want: Vec<(String, Value, &'static str)> = Vec::new();
    for ev in &events {
        for a in &autos {
            if a.event_type == ev.event_type
                && a.at.contains(ev)
                && a.variant != Variant::NotMatching
            {
                want.push((a.name.clone(), ev.body(&a.name), ev.event_type));
            }
        }
    }
    assert_eq!(want.len(), 4 + 6 * 12, "the test's own arithmetic");

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rx.received_at("/hook").len() < want.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything matched and delivered: nothing more can arrive.
    sync_matcher(api).await;
    for status in ["PENDING", "RUNNING"] {
        eventually(
            &format!("no {status} executions"),
            Duration::from_secs(10),
            || async move {
                let page = expect(
                    api.get(&format!("/api/v1/entities/{E}/executions?status={status}"))
                        .await,
                    StatusCode::OK,
                );
                page["executions"]
                    .as_array()
                    .unwrap()
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
    }
    let got = rx.received_at("/hook");

    // Exactly the expected bodies, each once.
    let mut want_bodies: Vec<String> = want.iter().map(|(_, b, _)| b.to_string()).collect();
    let mut got_bodies: Vec<String> = got.iter().map(|r| r.json().to_string()).collect();
    want_bodies.sort();
    got_bodies.sort();
    assert_eq!(got_bodies, want_bodies);

    // Exactly the expected headers, and signatures that verify.
    let by_name: BTreeMap<&str, &Auto> = autos.iter().map(|a| (a.name.as_str(), a)).collect();
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN_VALUE}").as_str())
        );
        verify_signatures(r, SIGNING_VALUE);
        let body = r.json();
        let a = by_name[body["automation"].as_str().unwrap()];
        let x = api.execution(execution_id_of(&r.webhook_id())).await;
        assert_eq!(
            x["automation_id"], a.id,
            "webhook-id names this automation's execution"
        );
        assert_eq!(x["event_type"], a.event_type);
        assert_eq!(x["status"], "FINISHED");
        assert_eq!(x["attempt_count"], 1);
        let attempts = x["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0]["status_code"], 200);
        assert_eq!(attempts[0]["error_class"], Value::Null);
        assert_eq!(attempts[0]["response"], "ok");
        // History keeps the request with the token masked.
        let mut masked = body.clone();
        masked["token"] = json!("***");
        assert_eq!(x["request"]["body"], masked);
        assert_eq!(x["request"]["integration_id"], t.integration);
    }

    // Per automation: non-matching filters never fired, the others once per event in scope.
    for a in &autos {
        let n = a_count(&want, &a.name);
        let xs = api.executions(a.id).await;
        assert_eq!(xs.len(), n, "{}: executions", a.name);
        // Links and unlinks happen in the registry, so project-side scopes never see them.
        let out_of_reach = matches!(a.event_type, "LINK_MODEL" | "UNLINK_ARTIFACT")
            && matches!(a.at, At::CollectionInProject | At::Project);
        if a.variant == Variant::NotMatching || out_of_reach {
            assert_eq!(n, 0, "{}", a.name);
        } else {
            assert!(n > 0, "{} fires for some event", a.name);
        }
    }
}

fn a_count(want: &[(String, Value, &str)], name: &str) -> usize {
    want.iter().filter(|(n, _, _)| n == name).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_op_automations_record_finished_executions() {
    let app = spawn_app(Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "team").await;
    api.create_project(E, "proj").await;
    let a = api
        .create_automation(
            E,
            json!({
                "name": "just record",
                "scope": { "type": "PROJECT", "path": "acme/proj" },
                "event": { "type": "CREATE_ARTIFACT" },
                "action": { "type": "NO_OP" }
            }),
        )
        .await;
    assert_eq!(a["action"], json!({ "type": "NO_OP" }));
    let id = a["id"].as_i64().unwrap();
    for _ in 0..3 {
        api.create_version(E, "proj", "clf").await;
    }
    let xs = api.settled_executions(id, 3, Duration::from_secs(10)).await;
    for x in &xs {
        assert_eq!(x["status"], "FINISHED");
        assert_eq!(x["action_type"], "NO_OP");
        assert_eq!(x["event_type"], "CREATE_ARTIFACT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivering_a_finished_execution_sends_it_again_with_the_same_webhook_id() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    let a = api
        .create_automation(E, on_create("deploy", E, t.integration))
        .await;
    let id = a["id"].as_i64().unwrap();
    api.create_version(E, "proj", "clf").await;
    let x = api.first_execution(id).await;
    api.wait_status(x, "FINISHED", Duration::from_secs(10))
        .await;
    let first = rx.wait_for("/hook", 1, Duration::from_secs(10)).await;

    let (status, body) = api
        .post(&format!("/api/v1/executions/{x}/redeliver"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["id"], x);
    let both = rx.wait_for("/hook", 2, Duration::from_secs(10)).await;
    assert_eq!(both.len(), 2);
    assert_eq!(both[1].webhook_id(), format!("exec_{x}"));
    assert_eq!(both[1].webhook_id(), first[0].webhook_id());
    assert_eq!(both[1].body, first[0].body, "the same body");
    verify_signatures(&both[1], SIGNING_VALUE);
    let done = eventually("two attempts", Duration::from_secs(10), || async {
        let x = api.execution(x).await;
        (x["status"] == "FINISHED" && x["attempt_count"] == 2).then_some(x)
    })
    .await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["number"], 2);
    assert_eq!(attempts[1]["status_code"], 200);
    // Still one execution: a redelivery is not a new firing.
    assert_eq!(api.executions(id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_automation_rate_limit_skips_the_excess_with_a_reason() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    let mut body = on_create("limited", E, t.integration);
    body["rate_limit_per_minute"] = json!(2);
    let a = api.create_automation(E, body).await;
    assert_eq!(a["rate_limit_per_minute"], 2);
    let id = a["id"].as_i64().unwrap();
    for _ in 0..4 {
        api.create_version(E, "proj", "clf").await;
    }
    let xs = api.settled_executions(id, 4, Duration::from_secs(10)).await;
    let finished: Vec<&Value> = xs.iter().filter(|x| x["status"] == "FINISHED").collect();
    let skipped: Vec<&Value> = xs.iter().filter(|x| x["status"] == "SKIPPED").collect();
    assert_eq!(finished.len(), 2, "{xs:?}");
    assert_eq!(skipped.len(), 2, "{xs:?}");
    for x in &skipped {
        let reason = x["reason"].as_str().expect("a skipped execution says why");
        assert!(reason.contains("rate limit"), "{reason}");
        assert_eq!(x["attempt_count"], 0);
    }
    // Only the admitted ones were delivered, and the first two events were the admitted ones.
    let got = rx.wait_for("/hook", 2, Duration::from_secs(10)).await;
    let delivered: Vec<String> = got
        .iter()
        .map(|r| r.json()["version"].to_string())
        .collect();
    assert_eq!(
        delivered
            .iter()
            .filter(|v| v.contains(":v0") || v.contains(":v1"))
            .count(),
        2,
        "{delivered:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received_at("/hook").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_automation_stops_it_and_enabling_restarts_it() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    let a = api
        .create_automation(E, on_create("toggle", E, t.integration))
        .await;
    let id = a["id"].as_i64().unwrap();

    let off = expect(
        api.patch(
            &format!("/api/v1/automations/{id}"),
            json!({ "enabled": false }),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(off["enabled"], false);
    assert_eq!(off["name"], "toggle", "PATCH keeps the other fields");
    api.create_version(E, "proj", "clf").await; // v0: must not fire
    sync_matcher(api).await;
    assert!(api.executions(id).await.is_empty());

    let on = expect(
        api.patch(
            &format!("/api/v1/automations/{id}"),
            json!({ "enabled": true }),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(on["enabled"], true);
    api.create_version(E, "proj", "clf").await; // v1: fires
    let xs = api.settled_executions(id, 1, Duration::from_secs(10)).await;
    assert_eq!(xs[0]["status"], "FINISHED");
    let got = rx.wait_for("/hook", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["version"], "acme/proj/clf:v1");
    let stored = expect(
        api.get(&format!("/api/v1/automations/{id}")).await,
        StatusCode::OK,
    );
    assert_eq!(stored["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_test_call_returns_the_receivers_answer() {
    let app = spawn_app(Options::default()).await;
    let rx = Receiver::start().await;
    let api = &app.admin;
    let t = team(api, E, &rx, "/hook").await;
    rx.queue(
        "/hook",
        vec![
            Reply::Status(202, "accepted by the receiver"),
            Reply::Status(418, "i am a teapot"),
        ],
    );
    let path = format!("/api/v1/integrations/{}/test", t.integration);
    let r = expect(
        api.post(
            &path,
            json!({ "payload": { "hello": "${ACCESS_TOKEN}", "sig": "${HOOK_SIGNING}" } }),
        )
        .await,
        StatusCode::OK,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["status_code"], 202);
    assert_eq!(r["response"], "accepted by the receiver");
    assert_eq!(
        r["request_body"],
        json!({ "hello": "***", "sig": "***" }),
        "secrets are masked in the answer"
    );
    let got = rx.received_at("/hook");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].json(),
        json!({ "hello": TOKEN_VALUE, "sig": SIGNING_VALUE })
    );
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {TOKEN_VALUE}").as_str())
    );
    assert!(got[0].webhook_id().starts_with("test_"));
    verify_signatures(&got[0], SIGNING_VALUE);

    // No body: the default test payload; a failing status is reported, not an API error.
    let (status, r) = api.send(api.request(reqwest::Method::POST, &path)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["ok"], false);
    assert_eq!(r["status_code"], 418);
    assert_eq!(r["error_class"], "http_status");
    assert_eq!(r["response"], "i am a teapot");
    let got = rx.received_at("/hook");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json()["event_type"], "TEST");
}
