//! Bad run automations are a 4xx naming the problem, and nothing is stored: windows out of
//! range, thresholds that are not finite numbers, change amounts that are not positive,
//! unknown aggregations, comparisons and change types, run filters that are not JSON, run
//! events where there are no runs (a collection, a registry), cooldowns over a year.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// Bodies to refuse: what each is, and what its error must mention.
#[derive(Default)]
struct Cases(Vec<(&'static str, Value, Vec<String>)>);

impl Cases {
    fn add(&mut self, what: &'static str, body: Value, needles: &[&str]) {
        self.0
            .push((what, body, needles.iter().map(|s| s.to_string()).collect()));
    }
}

/// Asserts a 4xx JSON error whose message or path mentions every needle.
#[track_caller]
fn assert_refused((status, body): (StatusCode, Value), needles: &[&str], what: &str) {
    assert!(
        status.is_client_error(),
        "{what}: answered {status}: {body}"
    );
    let error = &body["error"];
    assert!(error["code"].is_string(), "{what}: {body}");
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no message in {body}"));
    let text = format!("{message} {}", error["path"].as_str().unwrap_or(""));
    for n in needles {
        assert!(
            text.contains(n),
            "{what}: the error does not name {n:?}: {body}"
        );
    }
}

fn metric_automation(event_type: &str, filter: Value, integration: i64) -> Value {
    run_automation("bad", PATH, event_type, filter, integration)
}

fn with_threshold(tf: Value, integration: i64) -> Value {
    metric_automation("RUN_METRIC", threshold(all_runs(), tf), integration)
}

fn with_change(cf: Value, integration: i64) -> Value {
    metric_automation(
        "RUN_METRIC_CHANGE",
        json!({ "run_filter": "{\"$and\":[]}", "run_metric_filter": { "change_filter": cf } }),
        integration,
    )
}

fn with_zscore(zf: Value, integration: i64) -> Value {
    metric_automation(
        "RUN_METRIC_ZSCORE",
        json!({ "run_filter": "{\"$and\":[]}", "run_metric_filter": { "zscore_filter": zf } }),
        integration,
    )
}

/// A valid threshold filter with `key` set to `v`.
fn tf(key: &str, v: Value) -> Value {
    let mut f = json!({ "name": "loss", "agg_op": "AVERAGE", "window_size": 3, "cmp_op": "$gt", "threshold": 0.5 });
    f[key] = v;
    f
}

/// A valid change filter with `key` set to `v`.
fn cf(key: &str, v: Value) -> Value {
    let mut f = json!({ "name": "loss", "agg_op": "AVERAGE", "current_window_size": 2, "prior_window_size": 2,
                        "change_type": "RELATIVE", "change_dir": "DECREASE", "change_amount": 0.25 });
    f[key] = v;
    f
}

/// A valid z-score filter with `key` set to `v`.
fn zf(key: &str, v: Value) -> Value {
    let mut f = json!({ "name": "acc", "window_size": 5, "threshold": 2, "change_dir": "ANY" });
    f[key] = v;
    f
}

#[tokio::test]
async fn bad_run_automations_are_refused_and_nothing_is_stored() {
    let w = world().await;
    let api = w.api();
    let i = w.integration;
    api.create_version(E, P, "clf").await;
    api.create_entity("org", "organization").await;
    api.create_registry("org", "model").await;
    let org_integration = api
        .create_integration("org", "hook", &w.rx.url("/hook"), None, None)
        .await;

    let tp = "run_metric_filter.threshold_filter";
    let cp = "run_metric_filter.change_filter";
    let zp = "run_metric_filter.zscore_filter";
    let mut c = Cases::default();

    // Windows: at least 1, at most 10000.
    type Wrap = Box<dyn Fn(Value) -> Value>;
    let windows: [(&str, Wrap); 4] = [
        (
            "window_size",
            Box::new(move |v| with_threshold(tf("window_size", v), i)),
        ),
        (
            "current_window_size",
            Box::new(move |v| with_change(cf("current_window_size", v), i)),
        ),
        (
            "prior_window_size",
            Box::new(move |v| with_change(cf("prior_window_size", v), i)),
        ),
        (
            "window_size",
            Box::new(move |v| with_zscore(zf("window_size", v), i)),
        ),
    ];
    for (key, wrap) in &windows {
        c.add("window 0", wrap(json!(0)), &[*key, "at least 1"]);
        c.add("window −3", wrap(json!(-3)), &[*key, "at least 1"]);
        c.add(
            "window 10001",
            wrap(json!(10001)),
            &[*key, "over the limit"],
        );
        c.add("window 1e9", wrap(json!(1e9)), &[*key, "over the limit"]);
        c.add("window 2.5", wrap(json!(2.5)), &[*key, "whole number"]);
        c.add("window \"3\"", wrap(json!("3")), &[*key, "whole number"]);
    }
    c.add(
        "window −3 names its path",
        with_threshold(tf("window_size", json!(-3)), i),
        &[&format!("event.filter.{tp}.window_size")],
    );

    // Thresholds: finite numbers.
    for (what, v, needle) in [
        ("threshold NaN", json!("NaN"), "finite"),
        ("threshold Infinity", json!("Infinity"), "finite"),
        ("threshold -inf", json!("-inf"), "finite"),
        ("threshold text", json!("high"), "must be a number"),
        ("threshold bool", json!(true), "must be a number"),
        ("threshold list", json!([0.5]), "must be a number"),
        ("threshold missing", Value::Null, "missing"),
    ] {
        c.add(
            what,
            with_threshold(tf("threshold", v), i),
            &[&format!("{tp}.threshold"), needle],
        );
    }
    c.add(
        "z-score threshold 0",
        with_zscore(zf("threshold", json!(0)), i),
        &[&format!("{zp}.threshold"), "greater than 0"],
    );
    c.add(
        "z-score threshold NaN",
        with_zscore(zf("threshold", json!("NaN")), i),
        &[&format!("{zp}.threshold"), "finite"],
    );

    // Change amounts: greater than 0.
    for (what, v, needle) in [
        ("change 0", json!(0), "greater than 0"),
        ("change −0.1", json!(-0.1), "greater than 0"),
        ("change Infinity", json!("Infinity"), "finite"),
        ("change text", json!("lots"), "must be a number"),
        ("change missing", Value::Null, "missing"),
    ] {
        c.add(
            what,
            with_change(cf("change_amount", v), i),
            &[&format!("{cp}.change_amount"), needle],
        );
    }

    // Unknown enum values.
    c.add(
        "agg MEDIAN",
        with_threshold(tf("agg_op", json!("MEDIAN")), i),
        &[&format!("{tp}.agg_op"), "MEDIAN"],
    );
    c.add(
        "agg SUM",
        with_change(cf("agg_op", json!("SUM")), i),
        &[&format!("{cp}.agg_op"), "SUM"],
    );
    c.add(
        "cmp $gtt",
        with_threshold(tf("cmp_op", json!("$gtt")), i),
        &[&format!("{tp}.cmp_op"), "$gtt"],
    );
    c.add(
        "cmp =>",
        with_threshold(tf("cmp_op", json!("=>")), i),
        &[&format!("{tp}.cmp_op"), "=>"],
    );
    c.add(
        "cmp missing",
        with_threshold(tf("cmp_op", Value::Null), i),
        &[&format!("{tp}.cmp_op"), "missing"],
    );
    c.add(
        "change_type PERCENT",
        with_change(cf("change_type", json!("PERCENT")), i),
        &[&format!("{cp}.change_type"), "PERCENT"],
    );
    c.add(
        "change_dir UP",
        with_change(cf("change_dir", json!("UP")), i),
        &[&format!("{cp}.change_dir"), "UP"],
    );
    c.add(
        "z change_dir SIDEWAYS",
        with_zscore(zf("change_dir", json!("SIDEWAYS")), i),
        &[&format!("{zp}.change_dir"), "SIDEWAYS"],
    );
    c.add(
        "agg as number",
        with_threshold(tf("agg_op", json!(1)), i),
        &[&format!("{tp}.agg_op"), "string"],
    );
    c.add(
        "change filter under RUN_METRIC",
        metric_automation(
            "RUN_METRIC",
            json!({ "run_metric_filter": { "change_filter": cf("name", json!("loss")) } }),
            i,
        ),
        &["change_filter", "RUN_METRIC_CHANGE"],
    );
    c.add(
        "no metric filter",
        metric_automation(
            "RUN_METRIC_ZSCORE",
            json!({ "run_filter": "{\"$and\":[]}" }),
            i,
        ),
        &["run_metric_filter", "missing"],
    );
    c.add(
        "unknown threshold key",
        with_threshold(tf("windowsize", json!(3)), i),
        &[&format!("{tp}.windowsize"), "unknown key"],
    );
    c.add(
        "KILLED state",
        metric_automation(
            "RUN_STATE",
            json!({ "run_filter": "{\"$and\":[]}", "run_state_filter": { "states": ["KILLED"] } }),
            i,
        ),
        &["run_state_filter.states[0]", "KILLED"],
    );
    c.add(
        "no states",
        metric_automation(
            "RUN_STATE",
            json!({ "run_filter": "{\"$and\":[]}", "run_state_filter": { "states": [] } }),
            i,
        ),
        &["run_state_filter.states", "at least one"],
    );
    c.add(
        "unknown state",
        metric_automation(
            "RUN_STATE",
            json!({ "run_filter": "{\"$and\":[]}", "run_state_filter": { "states": ["PAUSED"] } }),
            i,
        ),
        &["run_state_filter.states[0]", "PAUSED"],
    );

    // Run filters that are not JSON, or not run filters.
    for (what, rf, needles) in [
        (
            "run_filter not JSON",
            json!("{\"$and\": [}"),
            vec!["run_filter", "JSON"],
        ),
        (
            "run_filter truncated",
            json!("{\"$and\":[{\"display_name\":"),
            vec!["run_filter", "JSON"],
        ),
        (
            "run_filter plain text",
            json!("my-run"),
            vec!["run_filter", "JSON"],
        ),
        ("run_filter number", json!(5), vec!["run_filter"]),
        (
            "run_filter unknown field",
            json!("{\"$and\":[{\"state\":\"RUNNING\"}]}"),
            vec!["run_filter", "state"],
        ),
        (
            "run_filter bad regex",
            json!("{\"$and\":[{\"display_name\":{\"$regex\":\"(\"}}]}"),
            vec!["run_filter", "$regex"],
        ),
        (
            "run_filter bad operator",
            json!("{\"$and\":[{\"tags\":{\"$all\":[\"a\"]}}]}"),
            vec!["run_filter", "$all"],
        ),
    ] {
        let filter = json!({
            "run_filter": rf,
            "run_metric_filter": { "threshold_filter": tf("name", json!("loss")) },
            "metric_filter": null
        });
        c.add(what, metric_automation("RUN_METRIC", filter, i), &needles);
    }
    c.add(
        "event filter string not JSON",
        metric_automation("RUN_METRIC", json!("{run_filter"), i),
        &["JSON"],
    );

    // Run events where there are no runs.
    for t in [
        "RUN_METRIC",
        "RUN_METRIC_CHANGE",
        "RUN_METRIC_ZSCORE",
        "RUN_STATE",
    ] {
        let filter = match t {
            "RUN_METRIC" => threshold(all_runs(), tf("name", json!("loss"))),
            "RUN_METRIC_CHANGE" => {
                json!({ "run_metric_filter": { "change_filter": cf("name", json!("loss")) } })
            }
            "RUN_METRIC_ZSCORE" => {
                json!({ "run_metric_filter": { "zscore_filter": zf("name", json!("acc")) } })
            }
            _ => json!({ "run_state_filter": { "states": ["FAILED"] } }),
        };
        let mut at_collection = metric_automation(t, filter.clone(), i);
        at_collection["scope"] = json!({ "type": "ARTIFACT_COLLECTION", "path": "ml/p/clf" });
        c.add(
            "run event at a collection",
            at_collection,
            &["event.type", "ARTIFACT_COLLECTION", t],
        );
        let mut at_registry = metric_automation(t, filter, org_integration);
        at_registry["scope"] = json!({ "type": "PROJECT", "path": "org/wandb-registry-model" });
        c.add(
            "run event at a registry",
            at_registry,
            &["event.type", "registries", t],
        );
    }

    // Cooldowns: at most a year.
    let mut year_and_a_second = with_threshold(tf("name", json!("loss")), i);
    year_and_a_second["cooldown_seconds"] = json!(365 * 24 * 3600 + 1);
    c.add(
        "cooldown over a year",
        year_and_a_second,
        &["cooldown_seconds", "a year"],
    );
    let mut negative = with_threshold(tf("name", json!("loss")), i);
    negative["cooldown_seconds"] = json!(-1);
    c.add("negative cooldown", negative, &["cooldown_seconds"]);

    let n = c.0.len();
    for (what, body, needles) in c.0 {
        let entity = if body["scope"]["path"]
            .as_str()
            .unwrap_or("")
            .starts_with("org/")
        {
            "org"
        } else {
            E
        };
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        let answer = api
            .post(&format!("/api/v1/entities/{entity}/automations"), body)
            .await;
        assert_refused(answer, &needles, what);
    }
    assert!(n > 60, "only {n} cases");

    // A threshold that JSON cannot hold as a finite number is refused too.
    let raw = r#"{"name":"bad","scope":{"type":"PROJECT","path":"ml/p"},"event":{"type":"RUN_METRIC","filter":{"run_filter":"{\"$and\":[]}","run_metric_filter":{"threshold_filter":{"name":"loss","cmp_op":"$gt","threshold":1e999}}}},"action":{"type":"NO_OP"}}"#;
    let (status, body) = api
        .post_raw(&format!("/api/v1/entities/{E}/automations"), raw)
        .await;
    assert!(status.is_client_error(), "1e999: {status} {body}");

    // Nothing was stored, and a valid automation still saves (the setup was not the problem).
    assert!(api.automations(E).await.is_empty());
    assert!(api.automations("org").await.is_empty());
    api.create_automation(E, with_threshold(tf("window_size", json!(10000)), i))
        .await;
    let mut year = with_change(cf("name", json!("loss")), i);
    year["name"] = json!("a year");
    year["cooldown_seconds"] = json!(365 * 24 * 3600);
    api.create_automation(E, year).await;
    assert_eq!(api.automations(E).await.len(), 2);
}
