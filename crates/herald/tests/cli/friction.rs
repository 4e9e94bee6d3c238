//! What a new user trips over at the command line: output cut short by a reader that stops,
//! exit codes that say whether a command worked, flags where people put them.

use std::io::Read as _;
use std::process::{Command, Stdio};

use super::*;

/// Runs `args` with its standard output going to a pipe that is already closed, as when
/// `head` has read what it wanted; returns the exit status and standard error.
fn into_closed_pipe(
    server: &Server,
    key: &str,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("HERALD_URL", &server.url)
        .env("HERALD_API_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the command has printed anything.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}

#[test]
fn output_cut_short_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let key = admin_key(dir.path());
    herald(&server, &key, &["entity", "create", "ml-team"]);
    herald(&server, &key, &["project", "create", "ml-team/mnist"]);
    herald(
        &server,
        &key,
        &["artifact", "create", "ml-team/mnist/clf", "--type", "model"],
    );
    for args in [
        &["whoami"][..],
        &["whoami", "--json"],
        &["events", "list", "ml-team"],
        &["events", "list", "ml-team", "--json"],
        &["artifact", "get", "ml-team/mnist/clf:v0"],
        &["artifact", "get", "ml-team/mnist/clf:v0", "--json"],
        &["--help"],
    ] {
        let (status, stderr) = into_closed_pipe(&server, &key, args);
        assert_eq!(status.code(), Some(0), "herald {args:?}: {stderr}");
        assert_eq!(stderr, "", "herald {args:?} printed to stderr");
    }
}

/// Runs `args`; returns the exit code, standard output and standard error.
fn run(server: &Server, key: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("HERALD_URL", &server.url)
        .env("HERALD_API_KEY", key)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A server that may call loopback, team `ml-team`, and a webhook integration `ci` in it to a
/// loopback port nothing listens on (every delivery fails to connect); returns the server, the
/// admin's key, the integration's id and its URL.
fn with_dead_integration(dir: &std::path::Path) -> (Server, String, String, String) {
    let server = start_with(dir, &[("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8")]);
    let key = admin_key(dir);
    herald(&server, &key, &["entity", "create", "ml-team"]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let args = [
        "integration",
        "create",
        "ml-team",
        "--name",
        "ci",
        "--url",
        &url,
        "--json",
    ];
    let created = herald(&server, &key, &args);
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"].to_string();
    (server, key, id, url)
}

#[test]
fn a_failed_integration_test_exits_non_zero_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens at the integration's URL: the test delivery cannot connect.
    let (server, key, id, _) = with_dead_integration(dir.path());

    let (code, stdout, stderr) = run(&server, &key, &["integration", "test", &id]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("no answer"), "{stdout}");
    assert!(stderr.contains("the test delivery failed"), "{stderr}");

    let (code, stdout, stderr) = run(&server, &key, &["integration", "test", &id, "--json"]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let answer: Value = serde_json::from_str(&stdout).expect("the answer is still printed");
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["error_class"], "connect");
}

#[test]
fn global_flags_work_before_and_after_the_subcommand_and_new_commands_do_their_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let key = admin_key(dir.path());
    // No HERALD_URL or HERALD_API_KEY: the flags say it all, before the subcommand...
    let bare = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("HERALD_URL")
            .env_remove("HERALD_API_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "herald {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let before = bare(&[
        "--server",
        &server.url,
        "--api-key",
        &key,
        "--json",
        "whoami",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&before).unwrap()["user"]["username"],
        "admin"
    );
    // ...after it, or both ways at once.
    let after = bare(&[
        "whoami",
        "--server",
        &server.url,
        "--api-key",
        &key,
        "--json",
    ]);
    assert_eq!(before, after);
    let mixed = bare(&[
        "--server",
        &server.url,
        "entity",
        "create",
        "ml-team",
        "--api-key",
        &key,
    ]);
    assert!(mixed.contains("created team ml-team"), "{mixed}");

    // run fail
    herald(&server, &key, &["project", "create", "ml-team/mnist"]);
    herald(
        &server,
        &key,
        &["run", "create", "ml-team/mnist", "--id", "r1"],
    );
    let failed = herald(&server, &key, &["run", "fail", "ml-team/mnist/r1"]);
    assert!(failed.contains("is FAILED"), "{failed}");
    let run: Value = serde_json::from_str(&herald(
        &server,
        &key,
        &["run", "get", "ml-team/mnist/r1", "--json"],
    ))
    .unwrap();
    assert_eq!(run["state"], "FAILED");

    // integration disable | enable
    let created = herald(
        &server,
        &key,
        &[
            "integration",
            "create",
            "ml-team",
            "--name",
            "ci",
            "--url",
            "https://ci.example/hook",
            "--json",
        ],
    );
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"].to_string();
    let enabled = |out: &str| serde_json::from_str::<Value>(out).unwrap()["enabled"].clone();
    let off = herald(&server, &key, &["integration", "disable", &id, "--json"]);
    assert_eq!(enabled(&off), false);
    let on = herald(&server, &key, &["integration", "enable", &id, "--json"]);
    assert_eq!(enabled(&on), true);
    let said = herald(&server, &key, &["integration", "disable", &id]);
    assert_eq!(said.trim(), format!("integration {id} is disabled"));
}

#[test]
fn logs_to_a_file_are_plain_text_and_a_failed_delivery_is_a_warning_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("herald.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let data = dir.path().join("data");
    let server = start_logging_to(
        &data,
        &[
            ("HERALD_ALLOWED_DESTINATIONS", "127.0.0.0/8"),
            ("HERALD_LOG", "info"),
        ],
        Stdio::from(log),
    );
    let key = admin_key(&data);
    herald(&server, &key, &["entity", "create", "ml-team"]);
    herald(&server, &key, &["project", "create", "ml-team/mnist"]);
    let token = "tok_never_in_logs_5b2e";
    let mut set = Command::new(BIN)
        .args(["secret", "set", "ml-team", "CI_TOKEN"])
        .env("HERALD_URL", &server.url)
        .env("HERALD_API_KEY", &key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut set.stdin.take().unwrap(), token.as_bytes()).unwrap();
    assert!(set.wait().unwrap().success());
    // A receiver that answers 500 to everything, at a URL with a secret in its query.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(crate::support::receiver::Receiver::start());
    receiver.answer(
        "/hook",
        crate::support::receiver::Reply::Status(500, "down"),
    );
    let url = receiver.url("/hook?sig=query_secret_77");
    let created = herald(
        &server,
        &key,
        &[
            "integration",
            "create",
            "ml-team",
            "--name",
            "ci",
            "--url",
            &url,
            "--access-token-secret",
            "CI_TOKEN",
            "--json",
        ],
    );
    let integration = serde_json::from_str::<Value>(&created).unwrap()["id"].to_string();
    herald(
        &server,
        &key,
        &[
            "automation",
            "create",
            "--name",
            "on create",
            "--scope",
            "ml-team/mnist",
            "--event",
            "CREATE_ARTIFACT",
            "--webhook",
            &integration,
            "--payload",
            r#"{"token": "${ACCESS_TOKEN}"}"#,
        ],
    );
    herald(
        &server,
        &key,
        &["artifact", "create", "ml-team/mnist/clf", "--type", "model"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("delivery failed") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let line = text
        .lines()
        .find(|l| l.contains("delivery failed"))
        .unwrap_or_else(|| panic!("no delivery warning in the log:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("execution=1"), "{line}");
    assert!(line.contains("HTTP 500"), "{line}");
    assert!(line.contains("retrying at"), "{line}");
    assert!(text.contains("herald is listening"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file:\n{text}"
    );
    assert!(!text.contains(token), "a secret in the log:\n{text}");
    assert!(
        !text.contains("query_secret_77"),
        "a URL's query in the log:\n{text}"
    );
}

#[test]
fn execution_cancel_and_show_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    // The first attempt fails to connect and the execution waits 5 s to retry.
    let (server, key, integration, url) = with_dead_integration(dir.path());
    herald(&server, &key, &["project", "create", "ml-team/mnist"]);
    herald(
        &server,
        &key,
        &[
            "automation",
            "create",
            "--name",
            "on create",
            "--scope",
            "ml-team/mnist",
            "--event",
            "CREATE_ARTIFACT",
            "--webhook",
            &integration,
        ],
    );
    herald(
        &server,
        &key,
        &["artifact", "create", "ml-team/mnist/clf", "--type", "model"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // 404 until the matcher has stored the execution.
        let (code, out, _) = run(&server, &key, &["execution", "show", "1", "--json"]);
        let x: Value = if code == Some(0) {
            serde_json::from_str(&out).unwrap()
        } else {
            Value::Null
        };
        if x["attempt_count"] == 1 && x["status"] == "PENDING" {
            break;
        }
        assert!(Instant::now() < deadline, "no failed first attempt: {x}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let shown = herald(&server, &key, &["execution", "show", "1"]);
    assert!(shown.contains(&format!("POST {url}")), "{shown}");
    assert!(shown.contains("webhook-id: exec_1"), "{shown}");
    assert!(
        shown.contains("\"event_type\": \"CREATE_ARTIFACT\""),
        "{shown}"
    );
    let said = herald(&server, &key, &["execution", "cancel", "1"]);
    assert_eq!(said.trim(), "execution 1 is CANCELLED");
    let (code, _, stderr) = run(&server, &key, &["execution", "cancel", "1"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("CANCELLED"), "{stderr}");
}

/// A team joins an organization when it is created or later, and leaves it; the list shows
/// which. A team cannot join what is not an organization.
#[test]
fn teams_join_and_leave_organizations() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let key = admin_key(dir.path());
    herald(
        &server,
        &key,
        &["entity", "create", "acme-org", "--kind", "organization"],
    );
    let out = herald(
        &server,
        &key,
        &["entity", "create", "vision", "--organization", "acme-org"],
    );
    assert!(out.contains("created team vision in acme-org"), "{out}");
    herald(&server, &key, &["entity", "create", "solo"]);
    let row = |list: &str, name: &str| -> Vec<String> {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let list = herald(&server, &key, &["entity", "list"]);
    assert!(list.contains("ORGANIZATION"), "{list}");
    assert_eq!(
        row(&list, "vision"),
        ["vision", "team", "ADMIN", "acme-org"]
    );
    assert_eq!(row(&list, "solo")[..3], ["solo", "team", "ADMIN"]);
    assert_ne!(row(&list, "solo").last().unwrap(), "acme-org");

    herald(
        &server,
        &key,
        &["entity", "set-organization", "solo", "acme-org"],
    );
    let list = herald(&server, &key, &["entity", "list"]);
    assert_eq!(row(&list, "solo").last().unwrap(), "acme-org");
    let out = herald(
        &server,
        &key,
        &["entity", "set-organization", "solo", "--none"],
    );
    assert!(out.contains("solo is in no organization"), "{out}");
    let list = herald(&server, &key, &["entity", "list"]);
    assert_ne!(row(&list, "solo").last().unwrap(), "acme-org");

    let err = herald_err(
        &server,
        &key,
        &["entity", "set-organization", "solo", "vision"],
    );
    assert!(err.contains("not an organization"), "{err}");
    let err = herald_err(&server, &key, &["entity", "set-organization", "solo"]);
    assert!(err.contains("<ORGANIZATION>"), "{err}");
}
