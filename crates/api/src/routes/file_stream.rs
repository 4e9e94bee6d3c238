//! `POST /files/{entity}/{project}/{run}/file_stream`: where the `wandb` SDK streams a run's
//! history, summary, console and system metrics, and finally its exit code; the answer says
//! whether the run was asked to stop, which is how wandb-core learns it. Each file's lines
//! carry an offset; lines the run already has are skipped (the SDK resends a post it got no
//! answer to), and a post starting past them is refused, so nothing is lost or doubled. Console
//! lines are the exception: wandb-core sends a line again to rewrite it, so each is kept (when
//! `runs.console` keeps them) by its number, the last text winning.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use herald_domain::catalog::Role;
use herald_domain::console::ConsolePolicy;
use herald_domain::names::RunName;
use herald_domain::wandb_run::history_line;
use herald_domain::InvalidInput;
use herald_engine::access;
use herald_store::{ConsoleChunk, StreamPost};
use serde::Deserialize;
use utoipa::ToSchema;

use super::params::RunPath;
use crate::error::ApiResult;
use crate::extract::{ApiPath, Caller, LargeJson};
use crate::AppState;

/// Most lines of one file in one post.
const MAX_LINES: usize = 1_000_000;
/// Largest post: the SDK sends every row logged since its last post (every 15 s by default), so
/// a fast loop's post outgrows the server's 1 MiB by far.
pub const MAX_POST_BYTES: usize = 64 * 1024 * 1024;

/// One post, as wandb-core sends it. Keys herald has no use for (`uploaded`, `preempting`,
/// `dropped`) are accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct FileStreamPost {
    /// File name → the lines appended from `offset` (0-based line number of the first).
    #[serde(default)]
    pub files: BTreeMap<String, FileChunk>,
    /// The run ended; `exitcode` says how (0: FINISHED; anything else: FAILED, or KILLED when
    /// the run was asked to stop).
    #[serde(default)]
    pub complete: bool,
    pub exitcode: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileChunk {
    #[schema(minimum = 0)]
    pub offset: i64,
    #[schema(max_items = 1000000)]
    pub content: Vec<String>,
}

/// What herald answers: whether the run was asked to stop.
#[derive(serde::Serialize, ToSchema)]
pub struct FileStreamAnswer {
    /// Someone asked the run to stop (`POST …/runs/{run}/stop`, or W&B's `stopRun`):
    /// wandb-core keeps the last answer and the SDK, polling it every 15 s, interrupts the
    /// script, whose last post then ends the run KILLED.
    pub stopped: bool,
}

/// Streams a run's files, as the `wandb` SDK does. MEMBER or above.
#[utoipa::path(post, path = "/files/{entity}/{project}/{run}/file_stream", tag = "wandb", request_body = FileStreamPost,
    params(RunPath),
    responses((status = 200, body = FileStreamAnswer),
              (status = 403, body = crate::error::ErrorBody, description = "The caller's role in the entity is below MEMBER."),
              (status = 409, body = crate::error::ErrorBody, description = "History for a run that already ended.")))]
pub async fn file_stream(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiPath(RunPath {
        entity,
        project,
        run,
    }): ApiPath<RunPath>,
    LargeJson(body): LargeJson<FileStreamPost, MAX_POST_BYTES>,
) -> ApiResult<Json<FileStreamAnswer>> {
    let project = access::project(&*state.store, &user, &entity, &project, Role::Member).await?;
    let run = RunName::parse(&run).map_err(|e| e.at("run"))?;
    let post = parse_post(body, &state.console)?;
    let run = state.store.stream_run(&project, &user, &run, post).await?;
    Ok(Json(FileStreamAnswer {
        stopped: run.stop_requested,
    }))
}

fn parse_post(body: FileStreamPost, console: &ConsolePolicy) -> Result<StreamPost, InvalidInput> {
    let mut post = StreamPost::default();
    for (name, chunk) in body.files {
        let at = |field: &str| format!("files.{name}.{field}");
        if chunk.offset < 0 {
            return Err(InvalidInput::new(at("offset"), "offset must be ≥ 0"));
        }
        if chunk.content.len() > MAX_LINES {
            return Err(InvalidInput::new(
                at("content"),
                format!(
                    "{} lines in one post; the limit is {MAX_LINES}",
                    chunk.content.len()
                ),
            ));
        }
        let count = chunk.content.len() as i64;
        match name.as_str() {
            "wandb-history.jsonl" => {
                let rows = chunk
                    .content
                    .iter()
                    .enumerate()
                    .map(|(i, line)| {
                        history_line(line, chunk.offset + i as i64).map_err(|e| {
                            let field = if e.path.is_empty() {
                                format!("content[{i}]")
                            } else {
                                format!("content[{i}].{}", e.path)
                            };
                            InvalidInput::new(at(&field), e.message)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                post.history = Some((chunk.offset, rows));
            }
            // The whole summary, one line, replacing the last.
            "wandb-summary.json" => {
                if let Some(last) = chunk.content.last() {
                    let v: serde_json::Value = serde_json::from_str(last).map_err(|e| {
                        InvalidInput::new(at("content"), format!("the summary is not JSON: {e}"))
                    })?;
                    if !v.is_object() {
                        return Err(InvalidInput::new(
                            at("content"),
                            "the summary must be a JSON object",
                        ));
                    }
                    post.summary = Some(v);
                }
            }
            "output.log" => {
                post.log = Some(ConsoleChunk {
                    offset: chunk.offset,
                    count,
                    kept: console.kept(chunk.offset, chunk.content),
                })
            }
            "wandb-events.jsonl" => post.events = Some((chunk.offset, count)),
            // Other files are the SDK's business; herald keeps none of them.
            _ => {}
        }
    }
    if body.complete {
        post.exit = Some(body.exitcode.unwrap_or(0));
    }
    Ok(post)
}
