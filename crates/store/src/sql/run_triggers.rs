//! What run-metric and run-state matching reads: the run an event names, its history rows
//! around a logged batch, and when an automation last fired for it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::catalog::Project;
use herald_domain::ids::{AutomationId, EntityId, ProjectId, RunId};
use herald_domain::names::{EntityName, ProjectName};
use herald_domain::run::Run;
use sqlx::Row;

use super::{json_col, ts, SqlStore};
use crate::{RunTriggerStore, StoreError, StoreResult, StoredHistoryRow};

fn rows_from(rows: Vec<sqlx::any::AnyRow>) -> StoreResult<Vec<StoredHistoryRow>> {
    rows.iter()
        .map(|r| {
            Ok(StoredHistoryRow {
                seq: r.try_get("id")?,
                step: r.try_get("step")?,
                values: json_col(&r.try_get::<String, _>("data")?),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

#[async_trait]
impl RunTriggerStore for SqlStore {
    async fn run_for_event(
        &self,
        entity: EntityId,
        project: &str,
        run: &str,
    ) -> StoreResult<Option<Run>> {
        let row = sqlx::query(
            "SELECT p.id, p.entity_id, e.name AS entity_name, p.name, p.description, p.is_registry, p.created_at \
             FROM projects p JOIN entities e ON e.id = p.entity_id WHERE p.entity_id = $1 AND p.name = $2",
        )
        .bind(entity.0)
        .bind(project)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let project = Project {
            id: ProjectId(row.try_get("id")?),
            entity_id: entity,
            entity: EntityName::from_trusted(row.try_get("entity_name")?),
            name: ProjectName::from_trusted(row.try_get("name")?),
            description: row.try_get("description")?,
            is_registry: row.try_get::<i64, _>("is_registry")? != 0,
            created_at: ts(row.try_get("created_at")?),
        };
        match crate::RunStore::run(self, &project, run).await {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn history_range(
        &self,
        run: RunId,
        first_seq: i64,
        last_seq: i64,
    ) -> StoreResult<Vec<StoredHistoryRow>> {
        let rows = sqlx::query("SELECT id, step, data FROM run_history WHERE run_id = $1 AND id >= $2 AND id <= $3 ORDER BY id")
            .bind(run.0)
            .bind(first_seq)
            .bind(last_seq)
            .fetch_all(&self.read)
            .await?;
        rows_from(rows)
    }

    async fn history_before(
        &self,
        run: RunId,
        before_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredHistoryRow>> {
        let rows = sqlx::query("SELECT id, step, data FROM run_history WHERE run_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3")
            .bind(run.0)
            .bind(before_seq)
            .bind(limit as i64)
            .fetch_all(&self.read)
            .await?;
        rows_from(rows)
    }

    async fn last_fired(
        &self,
        automation: AutomationId,
        run: RunId,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT last_fired_at FROM run_trigger_state WHERE automation_id = $1 AND run_id = $2",
        )
        .bind(automation.0)
        .bind(run.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>("last_fired_at"))
            .transpose()?
            .map(ts))
    }
}
