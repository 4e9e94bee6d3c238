//! Each kind of run automation fires at the right point, with every payload variable exact:
//! thresholds (a full window; `$gte` at equality fires, `$gt` does not), changes (relative and
//! absolute; a prior of 0 never fires a relative change), z-scores, and run states (entering a
//! listed state fires; KILLED never does).

use serde_json::{json, Value};

use crate::firing::metric_body;
use crate::helpers::*;

fn change(name: &str, integration: i64, change_filter: Value) -> Value {
    run_automation(
        name,
        PATH,
        "RUN_METRIC_CHANGE",
        json!({
            "run_filter": all_runs().to_string(),
            "run_metric_filter": { "change_filter": change_filter },
            "metric_filter": null
        }),
        integration,
    )
}

fn zscore(name: &str, integration: i64, zscore_filter: Value) -> Value {
    run_automation(
        name,
        PATH,
        "RUN_METRIC_ZSCORE",
        json!({
            "run_filter": all_runs().to_string(),
            "run_metric_filter": { "zscore_filter": zscore_filter },
            "metric_filter": null
        }),
        integration,
    )
}

#[tokio::test]
async fn threshold_fires_when_the_window_is_full_and_compares_equality_as_asked() {
    let w = world().await;
    for (name, cmp) in [("gte", "$gte"), ("gt", "$gt")] {
        w.automation(run_automation(
            name,
            PATH,
            "RUN_METRIC",
            threshold(
                all_runs(),
                json!({ "name": "loss", "agg_op": "AVERAGE", "window_size": 2, "cmp_op": cmp, "threshold": 0.5 }),
            ),
            w.integration,
        ))
        .await;
    }
    w.automation(run_automation(
        "newest",
        PATH,
        "RUN_METRIC",
        threshold(
            all_runs(),
            // agg_op null: the newest value, whatever window_size says.
            json!({ "name": "loss", "agg_op": null, "window_size": 50, "cmp_op": "$lte", "threshold": 0.25 }),
        ),
        w.integration,
    ))
    .await;
    w.run("r", "eq").await;

    // One value: the AVERAGE windows are not full; the newest value 1 is not ≤ 0.25.
    w.log("r", "loss", &[1.0]).await;
    assert!(w.bodies().is_empty(), "{:?}", w.bodies());
    // AVERAGE(1, 0) = 0.5 exactly: $gte fires, $gt does not. 0 ≤ 0.25 fires at once.
    w.log("r", "loss", &[0.0]).await;
    assert_eq!(
        w.bodies_of("gte"),
        vec![metric_body(
            "gte",
            ("r", "eq"),
            "RUN_METRIC_THRESHOLD",
            ("loss", "0.5", "[1, 0]"),
            "AVERAGE(loss) ≥ 0.5 (last 2)"
        )]
    );
    assert_eq!(w.bodies_of("gt"), Vec::<Value>::new());
    assert_eq!(
        w.bodies_of("newest"),
        vec![metric_body(
            "newest",
            ("r", "eq"),
            "RUN_METRIC_THRESHOLD",
            ("loss", "0", "[0]"),
            "loss ≤ 0.25"
        )]
    );
    // Just above: AVERAGE(0, 1.25) = 0.625 > 0.5 is a first rising edge for $gt.
    w.log("r", "loss", &[1.25]).await;
    assert_eq!(w.bodies_of("gt").len(), 1);
    assert_eq!(w.bodies_of("gt")[0]["metric_value"], "0.625");
    assert_eq!(w.bodies_of("gt")[0]["metric_values"], "[0, 1.25]");
    assert_eq!(w.bodies().len(), 3);
}

#[tokio::test]
async fn relative_change_fires_when_the_current_window_moved_enough_from_the_prior_one() {
    let w = world().await;
    w.automation(change(
        "drop",
        w.integration,
        json!({ "name": "loss", "agg_op": "AVERAGE", "current_window_size": 2, "prior_window_size": 2,
                "change_type": "RELATIVE", "change_dir": "DECREASE", "change_amount": 0.25 }),
    ))
    .await;
    w.run("r", "rel").await;
    // Three values cannot fill 2 + 2.
    w.log("r", "loss", &[8.0, 8.0]).await;
    w.log("r", "loss", &[8.0]).await;
    assert!(w.bodies().is_empty());
    // [8, 8] vs [8, 8]: no change. [8, 8] vs [8, 6]: −12.5 %.
    w.log("r", "loss", &[8.0]).await;
    w.log("r", "loss", &[6.0]).await;
    assert!(w.bodies().is_empty(), "{:?}", w.bodies());
    // [8, 8] vs [6, 4]: average 8 → 5, −37.5 %.
    w.log("r", "loss", &[4.0]).await;
    assert_eq!(
        w.bodies(),
        vec![metric_body(
            "drop",
            ("r", "rel"),
            "RUN_METRIC_CHANGE",
            ("loss", "5", "[8, 8, 6, 4]"),
            "AVERAGE(loss) decreases by 25% (last 2 vs prior 2)"
        )]
    );
    // An increase is not a decrease, and the edge stays met while it keeps falling.
    w.log("r", "loss", &[2.0, 1.0, 0.5]).await;
    w.log("r", "loss", &[50.0, 60.0]).await;
    assert_eq!(w.bodies().len(), 1);
}

