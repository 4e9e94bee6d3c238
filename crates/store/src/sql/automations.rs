//! Automations. Every change to one bumps the automation epoch in the same transaction, so
//! matchers notice it with one cheap read.

use herald_domain::automation::{Action, Automation, AutomationName, EventSpec, Scope, ScopeType};
use herald_domain::catalog::Entity;
use herald_domain::event::EventType;
use herald_domain::ids::{AutomationId, EntityId};

use super::db::{params, Columns, Conn};
use super::integrations::{cancel_waiting, Withdrawn};
use super::{json_col, now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{NewAutomation, StoreError, StoreResult};

const AUTOMATION_SELECT: &str = "SELECT a.id, a.entity_id, e.name AS entity_name, a.name, a.description, a.enabled, \
     a.scope_type, a.scope_path, a.event_type, a.filter, a.action, a.rate_limit, a.cooldown_seconds, a.created_by, a.created_at, \
     a.updated_at FROM automations a JOIN entities e ON e.id = a.entity_id";

pub(crate) fn unreadable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("stored {what} is unreadable: {e}"))
}

fn automation_from_row(row: &dyn Columns) -> StoreResult<Automation> {
    let scope_type = row.text_required("scope_type")?;
    let event_type = row.text_required("event_type")?;
    let action: Action =
        serde_json::from_str(&row.text_required("action")?).map_err(|e| unreadable("action", e))?;
    Ok(Automation {
        id: AutomationId(row.int_required("id")?),
        entity_id: EntityId(row.int_required("entity_id")?),
        entity: row.text_required("entity_name")?,
        name: AutomationName::from_trusted(row.text_required("name")?),
        description: row.text("description")?,
        enabled: row.int_required("enabled")? != 0,
        scope: Scope {
            scope_type: ScopeType::parse(&scope_type).map_err(|e| unreadable("scope", e))?,
            path: row.text_required("scope_path")?,
        },
        event: EventSpec {
            event_type: EventType::parse(&event_type).map_err(|e| unreadable("event type", e))?,
            filter: json_col(&row.text_required("filter")?),
        },
        action,
        rate_limit_per_minute: row.int_required("rate_limit")?.clamp(0, u32::MAX as i64) as u32,
        cooldown_seconds: row
            .int("cooldown_seconds")?
            .map(|c| c.clamp(0, u32::MAX as i64) as u32),
        created_by: row.text_required("created_by")?,
        created_at: ts(row.int_required("created_at")?),
        updated_at: ts(row.int_required("updated_at")?),
    })
}

