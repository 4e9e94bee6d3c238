//! Automations as W&B's GraphQL shows them (`Trigger`, its scope, triggering condition and
//! triggered action) and integrations (`SlackIntegration`, `GenericWebhookIntegration`).

use async_graphql::{Enum, Interface, Object, SimpleObject, Union, ID};
use herald_domain::automation::{
    is_run_event, Action, Automation, Integration, IntegrationKind, ScopeType,
};
use herald_domain::catalog::Entity;
use herald_domain::event::EventType;

use super::catalog::{timestamp, EntityNode, ProjectNode};
use super::collections::{ArtifactCollection, ArtifactPortfolio, ArtifactSequence};
use super::errors;
use super::page::connection;
use super::scalars::JsonString;
use crate::AppState;

connection!(IntegrationConnection, IntegrationEdge, IntegrationNode);

#[derive(SimpleObject)]
pub struct TriggerEdge {
    pub node: TriggerNode,
    pub cursor: String,
}

#[derive(SimpleObject)]
pub struct TriggerConnection {
    pub edges: Vec<TriggerEdge>,
    pub page_info: super::page::PageInfo,
    pub total_count: i32,
}

/// W&B's `EventTriggeringConditionType`: the events herald's automations watch.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum EventTriggeringConditionType {
    CreateArtifact,
    /// Linking a version into a registry collection (W&B's legacy name, kept on the wire).
    LinkModel,
    UnlinkArtifact,
    AddArtifactAlias,
    AddArtifactTag,
    RemoveArtifactTag,
    AddCollectionTag,
    RemoveCollectionTag,
    RunMetric,
    RunMetricChange,
    RunMetricZscore,
    RunState,
}

impl EventTriggeringConditionType {
    pub fn domain(self) -> EventType {
        match self {
            Self::CreateArtifact => EventType::CreateArtifact,
            Self::LinkModel => EventType::LinkModel,
            Self::UnlinkArtifact => EventType::UnlinkArtifact,
            Self::AddArtifactAlias => EventType::AddArtifactAlias,
            Self::AddArtifactTag => EventType::AddArtifactTag,
            Self::RemoveArtifactTag => EventType::RemoveArtifactTag,
            Self::AddCollectionTag => EventType::AddCollectionTag,
            Self::RemoveCollectionTag => EventType::RemoveCollectionTag,
            Self::RunMetric => EventType::RunMetric,
            Self::RunMetricChange => EventType::RunMetricChange,
            Self::RunMetricZscore => EventType::RunMetricZscore,
            Self::RunState => EventType::RunState,
        }
    }

    /// The GraphQL value of a stored event type (those GraphQL cannot make show as the
    /// nearest it can).
    pub fn of(t: EventType) -> Self {
        match t {
            EventType::CreateArtifact => Self::CreateArtifact,
            EventType::LinkModel => Self::LinkModel,
            EventType::UnlinkArtifact => Self::UnlinkArtifact,
            EventType::AddArtifactAlias | EventType::RemoveArtifactAlias => Self::AddArtifactAlias,
            EventType::AddArtifactTag => Self::AddArtifactTag,
            EventType::RemoveArtifactTag => Self::RemoveArtifactTag,
            EventType::AddCollectionTag => Self::AddCollectionTag,
            EventType::RemoveCollectionTag => Self::RemoveCollectionTag,
            EventType::RunMetric | EventType::LogRunHistory => Self::RunMetric,
            EventType::RunMetricChange => Self::RunMetricChange,
            EventType::RunMetricZscore => Self::RunMetricZscore,
            EventType::RunState => Self::RunState,
        }
    }
}

/// W&B's `TriggerScopeType`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TriggerScopeType {
    Project,
    ArtifactCollection,
    Entity,
}

impl TriggerScopeType {
    pub fn domain(self) -> ScopeType {
        match self {
            Self::Project => ScopeType::Project,
            Self::ArtifactCollection => ScopeType::ArtifactCollection,
            Self::Entity => ScopeType::Entity,
        }
    }
}

/// W&B's `TriggeredActionType`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TriggeredActionType {
    GenericWebhook,
    Notification,
    NoOp,
}

/// W&B's `AlertSeverity`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AlertSeverity {
    Info,
    Warn,
    Error,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }
}

/// What an automation watches.
#[derive(Union)]
pub enum TriggerScope {
    Project(ProjectNode),
    ArtifactSequence(ArtifactSequence),
    ArtifactPortfolio(ArtifactPortfolio),
    Entity(EntityNode),
}

