//! The event log of an entity.

use axum::extract::State;
use axum::Json;
use herald_domain::catalog::Role;
use herald_domain::event::Event;
use herald_engine::access;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::params::EntityPath;
use super::runs::{next_cursor, PageParams};
use crate::error::ApiResult;
use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::AppState;

#[derive(Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` for the next page; null when this page is the last one so far.
    pub next_cursor: Option<String>,
}

/// The entity's events, oldest first, with cursor pagination.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/events", tag = "events",
    params(EntityPath, PageParams),
    responses((status = 200, body = EventPage)))]
pub async fn list_events(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(EntityPath { entity }): ApiPath<EntityPath>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<EventPage>> {
    let page = q.parse()?;
    let a = access::entity(&*state.store, &user, &entity, Role::Viewer).await?;
    let events = state.store.list_events(a.entity.id, page).await?;
    let next_cursor = next_cursor(&events, page, |e| e.id.0);
    Ok(Json(EventPage {
        events,
        next_cursor,
    }))
}
