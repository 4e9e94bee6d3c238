//! The durable queue's [`ExecutionStore`]: its reads, retention and the moves users make.
//! Rows, not memory, are the queue, so a crash at any point is recovered by reading them
//! again. The hot transactions are in [`super::queue`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::automation::{ActionType, Attempt, Execution, ExecutionStatus};
use herald_domain::catalog::Entity;
use herald_domain::event::{Event, EventType};
use herald_domain::ids::{AutomationId, EntityId, EventId, ExecutionId, IntegrationId};

use super::automations::owner;
use super::db::{param_list, params, Columns, Value};
use super::events::{event_from_row, EVENT_COLUMNS};
use super::{json_col, now_us, ts, Backend, SqlStore};
use crate::{
    AttemptOutcome, ClaimedExecution, ExecutionQuery, ExecutionStore, NewAttempt, NewExecution,
    StoreError, StoreResult,
};

const EXECUTION_SELECT: &str = "SELECT x.id, x.entity_id, e.name AS entity_name, x.automation_id, x.automation_name, \
     x.event_id, x.event_type, x.status, x.action_type, x.request, x.reason, x.attempt_count, x.next_attempt_at, \
     x.created_at, x.updated_at FROM executions x JOIN entities e ON e.id = x.entity_id";

fn execution_from_row(row: &dyn Columns) -> StoreResult<Execution> {
    let bad = |what: &str| {
        StoreError::Internal(anyhow::anyhow!("stored execution has an unknown {what}"))
    };
    let status = row.text_required("status")?;
    let event_type = row.text_required("event_type")?;
    let action_type = row.text_required("action_type")?;
    Ok(Execution {
        id: ExecutionId(row.int_required("id")?),
        entity_id: EntityId(row.int_required("entity_id")?),
        entity: row.text_required("entity_name")?,
        automation_id: AutomationId(row.int_required("automation_id")?),
        automation_name: row.text_required("automation_name")?,
        event_id: EventId(row.int_required("event_id")?),
        event_type: EventType::parse(&event_type).map_err(|_| bad("event type"))?,
        status: ExecutionStatus::parse(&status).map_err(|_| bad("status"))?,
        action_type: ActionType::from_db(&action_type).ok_or_else(|| bad("action type"))?,
        request: json_col(&row.text_required("request")?),
        reason: row.text("reason")?,
        attempt_count: row.int_required("attempt_count")?,
        next_attempt_at: row.int("next_attempt_at")?.map(ts),
        created_at: ts(row.int_required("created_at")?),
        updated_at: ts(row.int_required("updated_at")?),
        attempts: None,
    })
}

fn attempt_from_row(r: &dyn Columns) -> StoreResult<Attempt> {
    Ok(Attempt {
        number: r.int_required("number")?,
        started_at: ts(r.int_required("started_at")?),
        duration_ms: r.int_required("duration_us")? as f64 / 1000.0,
        status_code: r
            .int("status_code")?
            .map(|c| c.clamp(0, u16::MAX as i64) as u16),
        error_class: r.text("error_class")?,
        error: r.text("error")?,
        response: r.text("response")?,
    })
}

/// What [`ExecutionStore::recent_executions`] counts, over an automation's executions newest
/// first: those created after `since`, skipped ones left out, up to `cap`.
struct RecentTally {
    since: i64,
    cap: i64,
    counted: i64,
}

impl RecentTally {
    /// Counts the next execution (created at `created_at`, in microseconds); false once the
    /// count is complete: an older execution came, or the cap was reached.
    fn take(&mut self, created_at: i64, skipped: bool) -> bool {
        if created_at <= self.since {
            return false;
        }
        if !skipped {
            self.counted += 1;
        }
        self.counted < self.cap
    }
}

#[async_trait]
impl ExecutionStore for SqlStore {
    async fn matcher_cursor(&self) -> StoreResult<i64> {
        let mut conn = self.read().await?;
        let cursor = conn
            .fetch_int(
                "SELECT last_event_id FROM matcher_cursor WHERE id = 1",
                &[],
                "last_event_id",
            )
            .await?;
        Ok(cursor.unwrap_or(0))
    }

