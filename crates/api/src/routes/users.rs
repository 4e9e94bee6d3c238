//! Users: creation by a server admin, and the caller's own view.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::catalog::{Entity, Role, User};
use herald_domain::names::Username;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Caller};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(value_type = crate::doc::Identifier)]
    pub username: String,
    /// An address with an `@`, at most 320 bytes.
    #[schema(max_length = 320, pattern = "@")]
    pub email: Option<String>,
    /// Make the new user a server admin too.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    pub user: User,
    /// The user's API key. It is shown only here, once.
    pub api_key: String,
}

/// Creates a user (and their personal entity) with a first API key. Server admins only.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = CreatedUser),
              (status = 403, body = crate::error::ErrorBody, description = "The caller is not a server admin."),
              (status = 409, body = crate::error::ErrorBody, description = "The username is taken.")))]
pub async fn create_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    if !caller.is_admin {
        return Err(ApiError::forbidden("only server admins can create users"));
    }
    let username = Username::parse(&body.username).map_err(|e| e.at("username"))?;
    if let Some(email) = &body.email {
        if !email.contains('@') || email.len() > 320 {
            return Err(ApiError::bad_request(
                "invalid_input",
                format!("email: {email:?} is not an email address"),
            )
            .with_path("email"));
        }
    }
    let (user, api_key) =
        herald_engine::auth::create_user(&*state.store, username, body.email, body.admin).await?;
    Ok((StatusCode::CREATED, Json(CreatedUser { user, api_key })))
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct EntityRole {
    pub entity: Entity,
    pub role: Role,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Viewer {
    pub user: User,
    pub entities: Vec<EntityRole>,
}

/// Who the API key belongs to, and the entities they are a member of.
#[utoipa::path(get, path = "/api/v1/viewer", tag = "users", responses((status = 200, body = Viewer)))]
pub async fn viewer(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> ApiResult<Json<Viewer>> {
    let entities = state.store.entities_of(&user).await?;
    Ok(Json(Viewer {
        user,
        entities: entities
            .into_iter()
            .map(|(entity, role)| EntityRole { entity, role })
            .collect(),
    }))
}
