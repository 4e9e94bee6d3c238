//! Runs: their states and the legal transitions between them, and run history rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::RunId;
use crate::names::MetricName;
use crate::InvalidInput;

/// A run's lifecycle state. `CRASHED` is accepted on input and stored as `FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunState {
    Running,
    Finished,
    Failed,
    Killed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// Parses a state as W&B clients send it: case-insensitive, `CRASHED` meaning `FAILED`.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        match s.to_ascii_uppercase().as_str() {
            "RUNNING" => Ok(Self::Running),
            "FINISHED" => Ok(Self::Finished),
            "FAILED" | "CRASHED" => Ok(Self::Failed),
            "KILLED" => Ok(Self::Killed),
            _ => Err(InvalidInput::new(
                "state",
                format!("unknown run state {s:?}; expected RUNNING, FINISHED, FAILED, CRASHED or KILLED"),
            )),
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        Self::parse(s).ok()
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Self::Running)
    }

    /// What moving from `self` to `to` means: a real transition, a repeat of the current state
    /// (an idempotent no-op, so clients may retry), or a refusal.
    pub fn transition(self, to: RunState) -> Result<Transition, InvalidTransition> {
        if self == to {
            Ok(Transition::Unchanged)
        } else if self.is_final() {
            Err(InvalidTransition { from: self, to })
        } else {
            Ok(Transition::Changed { from: self, to })
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    Changed { from: RunState, to: RunState },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("run is already {}; a run cannot leave a final state (asked for {})", from.as_str(), to.as_str())]
pub struct InvalidTransition {
    pub from: RunState,
    pub to: RunState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Run {
    #[serde(skip)]
    pub row_id: RunId,
    /// The run's id within its project (W&B's run id).
    pub id: String,
    pub entity: String,
    pub project: String,
    pub display_name: String,
    pub username: String,
    pub state: RunState,
    pub tags: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: serde_json::Value,
    /// The latest summary the `wandb` SDK sent (it replaces the whole summary each time).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub summary: serde_json::Value,
    #[serde(default)]
    pub notes: Option<String>,
    /// Someone asked the run to stop (`POST …/runs/{run}/stop`, or W&B's `stopRun`). The `wandb`
    /// SDK running it learns so from its next file_stream answer and interrupts the script; the
    /// run then ends KILLED.
    #[serde(default)]
    pub stop_requested: bool,
    /// Lines of each file the `wandb` SDK streams that herald accepted; internal.
    #[serde(skip)]
    pub lines: StreamedLines,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How many lines of each file_stream file were accepted: the next offset of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamedLines {
    pub history: i64,
    pub log: i64,
    pub events: i64,
}

/// Most rows accepted in one history batch.
pub const MAX_HISTORY_ROWS: usize = 10_000;
/// Most metrics in one history row.
pub const MAX_METRICS_PER_ROW: usize = 1_000;

/// One logged history row: a step and finite metric values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryRow {
    pub step: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub values: BTreeMap<MetricName, f64>,
}

impl HistoryRow {
    /// Parses one row; every value must be a finite JSON number.
    pub fn parse(
        step: i64,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, InvalidInput> {
        if step < 0 {
            return Err(InvalidInput::new(
                "step",
                format!("step must be ≥ 0, got {step}"),
            ));
        }
        if values.is_empty() {
            return Err(InvalidInput::new(
                "values",
                "a history row needs at least one metric value",
            ));
        }
        if values.len() > MAX_METRICS_PER_ROW {
            return Err(InvalidInput::new(
                "values",
                format!(
                    "{} metrics in one row; the limit is {MAX_METRICS_PER_ROW}",
                    values.len()
                ),
            ));
        }
        let mut out = BTreeMap::new();
        for (k, v) in values {
            let name = MetricName::parse(k)
                .map_err(|e| InvalidInput::new(format!("values.{k}"), e.message))?;
            let x = match v {
                serde_json::Value::Number(n) => n.as_f64(),
                _ => None,
            };
            match x {
                Some(x) if x.is_finite() => {
                    out.insert(name, x);
                }
                Some(_) => {
                    return Err(InvalidInput::new(
                        format!("values.{k}"),
                        "value must be a finite number",
                    ));
                }
                None => {
                    return Err(InvalidInput::new(
                        format!("values.{k}"),
                        format!(
                            "value must be a finite number, not {}",
                            crate::catalog::json_kind(v)
                        ),
                    ));
                }
            }
        }
        Ok(Self { step, values: out })
    }
}

/// Checks a run's config (a JSON object) and tags.
pub fn parse_config(v: Option<serde_json::Value>) -> Result<serde_json::Value, InvalidInput> {
    crate::catalog::parse_metadata(v)
        .map_err(|e| InvalidInput::new("config", e.message.replace("metadata", "config")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_parse_like_wandb() {
        assert_eq!(RunState::parse("crashed").unwrap(), RunState::Failed);
        assert_eq!(RunState::parse("FINISHED").unwrap(), RunState::Finished);
        assert!(RunState::parse("PAUSED").is_err());
    }

    #[test]
    fn final_states_are_final() {
        use RunState::*;
        assert_eq!(
            Running.transition(Finished),
            Ok(Transition::Changed {
                from: Running,
                to: Finished
            })
        );
        assert_eq!(Finished.transition(Finished), Ok(Transition::Unchanged));
        for from in [Finished, Failed, Killed] {
            for to in [Running, Finished, Failed, Killed] {
                if from != to {
                    assert!(from.transition(to).is_err(), "{from:?} -> {to:?}");
                }
            }
        }
    }

    #[test]
    fn history_values_must_be_finite_numbers() {
        let row = |v: serde_json::Value| HistoryRow::parse(1, v.as_object().unwrap());
        assert_eq!(row(json!({"loss": 0.5, "acc": 1})).unwrap().values.len(), 2);
        assert_eq!(row(json!({"loss": "0.5"})).unwrap_err().path, "values.loss");
        assert!(row(json!({"loss": null}))
            .unwrap_err()
            .message
            .contains("not null"));
        assert!(row(json!({})).is_err());
        assert!(HistoryRow::parse(-1, json!({"a": 1}).as_object().unwrap()).is_err());
    }
}