    async fn matcher_lag(&self) -> StoreResult<i64> {
        let mut conn = self.read().await?;
        let lag = conn
            .fetch_int(
                "SELECT (SELECT COUNT(*) FROM events WHERE id > (SELECT last_event_id FROM matcher_cursor WHERE id = 1)) AS lag",
                &[],
                "lag",
            )
            .await?;
        Ok(lag.unwrap_or(0))
    }

    async fn purge_executions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const FINAL: &str =
            "status IN ('FINISHED', 'FAILED', 'SKIPPED', 'CANCELLED') AND updated_at < $1";
        let before = before.timestamp_micros();
        let mut tx = self.write().await?;
        tx.execute(
            &format!(
                "DELETE FROM attempts WHERE execution_id IN (SELECT id FROM executions WHERE {FINAL})"
            ),
            params![before],
        )
        .await?;
        let n = tx
            .execute(
                &format!("DELETE FROM executions WHERE {FINAL}"),
                params![before],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn events_after(&self, after: i64, limit: u32) -> StoreResult<Vec<Event>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2");
        let mut conn = self.read().await?;
        conn.fetch_all(&sql, params![after, i64::from(limit)], event_from_row)
            .await
    }

    async fn record_matches(
        &self,
        from: i64,
        up_to: i64,
        executions: &[NewExecution],
    ) -> StoreResult<Option<Vec<Option<ExecutionId>>>> {
        self.record_match_rows(from, up_to, executions).await
    }

