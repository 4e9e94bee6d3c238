//! Artifact collections and versions: creation, aliases, tags, links into registries, unlinks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::catalog::{
    check_description, parse_metadata, ArtifactVersion, Collection, Project, Role, User,
};
use herald_domain::names::{AliasName, ArtifactType, CollectionName, RunName, TagName, VersionRef};
use herald_domain::InvalidInput;
use herald_engine::access;
use herald_store::NewVersion;
use serde::Deserialize;
use utoipa::ToSchema;

use super::params::{
    CollectionPath, CollectionTagPath, ProjectPath, VersionAliasPath, VersionPath, VersionTagPath,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::AppState;

/// Most aliases or tags accepted in one request.
const MAX_LABELS: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArtifact {
    /// The sequence to add the version to; created on first use.
    #[schema(value_type = crate::doc::Identifier)]
    pub collection: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::doc::Identifier)]
    pub artifact_type: String,
    /// 1 to 256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    pub digest: Option<String>,
    /// At most 16384 characters.
    #[schema(max_length = 16384)]
    pub description: Option<String>,
    /// A JSON object, at most 512 KiB as JSON.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// At most 100; not `latest` (herald's own) and not of the form `vN`.
    #[serde(default)]
    #[schema(value_type = Vec<crate::doc::Label>, max_items = 100)]
    pub aliases: Vec<String>,
    /// At most 100.
    #[serde(default)]
    #[schema(value_type = Vec<crate::doc::Label>, max_items = 100)]
    pub tags: Vec<String>,
    /// The run that produced the version, in the same project.
    #[schema(value_type = Option<crate::doc::Identifier>)]
    pub run_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasBody {
    /// Not `latest` (herald's own) and not of the form `vN`.
    #[schema(value_type = crate::doc::Label)]
    pub alias: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    #[schema(value_type = crate::doc::Label)]
    pub tag: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    /// `org/name` (or `org/wandb-registry-name`); a bare name (`model`, `wandb-registry-model`)
    /// means a registry of the organization the version's team belongs to, or of the
    /// version's own entity when that is in no organization.
    pub registry: String,
    /// The registry collection; defaults to the source collection's name.
    #[schema(value_type = Option<crate::doc::Identifier>)]
    pub collection: Option<String>,
    /// At most 100; not `latest` and not of the form `vN`.
    #[serde(default)]
    #[schema(value_type = Vec<crate::doc::Label>, max_items = 100)]
    pub aliases: Vec<String>,
}

fn parse_list<T>(
    field: &str,
    items: &[String],
    parse: fn(&str) -> Result<T, InvalidInput>,
) -> Result<Vec<T>, ApiError> {
    if items.len() > MAX_LABELS {
        return Err(InvalidInput::new(
            field,
            format!("at most {MAX_LABELS} entries, got {}", items.len()),
        )
        .into());
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| parse(s).map_err(|e| e.at(&format!("{field}[{i}]")).into()))
        .collect()
}

fn version_ref(s: &str) -> Result<VersionRef, ApiError> {
    Ok(VersionRef::parse(s).map_err(|e| e.at("version"))?)
}

async fn project_for(
    state: &AppState,
    user: &User,
    e: &str,
    p: &str,
    role: Role,
) -> ApiResult<Project> {
    Ok(access::project(&*state.store, user, e, p, role).await?)
}

/// Creates the next version of an artifact collection (the collection is created on first use).
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/artifacts", tag = "artifacts",
    request_body = CreateArtifact, params(ProjectPath),
    responses((status = 201, body = ArtifactVersion),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The collection holds artifacts of another type.")))]
pub async fn create_version(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(ProjectPath { entity, project }): ApiPath<ProjectPath>,
    ApiJson(body): ApiJson<CreateArtifact>,
) -> ApiResult<(StatusCode, Json<ArtifactVersion>)> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let new = NewVersion {
        collection: CollectionName::parse(&body.collection).map_err(|e| e.at("collection"))?,
        artifact_type: ArtifactType::parse(&body.artifact_type).map_err(|e| e.at("type"))?,
        digest: match body.digest {
            Some(d) if d.is_empty() || d.len() > 256 => {
                return Err(
                    InvalidInput::new("digest", "digest must be 1 to 256 characters").into(),
                )
            }
            d => d,
        },
        description: {
            check_description("description", &body.description)?;
            body.description
        },
        metadata: parse_metadata(body.metadata)?,
        aliases: parse_list("aliases", &body.aliases, AliasName::parse)?,
        tags: parse_list("tags", &body.tags, TagName::parse)?,
        run: body
            .run_id
            .as_deref()
            .map(RunName::parse)
            .transpose()
            .map_err(|e| e.at("run_id"))?,
    };
    let v = state.store.create_version(&project, &user, new).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// The project's artifact collections.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/artifacts", tag = "artifacts",
    params(ProjectPath), responses((status = 200, body = Vec<Collection>)))]
