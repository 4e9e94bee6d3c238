//! Entities (teams, organizations), their members, projects and registries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::catalog::{check_description, Entity, EntityKind, Member, Project, Role};
use herald_domain::names::{EntityName, ProjectName, RegistryName, Username};
use herald_domain::InvalidInput;
use herald_engine::{access, catalog};
use serde::Deserialize;
use utoipa::ToSchema;

use super::params::{EntityPath, MemberPath, ProjectPath};
use super::users::EntityRole;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NewEntityKind {
    Team,
    Organization,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEntity {
    #[schema(value_type = crate::doc::Identifier)]
    pub name: String,
    pub kind: NewEntityKind,
    /// Teams only: the organization the team belongs to (the caller must be its ADMIN).
    #[schema(value_type = Option<crate::doc::Identifier>)]
    pub organization: Option<String>,
}

/// Creates a team or organization; the caller becomes its ADMIN. A team may name the
/// organization it belongs to.
#[utoipa::path(post, path = "/api/v1/entities", tag = "entities", request_body = CreateEntity,
    responses((status = 201, body = Entity),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the organization is below ADMIN."),
              (status = 404, body = crate::error::ErrorBody, description = "The organization is not found (or not visible to the caller)."),
              (status = 409, body = crate::error::ErrorBody, description = "The name is taken by an entity or a user.")))]
pub async fn create_entity(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiJson(body): ApiJson<CreateEntity>,
) -> ApiResult<(StatusCode, Json<Entity>)> {
    let name = EntityName::parse(&body.name).map_err(|e| e.at("name"))?;
    let kind = match body.kind {
        NewEntityKind::Team => EntityKind::Team,
        NewEntityKind::Organization => EntityKind::Organization,
    };
    let organization = match &body.organization {
        None => None,
        Some(_) if kind != EntityKind::Team => {
            return Err(
                InvalidInput::new("organization", "only a team belongs to an organization").into(),
            )
        }
        Some(org) => {
            Some(catalog::organization_for_team(&*state.store, &user, org, "organization").await?)
        }
    };
    let entity = state
        .store
        .create_entity(&name, kind, organization.as_ref(), &user)
        .await?;
    Ok((StatusCode::CREATED, Json(entity)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEntity {
    /// The organization the team belongs to (the caller must be ADMIN of the team and of the
    /// organization), or null (or nothing) to take it out of its organization.
    #[schema(value_type = Option<crate::doc::Identifier>)]
    pub organization: Option<String>,
}

/// Changes a team's organization. ADMIN only.
#[utoipa::path(patch, path = "/api/v1/entities/{entity}", tag = "entities", request_body = UpdateEntity,
    params(EntityPath),
    responses((status = 200, body = Entity),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the team or the organization is below ADMIN.")))]
pub async fn update_entity(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiJson(body): ApiJson<UpdateEntity>,
) -> ApiResult<Json<Entity>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Admin).await?;
    if a.entity.kind != EntityKind::Team {
        return Err(InvalidInput::new(
            "organization",
            format!(
                "only a team belongs to an organization; {entity:?} is a {}",
                a.entity.kind.as_str()
            ),
        )
        .into());
    }
    let organization = match &body.organization {
        None => None,
        Some(org) => {
            Some(catalog::organization_for_team(&*state.store, &user, org, "organization").await?)
        }
    };
    let updated = state
        .store
        .set_organization(&a.entity, organization.as_ref())
        .await?;
    Ok(Json(updated))
}

/// The entities the caller is a member of, with their role in each.
#[utoipa::path(get, path = "/api/v1/entities", tag = "entities", responses((status = 200, body = Vec<EntityRole>)))]
pub async fn list_entities(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> ApiResult<Json<Vec<EntityRole>>> {
    let list = state.store.entities_of(&user).await?;
    Ok(Json(
        list.into_iter()
            .map(|(entity, role)| EntityRole { entity, role })
            .collect(),
    ))
}

/// One entity and the caller's role in it.
#[utoipa::path(get, path = "/api/v1/entities/{entity}", tag = "entities",
    params(EntityPath), responses((status = 200, body = EntityRole)))]
pub async fn get_entity(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
) -> ApiResult<Json<EntityRole>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Viewer).await?;
    Ok(Json(EntityRole {
        entity: a.entity,
        role: a.role,
    }))
}

/// The entity's members and their roles.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/members", tag = "entities",
    params(EntityPath), responses((status = 200, body = Vec<Member>)))]
