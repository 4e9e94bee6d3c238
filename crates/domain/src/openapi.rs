//! Hand-written OpenAPI schemas for the parts of an automation (the engine's `AutomationInput`)
//! that arrive as free JSON (`serde_json::Value`) and are checked by hand-written parsing, so no
//! derive can state their shape: the event filter (a W&B wire filter, a run event filter, or
//! either as text) and a webhook payload (an object or its text).

use utoipa::openapi::schema::{
    AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// A JSON object, or a string holding one (W&B sends payloads as text).
pub struct ObjectOrText;

impl PartialSchema for ObjectOrText {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Object)))
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
            .description(Some(
                "A JSON object, or a string holding the text of one (as W&B sends it).",
            ))
            .into()
    }
}

impl ToSchema for ObjectOrText {}

/// An automation's event filter: for artifact and collection events, a filter in W&B's wire
/// format (`{"$or": [{"$and": [...]}]}`); for run events, a [`RunEventFilter`]; either may also
/// come as a string holding it. Absent or null: every event of the type in scope.
pub struct EventFilter;

impl PartialSchema for EventFilter {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(RunEventFilter::name()))
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Object)))
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
            .description(Some(
                "For artifact and collection events, a filter in W&B's wire format \
                 (`{\"$or\": [{\"$and\": [...]}]}`); for run events, a RunEventFilter; either may \
                 also be a string holding it. Absent or null: every event of the type in scope.",
            ))
            .into()
    }
}

impl ToSchema for EventFilter {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((RunEventFilter::name().into(), RunEventFilter::schema()));
        RunEventFilter::schemas(schemas);
    }
}

/// The filter of a `RUN_METRIC`, `RUN_METRIC_CHANGE`, `RUN_METRIC_ZSCORE` or `RUN_STATE`
/// automation. Enum values are case-insensitive; a whole-number float window (`5.0`) is taken.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunEventFilter {
    /// Which runs: `{"$and": [...]}` over `display_name`, `username` and `tags`, or a string
    /// holding it; absent or null means every run.
    #[schema(value_type = Option<Object>)]
    run_filter: Option<serde_json::Value>,
    /// Metric automations: exactly one of the three conditions.
    run_metric_filter: Option<RunMetricFilter>,
    /// `RUN_STATE` automations: `{"states": ["FINISHED", "FAILED"]}` (RUNNING, FINISHED, FAILED).
    #[schema(value_type = Option<Object>)]
    run_state_filter: Option<serde_json::Value>,
    /// W&B's legacy threshold filter as a string; send null.
    metric_filter: Option<String>,
}

/// One metric condition.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunMetricFilter {
    threshold_filter: Option<ThresholdFilter>,
    change_filter: Option<ChangeFilter>,
    zscore_filter: Option<ZScoreFilter>,
}

/// `agg_op` of the newest `window_size` values compared (`cmp_op`) with `threshold`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ThresholdFilter {
    /// The metric (1 to 256 characters).
    #[schema(min_length = 1, max_length = 256)]
    name: String,
    /// MAX, MIN or AVERAGE; null compares the newest value alone.
    agg_op: Option<String>,
    /// Values aggregated: 1 to 10000; default 1.
    #[schema(minimum = 1, maximum = 10000, multiple_of = 1)]
    window_size: Option<f64>,
    /// `$gt`, `$gte`, `$lt`, `$lte`, `$eq` or `$ne` (or `>`, `>=`, …).
    cmp_op: String,
    threshold: f64,
}

/// `agg_op` of the newest `current_window_size` values against the `prior_window_size` values
/// before them, changing by `change_amount`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChangeFilter {
    #[schema(min_length = 1, max_length = 256)]
    name: String,
    agg_op: Option<String>,
    /// 1 to 10000; default 1.
    #[schema(minimum = 1, maximum = 10000, multiple_of = 1)]
    current_window_size: Option<f64>,
    /// W&B's older name for `current_window_size`.
    #[schema(minimum = 1, maximum = 10000, multiple_of = 1)]
    window_size: Option<f64>,
    /// 1 to 10000; default `current_window_size`.
    #[schema(minimum = 1, maximum = 10000, multiple_of = 1)]
    prior_window_size: Option<f64>,
    /// ABSOLUTE or RELATIVE.
    change_type: String,
    /// INCREASE, DECREASE or ANY.
    change_dir: String,
    change_amount: f64,
}

/// The newest value's z-score against the `window_size` values before it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ZScoreFilter {
    #[schema(min_length = 1, max_length = 256)]
    name: String,
    /// 1 to 10000; default 30.
    #[schema(minimum = 1, maximum = 10000, multiple_of = 1)]
    window_size: Option<f64>,
    /// Default 3.
    threshold: Option<f64>,
    /// INCREASE, DECREASE or ANY.
    change_dir: Option<String>,
}
