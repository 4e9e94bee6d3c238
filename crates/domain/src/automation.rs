//! Automations and what they produce: scopes and the scope/event combinations W&B allows,
//! actions, integrations, secrets' names, and executions with their attempts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::ids::{AutomationId, EntityId, EventId, ExecutionId, IntegrationId};
pub use crate::names::{
    AutomationName, IntegrationName, SecretName, MAX_AUTOMATION_NAME, MAX_INTEGRATION_NAME,
    MAX_SECRET_NAME,
};
pub use crate::webhook_url::{WebhookUrl, MAX_URL};
use crate::InvalidInput;

/// Largest secret value, in bytes.
pub const MAX_SECRET_VALUE: usize = 16 * 1024;
/// How long a rotated-out value keeps signing deliveries unless the rotation says otherwise:
/// a day, as Svix does.
pub const DEFAULT_SECRET_GRACE_SECONDS: u32 = 86_400;
/// The longest grace period a rotation may give the value it replaces: a week.
pub const MAX_SECRET_GRACE_SECONDS: u32 = 604_800;
/// Rotated-out values kept valid at once; rotating past this drops the oldest.
pub const MAX_PREVIOUS_SECRET_VALUES: usize = 10;
/// Default cooldown of run-metric automations: once per run per day, W&B's rule.
pub const DEFAULT_COOLDOWN_SECONDS: u32 = 24 * 3600;
/// Default per-automation rate limit (executions per minute); excess is recorded SKIPPED.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;

/// What an automation watches (W&B's `TriggerScopeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ScopeType {
    ArtifactCollection,
    Project,
    Entity,
}

impl ScopeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ArtifactCollection => "ARTIFACT_COLLECTION",
            Self::Project => "PROJECT",
            Self::Entity => "ENTITY",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        match s.to_ascii_uppercase().as_str() {
            "ARTIFACT_COLLECTION" => Ok(Self::ArtifactCollection),
            "PROJECT" => Ok(Self::Project),
            "ENTITY" => Ok(Self::Entity),
            _ => Err(InvalidInput::new(
                "scope.type",
                format!(
                    "unknown scope type {s:?}; expected ARTIFACT_COLLECTION, PROJECT or ENTITY"
                ),
            )),
        }
    }
}

/// A scope as users write it: `type` and `path` (`entity`, `entity/project` or
/// `entity/project/collection`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Scope {
    #[serde(rename = "type")]
    pub scope_type: ScopeType,
    pub path: String,
}

/// A scope's path split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePath {
    pub entity: String,
    pub project: Option<String>,
    pub collection: Option<String>,
}

impl Scope {
    /// Splits the path, checking it has the parts its type needs.
    pub fn parse_path(&self) -> Result<ScopePath, InvalidInput> {
        let parts: Vec<&str> = self.path.split('/').collect();
        let bad = |shape: &str| {
            InvalidInput::new(
                "scope.path",
                format!(
                    "a {} scope's path is {shape}, got {:?}",
                    self.scope_type.as_str(),
                    self.path
                ),
            )
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad(self.shape()));
        }
        match (self.scope_type, parts.as_slice()) {
            (ScopeType::Entity, [e]) => Ok(ScopePath {
                entity: e.to_string(),
                project: None,
                collection: None,
            }),
            (ScopeType::Project, [e, p]) => Ok(ScopePath {
                entity: e.to_string(),
                project: Some(p.to_string()),
                collection: None,
            }),
            (ScopeType::ArtifactCollection, [e, p, c]) => Ok(ScopePath {
                entity: e.to_string(),
                project: Some(p.to_string()),
                collection: Some(c.to_string()),
            }),
            _ => Err(bad(self.shape())),
        }
    }

    fn shape(&self) -> &'static str {
        match self.scope_type {
            ScopeType::Entity => "\"entity\"",
            ScopeType::Project => "\"entity/project\"",
            ScopeType::ArtifactCollection => "\"entity/project/collection\"",
        }
    }
}

/// Whether `t` is a run event (watched through run history and state changes).
pub fn is_run_event(t: EventType) -> bool {
    matches!(
        t,
        EventType::RunMetric
            | EventType::RunMetricChange
            | EventType::RunMetricZscore
            | EventType::RunState
    )
}

