//! The README's flow through the real binary: `herald serve` as a child process and the CLI
//! commands a user types, then a `kill -9` and a restart that must lose nothing, and a SIGTERM
//! that must shut down cleanly.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../support/mod.rs"]
mod support;
use support::receiver::{Received, Receiver};

mod friction;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `herald serve` on a port the OS picks (so parallel tests never collide) with
/// `env`, and reads the address it prints once it is listening.
fn start_with(data: &Path, env: &[(&str, &str)]) -> Server {
    start_logging_to(data, env, Stdio::null())
}

/// [`start_with`], the server's log (its standard error) going to `stderr`.
fn start_logging_to(data: &Path, env: &[(&str, &str)], stderr: Stdio) -> Server {
    use std::io::BufRead as _;
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("HERALD_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("HERALD_BOOTSTRAP_API_KEY")
        .envs(env.iter().copied())
        .envs(backend_env(data))
        .stdout(Stdio::piped())
        .stderr(stderr)
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
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("herald serve did not start");
    Server { child, url }
}

/// The database a child uses besides SQLite, when the suite runs on PostgreSQL.
fn backend_env(data: &Path) -> Vec<(String, String)> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(herald::testing::child_env(data))
}

/// The bootstrap admin's key, from the file the first start wrote.
fn admin_key(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin-api-key"))
        .unwrap()
        .trim()
        .to_string()
}

fn start(data: &Path) -> Server {
    start_with(data, &[])
}

