//! Run event filters: what a `RUN_METRIC`, `RUN_METRIC_CHANGE`, `RUN_METRIC_ZSCORE` or
//! `RUN_STATE` automation watches, in W&B's wire format. This module owns their validation
//! (every refusal names the offending path), their typed form ([`RunEventFilter`]: the compiled
//! `run_filter` plus a [`RunCondition`]), their saved wire form ([`RunEventFilter::to_wire`],
//! which W&B clients round-trip) and their text form ([`RunCondition::describe`], the
//! `${metric_filter}` payload variable). Evaluating a metric condition over logged values is
//! `crate::window`'s job.
//!
//! The wire form:
//! `{"run_filter": "<JSON string of {\"$and\":[…]}>", "run_metric_filter": {"threshold_filter": {…}},
//! "metric_filter": null}`, or `{"run_filter": …, "run_state_filter": {"states": […]}}`.
//!
//! Leniency, where W&B's SDK is stricter or silent:
//! - enum values are case-insensitive (the SDK's `LenientStrEnum`) and their aliases are
//!   accepted (`AVG`, `ABS`, `REL`, `INC`, `DEC`, `>`/`>=`/`<`/`<=`/`==`/`!=`, `CRASHED`);
//!   `to_wire` always writes the canonical value;
//! - `cmp_op` also takes `$eq` and `$ne`, which W&B's UI offers ("Equal to", "Not equal to");
//! - `run_filter` may be a JSON string (W&B) or an object; absent or null means `{"$and":[]}`;
//! - the whole event filter may itself arrive as a JSON string, as GraphQL's `eventFilter` does;
//! - a legacy `metric_filter` (a JSON-encoded threshold filter) is read as
//!   `run_metric_filter.threshold_filter` when `run_metric_filter` is absent;
//! - a whole-number float window (`5.0`) is taken as the integer;
//! - optional keys given as `null` take their defaults.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::event::EventType;
use crate::filter::{Filter, FilterFields};
use crate::names::MetricName;
use crate::run::RunState;
use crate::InvalidInput;

/// Largest window (`window_size`, `current_window_size`, `prior_window_size`) a filter may ask
/// for. Windows are kept in memory per (automation, run), so they need a bound.
pub const MAX_WINDOW: usize = 10_000;
/// `threshold_filter.window_size` when absent (W&B's SDK default).
pub const DEFAULT_THRESHOLD_WINDOW: usize = 1;
/// `change_filter.current_window_size` when absent (W&B's SDK default).
pub const DEFAULT_CHANGE_WINDOW: usize = 1;
/// `zscore_filter.window_size` when absent (W&B's SDK and UI default).
pub const DEFAULT_ZSCORE_WINDOW: usize = 30;
/// `zscore_filter.threshold` when absent (W&B's SDK default).
pub const DEFAULT_ZSCORE_THRESHOLD: f64 = 3.0;

/// How a window of values is reduced to one (`agg_op`). `null` on the wire (no aggregation,
/// the newest value) is `Option::<Agg>::None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Agg {
    Max,
    Min,
    Average,
}

impl Agg {
    pub const ALL: [Agg; 3] = [Agg::Max, Agg::Min, Agg::Average];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Max => "MAX",
            Self::Min => "MIN",
            Self::Average => "AVERAGE",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "MAX" => Ok(Self::Max),
            "MIN" => Ok(Self::Min),
            "AVERAGE" | "AVG" => Ok(Self::Average),
            _ => Err(format!(
                "unknown agg_op {s:?}; allowed: MAX, MIN, AVERAGE (or AVG), or null for the newest value"
            )),
        }
    }
}

/// How a threshold filter compares the (aggregated) value with its threshold (`cmp_op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Ne,
}

impl CmpOp {
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Gt,
        CmpOp::Gte,
        CmpOp::Lt,
        CmpOp::Lte,
        CmpOp::Eq,
        CmpOp::Ne,
    ];

    /// The wire value (`$gt`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gt => "$gt",
            Self::Gte => "$gte",
            Self::Lt => "$lt",
            Self::Lte => "$lte",
            Self::Eq => "$eq",
            Self::Ne => "$ne",
        }
    }

    /// The mathematical symbol, for [`RunCondition::describe`].
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Gte => "≥",
            Self::Lt => "<",
            Self::Lte => "≤",
            Self::Eq => "=",
            Self::Ne => "≠",
        }
    }

    /// Whether `value <op> threshold` holds. `$eq` and `$ne` compare exactly: an average that
    /// is off by a rounding error is not equal.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Gt => value > threshold,
            Self::Gte => value >= threshold,
            Self::Lt => value < threshold,
            Self::Lte => value <= threshold,
            Self::Eq => value == threshold,
            Self::Ne => value != threshold,
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "$gt" | ">" => Ok(Self::Gt),
            "$gte" | ">=" => Ok(Self::Gte),
            "$lt" | "<" => Ok(Self::Lt),
            "$lte" | "<=" => Ok(Self::Lte),
            "$eq" | "==" => Ok(Self::Eq),
            "$ne" | "!=" => Ok(Self::Ne),
            _ => Err(format!(
                "unknown cmp_op {s:?}; allowed: $gt, $gte, $lt, $lte, $eq, $ne (or >, >=, <, <=, ==, !=)"
            )),
        }
    }
}

