//! Automations and their executions. MEMBERs create and change automations and redeliver
//! executions; VIEWERs read them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::automation::{Automation, Execution, ExecutionStatus};
use herald_domain::catalog::{Role, User};
use herald_domain::ids::{AutomationId, ExecutionId, IntegrationId};
use herald_engine::access;
use herald_engine::automations::{merge_patch, validate, AutomationInput};
use herald_store::ExecutionQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{EntityPath, IdPath};
use super::runs::next_cursor;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AutomationFilter {
    /// Only the automation with this name.
    pub name: Option<String>,
}

async fn automation_access(
    state: &AppState,
    user: &User,
    id: i64,
    role: Role,
) -> ApiResult<access::EntityAccess> {
    let owner = state.store.automation_owner(AutomationId(id)).await?;
    Ok(access::owner(
        &*state.store,
        user,
        owner,
        &format!("automation {id}"),
        role,
    )
    .await?)
}

/// Creates an automation. MEMBER or above.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/automations", tag = "automations", request_body = AutomationInput,
    params(EntityPath),
    responses((status = 201, body = Automation),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The entity already has an automation of that name.")))]
pub async fn create_automation(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiJson(body): ApiJson<AutomationInput>,
) -> ApiResult<(StatusCode, Json<Automation>)> {
    let a = access::entity(&*state.store, &user, &entity, Role::Member).await?;
    let new = validate(&*state.store, &a.entity, &user, body).await?;
    let created = state.store.create_automation(&a.entity, new).await?;
    state.engine.automations_changed();
    Ok((StatusCode::CREATED, Json(created)))
}

/// The entity's automations, optionally by name.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/automations", tag = "automations",
    params(EntityPath, AutomationFilter), responses((status = 200, body = Vec<Automation>)))]
pub async fn list_automations(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiQuery(q): ApiQuery<AutomationFilter>,
) -> ApiResult<Json<Vec<Automation>>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Viewer).await?;
    Ok(Json(
        state
            .store
            .list_automations(&a.entity, q.name.as_deref())
            .await?,
    ))
}

/// One automation.
#[utoipa::path(get, path = "/api/v1/automations/{id}", tag = "automations", params(IdPath),
    responses((status = 200, body = Automation)))]
