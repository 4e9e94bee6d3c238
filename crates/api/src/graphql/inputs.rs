//! The mutations' input objects, named and typed as W&B's (`CreateFilterTriggerInput`, …), and
//! their translation into the REST API's [`AutomationInput`], which the engine validates.

use async_graphql::{InputObject, ID};
use herald_domain::automation::ScopeType;
use herald_domain::catalog::{Role, User};
use herald_domain::ids::{CollectionId, EntityId, IntegrationId, ProjectId};
use herald_domain::names::AutomationName;
use herald_engine::access;
use herald_engine::automations::{ActionInput, AutomationInput, EventInput, ScopeInput};

use super::errors;
use super::scalars::JsonString;
use super::triggers::{
    AlertSeverity, EventTriggeringConditionType, TriggerScopeType, TriggeredActionType,
};
use crate::AppState;

#[derive(InputObject)]
pub struct CreateFilterTriggerInput {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub scope_type: TriggerScopeType,
    #[graphql(name = "scopeID")]
    pub scope_id: ID,
    pub triggering_event_type: EventTriggeringConditionType,
    pub event_filter: JsonString,
    pub triggered_action_type: TriggeredActionType,
    pub triggered_action_config: TriggeredActionConfig,
    pub client_mutation_id: Option<String>,
}

/// Every field but `id` is optional; those given replace the saved ones.
#[derive(InputObject)]
pub struct UpdateFilterTriggerInput {
    pub id: ID,
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub scope_type: Option<TriggerScopeType>,
    #[graphql(name = "scopeID")]
    pub scope_id: Option<ID>,
    pub triggering_event_type: Option<EventTriggeringConditionType>,
    pub event_filter: Option<JsonString>,
    pub triggered_action_type: Option<TriggeredActionType>,
    pub triggered_action_config: Option<TriggeredActionConfig>,
    pub client_mutation_id: Option<String>,
}

/// Exactly one member, matching `triggeredActionType`.
#[derive(InputObject)]
pub struct TriggeredActionConfig {
    pub generic_webhook_action_input: Option<GenericWebhookActionInput>,
    pub notification_action_input: Option<NotificationActionInput>,
    pub no_op_action_input: Option<NoOpTriggeredActionInput>,
}

#[derive(InputObject)]
pub struct GenericWebhookActionInput {
    #[graphql(name = "integrationID")]
    pub integration_id: ID,
    /// The payload template: JSON text.
    pub request_payload: Option<String>,
}

#[derive(InputObject)]
pub struct NotificationActionInput {
    #[graphql(name = "integrationID")]
    pub integration_id: ID,
    pub title: Option<String>,
    pub message: Option<String>,
    pub severity: Option<AlertSeverity>,
}

#[derive(InputObject)]
pub struct NoOpTriggeredActionInput {
    pub no_op: Option<bool>,
}

