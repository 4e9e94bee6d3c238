//! Saving automations: everything an automation says is checked here, once, when it is saved
//! — the scope exists and belongs to the entity, the scope/event pair is allowed, the filter
//! compiles, the integration is the entity's own, and every template placeholder is a known
//! variable or one of the integration's secrets — so a saved automation cannot fail at
//! matching time for a reason its author could have been told about.

use herald_domain::automation::{
    check_scope_event, is_run_event, Action, Automation, AutomationName, EventSpec, Integration,
    IntegrationKind, Scope, ScopeType, Severity, DEFAULT_RATE_LIMIT_PER_MINUTE,
};
use herald_domain::catalog::{check_description, Entity, User};
use herald_domain::event::EventType;
use herald_domain::filter::{Filter, FilterFields};
use herald_domain::ids::IntegrationId;
use herald_domain::run_filter::RunEventFilter;
use herald_domain::template::Template;
use herald_domain::InvalidInput;
use herald_store::{NewAutomation, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Longest cooldown: a year.
pub const MAX_COOLDOWN_SECONDS: u32 = 365 * 24 * 3600;
/// Longest Slack title and message templates, in characters (Slack's limits apply after rendering).
pub const MAX_TITLE: usize = 1_000;
pub const MAX_MESSAGE: usize = 10_000;

/// Most executions per minute an automation may be allowed.
pub const MAX_RATE_LIMIT: u32 = 1_000_000;

/// An automation as a client sends it (create, full update, and the base of a partial update).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutomationInput {
    /// 1 to 255 characters without control characters, not starting or ending with
    /// whitespace; unique in the entity.
    pub name: AutomationName,
    /// At most 16384 characters.
    #[cfg_attr(feature = "openapi", schema(max_length = 16384))]
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    pub scope: ScopeInput,
    pub event: EventInput,
    pub action: ActionInput,
    /// Executions per minute before further ones are SKIPPED: 1 to 1000000, default 60.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_000_000))]
    pub rate_limit_per_minute: Option<u32>,
    /// Run-metric automations: fire at most once per run per this many seconds, up to a
    /// year; default a day.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 31_536_000))]
    pub cooldown_seconds: Option<u32>,
}

/// What an automation watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopeInput {
    /// ARTIFACT_COLLECTION, PROJECT or ENTITY (case-insensitive).
    #[serde(rename = "type")]
    pub scope_type: String,
    /// `entity`, `entity/project` or `entity/project/collection`, inside the automation's
    /// entity, naming things that exist.
    pub path: String,
}

/// Which events fire it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventInput {
    /// An event type (`CREATE_ARTIFACT`, `ADD_ARTIFACT_ALIAS`, `LINK_MODEL`, `RUN_METRIC`,
    /// `RUN_STATE`, …) allowed for the scope.
    #[serde(rename = "type")]
    pub event_type: String,
    /// W&B's wire format; absent means "every event of this type in scope".
    #[cfg_attr(feature = "openapi", schema(value_type = Option<herald_domain::openapi::EventFilter>))]
    pub filter: Option<serde_json::Value>,
}

/// What it does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ActionInput {
    /// POSTs `payload` (a template) to a webhook integration of the entity.
    GenericWebhook {
        integration_id: i64,
        /// A JSON object, or a string holding JSON (W&B's `requestPayload`).
        #[cfg_attr(feature = "openapi", schema(value_type = Option<herald_domain::openapi::ObjectOrText>))]
        payload: Option<serde_json::Value>,
    },
    /// Posts a message to a Slack integration of the entity.
    Notification {
        integration_id: i64,
        /// At most 1000 characters; may use event variables.
        #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
        title: Option<String>,
        /// At most 10000 characters; may use event variables.
        #[cfg_attr(feature = "openapi", schema(max_length = 10000))]
        message: Option<String>,
        /// INFO, WARN or ERROR (case-insensitive); default INFO.
        severity: Option<String>,
    },
    /// Records executions and sends nothing.
    NoOp,
}