/// Runs a CLI command against `server` with `key`; returns stdout, panicking on failure.
fn herald(server: &Server, key: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("HERALD_URL", &server.url)
        .env("HERALD_API_KEY", key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "herald {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn herald_err(server: &Server, key: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("HERALD_URL", &server.url)
        .env("HERALD_API_KEY", key)
        .output()
        .unwrap();
    assert!(!out.status.success(), "herald {args:?} should have failed");
    String::from_utf8(out.stderr).unwrap()
}

fn event_types(server: &Server, key: &str, entity: &str) -> Vec<String> {
    let out = herald(server, key, &["events", "list", entity, "--all", "--json"]);
    let events: Value = serde_json::from_str(&out).unwrap();
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn readme_flow_survives_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let key_file = dir.path().join("admin-api-key");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(key.len(), 40);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    herald(&server, &key, &["entity", "create", "ml-team"]);
    herald(
        &server,
        &key,
        &["entity", "create", "acme", "--kind", "organization"],
    );
    herald(&server, &key, &["project", "create", "ml-team/mnist"]);
    herald(&server, &key, &["registry", "create", "acme/model"]);
    let v = herald(
        &server,
        &key,
        &[
            "artifact",
            "create",
            "ml-team/mnist/classifier",
            "--type",
            "model",
            "--alias",
            "candidate",
        ],
    );
    assert!(v.contains("ml-team/mnist/classifier:v0"), "{v}");
    let linked = herald(
        &server,
        &key,
        &[
            "artifact",
            "link",
            "ml-team/mnist/classifier:candidate",
            "--registry",
            "acme/model",
            "--alias",
            "production",
        ],
    );
    assert!(
        linked.contains("acme/wandb-registry-model/classifier as v0"),
        "{linked}"
    );
    herald(
        &server,
        &key,
        &[
            "run",
            "create",
            "ml-team/mnist",
            "--id",
            "run-1",
            "--name",
            "first",
        ],
    );
    herald(
        &server,
        &key,
        &[
            "run",
            "log",
            "ml-team/mnist/run-1",
            "--step",
            "0",
            "loss=0.9",
            "acc=0.5",
        ],
    );
    herald(&server, &key, &["run", "finish", "ml-team/mnist/run-1"]);
    let got: Value = serde_json::from_str(&herald(
        &server,
        &key,
        &[
            "artifact",
            "get",
            "acme/wandb-registry-model/classifier:production",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(got["version"], "v0");
    assert_eq!(got["source"]["collection"], "classifier");

    let before = event_types(&server, &key, "ml-team");
    assert_eq!(
        before,
        [
            "CREATE_ARTIFACT",
            "ADD_ARTIFACT_ALIAS",
            "RUN_STATE",
            "LOG_RUN_HISTORY",
            "RUN_STATE"
        ]
    );
    assert_eq!(
        event_types(&server, &key, "acme"),
        ["LINK_MODEL", "ADD_ARTIFACT_ALIAS"]
    );
    let table = herald(&server, &key, &["events", "list", "ml-team"]);
    assert!(
        table.starts_with("ID") && table.contains("CREATE_ARTIFACT"),
        "{table}"
    );

    // Errors reach the user as messages, not panics.
    let err = herald_err(
        &server,
        &key,
        &["run", "finish", "ml-team/mnist/run-1", "--state", "RUNNING"],
    );
    assert!(err.contains("409") && err.contains("final state"), "{err}");
    let err = herald_err(&server, "wrong-key", &["whoami"]);
    assert!(err.contains("401"), "{err}");

    // kill -9: everything acknowledged before it is still there after a restart.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let server = start(dir.path());
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap().trim(),
        key,
        "restart must not create another admin"
    );
    assert_eq!(event_types(&server, &key, "ml-team"), before);
    herald(
        &server,
        &key,
        &[
            "artifact",
            "create",
            "ml-team/mnist/classifier",
            "--type",
            "model",
        ],
    );
    let got: Value = serde_json::from_str(&herald(
        &server,
        &key,
        &["artifact", "get", "ml-team/mnist/classifier", "--json"],
    ))
    .unwrap();
    assert_eq!(got["version"], "v1", "indexes continue after the restart");

    // A running run can be asked to stop; an ended one cannot.
    herald(
        &server,
        &key,
        &["run", "create", "ml-team/mnist", "--id", "run-2"],
    );
    let out = herald(&server, &key, &["run", "stop", "ml-team/mnist/run-2"]);
    assert!(
        out.contains("asked run ml-team/mnist/run-2 to stop"),
        "{out}"
    );
    let err = herald_err(&server, &key, &["run", "stop", "ml-team/mnist/run-1"]);
    assert!(
        err.contains("409") && err.contains("only a RUNNING run"),
        "{err}"
    );
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "herald exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "herald did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "not-an-address", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen") && err.contains("not-an-address"),
        "{err}"
    );
}

/// The shared loopback receiver, read in order from a synchronous test: each [`Hooks::next`]
/// is the next request to `/hook`.
struct Hooks {
    rt: tokio::runtime::Runtime,
    receiver: Receiver,
    seen: usize,
}

impl Hooks {
    fn start() -> Hooks {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let receiver = rt.block_on(Receiver::start());
        Hooks {
            rt,
            receiver,
            seen: 0,
        }
    }

    fn url(&self) -> String {
        self.receiver.url("/hook")
    }

    /// The next request to `/hook`, waiting up to `timeout` for it.
    fn next(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.receiver.received_at("/hook").get(self.seen) {
                self.seen += 1;
                return Some(r.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next request's body as text.
    fn next_body(&mut self, timeout: Duration) -> String {
        let r = self.next(timeout).expect("a request to /hook");
        String::from_utf8(r.body.to_vec()).unwrap()
    }
}

/// `engine = false` makes an API-only server: events are stored but neither matched nor
/// delivered, and a server with the engine on (here, the same data directory restarted)
/// delivers them later, with nothing lost.
#[test]
fn api_only_server_stores_events_for_an_engine_to_deliver() {
    let mut hooks = Hooks::start();
    let hook = hooks.url();
    let dir = tempfile::tempdir().unwrap();
    let allow = ("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8");
    let server = start_with(dir.path(), &[allow, ("HERALD_ENGINE", "false")]);
    let key = admin_key(dir.path());
    herald(&server, &key, &["entity", "create", "ml-team"]);
    herald(&server, &key, &["project", "create", "ml-team/mnist"]);
    let integration: Value = serde_json::from_str(&herald(
        &server,
        &key,
        &[
            "integration",
            "create",
            "ml-team",
            "--name",
            "ci",
            "--url",
            &hook,
            "--json",
        ],
    ))
    .unwrap();
    herald(
        &server,
        &key,
        &[
            "automation",
            "create",
            "--name",
            "new versions",
            "--scope",
            "ml-team/mnist",
            "--event",
            "CREATE_ARTIFACT",
            "--webhook",
            &integration["id"].to_string(),
            "--payload",
            r#"{"version": "${artifact_version_string}"}"#,
        ],
    );
    for _ in 0..3 {
        herald(
            &server,
            &key,
            &[
                "artifact",
                "create",
                "ml-team/mnist/classifier",
                "--type",
                "model",
            ],
        );
    }
    let executions = |server: &Server| -> Vec<Value> {
        serde_json::from_str::<Value>(&herald(
            server,
            &key,
            &["execution", "list", "--entity", "ml-team", "--json"],
        ))
        .unwrap()["executions"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(
        hooks.next(Duration::from_millis(500)).is_none(),
        "an API-only server delivered"
    );
    assert_eq!(
        executions(&server),
        Vec::<Value>::new(),
        "and matched nothing"
    );
    let ready: Value = hooks.rt.block_on(async {
        reqwest::get(format!("{}/readyz", server.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(
        ready["matcher_lag"], 3,
        "the events wait unmatched: {ready}"
    );
    drop(server);

    let server = start_with(dir.path(), &[allow]);
    let mut versions: Vec<String> = (0..3)
        .map(|_| {
            let body = hooks.next_body(Duration::from_secs(10));
            serde_json::from_str::<Value>(&body).unwrap()["version"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        [
            "ml-team/mnist/classifier:v0",
            "ml-team/mnist/classifier:v1",
            "ml-team/mnist/classifier:v2"
        ]
    );
    assert_eq!(executions(&server).len(), 3);
}

/// How many threads of process `pid` are named `name` (as Linux keeps a name: 15 bytes).
#[cfg(target_os = "linux")]
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// An API-only server (`engine = false`) serves requests without starting the deliveries'
/// threads; the same server with the engine on starts as many as it is told.
#[cfg(target_os = "linux")]
#[test]
fn an_api_only_server_starts_no_delivery_threads() {
    let name = herald_engine::runtime::DELIVERY_THREAD_NAME;
    let dir = tempfile::tempdir().unwrap();
    let threads = ("HERALD_DELIVERY_THREADS", "2");
    let server = start_with(dir.path(), &[threads, ("HERALD_ENGINE", "false")]);
    let key = admin_key(dir.path());
    herald(&server, &key, &["entity", "create", "ml-team"]);
    assert_eq!(threads_named(server.child.id(), name), 0);
    drop(server);

    let server = start_with(dir.path(), &[threads]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named(server.child.id(), name) != 2 {
        assert!(
            Instant::now() < deadline,
            "the engine's server runs {} delivery threads, not 2",
            threads_named(server.child.id(), name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The README's automation example, through the CLI, to a receiver on loopback.
#[test]
fn readme_automation_example_delivers_a_signed_webhook() {
    use std::io::Write as _;
    let mut hooks = Hooks::start();
    let hook = hooks.url();

    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        &[("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8")],
    );
    let key = admin_key(dir.path());

    herald(&server, &key, &["entity", "create", "ml-team"]);
    herald(&server, &key, &["project", "create", "ml-team/mnist"]);
    herald(
        &server,
        &key,
        &[
            "artifact",
            "create",
            "ml-team/mnist/classifier",
            "--type",
            "model",
            "--metadata",
            r#"{"accuracy": 0.93}"#,
        ],
    );
    for (name, value) in [
        ("CI_TOKEN", "ghp_example_token"),
        ("CI_SIGNING", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
    ] {
        let mut p = Command::new(BIN)
            .args(["secret", "set", "ml-team", name])
            .env("HERALD_URL", &server.url)
            .env("HERALD_API_KEY", &key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        p.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
        assert!(p.wait().unwrap().success());
    }
    let integration: Value = serde_json::from_str(&herald(
        &server,
        &key,
        &[
            "integration",
            "create",
            "ml-team",
            "--name",
            "ci",
            "--url",
            &hook,
            "--access-token-secret",
            "CI_TOKEN",
            "--signing-secret",
            "CI_SIGNING",
            "--json",
        ],
    ))
    .unwrap();
    let id = integration["id"].to_string();
    let test = herald(&server, &key, &["integration", "test", &id]);
    assert!(test.starts_with("HTTP 200"), "{test}");
    let test_body = hooks.next_body(Duration::from_secs(10));
    assert!(test_body.contains("TEST"), "{test_body}");

    herald(
        &server,
        &key,
        &[
            "automation",
            "create",
            "--name",
            "deploy production",
            "--scope",
            "ml-team/mnist",
            "--event",
            "ADD_ARTIFACT_ALIAS",
            "--alias-regex",
            "^production$",
            "--webhook",
            &id,
            "--payload",
            r#"{"event_type": "${event_type}", "version": "${artifact_version_string}", "accuracy": "${artifact_metadata.accuracy}", "by": "${event_author}"}"#,
        ],
    );
    herald(
        &server,
        &key,
        &[
            "artifact",
            "alias",
            "add",
            "ml-team/mnist/classifier:v0",
            "staging",
        ],
    );
    herald(
        &server,
        &key,
        &[
            "artifact",
            "alias",
            "add",
            "ml-team/mnist/classifier:v0",
            "production",
        ],
    );
    let delivered = hooks.next(Duration::from_secs(10)).expect("a delivery");
    let body = delivered.json();
    assert_eq!(
        body,
        serde_json::json!({"event_type": "ADD_ARTIFACT_ALIAS", "version": "ml-team/mnist/classifier:v0", "accuracy": "0.93", "by": "admin"})
    );
    assert_eq!(
        delivered.header("authorization"),
        Some("Bearer ghp_example_token")
    );
    assert_eq!(delivered.webhook_id(), "exec_1");
    assert!(delivered
        .header("webhook-signature")
        .unwrap()
        .starts_with("v1,"));
    assert!(
        hooks.next(Duration::from_millis(300)).is_none(),
        "the staging alias must not fire"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = herald(&server, &key, &["execution", "list", "--entity", "ml-team"]);
        if list.contains("FINISHED") {
            assert!(list.contains("deploy production"), "{list}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "execution never finished: {list}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = herald(&server, &key, &["execution", "show", "1"]);
    assert!(
        shown.contains("200") && !shown.contains("ghp_example_token"),
        "{shown}"
    );

    // Rotating the signing secret with a grace period keeps the old value signing for it; the
    // listing counts the previous values still valid, and never shows a value.
    let rotated: Value = serde_json::from_str(&herald(
        &server,
        &key,
        &[
            "secret",
            "set",
            "ml-team",
            "CI_SIGNING",
            "--value",
            "whsec_cm90YXRlZC1zaWduaW5nLXNlY3JldA==",
            "--grace-period",
            "60",
            "--json",
        ],
    ))
    .unwrap();
    let previous = &rotated["previous_values"][0];
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(previous[k].as_str().unwrap()).unwrap();
    assert_eq!(
        (at("valid_until") - at("retired_at")).num_seconds(),
        60,
        "{rotated}"
    );
    let listed = herald(&server, &key, &["secret", "list", "ml-team"]);
    let row = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    assert!(listed.starts_with("SECRET"), "{listed}");
    assert_eq!(row("CI_SIGNING"), "1", "{listed}");
    assert_eq!(row("CI_TOKEN"), "0", "{listed}");
    assert!(!listed.contains("whsec_"), "{listed}");
    let refused = herald_err(
        &server,
        &key,
        &[
            "secret",
            "set",
            "ml-team",
            "CI_SIGNING",
            "--value",
            "x",
            "--grace-period",
            "604801",
        ],
    );
    assert!(refused.contains("grace_period_seconds"), "{refused}");
}