/// The artifact and collection events.
pub fn is_artifact_event(t: EventType) -> bool {
    use EventType::*;
    matches!(
        t,
        CreateArtifact
            | LinkModel
            | UnlinkArtifact
            | AddArtifactAlias
            | AddArtifactTag
            | RemoveArtifactTag
            | AddCollectionTag
            | RemoveCollectionTag
    )
}

/// Whether an automation may watch `event` at a scope of `scope` (W&B's rules, plus
/// CREATE_ARTIFACT at project scope). `is_registry` says whether a PROJECT scope is a registry.
pub fn check_scope_event(
    scope: ScopeType,
    is_registry: bool,
    event: EventType,
) -> Result<(), InvalidInput> {
    use EventType::*;
    let refuse = |why: String| Err(InvalidInput::new("event.type", why));
    match event {
        RemoveArtifactAlias | LogRunHistory => refuse(format!(
            "{} is recorded in the event log but cannot trigger automations",
            event.as_str()
        )),
        RunMetric | RunMetricChange | RunMetricZscore | RunState => match scope {
            ScopeType::Project if !is_registry => Ok(()),
            ScopeType::Entity => Ok(()),
            ScopeType::Project => refuse(format!(
                "{} automations watch runs, and registries have none; use a project or entity scope",
                event.as_str()
            )),
            ScopeType::ArtifactCollection => refuse(format!(
                "{} is allowed at PROJECT or ENTITY scope, not ARTIFACT_COLLECTION",
                event.as_str()
            )),
        },
        CreateArtifact => match scope {
            ScopeType::ArtifactCollection => Ok(()),
            ScopeType::Project if !is_registry => Ok(()),
            ScopeType::Project => refuse(
                "CREATE_ARTIFACT cannot fire in a registry (versions are linked into registries, not created); use LINK_MODEL"
                    .into(),
            ),
            ScopeType::Entity => refuse(
                "CREATE_ARTIFACT is allowed at ARTIFACT_COLLECTION or PROJECT scope, not ENTITY".into(),
            ),
        },
        _ => Ok(()),
    }
}

/// What an automation does (W&B's `TriggeredActionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ActionType {
    GenericWebhook,
    Notification,
    NoOp,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenericWebhook => "GENERIC_WEBHOOK",
            Self::Notification => "NOTIFICATION",
            Self::NoOp => "NO_OP",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "GENERIC_WEBHOOK" => Some(Self::GenericWebhook),
            "NOTIFICATION" => Some(Self::Notification),
            "NO_OP" => Some(Self::NoOp),
            _ => None,
        }
    }
}

/// A stored action. The payload is the template text as saved (valid JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Action {
    GenericWebhook {
        integration_id: IntegrationId,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        payload: serde_json::Value,
    },
    /// A Slack message; title and message may use template variables.
    Notification {
        integration_id: IntegrationId,
        title: Option<String>,
        message: Option<String>,
        severity: Severity,
    },
    NoOp,
}

pub use crate::slack::Severity;

impl Action {
    pub fn action_type(&self) -> ActionType {
        match self {
            Self::GenericWebhook { .. } => ActionType::GenericWebhook,
            Self::Notification { .. } => ActionType::Notification,
            Self::NoOp => ActionType::NoOp,
        }
    }

    pub fn integration_id(&self) -> Option<IntegrationId> {
        match self {
            Self::GenericWebhook { integration_id, .. }
            | Self::Notification { integration_id, .. } => Some(*integration_id),
            Self::NoOp => None,
        }
    }
}

/// The event an automation watches, with its filter in W&B's wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventSpec {
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Automation {
    pub id: AutomationId,
    #[serde(skip)]
    pub entity_id: EntityId,
    pub entity: String,
    pub name: AutomationName,
    pub description: Option<String>,
    pub enabled: bool,
    pub scope: Scope,
    pub event: EventSpec,
    pub action: Action,
    /// Executions per minute before further ones are recorded SKIPPED.
    pub rate_limit_per_minute: u32,
    /// Run-metric automations fire at most once per run per this many seconds (default 24 h).
    pub cooldown_seconds: Option<u32>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A team secret as listed: the value is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretMeta {
    pub name: SecretName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Values this secret held before it was rotated, still in their grace period, newest
    /// first. Where the secret signs deliveries they sign them too, so receivers can move to
    /// the new value without rejecting a message; as an access token only the value is sent.
    pub previous_values: Vec<PreviousSecretValue>,
}

/// A rotated-out value of a secret, still valid for a grace period: deliveries signed with
/// the secret carry a `webhook-signature` under it as well until `valid_until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviousSecretValue {
    pub retired_at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IntegrationKind {
    Webhook,
    Slack,
}

impl IntegrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Self::Webhook),
            "slack" => Some(Self::Slack),
            _ => None,
        }
    }
}

