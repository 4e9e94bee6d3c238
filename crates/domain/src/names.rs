//! Names users give things, parsed once at the edge.
//!
//! Two families:
//! - *identifiers* (entity, project, registry, collection, user, run id, artifact type) appear
//!   in URL paths and in `entity/project/collection:ref` strings, so they are limited to
//!   letters, digits, `-`, `_` and `.`; in particular never `/` or `:`;
//! - *labels* (aliases and tags) are free text without `/`, `:`, control characters or
//!   surrounding spaces.
//!
//! Every name is 1–128 characters (metric names, which W&B users write as `train/loss`, are
//! their own rule: up to 256 characters and `/` allowed).

use crate::InvalidInput;

/// Longest entity, project, collection, alias or tag name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest metric name, in characters.
pub const MAX_METRIC_NAME_CHARS: usize = 256;
/// Registries are projects with this name prefix (W&B's `REGISTRY_PREFIX`).
pub const REGISTRY_PREFIX: &str = "wandb-registry-";

fn check_length(what: &str, s: &str, max: usize) -> Result<(), InvalidInput> {
    if s.is_empty() {
        return Err(InvalidInput::new("", format!("{what} must not be empty")));
    }
    let n = s.chars().count();
    if n > max {
        return Err(InvalidInput::new(
            "",
            format!("{what} is {n} characters long; the limit is {max}"),
        ));
    }
    Ok(())
}

fn check_separators(what: &str, s: &str) -> Result<(), InvalidInput> {
    for sep in ['/', ':'] {
        if s.contains(sep) {
            return Err(InvalidInput::new(
                "",
                format!("{what} {s:?} must not contain '{sep}'"),
            ));
        }
    }
    Ok(())
}

fn parse_identifier(what: &str, s: &str) -> Result<(), InvalidInput> {
    check_length(what, s, MAX_NAME_CHARS)?;
    check_separators(what, s)?;
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(InvalidInput::new(
            "",
            format!(
                "{what} {s:?} may only contain letters, digits, '-', '_' and '.'; found {bad:?}"
            ),
        ));
    }
    if s == "." || s == ".." {
        return Err(InvalidInput::new("", format!("{what} must not be {s:?}")));
    }
    Ok(())
}

fn parse_label(what: &str, s: &str) -> Result<(), InvalidInput> {
    check_length(what, s, MAX_NAME_CHARS)?;
    check_separators(what, s)?;
    if s.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            "",
            format!("{what} {s:?} must not contain control characters"),
        ));
    }
    if s.trim() != s {
        return Err(InvalidInput::new(
            "",
            format!("{what} {s:?} must not start or end with whitespace"),
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $parser:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(String);

        name_type!(@impl $name, $what, $parser);
    };
    // A name whose OpenAPI schema states its rule: a pattern (valid in ECMA-262 and Python's
    // `re`, which clients and test generators use) and length bounds.
    ($(#[doc = $doc:literal])+ $name:ident, $what:literal, $parser:ident,
     schema($pattern:expr, $min:expr, $max:expr)) => {
        $(#[doc = $doc])+
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::names::rule_schema(concat!($($doc, "\n"),+), $pattern, $min, $max)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        name_type!(@impl $name, $what, $parser);
    };
    (@impl $name:ident, $what:literal, $parser:ident) => {

        impl $name {
            /// Parses a user-supplied name, saying what is wrong with it if it breaks the rules.
            pub fn parse(s: &str) -> Result<Self, InvalidInput> {
                $parser($what, s)?;
                Self::check_extra(s)?;
                Ok(Self(s.to_string()))
            }

            /// Wraps a name read back from the store, where it was checked on the way in.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
            }
        }
    };
}

/// The OpenAPI schema of a string that must match a naming rule: its pattern and length
/// bounds, with the rule's description. The API's hand-written rules use it too.
#[cfg(feature = "openapi")]
pub fn rule_schema(
    description: &str,
    pattern: &str,
    min: usize,
    max: usize,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description.trim()))
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
        .into()
}

