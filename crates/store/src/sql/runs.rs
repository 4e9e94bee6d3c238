//! Runs, their state transitions (each one a RUN_STATE event) and their history.

use std::collections::BTreeSet;

use async_trait::async_trait;
use herald_domain::catalog::{Project, User};
use herald_domain::event::{EventType, NewEvent, PageRequest};
use herald_domain::ids::RunId;
use herald_domain::names::RunName;
use herald_domain::run::{HistoryRow, Run, RunState, Transition};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::events::insert_event;
use super::{json_col, now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{
    HistoryPage, LoggedHistory, NewRun, RunStore, StoreError, StoreResult, StoredHistoryRow,
};

const RUN_SELECT: &str =
    "SELECT r.id, r.name, r.display_name, u.username, r.state, r.tags, r.config, r.created_at, \
     r.updated_at FROM runs r JOIN users u ON u.id = r.user_id";

/// History rows per INSERT statement (4 parameters each, far below SQLite's variable limit).
const HISTORY_CHUNK: usize = 200;

fn run_from_row(project: &Project, row: &AnyRow) -> Result<Run, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let tags = json_col(&row.try_get::<String, _>("tags")?);
    Ok(Run {
        row_id: RunId(row.try_get("id")?),
        id: row.try_get("name")?,
        entity: project.entity.to_string(),
        project: project.name.to_string(),
        display_name: row.try_get("display_name")?,
        username: row.try_get("username")?,
        state: RunState::from_db(&state).unwrap_or(RunState::Failed),
        tags: serde_json::from_value(tags).unwrap_or_default(),
        config: json_col(&row.try_get::<String, _>("config")?),
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

async fn find_run(conn: &mut AnyConnection, project: &Project, id: &str) -> StoreResult<Run> {
    let row = sqlx::query(&format!(
        "{RUN_SELECT} WHERE r.project_id = $1 AND r.name = $2"
    ))
    .bind(project.id.0)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        StoreError::not_found(format!(
            "run {id:?} not found in {}/{}",
            project.entity, project.name
        ))
    })?;
    Ok(run_from_row(project, &row)?)
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
        if project.is_registry {
            return Err(StoreError::invalid(
                "project",
                format!("runs belong to projects, not to registry {}", project.name),
            ));
        }
        let now = now_us();
        let display_name = new
            .display_name
            .clone()
            .unwrap_or_else(|| new.id.to_string());
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO runs (project_id, name, display_name, user_id, state, tags, config, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(project.id.0)
        .bind(new.id.as_str())
        .bind(&display_name)
        .bind(author.id.0)
        .bind(new.state.as_str())
        .bind(json!(new.tags).to_string())
        .bind(new.config.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique(|| {
            format!("run {:?} already exists in {}/{}", new.id.as_str(), project.entity, project.name)
        }))?;
        let mut e = run_event(EventType::RunState, project, new.id.as_str(), author);
        e.body = json!({ "state": new.state, "previous_state": null });
        insert_event(&mut tx, &e, now).await?;
        let run = find_run(&mut tx, project, new.id.as_str()).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn run(&self, project: &Project, id: &str) -> StoreResult<Run> {
        let mut conn = self.read.acquire().await?;
        find_run(&mut conn, project, id).await
    }

    async fn list_runs(&self, project: &Project, page: PageRequest) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "{RUN_SELECT} WHERE r.project_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3"
        ))
        .bind(project.id.0)
        .bind(page.after.unwrap_or(0))
        .bind(page.limit as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| run_from_row(project, r))
            .collect::<Result<_, _>>()?)
    }

    async fn set_run_state(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        state: RunState,
    ) -> StoreResult<Run> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let run = find_run(&mut tx, project, id.as_str()).await?;
        let (from, to) = match run.state.transition(state) {
            Ok(Transition::Unchanged) => return Ok(run),
            Ok(Transition::Changed { from, to }) => (from, to),
            Err(e) => return Err(StoreError::conflict(format!("run {:?}: {e}", id.as_str()))),
        };
        sqlx::query("UPDATE runs SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(now)
            .bind(run.row_id.0)
            .execute(&mut *tx)
            .await?;
        let mut e = run_event(EventType::RunState, project, id.as_str(), author);
        e.body = json!({ "state": to, "previous_state": from });
        insert_event(&mut tx, &e, now).await?;
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
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Err(StoreError::invalid(
                "rows",
                "a history batch needs at least one row",
            ));
        };
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let run = find_run(&mut tx, project, id.as_str()).await?;
        if run.state.is_final() {
            return Err(StoreError::conflict(format!(
                "run {:?} is {}; history can only be logged while it is RUNNING",
                id.as_str(),
                run.state.as_str()
            )));
        }
        let mut first_seq = None;
        let mut last_seq = 0i64;
        for chunk in rows.chunks(HISTORY_CHUNK) {
            let mut sql =
                String::from("INSERT INTO run_history (run_id, step, data, created_at) VALUES ");
            for i in 0..chunk.len() {
                let p = i * 4;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4));
            }
            sql.push_str(" RETURNING id");
            let mut q = sqlx::query(&sql);
            for row in chunk {
                let data = serde_json::to_string(&row.values).map_err(anyhow::Error::from)?;
                q = q.bind(run.row_id.0).bind(row.step).bind(data).bind(now);
            }
            for r in q.fetch_all(&mut *tx).await? {
                let seq: i64 = r.try_get("id")?;
                first_seq.get_or_insert(seq);
                last_seq = last_seq.max(seq);
            }
        }
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
        let mut e = run_event(EventType::LogRunHistory, project, id.as_str(), author);
        e.body = json!({
            "rows": logged.rows,
            "values": logged.values,
            "first_step": logged.first_step,
            "last_step": logged.last_step,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "metrics": metrics,
        });
        insert_event(&mut tx, &e, now).await?;
        tx.commit().await?;
        Ok(logged)
    }

    async fn history(
        &self,
        project: &Project,
        id: &str,
        page: PageRequest,
    ) -> StoreResult<HistoryPage> {
        let mut conn = self.read.acquire().await?;
        let run = find_run(&mut conn, project, id).await?;
        let rows = sqlx::query("SELECT id, step, data FROM run_history WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(run.row_id.0)
            .bind(page.after.unwrap_or(0))
            .bind(page.limit as i64)
            .fetch_all(&mut *conn)
            .await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(StoredHistoryRow {
                    seq: r.try_get("id")?,
                    step: r.try_get("step")?,
                    values: json_col(&r.try_get::<String, _>("data")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(HistoryPage { rows })
    }
}
