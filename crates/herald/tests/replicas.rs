//! Several `herald serve` replicas on one PostgreSQL. Runs when the suite runs on PostgreSQL
//! (`HERALD_TEST_BACKEND=postgres`, as `.ci/run` does in its second pass); on SQLite, which is
//! one process by design, there is nothing to share and the tests return at once.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_herald");
const ADMIN_KEY: &str = "replica-test-admin-key-0123456789abcdef";
const MASTER_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn on_postgres() -> bool {
    std::env::var("HERALD_TEST_BACKEND").ok().as_deref() == Some("postgres")
}

struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a replica with its own data directory on the shared database of `shared`.
async fn replica(shared: &Path, data: &Path) -> Replica {
    replica_with(shared, data, &[]).await
}

/// [`replica`], with `extra` environment.
async fn replica_with(shared: &Path, data: &Path, extra: &[(&str, &str)]) -> Replica {
    let mut env = herald::testing::child_env(shared).await;
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.push(("HERALD_BOOTSTRAP_API_KEY".into(), ADMIN_KEY.into()));
    env.push(("HERALD_MASTER_KEY".into(), MASTER_KEY.into()));
    env.push(("HERALD_ALLOWED_DESTINATIONS".into(), "127.0.0.0/8".into()));
    env.push(("HERALD_LOG".into(), "warn".into()));
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env_remove("HERALD_CONFIG")
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("herald listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("replica did not start");
    Replica { child, url }
}

async fn call(
    http: &reqwest::Client,
    r: &Replica,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http
        .request(method, format!("{}{path}", r.url))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// A webhook receiver on loopback that takes `delay` per request and records each
/// `webhook-id` with its arrival time.
async fn receiver(delay: Duration) -> (String, Arc<Mutex<Vec<(String, Instant)>>>) {
    receiver_of("webhook-id", delay).await
}

/// A webhook receiver on loopback that takes `delay` per request and records its `header`
/// with its arrival time.
async fn receiver_of(
    header: &'static str,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<(String, Instant)>>>) {
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let s = s.clone();
            async move {
                let id = headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                s.lock().unwrap().push((id, Instant::now()));
                tokio::time::sleep(delay).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The team `acme` and its project `p`, created through `r`.
async fn team_and_project(http: &reqwest::Client, r: &Replica) {
    let post = reqwest::Method::POST;
    call(
        http,
        r,
        post.clone(),
        "/api/v1/entities",
        Some(json!({"name": "acme", "kind": "team"})),
    )
    .await;
    call(
        http,
        r,
        post,
        "/api/v1/entities/acme/projects",
        Some(json!({"name": "p"})),
    )
    .await;
}

/// Creates the webhook integration `integration` (a request body) through `r`, and an
/// automation delivering every new version of `acme/p` through it.
async fn deliver_every_version(http: &reqwest::Client, r: &Replica, integration: Value) {
    let post = reqwest::Method::POST;
    let integration = call(
        http,
        r,
        post.clone(),
        "/api/v1/entities/acme/integrations",
        Some(integration),
    )
    .await;
    call(
        http,
        r,
        post,
        "/api/v1/entities/acme/automations",
        Some(json!({"name": "every version", "scope": {"type": "PROJECT", "path": "acme/p"},
                    "event": {"type": "CREATE_ARTIFACT"}, "rate_limit_per_minute": 10000,
                    "action": {"type": "GENERIC_WEBHOOK", "integration_id": integration["id"], "payload": {"v": "${artifact_version_string}"}}})),
    )
    .await;
}

async fn executions(http: &reqwest::Client, r: &Replica) -> Vec<Value> {
    let page = call(
        http,
        r,
        reqwest::Method::GET,
        "/api/v1/entities/acme/executions?limit=1000",
        None,
    )
    .await;
    page["executions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_work_and_a_killed_one_loses_nothing() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let http = reqwest::Client::new();
    let first = replica(&shared, &dir.path().join("r1")).await;
    let mut replicas = vec![
        first,
        replica(&shared, &dir.path().join("r2")).await,
        replica(&shared, &dir.path().join("r3")).await,
    ];
    let (hook, seen) = receiver(Duration::from_millis(400)).await;
    let post = reqwest::Method::POST;
    team_and_project(&http, &replicas[0]).await;
    deliver_every_version(
        &http,
        &replicas[0],
        json!({"kind": "webhook", "name": "sink", "url": hook}),
    )
    .await;

    // A burst spread over the three replicas; the second is killed halfway.
    const N: usize = 60;
    let mut kill_at = None;
    for i in 0..N {
        let r = &replicas[i % replicas.len()];
        call(
            &http,
            r,
            post.clone(),
            "/api/v1/entities/acme/projects/p/artifacts",
            Some(json!({"collection": "m", "type": "model"})),
        )
        .await;
        if i == N / 2 && kill_at.is_none() {
            // Let the replicas pick up work first, so the victim dies holding some.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut victim = replicas.remove(1);
            victim.child.kill().unwrap();
            victim.child.wait().unwrap();
            kill_at = Some(Instant::now());
        }
    }
    let kill_at = kill_at.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let xs = executions(&http, &replicas[0]).await;
        if xs.len() == N && xs.iter().all(|x| x["status"] == "FINISHED") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all executions finished: {:?}",
            xs.iter().map(|x| &x["status"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let mut by_id: HashMap<String, Vec<Instant>> = HashMap::new();
    for (id, at) in seen {
        by_id.entry(id).or_default().push(at);
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
    let http = reqwest::Client::new();
    let a = replica(&shared, &dir.path().join("a")).await;
    let b = replica(&shared, &dir.path().join("b")).await;
    let post = reqwest::Method::POST;
    team_and_project(&http, &a).await;
    let filter = json!({"run_filter": "{\"$and\":[]}", "run_metric_filter": {"threshold_filter":
        {"name": "loss", "agg_op": "AVERAGE", "window_size": 4, "cmp_op": "$gt", "threshold": 0.5}}});
    call(
        &http,
        &a,
        post.clone(),
        "/api/v1/entities/acme/automations",
        Some(json!({"name": "loss high", "scope": {"type": "PROJECT", "path": "acme/p"},
                    "event": {"type": "RUN_METRIC", "filter": filter}, "action": {"type": "NO_OP"}})),
    )
    .await;
    call(
        &http,
        &b,
        post.clone(),
        "/api/v1/entities/acme/projects/p/runs",
        Some(json!({"id": "r1"})),
    )
    .await;
    // One value per batch, alternating replicas; the window of 4 is first over 0.5 at the fifth value
    // (0.9, 0.9, 0.1, 0.9 averages 0.7), and stays over it after.
    let values = [0.1, 0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9];
    for (step, v) in values.iter().enumerate() {
        let r = if step % 2 == 0 { &a } else { &b };
        call(
            &http,
            r,
            post.clone(),
            "/api/v1/entities/acme/projects/p/runs/r1/history",
            Some(json!({"rows": [{"step": step, "values": {"loss": v}}]})),
        )
        .await;
        // Let a matcher take each batch, so both replicas do some of the matching.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = call(&http, &a, reqwest::Method::GET, "/readyz", None).await;
        if ready["matcher_lag"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the matchers did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fired: Vec<Value> = executions(&http, &a)
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
    let http = reqwest::Client::new();
    let mut a = replica(&shared, &dir.path().join("a")).await;
    let b = replica(&shared, &dir.path().join("b")).await;
    let post = reqwest::Method::POST;
    team_and_project(&http, &a).await;
    // B matches something first, so its index of automations is built before the new one exists.
    call(
        &http,
        &b,
        post.clone(),
        "/api/v1/entities/acme/projects/p/artifacts",
        Some(json!({"collection": "m", "type": "model"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call(
        &http,
        &a,
        post.clone(),
        "/api/v1/entities/acme/automations",
        Some(
            json!({"name": "every version", "scope": {"type": "PROJECT", "path": "acme/p"},
                    "event": {"type": "CREATE_ARTIFACT"}, "action": {"type": "NO_OP"}}),
        ),
    )
    .await;
    // Only B is left to match, one second after the automation was saved on A.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    call(
        &http,
        &b,
        post.clone(),
        "/api/v1/entities/acme/projects/p/artifacts",
        Some(json!({"collection": "m", "type": "model"})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let xs = executions(&http, &b).await;
        if xs.len() == 1 {
            assert_eq!(xs[0]["status"], "FINISHED");
            break;
        }
        assert!(
            xs.is_empty(),
            "only the second version is after the automation: {xs:?}"
        );
        assert!(
            Instant::now() < deadline,
            "replica B never saw the automation saved on A"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `seen` holds `n` requests; returns what each recorded.
async fn wait_for_requests(seen: &Mutex<Vec<(String, Instant)>>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: Vec<String> = seen.lock().unwrap().iter().map(|r| r.0.clone()).collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{n} deliveries never arrived: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_on_one_replica_is_used_by_another_within_a_second() {
    if !on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let http = reqwest::Client::new();
    // A serves the API only; B matches and delivers everything, and keeps what it reads.
    let a = replica_with(
        &shared,
        &dir.path().join("a"),
        &[("HERALD_ENGINE", "false")],
    )
    .await;
    let b = replica(&shared, &dir.path().join("b")).await;
    let (hook, seen) = receiver_of("authorization", Duration::ZERO).await;
    let (post, put) = (reqwest::Method::POST, reqwest::Method::PUT);
    team_and_project(&http, &a).await;
    let token = |value: &str| Some(json!({ "value": value }));
    call(
        &http,
        &a,
        put.clone(),
        "/api/v1/entities/acme/secrets/TOKEN",
        token("old-token"),
    )
    .await;
    deliver_every_version(
        &http,
        &a,
        json!({"kind": "webhook", "name": "hook", "url": hook, "access_token_secret": "TOKEN"}),
    )
    .await;
    let version = Some(json!({"collection": "m", "type": "model"}));
    let artifacts = "/api/v1/entities/acme/projects/p/artifacts";
    call(&http, &a, post.clone(), artifacts, version.clone()).await;
    assert_eq!(wait_for_requests(&seen, 1).await, ["Bearer old-token"]);

    // Rotated on A; B read the old value a moment ago and may keep it only briefly.
    call(
        &http,
        &a,
        put,
        "/api/v1/entities/acme/secrets/TOKEN",
        token("new-token"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    call(&http, &a, post, artifacts, version).await;
    assert_eq!(
        wait_for_requests(&seen, 2).await,
        ["Bearer old-token", "Bearer new-token"]
    );
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
    let http = reqwest::Client::new();
    for r in [&a, &b, &c, &d] {
        let me = call(&http, r, reqwest::Method::GET, "/api/v1/viewer", None).await;
        assert_eq!(me["user"]["username"], "admin");
    }
    // One schema, one admin, and writes through any replica are seen by all.
    call(
        &http,
        &a,
        reqwest::Method::POST,
        "/api/v1/entities",
        Some(json!({"name": "together", "kind": "team"})),
    )
    .await;
    let seen = call(
        &http,
        &d,
        reqwest::Method::GET,
        "/api/v1/entities/together",
        None,
    )
    .await;
    assert_eq!(seen["entity"]["name"], "together");
}