impl AutomationInput {
    /// The input that would recreate `a` (the base a PATCH is applied to).
    pub fn from_automation(a: &Automation) -> Self {
        Self {
            name: a.name.clone(),
            description: a.description.clone(),
            enabled: Some(a.enabled),
            scope: ScopeInput {
                scope_type: a.scope.scope_type.as_str().to_string(),
                path: a.scope.path.clone(),
            },
            event: EventInput {
                event_type: a.event.event_type.as_str().to_string(),
                filter: Some(a.event.filter.clone()),
            },
            action: match &a.action {
                Action::GenericWebhook {
                    integration_id,
                    payload,
                } => ActionInput::GenericWebhook {
                    integration_id: integration_id.0,
                    payload: Some(payload.clone()),
                },
                Action::Notification {
                    integration_id,
                    title,
                    message,
                    severity,
                } => ActionInput::Notification {
                    integration_id: integration_id.0,
                    title: title.clone(),
                    message: message.clone(),
                    severity: Some(severity.as_str().to_string()),
                },
                Action::NoOp => ActionInput::NoOp,
            },
            rate_limit_per_minute: Some(a.rate_limit_per_minute),
            cooldown_seconds: a.cooldown_seconds,
        }
    }
}

/// What decides whether an event fires an automation, compiled.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Artifact and collection events: a filter over the event's fields.
    Artifact(Filter),
    /// Run events: which runs, and the metric or state condition.
    Run(RunEventFilter),
}

impl Rule {
    /// The filter in W&B's wire format, as stored.
    pub fn to_wire(&self) -> serde_json::Value {
        match self {
            Self::Artifact(f) => f.to_wire(),
            Self::Run(r) => r.to_wire(),
        }
    }
}

/// Compiles an event spec's filter (absent means "every event" for artifact events; run events
/// need their condition).
pub fn compile_rule(
    event_type: EventType,
    filter: Option<&serde_json::Value>,
) -> Result<Rule, InvalidInput> {
    let rule = if is_run_event(event_type) {
        let empty = serde_json::json!({});
        RunEventFilter::parse(
            event_type,
            filter.filter(|f| !f.is_null()).unwrap_or(&empty),
        )
        .map(Rule::Run)
    } else {
        match filter {
            None | Some(serde_json::Value::Null) => Ok(Filter::empty(FilterFields::Artifact)),
            Some(f) => Filter::parse(f, FilterFields::Artifact),
        }
        .map(Rule::Artifact)
    };
    rule.map_err(|e| e.at("event.filter"))
}

/// The compiled rule of a stored event spec, for the matcher.
pub fn compile_spec(spec: &EventSpec) -> Result<Rule, InvalidInput> {
    compile_rule(spec.event_type, Some(&spec.filter))
}

