//! The catalog's records as the rest of herald sees them: users, entities and their members,
//! projects and registries, artifact collections, versions and memberships.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CollectionId, EntityId, ProjectId, UserId, VersionId};
use crate::names::{EntityName, ProjectName, Username};
use crate::InvalidInput;

/// A member's role in an entity. VIEWER reads; MEMBER also writes the catalog; ADMIN also
/// manages members (and, later, secrets and integrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Viewer,
    Member,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "VIEWER",
            Self::Member => "MEMBER",
            Self::Admin => "ADMIN",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        match s.to_ascii_uppercase().as_str() {
            "VIEWER" => Ok(Self::Viewer),
            "MEMBER" => Ok(Self::Member),
            "ADMIN" => Ok(Self::Admin),
            _ => Err(InvalidInput::new(
                "role",
                format!("unknown role {s:?}; expected ADMIN, MEMBER or VIEWER"),
            )),
        }
    }

    /// Whether this role may do what `needed` allows (roles are ordered VIEWER < MEMBER < ADMIN).
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// What kind of owner an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EntityKind {
    Team,
    Organization,
    /// A user's personal entity, created with the user.
    User,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Team => "team",
            Self::Organization => "organization",
            Self::User => "user",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "team" => Some(Self::Team),
            "organization" => Some(Self::Organization),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

/// The person or service account a request acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub email: Option<String>,
    /// Server admins may create users and act as ADMIN in every entity.
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entity {
    pub id: EntityId,
    pub name: EntityName,
    pub kind: EntityKind,
    /// The organization a team belongs to, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<EntityName>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub username: Username,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    pub id: ProjectId,
    #[serde(skip)]
    pub entity_id: EntityId,
    pub entity: EntityName,
    pub name: ProjectName,
    pub description: Option<String>,
    /// Registries are projects named `wandb-registry-<name>` in an organization.
    pub is_registry: bool,
    pub created_at: DateTime<Utc>,
}

/// A sequence holds the versions created in a project; a portfolio (in a registry) holds
/// versions linked into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CollectionKind {
    Sequence,
    Portfolio,
}

impl CollectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sequence => "SEQUENCE",
            Self::Portfolio => "PORTFOLIO",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "SEQUENCE" => Some(Self::Sequence),
            "PORTFOLIO" => Some(Self::Portfolio),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Collection {
    pub id: CollectionId,
    pub entity: EntityName,
    pub project: ProjectName,
    pub name: String,
    pub kind: CollectionKind,
    #[serde(rename = "type")]
    pub artifact_type: String,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Where a linked version was created: its home sequence and index there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionSource {
    pub entity: String,
    pub project: String,
    pub collection: String,
    pub version: String,
}

/// An artifact version as seen through one collection: its index and aliases there, plus the
/// version's own immutable fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArtifactVersion {
    pub id: VersionId,
    pub entity: String,
    pub project: String,
    pub collection: String,
    pub collection_kind: CollectionKind,
    #[serde(rename = "type")]
    pub artifact_type: String,
    /// `v3`: the version's index in this collection.
    pub version: String,
    pub version_index: i64,
    pub aliases: Vec<String>,
    pub tags: Vec<String>,
    pub digest: Option<String>,
    pub description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Value,
    pub created_by: String,
    pub run_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The version's home sequence (equal to this collection for sequences).
    pub source: VersionSource,
}

/// Largest accepted `metadata` object, in bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 512 * 1024;

/// Checks that artifact metadata is a JSON object of reasonable size.
pub fn parse_metadata(v: Option<serde_json::Value>) -> Result<serde_json::Value, InvalidInput> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(serde_json::Value::Object(Default::default())),
        Some(serde_json::Value::Object(m)) => {
            let size = serde_json::to_string(&m)
                .map(|s| s.len())
                .unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                return Err(InvalidInput::new(
                    "metadata",
                    format!("metadata is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES}"),
                ));
            }
            Ok(serde_json::Value::Object(m))
        }
        Some(other) => Err(InvalidInput::new(
            "metadata",
            format!("metadata must be a JSON object, not {}", json_kind(&other)),
        )),
    }
}

/// A JSON value's kind in words, for error messages.
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Longest description of a project, collection or version, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 16 * 1024;

pub fn check_description(field: &str, d: &Option<String>) -> Result<(), InvalidInput> {
    if let Some(d) = d {
        let n = d.chars().count();
        if n > MAX_DESCRIPTION_CHARS {
            return Err(InvalidInput::new(
                field,
                format!("{field} is {n} characters long; the limit is {MAX_DESCRIPTION_CHARS}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.allows(Role::Member));
        assert!(Role::Member.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Member));
        assert!(!Role::Member.allows(Role::Admin));
        assert_eq!(Role::parse("member").unwrap(), Role::Member);
        assert!(Role::parse("OWNER")
            .unwrap_err()
            .message
            .contains("unknown role"));
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert_eq!(parse_metadata(None).unwrap(), serde_json::json!({}));
        assert!(parse_metadata(Some(serde_json::json!([1])))
            .unwrap_err()
            .message
            .contains("an array"));
        let big = serde_json::json!({"k": "x".repeat(MAX_METADATA_BYTES)});
        assert!(parse_metadata(Some(big)).is_err());
    }
}