/// Refuses an action whose integration is not the entity's own.
async fn check_action_integration(
    conn: &mut Conn<'_>,
    entity: &Entity,
    action: &Action,
) -> StoreResult<()> {
    if let Some(id) = action.integration_id() {
        let found = conn
            .fetch_optional(
                "SELECT 1 AS found FROM integrations WHERE entity_id = $1 AND id = $2",
                params![entity.id.0, id.0],
                |_| Ok(()),
            )
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

async fn bump_epoch(conn: &mut Conn<'_>) -> StoreResult<()> {
    conn.execute(
        "UPDATE automation_epoch SET epoch = epoch + 1 WHERE id = 1",
        &[],
    )
    .await?;
    Ok(())
}

async fn find_automation(
    conn: &mut Conn<'_>,
    entity: &Entity,
    id: AutomationId,
) -> StoreResult<Automation> {
    let sql = format!("{AUTOMATION_SELECT} WHERE a.entity_id = $1 AND a.id = $2");
    conn.fetch_optional(&sql, params![entity.id.0, id.0], automation_from_row)
        .await?
        .ok_or_else(|| StoreError::not_found(format!("automation {id} not found")))
}

fn duplicate_automation(name: &str, entity: &Entity) -> impl FnOnce() -> String {
    let msg = format!(
        "{:?} already has an automation named {name:?}",
        entity.name.as_str()
    );
    move || msg
}

/// An automation's columns as text, in the order both statements below take them.
struct AutomationText {
    filter: String,
    action: String,
}

impl AutomationText {
    fn new(new: &NewAutomation) -> StoreResult<Self> {
        Ok(Self {
            filter: new.event.filter.to_string(),
            action: serde_json::to_string(&new.action).map_err(anyhow::Error::from)?,
        })
    }
}

impl SqlStore {
    pub(crate) async fn create_automation_row(
        &self,
        entity: &Entity,
        new: NewAutomation,
    ) -> StoreResult<Automation> {
        let now = now_us();
        let text = AutomationText::new(&new)?;
        let mut tx = self.write().await?;
        check_action_integration(&mut tx, entity, &new.action).await?;
        let id = tx
            .insert_id(
                "INSERT INTO automations (entity_id, name, description, enabled, scope_type, scope_path, event_type, filter, \
                 action, integration_id, rate_limit, created_by, created_at, updated_at, cooldown_seconds) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14) RETURNING id",
                params![
                    entity.id.0,
                    &new.name,
                    &new.description,
                    new.enabled,
                    new.scope.scope_type.as_str(),
                    &new.scope.path,
                    new.event.event_type.as_str(),
                    &text.filter,
                    &text.action,
                    new.action.integration_id().map(|i| i.0),
                    i64::from(new.rate_limit_per_minute),
                    &new.created_by,
                    now,
                    new.cooldown_seconds.map(i64::from),
                ],
            )
            .await
            .map_err(conflict_on_unique(duplicate_automation(new.name.as_str(), entity)))?;
        bump_epoch(&mut tx).await?;
        let a = find_automation(&mut tx, entity, AutomationId(id)).await?;
        tx.commit().await?;
        Ok(a)
    }

    pub(crate) async fn list_automation_rows(
        &self,
        entity: &Entity,
        name: Option<&str>,
    ) -> StoreResult<Vec<Automation>> {
        let mut conn = self.read().await?;
        match name {
            Some(n) => {
                let sql = format!(
                    "{AUTOMATION_SELECT} WHERE a.entity_id = $1 AND a.name = $2 ORDER BY a.id"
                );
                conn.fetch_all(&sql, params![entity.id.0, n], automation_from_row)
                    .await
            }
            None => {
                let sql = format!("{AUTOMATION_SELECT} WHERE a.entity_id = $1 ORDER BY a.id");
                conn.fetch_all(&sql, params![entity.id.0], automation_from_row)
                    .await
            }
        }
    }

    pub(crate) async fn automation_row(
        &self,
        entity: &Entity,
        id: AutomationId,
    ) -> StoreResult<Automation> {
        find_automation(&mut self.read().await?, entity, id).await
    }

    pub(crate) async fn replace_automation_row(
        &self,
        entity: &Entity,
        id: AutomationId,
        new: NewAutomation,
    ) -> StoreResult<Automation> {
        let now = now_us();
        let text = AutomationText::new(&new)?;
        let mut tx = self.write().await?;
        find_automation(&mut tx, entity, id).await?;
        check_action_integration(&mut tx, entity, &new.action).await?;
        tx.execute(
            "UPDATE automations SET name = $1, description = $2, enabled = $3, scope_type = $4, scope_path = $5, \
             event_type = $6, filter = $7, action = $8, integration_id = $9, rate_limit = $10, updated_at = $11, \
             cooldown_seconds = $14 WHERE entity_id = $12 AND id = $13",
            params![
                &new.name,
                &new.description,
                new.enabled,
                new.scope.scope_type.as_str(),
                &new.scope.path,
                new.event.event_type.as_str(),
                &text.filter,
                &text.action,
                new.action.integration_id().map(|i| i.0),
                i64::from(new.rate_limit_per_minute),
                now,
                entity.id.0,
                id.0,
                new.cooldown_seconds.map(i64::from),
            ],
        )
        .await
        .map_err(conflict_on_unique(duplicate_automation(new.name.as_str(), entity)))?;
        if !new.enabled {
            let why = format!("cancelled: automation {:?} was disabled", new.name);
            cancel_waiting(&mut tx, entity.id, Withdrawn::Automation(id), &why, None).await?;
        }
        bump_epoch(&mut tx).await?;
        let a = find_automation(&mut tx, entity, id).await?;
        tx.commit().await?;
        Ok(a)
    }

    pub(crate) async fn delete_automation_row(
        &self,
        entity: &Entity,
        id: AutomationId,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let n = tx
            .execute(
                "DELETE FROM automations WHERE entity_id = $1 AND id = $2",
                params![entity.id.0, id.0],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::not_found(format!("automation {id} not found")));
        }
        // Nothing more is sent for it; an attempt in flight may finish.
        let why = format!("cancelled: automation {id} was deleted");
        cancel_waiting(&mut tx, entity.id, Withdrawn::Automation(id), &why, None).await?;
        bump_epoch(&mut tx).await?;
        tx.commit().await
    }

    pub(crate) async fn enabled_automation_rows(&self) -> StoreResult<Vec<Automation>> {
        let sql = format!("{AUTOMATION_SELECT} WHERE a.enabled = 1 ORDER BY a.id");
        let mut conn = self.read().await?;
        conn.fetch_all(&sql, &[], automation_from_row).await
    }

    pub(crate) async fn epoch(&self) -> StoreResult<i64> {
        let mut conn = self.read().await?;
        Ok(conn
            .fetch_int(
                "SELECT epoch FROM automation_epoch WHERE id = 1",
                &[],
                "epoch",
            )
            .await?
            .unwrap_or(0))
    }
}

/// The entity owning row `id` of a table, by `sql` (which selects its `entity_id`).
pub(crate) async fn owner(store: &SqlStore, sql: &str, id: i64) -> StoreResult<Option<EntityId>> {
    let mut conn = store.read().await?;
    let owner = conn
        .fetch_optional(sql, params![id], |r| r.int_required("entity_id"))
        .await?;
    Ok(owner.map(EntityId))
}
