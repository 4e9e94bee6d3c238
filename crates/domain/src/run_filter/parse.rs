//! Reading a run event filter's wire form into [`RunEventFilter`], with W&B's leniencies (see
//! the parent module), every refusal naming the path of what is wrong.

use serde_json::{Map, Value};

use super::*;

const METRIC_KEYS: &[&str] = &["run_filter", "run_metric_filter", "metric_filter"];
const STATE_KEYS: &[&str] = &["run_filter", "run_state_filter", "metric_filter"];
const THRESHOLD_KEYS: &[&str] = &["name", "agg_op", "window_size", "cmp_op", "threshold"];
const CHANGE_KEYS: &[&str] = &[
    "name",
    "agg_op",
    "current_window_size",
    "window_size",
    "prior_window_size",
    "change_type",
    "change_dir",
    "change_amount",
];
const ZSCORE_KEYS: &[&str] = &["name", "window_size", "threshold", "change_dir"];
const METRIC_FILTER_KINDS: &[(&str, EventType)] = &[
    ("threshold_filter", EventType::RunMetric),
    ("change_filter", EventType::RunMetricChange),
    ("zscore_filter", EventType::RunMetricZscore),
];

/// [`RunEventFilter::parse`].
pub(super) fn event_filter(
    event_type: EventType,
    v: &Value,
) -> Result<RunEventFilter, InvalidInput> {
    if let Value::String(s) = v {
        let decoded: Value = serde_json::from_str(s)
            .map_err(|e| InvalidInput::new("", format!("event filter is not valid JSON: {e}")))?;
        if decoded.is_string() {
            return Err(InvalidInput::new(
                "",
                "event filter must be an object, got a JSON string holding a string",
            ));
        }
        return RunEventFilter::parse(event_type, &decoded);
    }
    let is_state = match event_type {
        EventType::RunMetric | EventType::RunMetricChange | EventType::RunMetricZscore => false,
        EventType::RunState => true,
        other => {
            return Err(InvalidInput::new(
                "",
                format!(
                    "{} is not a run event; run filters belong to RUN_METRIC, RUN_METRIC_CHANGE, RUN_METRIC_ZSCORE and RUN_STATE",
                    other.as_str()
                ),
            ))
        }
    };
    let m = object(v, "", if is_state { STATE_KEYS } else { METRIC_KEYS })?;
    let run_filter = parse_run_filter(present(m, "run_filter"))?;
    let legacy = present(m, "metric_filter");
    let condition = if is_state {
        if legacy.is_some() {
            return Err(InvalidInput::new(
                "metric_filter",
                "RUN_STATE automations take no metric filter; send null or leave it out",
            ));
        }
        let sf = present(m, "run_state_filter").ok_or_else(|| {
            InvalidInput::new(
                "run_state_filter",
                "missing; give {\"states\": [...]} with RUNNING, FINISHED and/or FAILED",
            )
        })?;
        RunCondition::State(parse_state_filter(sf, "run_state_filter")?)
    } else {
        match (present(m, "run_metric_filter"), legacy) {
            (Some(rmf), None) => parse_run_metric_filter(event_type, rmf)?,
            (Some(_), Some(_)) => {
                return Err(InvalidInput::new(
                    "metric_filter",
                    "give run_metric_filter only; metric_filter is W&B's deprecated legacy field (send null)",
                ))
            }
            (None, Some(legacy)) if event_type == EventType::RunMetric => {
                // W&B's legacy field: a JSON-encoded threshold filter.
                let decoded;
                let tf = match legacy {
                    Value::String(s) => {
                        decoded = serde_json::from_str::<Value>(s).map_err(|e| {
                            InvalidInput::new(
                                "metric_filter",
                                format!("metric_filter is not valid JSON: {e}"),
                            )
                        })?;
                        &decoded
                    }
                    other => other,
                };
                RunCondition::Threshold(parse_threshold(tf, "metric_filter")?)
            }
            (None, Some(_)) => {
                return Err(InvalidInput::new(
                    "metric_filter",
                    format!(
                        "metric_filter is W&B's legacy threshold field; {} automations take run_metric_filter.{}",
                        event_type.as_str(),
                        metric_filter_key(event_type)
                    ),
                ))
            }
            (None, None) => {
                return Err(InvalidInput::new(
                    "run_metric_filter",
                    format!(
                        "missing; {} automations need {{\"{}\": {{...}}}}",
                        event_type.as_str(),
                        metric_filter_key(event_type)
                    ),
                ))
            }
        }
    };
    Ok(RunEventFilter {
        run_filter,
        condition,
    })
}

fn metric_filter_key(event_type: EventType) -> &'static str {
    METRIC_FILTER_KINDS
        .iter()
        .find(|(_, t)| *t == event_type)
        .map_or("threshold_filter", |(k, _)| k)
}

