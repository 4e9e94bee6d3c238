//! What run-metric and run-state matching reads: the run an event names, its history rows
//! around a logged batch, and when an automation last fired for it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::ids::{AutomationId, EntityId, RunId};
use herald_domain::run::Run;

use super::db::params;
use super::entities::{project_from_row, PROJECT_SELECT};
use super::runs::{find_run, history_row};
use super::{ts, SqlStore};
use crate::{RunTriggerStore, StoreError, StoreResult, StoredHistoryRow};

#[async_trait]
impl RunTriggerStore for SqlStore {
    async fn run_for_event(
        &self,
        entity: EntityId,
        project: &str,
        run: &str,
    ) -> StoreResult<Option<Run>> {
        let sql = format!("{PROJECT_SELECT} WHERE p.entity_id = $1 AND p.name = $2");
        let mut conn = self.read().await?;
        let Some(project) = conn
            .fetch_optional(&sql, params![entity.0, project], project_from_row)
            .await?
        else {
            return Ok(None);
        };
        match find_run(&mut conn, &project, run).await {
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
        let mut conn = self.read().await?;
        conn.fetch_all(
            "SELECT id, step, data FROM run_history WHERE run_id = $1 AND id >= $2 AND id <= $3 ORDER BY id",
            params![run.0, first_seq, last_seq],
            history_row,
        )
        .await
    }

    async fn history_before(
        &self,
        run: RunId,
        before_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredHistoryRow>> {
        let mut conn = self.read().await?;
        conn.fetch_all(
            "SELECT id, step, data FROM run_history WHERE run_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            params![run.0, before_seq, i64::from(limit)],
            history_row,
        )
        .await
    }

    async fn last_fired(
        &self,
        automation: AutomationId,
        run: RunId,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let mut conn = self.read().await?;
        let fired = conn
            .fetch_optional(
                "SELECT last_fired_at FROM run_trigger_state WHERE automation_id = $1 AND run_id = $2",
                params![automation.0, run.0],
                |r| r.int_required("last_fired_at"),
            )
            .await?;
        Ok(fired.map(ts))
    }
}
