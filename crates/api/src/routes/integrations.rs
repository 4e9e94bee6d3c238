//! Team secrets and webhook integrations. ADMINs write them; MEMBERs may read names and
//! integrations (they need them to write automations). Secret values are write-only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::automation::{
    Integration, IntegrationKind, IntegrationName, SecretMeta, SecretName, SlackTarget, WebhookUrl,
    DEFAULT_SECRET_GRACE_SECONDS, MAX_SECRET_GRACE_SECONDS, MAX_SECRET_VALUE,
};
use herald_domain::catalog::Role;
use herald_domain::ids::IntegrationId;
use herald_domain::InvalidInput;
use herald_engine::access;
use herald_engine::delivery::TestOutcome;
use herald_store::{IntegrationPatch, NewIntegration};
use serde::Deserialize;
use utoipa::ToSchema;

use super::params::{EntityPath, IdPath, SecretPath};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Caller, OptionalJson};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The secret's value, 1 to 16384 bytes; it is encrypted at rest and never returned.
    #[schema(min_length = 1, max_length = 16384)]
    pub value: String,
    /// On a rotation, how long the value replaced keeps signing deliveries beside the new one
    /// (0 to 604800 seconds; default 86400, a day). 0 ends every previous value at once, as
    /// for a leaked secret.
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_seconds: Option<i64>,
}

/// Creates or rotates a team secret. ADMIN only. Deliveries signed with a rotated secret carry
/// a `webhook-signature` under the new value and under each previous value still in its grace
/// period, so receivers can switch without rejecting a message. Putting the value the secret
/// already has is no rotation: its previous values stay as they are.
#[utoipa::path(put, path = "/api/v1/entities/{entity}/secrets/{name}", tag = "secrets", request_body = SecretValue,
    params(SecretPath),
    responses((status = 201, body = SecretMeta, description = "created"), (status = 200, body = SecretMeta, description = "rotated"),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN.")))]
pub async fn put_secret(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(SecretPath { entity, name }): ApiPath<SecretPath>,
    ApiJson(body): ApiJson<SecretValue>,
) -> ApiResult<(StatusCode, Json<SecretMeta>)> {
    let a = access::entity(&*state.store, &user, &entity, Role::Admin).await?;
    let secret = SecretName::parse(&name).map_err(|e| e.at("name"))?;
    let name = secret.as_str();
    if body.value.is_empty() || body.value.len() > MAX_SECRET_VALUE {
        return Err(InvalidInput::new(
            "value",
            format!("value must be 1 to {MAX_SECRET_VALUE} bytes"),
        )
        .into());
    }
    let grace = match body.grace_period_seconds {
        None => DEFAULT_SECRET_GRACE_SECONDS,
        Some(s) => u32::try_from(s)
            .ok()
            .filter(|s| *s <= MAX_SECRET_GRACE_SECONDS)
            .ok_or_else(|| {
                InvalidInput::new(
                    "grace_period_seconds",
                    format!(
                        "grace_period_seconds must be between 0 and {MAX_SECRET_GRACE_SECONDS}"
                    ),
                )
            })?,
    };
    let grace = std::time::Duration::from_secs(grace.into());
    let key = state.engine.master_key();
    let stored = state.store.sealed_secret(a.entity.id, name).await?;
    let retire = match stored.map(|s| key.open(a.entity.id, name, &s.sealed)) {
        // The value the secret already has (a configuration tool applying itself again): no
        // rotation, so the previous values keep their grace periods and the current value
        // does not join them.
        Some(Some(current)) if current == body.value => None,
        // Sealed under another master key: nothing this server could sign with is kept.
        Some(None) => Some(std::time::Duration::ZERO),
        _ => Some(grace),
    };
    let sealed = key.seal(a.entity.id, name, &body.value);
    let (meta, created) = state
        .store
        .put_secret(&a.entity, name, &sealed, retire)
        .await?;
    state.engine.secrets_changed();
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(meta),
    ))
}

/// The team's secret names (never their values). MEMBER or above.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/secrets", tag = "secrets",
    params(EntityPath), responses((status = 200, body = Vec<SecretMeta>),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn list_secrets(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
) -> ApiResult<Json<Vec<SecretMeta>>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Member).await?;
    Ok(Json(state.store.list_secrets(&a.entity).await?))
}

/// Deletes a secret. ADMIN only; refused while an integration uses it.
#[utoipa::path(delete, path = "/api/v1/entities/{entity}/secrets/{name}", tag = "secrets",
    params(SecretPath),
    responses((status = 204),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN."),
              (status = 409, body = crate::error::ErrorBody, description = "An integration uses the secret.")))]
