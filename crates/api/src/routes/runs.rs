//! Runs: creation, state changes and stop requests, history, and console lines.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use herald_domain::catalog::Role;
use herald_domain::console::ConsoleEntry;
use herald_domain::event::PageRequest;
use herald_domain::names::{RunName, TagName};
use herald_domain::run::{parse_config, HistoryRow, Run, RunState, MAX_HISTORY_ROWS};
use herald_domain::InvalidInput;
use herald_engine::access;
use herald_store::{ConsolePage, HistoryPage, LoggedHistory, NewRun};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::params::{ProjectPath, RunPath};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::AppState;

const MAX_DISPLAY_NAME: usize = 256;
const MAX_RUN_TAGS: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The run id; 8 random characters when absent.
    #[schema(value_type = Option<crate::doc::Identifier>)]
    pub id: Option<String>,
    #[schema(value_type = Option<crate::doc::DisplayName>)]
    pub display_name: Option<String>,
    /// At most 100.
    #[serde(default)]
    #[schema(value_type = Vec<crate::doc::Label>, max_items = 100)]
    pub tags: Vec<String>,
    /// A JSON object.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRun {
    /// RUNNING, FINISHED, FAILED, CRASHED (stored as FAILED) or KILLED; case-insensitive.
    pub state: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHistoryRow {
    #[schema(minimum = 0)]
    pub step: i64,
    #[schema(value_type = crate::doc::MetricValues)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogHistory {
    /// 1 to 10000 rows.
    #[schema(min_items = 1, max_items = 10000)]
    pub rows: Vec<RawHistoryRow>,
}

#[derive(Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<Run>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryRowOut {
    pub seq: i64,
    pub step: i64,
    #[schema(value_type = Object)]
    pub values: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryOut {
    pub rows: Vec<HistoryRowOut>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LoggedOut {
    pub rows: usize,
    pub values: usize,
    pub first_step: i64,
    pub last_step: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page: digits, as that field gives them (empty, or
    /// absent, means the first page).
    #[param(value_type = Option<String>, pattern = r"^[0-9]{0,19}$")]
    pub after: Option<String>,
    /// Items per page, 1 to 1000; 100 when absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl PageParams {
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(self.after.as_deref(), self.limit)?)
    }
}

/// The cursor for the page after `items`, if the page was full.
pub fn next_cursor<T>(items: &[T], page: PageRequest, id: impl Fn(&T) -> i64) -> Option<String> {
    (items.len() == page.limit as usize)
        .then(|| items.last().map(|i| id(i).to_string()))
        .flatten()
}

