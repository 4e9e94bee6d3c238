//! When a metric condition fires: once per rising edge, at most once per run per cooldown,
//! independently per run, and only for the runs the run filter admits.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// The body [`payload`] renders for a metric firing in `ml/p`.
pub fn metric_body(
    automation: &str,
    run: (&str, &str),
    event_type: &str,
    metric: (&str, &str, &str),
    filter: &str,
) -> Value {
    json!({
        "run_id": run.0,
        "run_name": run.1,
        "run_status": "RUNNING",
        "metric_name": metric.0,
        "metric_value": metric.1,
        "metric_values": metric.2,
        "metric_filter": filter,
        "event_type": event_type,
        "entity": E,
        "project": P,
        "automation": automation
    })
}

fn loss_above(name: &str, integration: i64, cooldown: Option<u32>) -> Value {
    let mut a = run_automation(
        name,
        PATH,
        "RUN_METRIC",
        threshold(
            all_runs(),
            json!({ "name": "loss", "agg_op": "AVERAGE", "window_size": 3, "cmp_op": "$gt", "threshold": 0.5 }),
        ),
        integration,
    );
    if let Some(c) = cooldown {
        a["cooldown_seconds"] = json!(c);
    }
    a
}

#[tokio::test]
async fn a_metric_that_stays_above_fires_once_and_a_new_edge_within_the_cooldown_does_not() {
    let w = world().await;
    let id = w
        .automation(loss_above("loss high", w.integration, None))
        .await;
    w.run("r1", "my-run-1").await;

    // The window is not full: nothing, however high the values.
    w.log("r1", "loss", &[2.0]).await;
    w.log("r1", "loss", &[2.0]).await;
    assert!(w.bodies().is_empty(), "fired before the window was full");
    // The third value fills it: AVERAGE(2, 2, 1) > 0.5.
    w.log("r1", "loss", &[1.0]).await;
    assert_eq!(
        w.bodies(),
        vec![metric_body(
            "loss high",
            ("r1", "my-run-1"),
            "RUN_METRIC_THRESHOLD",
            ("loss", "1.6666666666666667", "[2, 2, 1]"),
            "AVERAGE(loss) > 0.5 (last 3)"
        )]
    );

    // Above the threshold across many batches: no more firings.
    for _ in 0..10 {
        w.log("r1", "loss", &[0.9, 1.5, 0.7]).await;
    }
    // Below, then above again (a new rising edge) within the 24 h default cooldown.
    w.log("r1", "loss", &[0.0, 0.0, 0.0]).await;
    w.log("r1", "loss", &[0.0, 0.0]).await;
    w.log("r1", "loss", &[3.0, 3.0, 3.0]).await;
    assert_eq!(w.bodies().len(), 1, "fired again: {:?}", w.bodies());
    let xs = w.api().fired(id).await;
    assert_eq!(xs.len(), 1, "{xs:?}");
    assert_eq!(xs[0]["status"], "FINISHED");
}

#[tokio::test]
async fn with_a_one_second_cooldown_a_new_rising_edge_fires_again_after_it() {
    let w = world().await;
    let a = json!({
        "name": "fast",
        "scope": { "type": "PROJECT", "path": PATH },
        "event": { "type": "RUN_METRIC", "filter": threshold(
            all_runs(),
            json!({ "name": "loss", "agg_op": null, "cmp_op": "$gt", "threshold": 0.5 }),
        ) },
        "action": { "type": "GENERIC_WEBHOOK", "integration_id": w.integration, "payload": payload() },
        "cooldown_seconds": 1
    });
    let id = w.automation(a).await;
    w.run("r1", "fast-run").await;

    let first_started = Instant::now();
    w.log("r1", "loss", &[0.9]).await;
    assert_eq!(w.bodies().len(), 1);
    // Staying above never fires again, cooldown or not.
    w.log("r1", "loss", &[0.8]).await;
    assert_eq!(w.bodies().len(), 1);

    // New rising edges, polled until the cooldown has passed (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.bodies().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no second firing 5 s after the first"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        w.log("r1", "loss", &[0.1]).await;
        w.log("r1", "loss", &[0.7]).await;
    }
    // The second firing's matcher step ended at least the cooldown after the first one's began.
    assert!(
        first_started.elapsed() >= Duration::from_secs(1),
        "fired again {:?} after the first firing, within the 1 s cooldown",
        first_started.elapsed()
    );
    let bodies = w.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["metric_value"], "0.7");
    assert_eq!(bodies[1]["metric_values"], "[0.7]");
    assert_eq!(w.api().fired(id).await.len(), 2);
}