pub async fn delete_secret(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(SecretPath { entity, name }): ApiPath<SecretPath>,
) -> ApiResult<StatusCode> {
    let a = access::entity(&*state.store, &user, &entity, Role::Admin).await?;
    state.store.delete_secret(&a.entity, &name).await?;
    state.engine.secrets_changed();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegration {
    /// `webhook` or `slack`.
    pub kind: IntegrationKind,
    pub name: IntegrationName,
    /// Webhooks: the http(s) URL deliveries are POSTed to (at most 4096 bytes, no
    /// credentials, no spaces).
    #[schema(value_type = Option<String>, max_length = 4096, pattern = "^https?://")]
    pub url: Option<WebhookUrl>,
    /// Slack: the channel's name (for display).
    pub channel_name: Option<String>,
    /// Slack: the workspace's name (for display).
    pub workspace_name: Option<String>,
    /// Slack: a secret holding an incoming-webhook URL…
    pub webhook_url_secret: Option<SecretName>,
    /// …or a secret holding a bot token, with `channel_id`, for `chat.postMessage`.
    pub bot_token_secret: Option<SecretName>,
    pub channel_id: Option<String>,
    /// Secret sent as `Authorization: Bearer …` (and usable as `${ACCESS_TOKEN}`).
    pub access_token_secret: Option<SecretName>,
    /// Secret that signs deliveries (`X-Wandb-Signature`, `webhook-signature`).
    pub signing_secret: Option<SecretName>,
    pub enabled: Option<bool>,
}

/// Creates a webhook or Slack integration. ADMIN only.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/integrations", tag = "integrations", request_body = CreateIntegration,
    params(EntityPath),
    responses((status = 201, body = Integration),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN."),
              (status = 409, body = crate::error::ErrorBody, description = "The entity already has an integration of that name.")))]
pub async fn create_integration(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiJson(body): ApiJson<CreateIntegration>,
) -> ApiResult<(StatusCode, Json<Integration>)> {
    let a = access::entity(&*state.store, &user, &entity, Role::Admin).await?;
    let (url, slack) = match body.kind {
        IntegrationKind::Webhook => {
            let url = body
                .url
                .ok_or_else(|| InvalidInput::new("url", "a webhook integration needs a url"))?;
            state.engine.check_destination_url(url.as_str())?;
            for (field, given) in [
                ("channel_name", body.channel_name.is_some()),
                ("webhook_url_secret", body.webhook_url_secret.is_some()),
                ("bot_token_secret", body.bot_token_secret.is_some()),
            ] {
                if given {
                    return Err(InvalidInput::new(
                        field,
                        format!("{field} is for Slack integrations"),
                    )
                    .into());
                }
            }
            (Some(url), None)
        }
        IntegrationKind::Slack => {
            if body.url.is_some()
                || body.access_token_secret.is_some()
                || body.signing_secret.is_some()
            {
                return Err(InvalidInput::new(
                    "url",
                    "Slack integrations post through webhook_url_secret or bot_token_secret, not url or webhook secrets",
                )
                .into());
            }
            let target = SlackTarget {
                channel_name: body.channel_name.ok_or_else(|| {
                    InvalidInput::new("channel_name", "a Slack integration needs channel_name")
                })?,
                workspace_name: body.workspace_name,
                webhook_url_secret: body.webhook_url_secret,
                bot_token_secret: body.bot_token_secret,
                channel_id: body.channel_id,
            };
            target.check()?;
            (None, Some(target))
        }
    };
    let new = NewIntegration {
        kind: body.kind,
        name: body.name,
        url,
        access_token_secret: body.access_token_secret,
        signing_secret: body.signing_secret,
        slack,
        enabled: body.enabled.unwrap_or(true),
    };
    Ok((
        StatusCode::CREATED,
        Json(state.store.create_integration(&a.entity, new).await?),
    ))
}

/// The team's integrations. MEMBER or above.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/integrations", tag = "integrations",
    params(EntityPath), responses((status = 200, body = Vec<Integration>),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn list_integrations(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
) -> ApiResult<Json<Vec<Integration>>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Member).await?;
    Ok(Json(state.store.list_integrations(&a.entity).await?))
}

async fn integration_access(
    state: &AppState,
    user: &herald_domain::catalog::User,
    id: i64,
    role: Role,
) -> ApiResult<access::EntityAccess> {
    let owner = state.store.integration_owner(IntegrationId(id)).await?;
    Ok(access::owner(
        &*state.store,
        user,
        owner,
        &format!("integration {id}"),
        role,
    )
    .await?)
}

