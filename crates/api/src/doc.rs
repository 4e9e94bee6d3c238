//! Schemas and parameters that exist only for the OpenAPI document: the naming rules as
//! patterns with their length bounds, and the path parameters of each kind of route, so that
//! the document states the limits the server enforces without every handler repeating them.
//! The patterns are written for both ECMA-262 and Python's `re`, which clients and test
//! generators use; `[\x00-\x1f\x7f-\x9f]` is what Rust calls a control character.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::IntoParams;

/// A string schema with a pattern and length bounds, named after the type.
macro_rules! string_rule {
    ($(#[doc = $doc:literal])+ $name:ident, $pattern:expr, $min:expr, $max:expr) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .description(Some(concat!($($doc, "\n"),+).trim()))
                    .pattern(Some($pattern))
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_rule!(
    /// An entity, user, project, collection, artifact type or run name: 1 to 128 letters,
    /// digits, `-`, `_` or `.`, and neither `.` nor `..`.
    Identifier,
    r"^[A-Za-z0-9._-]{1,128}$",
    1,
    128
);

string_rule!(
    /// A registry's short name (`model` for the project `wandb-registry-model`): an identifier
    /// short enough for its project name to be at most 128 characters.
    RegistryName,
    r"^[A-Za-z0-9._-]{1,113}$",
    1,
    113
);

string_rule!(
    /// An alias or tag: 1 to 128 characters without `/`, `:` or control characters, not
    /// starting or ending with whitespace. Aliases also cannot be `latest` (herald moves it) or
    /// of the form `vN` (version indexes). As a version reference in a path, `vN` or an alias.
    Label,
    r"^[^/:\s\x00-\x1f\x7f-\x9f](?:[^/:\x00-\x1f\x7f-\x9f]{0,126}[^/:\s\x00-\x1f\x7f-\x9f])?$",
    1,
    128
);

string_rule!(
    /// A secret's name: a letter or `_`, then letters, digits or `_`; at most 128 characters.
    /// `ACCESS_TOKEN` is reserved.
    SecretName,
    r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
    1,
    128
);

string_rule!(
    /// An integration's name: at most 64 characters, words of letters, digits, `-` and `_`
    /// separated by spaces.
    IntegrationName,
    r"^[-\w]+(?: +[-\w]+)*$",
    1,
    64
);

string_rule!(
    /// An automation's name: 1 to 255 characters without control characters, not starting or
    /// ending with whitespace; unique in its entity.
    AutomationName,
    r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]{0,253}[^\s\x00-\x1f\x7f-\x9f])?$",
    1,
    255
);

string_rule!(
    /// A run's display name: 1 to 256 characters without control characters.
    DisplayName,
    r"^[^\x00-\x1f\x7f-\x9f]{1,256}$",
    1,
    256
);

/// Path parameters: `{entity}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EntityPath {
    /// The entity (team, organization or user).
    #[param(value_type = Identifier)]
    entity: String,
}

/// Path parameters: `{entity}/{username}` of a member.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct MemberPath {
    #[param(value_type = Identifier)]
    entity: String,
    /// The member's username.
    #[param(value_type = Identifier)]
    username: String,
}

/// Path parameters: `{entity}/{name}` of a secret.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SecretPath {
    #[param(value_type = Identifier)]
    entity: String,
    #[param(value_type = SecretName)]
    name: String,
}

/// Path parameters: `{entity}/{project}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ProjectPath {
    #[param(value_type = Identifier)]
    entity: String,
    /// The project, or a registry's project (`wandb-registry-NAME`).
    #[param(value_type = Identifier)]
    project: String,
}

/// Path parameters: `{entity}/{project}/{run}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct RunPath {
    #[param(value_type = Identifier)]
    entity: String,
    #[param(value_type = Identifier)]
    project: String,
    /// The run's id.
    #[param(value_type = Identifier)]
    run: String,
}

