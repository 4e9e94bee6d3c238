//! The durable queue: the matcher turns events into execution rows (moving its cursor in the
//! same transaction), workers lease due rows, and every attempt is recorded with the
//! execution's next state in one transaction. Rows, not memory, are the queue, so a crash at
//! any point is recovered by reading them again.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_domain::automation::{ActionType, Attempt, Execution, ExecutionStatus};
use herald_domain::catalog::Entity;
use herald_domain::event::{Event, EventType};
use herald_domain::ids::{AutomationId, EntityId, EventId, ExecutionId, IntegrationId};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::automations::owner;
use super::events::{event_from_row, EVENT_COLUMNS};
use super::inline::{insert_chunk, numbered, query_named, row_chunks, values_sql, CHUNK_ROWS};
use super::{json_col, json_text, now_us, ts, Columns, SqlStore};
use crate::{
    AttemptOutcome, ClaimedExecution, ExecutionQuery, ExecutionStore, NewAttempt, NewExecution,
    StoreError, StoreResult,
};

const EXECUTION_SELECT: &str = "SELECT x.id, x.entity_id, e.name AS entity_name, x.automation_id, x.automation_name, \
     x.event_id, x.event_type, x.status, x.action_type, x.request, x.reason, x.attempt_count, x.next_attempt_at, \
     x.created_at, x.updated_at FROM executions x JOIN entities e ON e.id = x.entity_id";

fn execution_from_row(row: &AnyRow) -> Result<Execution, sqlx::Error> {
    let bad =
        |what: &str| sqlx::Error::Decode(format!("stored execution has an unknown {what}").into());
    let status: String = row.try_get("status")?;
    let event_type: String = row.try_get("event_type")?;
    let action_type: String = row.try_get("action_type")?;
    Ok(Execution {
        id: ExecutionId(row.try_get("id")?),
        entity_id: EntityId(row.try_get("entity_id")?),
        entity: row.try_get("entity_name")?,
        automation_id: AutomationId(row.try_get("automation_id")?),
        automation_name: row.try_get("automation_name")?,
        event_id: EventId(row.try_get("event_id")?),
        event_type: EventType::parse(&event_type).map_err(|_| bad("event type"))?,
        status: ExecutionStatus::parse(&status).map_err(|_| bad("status"))?,
        action_type: ActionType::from_db(&action_type).ok_or_else(|| bad("action type"))?,
        request: json_col(&row.try_get::<String, _>("request")?),
        reason: row.try_get("reason")?,
        attempt_count: row.try_get("attempt_count")?,
        next_attempt_at: row.try_get::<Option<i64>, _>("next_attempt_at")?.map(ts),
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
        attempts: None,
    })
}

/// Rows per multi-row statement, far below both databases' limits on bound parameters.
const RECORD_CHUNK: usize = 64;

impl SqlStore {
    /// Parameter `n` (from 1) of a statement. SQLite gets anonymous `?`s, bound in order:
    /// sqlx finds a named SQLite parameter (`$n`) by a lookup in a list, which makes binding
    /// statements of many parameters cost the square of their number.
    fn param(&self, n: usize) -> String {
        match self.backend {
            super::Backend::Sqlite => "?".to_string(),
            super::Backend::Postgres => format!("${n}"),
        }
    }

