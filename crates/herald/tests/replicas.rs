//! Several `herald serve` replicas on one PostgreSQL. Runs when the suite runs on PostgreSQL
//! (`HERALD_TEST_BACKEND=postgres`, as `.ci/run` does in its second pass); on SQLite, which is
//! one process by design, there is nothing to share and the tests return at once.
//!
//! Every wait polls for its condition until a deadline; the only timed waits are the "within
//! a second" the tests exist to check.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::receiver::{Receiver, Reply};
use support::{eventually, Api, ChildServer};

const ADMIN_KEY: &str = "replica-test-admin-key-0123456789abcdef";
const MASTER_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn on_postgres() -> bool {
    std::env::var("HERALD_TEST_BACKEND").ok().as_deref() == Some("postgres")
}

/// Starts a replica with its own data directory on the shared database of `shared`.
async fn replica(shared: &Path, data: &Path) -> ChildServer {
    replica_with(shared, data, &[]).await
}

/// [`replica`], with `extra` environment.
async fn replica_with(shared: &Path, data: &Path, extra: &[(&str, &str)]) -> ChildServer {
    ChildServer::spawn_on(shared, data, ADMIN_KEY, |cmd| {
        cmd.envs(extra.iter().copied())
            .env("HERALD_BOOTSTRAP_API_KEY", ADMIN_KEY)
            .env("HERALD_MASTER_KEY", MASTER_KEY)
            .env("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8");
    })
    .await
}

/// The body of a successful (2xx) answer.
#[track_caller]
fn ok((status, body): (StatusCode, Value)) -> Value {
    assert!(status.is_success(), "{status} {body}");
    body
}

/// The team `acme` and its project `p`, created through `api`.
async fn team_and_project(api: &Api) {
    ok(api
        .post("/api/v1/entities", json!({"name": "acme", "kind": "team"}))
        .await);
    ok(api
        .post("/api/v1/entities/acme/projects", json!({"name": "p"}))
        .await);
}

/// Creates the webhook integration `integration` (a request body) through `api`, and an
/// automation delivering every new version of `acme/p` through it.
async fn deliver_every_version(api: &Api, integration: Value) {
    let integration = ok(api
        .post("/api/v1/entities/acme/integrations", integration)
        .await);
    ok(api
        .post(
            "/api/v1/entities/acme/automations",
            json!({"name": "every version", "scope": {"type": "PROJECT", "path": "acme/p"},
                    "event": {"type": "CREATE_ARTIFACT"}, "rate_limit_per_minute": 10000,
                    "action": {"type": "GENERIC_WEBHOOK", "integration_id": integration["id"], "payload": {"v": "${artifact_version_string}"}}}),
        )
        .await);
}

/// A new version of `acme/p/m`, created through `api`.
async fn new_version(api: &Api) {
    ok(api
        .post(
            "/api/v1/entities/acme/projects/p/artifacts",
            json!({"collection": "m", "type": "model"}),
        )
        .await);
}

async fn executions(api: &Api) -> Vec<Value> {
    api.get_list("/api/v1/entities/acme/executions?limit=1000", "executions")
        .await
}

