//! Hand-written schemas, for what no derive can state because the server checks it in code
//! rather than through a type's shape: the naming rules as patterns with their length bounds
//! (fields and path parameters are plain strings, parsed by the domain's name types), and a
//! history row's metric map. The patterns are written for both ECMA-262 and Python's `re`,
//! which clients and test generators use; `[\x00-\x1f\x7f-\x9f]` is what Rust calls a
//! control character.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

/// A string schema with a pattern and length bounds, named after the type.
macro_rules! string_rule {
    ($(#[doc = $doc:literal])+ $name:ident, $pattern:expr, $min:expr, $max:expr) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                herald_domain::names::rule_schema(concat!($($doc, "\n"),+), $pattern, $min, $max)
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
    /// A run's display name: 1 to 256 characters without control characters.
    DisplayName,
    r"^[^\x00-\x1f\x7f-\x9f]{1,256}$",
    1,
    256
);

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

string_rule!(
    /// A blob key: `md5/<32 lowercase hex digits>` (an artifact file, by its content),
    /// `runs/<run id>/<file name>` or `artifacts/<artifact id>/<file name>`, at most 1024 bytes.
    /// A file name's `/`-separated segments are not empty, `.` or `..`, and hold no control
    /// character or backslash.
    BlobKeyPath,
    r"^(md5/[0-9a-f]{32}|(runs|artifacts)/[1-9][0-9]{0,18}/[^\x00-\x1f\x7f-\x9f\\]{1,1000})$",
    1,
    1024
);

/// Raw bytes, as uploaded and downloaded.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}
