//! Events: the immutable record of every change to the catalog, written in the same
//! transaction as the change. Automations match on them; the event log is also the audit
//! trail users page through.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EntityId, EventId, VersionId};
use crate::InvalidInput;

/// Event types, by W&B's wire names. Two are herald's own (`REMOVE_ARTIFACT_ALIAS`,
/// `LOG_RUN_HISTORY`): they complete the audit trail but are not automation triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventType {
    CreateArtifact,
    LinkModel,
    UnlinkArtifact,
    AddArtifactAlias,
    RemoveArtifactAlias,
    AddArtifactTag,
    RemoveArtifactTag,
    AddCollectionTag,
    RemoveCollectionTag,
    RunMetric,
    RunMetricChange,
    RunMetricZscore,
    RunState,
    LogRunHistory,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        Self::CreateArtifact,
        Self::LinkModel,
        Self::UnlinkArtifact,
        Self::AddArtifactAlias,
        Self::RemoveArtifactAlias,
        Self::AddArtifactTag,
        Self::RemoveArtifactTag,
        Self::AddCollectionTag,
        Self::RemoveCollectionTag,
        Self::RunMetric,
        Self::RunMetricChange,
        Self::RunMetricZscore,
        Self::RunState,
        Self::LogRunHistory,
    ];

    /// The wire value (W&B's `EventTriggeringConditionType`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateArtifact => "CREATE_ARTIFACT",
            Self::LinkModel => "LINK_MODEL",
            Self::UnlinkArtifact => "UNLINK_ARTIFACT",
            Self::AddArtifactAlias => "ADD_ARTIFACT_ALIAS",
            Self::RemoveArtifactAlias => "REMOVE_ARTIFACT_ALIAS",
            Self::AddArtifactTag => "ADD_ARTIFACT_TAG",
            Self::RemoveArtifactTag => "REMOVE_ARTIFACT_TAG",
            Self::AddCollectionTag => "ADD_COLLECTION_TAG",
            Self::RemoveCollectionTag => "REMOVE_COLLECTION_TAG",
            Self::RunMetric => "RUN_METRIC",
            Self::RunMetricChange => "RUN_METRIC_CHANGE",
            Self::RunMetricZscore => "RUN_METRIC_ZSCORE",
            Self::RunState => "RUN_STATE",
            Self::LogRunHistory => "LOG_RUN_HISTORY",
        }
    }

    /// The public name used in payloads as `${event_type}` (W&B's SDK renames two).
    pub fn public_name(self) -> &'static str {
        match self {
            Self::LinkModel => "LINK_ARTIFACT",
            Self::RunMetric => "RUN_METRIC_THRESHOLD",
            other => other.as_str(),
        }
    }

    /// Parses a wire value or a public name.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let upper = s.to_ascii_uppercase();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == upper || t.public_name() == upper)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|t| t.as_str()).collect();
                InvalidInput::new(
                    "type",
                    format!(
                        "unknown event type {s:?}; expected one of {}",
                        names.join(", ")
                    ),
                )
            })
    }
}

/// A change about to be recorded; the store adds the id and the time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: EventType,
    pub entity_id: EntityId,
    pub entity: String,
    pub project: Option<String>,
    pub collection: Option<String>,
    pub artifact_type: Option<String>,
    pub version_id: Option<VersionId>,
    pub version_index: Option<i64>,
    pub alias: Option<String>,
    pub tag: Option<String>,
    pub run: Option<String>,
    pub author: Option<String>,
    pub body: serde_json::Value,
}

impl NewEvent {
    /// An event of `event_type` in entity `entity`; the caller fills in what applies.
    pub fn new(event_type: EventType, entity_id: EntityId, entity: &str) -> Self {
        Self {
            event_type,
            entity_id,
            entity: entity.to_string(),
            project: None,
            collection: None,
            artifact_type: None,
            version_id: None,
            version_index: None,
            alias: None,
            tag: None,
            run: None,
            author: None,
            body: serde_json::Value::Object(Default::default()),
        }
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(skip)]
    pub entity_id: EntityId,
    pub entity: String,
    pub project: Option<String>,
    pub collection: Option<String>,
    pub artifact_type: Option<String>,
    pub version_id: Option<VersionId>,
    /// `v3`, the version's index in `collection`.
    pub version: Option<String>,
    pub alias: Option<String>,
    pub tag: Option<String>,
    pub run: Option<String>,
    pub author: Option<String>,
    pub created_at: DateTime<Utc>,
    /// What changed, specific to the event type.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: serde_json::Value,
}

/// Largest page of a listing.
pub const MAX_PAGE: u32 = 1000;
/// Page size when the caller does not say.
pub const DEFAULT_PAGE: u32 = 100;

/// A page request: items strictly after `after` (an opaque cursor from the previous page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<i64>,
    pub limit: u32,
}

impl PageRequest {
    pub fn parse(after: Option<&str>, limit: Option<u32>) -> Result<Self, InvalidInput> {
        let after = match after {
            None | Some("") => None,
            Some(s) => Some(s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                InvalidInput::new(
                    "after",
                    format!("cursor {s:?} is not valid; pass the next_cursor of a previous page"),
                )
            })?),
        };
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(InvalidInput::new(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE}, got {limit}"),
            ));
        }
        Ok(Self { after, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_by_wire_and_public_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()).unwrap(), t);
            assert_eq!(EventType::parse(t.public_name()).unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(
            EventType::parse("LINK_ARTIFACT").unwrap(),
            EventType::LinkModel
        );
        assert!(EventType::parse("DELETE_EVERYTHING")
            .unwrap_err()
            .message
            .contains("CREATE_ARTIFACT"));
    }

    #[test]
    fn pages() {
        assert_eq!(
            PageRequest::parse(None, None).unwrap(),
            PageRequest {
                after: None,
                limit: DEFAULT_PAGE
            }
        );
        assert_eq!(
            PageRequest::parse(Some("42"), Some(5)).unwrap().after,
            Some(42)
        );
        assert!(PageRequest::parse(Some("abc"), None).is_err());
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(PageRequest::parse(None, Some(MAX_PAGE + 1)).is_err());
    }
}
