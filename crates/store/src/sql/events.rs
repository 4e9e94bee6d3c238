//! The event log: written inside the transaction of the change it records, read in id order.

use async_trait::async_trait;
use herald_domain::event::{Event, EventType, NewEvent, PageRequest};
use herald_domain::ids::{EntityId, EventId, VersionId};
use herald_domain::names::version_string;

use super::db::{params, Columns, Conn};
use super::{json_col, json_text, ts, SqlStore};
use crate::{EventStore, StoreResult};

const INSERT_EVENT: &str = "INSERT INTO events (event_type, entity_id, entity_name, project_name, collection_name, artifact_type, \
     version_id, version_index, alias, tag, run_name, author, created_at, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id";

/// Appends `event` within `tx`, so it commits or rolls back with the change it describes.
pub(crate) async fn insert_event(
    tx: &mut Conn<'_>,
    event: &NewEvent,
    now: i64,
) -> StoreResult<EventId> {
    let body = json_text(&event.body);
    let id = tx
        .insert_id(
            INSERT_EVENT,
            params![
                event.event_type.as_str(),
                event.entity_id.0,
                event.entity.as_str(),
                &event.project,
                &event.collection,
                &event.artifact_type,
                event.version_id.map(|v| v.0),
                event.version_index,
                &event.alias,
                &event.tag,
                &event.run,
                &event.author,
                now,
                body.as_str(),
            ],
        )
        .await?;
    Ok(EventId(id))
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, event_type, entity_id, entity_name, project_name, collection_name, artifact_type, \
     version_id, version_index, alias, tag, run_name, author, created_at, body";

pub(crate) fn event_from_row(row: &dyn Columns) -> StoreResult<Event> {
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
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE entity_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let mut conn = self.read().await?;
        conn.fetch_all(
            &sql,
            params![entity.0, page.after.unwrap_or(0), page.limit as i64],
            event_from_row,
        )
        .await
    }
}