/// When it fires: herald's automations all filter events.
#[derive(Union)]
pub enum TriggeringCondition {
    FilterEventTriggeringCondition(FilterEventTriggeringCondition),
}

pub struct FilterEventTriggeringCondition {
    event_type: EventType,
    filter: serde_json::Value,
}

#[Object]
impl FilterEventTriggeringCondition {
    async fn event_type(&self) -> EventTriggeringConditionType {
        EventTriggeringConditionType::of(self.event_type)
    }
    /// As W&B saves it: run events' filter as given; artifact events' filter wrapped as
    /// `{"filter": "<the filter's JSON text>"}`, the form the SDK reads back.
    async fn filter(&self) -> JsonString {
        if is_run_event(self.event_type) {
            JsonString::of(&self.filter)
        } else {
            JsonString::of(&serde_json::json!({ "filter": self.filter.to_string() }))
        }
    }
}

/// What it does.
#[derive(Union)]
pub enum TriggeredAction {
    GenericWebhook(GenericWebhookTriggeredAction),
    Notification(NotificationTriggeredAction),
    NoOp(NoOpTriggeredAction),
}

pub struct GenericWebhookTriggeredAction {
    integration: IntegrationNode,
    payload: serde_json::Value,
    event_type: EventType,
}

#[Object]
impl GenericWebhookTriggeredAction {
    async fn integration(&self) -> &IntegrationNode {
        &self.integration
    }
    /// The payload template, as JSON text; null when it is the event's default payload
    /// (what an automation made without one sends), so that an update sending it back
    /// leaves it to follow the event, as a new event type's default.
    async fn request_payload(&self) -> Option<String> {
        if self.payload == herald_domain::template::default_payload(self.event_type) {
            return None;
        }
        Some(match &self.payload {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

#[derive(SimpleObject)]
pub struct NotificationTriggeredAction {
    integration: IntegrationNode,
    title: Option<String>,
    message: Option<String>,
    severity: Option<AlertSeverity>,
}

#[derive(SimpleObject)]
pub struct NoOpTriggeredAction {
    no_op: Option<bool>,
}

/// An automation (W&B's `Trigger`), with what its fields point at loaded.
pub struct TriggerNode {
    automation: Automation,
    scope: ScopeNode,
    integration: Option<Integration>,
}

/// A scope's object, loaded once.
enum ScopeNode {
    Project(ProjectNode),
    Collection(ArtifactCollection),
    Entity(EntityNode),
}

impl TriggerNode {
    /// Loads what `a` (of `entity`) points at.
    pub async fn load(
        state: &AppState,
        entity: &Entity,
        a: Automation,
    ) -> async_graphql::Result<Self> {
        let path = a.scope.parse_path().map_err(|e| errors::plain(e.into()))?;
        let scope = match (path.project, path.collection) {
            (None, _) => ScopeNode::Entity(EntityNode(entity.clone())),
            (Some(p), None) => ScopeNode::Project(ProjectNode(
                state
                    .store
                    .project(entity, &p)
                    .await
                    .map_err(errors::store)?,
            )),
            (Some(p), Some(c)) => {
                let project = state
                    .store
                    .project(entity, &p)
                    .await
                    .map_err(errors::store)?;
                let collection = state
                    .store
                    .collection(&project, &c)
                    .await
                    .map_err(errors::store)?;
                ScopeNode::Collection(ArtifactCollection::new(project, collection))
            }
        };
        let integration = match a.action.integration_id() {
            Some(id) => Some(
                state
                    .store
                    .integration(entity, id)
                    .await
                    .map_err(errors::store)?,
            ),
            None => None,
        };
        Ok(Self {
            automation: a,
            scope,
            integration,
        })
    }
}

#[Object(name = "Trigger")]
impl TriggerNode {
    async fn id(&self) -> ID {
        ID(self.automation.id.to_global())
    }
    async fn name(&self) -> &str {
        self.automation.name.as_str()
    }
    async fn description(&self) -> Option<&str> {
        self.automation.description.as_deref()
    }
    async fn enabled(&self) -> bool {
        self.automation.enabled
    }
    async fn created_at(&self) -> String {
        timestamp(self.automation.created_at)
    }
    async fn updated_at(&self) -> Option<String> {
        Some(timestamp(self.automation.updated_at))
    }
    async fn created_by(&self) -> &str {
        &self.automation.created_by
    }
    async fn scope_type(&self) -> TriggerScopeType {
        match self.automation.scope.scope_type {
            ScopeType::Project => TriggerScopeType::Project,
            ScopeType::ArtifactCollection => TriggerScopeType::ArtifactCollection,
            ScopeType::Entity => TriggerScopeType::Entity,
        }
    }
    async fn scope(&self) -> TriggerScope {
        match &self.scope {
            ScopeNode::Project(p) => TriggerScope::Project(p.clone()),
            ScopeNode::Collection(ArtifactCollection::ArtifactSequence(s)) => {
                TriggerScope::ArtifactSequence(s.clone())
            }
            ScopeNode::Collection(ArtifactCollection::ArtifactPortfolio(p)) => {
                TriggerScope::ArtifactPortfolio(p.clone())
            }
            ScopeNode::Entity(e) => TriggerScope::Entity(e.clone()),
        }
    }
    async fn triggering_condition(&self) -> TriggeringCondition {
        TriggeringCondition::FilterEventTriggeringCondition(FilterEventTriggeringCondition {
            event_type: self.automation.event.event_type,
            filter: self.automation.event.filter.clone(),
        })
    }
    async fn triggered_action(&self) -> async_graphql::Result<TriggeredAction> {
        let integration = || {
            self.integration
                .as_ref()
                .map(IntegrationNode::from)
                .ok_or_else(|| errors::not_found("the automation's integration is gone", None))
        };
        Ok(match &self.automation.action {
            Action::GenericWebhook { payload, .. } => {
                TriggeredAction::GenericWebhook(GenericWebhookTriggeredAction {
                    integration: integration()?,
                    payload: payload.clone(),
                    event_type: self.automation.event.event_type,
                })
            }
            Action::Notification {
                title,
                message,
                severity,
                ..
            } => TriggeredAction::Notification(NotificationTriggeredAction {
                integration: integration()?,
                title: title.clone(),
                message: message.clone(),
                severity: Some(match severity.as_str() {
                    "WARN" => AlertSeverity::Warn,
                    "ERROR" => AlertSeverity::Error,
                    _ => AlertSeverity::Info,
                }),
            }),
            Action::NoOp => TriggeredAction::NoOp(NoOpTriggeredAction { no_op: Some(true) }),
        })
    }
}

/// A Slack integration: where notifications post.
#[derive(SimpleObject, Clone)]
pub struct SlackIntegration {
    pub id: ID,
    pub name: String,
    /// The Slack workspace.
    pub team_name: String,
    pub channel_name: String,
    pub created_at: String,
}

/// A webhook integration: where webhook actions POST.
#[derive(SimpleObject, Clone)]
pub struct GenericWebhookIntegration {
    pub id: ID,
    pub name: String,
    pub url_endpoint: String,
    /// The secret sent as the bearer token, if any.
    pub access_token_ref: Option<String>,
    /// The secret that signs deliveries, if any.
    pub secret_ref: Option<String>,
    pub created_at: String,
}

/// W&B's `Integration` interface.
#[derive(Interface, Clone)]
#[graphql(
    name = "Integration",
    field(name = "id", ty = "&ID"),
    field(name = "name", ty = "&String")
)]
pub enum IntegrationNode {
    SlackIntegration(SlackIntegration),
    GenericWebhookIntegration(GenericWebhookIntegration),
}

impl From<Integration> for IntegrationNode {
    fn from(i: Integration) -> Self {
        Self::from(&i)
    }
}

impl From<&Integration> for IntegrationNode {
    fn from(i: &Integration) -> Self {
        let id = ID(i.id.to_global());
        let created_at = timestamp(i.created_at);
        match i.kind {
            IntegrationKind::Slack => {
                let slack = i.slack.as_ref();
                Self::SlackIntegration(SlackIntegration {
                    id,
                    name: i.name.to_string(),
                    team_name: slack
                        .and_then(|s| s.workspace_name.clone())
                        .unwrap_or_default(),
                    channel_name: slack.map(|s| s.channel_name.clone()).unwrap_or_default(),
                    created_at,
                })
            }
            IntegrationKind::Webhook => {
                Self::GenericWebhookIntegration(GenericWebhookIntegration {
                    id,
                    name: i.name.to_string(),
                    url_endpoint: i
                        .url
                        .as_ref()
                        .map(|u| u.as_str().to_string())
                        .unwrap_or_default(),
                    access_token_ref: i.access_token_secret.as_ref().map(|s| s.to_string()),
                    secret_ref: i.signing_secret.as_ref().map(|s| s.to_string()),
                    created_at,
                })
            }
        }
    }
}