fn parse_run_filter(v: Option<&Value>) -> Result<Filter, InvalidInput> {
    match v {
        None => Ok(Filter::empty(FilterFields::Run)),
        Some(Value::String(s)) => {
            Filter::parse_str(s, FilterFields::Run).map_err(|e| e.at("run_filter"))
        }
        Some(o @ Value::Object(_)) => {
            Filter::parse(o, FilterFields::Run).map_err(|e| e.at("run_filter"))
        }
        Some(other) => Err(InvalidInput::new(
            "run_filter",
            format!(
                "must be a JSON string or an object holding a filter such as {{\"$and\":[]}}, got {}",
                kind(other)
            ),
        )),
    }
}

fn parse_run_metric_filter(event_type: EventType, v: &Value) -> Result<RunCondition, InvalidInput> {
    let keys: Vec<&str> = METRIC_FILTER_KINDS.iter().map(|(k, _)| *k).collect();
    let m = object(v, "run_metric_filter", &keys)?;
    let want = metric_filter_key(event_type);
    for (key, owner) in METRIC_FILTER_KINDS {
        if *key != want && present(m, key).is_some() {
            return Err(InvalidInput::new(
                format!("run_metric_filter.{key}"),
                format!(
                    "{key} belongs to {} automations; this automation's event is {}, which takes {want}",
                    owner.as_str(),
                    event_type.as_str()
                ),
            ));
        }
    }
    let path = format!("run_metric_filter.{want}");
    let inner = present(m, want).ok_or_else(|| {
        InvalidInput::new(
            path.clone(),
            format!("missing; {} automations need {want}", event_type.as_str()),
        )
    })?;
    Ok(match event_type {
        EventType::RunMetric => RunCondition::Threshold(parse_threshold(inner, &path)?),
        EventType::RunMetricChange => RunCondition::Change(parse_change(inner, &path)?),
        _ => RunCondition::ZScore(parse_zscore(inner, &path)?),
    })
}

fn parse_threshold(v: &Value, path: &str) -> Result<ThresholdFilter, InvalidInput> {
    let m = object(v, path, THRESHOLD_KEYS)?;
    Ok(ThresholdFilter {
        name: metric_name(m, path)?,
        agg: agg(m, path)?,
        window_size: window(m, path, "window_size")?.unwrap_or(DEFAULT_THRESHOLD_WINDOW),
        cmp: enum_field(m, path, "cmp_op", CmpOp::parse)?
            .ok_or_else(|| missing(path, "cmp_op", "one of $gt, $gte, $lt, $lte, $eq, $ne"))?,
        threshold: number(m, path, "threshold")?
            .ok_or_else(|| missing(path, "threshold", "a number"))?,
    })
}

fn parse_change(v: &Value, path: &str) -> Result<ChangeFilter, InvalidInput> {
    let m = object(v, path, CHANGE_KEYS)?;
    let name = metric_name(m, path)?;
    let agg = agg(m, path)?;
    // The SDK's unit-test fixture writes `window_size`; `current_window_size` is canonical.
    let current = match (
        window(m, path, "current_window_size")?,
        window(m, path, "window_size")?,
    ) {
        (Some(c), Some(w)) if c != w => {
            return Err(InvalidInput::new(
                format!("{path}.window_size"),
                format!(
                    "window_size is an alias of current_window_size; they disagree ({w} vs {c}), give one"
                ),
            ))
        }
        (c, w) => c.or(w).unwrap_or(DEFAULT_CHANGE_WINDOW),
    };
    let prior = window(m, path, "prior_window_size")?.unwrap_or(current);
    let change_type = enum_field(m, path, "change_type", ChangeType::parse)?
        .ok_or_else(|| missing(path, "change_type", "ABSOLUTE or RELATIVE"))?;
    let change_dir = enum_field(m, path, "change_dir", ChangeDir::parse)?
        .ok_or_else(|| missing(path, "change_dir", "INCREASE, DECREASE or ANY"))?;
    let change_amount = number(m, path, "change_amount")?
        .ok_or_else(|| missing(path, "change_amount", "a number greater than 0"))?;
    positive(path, "change_amount", change_amount)?;
    Ok(ChangeFilter {
        name,
        agg,
        current_window_size: current,
        prior_window_size: prior,
        change_type,
        change_dir,
        change_amount,
    })
}

fn parse_zscore(v: &Value, path: &str) -> Result<ZScoreFilter, InvalidInput> {
    let m = object(v, path, ZSCORE_KEYS)?;
    let name = metric_name(m, path)?;
    let window_size = window(m, path, "window_size")?.unwrap_or(DEFAULT_ZSCORE_WINDOW);
    let threshold = number(m, path, "threshold")?.unwrap_or(DEFAULT_ZSCORE_THRESHOLD);
    positive(path, "threshold", threshold)?;
    let change_dir = enum_field(m, path, "change_dir", ChangeDir::parse)?.unwrap_or(ChangeDir::Any);
    Ok(ZScoreFilter {
        name,
        window_size,
        threshold,
        change_dir,
    })
}