/// Whether a change is measured as a difference or as a fraction of the prior value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    Absolute,
    Relative,
}

impl ChangeType {
    pub const ALL: [ChangeType; 2] = [ChangeType::Absolute, ChangeType::Relative];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absolute => "ABSOLUTE",
            Self::Relative => "RELATIVE",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "ABSOLUTE" | "ABS" => Ok(Self::Absolute),
            "RELATIVE" | "REL" => Ok(Self::Relative),
            _ => Err(format!(
                "unknown change_type {s:?}; allowed: ABSOLUTE (or ABS), RELATIVE (or REL)"
            )),
        }
    }
}

/// Which way a change (or a z-score) must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeDir {
    Increase,
    Decrease,
    Any,
}

impl ChangeDir {
    pub const ALL: [ChangeDir; 3] = [ChangeDir::Increase, ChangeDir::Decrease, ChangeDir::Any];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Increase => "INCREASE",
            Self::Decrease => "DECREASE",
            Self::Any => "ANY",
        }
    }

    /// Whether `d` goes far enough in this direction: `d ≥ amount`, `d ≤ −amount` or
    /// `|d| ≥ amount` (inclusive, as W&B evaluates it).
    pub fn holds(self, d: f64, amount: f64) -> bool {
        match self {
            Self::Increase => d >= amount,
            Self::Decrease => d <= -amount,
            Self::Any => d.abs() >= amount,
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "INCREASE" | "INC" => Ok(Self::Increase),
            "DECREASE" | "DEC" => Ok(Self::Decrease),
            "ANY" => Ok(Self::Any),
            _ => Err(format!(
                "unknown change_dir {s:?}; allowed: INCREASE (or INC), DECREASE (or DEC), ANY"
            )),
        }
    }
}

/// `threshold_filter`: `agg(last window_size values) cmp_op threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdFilter {
    pub name: MetricName,
    pub agg: Option<Agg>,
    /// As given (kept so the wire form round-trips); see [`ThresholdFilter::effective_window`].
    pub window_size: usize,
    pub cmp: CmpOp,
    pub threshold: f64,
}

impl ThresholdFilter {
    /// The window actually evaluated: `window_size`, or 1 when `agg` is null (W&B: "ignored if
    /// `agg` is None").
    pub fn effective_window(&self) -> usize {
        if self.agg.is_some() {
            self.window_size
        } else {
            1
        }
    }
}

/// `change_filter`: `agg` of the newest `current_window_size` values against `agg` of the
/// `prior_window_size` values logged just before them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFilter {
    pub name: MetricName,
    pub agg: Option<Agg>,
    pub current_window_size: usize,
    pub prior_window_size: usize,
    pub change_type: ChangeType,
    pub change_dir: ChangeDir,
    /// A difference for ABSOLUTE, a fraction (0.25 = 25 %) for RELATIVE. Always > 0.
    pub change_amount: f64,
}

impl ChangeFilter {
    /// The (current, prior) windows actually evaluated. With `agg` null there is nothing to
    /// aggregate, so, as for thresholds, each window is the single value: the newest value
    /// against the one logged just before it.
    pub fn effective_windows(&self) -> (usize, usize) {
        if self.agg.is_some() {
            (self.current_window_size, self.prior_window_size)
        } else {
            (1, 1)
        }
    }
}

/// `zscore_filter`: how many standard deviations the newest value is from the mean of the
/// `window_size` values before it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZScoreFilter {
    pub name: MetricName,
    pub window_size: usize,
    /// Always > 0.
    pub threshold: f64,
    pub change_dir: ChangeDir,
}

/// `run_state_filter`: the states whose entry fires. Sorted by name, without duplicates, never
/// empty and never `KILLED`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFilter {
    pub states: Vec<RunState>,
}

impl StateFilter {
    pub fn contains(&self, state: RunState) -> bool {
        self.states.contains(&state)
    }
}

/// What a run event automation waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum RunCondition {
    Threshold(ThresholdFilter),
    Change(ChangeFilter),
    ZScore(ZScoreFilter),
    State(StateFilter),
}