#[tokio::test]
async fn absolute_change_compares_the_difference() {
    let w = world().await;
    w.automation(change(
        "up",
        w.integration,
        json!({ "name": "acc", "agg_op": null, "change_type": "ABSOLUTE",
                "change_dir": "INCREASE", "change_amount": 0.5 }),
    ))
    .await;
    w.automation(change(
        "any",
        w.integration,
        json!({ "name": "acc", "agg_op": "MAX", "current_window_size": 1, "prior_window_size": 2,
                "change_type": "ABSOLUTE", "change_dir": "ANY", "change_amount": 3 }),
    ))
    .await;
    w.run("r", "abs").await;
    // up: +0.25 no, then +0.5 (equal to the amount) fires. any: MAX(1, 1.25) = 1.25 → 1.75 is +0.5, no.
    w.log("r", "acc", &[1.0, 1.25]).await;
    assert!(w.bodies().is_empty());
    w.log("r", "acc", &[1.75]).await;
    assert_eq!(
        w.bodies_of("up"),
        vec![metric_body(
            "up",
            ("r", "abs"),
            "RUN_METRIC_CHANGE",
            ("acc", "1.75", "[1.25, 1.75]"),
            "acc increases by 0.5"
        )]
    );
    // any: MAX(1.25, 1.75) = 1.75 → −2: |−2| < 3; then MAX(1.75, −0.25) → −2.5: |−4.25| ≥ 3.
    w.log("r", "acc", &[-0.25]).await;
    assert!(w.bodies_of("any").is_empty());
    w.log("r", "acc", &[-2.5]).await;
    assert_eq!(
        w.bodies_of("any"),
        vec![metric_body(
            "any",
            ("r", "abs"),
            "RUN_METRIC_CHANGE",
            ("acc", "-2.5", "[1.75, -0.25, -2.5]"),
            "MAX(acc) changes by 3 (last 1 vs prior 2)"
        )]
    );
    assert_eq!(w.bodies().len(), 2);
}

#[tokio::test]
async fn a_relative_change_from_a_prior_of_zero_never_fires() {
    let w = world().await;
    w.automation(change(
        "rel",
        w.integration,
        json!({ "name": "loss", "change_type": "RELATIVE", "change_dir": "INCREASE", "change_amount": 0.1 }),
    ))
    .await;
    w.run("r", "zero").await;
    // Every increase starts from 0 (infinitely many percent); the decreases are not increases.
    w.log("r", "loss", &[0.0, 5.0, 0.0, 7.0]).await;
    w.log("r", "loss", &[0.0]).await;
    w.log("r", "loss", &[100.0]).await;
    assert!(w.bodies().is_empty(), "{:?}", w.bodies());
    // From a non-zero prior it does: 100 → 200 is +100 %.
    w.log("r", "loss", &[200.0]).await;
    assert_eq!(
        w.bodies(),
        vec![metric_body(
            "rel",
            ("r", "zero"),
            "RUN_METRIC_CHANGE",
            ("loss", "200", "[100, 200]"),
            "loss increases by 10%"
        )]
    );
}

#[tokio::test]
async fn zscore_fires_on_an_outlier_once_its_window_is_full_and_not_while_sd_is_zero() {
    let w = world().await;
    w.automation(zscore(
        "outlier",
        w.integration,
        json!({ "name": "acc", "window_size": 5, "threshold": 2, "change_dir": "ANY" }),
    ))
    .await;
    w.automation(zscore(
        "dip",
        w.integration,
        json!({ "name": "acc", "window_size": 3, "threshold": 1.5, "change_dir": "DECREASE" }),
    ))
    .await;

    // Not full: an outlier after four values is no firing for the window of 5.
    w.run("early", "early").await;
    w.log("early", "acc", &[1.0, 2.0, 1.0, 2.0, 100.0]).await;
    assert!(
        w.bodies_of("outlier").is_empty(),
        "{:?}",
        w.bodies_of("outlier")
    );
    // sd = 0: a constant window never fires, whatever comes next.
    w.run("flat", "flat").await;
    w.log("flat", "acc", &[3.0, 3.0, 3.0, 3.0, 3.0, 100.0])
        .await;
    assert!(w.bodies().iter().all(|b| b["run_id"] != "flat"));

    w.run("r", "z").await;
    // mean 1.4, sd 0.49: 1.5 is z = 0.2.
    w.log("r", "acc", &[1.0, 2.0, 1.0, 2.0, 1.0, 1.5]).await;
    assert!(w.bodies().iter().all(|b| b["run_id"] != "r"));
    // Window [2, 1, 2, 1, 1.5]: mean 1.5, sd √0.2, so 10 is z ≈ 19.
    w.log("r", "acc", &[10.0]).await;
    let mine: Vec<Value> = w
        .bodies()
        .into_iter()
        .filter(|b| b["run_id"] == "r")
        .collect();
    assert_eq!(
        mine,
        vec![metric_body(
            "outlier",
            ("r", "z"),
            "RUN_METRIC_ZSCORE",
            ("acc", "10", "[2, 1, 2, 1, 1.5, 10]"),
            "|zscore(acc)| ≥ 2 (window 5)"
        )]
    );
    // DECREASE: window [1, 1.5, 10] has mean 4.17 and sd 4.13; 0 is z ≈ −1.01, not enough;
    // window [1.5, 10, 0] (mean 3.83, sd 4.40) makes −10 z ≈ −3.1.
    w.log("r", "acc", &[0.0]).await;
    assert!(w.bodies_of("dip").iter().all(|b| b["run_id"] != "r"));
    w.log("r", "acc", &[-10.0]).await;
    let dips: Vec<Value> = w
        .bodies_of("dip")
        .into_iter()
        .filter(|b| b["run_id"] == "r")
        .collect();
    assert_eq!(
        dips,
        vec![metric_body(
            "dip",
            ("r", "z"),
            "RUN_METRIC_ZSCORE",
            ("acc", "-10", "[1.5, 10, 0, -10]"),
            "zscore(acc) ≤ -1.5 (window 3)"
        )]
    );
}

