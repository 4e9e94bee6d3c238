//! At-least-once through a crash: the real `herald serve` binary is killed with SIGKILL while a
//! burst of deliveries is under way to a slow receiver, restarted on the same data directory,
//! and must deliver every execution; the only duplicates allowed are deliveries that were in
//! flight at the kill (being sent, or sent and not yet recorded: a few times the
//! per-destination limit), each first received before it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::helpers::*;

const E: &str = "acme";
const EVENTS: usize = 100;
const PER_DESTINATION: usize = 2;
/// The most deliveries a crash may repeat: those being sent, and those sent whose attempts
/// were still on their way to the database (bounded per destination).
const IN_FLIGHT: usize = (herald_engine::runtime::UNRECORDED_AHEAD + 1) * PER_DESTINATION;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_nothing_and_duplicates_only_what_was_in_flight() {
    let options = Options {
        timeout: "5s".into(),
        per_destination: PER_DESTINATION,
        max_in_flight: 16,
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rx = Receiver::start().await;
    rx.answer("/slow", Reply::Delay(Duration::from_millis(100)));

    let server = ChildServer::start(&data, &options, &[], None).await;
    let api = server.admin.clone();
    let t = team(&api, E, &rx, "/slow").await;
    let mut burst = on_create("burst", E, t.integration);
    burst["rate_limit_per_minute"] = serde_json::json!(1000); // the default 60 would skip some
    let a = api.create_automation(E, burst).await;
    let automation = a["id"].as_i64().unwrap();
    for _ in 0..EVENTS {
        api.create_version(E, "proj", "clf").await;
    }

    // Mid-delivery: some delivered, most not. Freeze the process first so that nothing it
    // sends can still be on its way when the kill's time is taken, then kill it.
    rx.wait_for("/slow", EVENTS / 2, Duration::from_secs(20))
        .await;
    server.freeze();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed_at = Instant::now();
    server.kill();
    let before_kill = rx.received_at("/slow").len();
    assert!(
        before_kill < EVENTS && IN_FLIGHT < EVENTS / 2,
        "the kill came after every delivery ({before_kill}), or the duplicate bound \
         ({IN_FLIGHT}) is above the deliveries before it; the test proves nothing"
    );

    let server = ChildServer::start(&data, &options, &[], None).await;
    let api = server.admin.clone();
    let xs = api
        .settled_executions(automation, EVENTS, Duration::from_secs(30))
        .await;
    assert!(
        xs.iter().all(|x| x["status"] == "FINISHED"),
        "every execution finished: {xs:?}"
    );

    let mut by_id: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for r in rx.received_at("/slow") {
        by_id.entry(r.webhook_id()).or_default().push(r.at);
    }
    for x in &xs {
        let id = format!("exec_{}", x["id"]);
        assert!(by_id.contains_key(&id), "{id} was never delivered");
    }
    assert_eq!(by_id.len(), EVENTS, "deliveries of unknown executions");
    let duplicated: Vec<(&String, &Vec<Instant>)> =
        by_id.iter().filter(|(_, at)| at.len() > 1).collect();
    // Recording is off the delivery path, and bounded per destination so that a crash
    // repeats only that much.
    assert!(
        duplicated.len() <= IN_FLIGHT,
        "{} executions delivered twice; at most {IN_FLIGHT} were in flight at the kill",
        duplicated.len(),
    );
    for (id, at) in &duplicated {
        assert_eq!(at.len(), 2, "{id} delivered {} times", at.len());
        assert!(
            at[0] < killed_at,
            "{id} was delivered twice but was not in flight at the kill"
        );
        assert!(at[1] > killed_at);
    }
    // The restarted server saw the attempts its predecessor recorded: one per execution,
    // plus one for each redelivered one.
    let attempts: i64 = xs
        .iter()
        .map(|x| x["attempt_count"].as_i64().unwrap())
        .sum();
    assert!(attempts as usize >= EVENTS);
    drop(server);
}