#[tokio::test]
async fn two_runs_fire_independently_and_their_windows_do_not_mix() {
    let w = world().await;
    let id = w
        .automation(loss_above("loss high", w.integration, None))
        .await;
    w.run("a", "run-a").await;
    w.run("b", "run-b").await;

    // Interleaved: mixed into one window, a's third value would see b's zeros (or b's first
    // ones would see a's) and the outcome would differ.
    w.log("a", "loss", &[1.0]).await;
    w.log("b", "loss", &[0.0]).await;
    w.log("a", "loss", &[1.0]).await;
    w.log("b", "loss", &[0.0]).await;
    assert!(w.bodies().is_empty());
    w.log("a", "loss", &[1.0]).await;
    assert_eq!(w.bodies().len(), 1);
    assert_eq!(w.bodies()[0]["run_id"], "a");
    assert_eq!(w.bodies()[0]["metric_values"], "[1, 1, 1]");
    // b's window is [0, 0, 1]: average 1/3, below.
    w.log("b", "loss", &[1.0]).await;
    assert_eq!(w.bodies().len(), 1);
    // a firing put a (not b) under its cooldown.
    w.log("b", "loss", &[1.0]).await;
    let bodies = w.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(
        bodies[1],
        metric_body(
            "loss high",
            ("b", "run-b"),
            "RUN_METRIC_THRESHOLD",
            ("loss", "0.6666666666666666", "[0, 1, 1]"),
            "AVERAGE(loss) > 0.5 (last 3)"
        )
    );
    // Each firing is its own execution.
    let xs = w.api().fired(id).await;
    assert_eq!(xs.len(), 2, "{xs:?}");
    assert_ne!(xs[0]["id"], xs[1]["id"]);
    let all = w.api().entity_executions(E).await;
    let all: Vec<&Value> = all.iter().filter(|x| x["status"] != "SKIPPED").collect();
    assert_eq!(all.len(), 2, "{all:?}");
}

#[tokio::test]
async fn within_one_batch_it_fires_once_at_the_first_point_that_meets_the_condition() {
    let w = world().await;
    w.automation(loss_above("loss high", w.integration, None))
        .await;
    w.run("r", "batchy").await;
    // One batch: windows [0, 0, 2] (0.67 > 0.5: fires), then [0, 2, 4], [2, 4, 8], ...
    w.log(
        "r",
        "loss",
        &[0.0, 0.0, 2.0, 4.0, 8.0, 0.0, 0.0, 0.0, 9.0, 9.0],
    )
    .await;
    let bodies = w.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["metric_values"], "[0, 0, 2]");
    assert_eq!(bodies[0]["metric_value"], "0.6666666666666666");

    // Rows without the metric, and other metrics, are not points of its series.
    w.run("s", "sparse").await;
    w.api()
        .log_rows(
            E,
            P,
            "s",
            vec![
                json!({ "step": 0, "values": { "loss": 1 } }),
                json!({ "step": 1, "values": { "acc": 0.1 } }),
                json!({ "step": 2, "values": { "loss": 1, "acc": 0.2 } }),
                json!({ "step": 3, "values": { "acc": 0.3 } }),
            ],
        )
        .await;
    w.app.step().await;
    assert_eq!(
        w.bodies().len(),
        1,
        "two loss values do not fill a window of 3"
    );
    w.log("s", "acc", &[5.0, 5.0, 5.0]).await;
    assert_eq!(w.bodies().len(), 1, "acc values are not loss values");
    w.log("s", "loss", &[1.0]).await;
    assert_eq!(w.bodies().len(), 2);
    assert_eq!(w.bodies()[1]["run_id"], "s");
    assert_eq!(w.bodies()[1]["metric_values"], "[1, 1, 1]");
}

