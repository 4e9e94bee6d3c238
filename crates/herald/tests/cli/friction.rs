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