pub async fn get_automation(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<Automation>> {
    let a = automation_access(&state, &user, id, Role::Viewer).await?;
    Ok(Json(
        state.store.automation(&a.entity, AutomationId(id)).await?,
    ))
}

/// Replaces an automation (every field). MEMBER or above.
#[utoipa::path(put, path = "/api/v1/automations/{id}", tag = "automations", request_body = AutomationInput, params(IdPath),
    responses((status = 200, body = Automation),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The entity already has an automation of that name.")))]
pub async fn replace_automation(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiJson(body): ApiJson<AutomationInput>,
) -> ApiResult<Json<Automation>> {
    let a = automation_access(&state, &user, id, Role::Member).await?;
    let new = validate(&*state.store, &a.entity, &user, body).await?;
    let replaced = state
        .store
        .replace_automation(&a.entity, AutomationId(id), new)
        .await?;
    state.engine.automation_saved(&replaced);
    Ok(Json(replaced))
}

/// Changes some of an automation's top-level fields (`enabled`, `name`, `event`, …); each given
/// field replaces the stored one. MEMBER or above.
#[utoipa::path(patch, path = "/api/v1/automations/{id}", tag = "automations", request_body = Object, params(IdPath),
    responses((status = 200, body = Automation),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The entity already has an automation of that name.")))]
pub async fn patch_automation(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Automation>> {
    let a = automation_access(&state, &user, id, Role::Member).await?;
    let current = state.store.automation(&a.entity, AutomationId(id)).await?;
    let merged = merge_patch(&AutomationInput::from_automation(&current), &patch)?;
    let new = validate(&*state.store, &a.entity, &user, merged).await?;
    let replaced = state
        .store
        .replace_automation(&a.entity, AutomationId(id), new)
        .await?;
    state.engine.automation_saved(&replaced);
    Ok(Json(replaced))
}

/// Deletes an automation and cancels its executions still waiting for a first attempt or a
/// retry (an attempt in flight may finish). MEMBER or above.
#[utoipa::path(delete, path = "/api/v1/automations/{id}", tag = "automations", params(IdPath),
    responses((status = 204),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn delete_automation(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<StatusCode> {
    let a = automation_access(&state, &user, id, Role::Member).await?;
    state
        .store
        .delete_automation(&a.entity, AutomationId(id))
        .await?;
    state.engine.automation_withdrawn(AutomationId(id));
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExecutionParams {
    /// Only executions in this status (case-insensitive).
    #[param(value_type = Option<ExecutionStatus>)]
    pub status: Option<String>,
    /// Only this automation's executions (on an automation's own listing, ignored).
    pub automation: Option<i64>,
    /// The `next_cursor` of the previous page: digits, as that field gives them (empty, or
    /// absent, means the first page).
    #[param(value_type = Option<String>, pattern = r"^[0-9]{0,19}$")]
    pub after: Option<String>,
    /// Items per page, 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExecutionPage {
    pub executions: Vec<Execution>,
    pub next_cursor: Option<String>,
}

fn execution_query(
    q: &ExecutionParams,
    automation: Option<AutomationId>,
) -> ApiResult<ExecutionQuery> {
    Ok(ExecutionQuery {
        automation: automation.or(q.automation.map(AutomationId)),
        status: q
            .status
            .as_deref()
            .map(ExecutionStatus::parse)
            .transpose()?,
        page: herald_domain::event::PageRequest::parse(q.after.as_deref(), q.limit)?,
    })
}

/// An automation's executions, oldest first.
#[utoipa::path(get, path = "/api/v1/automations/{id}/executions", tag = "executions", params(IdPath, ExecutionParams),
    responses((status = 200, body = ExecutionPage)))]
pub async fn automation_executions(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiQuery(q): ApiQuery<ExecutionParams>,
) -> ApiResult<Json<ExecutionPage>> {
    let query = execution_query(&q, Some(AutomationId(id)))?;
    let a = automation_access(&state, &user, id, Role::Viewer).await?;
    let executions = state.store.list_executions(&a.entity, query).await?;
    let next_cursor = next_cursor(&executions, query.page, |x| x.id.0);
    Ok(Json(ExecutionPage {
        executions,
        next_cursor,
    }))
}

/// The entity's executions, oldest first.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/executions", tag = "executions", params(EntityPath, ExecutionParams),
    responses((status = 200, body = ExecutionPage)))]
pub async fn entity_executions(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiQuery(q): ApiQuery<ExecutionParams>,
) -> ApiResult<Json<ExecutionPage>> {
    let query = execution_query(&q, None)?;
    let a = access::entity(&*state.store, &user, &entity, Role::Viewer).await?;
    let executions = state.store.list_executions(&a.entity, query).await?;
    let next_cursor = next_cursor(&executions, query.page, |x| x.id.0);
    Ok(Json(ExecutionPage {
        executions,
        next_cursor,
    }))
}

async fn execution_access(
    state: &AppState,
    user: &User,
    id: i64,
    role: Role,
) -> ApiResult<access::EntityAccess> {
    let owner = state.store.execution_owner(ExecutionId(id)).await?;
    Ok(access::owner(&*state.store, user, owner, &format!("execution {id}"), role).await?)
}

/// One execution with every attempt.
#[utoipa::path(get, path = "/api/v1/executions/{id}", tag = "executions", params(IdPath),
    responses((status = 200, body = Execution)))]
pub async fn get_execution(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<Execution>> {
    let a = execution_access(&state, &user, id, Role::Viewer).await?;
    let mut x = state.store.execution(&a.entity, ExecutionId(id)).await?;
    // The stored request is the body; its URL and headers are those its integration sends.
    if let Some(integration) = x.request["integration_id"].as_i64() {
        let integration = state
            .store
            .integration(&a.entity, IntegrationId(integration))
            .await
            .ok();
        x.request = state.engine.shown_request(integration.as_ref(), &x);
    }
    Ok(Json(x))
}

/// Cancels an execution waiting for its first attempt or a retry: no new attempt starts (one
/// in flight may finish, and leaves it CANCELLED). MEMBER or above.
#[utoipa::path(post, path = "/api/v1/executions/{id}/cancel", tag = "executions", params(IdPath),
    responses((status = 200, body = Execution),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The execution is already final (FINISHED, FAILED, SKIPPED or CANCELLED).")))]
pub async fn cancel_execution(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<Execution>> {
    let a = execution_access(&state, &user, id, Role::Member).await?;
    Ok(Json(
        state
            .engine
            .cancel_execution(&a.entity, ExecutionId(id))
            .await?,
    ))
}

/// Delivers a finished, failed or skipped execution again, with the same `webhook-id`.
#[utoipa::path(post, path = "/api/v1/executions/{id}/redeliver", tag = "executions", params(IdPath),
    responses((status = 202, body = Execution),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The execution is still on its way (PENDING or RUNNING).")))]
pub async fn redeliver(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let a = execution_access(&state, &user, id, Role::Member).await?;
    let x = state.store.redeliver(&a.entity, ExecutionId(id)).await?;
    state.engine.notify_work();
    Ok((StatusCode::ACCEPTED, Json(x)))
}