name_type!(
    /// A team, organization or personal entity name.
    EntityName, "entity name", parse_identifier
);
name_type!(
    /// A username (users also own a personal entity of the same name).
    Username, "username", parse_identifier
);
name_type!(
    /// A project name, which for registries is `wandb-registry-<name>`.
    ProjectName, "project name", parse_identifier
);
name_type!(
    /// A registry's short name (`model` for the project `wandb-registry-model`).
    RegistryName, "registry name", parse_identifier
);
name_type!(
    /// An artifact collection name.
    CollectionName, "collection name", parse_identifier
);
name_type!(
    /// An artifact type (`model`, `dataset`, …).
    ArtifactType, "artifact type", parse_identifier
);
name_type!(
    /// A run's string id, unique within its project.
    RunName, "run id", parse_identifier
);
name_type!(
    /// An alias on a membership, unique within its collection.
    AliasName, "alias", parse_label
);
name_type!(
    /// A tag on a version or a collection.
    TagName, "tag", parse_label
);
name_type!(
    /// A metric key in run history.
    MetricName, "metric name", parse_metric
);

name_type!(
    /// An automation's name, unique within its entity: 1–255 characters, no control
    /// characters, no surrounding spaces (W&B's `CreateFilterTriggerInput.name`).
    AutomationName, "automation name", parse_automation_name,
    schema(
        r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]{0,253}[^\s\x00-\x1f\x7f-\x9f])?$",
        1,
        255
    )
);
name_type!(
    /// An integration's name, unique within its entity, by W&B's rule: at most 64
    /// characters, words of letters, digits, `-` and `_` separated by spaces.
    IntegrationName, "integration name", parse_integration_name,
    schema(r"^[-\w]+(?: +[-\w]+)*$", 1, 64)
);
name_type!(
    /// A team secret's name, as payload templates refer to it (`${SECRET_NAME}`):
    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters; `ACCESS_TOKEN` is reserved.
    SecretName, "secret name", parse_secret_name,
    schema(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", 1, 128)
);

/// Longest automation name.
pub const MAX_AUTOMATION_NAME: usize = 255;
/// Longest integration name.
pub const MAX_INTEGRATION_NAME: usize = 64;
/// Longest secret name.
pub const MAX_SECRET_NAME: usize = 128;

fn parse_automation_name(_what: &str, name: &str) -> Result<(), InvalidInput> {
    let n = name.chars().count();
    if n == 0 || n > MAX_AUTOMATION_NAME {
        return Err(InvalidInput::new(
            "",
            format!("name must be 1 to {MAX_AUTOMATION_NAME} characters, got {n}"),
        ));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err(InvalidInput::new(
            "",
            "name must not contain control characters or surrounding spaces",
        ));
    }
    Ok(())
}

fn parse_integration_name(_what: &str, name: &str) -> Result<(), InvalidInput> {
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c == '-' || c == '_' || c.is_alphanumeric())
    };
    let n = name.chars().count();
    if n == 0 || n > MAX_INTEGRATION_NAME {
        return Err(InvalidInput::new(
            "",
            format!("name must be 1 to {MAX_INTEGRATION_NAME} characters, got {n}"),
        ));
    }
    if !name.split(' ').filter(|w| !w.is_empty()).all(word)
        || name.starts_with(' ')
        || name.ends_with(' ')
    {
        return Err(InvalidInput::new(
            "",
            format!("name {name:?} may hold only letters, digits, '-' and '_', in words separated by spaces"),
        ));
    }
    Ok(())
}

fn parse_secret_name(_what: &str, name: &str) -> Result<(), InvalidInput> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_SECRET_NAME;
    if !ok {
        return Err(InvalidInput::new(
            "",
            format!("secret name {name:?} must match [A-Za-z_][A-Za-z0-9_]* and be at most {MAX_SECRET_NAME} characters"),
        ));
    }
    if name == "ACCESS_TOKEN" {
        return Err(InvalidInput::new(
            "",
            "ACCESS_TOKEN is reserved for the integration's access token",
        ));
    }
    Ok(())
}