impl RunCondition {
    /// The event type this condition belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Threshold(_) => EventType::RunMetric,
            Self::Change(_) => EventType::RunMetricChange,
            Self::ZScore(_) => EventType::RunMetricZscore,
            Self::State(_) => EventType::RunState,
        }
    }

    /// The metric watched, for the metric kinds.
    pub fn metric(&self) -> Option<&MetricName> {
        match self {
            Self::Threshold(f) => Some(&f.name),
            Self::Change(f) => Some(&f.name),
            Self::ZScore(f) => Some(&f.name),
            Self::State(_) => None,
        }
    }

    /// How many of a run's newest values an evaluator must replay to be in the same state as
    /// one that saw the whole history, including whether the newest point met the condition
    /// (`crate::window::Evaluator::rebuild`). 0 for `RUN_STATE`.
    pub fn history_len(&self) -> usize {
        match self {
            Self::Threshold(f) => f.effective_window(),
            Self::Change(f) => {
                let (cur, prior) = f.effective_windows();
                cur + prior
            }
            Self::ZScore(f) => f.window_size + 1,
            Self::State(_) => 0,
        }
    }

    /// The condition as text, for `${metric_filter}` and the UI: `AVERAGE(loss) > 0.5 (last 5)`
    /// (the window is shown when it holds more than one value),
    /// `loss > 0.5`, `AVERAGE(loss) decreases by 25% (last 10 vs prior 50)`,
    /// `loss changes by 0.5`, `|zscore(acc)| ≥ 2 (window 30)`, `state in [FAILED, FINISHED]`.
    pub fn describe(&self) -> String {
        let metric = |agg: Option<Agg>, name: &MetricName| match agg {
            Some(a) => format!("{}({name})", a.as_str()),
            None => name.to_string(),
        };
        match self {
            Self::Threshold(f) => {
                let mut s = format!(
                    "{} {} {}",
                    metric(f.agg, &f.name),
                    f.cmp.symbol(),
                    fmt_num(f.threshold)
                );
                if f.effective_window() > 1 {
                    let _ = write!(s, " (last {})", f.window_size);
                }
                s
            }
            Self::Change(f) => {
                let verb = match f.change_dir {
                    ChangeDir::Increase => "increases",
                    ChangeDir::Decrease => "decreases",
                    ChangeDir::Any => "changes",
                };
                let amount = match f.change_type {
                    ChangeType::Absolute => fmt_num(f.change_amount),
                    ChangeType::Relative => format!("{}%", fmt_num(f.change_amount * 100.0)),
                };
                let mut s = format!("{} {verb} by {amount}", metric(f.agg, &f.name));
                let (cur, prior) = f.effective_windows();
                if (cur, prior) != (1, 1) {
                    let _ = write!(s, " (last {cur} vs prior {prior})");
                }
                s
            }
            Self::ZScore(f) => {
                let t = fmt_num(f.threshold);
                let z = format!("zscore({})", f.name);
                let cond = match f.change_dir {
                    ChangeDir::Increase => format!("{z} ≥ {t}"),
                    ChangeDir::Decrease => format!("{z} ≤ -{t}"),
                    ChangeDir::Any => format!("|{z}| ≥ {t}"),
                };
                format!("{cond} (window {})", f.window_size)
            }
            Self::State(f) => {
                let names: Vec<_> = f.states.iter().map(|s| s.as_str()).collect();
                format!("state in [{}]", names.join(", "))
            }
        }
    }
}

/// A run event automation's filter: which runs (`run_filter`, matched against the run's
/// `display_name`, `username`, `tags` and `config.<key>`) and what must happen to them.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEventFilter {
    pub run_filter: Filter,
    pub condition: RunCondition,
}

mod parse;

impl RunEventFilter {
    /// Validates the event filter of a run event automation of type `event_type`. Error paths
    /// are relative to the event filter (`run_metric_filter.threshold_filter.window_size`), so
    /// callers re-root them with [`InvalidInput::at`].
    pub fn parse(event_type: EventType, v: &Value) -> Result<RunEventFilter, InvalidInput> {
        parse::event_filter(event_type, v)
    }

    /// W&B's saved form: `run_filter` as a JSON string of `{"$and":[…]}`, the condition under
    /// `run_metric_filter` (with `"metric_filter": null`, as the SDK sends) or
    /// `run_state_filter`. [`RunEventFilter::parse`] of it gives back an equal filter.
    pub fn to_wire(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "run_filter".into(),
            Value::String(self.run_filter.to_wire_string()),
        );
        let (key, inner) = match &self.condition {
            RunCondition::State(f) => {
                let states = f.states.iter().map(|s| Value::from(s.as_str())).collect();
                m.insert(
                    "run_state_filter".into(),
                    obj(vec![("states", Value::Array(states))]),
                );
                return Value::Object(m);
            }
            RunCondition::Threshold(f) => (
                "threshold_filter",
                obj(vec![
                    ("name", Value::from(f.name.as_str())),
                    ("agg_op", agg_wire(f.agg)),
                    ("window_size", Value::from(f.window_size)),
                    ("cmp_op", Value::from(f.cmp.as_str())),
                    ("threshold", num_wire(f.threshold)),
                ]),
            ),
            RunCondition::Change(f) => (
                "change_filter",
                obj(vec![
                    ("name", Value::from(f.name.as_str())),
                    ("agg_op", agg_wire(f.agg)),
                    ("current_window_size", Value::from(f.current_window_size)),
                    ("prior_window_size", Value::from(f.prior_window_size)),
                    ("change_type", Value::from(f.change_type.as_str())),
                    ("change_dir", Value::from(f.change_dir.as_str())),
                    ("change_amount", num_wire(f.change_amount)),
                ]),
            ),
            RunCondition::ZScore(f) => (
                "zscore_filter",
                obj(vec![
                    ("name", Value::from(f.name.as_str())),
                    ("window_size", Value::from(f.window_size)),
                    ("threshold", num_wire(f.threshold)),
                    ("change_dir", Value::from(f.change_dir.as_str())),
                ]),
            ),
        };
        m.insert("run_metric_filter".into(), obj(vec![(key, inner)]));
        m.insert("metric_filter".into(), Value::Null);
        Value::Object(m)
    }

    /// [`RunEventFilter::to_wire`] as a JSON string, the form GraphQL's `eventFilter` travels in.
    pub fn to_wire_string(&self) -> String {
        self.to_wire().to_string()
    }

    pub fn event_type(&self) -> EventType {
        self.condition.event_type()
    }

    /// [`RunCondition::describe`].
    pub fn describe(&self) -> String {
        self.condition.describe()
    }
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn agg_wire(agg: Option<Agg>) -> Value {
    agg.map_or(Value::Null, |a| Value::from(a.as_str()))
}