pub async fn list_collections(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(ProjectPath { entity, project }): ApiPath<ProjectPath>,
) -> ApiResult<Json<Vec<Collection>>> {
    let project = project_for(&state, &user, &entity, &project, Role::Viewer).await?;
    Ok(Json(state.store.list_collections(&project).await?))
}

/// One artifact collection.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}", tag = "artifacts",
    params(CollectionPath),
    responses((status = 200, body = Collection)))]
pub async fn get_collection(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(CollectionPath {
        entity,
        project,
        collection,
    }): ApiPath<CollectionPath>,
) -> ApiResult<Json<Collection>> {
    let project = project_for(&state, &user, &entity, &project, Role::Viewer).await?;
    Ok(Json(state.store.collection(&project, &collection).await?))
}

/// The versions of a collection, oldest first.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions", tag = "artifacts",
    params(CollectionPath),
    responses((status = 200, body = Vec<ArtifactVersion>)))]
pub async fn list_versions(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(CollectionPath {
        entity,
        project,
        collection,
    }): ApiPath<CollectionPath>,
) -> ApiResult<Json<Vec<ArtifactVersion>>> {
    let project = project_for(&state, &user, &entity, &project, Role::Viewer).await?;
    Ok(Json(
        state.store.list_versions(&project, &collection).await?,
    ))
}

/// One version, by index (`v3`) or alias (`latest`, `production`).
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}", tag = "artifacts",
    params(VersionPath),
    responses((status = 200, body = ArtifactVersion)))]
pub async fn get_version(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(VersionPath {
        entity,
        project,
        collection,
        version,
    }): ApiPath<VersionPath>,
) -> ApiResult<Json<ArtifactVersion>> {
    let project = project_for(&state, &user, &entity, &project, Role::Viewer).await?;
    Ok(Json(
        state
            .store
            .version(&project, &collection, &version_ref(&version)?)
            .await?,
    ))
}

/// Puts an alias on a version; an alias held by another version of the collection moves.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}/aliases", tag = "artifacts",
    request_body = AliasBody,
    params(VersionPath),
    responses((status = 200, body = ArtifactVersion),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn add_alias(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(VersionPath {
        entity,
        project,
        collection,
        version,
    }): ApiPath<VersionPath>,
    ApiJson(body): ApiJson<AliasBody>,
) -> ApiResult<Json<ArtifactVersion>> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let alias = AliasName::parse(&body.alias).map_err(|e| e.at("alias"))?;
    Ok(Json(
        state
            .store
            .add_alias(
                &project,
                &user,
                &collection,
                &version_ref(&version)?,
                &alias,
            )
            .await?,
    ))
}

/// Removes an alias from a version.
#[utoipa::path(delete, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}/aliases/{alias}", tag = "artifacts",
    params(VersionAliasPath),
    responses((status = 200, body = ArtifactVersion),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn remove_alias(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(VersionAliasPath {
        entity,
        project,
        collection,
        version,
        alias,
    }): ApiPath<VersionAliasPath>,
) -> ApiResult<Json<ArtifactVersion>> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let alias = AliasName::parse(&alias).map_err(|e| e.at("alias"))?;
    Ok(Json(
        state
            .store
            .remove_alias(
                &project,
                &user,
                &collection,
                &version_ref(&version)?,
                &alias,
            )
            .await?,
    ))
}

