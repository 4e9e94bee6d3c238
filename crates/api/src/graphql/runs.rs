//! Runs as the `wandb` SDK writes and reads them: `upsertBucket` (every `wandb.init`, and again
//! as the config grows), `model { bucket }` (a resume), `createRunFiles`, `stopRun`, and the
//! `Run` type the public API reads. History, summary and the exit code arrive over file_stream
//! (`routes/file_stream.rs`).

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use herald_domain::catalog::{EntityKind, Project, Role, User};
use herald_domain::ids::RunId;
use herald_domain::names::{ProjectName, RunName, TagName};
use herald_domain::run::Run;
use herald_domain::wandb_run::{unwrap_config, wrap_config};
use herald_engine::access;
use herald_store::{RunPatch, StoreError};

use super::catalog::{parts, timestamp, ProjectNode};
use super::errors;
use super::scalars::JsonString;
use crate::AppState;

/// W&B's project when a script names none.
const DEFAULT_PROJECT: &str = "uncategorized";
/// Rows a resumed run is shown of its history's end.
const TAIL_ROWS: u32 = 10;
/// Most rows `history(samples:)` returns.
const MAX_SAMPLES: i32 = 100_000;

#[derive(Default)]
pub struct RunQuery;

#[Object]
impl RunQuery {
    /// W&B's older name for a project (the SDK's RunResumeStatus asks for it).
    async fn model(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        entity_name: Option<String>,
    ) -> async_graphql::Result<Option<ProjectNode>> {
        let (state, user) = parts(ctx);
        let entity = entity_name.unwrap_or_else(|| user.username.to_string());
        let name = name.unwrap_or_else(|| DEFAULT_PROJECT.to_string());
        super::catalog::visible_project(state, user, &entity, &name).await
    }
}

#[derive(Default)]
pub struct RunMutation;