/// A whole number is written as a JSON integer (`2`, as W&B's SDK writes `threshold=2`), any
/// other value as a float, so the examples W&B clients send come back unchanged.
fn num_wire(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

/// A number for people: at most 12 significant digits, so `0.1 * 100` reads `10`, not
/// `10.000000000000002`, and never in exponent notation.
pub(crate) fn fmt_num(x: f64) -> String {
    let rounded: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    // `+ 0.0` turns -0 into 0.
    format!("{}", rounded + 0.0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(t: EventType, v: Value) -> Result<RunEventFilter, InvalidInput> {
        RunEventFilter::parse(t, &v)
    }

    fn refused(t: EventType, v: Value) -> InvalidInput {
        match parse(t, v.clone()) {
            Ok(f) => panic!("{v} was accepted as {f:?}"),
            Err(e) => e,
        }
    }

    /// Parses, then checks that the saved form parses back to the same filter and is stable.
    fn round_trip(t: EventType, v: &Value) -> RunEventFilter {
        let f = RunEventFilter::parse(t, v).unwrap_or_else(|e| panic!("{v}: {e}"));
        let wire = f.to_wire();
        let again = RunEventFilter::parse(t, &wire).unwrap_or_else(|e| panic!("{wire}: {e}"));
        assert_eq!(again, f, "{wire}");
        assert_eq!(again.to_wire(), wire);
        let from_string = RunEventFilter::parse(t, &Value::String(f.to_wire_string())).unwrap();
        assert_eq!(from_string, f);
        f
    }

    fn threshold_event(tf: Value) -> Value {
        json!({"run_filter": "{\"$and\":[]}", "run_metric_filter": {"threshold_filter": tf}, "metric_filter": null})
    }

    fn change_event(cf: Value) -> Value {
        json!({"run_filter": "{\"$and\":[]}", "run_metric_filter": {"change_filter": cf}, "metric_filter": null})
    }

    fn zscore_event(zf: Value) -> Value {
        json!({"run_filter": "{\"$and\":[]}", "run_metric_filter": {"zscore_filter": zf}, "metric_filter": null})
    }

    #[test]
    fn reference_threshold_example_round_trips_exactly() {
        let v = json!({
            "run_filter": "{\"$and\":[{\"display_name\":{\"$contains\":\"my-run\"}}]}",
            "run_metric_filter": {"threshold_filter": {"name":"loss","agg_op":"AVERAGE","window_size":5,"cmp_op":"$gt","threshold":0.5}},
            "metric_filter": null
        });
        let f = round_trip(EventType::RunMetric, &v);
        assert_eq!(f.to_wire(), v);
        assert_eq!(
            f.condition,
            RunCondition::Threshold(ThresholdFilter {
                name: MetricName::parse("loss").unwrap(),
                agg: Some(Agg::Average),
                window_size: 5,
                cmp: CmpOp::Gt,
                threshold: 0.5,
            })
        );
        assert!(f.run_filter.matches(&json!({"display_name": "a-my-run-3"})));
        assert!(!f.run_filter.matches(&json!({"display_name": "other"})));
        assert_eq!(f.describe(), "AVERAGE(loss) > 0.5 (last 5)");
        assert_eq!(f.event_type(), EventType::RunMetric);
        assert_eq!(f.condition.history_len(), 5);
    }

    #[test]
    fn reference_single_value_example_round_trips_exactly() {
        let v = threshold_event(
            json!({"name":"acc","agg_op":null,"window_size":1,"cmp_op":"$gte","threshold":0.9}),
        );
        let f = round_trip(EventType::RunMetric, &v);
        assert_eq!(f.to_wire(), v);
        assert_eq!(f.describe(), "acc ≥ 0.9");
        assert!(f.run_filter.is_empty());
    }

    #[test]
    fn reference_change_example_round_trips_exactly() {
        let v = change_event(
            json!({"name":"loss","agg_op":"AVERAGE","current_window_size":10,"change_amount":0.25,"prior_window_size":10,"change_type":"RELATIVE","change_dir":"DECREASE"}),
        );
        let f = round_trip(EventType::RunMetricChange, &v);
        assert_eq!(f.to_wire(), v);
        assert_eq!(
            f.describe(),
            "AVERAGE(loss) decreases by 25% (last 10 vs prior 10)"
        );
        assert_eq!(f.condition.history_len(), 20);
    }

    #[test]
    fn reference_zscore_example_round_trips_exactly() {
        let v =
            zscore_event(json!({"name":"acc","window_size":30,"threshold":2,"change_dir":"ANY"}));
        let f = round_trip(EventType::RunMetricZscore, &v);
        assert_eq!(f.to_wire(), v);
        assert_eq!(f.describe(), "|zscore(acc)| ≥ 2 (window 30)");
        assert_eq!(f.condition.history_len(), 31);
    }

    #[test]
    fn reference_state_example_round_trips_exactly() {
        let v = json!({"run_filter":"{\"$and\":[]}","run_state_filter":{"states":["FAILED","FINISHED"]}});
        let f = round_trip(EventType::RunState, &v);
        assert_eq!(f.to_wire(), v);
        assert_eq!(f.describe(), "state in [FAILED, FINISHED]");
        assert_eq!(f.condition.metric(), None);
        assert_eq!(f.condition.history_len(), 0);
    }

    #[test]
    fn thresholds_of_seventeen_digits_survive_the_saved_form() {
        // Found by fuzzing: the shortest form of 7.777777777777777e127 read back as
        // 7.777777777777776e127, so the saved filter was not the filter the user gave.
        let text = r#"{"run_filter":"{\"$and\":[]}","run_metric_filter":{"threshold_filter":{"name":"loss","agg_op":"AVERAGE","window_size":7,"cmp_op":"$gt","threshold":77777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777770.5}},"metric_filter":null}"#;
        let f = round_trip(EventType::RunMetric, &Value::String(text.into()));
        let RunCondition::Threshold(t) = &f.condition else {
            panic!("{f:?}")
        };
        assert_eq!(t.threshold, 7.777777777777777e127);
        let wire = f.to_wire_string();
        assert!(wire.contains("7.777777777777777e+127"), "{wire}");
        for x in [7.777777777777777e127, 1.2345678901234567e-300, 0.1 + 0.2] {
            let v = threshold_event(json!({"name": "m", "cmp_op": "$lt", "threshold": x}));
            let f = round_trip(EventType::RunMetric, &Value::String(v.to_string()));
            assert_eq!(f.condition, round_trip(EventType::RunMetric, &v).condition);
        }
    }

    #[test]
    fn defaults_aliases_and_leniency() {
        // run_filter absent, as an object, and the whole filter as a JSON string.
        let f = parse(
            EventType::RunMetric,
            json!({"run_metric_filter": {"threshold_filter": {"name": "loss", "cmp_op": "<", "threshold": 1}}}),
        )
        .unwrap();
        assert!(f.run_filter.is_empty());
        let RunCondition::Threshold(t) = &f.condition else {
            panic!()
        };
        assert_eq!((t.agg, t.window_size, t.cmp), (None, 1, CmpOp::Lt));
        assert_eq!(f.describe(), "loss < 1");

        let f = parse(
            EventType::RunMetric,
            json!({"run_filter": {"$and": [{"username": "ada"}]},
                   "run_metric_filter": {"threshold_filter": {"name": "acc", "agg_op": "avg", "window_size": 3.0, "cmp_op": "!=", "threshold": -2.5}}}),
        )
        .unwrap();
        assert!(f.run_filter.matches(&json!({"username": "ada"})));
        let RunCondition::Threshold(t) = &f.condition else {
            panic!()
        };
        assert_eq!(
            (t.agg, t.window_size, t.cmp),
            (Some(Agg::Average), 3, CmpOp::Ne)
        );
        assert_eq!(f.describe(), "AVERAGE(acc) ≠ -2.5 (last 3)");

        for (sym, op) in [
            (">", CmpOp::Gt),
            (">=", CmpOp::Gte),
            ("<", CmpOp::Lt),
            ("<=", CmpOp::Lte),
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
        ] {
            let f = round_trip(
                EventType::RunMetric,
                &threshold_event(json!({"name": "m", "cmp_op": sym, "threshold": 0})),
            );
            let RunCondition::Threshold(t) = f.condition else {
                panic!()
            };
            assert_eq!(t.cmp, op);
            let back = Value::String(op.as_str().into());
            assert_eq!(CmpOp::parse(back.as_str().unwrap()).unwrap(), op);
        }

        // agg_op null: the window is 1 whatever window_size says, but window_size round-trips.
        let f = round_trip(
            EventType::RunMetric,
            &threshold_event(
                json!({"name": "m", "agg_op": null, "window_size": 7, "cmp_op": "$gt", "threshold": 1}),
            ),
        );
        let RunCondition::Threshold(t) = &f.condition else {
            panic!()
        };
        assert_eq!((t.window_size, t.effective_window()), (7, 1));
        assert_eq!(f.condition.history_len(), 1);

        // Change: window_size alias, prior defaults to current, ABS/INC aliases.
        let f = round_trip(
            EventType::RunMetricChange,
            &change_event(
                json!({"name": "loss", "agg_op": "MIN", "window_size": 4, "change_type": "abs", "change_dir": "INC", "change_amount": 0.5}),
            ),
        );
        let RunCondition::Change(c) = &f.condition else {
            panic!()
        };
        assert_eq!((c.current_window_size, c.prior_window_size), (4, 4));
        assert_eq!(
            (c.change_type, c.change_dir),
            (ChangeType::Absolute, ChangeDir::Increase)
        );
        assert_eq!(
            f.describe(),
            "MIN(loss) increases by 0.5 (last 4 vs prior 4)"
        );

        let f = round_trip(
            EventType::RunMetricChange,
            &change_event(
                json!({"name": "loss", "current_window_size": 3, "window_size": 3, "prior_window_size": 9, "change_type": "REL", "change_dir": "DEC", "change_amount": 0.1}),
            ),
        );
        let RunCondition::Change(c) = &f.condition else {
            panic!()
        };
        assert_eq!((c.current_window_size, c.prior_window_size), (3, 9));
        assert_eq!(c.effective_windows(), (1, 1));
        assert_eq!(f.describe(), "loss decreases by 10%");
        let f = parse(
            EventType::RunMetricChange,
            change_event(json!({"name": "loss", "change_type": "ABSOLUTE", "change_dir": "ANY", "change_amount": 0.5})),
        )
        .unwrap();
        assert_eq!(f.describe(), "loss changes by 0.5");

        // Z-score defaults.
        let f = round_trip(
            EventType::RunMetricZscore,
            &zscore_event(json!({"name": "acc"})),
        );
        assert_eq!(
            f.condition,
            RunCondition::ZScore(ZScoreFilter {
                name: MetricName::parse("acc").unwrap(),
                window_size: 30,
                threshold: 3.0,
                change_dir: ChangeDir::Any,
            })
        );
        let f = parse(
            EventType::RunMetricZscore,
            zscore_event(json!({"name": "acc", "window_size": 5, "threshold": 1.5, "change_dir": "decrease"})),
        )
        .unwrap();
        assert_eq!(f.describe(), "zscore(acc) ≤ -1.5 (window 5)");
        let f = parse(
            EventType::RunMetricZscore,
            zscore_event(json!({"name": "acc", "threshold": 2, "change_dir": "INCREASE"})),
        )
        .unwrap();
        assert_eq!(f.describe(), "zscore(acc) ≥ 2 (window 30)");

        // States: a single value, CRASHED, duplicates, any case; sorted and deduplicated.
        let f = round_trip(
            EventType::RunState,
            &json!({"run_state_filter": {"states": ["finished", "CRASHED", "FAILED", "RUNNING"]}}),
        );
        let RunCondition::State(s) = &f.condition else {
            panic!()
        };
        assert_eq!(
            s.states,
            vec![RunState::Failed, RunState::Finished, RunState::Running]
        );
        assert!(s.contains(RunState::Failed) && !s.contains(RunState::Killed));
        let f = parse(
            EventType::RunState,
            json!({"run_state_filter": {"states": "CRASHED"}, "metric_filter": null}),
        )
        .unwrap();
        assert_eq!(f.describe(), "state in [FAILED]");

        // Legacy metric_filter: a JSON-encoded threshold filter.
        let f = parse(
            EventType::RunMetric,
            json!({"run_filter": "{\"$and\":[]}", "metric_filter": "{\"name\":\"loss\",\"cmp_op\":\"$lt\",\"threshold\":0.1}"}),
        )
        .unwrap();
        assert_eq!(f.describe(), "loss < 0.1");
        assert_eq!(f.to_wire()["metric_filter"], Value::Null);
        assert!(f.to_wire()["run_metric_filter"]["threshold_filter"].is_object());

        // Other kinds' keys may be present as null.
        parse(
            EventType::RunMetric,
            json!({"run_metric_filter": {"threshold_filter": {"name": "m", "cmp_op": "$gt", "threshold": 1}, "change_filter": null, "zscore_filter": null}}),
        )
        .unwrap();
    }

    #[test]
    fn refusals_name_the_path_and_the_problem() {
        use EventType::*;
        let tf = |extra: Value| {
            let mut base = json!({"name": "loss", "agg_op": "MAX", "window_size": 5, "cmp_op": "$gt", "threshold": 0.5});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            threshold_event(base)
        };
        let cf = |extra: Value| {
            let mut base = json!({"name": "loss", "agg_op": "AVERAGE", "current_window_size": 5, "change_type": "ABSOLUTE", "change_dir": "ANY", "change_amount": 0.5});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            change_event(base)
        };
        let zf = |extra: Value| {
            let mut base = json!({"name": "acc"});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            zscore_event(base)
        };
        let tp = "run_metric_filter.threshold_filter";
        let cp = "run_metric_filter.change_filter";
        let zp = "run_metric_filter.zscore_filter";
        let cases: Vec<(EventType, Value, String, &str)> = vec![
            (RunMetric, tf(json!({"window_size": 0})), format!("{tp}.window_size"), "at least 1, got 0"),
            (RunMetric, tf(json!({"window_size": -3})), format!("{tp}.window_size"), "at least 1, got -3"),
            (RunMetric, tf(json!({"window_size": 2.5})), format!("{tp}.window_size"), "whole number, got 2.5"),
            (RunMetric, tf(json!({"window_size": "5"})), format!("{tp}.window_size"), "whole number, got a string"),
            (RunMetric, tf(json!({"window_size": 20000})), format!("{tp}.window_size"), "window_size 20000 is over the limit of 10000"),
            (RunMetric, tf(json!({"window_size": 1e300})), format!("{tp}.window_size"), "over the limit of 10000"),
            (RunMetric, tf(json!({"threshold": "NaN"})), format!("{tp}.threshold"), "finite number, got \"NaN\""),
            (RunMetric, tf(json!({"threshold": "-Infinity"})), format!("{tp}.threshold"), "finite number"),
            (RunMetric, tf(json!({"threshold": "0.5"})), format!("{tp}.threshold"), "must be a number, got a string"),
            (RunMetric, tf(json!({"threshold": true})), format!("{tp}.threshold"), "must be a number, got a boolean"),
            (RunMetric, tf(json!({"threshold": null})), format!("{tp}.threshold"), "missing"),
            (RunMetric, tf(json!({"agg_op": "MEDIAN"})), format!("{tp}.agg_op"), "allowed: MAX, MIN, AVERAGE"),
            (RunMetric, tf(json!({"agg_op": 3})), format!("{tp}.agg_op"), "must be a string"),
            (RunMetric, tf(json!({"cmp_op": "$in"})), format!("{tp}.cmp_op"), "allowed: $gt, $gte, $lt, $lte, $eq, $ne"),
            (RunMetric, tf(json!({"cmp_op": null})), format!("{tp}.cmp_op"), "missing"),
            (RunMetric, tf(json!({"name": ""})), format!("{tp}.name"), "must not be empty"),
            (RunMetric, tf(json!({"name": "x".repeat(257)})), format!("{tp}.name"), "the limit is 256"),
            (RunMetric, tf(json!({"name": null})), format!("{tp}.name"), "missing"),
            (RunMetric, tf(json!({"name": 7})), format!("{tp}.name"), "must be a string"),
            (RunMetric, tf(json!({"window": 5})), format!("{tp}.window"), "unknown key \"window\"; allowed keys: name, agg_op, window_size, cmp_op, threshold"),
            (RunMetricChange, cf(json!({"change_amount": 0})), format!("{cp}.change_amount"), "greater than 0, got 0"),
            (RunMetricChange, cf(json!({"change_amount": -0.5})), format!("{cp}.change_amount"), "greater than 0, got -0.5"),
            (RunMetricChange, cf(json!({"change_amount": "inf"})), format!("{cp}.change_amount"), "finite number"),
            (RunMetricChange, cf(json!({"change_type": "PERCENT"})), format!("{cp}.change_type"), "allowed: ABSOLUTE (or ABS), RELATIVE (or REL)"),
            (RunMetricChange, cf(json!({"change_type": null})), format!("{cp}.change_type"), "missing"),
            (RunMetricChange, cf(json!({"change_dir": "UP"})), format!("{cp}.change_dir"), "allowed: INCREASE (or INC), DECREASE (or DEC), ANY"),
            (RunMetricChange, cf(json!({"prior_window_size": 0})), format!("{cp}.prior_window_size"), "at least 1"),
            (RunMetricChange, cf(json!({"prior_window_size": 10001})), format!("{cp}.prior_window_size"), "prior_window_size 10001 is over the limit of 10000"),
            (RunMetricChange, cf(json!({"current_window_size": 12000})), format!("{cp}.current_window_size"), "over the limit"),
            (RunMetricChange, cf(json!({"window_size": 6})), format!("{cp}.window_size"), "alias of current_window_size; they disagree (6 vs 5)"),
            (RunMetricChange, cf(json!({"threshold": 1})), format!("{cp}.threshold"), "unknown key"),
            (RunMetricZscore, zf(json!({"threshold": 0})), format!("{zp}.threshold"), "greater than 0, got 0"),
            (RunMetricZscore, zf(json!({"threshold": -2})), format!("{zp}.threshold"), "greater than 0"),
            (RunMetricZscore, zf(json!({"window_size": 0})), format!("{zp}.window_size"), "at least 1"),
            (RunMetricZscore, zf(json!({"change_dir": "SIDEWAYS"})), format!("{zp}.change_dir"), "allowed"),
            (RunMetricZscore, zf(json!({"agg_op": "MAX"})), format!("{zp}.agg_op"), "unknown key"),
            (RunMetric, json!({"run_filter": "{not json", "run_metric_filter": {"threshold_filter": {"name": "m", "cmp_op": "$gt", "threshold": 1}}}), "run_filter".into(), "not valid JSON"),
            (RunMetric, json!({"run_filter": "{\"$and\":[{\"alias\":\"x\"}]}", "run_metric_filter": {"threshold_filter": {"name": "m", "cmp_op": "$gt", "threshold": 1}}}), "run_filter.$and[0].alias".into(), "unknown field"),
            (RunMetric, json!({"run_filter": {"$where": "1"}, "run_metric_filter": {"threshold_filter": {"name": "m", "cmp_op": "$gt", "threshold": 1}}}), "run_filter.$where".into(), "unknown operator \"$where\""),
            (RunMetric, json!({"run_filter": 5, "run_metric_filter": {"threshold_filter": {"name": "m", "cmp_op": "$gt", "threshold": 1}}}), "run_filter".into(), "JSON string or an object"),
            (RunMetric, json!({"run_filter": "{\"$and\":[]}"}), "run_metric_filter".into(), "missing; RUN_METRIC automations need {\"threshold_filter\""),
            (RunMetric, json!({"run_metric_filter": {"change_filter": {"name": "m"}}}), "run_metric_filter.change_filter".into(), "belongs to RUN_METRIC_CHANGE automations; this automation's event is RUN_METRIC, which takes threshold_filter"),
            (RunMetricZscore, json!({"run_metric_filter": {}}), "run_metric_filter.zscore_filter".into(), "missing"),
            (RunMetric, json!({"run_metric_filter": {"median_filter": {}}}), "run_metric_filter.median_filter".into(), "unknown key"),
            (RunMetric, json!({"run_metric_filter": {"threshold_filter": {"name": "m", "cmp_op": "$gt", "threshold": 1}}, "extra": 1}), "extra".into(), "unknown key \"extra\"; allowed keys: run_filter, run_metric_filter, metric_filter"),
            (RunMetric, json!({"run_metric_filter": {"threshold_filter": {"name": "m", "cmp_op": "$gt", "threshold": 1}}, "metric_filter": "{}"}), "metric_filter".into(), "give run_metric_filter only"),
            (RunMetricChange, json!({"metric_filter": "{}"}), "metric_filter".into(), "legacy threshold field"),
            (RunMetric, json!({"run_metric_filter": "threshold"}), "run_metric_filter".into(), "must be an object, got a string"),
            (RunMetric, json!([1]), "".into(), "must be an object, got an array"),
            (RunMetric, json!("{nope"), "".into(), "event filter is not valid JSON"),
            (RunState, json!({"run_state_filter": {"states": []}}), "run_state_filter.states".into(), "at least one of RUNNING, FINISHED, FAILED"),
            (RunState, json!({"run_state_filter": {"states": ["FAILED", "KILLED"]}}), "run_state_filter.states[1]".into(), "KILLED never triggers"),
            (RunState, json!({"run_state_filter": {"states": ["PAUSED"]}}), "run_state_filter.states[0]".into(), "unknown run state \"PAUSED\""),
            (RunState, json!({"run_state_filter": {"states": [1]}}), "run_state_filter.states[0]".into(), "must be a run state string"),
            (RunState, json!({"run_state_filter": {"states": null}}), "run_state_filter.states".into(), "missing"),
            (RunState, json!({"run_state_filter": {"state": ["FAILED"]}}), "run_state_filter.state".into(), "unknown key"),
            (RunState, json!({"run_filter": "{\"$and\":[]}"}), "run_state_filter".into(), "missing"),
            (RunState, json!({"run_state_filter": {"states": ["FAILED"]}, "run_metric_filter": {}}), "run_metric_filter".into(), "unknown key"),
            (RunState, json!({"run_state_filter": {"states": ["FAILED"]}, "metric_filter": "{}"}), "metric_filter".into(), "take no metric filter"),
            (CreateArtifact, json!({}), "".into(), "CREATE_ARTIFACT is not a run event"),
        ];
        for (t, v, path, fragment) in cases {
            let e = refused(t, v.clone());
            assert_eq!(e.path, path, "{v}: {e}");
            assert!(
                e.message.contains(fragment),
                "{v}: message {:?} lacks {fragment:?}",
                e.message
            );
        }
    }

    #[test]
    fn describe_formats_numbers_for_people() {
        assert_eq!(fmt_num(0.1 * 100.0), "10");
        assert_eq!(fmt_num(12.5), "12.5");
        assert_eq!(fmt_num(-3.0), "-3");
        assert_eq!(fmt_num(1e-7), "0.0000001");
        assert_eq!(fmt_num(-0.0), "0");
        let f = parse(
            EventType::RunMetric,
            threshold_event(
                json!({"name": "loss", "agg_op": "MAX", "window_size": 1, "cmp_op": "$lte", "threshold": 2}),
            ),
        )
        .unwrap();
        assert_eq!(f.describe(), "MAX(loss) ≤ 2");
        let f = parse(
            EventType::RunMetricChange,
            change_event(json!({"name": "acc", "agg_op": "MAX", "current_window_size": 2, "prior_window_size": 8, "change_type": "RELATIVE", "change_dir": "INCREASE", "change_amount": 0.125})),
        )
        .unwrap();
        assert_eq!(
            f.describe(),
            "MAX(acc) increases by 12.5% (last 2 vs prior 8)"
        );
    }
}
