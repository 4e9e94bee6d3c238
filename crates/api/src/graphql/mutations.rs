//! The mutation root: automations (`createFilterTrigger`, `updateFilterTrigger`,
//! `deleteTrigger`) and webhook integrations. Each checks access and validates through the
//! same engine calls as the REST routes.

use async_graphql::{Context, Object, SimpleObject, ID};
use herald_domain::automation::IntegrationKind;
use herald_domain::catalog::Role;
use herald_domain::ids::{AutomationId, IntegrationId};
use herald_domain::names::{IntegrationName, SecretName};
use herald_domain::webhook_url::WebhookUrl;
use herald_engine::access;
use herald_engine::automations::{validate, AutomationInput};
use herald_store::{IntegrationPatch, NewIntegration};

use super::catalog::parts;
use super::errors;
use super::inputs::{self, *};
use super::triggers::{GenericWebhookIntegration, IntegrationNode, TriggerNode};

#[derive(Default)]
pub struct AutomationMutation;

#[derive(SimpleObject)]
pub struct TriggerPayload {
    pub trigger: TriggerNode,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct SuccessPayload {
    pub success: bool,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct GenericWebhookIntegrationPayload {
    pub integration: GenericWebhookIntegration,
    pub client_mutation_id: Option<String>,
}

/// W&B answers 404 when the automation to change is not there; so does herald, also when it
/// is another team's.
const MISSING_TRIGGER: u16 = 404;

#[Object]
impl AutomationMutation {
    /// Creates an automation in the entity holding its scope. MEMBER or above there.
    async fn create_filter_trigger(
        &self,
        ctx: &Context<'_>,
        input: CreateFilterTriggerInput,
    ) -> async_graphql::Result<TriggerPayload> {
        let (state, user) = parts(ctx);
        let client_mutation_id = input.client_mutation_id.clone();
        let new = inputs::create(state, user, input).await?;
        let entity = access::entity(
            &*state.store,
            user,
            inputs::scope_entity(&new.scope),
            Role::Member,
        )
        .await
        .map_err(errors::plain)?
        .entity;
        let checked = validate(&*state.store, &entity, user, new)
            .await
            .map_err(|e| errors::engine(e, inputs::rename))?;
        let created = state
            .store
            .create_automation(&entity, checked)
            .await
            .map_err(errors::store)?;
        state.engine.automations_changed();
        Ok(TriggerPayload {
            trigger: TriggerNode::load(state, &entity, created).await?,
            client_mutation_id,
        })
    }

    /// Replaces the fields given of an automation. MEMBER or above; an automation stays in
    /// its entity.
    async fn update_filter_trigger(
        &self,
        ctx: &Context<'_>,
        input: UpdateFilterTriggerInput,
    ) -> async_graphql::Result<TriggerPayload> {
        let (state, user) = parts(ctx);
        let client_mutation_id = input.client_mutation_id.clone();
        let id = trigger_id(&input.id)?;
        let entity = automation_entity(ctx, id).await?;
        let current = state
            .store
            .automation(&entity, id)
            .await
            .map_err(|e| errors::missing_is(MISSING_TRIGGER)(e.into()))?;
        let merged = inputs::update(
            state,
            user,
            AutomationInput::from_automation(&current),
            input,
        )
        .await?;
        if inputs::scope_entity(&merged.scope) != entity.name.as_str() {
            return Err(errors::invalid(
                "input.scopeID",
                format!(
                    "an automation stays in its entity ({:?}); delete it and create it in {:?}",
                    entity.name.as_str(),
                    inputs::scope_entity(&merged.scope)
                ),
            ));
        }
        let checked = validate(&*state.store, &entity, user, merged)
            .await
            .map_err(|e| errors::engine(e, inputs::rename))?;
        let replaced = state
            .store
            .replace_automation(&entity, id, checked)
            .await
            .map_err(|e| errors::missing_is(MISSING_TRIGGER)(e.into()))?;
        state.engine.automation_saved(&replaced);
        Ok(TriggerPayload {
            trigger: TriggerNode::load(state, &entity, replaced).await?,
            client_mutation_id,
        })
    }

    /// Deletes an automation; its executions still waiting are cancelled. MEMBER or above.
    async fn delete_trigger(
        &self,
        ctx: &Context<'_>,
        input: DeleteTriggerInput,
    ) -> async_graphql::Result<SuccessPayload> {
        let state = parts(ctx).0;
        let id = trigger_id(&input.trigger_id)?;
        let entity = automation_entity(ctx, id).await?;
        state
            .store
            .delete_automation(&entity, id)
            .await
            .map_err(|e| errors::missing_is(MISSING_TRIGGER)(e.into()))?;
        state.engine.automation_withdrawn(id);
        Ok(SuccessPayload {
            success: true,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Creates a webhook integration in `entityName`. ADMIN only, as over REST.
    async fn create_generic_webhook_integration(
        &self,
        ctx: &Context<'_>,
        input: CreateGenericWebhookIntegrationInput,
    ) -> async_graphql::Result<GenericWebhookIntegrationPayload> {
        let (state, user) = parts(ctx);
        let entity = access::entity(&*state.store, user, &input.entity_name, Role::Admin)
            .await
            .map_err(errors::plain)?
            .entity;
        let name = IntegrationName::parse(&input.name)
            .map_err(|e| errors::invalid("input.name", e.message))?;
        let url = destination(ctx, &input.url_endpoint)?;
        let new = NewIntegration {
            kind: IntegrationKind::Webhook,
            name,
            url: Some(url),
            access_token_secret: secret_ref("input.accessTokenRef", input.access_token_ref)?,
            signing_secret: secret_ref("input.secretRef", input.secret_ref)?,
            slack: None,
            enabled: true,
        };
        let created = state
            .store
            .create_integration(&entity, new)
            .await
            .map_err(errors::store)?;
        Ok(GenericWebhookIntegrationPayload {
            integration: webhook_node(created)?,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Changes a webhook integration's name, URL or secrets. ADMIN only.
    async fn update_generic_webhook_integration(
        &self,
        ctx: &Context<'_>,
        input: UpdateGenericWebhookIntegrationInput,
    ) -> async_graphql::Result<GenericWebhookIntegrationPayload> {
        let state = parts(ctx).0;
        let (entity, id) = integration_entity(ctx, &input.id, Role::Admin).await?;
        let current = state
            .store
            .integration(&entity, id)
            .await
            .map_err(errors::store)?;
        if current.kind != IntegrationKind::Webhook {
            return Err(errors::invalid(
                "input.id",
                "is a Slack integration, not a webhook",
            ));
        }
        let url = input
            .url_endpoint
            .as_deref()
            .map(|u| destination(ctx, u))
            .transpose()?;
        let patch = IntegrationPatch {
            name: input
                .name
                .as_deref()
                .map(IntegrationName::parse)
                .transpose()
                .map_err(|e| errors::invalid("input.name", e.message))?,
            url,
            access_token_secret: secret_ref("input.accessTokenRef", input.access_token_ref)?
                .map(Some),
            signing_secret: secret_ref("input.secretRef", input.secret_ref)?.map(Some),
            slack: None,
            enabled: None,
        };
        let updated = state
            .store
            .update_integration(&entity, id, patch)
            .await
            .map_err(errors::store)?;
        state.engine.integrations_changed();
        Ok(GenericWebhookIntegrationPayload {
            integration: webhook_node(updated)?,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Deletes an integration; refused while an automation uses it. ADMIN only.
    async fn delete_integration(
        &self,
        ctx: &Context<'_>,
        input: DeleteIntegrationInput,
    ) -> async_graphql::Result<SuccessPayload> {
        let state = parts(ctx).0;
        let (entity, id) = integration_entity(ctx, &input.id, Role::Admin).await?;
        state
            .store
            .delete_integration(&entity, id)
            .await
            .map_err(errors::store)?;
        state.engine.integrations_changed();
        Ok(SuccessPayload {
            success: true,
            client_mutation_id: input.client_mutation_id,
        })
    }
}

/// An automation id; one that is not a Trigger id cannot name an automation, so it is a 404
/// like any other unknown one.
fn trigger_id(id: &ID) -> async_graphql::Result<AutomationId> {
    AutomationId::from_global(id).ok_or_else(|| {
        errors::not_found(
            format!("automation {:?} not found", id.as_str()),
            Some(MISSING_TRIGGER),
        )
    })
}

/// The entity holding automation `id`, where the caller is MEMBER or above.
async fn automation_entity(
    ctx: &Context<'_>,
    id: AutomationId,
) -> async_graphql::Result<herald_domain::catalog::Entity> {
    let (state, user) = parts(ctx);
    let what = format!("automation {:?}", id.to_global());
    let owner = state
        .store
        .automation_owner(id)
        .await
        .map_err(errors::store)?;
    access::owner(&*state.store, user, owner, &what, Role::Member)
        .await
        .map(|a| a.entity)
        .map_err(errors::missing_is(MISSING_TRIGGER))
}

/// The entity holding integration `id`, where the caller holds `role`.
async fn integration_entity(
    ctx: &Context<'_>,
    id: &ID,
    role: Role,
) -> async_graphql::Result<(herald_domain::catalog::Entity, IntegrationId)> {
    let (state, user) = parts(ctx);
    let missing = || errors::not_found(format!("integration {:?} not found", id.as_str()), None);
    let id = IntegrationId::from_global(id).ok_or_else(missing)?;
    let owner = state
        .store
        .integration_owner(id)
        .await
        .map_err(errors::store)?;
    let what = format!("integration {:?}", id.to_global());
    let entity = access::owner(&*state.store, user, owner, &what, role)
        .await
        .map_err(errors::plain)?
        .entity;
    Ok((entity, id))
}

/// A webhook URL this server may call.
fn destination(ctx: &Context<'_>, url: &str) -> async_graphql::Result<WebhookUrl> {
    let state = parts(ctx).0;
    let url =
        WebhookUrl::parse(url).map_err(|e| errors::invalid("input.urlEndpoint", e.message))?;
    state
        .engine
        .check_destination_url(url.as_str())
        .map_err(|e| errors::engine(e, |_| "input.urlEndpoint".into()))?;
    Ok(url)
}

/// A secret reference: the name of a team secret.
fn secret_ref(field: &str, given: Option<String>) -> async_graphql::Result<Option<SecretName>> {
    given
        .filter(|s| !s.is_empty())
        .map(|s| SecretName::parse(&s).map_err(|e| errors::invalid(field, e.message)))
        .transpose()
}

fn webhook_node(
    i: herald_domain::automation::Integration,
) -> async_graphql::Result<GenericWebhookIntegration> {
    match IntegrationNode::from(i) {
        IntegrationNode::GenericWebhookIntegration(w) => Ok(w),
        IntegrationNode::SlackIntegration(_) => Err(errors::invalid(
            "input.id",
            "is a Slack integration, not a webhook",
        )),
    }
}