/// `upsertBucket`'s input: what `wandb.init` knows of the run. Null means "leave as it is".
#[derive(InputObject)]
pub struct UpsertBucketInput {
    /// The run's id from an earlier answer, when resuming.
    pub id: Option<String>,
    /// The run id (W&B's `name`), made by the SDK.
    pub name: Option<String>,
    /// The project; `uncategorized` when absent.
    pub model_name: Option<String>,
    /// The entity; the caller's own when absent.
    pub entity_name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub notes: Option<String>,
    pub config: Option<JsonString>,
    pub tags: Option<Vec<String>>,
    pub group_name: Option<String>,
    pub commit: Option<String>,
    pub host: Option<String>,
    pub debug: Option<bool>,
    pub job_program: Option<String>,
    pub job_repo: Option<String>,
    pub job_type: Option<String>,
    /// Ignored: a run's state follows its file_stream.
    pub state: Option<String>,
    pub sweep: Option<String>,
    pub summary_metrics: Option<JsonString>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UpsertBucketPayload {
    pub bucket: RunNode,
    pub inserted: bool,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct CreateRunFilesInput {
    pub entity_name: String,
    pub project_name: String,
    pub run_name: String,
    pub files: Vec<String>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct RunFile {
    pub name: String,
    /// Where to PUT the file: an absolute URL signed for it.
    pub upload_url: Option<String>,
}

/// `stopRun`'s input: the run, by the id herald gave it.
#[derive(InputObject)]
pub struct StopRunInput {
    pub id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct StopRunPayload {
    /// Whether the run is now asked to stop: false for one that has already ended.
    pub success: bool,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateRunFilesPayload {
    #[graphql(name = "runID")]
    pub run_id: ID,
    pub upload_headers: Vec<String>,
    pub files: Vec<RunFile>,
    pub client_mutation_id: Option<String>,
}

#[Object]
impl RunMutation {
    /// Creates or updates a run (`wandb.init`). MEMBER or above; a project named for the first
    /// time is created.
    async fn upsert_bucket(
        &self,
        ctx: &Context<'_>,
        input: UpsertBucketInput,
    ) -> async_graphql::Result<UpsertBucketPayload> {
        let (state, user) = parts(ctx);
        let (project, name, resume) = match input.id.as_deref().and_then(RunId::from_global) {
            // A resume names the run by the id herald gave it.
            Some(row) if input.name.is_none() => {
                let found = run_by_row(state, user, row).await?;
                (found.0, RunName::from_trusted(found.1.id), true)
            }
            _ => {
                let entity = input
                    .entity_name
                    .clone()
                    .unwrap_or_else(|| user.username.to_string());
                let project = input
                    .model_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
                let project = project_for_runs(state, user, &entity, &project).await?;
                let name = match input.name.as_deref() {
                    Some(n) => {
                        RunName::parse(n).map_err(|e| errors::invalid("input.name", e.message))?
                    }
                    None => herald_engine::catalog::generate_run_id(),
                };
                (project, name, input.id.is_some())
            }
        };
        let patch = RunPatch {
            display_name: input.display_name.filter(|d| !d.is_empty()),
            tags: input
                .tags
                .map(|tags| {
                    tags.iter()
                        .map(|t| TagName::parse(t))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()
                .map_err(|e| errors::invalid("input.tags", e.message))?,
            config: input
                .config
                .map(|c| {
                    c.parse("input.config").and_then(|v| {
                        unwrap_config(&v)
                            .and_then(|v| herald_domain::run::parse_config(Some(v)))
                            .map_err(|e| errors::invalid("input.config", e.message))
                    })
                })
                .transpose()?,
            notes: input.notes,
            resume,
        };
        let (run, inserted) = state
            .store
            .upsert_run(&project, user, &name, patch)
            .await
            .map_err(errors::store)?;
        Ok(UpsertBucketPayload {
            bucket: RunNode { project, run },
            inserted,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Asks a running run to stop, as W&B's Stop button does (`Api().run(…).stop()`, and the
    /// sweep scheduler): the SDK running it learns so from its next file_stream answer and
    /// interrupts the script; the run then ends KILLED. MEMBER or above. Asking again succeeds
    /// again; a run that has ended answers `success: false`.
    async fn stop_run(
        &self,
        ctx: &Context<'_>,
        input: StopRunInput,
    ) -> async_graphql::Result<StopRunPayload> {
        let (state, user) = parts(ctx);
        let missing = || errors::not_found(format!("run {:?} not found", input.id.0), None);
        let row = RunId::from_global(&input.id).ok_or_else(missing)?;
        let (project, run) = run_by_row(state, user, row).await?;
        let success = match state
            .store
            .request_stop(&project, &RunName::from_trusted(run.id))
            .await
        {
            Ok(_) => true,
            Err(StoreError::Conflict(_)) => false,
            Err(e) => return Err(errors::store(e)),
        };
        Ok(StopRunPayload {
            success,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Where to upload run files (config.yaml, output.log, …): a signed URL for each, under
    /// the run. A name that cannot be a file name is refused, naming it.
    async fn create_run_files(
        &self,
        ctx: &Context<'_>,
        input: CreateRunFilesInput,
    ) -> async_graphql::Result<CreateRunFilesPayload> {
        let (state, user) = parts(ctx);
        let run = writable_run(
            state,
            user,
            &input.entity_name,
            &input.project_name,
            &input.run_name,
        )
        .await?;
        let mut files = Vec::with_capacity(input.files.len());
        for (i, name) in input.files.into_iter().enumerate() {
            let key = herald_blobs::BlobKey::run_file(run.row_id.0, &name)
                .map_err(|e| errors::invalid(&format!("input.files[{i}]"), e.0))?;
            files.push(RunFile {
                upload_url: Some(state.blobs.presign_upload(&key, None, None)),
                name,
            });
        }
        Ok(CreateRunFilesPayload {
            run_id: ID(run.row_id.to_global()),
            upload_headers: Vec::new(),
            files,
            client_mutation_id: input.client_mutation_id,
        })
    }
}

/// Run `run` of `entity/project`, if the caller may write there (MEMBER).
pub(super) async fn writable_run(
    state: &AppState,
    user: &User,
    entity: &str,
    project: &str,
    run: &str,
) -> async_graphql::Result<Run> {
    let project = access::project(&*state.store, user, entity, project, Role::Member)
        .await
        .map_err(errors::plain)?;
    state.store.run(&project, run).await.map_err(errors::store)
}

/// Project `name` of `entity` for a run to log into, created when the caller may (MEMBER).
pub(super) async fn project_for_runs(
    state: &AppState,
    user: &User,
    entity: &str,
    name: &str,
) -> async_graphql::Result<Project> {
    let a = access::entity(&*state.store, user, entity, Role::Member)
        .await
        .map_err(errors::plain)?;
    match state.store.project(&a.entity, name).await {
        Ok(p) => Ok(p),
        Err(StoreError::NotFound(_)) if a.entity.kind != EntityKind::Organization => {
            let name = ProjectName::parse(name)
                .map_err(|e| errors::invalid("input.modelName", e.message))?;
            match state.store.create_project(&a.entity, &name, None).await {
                Ok(p) => Ok(p),
                // Two runs starting at once both create it; the loser finds it.
                Err(StoreError::Conflict(_)) => state
                    .store
                    .project(&a.entity, name.as_str())
                    .await
                    .map_err(errors::store),
                Err(e) => Err(errors::store(e)),
            }
        }
        Err(e) => Err(errors::store(e)),
    }
}

/// The run with row id `row`, in a project the caller may write to.
async fn run_by_row(
    state: &AppState,
    user: &User,
    row: RunId,
) -> async_graphql::Result<(Project, Run)> {
    let missing = || errors::not_found(format!("run {:?} not found", row.to_global()), None);
    let (project, name) = state
        .store
        .run_by_row(row)
        .await
        .map_err(errors::store)?
        .ok_or_else(missing)?;
    let project = access::project(
        &*state.store,
        user,
        project.entity.as_str(),
        project.name.as_str(),
        Role::Member,
    )
    .await
    .map_err(|_| missing())?;
    let run = state
        .store
        .run(&project, &name)
        .await
        .map_err(errors::store)?;
    Ok((project, run))
}

/// Run `name` of `project`, if there is one.
pub async fn run_of(
    ctx: &Context<'_>,
    project: &Project,
    name: &str,
) -> async_graphql::Result<Option<RunNode>> {
    match parts(ctx).0.store.run(project, name).await {
        Ok(run) => Ok(Some(RunNode {
            project: project.clone(),
            run,
        })),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(errors::store(e)),
    }
}

/// W&B's `Run` (its storage is a "bucket").
pub struct RunNode {
    pub project: Project,
    pub run: Run,
}

#[Object(name = "Run")]
impl RunNode {
    async fn id(&self) -> ID {
        ID(self.run.row_id.to_global())
    }
    async fn name(&self) -> &str {
        &self.run.id
    }
    async fn display_name(&self) -> &str {
        &self.run.display_name
    }
    async fn description(&self) -> Option<&str> {
        None
    }
    async fn notes(&self) -> Option<&str> {
        self.run.notes.as_deref()
    }
    /// `running`, `finished`, `failed` or `killed`.
    async fn state(&self) -> String {
        self.run.state.as_str().to_ascii_lowercase()
    }
    /// Whether someone asked the run to stop (`stopRun`).
    async fn stopped(&self) -> bool {
        self.run.stop_requested
    }
    /// The config as the SDK reads it, every key wrapped as `{"value": …}`.
    async fn config(&self) -> JsonString {
        JsonString::of(&wrap_config(&self.run.config))
    }
    async fn summary_metrics(&self) -> JsonString {
        JsonString::of(&self.run.summary)
    }
    async fn system_metrics(&self) -> JsonString {
        JsonString("{}".into())
    }
    /// The SDK's own telemetry of the run, by key. herald keeps none, but answers `t` (an
    /// empty object): wandb-core reads its presence as "this run has started", which a resume
    /// needs.
    async fn wandb_config(&self, keys: Option<Vec<String>>) -> JsonString {
        let asked = |k: &str| keys.as_ref().is_none_or(|ks| ks.iter().any(|x| x == k));
        JsonString(if asked("t") { r#"{"t":{}}"# } else { "{}" }.into())
    }
    async fn tags(&self) -> &[String] {
        &self.run.tags
    }
    async fn group(&self) -> Option<&str> {
        None
    }
    async fn job_type(&self) -> Option<&str> {
        None
    }
    async fn sweep_name(&self) -> Option<&str> {
        None
    }
    async fn commit(&self) -> Option<&str> {
        None
    }
    async fn read_only(&self) -> bool {
        false
    }
    async fn created_at(&self) -> String {
        timestamp(self.run.created_at)
    }
    async fn heartbeat_at(&self) -> String {
        timestamp(self.run.updated_at)
    }
    /// The project's row id, which the SDK reads as an integer.
    async fn project_id(&self) -> String {
        self.project.id.0.to_string()
    }
    async fn project(&self) -> ProjectNode {
        ProjectNode(self.project.clone())
    }
    async fn user(&self) -> RunUser {
        RunUser {
            name: self.run.username.clone(),
            username: self.run.username.clone(),
        }
    }
    /// Lines of `wandb-history.jsonl` received: where the SDK's next post starts.
    async fn history_line_count(&self) -> i64 {
        self.run.lines.history
    }
    /// Console lines received, kept or not.
    async fn log_line_count(&self) -> i64 {
        self.run.lines.log
    }
    /// The kept console lines: a page from the start (`first`, `after`), or the last `last`.
    /// `useImprovedPagination` is accepted for W&B's documents and changes nothing.
    async fn log_lines(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        use_improved_pagination: Option<bool>,
    ) -> async_graphql::Result<super::console::LogLineConnection> {
        let _ = use_improved_pagination;
        let state = parts(ctx).0;
        super::console::log_lines(
            state,
            &self.project,
            &self.run.id,
            first,
            after.as_deref(),
            last,
        )
        .await
    }
    async fn events_line_count(&self) -> i64 {
        self.run.lines.events
    }
    /// The last history rows, as a JSON list of JSON-text rows (a resumed run continues after
    /// the last `_step`).
    async fn history_tail(&self, ctx: &Context<'_>) -> async_graphql::Result<JsonString> {
        let state = parts(ctx).0;
        let mut rows = state
            .store
            .history_before(self.run.row_id, i64::MAX, TAIL_ROWS)
            .await
            .map_err(errors::store)?;
        rows.reverse();
        let lines: Vec<String> = rows
            .iter()
            .map(|r| row_json(r.step, &r.values).to_string())
            .collect();
        Ok(JsonString::of(&serde_json::json!(lines)))
    }
    async fn events_tail(&self) -> JsonString {
        JsonString("[]".into())
    }
    /// Every history row as JSON text with `_step`, evenly thinned to `samples` when there are more.
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 500)] samples: i32,
    ) -> async_graphql::Result<Vec<JsonString>> {
        if !(1..=MAX_SAMPLES).contains(&samples) {
            return Err(errors::invalid(
                "samples",
                format!("must be between 1 and {MAX_SAMPLES}"),
            ));
        }
        let rows = all_history(parts(ctx).0, &self.project, &self.run.id).await?;
        Ok(thin(rows, samples as usize)
            .into_iter()
            .map(|r| JsonString::of(&r))
            .collect())
    }
    /// For each spec (`{"keys": [...], "samples": n}`, JSON text), the rows holding every key,
    /// with only those keys, thinned evenly to `samples` (default 500).
    async fn sampled_history(
        &self,
        ctx: &Context<'_>,
        specs: Vec<JsonString>,
    ) -> async_graphql::Result<Vec<async_graphql::Json<serde_json::Value>>> {
        let rows = all_history(parts(ctx).0, &self.project, &self.run.id).await?;
        let mut out = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("specs[{i}]");
            let spec = spec.parse(&at)?;
            let keys: Vec<String> = match spec.get("keys") {
                Some(serde_json::Value::Array(ks)) => ks
                    .iter()
                    .map(|k| k.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| errors::invalid(&at, "\"keys\" must be a list of names"))?,
                _ => return Err(errors::invalid(&at, "needs \"keys\", a list of names")),
            };
            let samples = match spec.get("samples") {
                None | Some(serde_json::Value::Null) => 500,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=MAX_SAMPLES as u64).contains(n))
                    .ok_or_else(|| {
                        errors::invalid(&at, format!("\"samples\" must be 1 to {MAX_SAMPLES}"))
                    })? as usize,
            };
            let picked: Vec<serde_json::Value> = rows
                .iter()
                .filter_map(|r| {
                    let m = r.as_object()?;
                    let kept: serde_json::Map<String, serde_json::Value> = keys
                        .iter()
                        .map(|k| m.get(k).map(|v| (k.clone(), v.clone())))
                        .collect::<Option<_>>()?;
                    Some(serde_json::Value::Object(kept))
                })
                .collect();
            out.push(async_graphql::Json(serde_json::Value::Array(thin(
                picked, samples,
            ))));
        }
        Ok(out)
    }
    /// System-metric rows: herald counts them but keeps none.
    async fn events(&self, #[graphql(default = 500)] samples: i32) -> Vec<JsonString> {
        let _ = samples;
        Vec::new()
    }
    /// The metric keys the run has logged, as W&B lists them.
    async fn history_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<JsonString> {
        let rows = all_history(parts(ctx).0, &self.project, &self.run.id).await?;
        let mut keys: std::collections::BTreeMap<String, usize> = Default::default();
        let mut last_step = None;
        for r in &rows {
            if let serde_json::Value::Object(m) = r {
                for k in m.keys() {
                    *keys.entry(k.clone()).or_default() += 1;
                }
                last_step = m.get("_step").cloned();
            }
        }
        let keys: serde_json::Map<String, serde_json::Value> = keys
            .into_iter()
            .map(|(k, n)| {
                (
                    k,
                    serde_json::json!({"typeCounts": [{"type": "number", "count": n}]}),
                )
            })
            .collect();
        Ok(JsonString::of(
            &serde_json::json!({"keys": keys, "lastStep": last_step}),
        ))
    }
}

#[derive(SimpleObject)]
pub struct RunUser {
    pub name: String,
    pub username: String,
}

/// A stored row as W&B shows it: its values and `_step`.
fn row_json(step: i64, values: &serde_json::Value) -> serde_json::Value {
    let mut m = values.as_object().cloned().unwrap_or_default();
    m.insert("_step".into(), step.into());
    serde_json::Value::Object(m)
}

/// A run's whole history, oldest first.
async fn all_history(
    state: &AppState,
    project: &Project,
    run: &str,
) -> async_graphql::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = herald_domain::event::PageRequest { after, limit: 1000 };
        let got = state
            .store
            .history(project, run, page)
            .await
            .map_err(errors::store)?;
        let full = got.rows.len() == 1000;
        after = got.rows.last().map(|r| r.seq);
        out.extend(got.rows.iter().map(|r| row_json(r.step, &r.values)));
        if !full || out.len() >= MAX_SAMPLES as usize * 10 {
            return Ok(out);
        }
    }
}

/// `rows` thinned evenly to at most `n`, keeping the first and last.
fn thin<T>(rows: Vec<T>, n: usize) -> Vec<T> {
    let len = rows.len();
    if len <= n {
        return rows;
    }
    if n == 1 {
        return rows.into_iter().last().into_iter().collect();
    }
    let keep: std::collections::BTreeSet<usize> = (0..n).map(|i| i * (len - 1) / (n - 1)).collect();
    rows.into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, r)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn thinning_keeps_the_ends() {
        let rows: Vec<i32> = (0..100).collect();
        let kept = super::thin(rows, 5);
        assert_eq!(kept.len(), 5);
        assert_eq!((kept[0], kept[4]), (0, 99));
        assert_eq!(super::thin(vec![1, 2], 5), [1, 2]);
    }
}