/// Path parameters: `{entity}/{project}/{collection}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CollectionPath {
    #[param(value_type = Identifier)]
    entity: String,
    #[param(value_type = Identifier)]
    project: String,
    /// The artifact collection.
    #[param(value_type = Identifier)]
    collection: String,
}

/// Path parameters: `{entity}/{project}/{collection}/{tag}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CollectionTagPath {
    #[param(value_type = Identifier)]
    entity: String,
    #[param(value_type = Identifier)]
    project: String,
    #[param(value_type = Identifier)]
    collection: String,
    #[param(value_type = Label)]
    tag: String,
}

/// Path parameters: `{entity}/{project}/{collection}/{version}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct VersionPath {
    #[param(value_type = Identifier)]
    entity: String,
    #[param(value_type = Identifier)]
    project: String,
    #[param(value_type = Identifier)]
    collection: String,
    /// `vN` or an alias (`latest`, `production`).
    #[param(value_type = Label)]
    version: String,
}

/// Path parameters: `{entity}/{project}/{collection}/{version}/{alias}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct VersionAliasPath {
    #[param(value_type = Identifier)]
    entity: String,
    #[param(value_type = Identifier)]
    project: String,
    #[param(value_type = Identifier)]
    collection: String,
    /// `vN` or an alias.
    #[param(value_type = Label)]
    version: String,
    #[param(value_type = Label)]
    alias: String,
}

/// Path parameters: `{entity}/{project}/{collection}/{version}/{tag}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct VersionTagPath {
    #[param(value_type = Identifier)]
    entity: String,
    #[param(value_type = Identifier)]
    project: String,
    #[param(value_type = Identifier)]
    collection: String,
    /// `vN` or an alias.
    #[param(value_type = Label)]
    version: String,
    #[param(value_type = Label)]
    tag: String,
}

/// Path parameters: `{id}` of an integration, automation or execution.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct IdPath {
    id: i64,
}

/// A JSON object, or a string holding one (W&B sends payloads as text).
pub struct ObjectOrText;

impl utoipa::PartialSchema for ObjectOrText {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::OneOfBuilder;
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Object)))
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
            .description(Some(
                "A JSON object, or a string holding the text of one (as W&B sends it).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ObjectOrText {}

/// An automation's event filter: for artifact and collection events, a filter in W&B's wire
/// format (`{"$or": [{"$and": [...]}]}`); for run events, a [`RunEventFilter`]; either may also
/// come as a string holding it. Absent or null: every event of the type in scope.
pub struct EventFilter;

impl utoipa::PartialSchema for EventFilter {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        use utoipa::openapi::Ref;
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("RunEventFilter"))
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

impl utoipa::ToSchema for EventFilter {}

/// The filter of a `RUN_METRIC`, `RUN_METRIC_CHANGE`, `RUN_METRIC_ZSCORE` or `RUN_STATE`
/// automation. Enum values are case-insensitive; a whole-number float window (`5.0`) is taken.
#[derive(utoipa::ToSchema)]
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
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RunMetricFilter {
    threshold_filter: Option<ThresholdFilter>,
    change_filter: Option<ChangeFilter>,
    zscore_filter: Option<ZScoreFilter>,
}

/// `agg_op` of the newest `window_size` values compared (`cmp_op`) with `threshold`.
#[derive(utoipa::ToSchema)]
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
#[derive(utoipa::ToSchema)]
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
#[derive(utoipa::ToSchema)]
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

/// A history row's values: 1 to 1000 metrics, each a finite number under a name of 1 to 256
/// characters without control characters (`/` allowed: `train/loss`).
pub struct MetricValues;

impl utoipa::PartialSchema for MetricValues {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "1 to 1000 metrics, each a finite number under a name of 1 to 256 characters \
                 without control characters.",
            ))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]{1,256}$"))
                    .min_length(Some(1))
                    .max_length(Some(256)),
            ))
            .additional_properties(Some(
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::Number)),
            ))
            .min_properties(Some(1))
            .max_properties(Some(1000))
            .into()
    }
}

impl utoipa::ToSchema for MetricValues {}
