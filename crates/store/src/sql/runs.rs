//! Runs, their state transitions (each one a RUN_STATE event) and their history.

use std::collections::BTreeSet;

use async_trait::async_trait;
use herald_domain::catalog::{Project, User};
use herald_domain::event::{EventType, NewEvent, PageRequest};
use herald_domain::ids::RunId;
use herald_domain::names::RunName;
use herald_domain::run::{HistoryRow, Run, RunState, StreamedLines, Transition};
use herald_domain::wandb_run::{exit_state, fresh_lines};
use serde_json::json;

use super::console;
use super::db::{params, values_sql, Columns, Conn, Value};
use super::events::insert_event;
use super::{json_col, now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{
    ConsolePage, EntityStore, HistoryPage, LoggedHistory, NewRun, RunPatch, RunStore, StoreError,
    StoreResult, StoredHistoryRow, StreamPost,
};

const RUN_SELECT: &str =
    "SELECT r.id, r.name, r.display_name, u.username, r.state, r.tags, r.config, r.summary, \
     r.notes, r.stop_requested, r.history_lines, r.log_lines, r.events_lines, r.created_at, \
     r.updated_at \
     FROM runs r JOIN users u ON u.id = r.user_id";

/// History rows per INSERT statement (4 parameters each, far below SQLite's variable limit).
const HISTORY_CHUNK: usize = 200;

fn run_from_row(project: &Project, row: &dyn Columns) -> StoreResult<Run> {
    let state = row.text_required("state")?;
    let tags = json_col(&row.text_required("tags")?);
    Ok(Run {
        row_id: RunId(row.int_required("id")?),
        id: row.text_required("name")?,
        entity: project.entity.to_string(),
        project: project.name.to_string(),
        display_name: row.text_required("display_name")?,
        username: row.text_required("username")?,
        state: RunState::from_db(&state).unwrap_or(RunState::Failed),
        tags: serde_json::from_value(tags).unwrap_or_default(),
        config: json_col(&row.text_required("config")?),
        summary: json_col(&row.text_required("summary")?),
        notes: row.text("notes")?,
        stop_requested: row.int_required("stop_requested")? != 0,
        lines: StreamedLines {
            history: row.int_required("history_lines")?,
            log: row.int_required("log_lines")?,
            events: row.int_required("events_lines")?,
        },
        created_at: ts(row.int_required("created_at")?),
        updated_at: ts(row.int_required("updated_at")?),
    })
}

/// A stored history row (`id` is its sequence number).
pub(crate) fn history_row(r: &dyn Columns) -> StoreResult<StoredHistoryRow> {
    Ok(StoredHistoryRow {
        seq: r.int_required("id")?,
        step: r.int_required("step")?,
        values: json_col(&r.text_required("data")?),
    })
}

pub(crate) async fn find_run(conn: &mut Conn<'_>, project: &Project, id: &str) -> StoreResult<Run> {
    let sql = format!("{RUN_SELECT} WHERE r.project_id = $1 AND r.name = $2");
    conn.fetch_optional(&sql, params![project.id.0, id], |r| {
        run_from_row(project, r)
    })
    .await?
    .ok_or_else(|| {
        StoreError::not_found(format!(
            "run {id:?} not found in {}/{}",
            project.entity, project.name
        ))
    })
}

fn run_event(t: EventType, project: &Project, run: &str, author: &User) -> NewEvent {
    let mut e = NewEvent::new(t, project.entity_id, project.entity.as_str());
    e.project = Some(project.name.to_string());
    e.run = Some(run.to_string());
    e.author = Some(author.username.to_string());
    e
}

#[async_trait]
impl RunStore for SqlStore {
    async fn create_run(&self, project: &Project, author: &User, new: NewRun) -> StoreResult<Run> {
        let now = now_us();
        let mut tx = self.write().await?;
        insert_run(&mut tx, project, author, &new, None, now).await?;
        let run = find_run(&mut tx, project, new.id.as_str()).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn run(&self, project: &Project, id: &str) -> StoreResult<Run> {
        find_run(&mut self.read().await?, project, id).await
    }

    async fn list_runs(&self, project: &Project, page: PageRequest) -> StoreResult<Vec<Run>> {
        let sql =
            format!("{RUN_SELECT} WHERE r.project_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3");
        let mut conn = self.read().await?;
        conn.fetch_all(
            &sql,
            params![project.id.0, page.after.unwrap_or(0), page.limit as i64],
            |r| run_from_row(project, r),
        )
        .await
    }

    async fn set_run_state(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        state: RunState,
    ) -> StoreResult<Run> {
        let now = now_us();
        let mut tx = self.write().await?;
        let run = find_run(&mut tx, project, id.as_str()).await?;
        if !change_state(&mut tx, project, author, &run, state, now).await? {
            return Ok(run);
        }
        let run = find_run(&mut tx, project, id.as_str()).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn log_history(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        rows: &[HistoryRow],
    ) -> StoreResult<LoggedHistory> {
        if rows.is_empty() {
            return Err(StoreError::invalid(
                "rows",
                "a history batch needs at least one row",
            ));
        }
        let now = now_us();
        let mut tx = self.write().await?;
        let run = find_run(&mut tx, project, id.as_str()).await?;
        let logged = append_history(&mut tx, project, author, &run, rows, now).await?;
        tx.commit().await?;
        Ok(logged)
    }

    async fn history(
        &self,
        project: &Project,
        id: &str,
        page: PageRequest,
    ) -> StoreResult<HistoryPage> {
        let mut conn = self.read().await?;
        let run = find_run(&mut conn, project, id).await?;
        let rows = conn
            .fetch_all(
                "SELECT id, step, data FROM run_history WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                params![run.row_id.0, page.after.unwrap_or(0), page.limit as i64],
                history_row,
            )
            .await?;
        Ok(HistoryPage { rows })
    }

    async fn run_by_row(&self, row: RunId) -> StoreResult<Option<(Project, String)>> {
        let found = self
            .read()
            .await?
            .fetch_optional(
                "SELECT project_id, name FROM runs WHERE id = $1",
                params![row.0],
                |r| Ok((r.int_required("project_id")?, r.text_required("name")?)),
            )
            .await?;
        let Some((project, name)) = found else {
            return Ok(None);
        };
        let project = self
            .project_by_id(herald_domain::ids::ProjectId(project))
            .await?;
        Ok(project.map(|p| (p, name)))
    }

    async fn upsert_run(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        patch: RunPatch,
    ) -> StoreResult<(Run, bool)> {
        let now = now_us();
        let mut tx = self.write().await?;
        let run = match find_run(&mut tx, project, id.as_str()).await {
            Ok(run) => run,
            Err(StoreError::NotFound(_)) => {
                let new = NewRun {
                    id: id.clone(),
                    display_name: patch.display_name,
                    tags: patch.tags.unwrap_or_default(),
                    config: patch.config.unwrap_or_else(|| json!({})),
                    state: RunState::Running,
                };
                insert_run(&mut tx, project, author, &new, patch.notes.as_deref(), now).await?;
                let run = find_run(&mut tx, project, id.as_str()).await?;
                tx.commit().await?;
                return Ok((run, true));
            }
            Err(e) => return Err(e),
        };
        let tags = patch.tags.map(|t| json!(t).to_string());
        let config = patch.config.map(|c| c.to_string());
        tx.execute(
            "UPDATE runs SET display_name = COALESCE($1, display_name), tags = COALESCE($2, tags), \
             config = COALESCE($3, config), notes = COALESCE($4, notes), updated_at = $5 WHERE id = $6",
            params![
                patch.display_name.as_deref(),
                tags.as_deref(),
                config.as_deref(),
                patch.notes.as_deref(),
                now,
                run.row_id.0
            ],
        )
        .await?;
        if patch.resume && run.state.is_final() {
            // W&B lets a finished run be resumed; it is RUNNING until it ends again, and a stop
            // asked of its last life does not stop this one.
            tx.execute(
                "UPDATE runs SET state = $1, stop_requested = 0 WHERE id = $2",
                params![RunState::Running.as_str(), run.row_id.0],
            )
            .await?;
            let mut e = run_event(EventType::RunState, project, id.as_str(), author);
            e.body = json!({ "state": RunState::Running, "previous_state": run.state });
            insert_event(&mut tx, &e, now).await?;
        }
        let run = find_run(&mut tx, project, id.as_str()).await?;
        tx.commit().await?;
        Ok((run, false))
    }

    async fn stream_run(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        post: StreamPost,
    ) -> StoreResult<Run> {
        let now = now_us();
        let mut tx = self.write().await?;
        let run = find_run(&mut tx, project, id.as_str()).await?;
        let mut lines = run.lines;
        if let Some((offset, rows)) = &post.history {
            let skip = fresh_lines("wandb-history.jsonl", lines.history, *offset, rows.len())?;
            let new: Vec<HistoryRow> = rows[skip..].iter().flatten().cloned().collect();
            if !new.is_empty() {
                append_history(&mut tx, project, author, &run, &new, now).await?;
            }
            lines.history = lines.history.max(offset + rows.len() as i64);
        }
        if let Some(log) = &post.log {
            // Lines the run has are not skipped here: wandb-core sends a line again when it
            // rewrites it, and writing a resent one again changes nothing.
            fresh_lines("output.log", lines.log, log.offset, log.count as usize)?;
            console::write_lines(&mut tx, run.row_id, &log.kept).await?;
            lines.log = lines.log.max(log.offset + log.count);
        }
        if let Some((offset, n)) = post.events {
            fresh_lines("wandb-events.jsonl", lines.events, offset, n as usize)?;
            lines.events = lines.events.max(offset + n);
        }
        let summary = post.summary.as_ref().map(|s| s.to_string());
        tx.execute(
            "UPDATE runs SET summary = COALESCE($1, summary), history_lines = $2, log_lines = $3, \
             events_lines = $4, updated_at = $5 WHERE id = $6",
            params![
                summary.as_deref(),
                lines.history,
                lines.log,
                lines.events,
                now,
                run.row_id.0
            ],
        )
        .await?;
        if let Some(code) = post.exit {
            let state = exit_state(code, run.stop_requested);
            change_state(&mut tx, project, author, &run, state, now).await?;
        }
        let run = find_run(&mut tx, project, id.as_str()).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn request_stop(&self, project: &Project, id: &RunName) -> StoreResult<Run> {
        let now = now_us();
        let mut tx = self.write().await?;
        let run = find_run(&mut tx, project, id.as_str()).await?;
        if run.state.is_final() {
            return Err(StoreError::conflict(format!(
                "run {:?} is {}; only a RUNNING run can be stopped",
                run.id,
                run.state.as_str()
            )));
        }
        if run.stop_requested {
            return Ok(run);
        }
        tx.execute(
            "UPDATE runs SET stop_requested = 1, updated_at = $1 WHERE id = $2",
            params![now, run.row_id.0],
        )
        .await?;
        let run = find_run(&mut tx, project, id.as_str()).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn console(
        &self,
        project: &Project,
        id: &str,
        page: PageRequest,
    ) -> StoreResult<ConsolePage> {
        let mut conn = self.read().await?;
        let run = find_run(&mut conn, project, id).await?;
        let lines = console::read_lines(&mut conn, run.row_id, page).await?;
        Ok(ConsolePage {
            lines,
            line_count: run.lines.log,
        })
    }

    async fn console_tail(
        &self,
        project: &Project,
        id: &str,
        last: u32,
    ) -> StoreResult<ConsolePage> {
        let mut conn = self.read().await?;
        let run = find_run(&mut conn, project, id).await?;
        let lines = console::read_tail(&mut conn, run.row_id, last).await?;
        Ok(ConsolePage {
            lines,
            line_count: run.lines.log,
        })
    }
}

/// Inserts run `new` with its RUN_STATE event.
async fn insert_run(
    tx: &mut Conn<'_>,
    project: &Project,
    author: &User,
    new: &NewRun,
    notes: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    if project.is_registry {
        return Err(StoreError::invalid(
            "project",
            format!("runs belong to projects, not to registry {}", project.name),
        ));
    }
    let display_name = new
        .display_name
        .clone()
        .unwrap_or_else(|| new.id.to_string());
    let (tags, config) = (json!(new.tags).to_string(), new.config.to_string());
    tx.execute(
        "INSERT INTO runs (project_id, name, display_name, user_id, state, tags, config, notes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        params![
            project.id.0,
            new.id.as_str(),
            &display_name,
            author.id.0,
            new.state.as_str(),
            &tags,
            &config,
            notes,
            now
        ],
    )
    .await
    .map_err(conflict_on_unique(|| {
        format!("run {:?} already exists in {}/{}", new.id.as_str(), project.entity, project.name)
    }))?;
    let mut e = run_event(EventType::RunState, project, new.id.as_str(), author);
    e.body = json!({ "state": new.state, "previous_state": null });
    insert_event(tx, &e, now).await?;
    Ok(())
}

/// Moves `run` to `to` with its RUN_STATE event; false when it already was there.
async fn change_state(
    tx: &mut Conn<'_>,
    project: &Project,
    author: &User,
    run: &Run,
    to: RunState,
    now: i64,
) -> StoreResult<bool> {
    let (from, to) = match run.state.transition(to) {
        Ok(Transition::Unchanged) => return Ok(false),
        Ok(Transition::Changed { from, to }) => (from, to),
        Err(e) => return Err(StoreError::conflict(format!("run {:?}: {e}", run.id))),
    };
    tx.execute(
        "UPDATE runs SET state = $1, updated_at = $2 WHERE id = $3",
        params![to.as_str(), now, run.row_id.0],
    )
    .await?;
    let mut e = run_event(EventType::RunState, project, &run.id, author);
    e.body = json!({ "state": to, "previous_state": from });
    insert_event(tx, &e, now).await?;
    Ok(true)
}

/// Appends `rows` to RUNNING `run`'s history with their LOG_RUN_HISTORY event.
async fn append_history(
    tx: &mut Conn<'_>,
    project: &Project,
    author: &User,
    run: &Run,
    rows: &[HistoryRow],
    now: i64,
) -> StoreResult<LoggedHistory> {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(StoreError::invalid(
            "rows",
            "a history batch needs at least one row",
        ));
    };
    if run.state.is_final() {
        return Err(StoreError::conflict(format!(
            "run {:?} is {}; history can only be logged while it is RUNNING",
            run.id,
            run.state.as_str()
        )));
    }
    let data: Vec<String> = rows
        .iter()
        .map(|row| serde_json::to_string(&row.values))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::from)?;
    let (first_seq, last_seq) = insert_history(tx, run.row_id, rows, &data, now).await?;
    let metrics: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.values.keys().map(|k| k.as_str()))
        .collect();
    let values: usize = rows.iter().map(|r| r.values.len()).sum();
    let logged = LoggedHistory {
        rows: rows.len(),
        values,
        first_step: first.step,
        last_step: last.step,
    };
    let mut e = run_event(EventType::LogRunHistory, project, &run.id, author);
    e.body = json!({
        "rows": logged.rows,
        "values": logged.values,
        "first_step": logged.first_step,
        "last_step": logged.last_step,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "metrics": metrics,
    });
    insert_event(tx, &e, now).await?;
    Ok(logged)
}

/// Inserts history rows (their values as JSON in `data`); returns the first and last
/// sequence numbers given. SQLite's ids come without RETURNING (see `Conn::insert_id`): a
/// multi-row insert gives its rows consecutive ids, the last of which the connection knows.
async fn insert_history(
    tx: &mut Conn<'_>,
    run: RunId,
    rows: &[HistoryRow],
    data: &[String],
    now: i64,
) -> StoreResult<(Option<i64>, i64)> {
    const HEAD: &str = "INSERT INTO run_history (run_id, step, data, created_at)";
    let (mut first_seq, mut last_seq) = (None, 0i64);
    for (chunk, data) in rows.chunks(HISTORY_CHUNK).zip(data.chunks(HISTORY_CHUNK)) {
        let params: Vec<Value> = chunk
            .iter()
            .zip(data)
            .flat_map(|(row, data)| [run.0.into(), row.step.into(), data.into(), now.into()])
            .collect();
        let ids: Vec<i64> = match tx {
            Conn::Sqlite(c) => {
                c.execute(&values_sql(HEAD, 4, chunk.len(), 0, ""), &params)?;
                let last = c.last_insert_id();
                (last - chunk.len() as i64 + 1..=last).collect()
            }
            Conn::Postgres(_) => {
                let sql = values_sql(HEAD, 4, chunk.len(), 0, " RETURNING id");
                tx.fetch_all(&sql, &params, |r| r.int_required("id"))
                    .await?
            }
        };
        if let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) {
            first_seq.get_or_insert(*first);
            last_seq = last_seq.max(*last);
        }
    }
    Ok((first_seq, last_seq))
}
