//! Team secrets (sealed by the engine; the store never sees a plain value) and webhook
//! integrations; and the [`AutomationStore`] they share with automations.

use async_trait::async_trait;
use herald_domain::automation::{
    Automation, Integration, IntegrationKind, IntegrationName, PreviousSecretValue, SecretMeta,
    SecretName, WebhookUrl, MAX_PREVIOUS_SECRET_VALUES,
};
use herald_domain::catalog::Entity;
use herald_domain::ids::{AutomationId, EntityId, ExecutionId, IntegrationId};

use super::automations::owner;
use super::db::{params, Columns, Conn};
use super::{now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{
    AutomationStore, IntegrationPatch, NewAutomation, NewIntegration, SealedSecret, StoreError,
    StoreResult,
};

const INTEGRATION_SELECT: &str = "SELECT i.id, i.entity_id, e.name AS entity_name, i.kind, i.name, i.url, \
     i.access_token_secret, i.signing_secret, i.slack, i.enabled, i.disabled_reason, i.created_at, i.updated_at \
     FROM integrations i JOIN entities e ON e.id = i.entity_id";

fn integration_from_row(row: &dyn Columns) -> StoreResult<Integration> {
    Ok(Integration {
        id: IntegrationId(row.int_required("id")?),
        entity_id: EntityId(row.int_required("entity_id")?),
        entity: row.text_required("entity_name")?,
        kind: IntegrationKind::from_db(&row.text_required("kind")?)
            .unwrap_or(IntegrationKind::Webhook),
        slack: row
            .text("slack")?
            .and_then(|s| serde_json::from_str(&s).ok()),
        name: IntegrationName::from_trusted(row.text_required("name")?),
        // Slack integrations store an empty URL.
        url: Some(row.text_required("url")?)
            .filter(|u| !u.is_empty())
            .map(WebhookUrl::from_trusted),
        access_token_secret: row
            .text("access_token_secret")?
            .map(SecretName::from_trusted),
        signing_secret: row.text("signing_secret")?.map(SecretName::from_trusted),
        enabled: row.int_required("enabled")? != 0,
        disabled_reason: row.text("disabled_reason")?,
        created_at: ts(row.int_required("created_at")?),
        updated_at: ts(row.int_required("updated_at")?),
    })
}

/// Keeps a secret's replaced value `sealed` valid for `grace` from `now` (dropping the oldest
/// past `MAX_PREVIOUS_SECRET_VALUES`), and forgets expired ones; no grace forgets them all.
async fn retire_secret(
    tx: &mut Conn<'_>,
    secret: i64,
    sealed: &str,
    now: i64,
    grace: std::time::Duration,
) -> StoreResult<()> {
    let expired_by = if grace.is_zero() { i64::MAX } else { now };
    tx.execute(
        "DELETE FROM previous_secrets WHERE secret_id = $1 AND valid_until <= $2",
        params![secret, expired_by],
    )
    .await?;
    if grace.is_zero() {
        return Ok(());
    }
    let until = now.saturating_add(i64::try_from(grace.as_micros()).unwrap_or(i64::MAX));
    tx.execute(
        "INSERT INTO previous_secrets (secret_id, sealed, retired_at, valid_until) VALUES ($1, $2, $3, $4)",
        params![secret, sealed, now, until],
    )
    .await?;
    tx.execute(
        "DELETE FROM previous_secrets WHERE secret_id = $1 AND id NOT IN \
         (SELECT id FROM previous_secrets WHERE secret_id = $1 ORDER BY id DESC LIMIT $2)",
        params![secret, MAX_PREVIOUS_SECRET_VALUES as i64],
    )
    .await?;
    Ok(())
}

/// The previous values still valid at `now` of `entity`'s secrets, by secret id, newest first.
async fn previous_secret_values(
    conn: &mut Conn<'_>,
    entity: EntityId,
    now: i64,
) -> StoreResult<std::collections::HashMap<i64, Vec<PreviousSecretValue>>> {
    let rows = conn
        .fetch_all(
            "SELECT p.secret_id, p.retired_at, p.valid_until FROM previous_secrets p \
             JOIN secrets s ON s.id = p.secret_id \
             WHERE s.entity_id = $1 AND p.valid_until > $2 ORDER BY p.id DESC",
            params![entity.0, now],
            |r| {
                Ok((
                    r.int_required("secret_id")?,
                    PreviousSecretValue {
                        retired_at: ts(r.int_required("retired_at")?),
                        valid_until: ts(r.int_required("valid_until")?),
                    },
                ))
            },
        )
        .await?;
    let mut out: std::collections::HashMap<i64, Vec<PreviousSecretValue>> = Default::default();
    for (id, value) in rows {
        out.entry(id).or_default().push(value);
    }
    Ok(out)
}

/// Refuses secret names that the entity does not hold.
async fn check_secrets_exist(
    conn: &mut Conn<'_>,
    entity: &Entity,
    names: &[&Option<SecretName>],
) -> StoreResult<()> {
    for name in names
        .iter()
        .filter_map(|n| n.as_ref().map(SecretName::as_str))
    {
        let found = conn
            .fetch_optional(
                "SELECT 1 AS found FROM secrets WHERE entity_id = $1 AND name = $2",
                params![entity.id.0, name],
                |_| Ok(()),
            )
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

/// What waiting executions are cancelled for.
pub(crate) enum Withdrawn {
    Automation(AutomationId),
    Integration(IntegrationId),
}

/// Cancels, in the caller's transaction, the executions of an automation or integration that
/// is deleted or disabled and that are still waiting (for a first attempt or a retry) or in
/// flight: nothing new is sent for them. An attempt already in flight may finish; recording it
/// leaves the execution CANCELLED.
pub(crate) async fn cancel_waiting(
    conn: &mut Conn<'_>,
    entity: EntityId,
    what: Withdrawn,
    reason: &str,
    except: Option<ExecutionId>,
) -> StoreResult<u64> {
    let (column, id) = match what {
        Withdrawn::Automation(id) => ("automation_id", id.0),
        Withdrawn::Integration(id) => ("integration_id", id.0),
    };
    let sql = format!(
        "UPDATE executions SET status = 'CANCELLED', reason = $1, next_attempt_at = NULL, lease_until = NULL, \
         updated_at = $2 WHERE entity_id = $3 AND {column} = $4 AND status IN ('PENDING', 'RUNNING') AND id <> $5"
    );
    conn.execute(
        &sql,
        params![reason, now_us(), entity.0, id, except.map_or(0, |x| x.0)],
    )
    .await
}

async fn find_integration(
    conn: &mut Conn<'_>,
    entity: &Entity,
    id: IntegrationId,
) -> StoreResult<Integration> {
    let sql = format!("{INTEGRATION_SELECT} WHERE i.entity_id = $1 AND i.id = $2");
    conn.fetch_optional(&sql, params![entity.id.0, id.0], integration_from_row)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("integration {id} not found")))
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
        let mut tx = self.write().await?;
        let existing = tx
            .fetch_optional(
                "SELECT id, sealed, created_at FROM secrets WHERE entity_id = $1 AND name = $2",
                params![entity.id.0, name],
                |r| {
                    Ok((
                        r.int_required("id")?,
                        r.text_required("sealed")?,
                        r.int_required("created_at")?,
                    ))
                },
            )
            .await?;
        let (id, created_at) = match existing {
            Some((id, replaced, created_at)) => {
                tx.execute(
                    "UPDATE secrets SET sealed = $1, updated_at = $2 WHERE id = $3",
                    params![sealed, now, id],
                )
                .await?;
                if let Some(grace) = retire {
                    retire_secret(&mut tx, id, &replaced, now, grace).await?;
                }
                (id, Some(created_at))
            }
            None => {
                let id = tx
                    .insert_id(
                        "INSERT INTO secrets (entity_id, name, sealed, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $4) RETURNING id",
                        params![entity.id.0, name, sealed, now],
                    )
                    .await?;
                (id, None)
            }
        };
        let previous_values = previous_secret_values(&mut tx, entity.id, now)
            .await?
            .remove(&id)
            .unwrap_or_default();
        tx.commit().await?;
        let meta = SecretMeta {
            name: SecretName::from_trusted(name.to_string()),
            created_at: ts(created_at.unwrap_or(now)),
            updated_at: ts(now),
            previous_values,
        };
        Ok((meta, created_at.is_none()))
    }

    async fn list_secrets(&self, entity: &Entity) -> StoreResult<Vec<SecretMeta>> {
        let mut conn = self.read().await?;
        let rows = conn
            .fetch_all(
                "SELECT id, name, created_at, updated_at FROM secrets WHERE entity_id = $1 ORDER BY name",
                params![entity.id.0],
                |r| {
                    Ok((
                        r.int_required("id")?,
                        SecretMeta {
                            name: SecretName::from_trusted(r.text_required("name")?),
                            created_at: ts(r.int_required("created_at")?),
                            updated_at: ts(r.int_required("updated_at")?),
                            previous_values: Vec::new(),
                        },
                    ))
                },
            )
            .await?;
        let mut previous = previous_secret_values(&mut conn, entity.id, now_us()).await?;
        Ok(rows
            .into_iter()
            .map(|(id, meta)| SecretMeta {
                previous_values: previous.remove(&id).unwrap_or_default(),
                ..meta
            })
            .collect())
    }

    async fn delete_secret(&self, entity: &Entity, name: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let sql = format!("{INTEGRATION_SELECT} WHERE i.entity_id = $1 ORDER BY i.id");
        let integrations = tx
            .fetch_all(&sql, params![entity.id.0], integration_from_row)
            .await?;
        for integration in &integrations {
            if integration.all_secret_names().contains(&name) {
                return Err(StoreError::conflict(format!(
                    "secret {name:?} is used by integration {:?}; change or delete the integration first",
                    integration.name
                )));
            }
        }
        tx.execute(
            "DELETE FROM previous_secrets WHERE secret_id IN \
             (SELECT id FROM secrets WHERE entity_id = $1 AND name = $2)",
            params![entity.id.0, name],
        )
        .await?;
        let n = tx
            .execute(
                "DELETE FROM secrets WHERE entity_id = $1 AND name = $2",
                params![entity.id.0, name],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::not_found(format!("secret {name:?} not found")));
        }
        tx.commit().await
    }

    async fn sealed_secret(
        &self,
        entity: EntityId,
        name: &str,
    ) -> StoreResult<Option<SealedSecret>> {
        // The secret and its valid previous values in one read, newest first.
        let mut conn = self.read().await?;
        let rows = conn
            .fetch_all(
                "SELECT s.sealed, p.sealed AS previous, p.valid_until FROM secrets s \
                 LEFT JOIN previous_secrets p ON p.secret_id = s.id AND p.valid_until > $3 \
                 WHERE s.entity_id = $1 AND s.name = $2 ORDER BY p.id DESC",
                params![entity.0, name, now_us()],
                |r| {
                    Ok((
                        r.text_required("sealed")?,
                        r.text("previous")?,
                        r.int("valid_until")?,
                    ))
                },
            )
            .await?;
        let Some((sealed, ..)) = rows.first().cloned() else {
            return Ok(None);
        };
        let previous = rows
            .into_iter()
            .filter_map(|(_, p, until)| Some((p?, ts(until?))))
            .collect();
        Ok(Some(SealedSecret { sealed, previous }))
    }

    async fn create_integration(
        &self,
        entity: &Entity,
        new: NewIntegration,
    ) -> StoreResult<Integration> {
        let now = now_us();
        let slack_webhook = new
            .slack
            .as_ref()
            .and_then(|s| s.webhook_url_secret.clone());
        let slack_token = new.slack.as_ref().and_then(|s| s.bot_token_secret.clone());
        let slack = new
            .slack
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        let mut tx = self.write().await?;
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
        let id = tx
            .insert_id(
                "INSERT INTO integrations (entity_id, kind, name, url, access_token_secret, signing_secret, enabled, \
                 created_at, updated_at, slack) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
                params![
                    entity.id.0,
                    new.kind.as_str(),
                    &new.name,
                    new.url.as_ref().map_or("", WebhookUrl::as_str),
                    &new.access_token_secret,
                    &new.signing_secret,
                    new.enabled,
                    now,
                    &slack,
                ],
            )
            .await
            .map_err(conflict_on_unique(|| {
                format!(
                    "{:?} already has an integration named {:?}",
                    entity.name.as_str(),
                    new.name
                )
            }))?;
        let integration = find_integration(&mut tx, entity, IntegrationId(id)).await?;
        tx.commit().await?;
        Ok(integration)
    }

    async fn list_integrations(&self, entity: &Entity) -> StoreResult<Vec<Integration>> {
        let sql = format!("{INTEGRATION_SELECT} WHERE i.entity_id = $1 ORDER BY i.id");
        let mut conn = self.read().await?;
        conn.fetch_all(&sql, params![entity.id.0], integration_from_row)
            .await
    }

    async fn integration_owner(&self, id: IntegrationId) -> StoreResult<Option<EntityId>> {
        owner(
            self,
            "SELECT entity_id FROM integrations WHERE id = $1",
            id.0,
        )
        .await
    }

    async fn integration(&self, entity: &Entity, id: IntegrationId) -> StoreResult<Integration> {
        find_integration(&mut self.read().await?, entity, id).await
    }

    async fn integration_for_delivery(
        &self,
        entity: EntityId,
        id: IntegrationId,
    ) -> StoreResult<Option<Integration>> {
        let sql = format!("{INTEGRATION_SELECT} WHERE i.entity_id = $1 AND i.id = $2");
        let mut conn = self.read().await?;
        conn.fetch_optional(&sql, params![entity.0, id.0], integration_from_row)
            .await
    }

    async fn update_integration(
        &self,
        entity: &Entity,
        id: IntegrationId,
        patch: IntegrationPatch,
    ) -> StoreResult<Integration> {
        let now = now_us();
        let mut tx = self.write().await?;
        let current = find_integration(&mut tx, entity, id).await?;
        let name = patch.name.unwrap_or(current.name);
        let url = patch.url.or(current.url);
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
        let slack = slack
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        tx.execute(
            "UPDATE integrations SET name = $1, url = $2, access_token_secret = $3, signing_secret = $4, enabled = $5, \
             disabled_reason = $6, updated_at = $7, slack = $10 WHERE entity_id = $8 AND id = $9",
            params![
                &name, url.as_ref().map_or("", WebhookUrl::as_str), &access, &signing, enabled, &reason, now, entity.id.0, id.0, &slack,
            ],
        )
        .await
        .map_err(conflict_on_unique(|| {
            format!(
                "{:?} already has an integration named {name:?}",
                entity.name.as_str()
            )
        }))?;
        if current.enabled && !enabled {
            let why = format!("cancelled: integration {name:?} was disabled");
            cancel_waiting(&mut tx, entity.id, Withdrawn::Integration(id), &why, None).await?;
        }
        let integration = find_integration(&mut tx, entity, id).await?;
        tx.commit().await?;
        Ok(integration)
    }

    async fn delete_integration(&self, entity: &Entity, id: IntegrationId) -> StoreResult<()> {
        let mut tx = self.write().await?;
        find_integration(&mut tx, entity, id).await?;
        let user = tx
            .fetch_optional(
                "SELECT name FROM automations WHERE entity_id = $1 AND integration_id = $2 LIMIT 1",
                params![entity.id.0, id.0],
                |r| r.text_required("name"),
            )
            .await?;
        if let Some(automation) = user {
            return Err(StoreError::conflict(format!(
                "integration {id} is used by automation {automation:?}; change or delete the automation first"
            )));
        }
        let why = format!("cancelled: integration {id} was deleted");
        cancel_waiting(&mut tx, entity.id, Withdrawn::Integration(id), &why, None).await?;
        tx.execute(
            "DELETE FROM integrations WHERE entity_id = $1 AND id = $2",
            params![entity.id.0, id.0],
        )
        .await?;
        tx.commit().await
    }

    async fn disable_integration(
        &self,
        entity: EntityId,
        id: IntegrationId,
        reason: &str,
        except: ExecutionId,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        tx.execute(
            "UPDATE integrations SET enabled = 0, disabled_reason = $1, updated_at = $2 WHERE entity_id = $3 AND id = $4",
            params![reason, now_us(), entity.0, id.0],
        )
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
        tx.commit().await
    }

    async fn create_automation(
        &self,
        entity: &Entity,
        new: NewAutomation,
    ) -> StoreResult<Automation> {
        self.create_automation_row(entity, new).await
    }

    async fn list_automations(
        &self,
        entity: &Entity,
        name: Option<&str>,
    ) -> StoreResult<Vec<Automation>> {
        self.list_automation_rows(entity, name).await
    }

    async fn automation_owner(&self, id: AutomationId) -> StoreResult<Option<EntityId>> {
        owner(
            self,
            "SELECT entity_id FROM automations WHERE id = $1",
            id.0,
        )
        .await
    }

    async fn automation(&self, entity: &Entity, id: AutomationId) -> StoreResult<Automation> {
        self.automation_row(entity, id).await
    }

    async fn replace_automation(
        &self,
        entity: &Entity,
        id: AutomationId,
        new: NewAutomation,
    ) -> StoreResult<Automation> {
        self.replace_automation_row(entity, id, new).await
    }

    async fn delete_automation(&self, entity: &Entity, id: AutomationId) -> StoreResult<()> {
        self.delete_automation_row(entity, id).await
    }

    async fn enabled_automations(&self) -> StoreResult<Vec<Automation>> {
        self.enabled_automation_rows().await
    }

    async fn automation_epoch(&self) -> StoreResult<i64> {
        self.epoch().await
    }
}