/// One integration. MEMBER or above.
#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations", params(IdPath),
    responses((status = 200, body = Integration),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn get_integration(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<Integration>> {
    let a = integration_access(&state, &user, id, Role::Member).await?;
    Ok(Json(
        state
            .store
            .integration(&a.entity, IntegrationId(id))
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIntegration {
    pub name: Option<IntegrationName>,
    /// At most 4096 bytes, http(s), no credentials, no spaces.
    #[schema(value_type = Option<String>, max_length = 4096, pattern = "^https?://")]
    pub url: Option<WebhookUrl>,
    /// A secret name, or null to remove the access token.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<SecretName>)]
    pub access_token_secret: Option<Option<SecretName>>,
    /// A secret name, or null to stop signing.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<SecretName>)]
    pub signing_secret: Option<Option<SecretName>>,
    /// Re-enabling clears the reason herald disabled it for.
    pub enabled: Option<bool>,
}

/// Distinguishes an absent field (`None`) from an explicit null (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<SecretName>>, D::Error> {
    Option::<SecretName>::deserialize(d).map(Some)
}

/// Changes an integration. ADMIN only.
#[utoipa::path(patch, path = "/api/v1/integrations/{id}", tag = "integrations", request_body = UpdateIntegration,
    params(IdPath),
    responses((status = 200, body = Integration),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN."),
              (status = 409, body = crate::error::ErrorBody, description = "The entity already has an integration of that name.")))]
pub async fn update_integration(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiJson(body): ApiJson<UpdateIntegration>,
) -> ApiResult<Json<Integration>> {
    let a = integration_access(&state, &user, id, Role::Admin).await?;
    if let Some(u) = &body.url {
        state.engine.check_destination_url(u.as_str())?;
    }
    let patch = IntegrationPatch {
        name: body.name,
        url: body.url,
        access_token_secret: body.access_token_secret,
        signing_secret: body.signing_secret,
        slack: None,
        enabled: body.enabled,
    };
    let updated = state
        .store
        .update_integration(&a.entity, IntegrationId(id), patch)
        .await?;
    state.engine.integrations_changed();
    Ok(Json(updated))
}

/// Deletes an integration. ADMIN only; refused while an automation uses it.
#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "integrations", params(IdPath),
    responses((status = 204),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN."),
              (status = 409, body = crate::error::ErrorBody, description = "An automation uses the integration.")))]
pub async fn delete_integration(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<StatusCode> {
    let a = integration_access(&state, &user, id, Role::Admin).await?;
    state
        .store
        .delete_integration(&a.entity, IntegrationId(id))
        .await?;
    state.engine.integrations_changed();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The payload to send (a JSON object, or a string holding one); may use
    /// `${ACCESS_TOKEN}` and the integration's secrets. A small default when absent.
    #[schema(value_type = Option<herald_domain::openapi::ObjectOrText>)]
    pub payload: Option<serde_json::Value>,
}

#[derive(serde::Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    pub status_code: Option<u16>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// The first 4 KiB of the destination's answer.
    pub response: Option<String>,
    pub duration_ms: f64,
    /// What was sent, secrets masked.
    #[schema(value_type = Object)]
    pub request_body: serde_json::Value,
}

/// The test payload as the object to send: given as one, or as a string holding one (W&B's
/// `requestPayload` is text). Anything else would be sent as no webhook or Slack message is.
fn test_payload(payload: serde_json::Value) -> Result<serde_json::Value, InvalidInput> {
    use serde_json::Value;
    let parsed = match payload {
        Value::String(text) => serde_json::from_str::<Value>(&text).map_err(|e| {
            InvalidInput::new(
                "payload",
                format!("payload is a string but not the text of a JSON object: {e}"),
            )
        })?,
        other => other,
    };
    if !parsed.is_object() {
        return Err(InvalidInput::new(
            "payload",
            format!(
                "payload must be a JSON object (or a string holding one), not {}",
                herald_domain::catalog::json_kind(&parsed)
            ),
        ));
    }
    Ok(parsed)
}

/// Sends a payload through the integration now and returns the destination's answer. ADMIN only.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/test", tag = "integrations", request_body = Option<TestRequest>,
    params(IdPath),
    responses((status = 200, body = TestResult),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN."),
              (status = 409, body = crate::error::ErrorBody, description = "A secret the integration needs cannot be opened.")))]
pub async fn test_integration(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    OptionalJson(request): OptionalJson<TestRequest>,
) -> ApiResult<Json<TestResult>> {
    let a = integration_access(&state, &user, id, Role::Admin).await?;
    let integration = state
        .store
        .integration(&a.entity, IntegrationId(id))
        .await?;
    // The body is optional: an empty one sends the default test payload.
    let request = request.unwrap_or_default();
    let payload = request.payload.map(test_payload).transpose()?;
    let e = &state.engine;
    let TestOutcome {
        ok,
        status_code,
        error_class,
        error,
        response,
        duration_ms,
        request_body,
    } = e.test_integration(&integration, payload).await?;
    Ok(Json(TestResult {
        ok,
        status_code,
        error_class,
        error,
        response,
        duration_ms,
        request_body,
    }))
}