fn parse_metric(what: &str, s: &str) -> Result<(), InvalidInput> {
    check_length(what, s, MAX_METRIC_NAME_CHARS)?;
    if s.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            "",
            format!("{what} {s:?} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Per-type extra rules; most types have none.
trait ExtraRule {
    fn check_extra(_s: &str) -> Result<(), InvalidInput> {
        Ok(())
    }
}

impl ExtraRule for EntityName {}
impl ExtraRule for Username {}
impl ExtraRule for CollectionName {}
impl ExtraRule for ArtifactType {}
impl ExtraRule for RunName {}
impl ExtraRule for TagName {}
impl ExtraRule for MetricName {}
impl ExtraRule for ProjectName {}
impl ExtraRule for AutomationName {}
impl ExtraRule for IntegrationName {}
impl ExtraRule for SecretName {}

impl ExtraRule for RegistryName {
    fn check_extra(s: &str) -> Result<(), InvalidInput> {
        let full = REGISTRY_PREFIX.len() + s.len();
        if full > MAX_NAME_CHARS {
            return Err(InvalidInput::new(
                "",
                format!(
                    "registry name {s:?} is too long: its project name would be {full} characters; the limit is {MAX_NAME_CHARS}"
                ),
            ));
        }
        Ok(())
    }
}

impl ExtraRule for AliasName {
    fn check_extra(s: &str) -> Result<(), InvalidInput> {
        if s == LATEST {
            return Err(InvalidInput::new(
                "",
                "alias \"latest\" is managed by herald: it always points at the newest version",
            ));
        }
        if is_version_string(s) {
            return Err(InvalidInput::new(
                "",
                format!(
                    "alias {s:?} looks like a version index; aliases of the form vN are reserved"
                ),
            ));
        }
        Ok(())
    }
}

/// The alias that follows the newest version of every collection.
pub const LATEST: &str = "latest";

impl AliasName {
    /// The automatic `latest` alias (which [`AliasName::parse`] refuses from users).
    pub fn latest() -> Self {
        Self(LATEST.to_string())
    }
}

impl ProjectName {
    /// The project that holds registry `name`.
    pub fn for_registry(name: &RegistryName) -> Self {
        Self(format!("{REGISTRY_PREFIX}{name}"))
    }

    /// Whether this is a registry's project (`wandb-registry-<something>`).
    pub fn is_registry(&self) -> bool {
        self.0.len() > REGISTRY_PREFIX.len() && self.0.starts_with(REGISTRY_PREFIX)
    }
}

/// `v0`, `v1`, … (no sign, no leading zeros except `v0`), however many digits: an index too
/// large to exist is still of the reserved form.
fn is_version_string(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|digits| {
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() == 1 || !digits.starts_with('0'))
    })
}

fn parse_version_index(s: &str) -> Option<i64> {
    if !is_version_string(s) {
        return None;
    }
    s[1..].parse().ok()
}

/// How a version is named inside a collection: by index (`v3`) or by alias (`production`, `latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Index(i64),
    Alias(String),
}

impl VersionRef {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if let Some(i) = parse_version_index(s) {
            return Ok(Self::Index(i));
        }
        if s == LATEST {
            return Ok(Self::Alias(s.to_string()));
        }
        // Anything else must be a well-formed alias.
        parse_label("version reference", s)?;
        Ok(Self::Alias(s.to_string()))
    }
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Index(i) => write!(f, "v{i}"),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

/// The version string of an index: `v3`.
pub fn version_string(index: i64) -> String {
    format!("v{index}")
}

