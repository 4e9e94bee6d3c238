//! The README's Python receiver, run as written against real deliveries: it accepts herald's
//! signatures under a `whsec_` secret and under a plain one (also while a rotated secret's
//! previous value still signs), and refuses them under a secret that is not the one used.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::*;

const README: &str = include_str!("../../../../README.md");
const E: &str = "acme";

/// The README's Python receiver.
fn receiver_source() -> &'static str {
    let start = README
        .find("receiver in Python that checks")
        .expect("the README shows a Python receiver");
    let rest = &README[start..];
    let open = rest.find("```python\n").expect("a python block") + "```python\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    &rest[open..open + close]
}

/// The README's receiver on a free port with `secret`; its printed lines are collected.
struct PythonReceiver {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PythonReceiver {
    async fn start(secret: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("receiver.py");
        std::fs::write(&script, receiver_source()).unwrap();
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(&script)
            .env("SIGNING_SECRET", secret)
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the README's receiver");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        eventually(
            "the Python receiver to listen",
            Duration::from_secs(20),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
        Self {
            child,
            port,
            lines,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_receiver_verifies_both_signatures() {
    let app = spawn_app(Options::default()).await;
    let api = &app.admin;
    api.create_entity(E, "organization").await;
    api.create_project(E, "proj").await;
    let whsec = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let plain = "a-plain-signing-secret-0f9e";
    api.put_secret(E, "WHSEC", whsec).await;
    api.put_secret(E, "PLAIN", plain).await;
    let cases = [
        ("whsec secret", whsec, "WHSEC", 204),
        ("plain secret", plain, "PLAIN", 204),
        (
            "wrong secret",
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "WHSEC",
            401,
        ),
    ];
    let mut receivers = Vec::new();
    for (name, secret, secret_name, _) in cases {
        let rx = PythonReceiver::start(secret).await;
        let integration = api
            .create_integration(E, name, &rx.url(), None, Some(secret_name))
            .await;
        let mut automation = on_create(name, E, integration);
        automation["action"]["payload"] = serde_json::json!({ "v": "${artifact_version_string}" });
        let a = api.create_automation(E, automation).await;
        receivers.push((rx, a["id"].as_i64().unwrap()));
    }
    api.create_version(E, "proj", "clf").await;
    for (_, automation) in &receivers {
        api.settled_executions(*automation, 1, Duration::from_secs(20))
            .await;
    }
    // Rotate the whsec secret: until its grace ends, deliveries carry both signatures, and the
    // receiver still holding the old value accepts them.
    api.put_secret(E, "WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .await;
    api.create_version(E, "proj", "clf").await;
    for ((name, _, _, want), (rx, automation)) in cases.iter().zip(&receivers) {
        let xs = api
            .settled_executions(*automation, 2, Duration::from_secs(20))
            .await;
        for x in xs {
            let x = api.execution(x["id"].as_i64().unwrap()).await;
            let first = &x["attempts"][0];
            assert_eq!(first["status_code"], *want, "{name}: {x}");
        }
        let printed = rx.lines.lock().unwrap().clone();
        let verdict = if *want == 204 { "verified" } else { "REJECTED" };
        assert!(
            printed.len() >= 2 && printed.iter().all(|l| l.contains(verdict)),
            "{name}: {printed:?}"
        );
    }
}