/// Where a Slack integration posts: an incoming-webhook URL or a bot token with a channel id,
/// each held as a team secret; channel and workspace names are for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlackTarget {
    pub channel_name: String,
    pub workspace_name: Option<String>,
    /// Secret holding an incoming-webhook URL.
    pub webhook_url_secret: Option<SecretName>,
    /// Secret holding a bot token (`xoxb-…`), used with `chat.postMessage` and `channel_id`.
    pub bot_token_secret: Option<SecretName>,
    pub channel_id: Option<String>,
}

impl SlackTarget {
    /// Checks the target names exactly one way to post.
    pub fn check(&self) -> Result<(), InvalidInput> {
        let name = self.channel_name.trim_start_matches('#');
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "channel_name",
                "channel_name must be 1 to 80 characters",
            ));
        }
        match (&self.webhook_url_secret, &self.bot_token_secret, &self.channel_id) {
            (Some(_), None, _) => Ok(()),
            (None, Some(_), Some(c)) if !c.is_empty() && c.len() <= 64 && c.chars().all(|c| c.is_ascii_alphanumeric()) => Ok(()),
            (None, Some(_), _) => Err(InvalidInput::new(
                "channel_id",
                "a bot token posts with chat.postMessage, which needs the channel's id (like C0123456789)",
            )),
            _ => Err(InvalidInput::new(
                "webhook_url_secret",
                "give exactly one of webhook_url_secret (an incoming webhook) or bot_token_secret with channel_id",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Integration {
    pub id: IntegrationId,
    #[serde(skip)]
    pub entity_id: EntityId,
    pub entity: String,
    pub kind: IntegrationKind,
    pub name: IntegrationName,
    /// Webhooks: where deliveries go (none for Slack integrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub url: Option<WebhookUrl>,
    /// Name of the secret sent as `Authorization: Bearer …` and usable as `${ACCESS_TOKEN}`.
    pub access_token_secret: Option<SecretName>,
    /// Name of the secret that signs deliveries.
    pub signing_secret: Option<SecretName>,
    /// For Slack integrations: the channel and how to post to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackTarget>,
    pub enabled: bool,
    /// Why herald disabled it (a `410 Gone`, say), when it did.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Integration {
    /// The secret names a payload for this integration may use.
    pub fn secret_names(&self) -> Vec<&str> {
        self.access_token_secret
            .iter()
            .chain(self.signing_secret.iter())
            .map(SecretName::as_str)
            .collect()
    }

    /// Every secret the integration refers to (Slack credentials too), for deletion checks.
    pub fn all_secret_names(&self) -> Vec<&str> {
        let slack = self
            .slack
            .iter()
            .flat_map(|s| s.webhook_url_secret.iter().chain(s.bot_token_secret.iter()));
        self.access_token_secret
            .iter()
            .chain(self.signing_secret.iter())
            .chain(slack)
            .map(SecretName::as_str)
            .collect()
    }
}

/// An execution's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ExecutionStatus {
    Pending,
    Running,
    Finished,
    Failed,
    Skipped,
    Cancelled,
}

impl ExecutionStatus {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Running,
        Self::Finished,
        Self::Failed,
        Self::Skipped,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        Self::ALL.into_iter().find(|x| x.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            InvalidInput::new(
                "status",
                format!("unknown status {s:?}; expected PENDING, RUNNING, FINISHED, FAILED, SKIPPED or CANCELLED"),
            )
        })
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Finished | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }
}