/// Tags a version.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}/tags", tag = "artifacts",
    request_body = TagBody,
    params(VersionPath),
    responses((status = 200, body = ArtifactVersion),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn add_version_tag(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(VersionPath {
        entity,
        project,
        collection,
        version,
    }): ApiPath<VersionPath>,
    ApiJson(body): ApiJson<TagBody>,
) -> ApiResult<Json<ArtifactVersion>> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let tag = TagName::parse(&body.tag).map_err(|e| e.at("tag"))?;
    Ok(Json(
        state
            .store
            .add_version_tag(&project, &user, &collection, &version_ref(&version)?, &tag)
            .await?,
    ))
}

/// Removes a tag from a version.
#[utoipa::path(delete, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}/tags/{tag}", tag = "artifacts",
    params(VersionTagPath),
    responses((status = 200, body = ArtifactVersion),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn remove_version_tag(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(VersionTagPath {
        entity,
        project,
        collection,
        version,
        tag,
    }): ApiPath<VersionTagPath>,
) -> ApiResult<Json<ArtifactVersion>> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let tag = TagName::parse(&tag).map_err(|e| e.at("tag"))?;
    Ok(Json(
        state
            .store
            .remove_version_tag(&project, &user, &collection, &version_ref(&version)?, &tag)
            .await?,
    ))
}

/// Tags a collection.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/tags", tag = "artifacts",
    request_body = TagBody, params(CollectionPath),
    responses((status = 200, body = Collection),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn add_collection_tag(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(CollectionPath {
        entity,
        project,
        collection,
    }): ApiPath<CollectionPath>,
    ApiJson(body): ApiJson<TagBody>,
) -> ApiResult<Json<Collection>> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let tag = TagName::parse(&body.tag).map_err(|e| e.at("tag"))?;
    Ok(Json(
        state
            .store
            .add_collection_tag(&project, &user, &collection, &tag)
            .await?,
    ))
}

/// Removes a tag from a collection.
#[utoipa::path(delete, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/tags/{tag}", tag = "artifacts",
    params(CollectionTagPath),
    responses((status = 200, body = Collection),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn remove_collection_tag(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(CollectionTagPath {
        entity,
        project,
        collection,
        tag,
    }): ApiPath<CollectionTagPath>,
) -> ApiResult<Json<Collection>> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let tag = TagName::parse(&tag).map_err(|e| e.at("tag"))?;
    Ok(Json(
        state
            .store
            .remove_collection_tag(&project, &user, &collection, &tag)
            .await?,
    ))
}

/// Links a version into a registry collection (created on first link).
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}/links", tag = "artifacts",
    request_body = LinkBody,
    params(VersionPath),
    responses((status = 201, body = ArtifactVersion, description = "the version as seen in the registry collection"),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The version is already linked into that registry collection, or it holds artifacts of another type.")))]
pub async fn link_version(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(VersionPath {
        entity,
        project,
        collection,
        version,
    }): ApiPath<VersionPath>,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult<(StatusCode, Json<ArtifactVersion>)> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    let r = version_ref(&version)?;
    let target = CollectionName::parse(body.collection.as_deref().unwrap_or(&collection))
        .map_err(|e| e.at("collection"))?;
    let aliases = parse_list("aliases", &body.aliases, AliasName::parse)?;
    let registry =
        herald_engine::catalog::link_target(&*state.store, &user, &project, &body.registry).await?;
    let v = state
        .store
        .link_version(
            &project,
            &user,
            &collection,
            &r,
            &registry,
            &target,
            &aliases,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Unlinks a version from a registry collection (the version itself is kept).
#[utoipa::path(delete, path = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}/versions/{version}", tag = "artifacts",
    params(VersionPath),
    responses((status = 204),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER.")))]
pub async fn unlink_version(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(VersionPath {
        entity,
        project,
        collection,
        version,
    }): ApiPath<VersionPath>,
) -> ApiResult<StatusCode> {
    let project = project_for(&state, &user, &entity, &project, Role::Member).await?;
    if !project.is_registry {
        return Err(ApiError::bad_request(
            "invalid_input",
            format!(
                "{}/{} is not a registry; only links into registry collections can be removed",
                project.entity, project.name
            ),
        ));
    }
    state
        .store
        .unlink_version(&project, &user, &collection, &version_ref(&version)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