/// Percent-encodes a name as one URL path segment (aliases and tags may hold spaces and
/// other characters; everything but unreserved characters is encoded).
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_segments_are_encoded() {
        assert_eq!(super::url_segment("prod candidate"), "prod%20candidate");
        assert_eq!(super::url_segment("v1.2-x_y"), "v1.2-x_y");
        assert_eq!(super::url_segment("a/b"), "a%2Fb");
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identifiers_accept_the_usual_names() {
        for ok in ["my-team", "ml_team.2", "a", "A-B_c.d", &"x".repeat(128)] {
            EntityName::parse(ok).unwrap();
            CollectionName::parse(ok).unwrap();
        }
    }

    #[test]
    fn identifiers_name_what_is_wrong() {
        let msg = |s: &str| ProjectName::parse(s).unwrap_err().message;
        assert_eq!(msg(""), "project name must not be empty");
        assert_eq!(
            msg(&"x".repeat(129)),
            "project name is 129 characters long; the limit is 128"
        );
        assert!(msg("a/b").contains("must not contain '/'"));
        assert!(msg("a:b").contains("must not contain ':'"));
        assert!(msg("a b").contains("found ' '"));
        assert!(msg("..").contains("must not be"));
    }

    #[test]
    fn aliases_refuse_reserved_forms() {
        assert!(AliasName::parse("latest")
            .unwrap_err()
            .message
            .contains("managed by herald"));
        assert!(AliasName::parse("v12")
            .unwrap_err()
            .message
            .contains("reserved"));
        assert!(AliasName::parse("v99999999999999999999").is_err());
        AliasName::parse("v").unwrap();
        AliasName::parse("v01").unwrap(); // not a canonical version string
        AliasName::parse("production candidate").unwrap();
        assert!(AliasName::parse(" prod").is_err());
        assert!(AliasName::parse("pro\u{7}d").is_err());
        assert!(TagName::parse("europe:west").is_err());
    }

    #[test]
    fn registry_projects() {
        let r = RegistryName::parse("model").unwrap();
        let p = ProjectName::for_registry(&r);
        assert_eq!(p.as_str(), "wandb-registry-model");
        assert!(p.is_registry());
        assert!(!ProjectName::parse("wandb-registry-").unwrap().is_registry());
        assert!(RegistryName::parse(&"r".repeat(114)).is_err());
        RegistryName::parse(&"r".repeat(113)).unwrap();
    }

    #[test]
    fn version_refs() {
        assert_eq!(VersionRef::parse("v0").unwrap(), VersionRef::Index(0));
        assert_eq!(VersionRef::parse("v17").unwrap(), VersionRef::Index(17));
        assert_eq!(
            VersionRef::parse("latest").unwrap(),
            VersionRef::Alias("latest".into())
        );
        assert_eq!(
            VersionRef::parse("v007").unwrap(),
            VersionRef::Alias("v007".into())
        );
        assert!(VersionRef::parse("a/b").is_err());
        assert!(VersionRef::parse("").is_err());
    }

    proptest! {
        // Whatever the input, parsing never panics, and accepted identifiers keep the rules.
        #[test]
        fn identifier_parse_is_total_and_sound(s in ".{0,140}") {
            if let Ok(n) = EntityName::parse(&s) {
                prop_assert!(!n.as_str().is_empty());
                prop_assert!(n.as_str().chars().count() <= MAX_NAME_CHARS);
                prop_assert!(!n.as_str().contains('/') && !n.as_str().contains(':'));
                prop_assert!(n.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
            }
        }

        #[test]
        fn identifiers_from_the_alphabet_are_accepted(s in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}") {
            prop_assert!(EntityName::parse(&s).is_ok());
        }

        #[test]
        fn label_parse_is_total_and_sound(s in "\\PC{0,140}") {
            if let Ok(a) = AliasName::parse(&s) {
                prop_assert!(!a.as_str().contains('/') && !a.as_str().contains(':'));
                prop_assert!(a.as_str().chars().count() <= MAX_NAME_CHARS);
                prop_assert!(a.as_str() != LATEST);
                // An accepted alias never reads back as a version index.
                prop_assert_eq!(VersionRef::parse(a.as_str()).unwrap(), VersionRef::Alias(s.clone()));
            }
        }

        #[test]
        fn version_strings_round_trip(i in 0i64..i64::MAX) {
            prop_assert_eq!(VersionRef::parse(&version_string(i)).unwrap(), VersionRef::Index(i));
            prop_assert!(AliasName::parse(&version_string(i)).is_err());
        }
    }
}
