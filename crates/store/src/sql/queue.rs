//! The queue's hot transactions: the matcher records executions (moving its cursor in the same
//! transaction), workers lease due ones, and every attempt is recorded with the execution's
//! next state. A busy server runs these for every event and every delivery, so each is one
//! transaction of multi-row statements.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::automation::ExecutionStatus;
use herald_domain::ids::{AutomationId, EntityId, ExecutionId, IntegrationId};

use super::db::{param_list, params, values_sql, Columns, Conn, Value, CHUNK_ROWS};
use super::{json_col, json_text, now_us, sqlite, Backend, SqlStore};
use crate::{AttemptOutcome, ClaimedExecution, NewAttempt, NewExecution, StoreResult};

impl SqlStore {
    pub(crate) async fn record_match_rows(
        &self,
        from: i64,
        up_to: i64,
        executions: &[NewExecution],
    ) -> StoreResult<Option<Vec<Option<ExecutionId>>>> {
        let now = now_us();
        // The JSON columns are written out before the writer is taken, not while holding it.
        let mut actions = ActionTexts::default();
        let json: Vec<MatchJson> = executions
            .iter()
            .map(|x| MatchJson {
                action: actions.text(&x.action),
                variables: json_text(&x.variables),
                request: json_text(&x.request),
            })
            .collect();
        let rows: Vec<ExecutionRow> = executions
            .iter()
            .zip(&json)
            .map(|(x, j)| ExecutionRow::new(x, j, now))
            .collect();
        let mut tx = self.write().await?;
        let moved = tx
            .execute(
                "UPDATE matcher_cursor SET last_event_id = $1 WHERE id = 1 AND last_event_id = $2",
                params![up_to, from],
            )
            .await?;
        if moved == 0 {
            return Ok(None); // dropping `tx` rolls back
        }
        let ids = match &mut tx {
            Conn::Sqlite(c) => insert_executions_sqlite(c, &rows)?,
            Conn::Postgres(_) => insert_executions_postgres(&mut tx, &rows).await?,
        };
        for x in executions {
            if let Some(run) = x.fired_run {
                tx.execute(UPSERT_FIRED, params![x.automation_id.0, run.0, now])
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(Some(ids))
    }

    pub(crate) async fn claim_rows(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        busy: &[IntegrationId],
    ) -> StoreResult<Vec<ClaimedExecution>> {
        let mut busy_clause = String::new();
        if !busy.is_empty() {
            busy_clause = format!(
                " AND (integration_id IS NULL OR integration_id NOT IN ({}))",
                param_list(5, busy.len())
            );
        }
        let mut tx = self.write_one().await?;
        // On PostgreSQL, rows another replica is claiming right now are skipped, not waited for.
        let lock = match tx.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // Two index range scans (due PENDING rows, expired RUNNING leases) rather than one OR,
        // which would make the database scan every execution ever recorded.
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
        let now = now.timestamp_micros();
        let params: Vec<Value> = [lease_until.timestamp_micros(), now, now, i64::from(limit)]
            .into_iter()
            .chain(busy.iter().map(|b| b.0))
            .map(Value::from)
            .collect();
        let claimed = tx.fetch_all(&sql, &params, ClaimedRow::read).await?;
        tx.commit().await?;
        // The JSON is parsed after the writer is released, not while holding it.
        Ok(claimed.into_iter().map(ClaimedRow::parsed).collect())
    }

    pub(crate) async fn record_attempt_rows(&self, done: &[Done]) -> StoreResult<()> {
        let now = now_us();
        // An execution cancelled before it started has no attempt to store, only its status.
        let (cancelled, sent): (Vec<&Done>, Vec<&Done>) = done
            .iter()
            .partition(|(_, _, o)| matches!(o, AttemptOutcome::Cancelled(_)));
        let rows: Vec<AttemptRow> = sent.iter().map(|d| AttemptRow::new(d)).collect();
        let mut tx = self.write().await?;
        for (id, _, outcome) in &cancelled {
            if let AttemptOutcome::Cancelled(why) = outcome {
                tx.execute(
                    "UPDATE executions SET status = 'CANCELLED', reason = $1, next_attempt_at = NULL, \
                     lease_until = NULL, updated_at = $2 WHERE id = $3 AND status <> 'CANCELLED'",
                    params![why, now, id.0],
                )
                .await?;
            }
        }
        for chunk in tx.row_chunks(&rows) {
            let params: Vec<Value> = chunk.iter().flat_map(AttemptRow::params).collect();
            tx.execute(&values_sql(INSERT_ATTEMPT, 8, chunk.len(), 0, ""), &params)
                .await?;
        }
        let (once, repeated) = split_repeated(&sent);
        let (finished, mut each): (Vec<&Done>, Vec<&Done>) = once
            .into_iter()
            .partition(|(_, _, outcome)| matches!(outcome, AttemptOutcome::Finished));
        // Chunks of finished executions go by one statement each; single rows join the ones
        // updated one by one (all different executions, so the order between them is free).
        for chunk in tx.row_chunks(&finished) {
            if chunk.len() == 1 {
                each.extend(chunk);
                continue;
            }
            let params: Vec<Value> = std::iter::once(now)
                .chain(chunk.iter().map(|(id, ..)| id.0))
                .map(Value::from)
                .collect();
            tx.execute(&finished_sql(chunk.len()), &params).await?;
        }
        // On PostgreSQL each statement is a round trip: retries and failures (a dead receiver
        // fails a whole backlog) go by chunks too. The repeated ones stay one per statement, in
        // order, as one statement may not update a row twice.
        if tx.backend() == Backend::Postgres && each.len() > 1 {
            for chunk in tx.row_chunks(&each) {
                let decided: Vec<_> = chunk
                    .iter()
                    .map(|(id, attempt, outcome)| (id.0, after_attempt(attempt, outcome)))
                    .collect();
                let params: Vec<Value> = std::iter::once(Value::from(now))
                    .chain(decided.iter().flat_map(|(id, (status, next, reason))| {
                        [
                            Value::from(*id),
                            Value::Text(Some(status.as_str())),
                            Value::from(*next),
                            Value::Text(reason.as_deref()),
                        ]
                    }))
                    .collect();
                tx.execute(&updated_by_values_sql(chunk.len()), &params)
                    .await?;
            }
            each.clear();
        }
        each.extend(repeated);
        for (id, attempt, outcome) in each {
            let (status, next, reason) = after_attempt(attempt, outcome);
            tx.execute(
                "UPDATE executions SET attempt_count = attempt_count + 1, round_attempts = round_attempts + 1, \
                 status = $2, next_attempt_at = $3, reason = $4, lease_until = NULL, updated_at = $5 \
                 WHERE id = $1 AND status <> 'CANCELLED'",
                params![id.0, status.as_str(), next, reason.as_deref(), now],
            )
            .await?;
        }
        tx.commit().await
    }
}

/// Updates `rows` executions after an attempt each, from `(id, status, next_attempt_at,
/// reason)` rows after `$1` (now). PostgreSQL only: SQLite runs statements in process.
fn updated_by_values_sql(rows: usize) -> String {
    values_sql(
        "UPDATE executions SET attempt_count = attempt_count + 1, round_attempts = round_attempts + 1, \
         status = v.column2, next_attempt_at = v.column3, reason = v.column4, lease_until = NULL, \
         updated_at = $1 FROM (",
        4,
        rows,
        1,
        ") AS v WHERE executions.id = v.column1 AND executions.status <> 'CANCELLED'",
    )
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

/// An attempt to record: its execution, the attempt, and where it leaves the execution.
pub(crate) type Done = (ExecutionId, NewAttempt, AttemptOutcome);

/// `done` split into the attempts of executions that have one in the batch, and (in their
/// order) those of executions with more: an update of many rows at once moves each row once,
/// so the latter must go one by one.
fn split_repeated<'d>(done: &[&'d Done]) -> (Vec<&'d Done>, Vec<&'d Done>) {
    let mut ids: Vec<i64> = done.iter().map(|(id, ..)| id.0).collect();
    ids.sort_unstable();
    let repeated =
        |id: i64| ids.partition_point(|x| *x <= id) - ids.partition_point(|x| *x < id) > 1;
    done.iter().partition(|(id, ..)| !repeated(id.0))
}

/// Moves `ids` executions (each once) on after an attempt that finished them: `$1` is the
/// time, the ids follow. A statement per chunk instead of per execution cut the updates' cost
/// in a busy server by a third.
fn finished_sql(ids: usize) -> String {
    format!(
        "UPDATE executions SET attempt_count = attempt_count + 1, round_attempts = round_attempts + 1, \
         status = '{}', next_attempt_at = NULL, reason = NULL, lease_until = NULL, updated_at = $1 \
         WHERE id IN ({}) AND status <> 'CANCELLED'",
        ExecutionStatus::Finished.as_str(),
        param_list(2, ids)
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
    fn new((id, attempt, _): &'a Done) -> Self {
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

    fn params(&self) -> [Value<'a>; 8] {
        [
            self.execution.into(),
            self.number.into(),
            self.started_at.into(),
            self.duration_us.into(),
            self.status_code.into(),
            self.error_class.into(),
            self.error.into(),
            self.response.into(),
        ]
    }
}

const INSERT_EXECUTION: &str = "INSERT INTO executions (entity_id, automation_id, automation_name, event_id, event_type, \
     action_type, integration_id, status, reason, action, variables, request, next_attempt_at, lease_until, created_at, updated_at)";

/// Skips (automation, event) pairs stored already: a replayed batch is harmless.
const SKIP_STORED: &str = " ON CONFLICT (automation_id, event_id) DO NOTHING";

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
    fn params(&self) -> [Value<'a>; 16] {
        [
            self.entity.into(),
            self.automation.into(),
            self.name.into(),
            self.event.into(),
            self.event_type.into(),
            self.action_type.into(),
            self.integration.into(),
            self.status.into(),
            self.reason.into(),
            self.action.into(),
            self.variables.into(),
            self.request.into(),
            self.next_attempt_at.into(),
            self.lease_until.into(),
            self.now.into(),
            self.now.into(),
        ]
    }
}

/// Inserts executions on SQLite, in the order given; returns each one's id (`None` for one
/// stored already, or given earlier in `rows`). No RETURNING (see `Conn::insert_id`): a
/// multi-row insert that stored every row gave them consecutive ids, ending at the last id.
fn insert_executions_sqlite(
    c: &mut sqlite::Conn<'_>,
    rows: &[ExecutionRow],
) -> StoreResult<Vec<Option<ExecutionId>>> {
    let before = c.fetch(
        "SELECT COALESCE(MAX(id), 0) AS n FROM executions",
        &[],
        1,
        |r| r.int_required("n"),
    )?[0];
    let mut ids = Vec::with_capacity(rows.len());
    let whole = rows.len() - rows.len() % CHUNK_ROWS;
    for chunk in rows[..whole]
        .chunks(CHUNK_ROWS)
        .chain(rows[whole..].chunks(1))
    {
        let params: Vec<Value> = chunk.iter().flat_map(ExecutionRow::params).collect();
        let sql = values_sql(INSERT_EXECUTION, 16, chunk.len(), 0, SKIP_STORED);
        let inserted = c.execute(&sql, &params)?;
        if inserted == chunk.len() as u64 {
            // Each row took the next id (AUTOINCREMENT, and this transaction is the only writer).
            let last = c.last_insert_id();
            let first = last - chunk.len() as i64 + 1;
            ids.extend((first..=last).map(|id| Some(ExecutionId(id))));
            continue;
        }
        // Some were stored already: the new ones are those with an id this batch gave, each once.
        for row in chunk {
            let id = c.fetch(
                "SELECT id FROM executions WHERE automation_id = $1 AND event_id = $2",
                params![row.automation, row.event],
                1,
                |r| r.int_required("id"),
            )?[0];
            let new = id > before && !ids.contains(&Some(ExecutionId(id)));
            ids.push(new.then_some(ExecutionId(id)));
        }
    }
    Ok(ids)
}

/// Inserts executions on PostgreSQL, as [`insert_executions_sqlite`] does, taking the ids
/// the inserts return.
async fn insert_executions_postgres(
    tx: &mut Conn<'_>,
    rows: &[ExecutionRow<'_>],
) -> StoreResult<Vec<Option<ExecutionId>>> {
    let mut ids = std::collections::HashMap::with_capacity(rows.len());
    for chunk in tx.row_chunks(rows) {
        let params: Vec<Value> = chunk.iter().flat_map(ExecutionRow::params).collect();
        let returning = format!("{SKIP_STORED} RETURNING id, automation_id, event_id");
        let sql = values_sql(INSERT_EXECUTION, 16, chunk.len(), 0, &returning);
        let stored = tx
            .fetch_all(&sql, &params, |r| {
                Ok((
                    (
                        r.int_required("automation_id")?,
                        r.int_required("event_id")?,
                    ),
                    ExecutionId(r.int_required("id")?),
                ))
            })
            .await?;
        ids.extend(stored);
    }
    // Taken, not copied: a pair twice in one batch was stored once, for its first.
    Ok(rows
        .iter()
        .map(|r| ids.remove(&(r.automation, r.event)))
        .collect())
}

/// A claimed execution as read from its row, the JSON columns still text.
struct ClaimedRow {
    claimed: ClaimedExecution,
    action: String,
    variables: String,
}

impl ClaimedRow {
    fn read(r: &dyn Columns) -> StoreResult<Self> {
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
            action: Arc::new(json_col(&self.action)),
            variables: json_col(&self.variables),
            ..self.claimed
        }
    }
}
