//! A backlog bigger than the matcher's batch of 500 events, stored while the engine was off,
//! is matched batch by batch as delivery makes room for it: every execution is delivered
//! exactly once, finishes, and nothing is left behind: with deliveries on threads of their own
//! (the default) and on the server's.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::helpers::*;

const E: &str = "acme";
const EVENTS: usize = 900;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_a_batch_is_delivered_exactly_once() {
    backlog_delivered_exactly_once(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_delivered_exactly_once_on_the_servers_own_threads_too() {
    backlog_delivered_exactly_once(&[("HERALD_DELIVERY_THREADS", "0")]).await;
}

/// Stores the backlog with the engine off, then starts it with `env`.
async fn backlog_delivered_exactly_once(env: &[(&str, &str)]) {
    let options = Options {
        per_destination: 4,
        max_in_flight: 16,
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rx = Receiver::start().await;

    let off = ChildServer::start(&data, &options, &[("HERALD_ENGINE", "false")], None).await;
    let api = off.admin.clone();
    let t = team(&api, E, &rx, "/hook").await;
    let mut backlog = on_create("backlog", E, t.integration);
    backlog["rate_limit_per_minute"] = serde_json::json!(EVENTS); // the default 60 would skip some
    let automation = api.create_automation(E, backlog).await["id"]
        .as_i64()
        .unwrap();
    for i in 0..EVENTS {
        api.create_version(E, "proj", &format!("c{}", i % 8)).await;
    }
    drop(off);
    assert!(rx.received().is_empty(), "the engine was off");

    let on = ChildServer::start(&data, &options, env, None).await;
    let xs = on
        .admin
        .settled_executions(automation, EVENTS, Duration::from_secs(60))
        .await;
    assert!(
        xs.iter()
            .all(|x| x["status"] == "FINISHED" && x["attempt_count"] == 1),
        "every execution finished at its first attempt"
    );
    let mut times: BTreeMap<String, usize> = BTreeMap::new();
    for r in rx.wait_for("/hook", EVENTS, Duration::from_secs(10)).await {
        *times.entry(r.webhook_id()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = xs
        .iter()
        .map(|x| (format!("exec_{}", x["id"]), 1))
        .collect();
    assert_eq!(times, expected, "each execution delivered exactly once");
}
