//! The event log: written inside the transaction of the change it records, read in id order.

use async_trait::async_trait;
use herald_domain::event::{Event, EventType, NewEvent, PageRequest};
use herald_domain::ids::{EntityId, EventId, VersionId};
use herald_domain::names::version_string;
use sqlx::{Any, Row, Transaction};

use super::inline::insert_returning_id;
use super::{json_col, json_text, ts, Columns, SqlStore};
use crate::{EventStore, StoreResult};

const INSERT_EVENT: &str = "INSERT INTO events (event_type, entity_id, entity_name, project_name, collection_name, artifact_type, \
     version_id, version_index, alias, tag, run_name, author, created_at, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id";

/// Appends `event` within `tx`, so it commits or rolls back with the change it describes.
pub(crate) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    event: &NewEvent,
    now: i64,
) -> StoreResult<EventId> {
    let id: i64 = sqlx::query(INSERT_EVENT)
        .bind(event.event_type.as_str())
        .bind(event.entity_id.0)
        .bind(&event.entity)
        .bind(&event.project)
        .bind(&event.collection)
        .bind(&event.artifact_type)
        .bind(event.version_id.map(|v| v.0))
        .bind(event.version_index)
        .bind(&event.alias)
        .bind(&event.tag)
        .bind(&event.run)
        .bind(&event.author)
        .bind(now)
        .bind(json_text(&event.body))
        .fetch_one(&mut **tx)
        .await?
        .try_get("id")?;
    Ok(EventId(id))
}

/// [`insert_event`] on the inline SQLite connection.
pub(crate) fn insert_event_inline(
    tx: &rusqlite::Transaction<'_>,
    event: &NewEvent,
    now: i64,
) -> StoreResult<EventId> {
    let id = insert_returning_id(
        tx,
        INSERT_EVENT,
        rusqlite::params![
            event.event_type.as_str(),
            event.entity_id.0,
            event.entity,
            event.project,
            event.collection,
            event.artifact_type,
            event.version_id.map(|v| v.0),
            event.version_index,
            event.alias,
            event.tag,
            event.run,
            event.author,
            now,
            json_text(&event.body),
        ],
    )?;
    Ok(EventId(id))
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, event_type, entity_id, entity_name, project_name, collection_name, artifact_type, \
     version_id, version_index, alias, tag, run_name, author, created_at, body";

pub(crate) fn event_from_row(row: &impl Columns) -> StoreResult<Event> {
    let event_type = EventType::parse(&row.text_required("event_type")?)
        .map_err(|e| anyhow::anyhow!("events.event_type: {}", e.message))?;
    Ok(Event {
        id: EventId(row.int_required("id")?),
        event_type,
        entity_id: EntityId(row.int_required("entity_id")?),
        entity: row.text_required("entity_name")?,
        project: row.text("project_name")?,
        collection: row.text("collection_name")?,
        artifact_type: row.text("artifact_type")?,
        version_id: row.int("version_id")?.map(VersionId),
        version: row.int("version_index")?.map(version_string),
        alias: row.text("alias")?,
        tag: row.text("tag")?,
        run: row.text("run_name")?,
        author: row.text("author")?,
        created_at: ts(row.int_required("created_at")?),
        body: json_col(&row.text_required("body")?),
    })
}

#[async_trait]
impl EventStore for SqlStore {
    async fn list_events(&self, entity: EntityId, page: PageRequest) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE entity_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(entity.0)
        .bind(page.after.unwrap_or(0))
        .bind(page.limit as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}