/// One try at delivering an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub number: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub status_code: Option<u16>,
    /// `http_status`, `timeout`, `connect`, `redirect`, `blocked`, … (absent on success).
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// The first 4 KiB of the response body.
    pub response: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    pub id: ExecutionId,
    #[serde(skip)]
    pub entity_id: EntityId,
    pub entity: String,
    pub automation_id: AutomationId,
    pub automation_name: String,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: ExecutionStatus,
    pub action_type: ActionType,
    /// The request as sent, secrets masked (`***`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request: serde_json::Value,
    /// Why it was skipped, cancelled or failed.
    pub reason: Option<String>,
    pub attempt_count: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Present on single-execution reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_event_rules() {
        use EventType::*;
        assert!(check_scope_event(ScopeType::ArtifactCollection, false, CreateArtifact).is_ok());
        assert!(check_scope_event(ScopeType::Project, false, CreateArtifact).is_ok());
        assert!(check_scope_event(ScopeType::Project, true, CreateArtifact).is_err());
        assert!(check_scope_event(ScopeType::Entity, false, CreateArtifact).is_err());
        for t in [
            LinkModel,
            UnlinkArtifact,
            AddArtifactAlias,
            AddArtifactTag,
            RemoveArtifactTag,
            AddCollectionTag,
            RemoveCollectionTag,
        ] {
            for s in [
                ScopeType::ArtifactCollection,
                ScopeType::Project,
                ScopeType::Entity,
            ] {
                assert!(
                    check_scope_event(s, true, t).is_ok() && check_scope_event(s, false, t).is_ok()
                );
            }
        }
        assert!(check_scope_event(ScopeType::Project, false, LogRunHistory).is_err());
        for t in [RunMetric, RunMetricChange, RunMetricZscore, RunState] {
            assert!(check_scope_event(ScopeType::Project, false, t).is_ok());
            assert!(check_scope_event(ScopeType::Entity, false, t).is_ok());
            assert!(
                check_scope_event(ScopeType::Project, true, t).is_err(),
                "not in registries"
            );
            assert!(check_scope_event(ScopeType::ArtifactCollection, false, t).is_err());
        }
        assert!(check_scope_event(ScopeType::Project, false, RemoveArtifactAlias).is_err());
    }

    #[test]
    fn scope_paths() {
        let s = |t, p: &str| {
            Scope {
                scope_type: t,
                path: p.into(),
            }
            .parse_path()
        };
        assert_eq!(
            s(ScopeType::Project, "a/b").unwrap().project.as_deref(),
            Some("b")
        );
        assert!(s(ScopeType::Project, "a").is_err());
        assert!(s(ScopeType::ArtifactCollection, "a/b").is_err());
        assert!(s(ScopeType::Entity, "a/").is_err());
        assert_eq!(
            s(ScopeType::ArtifactCollection, "a/b/c")
                .unwrap()
                .collection
                .as_deref(),
            Some("c")
        );
    }

    #[test]
    fn names_and_urls() {
        IntegrationName::parse("my hook-1").unwrap();
        IntegrationName::parse("ci_deploy").unwrap();
        assert!(IntegrationName::parse("bad!name").is_err());
        assert!(IntegrationName::parse(" lead").is_err());
        assert!(IntegrationName::parse(&"x".repeat(65)).is_err());
        SecretName::parse("GITHUB_TOKEN").unwrap();
        assert!(SecretName::parse("1TOKEN").is_err());
        assert!(SecretName::parse("A-B").is_err());
        assert!(SecretName::parse("ACCESS_TOKEN").is_err());
        WebhookUrl::parse("https://example.com/hook?x=1").unwrap();
        WebhookUrl::parse("http://127.0.0.1:9000/").unwrap();
        assert!(WebhookUrl::parse("ftp://example.com")
            .unwrap_err()
            .message
            .contains("http"));
        assert!(WebhookUrl::parse("https://").is_err());
        assert!(WebhookUrl::parse("https://u:p@example.com").is_err());
        AutomationName::parse("Deploy on production alias").unwrap();
        assert!(AutomationName::parse("").is_err());
        assert!(AutomationName::parse(&"n".repeat(256)).is_err());
    }

    #[test]
    fn statuses_parse() {
        for s in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(ExecutionStatus::parse("DONE").is_err());
    }
}
