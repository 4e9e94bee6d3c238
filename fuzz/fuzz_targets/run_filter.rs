//! Run event filters (`herald_domain::run_filter`): any text, as a whole event filter (JSON, and
//! the JSON string GraphQL's `eventFilter` travels in) for each run event type, and as the
//! `run_filter` string embedded in an otherwise valid one. Parsing must never panic; an accepted
//! filter must describe itself, evaluate a series of values, and its saved wire form must parse
//! back to an equal filter.
#![no_main]

use herald_domain::event::EventType;
use herald_domain::run_filter::RunEventFilter;
use herald_domain::window::Evaluator;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const RUN_EVENTS: [EventType; 4] = [
    EventType::RunMetric,
    EventType::RunMetricChange,
    EventType::RunMetricZscore,
    EventType::RunState,
];

/// Values a metric might log, extremes included, so windows overflow and cancel.
const SERIES: &[f64] = &[
    0.5,
    0.25,
    1.0,
    -3.0,
    1e308,
    1e308,
    -1e308,
    f64::NAN,
    f64::INFINITY,
    0.0,
    -0.0,
    f64::MIN_POSITIVE,
    42.0,
    0.5,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let as_string = Value::String(text.to_string());
    let as_json: Option<Value> = serde_json::from_str(text).ok();
    let embedded = [
        json!({"run_filter": text, "run_state_filter": {"states": ["FAILED"]}}),
        json!({
            "run_filter": text,
            "run_metric_filter": {"threshold_filter": {"name": "loss", "cmp_op": "$gt", "threshold": 1}},
            "metric_filter": null,
        }),
    ];
    for t in RUN_EVENTS {
        for v in as_json.iter().chain([&as_string]).chain(&embedded) {
            if let Ok(f) = RunEventFilter::parse(t, v) {
                check(t, &f);
            }
        }
    }
    // Artifact events have no run filter, whatever the input.
    if let Some(v) = &as_json {
        assert!(RunEventFilter::parse(EventType::CreateArtifact, v).is_err());
    }
});

fn check(t: EventType, f: &RunEventFilter) {
    assert_eq!(f.event_type(), t);
    let _ = f.describe();

    let wire = f.to_wire();
    let again = RunEventFilter::parse(t, &wire)
        .unwrap_or_else(|e| panic!("the wire form {wire} of an accepted filter is refused: {e}"));
    assert_eq!(&again, f, "the wire form {wire} parses to another filter");
    assert_eq!(again.to_wire(), wire, "the wire form is not stable");
    let from_string = RunEventFilter::parse(t, &Value::String(f.to_wire_string()))
        .unwrap_or_else(|e| panic!("the wire string of {wire} is refused: {e}"));
    assert_eq!(&from_string, f);

    let run =
        json!({"display_name": "r1", "username": "ada", "tags": ["a"], "config": {"lr": 0.1}});
    let _ = f.run_filter.matches(&run);

    let history_len = f.condition.history_len();
    if let Some(mut e) = Evaluator::try_new(&f.condition) {
        for x in SERIES {
            let _ = e.push(*x);
        }
        let _ = e.is_met();
        let _ = e.state_len();
        let tail = &SERIES[SERIES.len().saturating_sub(history_len)..];
        let _ = Evaluator::rebuild(&f.condition, tail.iter().copied()).firing();
    }
}