/// The body [`payload`] renders for a RUN_STATE firing in `ml/p`.
fn state_body(automation: &str, run: (&str, &str), status: &str, filter: &str) -> Value {
    json!({
        "run_id": run.0,
        "run_name": run.1,
        "run_status": status,
        "metric_name": "",
        "metric_value": "",
        "metric_values": "",
        "metric_filter": filter,
        "event_type": "RUN_STATE",
        "entity": E,
        "project": P,
        "automation": automation
    })
}

fn state_automation(name: &str, integration: i64, states: &[&str]) -> Value {
    run_automation(
        name,
        PATH,
        "RUN_STATE",
        json!({
            "run_filter": json!({ "$and": [ { "display_name": { "$regex": "^job" } } ] }).to_string(),
            "run_state_filter": { "states": states }
        }),
        integration,
    )
}

#[tokio::test]
async fn run_state_fires_on_transitions_into_listed_states_and_never_on_killed() {
    let w = world().await;
    let ended = w
        .automation(state_automation(
            "ended",
            w.integration,
            &["FAILED", "FINISHED"],
        ))
        .await;
    let started = w
        .automation(state_automation("started", w.integration, &["RUNNING"]))
        .await;
    let ended_filter = "state in [FAILED, FINISHED]";
    let started_filter = "state in [RUNNING]";

    for (id, name) in [
        ("f1", "job-finish"),
        ("f2", "job-fail"),
        ("f3", "job-crash"),
        ("f4", "job-kill"),
        ("f5", "other"),
    ] {
        w.run(id, name).await;
    }
    w.app.step().await;
    // Starting a run is entering RUNNING: only `started` fires, and not for `other`.
    let mut got = w.bodies_of("started");
    got.sort_by_key(|b| b["run_id"].as_str().unwrap().to_string());
    assert_eq!(
        got,
        vec![
            state_body("started", ("f1", "job-finish"), "RUNNING", started_filter),
            state_body("started", ("f2", "job-fail"), "RUNNING", started_filter),
            state_body("started", ("f3", "job-crash"), "RUNNING", started_filter),
            state_body("started", ("f4", "job-kill"), "RUNNING", started_filter),
        ]
    );
    assert!(w.bodies_of("ended").is_empty());

    let api = w.api();
    api.set_state(E, P, "f1", "FINISHED").await;
    api.set_state(E, P, "f2", "FAILED").await;
    let crashed = api.set_state(E, P, "f3", "CRASHED").await;
    assert_eq!(crashed["state"], "FAILED");
    api.set_state(E, P, "f4", "KILLED").await;
    api.set_state(E, P, "f5", "FINISHED").await;
    // Repeating the state is no transition.
    api.set_state(E, P, "f1", "FINISHED").await;
    api.set_state(E, P, "f3", "FAILED").await;
    w.app.step().await;
    let mut got = w.bodies_of("ended");
    got.sort_by_key(|b| b["run_id"].as_str().unwrap().to_string());
    assert_eq!(
        got,
        vec![
            state_body("ended", ("f1", "job-finish"), "FINISHED", ended_filter),
            state_body("ended", ("f2", "job-fail"), "FAILED", ended_filter),
            state_body("ended", ("f3", "job-crash"), "FAILED", ended_filter),
        ]
    );
    assert_eq!(w.api().fired(ended).await.len(), 3);
    assert_eq!(w.api().fired(started).await.len(), 4);
    assert_eq!(w.bodies().len(), 7);
}
