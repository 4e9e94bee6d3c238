//! Secrets, integrations and automations. Every change to an automation bumps the automation
//! epoch in the same transaction, so matchers notice it with one cheap read.

use async_trait::async_trait;
use herald_domain::automation::{
    Action, Automation, EventSpec, Integration, IntegrationKind, PreviousSecretValue, Scope,
    ScopeType, SecretMeta, MAX_PREVIOUS_SECRET_VALUES,
};
use herald_domain::catalog::Entity;
use herald_domain::event::EventType;
use herald_domain::ids::{AutomationId, EntityId, ExecutionId, IntegrationId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{json_col, now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{
    AutomationStore, IntegrationPatch, NewAutomation, NewIntegration, SealedSecret, StoreError,
    StoreResult,
};

const INTEGRATION_SELECT: &str = "SELECT i.id, i.entity_id, e.name AS entity_name, i.kind, i.name, i.url, \
     i.access_token_secret, i.signing_secret, i.slack, i.enabled, i.disabled_reason, i.created_at, i.updated_at \
     FROM integrations i JOIN entities e ON e.id = i.entity_id";

const AUTOMATION_SELECT: &str = "SELECT a.id, a.entity_id, e.name AS entity_name, a.name, a.description, a.enabled, \
     a.scope_type, a.scope_path, a.event_type, a.filter, a.action, a.rate_limit, a.cooldown_seconds, a.created_by, a.created_at, \
     a.updated_at FROM automations a JOIN entities e ON e.id = a.entity_id";

fn integration_from_row(row: &AnyRow) -> Result<Integration, sqlx::Error> {
    Ok(Integration {
        id: IntegrationId(row.try_get("id")?),
        entity_id: EntityId(row.try_get("entity_id")?),
        entity: row.try_get("entity_name")?,
        kind: IntegrationKind::from_db(&row.try_get::<String, _>("kind")?)
            .unwrap_or(IntegrationKind::Webhook),
        slack: row
            .try_get::<Option<String>, _>("slack")?
            .and_then(|s| serde_json::from_str(&s).ok()),
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        access_token_secret: row.try_get("access_token_secret")?,
        signing_secret: row.try_get("signing_secret")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

fn decode_err(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("stored {what} is unreadable: {e}").into())
}

fn automation_from_row(row: &AnyRow) -> Result<Automation, sqlx::Error> {
    let scope_type: String = row.try_get("scope_type")?;
    let event_type: String = row.try_get("event_type")?;
    let action: Action = serde_json::from_str(&row.try_get::<String, _>("action")?)
        .map_err(|e| decode_err("action", e))?;
    Ok(Automation {
        id: AutomationId(row.try_get("id")?),
        entity_id: EntityId(row.try_get("entity_id")?),
        entity: row.try_get("entity_name")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        scope: Scope {
            scope_type: ScopeType::parse(&scope_type).map_err(|e| decode_err("scope", e))?,
            path: row.try_get("scope_path")?,
        },
        event: EventSpec {
            event_type: EventType::parse(&event_type).map_err(|e| decode_err("event type", e))?,
            filter: json_col(&row.try_get::<String, _>("filter")?),
        },
        action,
        rate_limit_per_minute: row
            .try_get::<i64, _>("rate_limit")?
            .clamp(0, u32::MAX as i64) as u32,
        cooldown_seconds: row
            .try_get::<Option<i64>, _>("cooldown_seconds")?
            .map(|c| c.clamp(0, u32::MAX as i64) as u32),
        created_by: row.try_get("created_by")?,
        created_at: ts(row.try_get("created_at")?),
        updated_at: ts(row.try_get("updated_at")?),
    })
}

/// Keeps a secret's replaced value `sealed` valid for `grace` from `now` (dropping the oldest
/// past `MAX_PREVIOUS_SECRET_VALUES`), and forgets expired ones; no grace forgets them all.
async fn retire_secret(
    tx: &mut AnyConnection,
    secret: i64,
    sealed: &str,
    now: i64,
    grace: std::time::Duration,
) -> StoreResult<()> {
    let expired_by = if grace.is_zero() { i64::MAX } else { now };
    sqlx::query("DELETE FROM previous_secrets WHERE secret_id = $1 AND valid_until <= $2")
        .bind(secret)
        .bind(expired_by)
        .execute(&mut *tx)
        .await?;
    if grace.is_zero() {
        return Ok(());
    }
    let until = now.saturating_add(i64::try_from(grace.as_micros()).unwrap_or(i64::MAX));
    sqlx::query(
        "INSERT INTO previous_secrets (secret_id, sealed, retired_at, valid_until) VALUES ($1, $2, $3, $4)",
    )
    .bind(secret)
    .bind(sealed)
    .bind(now)
    .bind(until)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM previous_secrets WHERE secret_id = $1 AND id NOT IN \
         (SELECT id FROM previous_secrets WHERE secret_id = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(secret)
    .bind(MAX_PREVIOUS_SECRET_VALUES as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The previous values still valid at `now` of `entity`'s secrets, by secret id, newest first.
async fn previous_secret_values(
    conn: &mut AnyConnection,
    entity: EntityId,
    now: i64,
) -> StoreResult<std::collections::HashMap<i64, Vec<PreviousSecretValue>>> {
    let rows = sqlx::query(
        "SELECT p.secret_id, p.retired_at, p.valid_until FROM previous_secrets p \
         JOIN secrets s ON s.id = p.secret_id \
         WHERE s.entity_id = $1 AND p.valid_until > $2 ORDER BY p.id DESC",
    )
    .bind(entity.0)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: std::collections::HashMap<i64, Vec<PreviousSecretValue>> = Default::default();
    for r in &rows {
        out.entry(r.try_get("secret_id")?)
            .or_default()
            .push(PreviousSecretValue {
                retired_at: ts(r.try_get("retired_at")?),
                valid_until: ts(r.try_get("valid_until")?),
            });
    }
    Ok(out)
}

/// Refuses secret names that the entity does not hold.
async fn check_secrets_exist(
    conn: &mut AnyConnection,
    entity: &Entity,
    names: &[&Option<String>],
) -> StoreResult<()> {
    for name in names.iter().filter_map(|n| n.as_deref()) {
        let found = sqlx::query("SELECT 1 FROM secrets WHERE entity_id = $1 AND name = $2")
            .bind(entity.id.0)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(StoreError::invalid(
                "secret",
                format!(
                    "secret {name:?} not found in {:?}; create it first with PUT …/secrets/{name}",
                    entity.name.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses an action whose integration is not the entity's own.
async fn check_action_integration(
    conn: &mut AnyConnection,
    entity: &Entity,
    action: &Action,
) -> StoreResult<()> {
    if let Some(id) = action.integration_id() {
        let found = sqlx::query("SELECT 1 FROM integrations WHERE entity_id = $1 AND id = $2")
            .bind(entity.id.0)
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(StoreError::invalid(
                "action.integration_id",
                format!("integration {id} not found in {:?}", entity.name.as_str()),
            ));
        }
    }
    Ok(())
}

/// What waiting executions are cancelled for.
enum Withdrawn {
    Automation(AutomationId),
    Integration(IntegrationId),
}

/// Cancels, in the caller's transaction, the executions of an automation or integration that
/// is deleted or disabled and that are still waiting (for a first attempt or a retry) or in
/// flight: nothing new is sent for them. An attempt already in flight may finish; recording it
/// leaves the execution CANCELLED.
async fn cancel_waiting(
    conn: &mut AnyConnection,
    entity: EntityId,
    what: Withdrawn,
    reason: &str,
    except: Option<ExecutionId>,
) -> StoreResult<u64> {
    let (column, id) = match what {
        Withdrawn::Automation(id) => ("automation_id", id.0),
        Withdrawn::Integration(id) => ("integration_id", id.0),
    };
    let n = sqlx::query(&format!(
        "UPDATE executions SET status = 'CANCELLED', reason = $1, next_attempt_at = NULL, lease_until = NULL, \
         updated_at = $2 WHERE entity_id = $3 AND {column} = $4 AND status IN ('PENDING', 'RUNNING') AND id <> $5"
    ))
    .bind(reason)
    .bind(now_us())
    .bind(entity.0)
    .bind(id)
    .bind(except.map_or(0, |x| x.0))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n)
}

async fn bump_epoch(conn: &mut AnyConnection) -> StoreResult<()> {
    sqlx::query("UPDATE automation_epoch SET epoch = epoch + 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn find_integration(
    conn: &mut AnyConnection,
    entity: &Entity,
    id: IntegrationId,
) -> StoreResult<Integration> {
    let row = sqlx::query(&format!(
        "{INTEGRATION_SELECT} WHERE i.entity_id = $1 AND i.id = $2"
    ))
    .bind(entity.id.0)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found(format!("integration {id} not found")))?;
    Ok(integration_from_row(&row)?)
}

async fn find_automation(
    conn: &mut AnyConnection,
    entity: &Entity,
    id: AutomationId,
) -> StoreResult<Automation> {
    let row = sqlx::query(&format!(
        "{AUTOMATION_SELECT} WHERE a.entity_id = $1 AND a.id = $2"
    ))
    .bind(entity.id.0)
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found(format!("automation {id} not found")))?;
    Ok(automation_from_row(&row)?)
}

fn duplicate_automation(name: &str, entity: &Entity) -> impl FnOnce() -> String {
    let msg = format!(
        "{:?} already has an automation named {name:?}",
        entity.name.as_str()
    );
    move || msg
}

#[async_trait]
impl AutomationStore for SqlStore {
    async fn put_secret(
        &self,
        entity: &Entity,
        name: &str,
        sealed: &str,
        retire: Option<std::time::Duration>,
    ) -> StoreResult<(SecretMeta, bool)> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(
            "SELECT id, sealed, created_at FROM secrets WHERE entity_id = $1 AND name = $2",
        )
        .bind(entity.id.0)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, created_at) = match existing {
            Some(row) => {
                let id: i64 = row.try_get("id")?;
                sqlx::query("UPDATE secrets SET sealed = $1, updated_at = $2 WHERE id = $3")
                    .bind(sealed)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(grace) = retire {
                    let replaced: String = row.try_get("sealed")?;
                    retire_secret(&mut tx, id, &replaced, now, grace).await?;
                }
                (id, Some(row.try_get::<i64, _>("created_at")?))
            }
            None => {
                let row = sqlx::query(
                    "INSERT INTO secrets (entity_id, name, sealed, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) RETURNING id",
                )
                .bind(entity.id.0)
                .bind(name)
                .bind(sealed)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                (row.try_get("id")?, None)
            }
        };
        let previous_values = previous_secret_values(&mut tx, entity.id, now)
            .await?
            .remove(&id)
            .unwrap_or_default();
        tx.commit().await?;
        let meta = SecretMeta {
            name: name.to_string(),
            created_at: ts(created_at.unwrap_or(now)),
            updated_at: ts(now),
            previous_values,
        };
        Ok((meta, created_at.is_none()))
    }

    async fn list_secrets(&self, entity: &Entity) -> StoreResult<Vec<SecretMeta>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(
            "SELECT id, name, created_at, updated_at FROM secrets WHERE entity_id = $1 ORDER BY name",
        )
        .bind(entity.id.0)
        .fetch_all(&mut *conn)
        .await?;
        let mut previous = previous_secret_values(&mut conn, entity.id, now_us()).await?;
        rows.iter()
            .map(|r| {
                Ok(SecretMeta {
                    name: r.try_get("name")?,
                    created_at: ts(r.try_get("created_at")?),
                    updated_at: ts(r.try_get("updated_at")?),
                    previous_values: previous
                        .remove(&r.try_get::<i64, _>("id")?)
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn delete_secret(&self, entity: &Entity, name: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "{INTEGRATION_SELECT} WHERE i.entity_id = $1 ORDER BY i.id"
        ))
        .bind(entity.id.0)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let integration = integration_from_row(row)?;
            if integration.all_secret_names().contains(&name) {
                return Err(StoreError::conflict(format!(
                    "secret {name:?} is used by integration {:?}; change or delete the integration first",
                    integration.name
                )));
            }
        }
        sqlx::query(
            "DELETE FROM previous_secrets WHERE secret_id IN \
             (SELECT id FROM secrets WHERE entity_id = $1 AND name = $2)",
        )
        .bind(entity.id.0)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM secrets WHERE entity_id = $1 AND name = $2")
            .bind(entity.id.0)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::not_found(format!("secret {name:?} not found")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sealed_secret(
        &self,
        entity: EntityId,
        name: &str,
    ) -> StoreResult<Option<SealedSecret>> {
        // The secret and its valid previous values in one read, newest first.
        let rows = sqlx::query(
            "SELECT s.sealed, p.sealed AS previous, p.valid_until FROM secrets s \
             LEFT JOIN previous_secrets p ON p.secret_id = s.id AND p.valid_until > $3 \
             WHERE s.entity_id = $1 AND s.name = $2 ORDER BY p.id DESC",
        )
        .bind(entity.0)
        .bind(name)
        .bind(now_us())
        .fetch_all(&self.read)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut previous = Vec::new();
        for r in &rows {
            if let (Some(p), Some(until)) = (
                r.try_get::<Option<String>, _>("previous")?,
                r.try_get::<Option<i64>, _>("valid_until")?,
            ) {
                previous.push((p, ts(until)));
            }
        }
        Ok(Some(SealedSecret {
            sealed: first.try_get("sealed")?,
            previous,
        }))
    }

    async fn create_integration(
        &self,
        entity: &Entity,
        new: NewIntegration,
    ) -> StoreResult<Integration> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let slack_webhook = new
            .slack
            .as_ref()
            .and_then(|s| s.webhook_url_secret.clone());
        let slack_token = new.slack.as_ref().and_then(|s| s.bot_token_secret.clone());
        check_secrets_exist(
            &mut tx,
            entity,
            &[
                &new.access_token_secret,
                &new.signing_secret,
                &slack_webhook,
                &slack_token,
            ],
        )
        .await?;
        let slack = new
            .slack
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        let id: i64 = sqlx::query(
            "INSERT INTO integrations (entity_id, kind, name, url, access_token_secret, signing_secret, enabled, \
             created_at, updated_at, slack) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
        )
        .bind(entity.id.0)
        .bind(new.kind.as_str())
        .bind(&new.name)
        .bind(&new.url)
        .bind(&new.access_token_secret)
        .bind(&new.signing_secret)
        .bind(new.enabled as i64)
        .bind(now)
        .bind(slack)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique(|| format!("{:?} already has an integration named {:?}", entity.name.as_str(), new.name)))?
        .try_get("id")?;
        let integration = find_integration(&mut tx, entity, IntegrationId(id)).await?;
        tx.commit().await?;
        Ok(integration)
    }

    async fn list_integrations(&self, entity: &Entity) -> StoreResult<Vec<Integration>> {
        let rows = sqlx::query(&format!(
            "{INTEGRATION_SELECT} WHERE i.entity_id = $1 ORDER BY i.id"
        ))
        .bind(entity.id.0)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(integration_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn integration_owner(&self, id: IntegrationId) -> StoreResult<Option<EntityId>> {
        owner(
            &self.read,
            "SELECT entity_id FROM integrations WHERE id = $1",
            id.0,
        )
        .await
    }

    async fn integration(&self, entity: &Entity, id: IntegrationId) -> StoreResult<Integration> {
        let mut conn = self.read.acquire().await?;
        find_integration(&mut conn, entity, id).await
    }

    async fn integration_for_delivery(
        &self,
        entity: EntityId,
        id: IntegrationId,
    ) -> StoreResult<Option<Integration>> {
        let row = sqlx::query(&format!(
            "{INTEGRATION_SELECT} WHERE i.entity_id = $1 AND i.id = $2"
        ))
        .bind(entity.0)
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(integration_from_row).transpose()?)
    }

    async fn update_integration(
        &self,
        entity: &Entity,
        id: IntegrationId,
        patch: IntegrationPatch,
    ) -> StoreResult<Integration> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let current = find_integration(&mut tx, entity, id).await?;
        let name = patch.name.unwrap_or(current.name);
        let url = patch.url.unwrap_or(current.url);
        let access = patch
            .access_token_secret
            .unwrap_or(current.access_token_secret);
        let signing = patch.signing_secret.unwrap_or(current.signing_secret);
        let enabled = patch.enabled.unwrap_or(current.enabled);
        let slack = patch.slack.or(current.slack);
        let slack_webhook = slack.as_ref().and_then(|s| s.webhook_url_secret.clone());
        let slack_token = slack.as_ref().and_then(|s| s.bot_token_secret.clone());
        check_secrets_exist(
            &mut tx,
            entity,
            &[&access, &signing, &slack_webhook, &slack_token],
        )
        .await?;
        // Re-enabling clears the reason herald disabled it for.
        let reason = if enabled {
            None
        } else {
            current.disabled_reason
        };
        sqlx::query(
            "UPDATE integrations SET name = $1, url = $2, access_token_secret = $3, signing_secret = $4, enabled = $5, \
             disabled_reason = $6, updated_at = $7, slack = $10 WHERE entity_id = $8 AND id = $9",
        )
        .bind(&name)
        .bind(&url)
        .bind(&access)
        .bind(&signing)
        .bind(enabled as i64)
        .bind(&reason)
        .bind(now)
        .bind(entity.id.0)
        .bind(id.0)
        .bind(slack.as_ref().map(|s| serde_json::to_string(s).unwrap_or_default()))
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique(|| format!("{:?} already has an integration named {name:?}", entity.name.as_str())))?;
        if current.enabled && !enabled {
            let why = format!("cancelled: integration {name:?} was disabled");
            cancel_waiting(&mut tx, entity.id, Withdrawn::Integration(id), &why, None).await?;
        }
        let integration = find_integration(&mut tx, entity, id).await?;
        tx.commit().await?;
        Ok(integration)
    }

    async fn delete_integration(&self, entity: &Entity, id: IntegrationId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        find_integration(&mut tx, entity, id).await?;
        let user = sqlx::query(
            "SELECT name FROM automations WHERE entity_id = $1 AND integration_id = $2 LIMIT 1",
        )
        .bind(entity.id.0)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = user {
            return Err(StoreError::conflict(format!(
                "integration {id} is used by automation {:?}; change or delete the automation first",
                row.try_get::<String, _>("name")?
            )));
        }
        let why = format!("cancelled: integration {id} was deleted");
        cancel_waiting(&mut tx, entity.id, Withdrawn::Integration(id), &why, None).await?;
        sqlx::query("DELETE FROM integrations WHERE entity_id = $1 AND id = $2")
            .bind(entity.id.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn disable_integration(
        &self,
        entity: EntityId,
        id: IntegrationId,
        reason: &str,
        except: ExecutionId,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE integrations SET enabled = 0, disabled_reason = $1, updated_at = $2 WHERE entity_id = $3 AND id = $4",
        )
        .bind(reason)
        .bind(now_us())
        .bind(entity.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let why = format!("cancelled: herald disabled the integration ({reason})");
        cancel_waiting(
            &mut tx,
            entity,
            Withdrawn::Integration(id),
            &why,
            Some(except),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_automation(
        &self,
        entity: &Entity,
        new: NewAutomation,
    ) -> StoreResult<Automation> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        check_action_integration(&mut tx, entity, &new.action).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO automations (entity_id, name, description, enabled, scope_type, scope_path, event_type, filter, \
             action, integration_id, rate_limit, created_by, created_at, updated_at, cooldown_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14) RETURNING id",
        )
        .bind(entity.id.0)
        .bind(&new.name)
        .bind(&new.description)
        .bind(new.enabled as i64)
        .bind(new.scope.scope_type.as_str())
        .bind(&new.scope.path)
        .bind(new.event.event_type.as_str())
        .bind(new.event.filter.to_string())
        .bind(serde_json::to_string(&new.action).map_err(anyhow::Error::from)?)
        .bind(new.action.integration_id().map(|i| i.0))
        .bind(new.rate_limit_per_minute as i64)
        .bind(&new.created_by)
        .bind(now)
        .bind(new.cooldown_seconds.map(i64::from))
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique(duplicate_automation(&new.name, entity)))?
        .try_get("id")?;
        bump_epoch(&mut tx).await?;
        let a = find_automation(&mut tx, entity, AutomationId(id)).await?;
        tx.commit().await?;
        Ok(a)
    }

    async fn list_automations(
        &self,
        entity: &Entity,
        name: Option<&str>,
    ) -> StoreResult<Vec<Automation>> {
        let rows = match name {
            Some(n) => {
                sqlx::query(&format!(
                    "{AUTOMATION_SELECT} WHERE a.entity_id = $1 AND a.name = $2 ORDER BY a.id"
                ))
                .bind(entity.id.0)
                .bind(n)
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{AUTOMATION_SELECT} WHERE a.entity_id = $1 ORDER BY a.id"
                ))
                .bind(entity.id.0)
                .fetch_all(&self.read)
                .await?
            }
        };
        Ok(rows
            .iter()
            .map(automation_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn automation_owner(&self, id: AutomationId) -> StoreResult<Option<EntityId>> {
        owner(
            &self.read,
            "SELECT entity_id FROM automations WHERE id = $1",
            id.0,
        )
        .await
    }

    async fn automation(&self, entity: &Entity, id: AutomationId) -> StoreResult<Automation> {
        let mut conn = self.read.acquire().await?;
        find_automation(&mut conn, entity, id).await
    }

    async fn replace_automation(
        &self,
        entity: &Entity,
        id: AutomationId,
        new: NewAutomation,
    ) -> StoreResult<Automation> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        find_automation(&mut tx, entity, id).await?;
        check_action_integration(&mut tx, entity, &new.action).await?;
        sqlx::query(
            "UPDATE automations SET name = $1, description = $2, enabled = $3, scope_type = $4, scope_path = $5, \
             event_type = $6, filter = $7, action = $8, integration_id = $9, rate_limit = $10, updated_at = $11, \
             cooldown_seconds = $14 WHERE entity_id = $12 AND id = $13",
        )
        .bind(&new.name)
        .bind(&new.description)
        .bind(new.enabled as i64)
        .bind(new.scope.scope_type.as_str())
        .bind(&new.scope.path)
        .bind(new.event.event_type.as_str())
        .bind(new.event.filter.to_string())
        .bind(serde_json::to_string(&new.action).map_err(anyhow::Error::from)?)
        .bind(new.action.integration_id().map(|i| i.0))
        .bind(new.rate_limit_per_minute as i64)
        .bind(now)
        .bind(entity.id.0)
        .bind(id.0)
        .bind(new.cooldown_seconds.map(i64::from))
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique(duplicate_automation(&new.name, entity)))?;
        if !new.enabled {
            let why = format!("cancelled: automation {:?} was disabled", new.name);
            cancel_waiting(&mut tx, entity.id, Withdrawn::Automation(id), &why, None).await?;
        }
        bump_epoch(&mut tx).await?;
        let a = find_automation(&mut tx, entity, id).await?;
        tx.commit().await?;
        Ok(a)
    }

    async fn delete_automation(&self, entity: &Entity, id: AutomationId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM automations WHERE entity_id = $1 AND id = $2")
            .bind(entity.id.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::not_found(format!("automation {id} not found")));
        }
        // Nothing more is sent for it; an attempt in flight may finish.
        let why = format!("cancelled: automation {id} was deleted");
        cancel_waiting(&mut tx, entity.id, Withdrawn::Automation(id), &why, None).await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enabled_automations(&self) -> StoreResult<Vec<Automation>> {
        let rows = sqlx::query(&format!(
            "{AUTOMATION_SELECT} WHERE a.enabled = 1 ORDER BY a.id"
        ))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(automation_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn automation_epoch(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query("SELECT epoch FROM automation_epoch WHERE id = 1")
                .fetch_one(&self.read)
                .await?
                .try_get("epoch")?,
        )
    }
}

pub(crate) async fn owner(
    pool: &sqlx::AnyPool,
    sql: &str,
    id: i64,
) -> StoreResult<Option<EntityId>> {
    let row = sqlx::query(sql).bind(id).fetch_optional(pool).await?;
    Ok(row
        .map(|r| r.try_get::<i64, _>("entity_id"))
        .transpose()?
        .map(EntityId))
}