/// One automation per filter; each run logs one value of 1 over a threshold of 0.5.
#[tokio::test]
async fn run_filters_include_and_exclude_runs() {
    let w = world().await;
    let alice = w.app.create_user("alice").await;
    w.api().set_member(E, "alice", "MEMBER").await;
    let filters = [
        (
            "contains",
            json!({ "$and": [ { "display_name": { "$contains": "my-run" } } ] }),
        ),
        (
            "regex",
            json!({ "$and": [ { "display_name": { "$regex": "^exp-[0-9]+$" } } ] }),
        ),
        ("user", json!({ "$and": [ { "username": "alice" } ] })),
        (
            "tags",
            json!({ "$and": [ { "tags": { "$in": ["prod"] } } ] }),
        ),
        (
            "no-tag",
            json!({ "$and": [ { "tags": { "$nin": ["debug"] } } ] }),
        ),
        (
            "config",
            json!({ "$and": [ { "config.lr": { "$lt": 0.01 } }, { "config.optimizer.name": "adam" } ] }),
        ),
        (
            "either",
            json!({ "$or": [ { "display_name": { "$contains": "b" } }, { "config.epochs": { "$gte": 10 } } ] }),
        ),
        ("all", all_runs()),
    ];
    for (name, f) in &filters {
        w.automation(run_automation(
            name,
            PATH,
            "RUN_METRIC",
            threshold(
                f.clone(),
                json!({ "name": "m", "cmp_op": "$gt", "threshold": 0.5 }),
            ),
            w.integration,
        ))
        .await;
    }
    let runs = [
        (
            &w.app.admin,
            json!({ "id": "r1", "display_name": "my-run-7", "tags": ["debug"] }),
        ),
        (
            &w.app.admin,
            json!({ "id": "r2", "display_name": "exp-42", "tags": ["prod"] }),
        ),
        (
            &w.app.admin,
            json!({ "id": "r3", "display_name": "exp-42b", "config": { "lr": 0.001, "optimizer": { "name": "adam" } } }),
        ),
        (
            &alice,
            json!({ "id": "r4", "display_name": "MY-RUN", "config": { "lr": 0.1, "optimizer": { "name": "adam" }, "epochs": 12 } }),
        ),
        (
            &alice,
            json!({ "id": "r5", "display_name": "xmy-runx", "tags": ["prod", "debug"], "config": { "lr": 0.001, "optimizer": { "name": "sgd" } } }),
        ),
    ];
    for (api, body) in &runs {
        api.create_run(E, P, body.clone()).await;
        let id = body["id"].as_str().unwrap();
        api.log(E, P, id, "m", &[1.0]).await;
    }
    w.app.step().await;

    let fired = |automation: &str| -> Vec<String> {
        let mut runs: Vec<String> = w
            .bodies_of(automation)
            .iter()
            .map(|b| b["run_id"].as_str().unwrap().to_string())
            .collect();
        runs.sort();
        runs
    };
    let want: [(&str, &[&str]); 8] = [
        ("contains", &["r1", "r5"]), // $contains is case-sensitive: not MY-RUN
        ("regex", &["r2"]),          // unanchored engine, anchored pattern: not exp-42b
        ("user", &["r4", "r5"]),
        ("tags", &["r2", "r5"]),
        ("no-tag", &["r2", "r3", "r4"]),
        ("config", &["r3"]), // r4's lr is too big, r5's optimizer is sgd
        ("either", &["r3", "r4"]),
        ("all", &["r1", "r2", "r3", "r4", "r5"]),
    ];
    for (automation, runs) in want {
        assert_eq!(fired(automation), runs, "runs fired by {automation:?}");
    }
    assert_eq!(w.bodies().len(), 2 + 1 + 2 + 2 + 3 + 1 + 2 + 5);
}

#[tokio::test]
async fn an_entity_scope_watches_every_project_of_the_entity_and_nothing_else() {
    let w = world().await;
    let api = w.api();
    api.create_project(E, "q").await;
    api.create_entity("other", "team").await;
    api.create_project("other", P).await;
    let mut a = loss_above("everywhere", w.integration, None);
    a["scope"] = json!({ "type": "ENTITY", "path": E });
    let id = w.automation(a).await;
    for (entity, project) in [(E, P), (E, "q"), ("other", P)] {
        api.create_run(
            entity,
            project,
            json!({ "id": "r", "display_name": "same-id" }),
        )
        .await;
        api.log(entity, project, "r", "loss", &[1.0, 1.0, 1.0])
            .await;
    }
    w.app.step().await;
    let mut projects: Vec<String> = w
        .bodies()
        .iter()
        .map(|b| {
            format!(
                "{}/{}",
                b["entity"].as_str().unwrap(),
                b["project"].as_str().unwrap()
            )
        })
        .collect();
    projects.sort();
    // Runs with the same id in two projects are two runs, each with its own firing.
    assert_eq!(projects, ["ml/p", "ml/q"]);
    assert_eq!(w.api().fired(id).await.len(), 2);
}