/// Waits until every event stored so far has been matched, by whichever replica.
async fn matched(api: &Api) {
    eventually(
        "the matchers to catch up",
        Duration::from_secs(20),
        || async { (ok(api.get("/readyz").await)["matcher_lag"] == 0).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_work_and_a_killed_one_loses_nothing() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let first = replica(&shared, &dir.path().join("r1")).await;
    let mut replicas = vec![
        first,
        replica(&shared, &dir.path().join("r2")).await,
        replica(&shared, &dir.path().join("r3")).await,
    ];
    let rx = Receiver::start().await;
    rx.answer("/hook", Reply::Delay(Duration::from_millis(400)));
    let api = replicas[0].admin.clone();
    team_and_project(&api).await;
    deliver_every_version(
        &api,
        json!({"kind": "webhook", "name": "sink", "url": rx.url("/hook")}),
    )
    .await;

    // A burst spread over the three replicas; the second is killed halfway.
    const N: usize = 60;
    let mut kill_at = None;
    for i in 0..N {
        new_version(&replicas[i % replicas.len()].admin).await;
        if i == N / 2 && kill_at.is_none() {
            // Deliveries under way first (each takes 400 ms), so the victim dies holding some.
            rx.wait_for("/hook", 8, Duration::from_secs(20)).await;
            replicas.remove(1).kill();
            kill_at = Some(Instant::now());
        }
    }
    let kill_at = kill_at.unwrap();

    eventually(
        &format!("all {N} executions to finish"),
        Duration::from_secs(60),
        || async {
            let xs = executions(&api).await;
            (xs.len() == N && xs.iter().all(|x| x["status"] == "FINISHED")).then_some(())
        },
    )
    .await;
    let mut by_id: HashMap<String, Vec<Instant>> = HashMap::new();
    for r in rx.received_at("/hook") {
        by_id.entry(r.webhook_id()).or_default().push(r.at);
    }
    assert_eq!(
        by_id.len(),
        N,
        "every execution was delivered at least once"
    );
    let duplicated: Vec<(&String, &Vec<Instant>)> =
        by_id.iter().filter(|(_, at)| at.len() > 1).collect();
    for (id, at) in &duplicated {
        assert_eq!(at.len(), 2, "{id} was delivered {} times", at.len());
        // The first delivery was the dead replica's, in flight when it was killed; the second
        // came after its lease ran out. Two live replicas never deliver the same execution.
        assert!(
            at[0] < kill_at && at[1] > kill_at,
            "{id} was delivered twice, not across the kill"
        );
    }
    assert!(
        // The victim's 8 sends to the destination, and its 8 sent but not yet recorded.
        duplicated.len() <= 16,
        "{} duplicates: more than the victim could have had in flight to one destination",
        duplicated.len()
    );
    println!(
        "{N} executions, {} delivered twice across the kill",
        duplicated.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_metrics_logged_through_two_replicas_fire_exactly_once() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let a = replica(&shared, &dir.path().join("a")).await;
    let b = replica(&shared, &dir.path().join("b")).await;
    team_and_project(&a.admin).await;
    let filter = json!({"run_filter": "{\"$and\":[]}", "run_metric_filter": {"threshold_filter":
        {"name": "loss", "agg_op": "AVERAGE", "window_size": 4, "cmp_op": "$gt", "threshold": 0.5}}});
    ok(a.admin
        .post(
            "/api/v1/entities/acme/automations",
            json!({"name": "loss high", "scope": {"type": "PROJECT", "path": "acme/p"},
                    "event": {"type": "RUN_METRIC", "filter": filter}, "action": {"type": "NO_OP"}}),
        )
        .await);
    ok(b.admin
        .post("/api/v1/entities/acme/projects/p/runs", json!({"id": "r1"}))
        .await);
    // One value per batch, alternating replicas; the window of 4 is first over 0.5 at the fifth value
    // (0.9, 0.9, 0.1, 0.9 averages 0.7), and stays over it after.
    let values = [0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9];
    for (step, v) in values.iter().enumerate() {
        let r = if step % 2 == 0 { &a } else { &b };
        ok(r.admin
            .post(
                "/api/v1/entities/acme/projects/p/runs/r1/history",
                json!({"rows": [{"step": step, "values": {"loss": v}}]}),
            )
            .await);
        // Each batch matched before the next, by whichever replica takes it, so both
        // replicas do some of the matching.
        matched(&a.admin).await;
    }
    let fired: Vec<Value> = executions(&a.admin)
        .await
        .into_iter()
        .filter(|x| x["event_type"] == "RUN_METRIC")
        .collect();
    assert_eq!(
        fired.len(),
        1,
        "exactly one firing per run per cooldown: {fired:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_saved_on_one_replica_fires_on_another_within_a_second() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let a = replica(&shared, &dir.path().join("a")).await;
    let b = replica(&shared, &dir.path().join("b")).await;
    team_and_project(&a.admin).await;
    // Something is matched first, so the matchers' indexes of automations are built before
    // the new one exists.
    new_version(&b.admin).await;
    matched(&b.admin).await;
    ok(a.admin
        .post(
            "/api/v1/entities/acme/automations",
            json!({"name": "every version", "scope": {"type": "PROJECT", "path": "acme/p"},
                    "event": {"type": "CREATE_ARTIFACT"}, "action": {"type": "NO_OP"}}),
        )
        .await);
    let saved_at = Instant::now();
    // Only B is left to match. The claim is about time itself: a version made one second
    // after the save is matched with the new automation, so this wait is the claim's bound.
    a.kill();
    tokio::time::sleep_until((saved_at + Duration::from_secs(1)).into()).await;
    new_version(&b.admin).await;
    let xs = eventually(
        "replica B to see the automation saved on A",
        Duration::from_secs(10),
        || async {
            let xs = executions(&b.admin).await;
            assert!(
                xs.len() <= 1,
                "only the second version is after the automation: {xs:?}"
            );
            (xs.len() == 1).then_some(xs)
        },
    )
    .await;
    assert_eq!(xs[0]["status"], "FINISHED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_on_one_replica_is_used_by_another_within_a_second() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    // A serves the API only; B matches and delivers everything, and keeps what it reads.
    let a = replica_with(
        &shared,
        &dir.path().join("a"),
        &[("HERALD_ENGINE", "false")],
    )
    .await;
    let b = replica(&shared, &dir.path().join("b")).await;
    let rx = Receiver::start().await;
    let api = &a.admin;
    team_and_project(api).await;
    let secret = "/api/v1/entities/acme/secrets/TOKEN";
    ok(api.put(secret, json!({ "value": "old-token" })).await);
    deliver_every_version(
        api,
        json!({"kind": "webhook", "name": "hook", "url": rx.url("/hook"), "access_token_secret": "TOKEN"}),
    )
    .await;
    let tokens = |n: usize| {
        let rx = &rx;
        async move {
            rx.wait_for("/hook", n, Duration::from_secs(10))
                .await
                .iter()
                .map(|r| r.header("authorization").unwrap_or("").to_string())
                .collect::<Vec<_>>()
        }
    };
    new_version(api).await;
    assert_eq!(tokens(1).await, ["Bearer old-token"]);

    // Rotated on A; B read the old value a moment ago and may keep it only for the second the
    // claim allows, so this wait is the claim's bound.
    ok(api.put(secret, json!({ "value": "new-token" })).await);
    let rotated_at = Instant::now();
    tokio::time::sleep_until((rotated_at + Duration::from_secs(1)).into()).await;
    new_version(api).await;
    assert_eq!(tokens(2).await, ["Bearer old-token", "Bearer new-token"]);
    drop(b);
}

/// Replicas started at the same moment on a new database all come up: the first to take the
/// migrations lock creates the tables and the bootstrap admin, the others wait and find them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_on_a_new_database_all_come_up() {
    if !on_postgres() {
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    // The schema exists (made here, once) and is empty; every replica starts on it at once.
    herald::testing::child_env(shared.path()).await;
    let (a, b, c, d) = tokio::join!(
        replica(shared.path(), dirs[0].path()),
        replica(shared.path(), dirs[1].path()),
        replica(shared.path(), dirs[2].path()),
        replica(shared.path(), dirs[3].path()),
    );
    for r in [&a, &b, &c, &d] {
        let me = ok(r.admin.get("/api/v1/viewer").await);
        assert_eq!(me["user"]["username"], "admin");
    }
    // One schema, one admin, and writes through any replica are seen by all.
    ok(a.admin
        .post(
            "/api/v1/entities",
            json!({"name": "together", "kind": "team"}),
        )
        .await);
    let seen = ok(d.admin.get("/api/v1/entities/together").await);
    assert_eq!(seen["entity"]["name"], "together");
}