#[derive(InputObject)]
pub struct DeleteTriggerInput {
    #[graphql(name = "triggerID")]
    pub trigger_id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct CreateGenericWebhookIntegrationInput {
    pub entity_name: String,
    pub name: String,
    pub url_endpoint: String,
    /// The name of a team secret sent as `Authorization: Bearer …`.
    pub access_token_ref: Option<String>,
    /// The name of a team secret that signs deliveries.
    pub secret_ref: Option<String>,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateGenericWebhookIntegrationInput {
    pub id: ID,
    pub name: Option<String>,
    pub url_endpoint: Option<String>,
    pub access_token_ref: Option<String>,
    pub secret_ref: Option<String>,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct DeleteIntegrationInput {
    pub id: ID,
    pub client_mutation_id: Option<String>,
}

/// REST's field names (in the engine's errors) as this input's.
pub fn rename(path: &str) -> String {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let tail = |s: &str| {
        if rest.is_empty() {
            s.to_string()
        } else {
            format!("{s}.{rest}")
        }
    };
    match head {
        "" => "input".into(),
        "name" | "description" | "enabled" => format!("input.{head}"),
        "scope" => "input.scopeID".into(),
        "event" if rest.starts_with("filter") => {
            tail("input").replacen("input.filter", "input.eventFilter", 1)
        }
        "event" => "input.triggeringEventType".into(),
        "action" => format!(
            "input.triggeredActionConfig{}",
            if rest.is_empty() {
                String::new()
            } else {
                format!(".{rest}")
            }
        ),
        _ => format!("input.{path}"),
    }
}

/// The scope `id` names, as REST writes it, and the entity holding it; what the caller
/// cannot see is reported as not found.
pub async fn scope(
    state: &AppState,
    user: &User,
    scope_type: TriggerScopeType,
    id: &str,
) -> async_graphql::Result<ScopeInput> {
    let wrong = |kind: &str| {
        errors::invalid(
            "input.scopeID",
            format!(
                "{id:?} is not the id of a {kind} (scopeType {})",
                scope_type.domain().as_str()
            ),
        )
    };
    let missing = || {
        errors::not_found(
            format!(
                "input.scopeID: no {} with id {id:?}",
                scope_type.domain().as_str().to_ascii_lowercase()
            ),
            None,
        )
    };
    let store = &*state.store;
    let path = match scope_type.domain() {
        ScopeType::Project => {
            let pid = ProjectId::from_global(id).ok_or_else(|| wrong("a Project"))?;
            let p = store
                .project_by_id(pid)
                .await
                .map_err(errors::store)?
                .ok_or_else(missing)?;
            format!("{}/{}", p.entity, p.name)
        }
        ScopeType::ArtifactCollection => {
            let cid = CollectionId::from_global(id)
                .ok_or_else(|| wrong("an ArtifactSequence or ArtifactPortfolio"))?;
            let (p, c) = store
                .collection_by_id(cid)
                .await
                .map_err(errors::store)?
                .ok_or_else(missing)?;
            format!("{}/{}/{}", p.entity, p.name, c.name)
        }
        ScopeType::Entity => {
            let eid = EntityId::from_global(id).ok_or_else(|| wrong("an Entity"))?;
            let e = store
                .entity_by_id(eid)
                .await
                .map_err(errors::store)?
                .ok_or_else(missing)?;
            e.name.to_string()
        }
    };
    let entity = path.split('/').next().unwrap_or_default();
    match access::entity(store, user, entity, Role::Viewer).await {
        Ok(_) => {}
        Err(herald_engine::Error::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(errors::plain(e)),
    }
    Ok(ScopeInput {
        scope_type: scope_type.domain().as_str().to_string(),
        path,
    })
}

/// The entity a scope path is in.
pub fn scope_entity(s: &ScopeInput) -> &str {
    s.path.split('/').next().unwrap_or_default()
}

/// An event filter as the SDK sends it. Artifact events may come wrapped as W&B saves them
/// (`{"filter": "<text>"}`); that is unwrapped.
pub fn event_filter(
    event_type: EventTriggeringConditionType,
    text: &JsonString,
) -> async_graphql::Result<serde_json::Value> {
    let v = text.parse("input.eventFilter")?;
    if herald_domain::automation::is_run_event(event_type.domain()) {
        return Ok(v);
    }
    match &v {
        serde_json::Value::Object(m) if m.len() == 1 => match m.get("filter") {
            Some(serde_json::Value::String(inner)) => {
                JsonString(inner.clone()).parse("input.eventFilter.filter")
            }
            _ => Ok(v),
        },
        _ => Ok(v),
    }
}

/// The action `action_type` with `config`, as REST writes it.
pub fn action(
    action_type: TriggeredActionType,
    config: Option<TriggeredActionConfig>,
) -> async_graphql::Result<ActionInput> {
    let config = config.unwrap_or(TriggeredActionConfig {
        generic_webhook_action_input: None,
        notification_action_input: None,
        no_op_action_input: None,
    });
    let needs = |member: &str| {
        errors::invalid(
            &format!("input.triggeredActionConfig.{member}"),
            "is required for this triggeredActionType",
        )
    };
    let given = [
        (
            "genericWebhookActionInput",
            config.generic_webhook_action_input.is_some(),
            TriggeredActionType::GenericWebhook,
        ),
        (
            "notificationActionInput",
            config.notification_action_input.is_some(),
            TriggeredActionType::Notification,
        ),
        (
            "noOpActionInput",
            config.no_op_action_input.is_some(),
            TriggeredActionType::NoOp,
        ),
    ];
    if let Some((member, _, _)) = given.iter().find(|(_, g, t)| *g && *t != action_type) {
        return Err(errors::invalid(
            &format!("input.triggeredActionConfig.{member}"),
            "does not match triggeredActionType",
        ));
    }
    let integration = |id: &ID, member: &str| {
        IntegrationId::from_global(id).map(|i| i.0).ok_or_else(|| {
            errors::invalid(
                &format!("input.triggeredActionConfig.{member}.integrationID"),
                format!("{:?} is not an Integration id", id.as_str()),
            )
        })
    };
    Ok(match action_type {
        TriggeredActionType::GenericWebhook => {
            let w = config
                .generic_webhook_action_input
                .ok_or_else(|| needs("genericWebhookActionInput"))?;
            ActionInput::GenericWebhook {
                integration_id: integration(&w.integration_id, "genericWebhookActionInput")?,
                payload: w.request_payload.map(serde_json::Value::String),
            }
        }
        TriggeredActionType::Notification => {
            let n = config
                .notification_action_input
                .ok_or_else(|| needs("notificationActionInput"))?;
            ActionInput::Notification {
                integration_id: integration(&n.integration_id, "notificationActionInput")?,
                title: n.title,
                message: n.message,
                severity: n.severity.map(|s| s.as_str().to_string()),
            }
        }
        TriggeredActionType::NoOp => ActionInput::NoOp,
    })
}

/// A create input as REST's.
pub async fn create(
    state: &AppState,
    user: &User,
    input: CreateFilterTriggerInput,
) -> async_graphql::Result<AutomationInput> {
    Ok(AutomationInput {
        name: AutomationName::parse(&input.name)
            .map_err(|e| errors::invalid("input.name", e.message))?,
        description: input.description,
        enabled: Some(input.enabled),
        scope: scope(state, user, input.scope_type, input.scope_id.as_str()).await?,
        event: EventInput {
            event_type: input.triggering_event_type.domain().as_str().to_string(),
            filter: Some(event_filter(
                input.triggering_event_type,
                &input.event_filter,
            )?),
        },
        action: action(
            input.triggered_action_type,
            Some(input.triggered_action_config),
        )?,
        rate_limit_per_minute: None,
        cooldown_seconds: None,
    })
}

/// `base` (the saved automation) with the fields `input` gives replaced.
pub async fn update(
    state: &AppState,
    user: &User,
    mut base: AutomationInput,
    input: UpdateFilterTriggerInput,
) -> async_graphql::Result<AutomationInput> {
    if let Some(name) = input.name {
        base.name =
            AutomationName::parse(&name).map_err(|e| errors::invalid("input.name", e.message))?;
    }
    if input.description.is_some() {
        base.description = input.description;
    }
    if let Some(enabled) = input.enabled {
        base.enabled = Some(enabled);
    }
    match (input.scope_type, input.scope_id) {
        (None, None) => {}
        (Some(t), Some(id)) => base.scope = scope(state, user, t, id.as_str()).await?,
        _ => {
            return Err(errors::invalid(
                "input.scopeID",
                "scopeType and scopeID change together",
            ))
        }
    }
    let event_type = match input.triggering_event_type {
        Some(t) => {
            base.event.event_type = t.domain().as_str().to_string();
            Some(t)
        }
        None => None,
    };
    if let Some(f) = input.event_filter {
        let t = match event_type {
            Some(t) => t,
            None => herald_domain::event::EventType::parse(&base.event.event_type)
                .map(EventTriggeringConditionType::of)
                .map_err(|e| errors::invalid("input.triggeringEventType", e.message))?,
        };
        base.event.filter = Some(event_filter(t, &f)?);
    }
    if let Some(t) = input.triggered_action_type {
        base.action = action(t, input.triggered_action_config)?;
    } else if input.triggered_action_config.is_some() {
        return Err(errors::invalid(
            "input.triggeredActionType",
            "give triggeredActionType with triggeredActionConfig",
        ));
    }
    Ok(base)
}