pub async fn list_members(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
) -> ApiResult<Json<Vec<Member>>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Viewer).await?;
    Ok(Json(state.store.list_members(&a.entity).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    pub role: Role,
}

/// Adds a user to the entity or changes their role. ADMIN only.
#[utoipa::path(put, path = "/api/v1/entities/{entity}/members/{username}", tag = "entities", request_body = SetMember,
    params(MemberPath),
    responses((status = 200, body = Member),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN."),
              (status = 409, body = crate::error::ErrorBody, description = "The change would leave the entity without an ADMIN.")))]
pub async fn set_member(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(MemberPath { entity, username }): ApiPath<MemberPath>,
    ApiJson(body): ApiJson<SetMember>,
) -> ApiResult<Json<Member>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Admin).await?;
    if a.entity.kind == EntityKind::User {
        return Err(ApiError::bad_request(
            "invalid_input",
            "personal entities cannot have other members; create a team",
        ));
    }
    let username = Username::parse(&username).map_err(|e| e.at("username"))?;
    Ok(Json(
        state
            .store
            .set_member(&a.entity, &username, body.role)
            .await?,
    ))
}

/// Removes a member. ADMIN only; the last ADMIN cannot be removed.
#[utoipa::path(delete, path = "/api/v1/entities/{entity}/members/{username}", tag = "entities",
    params(MemberPath),
    responses((status = 204),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below ADMIN."),
              (status = 409, body = crate::error::ErrorBody, description = "The member is the entity's last ADMIN.")))]
pub async fn remove_member(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(MemberPath { entity, username }): ApiPath<MemberPath>,
) -> ApiResult<StatusCode> {
    let a = access::entity(&*state.store, &user, &entity, Role::Admin).await?;
    let username = Username::parse(&username).map_err(|e| e.at("username"))?;
    state.store.remove_member(&a.entity, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Not starting with `wandb-registry-`: registries are created on their own route.
    #[schema(value_type = crate::doc::Identifier)]
    pub name: String,
    /// At most 16384 characters.
    #[schema(max_length = 16384)]
    pub description: Option<String>,
}

/// Creates a project. MEMBER or above.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects", tag = "projects", request_body = CreateProject,
    params(EntityPath),
    responses((status = 201, body = Project),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The entity already has a project of that name.")))]
pub async fn create_project(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let a = access::entity(&*state.store, &user, &entity, Role::Member).await?;
    let name = ProjectName::parse(&body.name).map_err(|e| e.at("name"))?;
    if name.is_registry() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "name: project names starting with \"wandb-registry-\" are registries; create them with POST /api/v1/entities/{org}/registries",
        )
        .with_path("name"));
    }
    check_description("description", &body.description)?;
    let p = state
        .store
        .create_project(&a.entity, &name, body.description.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// The entity's projects and registries.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects", tag = "projects",
    params(EntityPath), responses((status = 200, body = Vec<Project>)))]
pub async fn list_projects(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
) -> ApiResult<Json<Vec<Project>>> {
    let a = access::entity(&*state.store, &user, &entity, Role::Viewer).await?;
    Ok(Json(state.store.list_projects(&a.entity).await?))
}

/// One project or registry.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}", tag = "projects",
    params(ProjectPath),
    responses((status = 200, body = Project)))]
pub async fn get_project(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(ProjectPath { entity, project }): ApiPath<ProjectPath>,
) -> ApiResult<Json<Project>> {
    Ok(Json(
        access::project(&*state.store, &user, &entity, &project, Role::Viewer).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRegistry {
    /// The registry's short name: `model` creates the project `wandb-registry-model`.
    #[schema(value_type = crate::doc::RegistryName)]
    pub name: String,
    /// At most 16384 characters.
    #[schema(max_length = 16384)]
    pub description: Option<String>,
}

/// Creates a registry in an organization. MEMBER or above.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/registries", tag = "projects", request_body = CreateRegistry,
    params(EntityPath),
    responses((status = 201, body = Project),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The organization already has a registry of that name.")))]
pub async fn create_registry(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiJson(body): ApiJson<CreateRegistry>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let a = access::entity(&*state.store, &user, &entity, Role::Member).await?;
    if a.entity.kind != EntityKind::Organization {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!(
                "registries belong to organizations; {:?} is a {}",
                a.entity.name.as_str(),
                a.entity.kind.as_str()
            ),
        ));
    }
    let name = RegistryName::parse(&body.name).map_err(|e| e.at("name"))?;
    check_description("description", &body.description)?;
    let p = state
        .store
        .create_project(
            &a.entity,
            &ProjectName::for_registry(&name),
            body.description.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}