    async fn recent_executions(
        &self,
        automation: AutomationId,
        since: DateTime<Utc>,
        cap: i64,
    ) -> StoreResult<i64> {
        // Newest first along executions_automation, a page at a time, stopping at the first
        // execution older than `since` (the matcher stores them in the order of their times)
        // or at `cap`: a busy automation must not make this scan a minute of rows, nor an old
        // one its whole history.
        const PAGE: i64 = 256;
        let mut tally = RecentTally {
            since: since.timestamp_micros(),
            cap,
            counted: 0,
        };
        let mut before = i64::MAX;
        let mut conn = self.read().await?;
        loop {
            let rows = conn
                .fetch_all(
                    // The status compared in the query (a BIGINT on both databases): no text
                    // to copy out per row.
                    "SELECT id, created_at, CAST(CASE WHEN status = 'SKIPPED' THEN 1 ELSE 0 END AS BIGINT) AS skipped \
                     FROM executions WHERE automation_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    params![automation.0, before, PAGE],
                    |r| {
                        Ok((
                            r.int_required("id")?,
                            r.int_required("created_at")?,
                            r.int_required("skipped")? != 0,
                        ))
                    },
                )
                .await?;
            for (id, created_at, skipped) in &rows {
                if !tally.take(*created_at, *skipped) {
                    return Ok(tally.counted);
                }
                before = *id;
            }
            if (rows.len() as i64) < PAGE {
                return Ok(tally.counted);
            }
        }
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        busy: &[IntegrationId],
    ) -> StoreResult<Vec<ClaimedExecution>> {
        self.claim_rows(now, lease_until, limit, busy).await
    }

    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let mut conn = self.read().await?;
        let due = conn
            .fetch_int(
                "SELECT MIN(next_attempt_at) AS t FROM executions WHERE status = 'PENDING'",
                &[],
                "t",
            )
            .await?;
        Ok(due.map(ts))
    }

    async fn record_attempts(
        &self,
        done: &[(ExecutionId, NewAttempt, AttemptOutcome)],
    ) -> StoreResult<()> {
        self.record_attempt_rows(done).await
    }

    async fn renew_leases(&self, ids: &[ExecutionId], until: DateTime<Utc>) -> StoreResult<()> {
        let mut conn = self.write_one().await?;
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE executions SET lease_until = $1 WHERE status = 'RUNNING' AND id IN ({})",
                param_list(2, chunk.len())
            );
            let params: Vec<Value> = std::iter::once(until.timestamp_micros())
                .chain(chunk.iter().map(|id| id.0))
                .map(Value::from)
                .collect();
            conn.execute(&sql, &params).await?;
        }
        conn.commit().await
    }

    async fn release_running(&self) -> StoreResult<u64> {
        // With PostgreSQL several replicas may share the database: another one's RUNNING rows
        // are not orphans. Their leases bring them back if their replica died.
        if self.backend() == Backend::Postgres {
            return Ok(0);
        }
        let mut conn = self.write_one().await?;
        let n = conn
            .execute(
                "UPDATE executions SET status = 'PENDING', lease_until = NULL WHERE status = 'RUNNING'",
                &[],
            )
            .await?;
        conn.commit().await?;
        Ok(n)
    }

    async fn list_executions(
        &self,
        entity: &Entity,
        query: ExecutionQuery,
    ) -> StoreResult<Vec<Execution>> {
        let mut sql = format!("{EXECUTION_SELECT} WHERE x.entity_id = $1 AND x.id > $2");
        let mut params: Vec<Value> = vec![entity.id.0.into(), query.page.after.unwrap_or(0).into()];
        if let Some(a) = query.automation {
            params.push(a.0.into());
            sql.push_str(&format!(" AND x.automation_id = ${}", params.len()));
        }
        if let Some(s) = query.status {
            params.push(s.as_str().into());
            sql.push_str(&format!(" AND x.status = ${}", params.len()));
        }
        params.push((query.page.limit as i64).into());
        sql.push_str(&format!(" ORDER BY x.id LIMIT ${}", params.len()));
        let mut conn = self.read().await?;
        conn.fetch_all(&sql, &params, execution_from_row).await
    }

    async fn execution_owner(&self, id: ExecutionId) -> StoreResult<Option<EntityId>> {
        owner(self, "SELECT entity_id FROM executions WHERE id = $1", id.0).await
    }

    async fn execution(&self, entity: &Entity, id: ExecutionId) -> StoreResult<Execution> {
        let mut conn = self.read().await?;
        let sql = format!("{EXECUTION_SELECT} WHERE x.entity_id = $1 AND x.id = $2");
        let mut x = conn
            .fetch_optional(&sql, params![entity.id.0, id.0], execution_from_row)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("execution {id} not found")))?;
        let attempts = conn
            .fetch_all(
                "SELECT number, started_at, duration_us, status_code, error_class, error, response FROM attempts \
                 WHERE execution_id = $1 ORDER BY number",
                params![id.0],
                attempt_from_row,
            )
            .await?;
        x.attempts = Some(attempts);
        Ok(x)
    }

    async fn cancel_execution(&self, entity: &Entity, id: ExecutionId) -> StoreResult<Execution> {
        self.move_execution(
            entity,
            id,
            "status = 'CANCELLED', reason = 'cancelled by a user', next_attempt_at = NULL",
            "('PENDING', 'RUNNING')",
            "only pending or running executions can be cancelled",
        )
        .await
    }

    async fn redeliver(&self, entity: &Entity, id: ExecutionId) -> StoreResult<Execution> {
        self.move_execution(
            entity,
            id,
            "status = 'PENDING', next_attempt_at = $1, round_attempts = 0, reason = NULL",
            "('FINISHED', 'FAILED', 'SKIPPED', 'CANCELLED')",
            "only finished, failed, skipped or cancelled executions can be redelivered",
        )
        .await
    }
}

impl SqlStore {
    /// Sets `set` (where `$1` is now) on execution `id` if its status is one of `from`, and
    /// reads it back; otherwise a conflict that says its status and `only`.
    async fn move_execution(
        &self,
        entity: &Entity,
        id: ExecutionId,
        set: &str,
        from: &str,
        only: &str,
    ) -> StoreResult<Execution> {
        let sql = format!(
            "UPDATE executions SET {set}, lease_until = NULL, updated_at = $1 \
             WHERE entity_id = $2 AND id = $3 AND status IN {from}"
        );
        let mut conn = self.write_one().await?;
        let n = conn
            .execute(&sql, params![now_us(), entity.id.0, id.0])
            .await?;
        conn.commit().await?;
        if n == 0 {
            // Either it is not there (a 404), or it is in another state.
            let x = self.execution(entity, id).await?;
            return Err(StoreError::conflict(format!(
                "execution {id} is {}; {only}",
                x.status.as_str()
            )));
        }
        self.execution(entity, id).await
    }
}