fn parse_state_filter(v: &Value, path: &str) -> Result<StateFilter, InvalidInput> {
    let m = object(v, path, &["states"])?;
    let path = format!("{path}.states");
    let one;
    let items: &[Value] = match present(m, "states") {
        None => {
            return Err(InvalidInput::new(
                path,
                "missing; list RUNNING, FINISHED and/or FAILED",
            ))
        }
        // W&B's SDK turns a single value into a list.
        Some(s @ Value::String(_)) => {
            one = [s.clone()];
            &one
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(InvalidInput::new(
                path,
                format!("must be a list of run states, got {}", kind(other)),
            ))
        }
    };
    if items.is_empty() {
        return Err(InvalidInput::new(
            path,
            "must list at least one of RUNNING, FINISHED, FAILED",
        ));
    }
    let mut states = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Value::String(s) = item else {
            return Err(InvalidInput::new(
                at,
                format!("must be a run state string, got {}", kind(item)),
            ));
        };
        let state = match RunState::parse(s) {
            Ok(RunState::Killed) => {
                return Err(InvalidInput::new(
                    at,
                    "KILLED never triggers an automation (an admin stopped the run); choose RUNNING, FINISHED or FAILED",
                ))
            }
            Ok(state) => state,
            Err(_) => {
                return Err(InvalidInput::new(
                    at,
                    format!(
                        "unknown run state {s:?}; allowed: RUNNING, FINISHED, FAILED (CRASHED means FAILED)"
                    ),
                ))
            }
        };
        states.push(state);
    }
    states.sort_by_key(|s| s.as_str());
    states.dedup();
    Ok(StateFilter { states })
}

/// The object at `path`, refusing keys outside `allowed`.
fn object<'a>(
    v: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, InvalidInput> {
    let Value::Object(m) = v else {
        return Err(InvalidInput::new(
            path,
            format!("must be an object, got {}", kind(v)),
        ));
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(InvalidInput::new(
            join(path, k),
            format!("unknown key {k:?}; allowed keys: {}", allowed.join(", ")),
        ));
    }
    Ok(m)
}

/// The value of `key`, treating `null` as absent.
fn present<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn missing(path: &str, key: &str, what: &str) -> InvalidInput {
    InvalidInput::new(join(path, key), format!("missing; give {what}"))
}

fn metric_name(m: &Map<String, Value>, path: &str) -> Result<MetricName, InvalidInput> {
    let at = join(path, "name");
    match present(m, "name") {
        None => Err(InvalidInput::new(at, "missing; give the metric's name")),
        Some(Value::String(s)) => MetricName::parse(s).map_err(|e| e.at(&at)),
        Some(other) => Err(InvalidInput::new(
            at,
            format!("must be a string (the metric's name), got {}", kind(other)),
        )),
    }
}

fn agg(m: &Map<String, Value>, path: &str) -> Result<Option<Agg>, InvalidInput> {
    enum_field(m, path, "agg_op", Agg::parse)
}

fn enum_field<T>(
    m: &Map<String, Value>,
    path: &str,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, InvalidInput> {
    match present(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => parse(s)
            .map(Some)
            .map_err(|msg| InvalidInput::new(join(path, key), msg)),
        Some(other) => Err(InvalidInput::new(
            join(path, key),
            format!("must be a string, got {}", kind(other)),
        )),
    }
}

/// A window size: a whole number from 1 to [`MAX_WINDOW`].
fn window(m: &Map<String, Value>, path: &str, key: &str) -> Result<Option<usize>, InvalidInput> {
    let Some(v) = present(m, key) else {
        return Ok(None);
    };
    let refuse = |msg: String| Err(InvalidInput::new(join(path, key), msg));
    let n = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u
            } else if let Some(i) = n.as_i64() {
                return refuse(format!("{key} must be at least 1, got {i}"));
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 || !f.is_finite() {
                    return refuse(format!("{key} must be a whole number, got {n}"));
                }
                if f < 1.0 {
                    return refuse(format!("{key} must be at least 1, got {n}"));
                }
                // Saturates for absurd values, which the limit below then refuses.
                f as u64
            }
        }
        other => return refuse(format!("{key} must be a whole number, got {}", kind(other))),
    };
    if n == 0 {
        return refuse(format!("{key} must be at least 1, got 0"));
    }
    if n > MAX_WINDOW as u64 {
        return refuse(format!("{key} {n} is over the limit of {MAX_WINDOW}"));
    }
    Ok(Some(n as usize))
}

/// A finite number. JSON numbers always are; strings such as `"NaN"` or `"Infinity"` (what
/// some encoders write for non-finite floats) get a message saying so.
fn number(m: &Map<String, Value>, path: &str, key: &str) -> Result<Option<f64>, InvalidInput> {
    let at = join(path, key);
    match present(m, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(InvalidInput::new(
                at,
                format!("{key} must be a finite number, got {n}"),
            )),
        },
        Some(Value::String(s)) if s.trim().parse::<f64>().is_ok_and(|f| !f.is_finite()) => Err(
            InvalidInput::new(at, format!("{key} must be a finite number, got {s:?}")),
        ),
        Some(other) => Err(InvalidInput::new(
            at,
            format!("{key} must be a number, got {}", kind(other)),
        )),
    }
}

fn positive(path: &str, key: &str, x: f64) -> Result<(), InvalidInput> {
    if x > 0.0 {
        Ok(())
    } else {
        Err(InvalidInput::new(
            join(path, key),
            format!("{key} must be greater than 0, got {}", fmt_num(x)),
        ))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
