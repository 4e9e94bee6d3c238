//! What W&B's SDK sends about a run, in herald's terms: its wrapped config, the history lines
//! it streams, and the exit code that ends a run (and how, when it was asked to stop).

use serde_json::{Map, Value};

use crate::names::MetricName;
use crate::run::{HistoryRow, RunState, MAX_METRICS_PER_ROW};
use crate::InvalidInput;

/// Deepest nesting of a logged dict that is flattened into `a.b.c` metric names.
const MAX_NESTING: usize = 8;

/// The SDK's config, `{"lr": {"value": 0.1}, "_wandb": {...}}`, as herald keeps it:
/// `{"lr": 0.1}` (the SDK's own `_wandb` telemetry is dropped).
pub fn unwrap_config(wrapped: &Value) -> Result<Value, InvalidInput> {
    let Value::Object(m) = wrapped else {
        return Err(InvalidInput::new(
            "config",
            format!(
                "config must be a JSON object, not {}",
                crate::catalog::json_kind(wrapped)
            ),
        ));
    };
    let out: Map<String, Value> = m
        .iter()
        .filter(|(k, _)| k.as_str() != "_wandb")
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) if inner.contains_key("value") => inner["value"].clone(),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    Ok(Value::Object(out))
}

/// herald's config in the form the SDK reads back: every key wrapped as `{"value": …}`.
pub fn wrap_config(config: &Value) -> Value {
    match config {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), serde_json::json!({ "value": v })))
                .collect(),
        ),
        _ => Value::Object(Map::new()),
    }
}

/// One `wandb-history.jsonl` line: a JSON object with `_step` and the logged keys. herald
/// keeps the finite numbers (nested dicts flattened as `a.b`), by their key; `_`-prefixed keys
/// are the SDK's own (`_runtime`, `_timestamp`) and other values (media, strings, histograms)
/// are not metrics. `None` when nothing is kept. A line without `_step` takes `line_index`.
pub fn history_line(line: &str, line_index: i64) -> Result<Option<HistoryRow>, InvalidInput> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| InvalidInput::new("", format!("a history line is not JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(InvalidInput::new(
            "",
            "a history line must be a JSON object",
        ));
    };
    let step = match m.get("_step") {
        None | Some(Value::Null) => line_index,
        Some(Value::Number(n)) => n.as_i64().filter(|s| *s >= 0).ok_or_else(|| {
            InvalidInput::new(
                "_step",
                format!("_step must be a whole number ≥ 0, got {n}"),
            )
        })?,
        Some(other) => {
            return Err(InvalidInput::new(
                "_step",
                format!(
                    "_step must be a number, not {}",
                    crate::catalog::json_kind(other)
                ),
            ))
        }
    };
    let mut values = Map::new();
    flatten("", &m, 0, &mut values);
    if values.is_empty() {
        return Ok(None);
    }
    HistoryRow::parse(step, &values).map(Some)
}

fn flatten(prefix: &str, m: &Map<String, Value>, depth: usize, out: &mut Map<String, Value>) {
    for (k, v) in m {
        if depth == 0 && k.starts_with('_') {
            continue;
        }
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Number(n)
                if n.as_f64().is_some_and(f64::is_finite)
                    && out.len() < MAX_METRICS_PER_ROW
                    && MetricName::parse(&key).is_ok() =>
            {
                out.insert(key, v.clone());
            }
            // A logged media or table object says what it is in `_type`; it is not a metric.
            Value::Object(inner) if depth < MAX_NESTING && !inner.contains_key("_type") => {
                flatten(&key, inner, depth + 1, out)
            }
            _ => {}
        }
    }
}

/// How many of `n` lines of `file` posted from `offset` a run already has (`have` so far): those
/// are skipped, which makes a resent post harmless. A post starting past `have` would leave a
/// gap, and is refused naming the file.
pub fn fresh_lines(file: &str, have: i64, offset: i64, n: usize) -> Result<usize, InvalidInput> {
    if offset < 0 || offset > have {
        return Err(InvalidInput::new(
            format!("files.{file}.offset"),
            format!(
                "offset {offset} leaves a gap: {have} lines of {file} were received so far, so the next starts at {have}"
            ),
        ));
    }
    Ok(((have - offset) as usize).min(n))
}

/// The state a run ends in with `exitcode`: 0 is FINISHED, anything else FAILED, or KILLED
/// when it was asked to stop (the SDK interrupts the script, which then exits 255). A script
/// that catches the interrupt and exits 0 ends FINISHED: it ended on its own terms.
pub fn exit_state(exitcode: i64, stop_requested: bool) -> RunState {
    match (exitcode, stop_requested) {
        (0, _) => RunState::Finished,
        (_, true) => RunState::Killed,
        (_, false) => RunState::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_unwraps_and_wraps_back() {
        let sent = json!({"lr": {"value": 0.1}, "layers": {"value": [1, 2]}, "_wandb": {"value": {"t": 1}}});
        let kept = unwrap_config(&sent).unwrap();
        assert_eq!(kept, json!({"lr": 0.1, "layers": [1, 2]}));
        assert_eq!(
            wrap_config(&kept),
            json!({"lr": {"value": 0.1}, "layers": {"value": [1, 2]}})
        );
        assert!(unwrap_config(&json!([1])).is_err());
    }

    #[test]
    fn history_lines_keep_finite_numbers() {
        let row = history_line(
            r#"{"_step": 3, "_runtime": 1.5, "loss": 0.25, "train": {"acc": 0.9, "note": "x"}, "img": {"_type": "image-file", "size": 3}, "name": "a"}"#,
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(row.step, 3);
        let keys: Vec<&str> = row.values.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["loss", "train.acc"]);
        assert_eq!(
            history_line(r#"{"_step": 1, "caption": "x"}"#, 0).unwrap(),
            None
        );
        assert_eq!(history_line(r#"{"loss": 1}"#, 7).unwrap().unwrap().step, 7);
        assert!(history_line("not json", 0).is_err());
        assert!(history_line("[1]", 0).is_err());
        assert!(history_line(r#"{"_step": -1, "a": 1}"#, 0).is_err());
    }

    #[test]
    fn offsets_skip_what_arrived_and_refuse_gaps() {
        assert_eq!(fresh_lines("h", 5, 0, 3).unwrap(), 3);
        assert_eq!(fresh_lines("h", 5, 3, 4).unwrap(), 2);
        assert_eq!(fresh_lines("h", 5, 5, 4).unwrap(), 0);
        let gap = fresh_lines("h", 5, 6, 1).unwrap_err();
        assert_eq!(gap.path, "files.h.offset");
        assert!(fresh_lines("h", 5, -1, 1).is_err());
    }

    #[test]
    fn exit_codes_end_runs() {
        assert_eq!(exit_state(0, false), RunState::Finished);
        assert_eq!(exit_state(1, false), RunState::Failed);
        assert_eq!(exit_state(-9, false), RunState::Failed);
        assert_eq!(exit_state(255, true), RunState::Killed);
        assert_eq!(exit_state(0, true), RunState::Finished);
    }
}