/// Starts a run (state RUNNING; a RUN_STATE event).
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/runs", tag = "runs", request_body = CreateRun,
    params(ProjectPath),
    responses((status = 201, body = Run),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The project already has a run with that id.")))]
pub async fn create_run(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(ProjectPath { entity, project }): ApiPath<ProjectPath>,
    ApiJson(body): ApiJson<CreateRun>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let project = access::project(&*state.store, &user, &entity, &project, Role::Member).await?;
    let id = match &body.id {
        Some(id) => RunName::parse(id).map_err(|e| e.at("id"))?,
        None => herald_engine::catalog::generate_run_id(),
    };
    if let Some(d) = &body.display_name {
        if d.is_empty() || d.chars().count() > MAX_DISPLAY_NAME || d.chars().any(char::is_control) {
            return Err(InvalidInput::new(
                "display_name",
                format!("display_name must be 1 to {MAX_DISPLAY_NAME} characters without control characters"),
            )
            .into());
        }
    }
    if body.tags.len() > MAX_RUN_TAGS {
        return Err(InvalidInput::new("tags", format!("at most {MAX_RUN_TAGS} tags")).into());
    }
    let tags = body
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| TagName::parse(t).map_err(|e| e.at(&format!("tags[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewRun {
        id,
        display_name: body.display_name,
        tags,
        config: parse_config(body.config)?,
        state: RunState::Running,
    };
    let run = state.store.create_run(&project, &user, new).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// The project's runs, oldest first.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/runs", tag = "runs",
    params(ProjectPath, PageParams), responses((status = 200, body = RunPage)))]
pub async fn list_runs(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(ProjectPath { entity, project }): ApiPath<ProjectPath>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<RunPage>> {
    let page = q.parse()?;
    let project = access::project(&*state.store, &user, &entity, &project, Role::Viewer).await?;
    let runs = state.store.list_runs(&project, page).await?;
    let next_cursor = next_cursor(&runs, page, |r| r.row_id.0);
    Ok(Json(RunPage { runs, next_cursor }))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/runs/{run}", tag = "runs",
    params(RunPath),
    responses((status = 200, body = Run)))]
pub async fn get_run(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(RunPath {
        entity,
        project,
        run,
    }): ApiPath<RunPath>,
) -> ApiResult<Json<Run>> {
    let project = access::project(&*state.store, &user, &entity, &project, Role::Viewer).await?;
    Ok(Json(state.store.run(&project, &run).await?))
}

/// Changes a run's state (a RUN_STATE event). Final states are final; repeating the current
/// state changes nothing.
#[utoipa::path(patch, path = "/api/v1/entities/{entity}/projects/{project}/runs/{run}", tag = "runs", request_body = UpdateRun,
    params(RunPath),
    responses((status = 200, body = Run),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The run is in a final state.")))]
pub async fn update_run(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(RunPath {
        entity,
        project,
        run,
    }): ApiPath<RunPath>,
    ApiJson(body): ApiJson<UpdateRun>,
) -> ApiResult<Json<Run>> {
    let project = access::project(&*state.store, &user, &entity, &project, Role::Member).await?;
    let run = RunName::parse(&run).map_err(|e| e.at("run"))?;
    let to = RunState::parse(&body.state)?;
    Ok(Json(
        state.store.set_run_state(&project, &user, &run, to).await?,
    ))
}

/// Asks a RUNNING run to stop, as W&B's Stop button does: the `wandb` SDK running it learns so
/// from its next file_stream answer and interrupts the script (within about half a minute), and
/// the run ends KILLED. Asking again changes nothing.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/runs/{run}/stop", tag = "runs",
    params(RunPath),
    responses((status = 200, body = Run),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The run has ended.")))]
pub async fn stop_run(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(RunPath {
        entity,
        project,
        run,
    }): ApiPath<RunPath>,
) -> ApiResult<Json<Run>> {
    let project = access::project(&*state.store, &user, &entity, &project, Role::Member).await?;
    let run = RunName::parse(&run).map_err(|e| e.at("run"))?;
    Ok(Json(state.store.request_stop(&project, &run).await?))
}

/// Appends history rows to a RUNNING run. Values must be finite numbers.
#[utoipa::path(post, path = "/api/v1/entities/{entity}/projects/{project}/runs/{run}/history", tag = "runs", request_body = LogHistory,
    params(RunPath),
    responses((status = 200, body = LoggedOut),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "The run is not RUNNING.")))]
pub async fn log_history(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(RunPath {
        entity,
        project,
        run,
    }): ApiPath<RunPath>,
    ApiJson(body): ApiJson<LogHistory>,
) -> ApiResult<Json<LoggedOut>> {
    if body.rows.is_empty() || body.rows.len() > MAX_HISTORY_ROWS {
        return Err(InvalidInput::new(
            "rows",
            format!(
                "a batch holds 1 to {MAX_HISTORY_ROWS} rows, got {}",
                body.rows.len()
            ),
        )
        .into());
    }
    let rows = body
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| HistoryRow::parse(r.step, &r.values).map_err(|e| e.at(&format!("rows[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let project = access::project(&*state.store, &user, &entity, &project, Role::Member).await?;
    let run = RunName::parse(&run).map_err(|e| e.at("run"))?;
    let LoggedHistory {
        rows,
        values,
        first_step,
        last_step,
    } = state
        .store
        .log_history(&project, &user, &run, &rows)
        .await?;
    Ok(Json(LoggedOut {
        rows,
        values,
        first_step,
        last_step,
    }))
}

/// A run's history in logging order.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/runs/{run}/history", tag = "runs",
    params(RunPath, PageParams),
    responses((status = 200, body = HistoryOut)))]
pub async fn get_history(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(RunPath {
        entity,
        project,
        run,
    }): ApiPath<RunPath>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<HistoryOut>> {
    let page = q.parse()?;
    let project = access::project(&*state.store, &user, &entity, &project, Role::Viewer).await?;
    let HistoryPage { rows } = state.store.history(&project, &run, page).await?;
    let next_cursor = next_cursor(&rows, page, |r| r.seq);
    let rows = rows
        .into_iter()
        .map(|r| HistoryRowOut {
            seq: r.seq,
            step: r.step,
            values: r.values,
        })
        .collect();
    Ok(Json(HistoryOut { rows, next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub struct ConsoleOut {
    /// Kept lines after the cursor, by number. Numbers may be missing: lines past
    /// `runs.console_max_lines`, and lines streamed while herald dropped them.
    pub lines: Vec<ConsoleEntry>,
    /// Lines the run has streamed, kept or not.
    pub line_count: i64,
    /// The last line number of a full page: pass it as `after` for the next.
    pub next_cursor: Option<String>,
}

/// A run's console: what its script printed, as the `wandb` SDK streamed it, by line number
/// (a line the SDK rewrote, such as a progress bar, reads as it was last sent). Lines are kept
/// when `runs.console` is `keep`, the default.
#[utoipa::path(get, path = "/api/v1/entities/{entity}/projects/{project}/runs/{run}/console", tag = "runs",
    params(RunPath, PageParams),
    responses((status = 200, body = ConsoleOut)))]
pub async fn get_console(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(RunPath {
        entity,
        project,
        run,
    }): ApiPath<RunPath>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<ConsoleOut>> {
    let page = q.parse()?;
    let project = access::project(&*state.store, &user, &entity, &project, Role::Viewer).await?;
    let ConsolePage { lines, line_count } = state.store.console(&project, &run, page).await?;
    let next_cursor = next_cursor(&lines, page, |l| l.line);
    Ok(Json(ConsoleOut {
        lines: lines.into_iter().map(ConsoleEntry::read).collect(),
        line_count,
        next_cursor,
    }))
}