    /// `rows` rows of `width` parameters, `(…), (…), …`, numbered after the first `skip`.
    fn value_rows(&self, rows: usize, width: usize, skip: usize) -> String {
        (0..rows)
            .map(|r| {
                let row: Vec<String> = (0..width)
                    .map(|c| self.param(skip + r * width + c + 1))
                    .collect();
                format!("({})", row.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What [`ExecutionStore::recent_executions`] counts, over an automation's executions newest
/// first: those created after `since`, skipped ones left out, up to `cap`.
struct RecentTally {
    since: i64,
    cap: i64,
    counted: i64,
}

impl RecentTally {
    fn new(since: i64, cap: i64) -> Self {
        Self {
            since,
            cap,
            counted: 0,
        }
    }

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
        if let Some(inline) = &self.inline {
            return inline.read(|c| {
                Ok(
                    c.prepare_cached("SELECT last_event_id FROM matcher_cursor WHERE id = 1")?
                        .query_row([], |r| r.get(0))?,
                )
            });
        }
        Ok(
            sqlx::query("SELECT last_event_id FROM matcher_cursor WHERE id = 1")
                .fetch_one(&self.read)
                .await?
                .try_get("last_event_id")?,
        )
    }

    async fn matcher_lag(&self) -> StoreResult<i64> {
        Ok(sqlx::query(
            "SELECT (SELECT COUNT(*) FROM events WHERE id > (SELECT last_event_id FROM matcher_cursor WHERE id = 1)) AS lag",
        )
        .fetch_one(&self.read)
        .await?
        .try_get("lag")?)
    }

    async fn purge_executions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        const FINAL: &str =
            "status IN ('FINISHED', 'FAILED', 'SKIPPED', 'CANCELLED') AND updated_at < $1";
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "DELETE FROM attempts WHERE execution_id IN (SELECT id FROM executions WHERE {FINAL})"
        ))
        .bind(before.timestamp_micros())
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(&format!("DELETE FROM executions WHERE {FINAL}"))
            .bind(before.timestamp_micros())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn events_after(&self, after: i64, limit: u32) -> StoreResult<Vec<Event>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2");
        if let Some(inline) = &self.inline {
            return inline.read(|c| {
                let mut stmt = c.prepare_cached(&numbered(&sql))?;
                query_named(&mut stmt, rusqlite::params![after, i64::from(limit)], |r| {
                    event_from_row(r)
                })
            });
        }
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit as i64)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn record_matches(
        &self,
        from: i64,
        up_to: i64,
        executions: &[NewExecution],
    ) -> StoreResult<Option<Vec<Option<ExecutionId>>>> {
        let now = now_us();
        // The JSON columns are written out before the writer is taken, not while holding it.
        let json: Vec<MatchJson> = if self.inline.is_some() {
            let mut actions = ActionTexts::default();
            executions
                .iter()
                .map(|x| MatchJson {
                    action: actions.text(&x.action),
                    variables: json_text(&x.variables),
                    request: json_text(&x.request),
                })
                .collect()
        } else {
            Vec::new()
        };
        if let Some(recorded) = self
            .write_inline(|tx| record_matches_inline(tx, from, up_to, executions, &json, now))
            .await
        {
            return recorded;
        }
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE matcher_cursor SET last_event_id = $1 WHERE id = 1 AND last_event_id = $2",
        )
        .bind(up_to)
        .bind(from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(None); // dropping `tx` rolls back
        }
        let mut ids = std::collections::HashMap::with_capacity(executions.len());
        let mut actions = ActionTexts::default();
        for chunk in executions.chunks(RECORD_CHUNK) {
            // The unique (automation, event) pair makes a replayed batch harmless.
            let sql = format!(
                "{INSERT_EXECUTION} VALUES {} ON CONFLICT (automation_id, event_id) DO NOTHING RETURNING id, automation_id, event_id",
                self.value_rows(chunk.len(), 16, 0)
            );
            let mut q = sqlx::query(&sql);
            for x in chunk {
                q = q
                    .bind(x.entity_id.0)
                    .bind(x.automation_id.0)
                    .bind(&x.automation_name)
                    .bind(x.event_id.0)
                    .bind(x.event_type.as_str())
                    .bind(x.action_type.as_str())
                    .bind(x.integration_id.map(|i| i.0))
                    .bind(stored_status(x).as_str())
                    .bind(&x.reason)
                    .bind(actions.text(&x.action).to_string())
                    .bind(json_text(&x.variables))
                    .bind(json_text(&x.request))
                    .bind(x.next_attempt_at.map(|t| t.timestamp_micros()))
                    .bind(x.lease_until.map(|t| t.timestamp_micros()))
                    .bind(now)
                    .bind(now);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let key: (i64, i64) = (row.try_get("automation_id")?, row.try_get("event_id")?);
                ids.insert(key, ExecutionId(row.try_get("id")?));
            }
        }
        for x in executions {
            if let Some(run) = x.fired_run {
                sqlx::query(UPSERT_FIRED)
                    .bind(x.automation_id.0)
                    .bind(run.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        // Taken, not copied: a pair twice in one batch was stored once, for its first.
        Ok(Some(
            executions
                .iter()
                .map(|x| ids.remove(&(x.automation_id.0, x.event_id.0)))
                .collect(),
        ))
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
        let since = since.timestamp_micros();
        if let Some(inline) = &self.inline {
            // On SQLite, one cursor stepped until it stops, without pages or a thread switch
            // for each: after a restart the matcher waits for this. It may still step through
            // a minute of rows, so off the runtime.
            return super::off_the_runtime(|| {
                inline.read(|c| {
                    let mut stmt = c.prepare_cached(
                        "SELECT created_at, status FROM executions WHERE automation_id = ?1 \
                         ORDER BY id DESC",
                    )?;
                    let mut rows = stmt.query([automation.0])?;
                    let skipped = ExecutionStatus::Skipped.as_str().as_bytes();
                    let mut tally = RecentTally::new(since, cap);
                    while let Some(row) = rows.next()? {
                        let is_skipped = row.get_ref(1)?.as_bytes().ok() == Some(skipped);
                        if !tally.take(row.get(0)?, is_skipped) {
                            break;
                        }
                    }
                    Ok(tally.counted)
                })
            });
        }
        const PAGE: i64 = 256;
        let (mut tally, mut before) = (RecentTally::new(since, cap), i64::MAX);
        loop {
            let rows = sqlx::query(
                "SELECT id, created_at, status FROM executions WHERE automation_id = $1 AND id < $2 \
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(automation.0)
            .bind(before)
            .bind(PAGE)
            .fetch_all(&self.read)
            .await?;
            for row in &rows {
                let is_skipped =
                    row.try_get::<String, _>("status")? == ExecutionStatus::Skipped.as_str();
                if !tally.take(row.try_get("created_at")?, is_skipped) {
                    return Ok(tally.counted);
                }
                before = row.try_get("id")?;
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
        let mut busy_clause = String::new();
        if !busy.is_empty() {
            let params: Vec<String> = (0..busy.len()).map(|i| format!("${}", i + 5)).collect();
            busy_clause = format!(
                " AND (integration_id IS NULL OR integration_id NOT IN ({}))",
                params.join(", ")
            );
        }
        // Two index range scans (due PENDING rows, expired RUNNING leases) rather than one OR,
        // which would make the database scan every execution ever recorded.
        // On PostgreSQL, rows another replica is claiming right now are skipped, not waited for.
        let lock = if self.backend == super::Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE executions SET status = 'RUNNING', lease_until = $1, updated_at = $2 WHERE id IN (\
             SELECT id FROM (SELECT id FROM executions WHERE status = 'PENDING' AND next_attempt_at <= $3{busy_clause} \
             ORDER BY next_attempt_at LIMIT $4{lock}) AS due \
             UNION ALL \
             SELECT id FROM (SELECT id FROM executions WHERE status = 'RUNNING' AND lease_until < $3{busy_clause} \
             LIMIT $4{lock}) AS expired \
             LIMIT $4) \
             RETURNING id, entity_id, automation_id, integration_id, action, variables, attempt_count, round_attempts"
        );
        let now_us = now.timestamp_micros();
        if let Some(claimed) = self
            .write_inline(|tx| {
                let mut stmt = tx.prepare_cached(&numbered(&sql))?;
                let params = [
                    lease_until.timestamp_micros(),
                    now_us,
                    now_us,
                    i64::from(limit),
                ]
                .into_iter()
                .chain(busy.iter().map(|b| b.0));
                query_named(&mut stmt, rusqlite::params_from_iter(params), |r| {
                    ClaimedRow::read(r)
                })
            })
            .await
        {
            // The JSON is parsed after the writer is released, not while holding it.
            return claimed.map(|rows| rows.into_iter().map(ClaimedRow::parsed).collect());
        }
        let mut q = sqlx::query(&sql)
            .bind(lease_until.timestamp_micros())
            .bind(now_us)
            .bind(now_us)
            .bind(limit as i64);
        for b in busy {
            q = q.bind(b.0);
        }
        let rows = q.fetch_all(&self.write).await?;
        rows.iter()
            .map(|r| Ok(ClaimedRow::read(r)?.parsed()))
            .collect()
    }

    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS t FROM executions WHERE status = 'PENDING'",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("t")?.map(ts))
    }

    async fn record_attempts(
        &self,
        done: &[(ExecutionId, NewAttempt, AttemptOutcome)],
    ) -> StoreResult<()> {
        // An execution cancelled before it started has no attempt to store, only its status.
        if done
            .iter()
            .any(|(_, _, o)| matches!(o, AttemptOutcome::Cancelled(_)))
        {
            let (cancelled, sent): (Vec<_>, Vec<_>) = done
                .iter()
                .cloned()
                .partition(|(_, _, o)| matches!(o, AttemptOutcome::Cancelled(_)));
            let now = now_us();
            for (id, _, outcome) in &cancelled {
                let AttemptOutcome::Cancelled(why) = outcome else {
                    continue;
                };
                sqlx::query(
                    "UPDATE executions SET status = 'CANCELLED', reason = $1, next_attempt_at = NULL, \
                     lease_until = NULL, updated_at = $2 WHERE id = $3 AND status <> 'CANCELLED'",
                )
                .bind(why)
                .bind(now)
                .bind(id.0)
                .execute(&self.write)
                .await?;
            }
            if sent.is_empty() {
                return Ok(());
            }
            return Box::pin(self.record_attempts(&sent)).await;
        }
        let now = now_us();
        if let Some(done) = self
            .write_inline(|tx| record_attempts_inline(tx, done, now))
            .await
        {
            return done;
        }
        let mut tx = self.begin_write().await?;
        // Two statements per chunk, not two per attempt: a busy server records hundreds of
        // attempts at once, and each statement is a round trip to the database.
        for chunk in done.chunks(RECORD_CHUNK) {
            let sql = format!(
                "{INSERT_ATTEMPT} VALUES {}",
                self.value_rows(chunk.len(), 8, 0)
            );
            let mut q = sqlx::query(&sql);
            for (id, attempt, _) in chunk {
                q = q
                    .bind(id.0)
                    .bind(attempt.number)
                    .bind(attempt.started_at.timestamp_micros())
                    .bind(attempt.duration.as_micros() as i64)
                    .bind(attempt.status_code.map(i64::from))
                    .bind(&attempt.error_class)
                    .bind(&attempt.error)
                    .bind(&attempt.response);
            }
            q.execute(&mut *tx).await?;
        }
        let (once, repeated) = split_repeated(done);
        for chunk in once
            .chunks(RECORD_CHUNK)
            .chain(repeated.iter().map(std::slice::from_ref))
        {
            // VALUES columns are column1, column2, … in both SQLite and PostgreSQL.
            let sql = format!(
                "UPDATE executions SET attempt_count = attempt_count + 1, round_attempts = round_attempts + 1, \
                 status = v.column2, next_attempt_at = v.column3, reason = v.column4, lease_until = NULL, updated_at = {} \
                 FROM (VALUES {}) AS v WHERE executions.id = v.column1 AND executions.status <> 'CANCELLED'",
                self.param(1),
                self.value_rows(chunk.len(), 4, 1)
            );
            let mut q = sqlx::query(&sql).bind(now);
            for (id, attempt, outcome) in chunk.iter().copied() {
                let (status, next, reason) = after_attempt(attempt, outcome);
                q = q.bind(id.0).bind(status.as_str()).bind(next).bind(reason);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn renew_leases(&self, ids: &[ExecutionId], until: DateTime<Utc>) -> StoreResult<()> {
        for chunk in ids.chunks(500) {
            let params: Vec<String> = (0..chunk.len()).map(|i| self.param(i + 2)).collect();
            let sql = format!(
                "UPDATE executions SET lease_until = {} WHERE status = 'RUNNING' AND id IN ({})",
                self.param(1),
                params.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(until.timestamp_micros());
            for id in chunk {
                q = q.bind(id.0);
            }
            q.execute(&self.write).await?;
        }
        Ok(())
    }

    async fn release_running(&self) -> StoreResult<u64> {
        // With PostgreSQL several replicas may share the database: another one's RUNNING rows
        // are not orphans. Their leases bring them back if their replica died.
        if self.backend == super::Backend::Postgres {
            return Ok(0);
        }
        Ok(sqlx::query(
            "UPDATE executions SET status = 'PENDING', lease_until = NULL WHERE status = 'RUNNING'",
        )
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    async fn list_executions(
        &self,
        entity: &Entity,
        query: ExecutionQuery,
    ) -> StoreResult<Vec<Execution>> {
        let mut sql = format!("{EXECUTION_SELECT} WHERE x.entity_id = $1 AND x.id > $2");
        let mut n = 2;
        if query.automation.is_some() {
            n += 1;
            sql.push_str(&format!(" AND x.automation_id = ${n}"));
        }
        if query.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND x.status = ${n}"));
        }
        sql.push_str(&format!(" ORDER BY x.id LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql)
            .bind(entity.id.0)
            .bind(query.page.after.unwrap_or(0));
        if let Some(a) = query.automation {
            q = q.bind(a.0);
        }
        if let Some(s) = query.status {
            q = q.bind(s.as_str());
        }
        let rows = q
            .bind(query.page.limit as i64)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(execution_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn execution_owner(&self, id: ExecutionId) -> StoreResult<Option<EntityId>> {
        owner(
            &self.read,
            "SELECT entity_id FROM executions WHERE id = $1",
            id.0,
        )
        .await
    }

    async fn execution(&self, entity: &Entity, id: ExecutionId) -> StoreResult<Execution> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query(&format!(
            "{EXECUTION_SELECT} WHERE x.entity_id = $1 AND x.id = $2"
        ))
        .bind(entity.id.0)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("execution {id} not found")))?;
        let mut x = execution_from_row(&row)?;
        let rows = sqlx::query(
            "SELECT number, started_at, duration_us, status_code, error_class, error, response FROM attempts \
             WHERE execution_id = $1 ORDER BY number",
        )
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
        let attempts = rows
            .iter()
            .map(|r| {
                Ok(Attempt {
                    number: r.try_get("number")?,
                    started_at: ts(r.try_get("started_at")?),
                    duration_ms: r.try_get::<i64, _>("duration_us")? as f64 / 1000.0,
                    status_code: r
                        .try_get::<Option<i64>, _>("status_code")?
                        .map(|c| c.clamp(0, u16::MAX as i64) as u16),
                    error_class: r.try_get("error_class")?,
                    error: r.try_get("error")?,
                    response: r.try_get("response")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
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
        let n = sqlx::query(&format!(
            "UPDATE executions SET {set}, lease_until = NULL, updated_at = $1 \
             WHERE entity_id = $2 AND id = $3 AND status IN {from}"
        ))
        .bind(now_us())
        .bind(entity.id.0)
        .bind(id.0)
        .execute(&self.write)
        .await?
        .rows_affected();
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

/// Where an execution goes after `attempt`: its status, next attempt time and reason.
fn after_attempt(
    attempt: &NewAttempt,
    outcome: &AttemptOutcome,
) -> (ExecutionStatus, Option<i64>, Option<String>) {
    match outcome {
        AttemptOutcome::Finished => (ExecutionStatus::Finished, None, None),
        AttemptOutcome::RetryAt(t) => (
            ExecutionStatus::Pending,
            Some(t.timestamp_micros()),
            attempt.error.clone(),
        ),
        AttemptOutcome::Failed(why) => (ExecutionStatus::Failed, None, Some(why.clone())),
        AttemptOutcome::Cancelled(why) => (ExecutionStatus::Cancelled, None, Some(why.clone())),
    }
}

/// [`ExecutionStore::record_attempts`] on the inline SQLite connection: the attempts inserted
/// in chunks; then the executions their attempt finished, one statement per whole chunk of
/// ids, and the rest (retries, failures, the last few finished) each by its own update.
fn record_attempts_inline(
    tx: &rusqlite::Transaction<'_>,
    done: &[Done],
    now: i64,
) -> StoreResult<()> {
    let rows: Vec<AttemptRow> = done.iter().map(AttemptRow::new).collect();
    let insert_sql = |rows| values_sql(INSERT_ATTEMPT, 8, rows, "");
    let mut many = tx.prepare_cached(&insert_sql(CHUNK_ROWS))?;
    let mut one = tx.prepare_cached(&insert_sql(1))?;
    for chunk in row_chunks(&rows) {
        insert_chunk(&mut many, &mut one, chunk, AttemptRow::params)?;
    }
    let (once, repeated) = split_repeated(done);
    let (finished, mut each): (Vec<_>, Vec<_>) = once
        .into_iter()
        .partition(|(_, _, outcome)| matches!(outcome, AttemptOutcome::Finished));
    // Whole chunks of finished executions go by one statement each; the rest join the ones
    // updated one by one (all different executions, so the order between them is free).
    let mut many = tx.prepare_cached(&finished_sql(CHUNK_ROWS))?;
    for chunk in row_chunks(&finished) {
        if chunk.len() < CHUNK_ROWS {
            each.extend(chunk);
            continue;
        }
        let params: Vec<&dyn rusqlite::ToSql> = std::iter::once(&now as &dyn rusqlite::ToSql)
            .chain(chunk.iter().map(|(id, ..)| &id.0 as &dyn rusqlite::ToSql))
            .collect();
        many.execute(params.as_slice())?;
    }
    each.extend(repeated);
    let mut update = tx.prepare_cached(
        "UPDATE executions SET attempt_count = attempt_count + 1, round_attempts = round_attempts + 1, \
         status = ?2, next_attempt_at = ?3, reason = ?4, lease_until = NULL, updated_at = ?5 \
         WHERE id = ?1 AND status <> 'CANCELLED'",
    )?;
    for (id, attempt, outcome) in each {
        let (status, next, reason) = after_attempt(attempt, outcome);
        update.execute(rusqlite::params![id.0, status.as_str(), next, reason, now])?;
    }
    Ok(())
}

/// An attempt to record: its execution, the attempt, and where it leaves the execution.
type Done = (ExecutionId, NewAttempt, AttemptOutcome);

/// `done` split into the attempts of executions that have one in the batch, and (in their
/// order) those of executions with more: an update of many rows at once moves each row once,
/// so the latter must go one by one.
fn split_repeated(done: &[Done]) -> (Vec<&Done>, Vec<&Done>) {
    let mut ids: Vec<i64> = done.iter().map(|(id, ..)| id.0).collect();
    ids.sort_unstable();
    let repeated =
        |id: i64| ids.partition_point(|x| *x <= id) - ids.partition_point(|x| *x < id) > 1;
    done.iter().partition(|(id, ..)| !repeated(id.0))
}

/// Moves `ids` executions (each once) on after an attempt that finished them: `?1` is the
/// time, the ids follow. A statement per chunk instead of per execution cut the updates' cost
/// in a busy server by a third.
fn finished_sql(ids: usize) -> String {
    format!(
        "UPDATE executions SET attempt_count = attempt_count + 1, round_attempts = round_attempts + 1, \
         status = '{}', next_attempt_at = NULL, reason = NULL, lease_until = NULL, updated_at = ?1 \
         WHERE id IN ({}) AND status <> 'CANCELLED'",
        ExecutionStatus::Finished.as_str(),
        vec!["?"; ids].join(", ")
    )
}

const INSERT_ATTEMPT: &str =
    "INSERT INTO attempts (execution_id, number, started_at, duration_us, \
     status_code, error_class, error, response)";

/// One attempt's values, in [`INSERT_ATTEMPT`]'s order.
struct AttemptRow<'a> {
    execution: i64,
    number: i64,
    started_at: i64,
    duration_us: i64,
    status_code: Option<i64>,
    error_class: &'a Option<String>,
    error: &'a Option<String>,
    response: &'a Option<String>,
}

impl<'a> AttemptRow<'a> {
    fn new((id, attempt, _): &'a (ExecutionId, NewAttempt, AttemptOutcome)) -> Self {
        Self {
            execution: id.0,
            number: attempt.number,
            started_at: attempt.started_at.timestamp_micros(),
            duration_us: attempt.duration.as_micros() as i64,
            status_code: attempt.status_code.map(i64::from),
            error_class: &attempt.error_class,
            error: &attempt.error,
            response: &attempt.response,
        }
    }

    fn params(&self) -> [&dyn rusqlite::ToSql; 8] {
        [
            &self.execution,
            &self.number,
            &self.started_at,
            &self.duration_us,
            &self.status_code,
            self.error_class,
            self.error,
            self.response,
        ]
    }
}

const INSERT_EXECUTION: &str = "INSERT INTO executions (entity_id, automation_id, automation_name, event_id, event_type, \
     action_type, integration_id, status, reason, action, variables, request, next_attempt_at, lease_until, created_at, updated_at)";

/// Starts (or restarts) a run-metric automation's cooldown for one run.
const UPSERT_FIRED: &str =
    "INSERT INTO run_trigger_state (automation_id, run_id, last_fired_at) VALUES ($1, $2, $3) \
     ON CONFLICT (automation_id, run_id) DO UPDATE SET last_fired_at = excluded.last_fired_at";

/// The status an execution is stored with: RUNNING when the matcher leased it to itself.
fn stored_status(x: &NewExecution) -> ExecutionStatus {
    if x.lease_until.is_some() {
        ExecutionStatus::Running
    } else {
        x.status
    }
}

/// An execution's JSON columns, as text.
struct MatchJson {
    action: Arc<str>,
    variables: String,
    request: String,
}

/// Actions as text, written out once for a run of executions sharing one action (a batch
/// usually holds many firings of few automations).
#[derive(Default)]
struct ActionTexts {
    last: Option<(Arc<serde_json::Value>, Arc<str>)>,
}

impl ActionTexts {
    fn text(&mut self, action: &Arc<serde_json::Value>) -> Arc<str> {
        match &self.last {
            Some((seen, text)) if Arc::ptr_eq(seen, action) => text.clone(),
            _ => {
                let text: Arc<str> = json_text(action).into();
                self.last = Some((action.clone(), text.clone()));
                text
            }
        }
    }
}

/// `INSERT INTO executions … VALUES (?, …), …` for `rows` rows, skipping pairs stored already.
fn insert_executions_sql(rows: usize) -> String {
    values_sql(
        INSERT_EXECUTION,
        16,
        rows,
        " ON CONFLICT (automation_id, event_id) DO NOTHING",
    )
}

/// One execution's values, in [`INSERT_EXECUTION`]'s order.
struct ExecutionRow<'a> {
    entity: i64,
    automation: i64,
    name: &'a str,
    event: i64,
    event_type: &'static str,
    action_type: &'static str,
    integration: Option<i64>,
    status: &'static str,
    reason: Option<&'a str>,
    action: &'a str,
    variables: &'a str,
    request: &'a str,
    next_attempt_at: Option<i64>,
    lease_until: Option<i64>,
    now: i64,
}

impl<'a> ExecutionRow<'a> {
    fn new(x: &'a NewExecution, j: &'a MatchJson, now: i64) -> Self {
        Self {
            entity: x.entity_id.0,
            automation: x.automation_id.0,
            name: &x.automation_name,
            event: x.event_id.0,
            event_type: x.event_type.as_str(),
            action_type: x.action_type.as_str(),
            integration: x.integration_id.map(|i| i.0),
            status: stored_status(x).as_str(),
            reason: x.reason.as_deref(),
            action: &j.action,
            variables: &j.variables,
            request: &j.request,
            next_attempt_at: x.next_attempt_at.map(|t| t.timestamp_micros()),
            lease_until: x.lease_until.map(|t| t.timestamp_micros()),
            now,
        }
    }

    /// Created and updated both now.
    fn params(&self) -> [&dyn rusqlite::ToSql; 16] {
        [
            &self.entity,
            &self.automation,
            &self.name,
            &self.event,
            &self.event_type,
            &self.action_type,
            &self.integration,
            &self.status,
            &self.reason,
            &self.action,
            &self.variables,
            &self.request,
            &self.next_attempt_at,
            &self.lease_until,
            &self.now,
            &self.now,
        ]
    }
}

/// [`ExecutionStore::record_matches`] on the inline SQLite connection.
fn record_matches_inline(
    tx: &rusqlite::Transaction<'_>,
    from: i64,
    up_to: i64,
    executions: &[NewExecution],
    json: &[MatchJson],
    now: i64,
) -> StoreResult<Option<Vec<Option<ExecutionId>>>> {
    let moved = tx
        .prepare_cached(
            "UPDATE matcher_cursor SET last_event_id = ?1 WHERE id = 1 AND last_event_id = ?2",
        )?
        .execute(rusqlite::params![up_to, from])?;
    if moved == 0 {
        return Ok(None); // nothing was written: committing the empty transaction is harmless
    }
    // No RETURNING, for the reason `inline::insert_returning_id` gives: ids come from the
    // count of rows a statement inserted and the last id it gave.
    let before: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM executions")?
        .query_row([], |r| r.get(0))?;
    let rows: Vec<ExecutionRow> = executions
        .iter()
        .zip(json)
        .map(|(x, j)| ExecutionRow::new(x, j, now))
        .collect();
    let mut ids = Vec::with_capacity(executions.len());
    let mut many = tx.prepare_cached(&insert_executions_sql(CHUNK_ROWS))?;
    let mut one = tx.prepare_cached(&insert_executions_sql(1))?;
    for chunk in row_chunks(&rows) {
        let inserted = insert_chunk(&mut many, &mut one, chunk, ExecutionRow::params)?;
        if inserted == chunk.len() {
            // Each row took the next id (AUTOINCREMENT, and this transaction is the only writer).
            let last = tx.last_insert_rowid();
            let first = last - chunk.len() as i64 + 1;
            ids.extend((first..=last).map(|id| Some(ExecutionId(id))));
            continue;
        }
        // Some were stored already (a replayed batch): the new ones are those with an id this
        // batch gave, each once.
        let mut find = tx.prepare_cached(
            "SELECT id FROM executions WHERE automation_id = ?1 AND event_id = ?2",
        )?;
        for row in chunk {
            let id: i64 = find.query_row([row.automation, row.event], |r| r.get(0))?;
            let new = id > before && !ids.contains(&Some(ExecutionId(id)));
            ids.push(new.then_some(ExecutionId(id)));
        }
    }
    let mut fired = tx.prepare_cached(&numbered(UPSERT_FIRED))?;
    for x in executions {
        if let Some(run) = x.fired_run {
            fired.execute(rusqlite::params![x.automation_id.0, run.0, now])?;
        }
    }
    Ok(Some(ids))
}

/// A claimed execution as read from its row, the JSON columns still text.
struct ClaimedRow {
    claimed: ClaimedExecution,
    action: String,
    variables: String,
}

impl ClaimedRow {
    fn read(r: &impl Columns) -> StoreResult<Self> {
        Ok(Self {
            claimed: ClaimedExecution {
                id: ExecutionId(r.int_required("id")?),
                entity_id: EntityId(r.int_required("entity_id")?),
                automation_id: AutomationId(r.int_required("automation_id")?),
                integration_id: r.int("integration_id")?.map(IntegrationId),
                action: Default::default(),
                variables: serde_json::Value::Null,
                attempt_count: r.int_required("attempt_count")?,
                round_attempts: r.int_required("round_attempts")?,
            },
            action: r.text_required("action")?,
            variables: r.text_required("variables")?,
        })
    }

    fn parsed(self) -> ClaimedExecution {
        ClaimedExecution {
            action: std::sync::Arc::new(json_col(&self.action)),
            variables: json_col(&self.variables),
            ..self.claimed
        }
    }
}