/// The entity's integration `id`, or a 400 naming the field.
async fn entity_integration(store: &dyn Store, entity: &Entity, id: i64) -> Result<Integration> {
    match store.integration(entity, IntegrationId(id)).await {
        Ok(i) => Ok(i),
        Err(StoreError::NotFound(_)) => Err(InvalidInput::new(
            "action.integration_id",
            format!("integration {id} not found in {:?}", entity.name.as_str()),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Checks `input` for `entity` and returns what to store.
pub async fn validate(
    store: &dyn Store,
    entity: &Entity,
    author: &User,
    input: AutomationInput,
) -> Result<NewAutomation> {
    check_description("description", &input.description)?;

    let scope = Scope {
        scope_type: ScopeType::parse(&input.scope.scope_type)?,
        path: input.scope.path.clone(),
    };
    let path = scope.parse_path()?;
    if path.entity != entity.name.as_str() {
        return Err(InvalidInput::new(
            "scope.path",
            format!(
                "the scope must be inside {:?}, where the automation is created",
                entity.name.as_str()
            ),
        )
        .into());
    }
    let mut is_registry = false;
    if let Some(p) = &path.project {
        let project = match store.project(entity, p).await {
            Ok(p) => p,
            Err(StoreError::NotFound(m)) => return Err(InvalidInput::new("scope.path", m).into()),
            Err(e) => return Err(e.into()),
        };
        is_registry = project.is_registry;
        if let Some(c) = &path.collection {
            match store.collection(&project, c).await {
                Ok(_) => {}
                Err(StoreError::NotFound(m)) => {
                    return Err(InvalidInput::new("scope.path", m).into())
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    let event_type = EventType::parse(&input.event.event_type).map_err(|e| e.at("event"))?;
    check_scope_event(scope.scope_type, is_registry, event_type)?;
    let rule = compile_rule(event_type, input.event.filter.as_ref())?;
    let action = match input.action {
        ActionInput::NoOp => Action::NoOp,
        ActionInput::GenericWebhook {
            integration_id,
            payload,
        } => {
            let id = IntegrationId(integration_id);
            let integration = entity_integration(store, entity, integration_id).await?;
            if integration.kind != IntegrationKind::Webhook {
                return Err(InvalidInput::new(
                    "action.integration_id",
                    format!("integration {integration_id} is a Slack integration; GENERIC_WEBHOOK needs a webhook (use NOTIFICATION)"),
                )
                .into());
            }
            // No payload: what matters to the event's family (see `default_payload`).
            let payload =
                payload.unwrap_or_else(|| herald_domain::template::default_payload(event_type));
            let template = match &payload {
                serde_json::Value::String(s) => Template::parse_str(s),
                other => Template::parse(other),
            }
            .map_err(|e| e.at("action"))?;
            template
                .check(&integration.secret_names())
                .map_err(|e| e.at("action"))?;
            let payload = match payload {
                serde_json::Value::String(s) => {
                    serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))
                }
                other => other,
            };
            Action::GenericWebhook {
                integration_id: id,
                payload,
            }
        }
        ActionInput::Notification {
            integration_id,
            title,
            message,
            severity,
        } => {
            let integration = entity_integration(store, entity, integration_id).await?;
            if integration.kind != IntegrationKind::Slack {
                return Err(InvalidInput::new(
                    "action.integration_id",
                    format!("integration {integration_id} is a webhook; NOTIFICATION needs a Slack integration"),
                )
                .into());
            }
            for (field, text, limit) in [
                ("title", &title, MAX_TITLE),
                ("message", &message, MAX_MESSAGE),
            ] {
                if let Some(t) = text {
                    if t.chars().count() > limit {
                        return Err(InvalidInput::new(
                            format!("action.{field}"),
                            format!("{field} is over {limit} characters"),
                        )
                        .into());
                    }
                    // Titles and messages may use the event variables, never secrets.
                    Template::parse(&serde_json::Value::String(t.clone()))
                        .and_then(|tpl| tpl.check(&[]))
                        .map_err(|e| InvalidInput::new(format!("action.{field}"), e.message))?;
                }
            }
            let severity = match severity {
                Some(s) => Severity::parse(&s).map_err(|e| e.at("action"))?,
                None => Severity::Info,
            };
            Action::Notification {
                integration_id: IntegrationId(integration_id),
                title,
                message,
                severity,
            }
        }
    };

    let rate_limit = input
        .rate_limit_per_minute
        .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE);
    if rate_limit == 0 || rate_limit > MAX_RATE_LIMIT {
        return Err(InvalidInput::new(
            "rate_limit_per_minute",
            format!("rate_limit_per_minute must be between 1 and {MAX_RATE_LIMIT}"),
        )
        .into());
    }
    if input
        .cooldown_seconds
        .is_some_and(|c| c > MAX_COOLDOWN_SECONDS)
    {
        return Err(InvalidInput::new(
            "cooldown_seconds",
            format!("cooldown_seconds must be at most {MAX_COOLDOWN_SECONDS} (a year)"),
        )
        .into());
    }
    Ok(NewAutomation {
        name: input.name,
        description: input.description,
        enabled: input.enabled.unwrap_or(true),
        scope,
        event: EventSpec {
            event_type,
            filter: rule.to_wire(),
        },
        action,
        rate_limit_per_minute: rate_limit,
        cooldown_seconds: input.cooldown_seconds,
        created_by: author.username.to_string(),
    })
}

/// Applies a JSON merge patch (RFC 7396) of top-level fields to an automation's input form.
pub fn merge_patch(base: &AutomationInput, patch: &serde_json::Value) -> Result<AutomationInput> {
    let serde_json::Value::Object(p) = patch else {
        return Err(InvalidInput::new("", "a PATCH body must be a JSON object").into());
    };
    let mut merged = serde_json::to_value(base).map_err(|e| Error::Internal(e.into()))?;
    if let serde_json::Value::Object(m) = &mut merged {
        for (k, v) in p {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(merged)
        .map_err(|e| InvalidInput::new("", format!("invalid automation: {e}")).into())
}
