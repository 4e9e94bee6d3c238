//! Artifact collections, versions, memberships, aliases, tags, and links into registries.
//!
//! A version is created in its home *sequence* and gets a membership there at the same index;
//! linking gives it a further membership in a registry *portfolio*. Aliases hang off
//! memberships (unique per collection), tags off versions and collections. `latest` is an
//! alias row like any other, moved by herald to the newest membership without an event.

use async_trait::async_trait;
use herald_domain::catalog::{
    ArtifactVersion, Collection, CollectionKind, Project, User, VersionSource,
};
use herald_domain::event::{EventType, NewEvent};
use herald_domain::ids::{CollectionId, EntityId, VersionId};
use herald_domain::names::{
    version_string, AliasName, CollectionName, TagName, VersionRef, LATEST,
};
use serde_json::json;
use sqlx::{AnyConnection, Row};

use super::events::{insert_event, insert_event_inline};
use super::inline::{insert_returning_id, numbered};
use super::{json_col, json_text, now_us, ts, SqlStore};
use crate::{ArtifactStore, NewVersion, StoreError, StoreResult};

/// A collection row, with what events and errors need to name it.
struct CollRow {
    id: i64,
    name: String,
    kind: CollectionKind,
    artifact_type: String,
    next_index: i64,
    created_at: i64,
}

/// A membership: a version's place in one collection.
struct MemRow {
    id: i64,
    version_id: i64,
    version_index: i64,
}

async fn find_collection(
    conn: &mut AnyConnection,
    project: &Project,
    name: &str,
) -> StoreResult<Option<CollRow>> {
    let row = sqlx::query(
        "SELECT id, name, kind, artifact_type, next_index, created_at FROM collections \
         WHERE project_id = $1 AND name = $2",
    )
    .bind(project.id.0)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        let kind: String = r.try_get("kind")?;
        Ok(CollRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            kind: CollectionKind::from_db(&kind).unwrap_or(CollectionKind::Sequence),
            artifact_type: r.try_get("artifact_type")?,
            next_index: r.try_get("next_index")?,
            created_at: r.try_get("created_at")?,
        })
    })
    .transpose()
}

async fn collection_or_404(
    conn: &mut AnyConnection,
    project: &Project,
    name: &str,
) -> StoreResult<CollRow> {
    find_collection(conn, project, name).await?.ok_or_else(|| {
        StoreError::not_found(format!(
            "artifact collection {name:?} not found in {}/{}",
            project.entity, project.name
        ))
    })
}

async fn resolve(
    conn: &mut AnyConnection,
    project: &Project,
    coll: &CollRow,
    r: &VersionRef,
) -> StoreResult<MemRow> {
    let row = match r {
        VersionRef::Index(i) => {
            sqlx::query("SELECT id, version_id, version_index FROM memberships WHERE collection_id = $1 AND version_index = $2")
                .bind(coll.id)
                .bind(*i)
                .fetch_optional(&mut *conn)
                .await?
        }
        VersionRef::Alias(a) => {
            sqlx::query(
                "SELECT m.id, m.version_id, m.version_index FROM aliases a JOIN memberships m ON m.id = a.membership_id \
                 WHERE a.collection_id = $1 AND a.alias = $2",
            )
            .bind(coll.id)
            .bind(a)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let row = row.ok_or_else(|| {
        let what = match r {
            VersionRef::Index(_) => format!("version {r}"),
            VersionRef::Alias(_) => format!("alias {:?}", r.to_string()),
        };
        StoreError::not_found(format!(
            "{what} not found in {}/{}/{}",
            project.entity, project.name, coll.name
        ))
    })?;
    Ok(MemRow {
        id: row.try_get("id")?,
        version_id: row.try_get("version_id")?,
        version_index: row.try_get("version_index")?,
    })
}

async fn strings(conn: &mut AnyConnection, sql: &str, id: i64) -> StoreResult<Vec<String>> {
    let rows = sqlx::query(sql).bind(id).fetch_all(&mut *conn).await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?)
}

/// Loads a version as seen through membership `mem` of `coll`.
async fn load_version(
    conn: &mut AnyConnection,
    project: &Project,
    coll: &CollRow,
    mem_id: i64,
) -> StoreResult<ArtifactVersion> {
    let row = sqlx::query(
        "SELECT m.version_index AS idx, v.id AS vid, v.digest, v.description, v.metadata, v.run_name, v.created_at, \
         u.username AS creator, v.version_index AS home_idx, hc.name AS home_coll, hp.name AS home_project, \
         he.name AS home_entity \
         FROM memberships m JOIN versions v ON v.id = m.version_id JOIN users u ON u.id = v.created_by \
         JOIN collections hc ON hc.id = v.collection_id JOIN projects hp ON hp.id = hc.project_id \
         JOIN entities he ON he.id = hp.entity_id WHERE m.id = $1",
    )
    .bind(mem_id)
    .fetch_one(&mut *conn)
    .await?;
    let vid: i64 = row.try_get("vid")?;
    let idx: i64 = row.try_get("idx")?;
    let aliases = strings(
        conn,
        "SELECT alias FROM aliases WHERE membership_id = $1 ORDER BY alias",
        mem_id,
    )
    .await?;
    let tags = strings(
        conn,
        "SELECT tag FROM version_tags WHERE version_id = $1 ORDER BY tag",
        vid,
    )
    .await?;
    Ok(ArtifactVersion {
        id: VersionId(vid),
        entity: project.entity.to_string(),
        project: project.name.to_string(),
        collection: coll.name.clone(),
        collection_kind: coll.kind,
        artifact_type: coll.artifact_type.clone(),
        version: version_string(idx),
        version_index: idx,
        aliases,
        tags,
        digest: row.try_get("digest")?,
        description: row.try_get("description")?,
        metadata: json_col(&row.try_get::<String, _>("metadata")?),
        created_by: row.try_get("creator")?,
        run_id: row.try_get("run_name")?,
        created_at: ts(row.try_get("created_at")?),
        source: VersionSource {
            entity: row.try_get("home_entity")?,
            project: row.try_get("home_project")?,
            collection: row.try_get("home_coll")?,
            version: version_string(row.try_get("home_idx")?),
        },
    })
}

async fn load_collection(
    conn: &mut AnyConnection,
    project: &Project,
    coll: &CollRow,
) -> StoreResult<Collection> {
    let tags = strings(
        conn,
        "SELECT tag FROM collection_tags WHERE collection_id = $1 ORDER BY tag",
        coll.id,
    )
    .await?;
    Ok(Collection {
        id: CollectionId(coll.id),
        entity: project.entity.clone(),
        project: project.name.clone(),
        name: coll.name.clone(),
        kind: coll.kind,
        artifact_type: coll.artifact_type.clone(),
        tags,
        created_at: ts(coll.created_at),
    })
}

/// An event about membership `mem` of `coll`, by `author`.
fn artifact_event(
    t: EventType,
    project: &Project,
    coll: &CollRow,
    mem: Option<&MemRow>,
    author: &User,
) -> NewEvent {
    let mut e = NewEvent::new(t, project.entity_id, project.entity.as_str());
    e.project = Some(project.name.to_string());
    e.collection = Some(coll.name.clone());
    e.artifact_type = Some(coll.artifact_type.clone());
    e.version_id = mem.map(|m| VersionId(m.version_id));
    e.version_index = mem.map(|m| m.version_index);
    e.author = Some(author.username.to_string());
    e
}

/// Points `alias` of `coll` at `mem`; returns the index it moved from, `Some(None)` when it was
/// new, and `None` when it was already there (nothing changed).
async fn put_alias(
    conn: &mut AnyConnection,
    coll: &CollRow,
    mem: &MemRow,
    alias: &str,
    now: i64,
) -> StoreResult<Option<Option<i64>>> {
    let current = sqlx::query(FIND_ALIAS)
        .bind(coll.id)
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?;
    let previous = match current {
        Some(r) if r.try_get::<i64, _>("id")? == mem.id => return Ok(None),
        Some(r) => Some(r.try_get::<i64, _>("version_index")?),
        None => None,
    };
    sqlx::query(UPSERT_ALIAS)
        .bind(coll.id)
        .bind(alias)
        .bind(mem.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(Some(previous))
}

/// Sets user-given aliases on `mem`, writing an ADD_ARTIFACT_ALIAS event for each change.
#[allow(clippy::too_many_arguments)]
async fn add_aliases(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project: &Project,
    coll: &CollRow,
    mem: &MemRow,
    aliases: &[AliasName],
    author: &User,
    now: i64,
) -> StoreResult<()> {
    for alias in dedup(aliases) {
        if let Some(previous) = put_alias(tx, coll, mem, alias.as_str(), now).await? {
            insert_event(
                tx,
                &alias_event(project, coll, mem, alias, previous, author),
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// ADD_ARTIFACT_ALIAS: `alias` now points at `mem`, having pointed at index `previous`.
fn alias_event(
    project: &Project,
    coll: &CollRow,
    mem: &MemRow,
    alias: &AliasName,
    previous: Option<i64>,
    author: &User,
) -> NewEvent {
    let mut e = artifact_event(
        EventType::AddArtifactAlias,
        project,
        coll,
        Some(mem),
        author,
    );
    e.alias = Some(alias.to_string());
    e.body = json!({ "previous_version": previous.map(version_string) });
    e
}

/// ADD_ARTIFACT_TAG on the version behind `mem`.
fn tag_event(
    project: &Project,
    coll: &CollRow,
    mem: &MemRow,
    tag: &TagName,
    author: &User,
) -> NewEvent {
    let mut e = artifact_event(EventType::AddArtifactTag, project, coll, Some(mem), author);
    e.tag = Some(tag.to_string());
    e
}

fn dedup<T: PartialEq>(items: &[T]) -> Vec<&T> {
    let mut out: Vec<&T> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Moves `latest` to the collection's newest membership, or drops it if there is none.
async fn refresh_latest(conn: &mut AnyConnection, coll: &CollRow, now: i64) -> StoreResult<()> {
    let newest = sqlx::query(
        "SELECT id FROM memberships WHERE collection_id = $1 ORDER BY version_index DESC LIMIT 1",
    )
    .bind(coll.id)
    .fetch_optional(&mut *conn)
    .await?;
    match newest {
        Some(r) => {
            let mem = MemRow {
                id: r.try_get("id")?,
                version_id: 0,
                version_index: 0,
            };
            put_alias(conn, coll, &mem, LATEST, now).await?;
        }
        None => {
            sqlx::query("DELETE FROM aliases WHERE collection_id = $1 AND alias = $2")
                .bind(coll.id)
                .bind(LATEST)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Takes the collection's next index and records the version's membership there.
async fn add_membership(
    conn: &mut AnyConnection,
    coll: &CollRow,
    version_id: i64,
    author: &User,
    now: i64,
) -> StoreResult<MemRow> {
    let index = coll.next_index;
    sqlx::query("UPDATE collections SET next_index = $1 WHERE id = $2")
        .bind(index + 1)
        .bind(coll.id)
        .execute(&mut *conn)
        .await?;
    insert_membership(conn, coll, version_id, index, author, now).await
}

/// Records version `version_id`'s membership of `coll` at `index` (already taken).
async fn insert_membership(
    conn: &mut AnyConnection,
    coll: &CollRow,
    version_id: i64,
    index: i64,
    author: &User,
    now: i64,
) -> StoreResult<MemRow> {
    let id: i64 = sqlx::query(INSERT_MEMBERSHIP)
        .bind(coll.id)
        .bind(version_id)
        .bind(index)
        .bind(author.id.0)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?
        .try_get("id")?;
    Ok(MemRow {
        id,
        version_id,
        version_index: index,
    })
}

/// Finds collection `name` or creates it with `kind` and `artifact_type`; an existing collection
/// must hold the same type.
async fn collection_for_write(
    conn: &mut AnyConnection,
    project: &Project,
    name: &str,
    kind: CollectionKind,
    artifact_type: &str,
    now: i64,
) -> StoreResult<CollRow> {
    if let Some(c) = find_collection(conn, project, name).await? {
        if c.artifact_type != artifact_type {
            return Err(StoreError::conflict(format!(
                "collection {}/{}/{} holds artifacts of type {:?}, not {:?}",
                project.entity, project.name, c.name, c.artifact_type, artifact_type
            )));
        }
        return Ok(c);
    }
    let id: i64 = sqlx::query(
        "INSERT INTO collections (project_id, name, kind, artifact_type, next_index, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
    )
    .bind(project.id.0)
    .bind(name)
    .bind(kind.as_str())
    .bind(artifact_type)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")?;
    Ok(CollRow {
        id,
        name: name.to_string(),
        kind,
        artifact_type: artifact_type.to_string(),
        next_index: 0,
        created_at: now,
    })
}

// The statements that create a version, for both drivers.
const RUN_EXISTS: &str = "SELECT 1 FROM runs WHERE project_id = $1 AND name = $2";
/// Finds or creates the sequence and takes its next index in one statement.
const NEXT_IN_SEQUENCE: &str =
    "INSERT INTO collections (project_id, name, kind, artifact_type, next_index, created_at) \
     VALUES ($1, $2, $3, $4, 1, $5) \
     ON CONFLICT (project_id, name) DO UPDATE SET next_index = collections.next_index + 1 \
     RETURNING id, next_index - 1 AS idx, artifact_type, created_at";
const INSERT_VERSION: &str = "INSERT INTO versions (collection_id, version_index, digest, description, metadata, created_by, run_name, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
const INSERT_MEMBERSHIP: &str =
    "INSERT INTO memberships (collection_id, version_id, version_index, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";
const FIND_ALIAS: &str =
    "SELECT m.id, m.version_index FROM aliases a JOIN memberships m ON m.id = a.membership_id \
     WHERE a.collection_id = $1 AND a.alias = $2";
const UPSERT_ALIAS: &str = "INSERT INTO aliases (collection_id, alias, membership_id, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (collection_id, alias) DO UPDATE SET membership_id = excluded.membership_id, \
     created_at = excluded.created_at";
const ADD_VERSION_TAG: &str = "INSERT INTO version_tags (version_id, tag, created_at) VALUES ($1, $2, $3) ON CONFLICT (version_id, tag) DO NOTHING";

fn run_not_found(project: &Project, run: &str) -> StoreError {
    StoreError::not_found(format!(
        "run {run:?} not found in {}/{}",
        project.entity, project.name
    ))
}

/// The sequence exists with another artifact type.
fn type_conflict(project: &Project, new: &NewVersion, existing: &str) -> StoreError {
    StoreError::conflict(format!(
        "collection {}/{}/{} holds artifacts of type {:?}, not {:?}",
        project.entity,
        project.name,
        new.collection,
        existing,
        new.artifact_type.as_str()
    ))
}

/// The event that announces a new version, with the aliases and tags it was created with.
fn creation_event(
    project: &Project,
    coll: &CollRow,
    mem: &MemRow,
    author: &User,
    new: &NewVersion,
) -> NewEvent {
    let mut e = artifact_event(EventType::CreateArtifact, project, coll, Some(mem), author);
    e.body = json!({
        "digest": new.digest,
        "aliases": new.aliases,
        "tags": new.tags,
        "run_id": new.run,
    });
    e
}

/// Creates a version on the inline SQLite connection: every statement of the hot path of a
/// busy server in one transaction, without a thread switch per statement.
fn create_version_inline(
    tx: &rusqlite::Transaction<'_>,
    project: &Project,
    author: &User,
    new: &NewVersion,
    now: i64,
) -> StoreResult<(CollRow, MemRow)> {
    use rusqlite::OptionalExtension as _;
    if let Some(run) = &new.run {
        let exists = tx
            .prepare_cached(&numbered(RUN_EXISTS))?
            .query_row(rusqlite::params![project.id.0, run.as_str()], |_| Ok(()))
            .optional()?;
        if exists.is_none() {
            return Err(run_not_found(project, run.as_str()));
        }
    }
    let (coll_id, index, existing_type, created_at): (i64, i64, String, i64) =
        tx.prepare_cached(&numbered(NEXT_IN_SEQUENCE))?.query_row(
            rusqlite::params![
                project.id.0,
                new.collection.as_str(),
                CollectionKind::Sequence.as_str(),
                new.artifact_type.as_str(),
                now
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
    if existing_type != new.artifact_type.as_str() {
        return Err(type_conflict(project, new, &existing_type));
    }
    let coll = CollRow {
        id: coll_id,
        name: new.collection.to_string(),
        kind: CollectionKind::Sequence,
        artifact_type: existing_type,
        next_index: index + 1,
        created_at,
    };
    let version_id = insert_returning_id(
        tx,
        INSERT_VERSION,
        rusqlite::params![
            coll.id,
            index,
            new.digest,
            new.description,
            json_text(&new.metadata),
            author.id.0,
            new.run.as_ref().map(|r| r.as_str()),
            now
        ],
    )?;
    let mem_id = insert_returning_id(
        tx,
        INSERT_MEMBERSHIP,
        rusqlite::params![coll.id, version_id, index, author.id.0, now],
    )?;
    let mem = MemRow {
        id: mem_id,
        version_id,
        version_index: index,
    };
    // The new version is the newest, so `latest` moves to it without looking.
    tx.prepare_cached(&numbered(UPSERT_ALIAS))?
        .execute(rusqlite::params![coll.id, LATEST, mem.id, now])?;
    insert_event_inline(tx, &creation_event(project, &coll, &mem, author, new), now)?;
    for alias in dedup(&new.aliases) {
        let current: Option<(i64, i64)> = tx
            .prepare_cached(&numbered(FIND_ALIAS))?
            .query_row(rusqlite::params![coll.id, alias.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        // As `put_alias`: an alias already here (`latest`) changes nothing and says nothing.
        let previous = match current {
            Some((id, _)) if id == mem.id => continue,
            Some((_, idx)) => Some(idx),
            None => None,
        };
        tx.prepare_cached(&numbered(UPSERT_ALIAS))?
            .execute(rusqlite::params![coll.id, alias.as_str(), mem.id, now])?;
        insert_event_inline(
            tx,
            &alias_event(project, &coll, &mem, alias, previous, author),
            now,
        )?;
    }
    for tag in dedup(&new.tags) {
        let added = tx
            .prepare_cached(&numbered(ADD_VERSION_TAG))?
            .execute(rusqlite::params![mem.version_id, tag.as_str(), now])?;
        if added > 0 {
            insert_event_inline(tx, &tag_event(project, &coll, &mem, tag, author), now)?;
        }
    }
    Ok((coll, mem))
}

impl SqlStore {
    /// Creates a version over sqlx (PostgreSQL, or SQLite without a file).
    async fn create_version_sqlx(
        &self,
        project: &Project,
        author: &User,
        new: &NewVersion,
        now: i64,
    ) -> StoreResult<(CollRow, MemRow)> {
        let mut tx = self.begin_write().await?;
        if let Some(run) = &new.run {
            let exists = sqlx::query(RUN_EXISTS)
                .bind(project.id.0)
                .bind(run.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(run_not_found(project, run.as_str()));
            }
        }
        let row = sqlx::query(NEXT_IN_SEQUENCE)
            .bind(project.id.0)
            .bind(new.collection.as_str())
            .bind(CollectionKind::Sequence.as_str())
            .bind(new.artifact_type.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let existing_type: String = row.try_get("artifact_type")?;
        if existing_type != new.artifact_type.as_str() {
            return Err(type_conflict(project, new, &existing_type));
        }
        let index: i64 = row.try_get("idx")?;
        let coll = CollRow {
            id: row.try_get("id")?,
            name: new.collection.to_string(),
            kind: CollectionKind::Sequence,
            artifact_type: existing_type,
            next_index: index + 1,
            created_at: row.try_get("created_at")?,
        };
        let version_id: i64 = sqlx::query(INSERT_VERSION)
            .bind(coll.id)
            .bind(index)
            .bind(&new.digest)
            .bind(&new.description)
            .bind(json_text(&new.metadata))
            .bind(author.id.0)
            .bind(new.run.as_ref().map(|r| r.as_str()))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
        let mem = insert_membership(&mut tx, &coll, version_id, index, author, now).await?;
        // The new version is the newest, so `latest` moves to it without looking.
        sqlx::query(UPSERT_ALIAS)
            .bind(coll.id)
            .bind(LATEST)
            .bind(mem.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            &creation_event(project, &coll, &mem, author, new),
            now,
        )
        .await?;
        add_aliases(&mut tx, project, &coll, &mem, &new.aliases, author, now).await?;
        for tag in dedup(&new.tags) {
            tag_version(&mut tx, project, &coll, &mem, tag, author, now).await?;
        }
        tx.commit().await?;
        Ok((coll, mem))
    }
}

#[async_trait]
impl ArtifactStore for SqlStore {
    async fn create_version(
        &self,
        project: &Project,
        author: &User,
        new: NewVersion,
    ) -> StoreResult<ArtifactVersion> {
        if project.is_registry {
            return Err(StoreError::invalid(
                "collection",
                format!("versions are created in projects, not in registry {}; create it in a project and link it here", project.name),
            ));
        }
        let now = now_us();
        let (coll, mem) = match self
            .write_inline(|tx| create_version_inline(tx, project, author, &new, now))
            .await
        {
            Some(created) => created?,
            None => self.create_version_sqlx(project, author, &new, now).await?,
        };
        let (version_id, index) = (mem.version_id, mem.version_index);
        let mut aliases: Vec<String> = std::iter::once(LATEST.to_string())
            .chain(new.aliases.iter().map(|a| a.to_string()))
            .collect();
        aliases.sort();
        aliases.dedup();
        let mut tags: Vec<String> = new.tags.iter().map(|t| t.to_string()).collect();
        tags.sort();
        tags.dedup();
        Ok(ArtifactVersion {
            id: VersionId(version_id),
            entity: project.entity.to_string(),
            project: project.name.to_string(),
            collection: coll.name.clone(),
            collection_kind: CollectionKind::Sequence,
            artifact_type: coll.artifact_type.clone(),
            version: version_string(index),
            version_index: index,
            aliases,
            tags,
            digest: new.digest,
            description: new.description,
            metadata: new.metadata,
            created_by: author.username.to_string(),
            run_id: new.run.map(|r| r.into_string()),
            created_at: ts(now),
            source: VersionSource {
                entity: project.entity.to_string(),
                project: project.name.to_string(),
                collection: coll.name,
                version: version_string(index),
            },
        })
    }

    async fn collection(&self, project: &Project, name: &str) -> StoreResult<Collection> {
        let mut conn = self.read.acquire().await?;
        let coll = collection_or_404(&mut conn, project, name).await?;
        load_collection(&mut conn, project, &coll).await
    }

    async fn list_collections(&self, project: &Project) -> StoreResult<Vec<Collection>> {
        let mut conn = self.read.acquire().await?;
        let names = sqlx::query("SELECT name FROM collections WHERE project_id = $1 ORDER BY name")
            .bind(project.id.0)
            .fetch_all(&mut *conn)
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for r in names {
            let coll =
                collection_or_404(&mut conn, project, &r.try_get::<String, _>("name")?).await?;
            out.push(load_collection(&mut conn, project, &coll).await?);
        }
        Ok(out)
    }

    async fn version(
        &self,
        project: &Project,
        collection: &str,
        r: &VersionRef,
    ) -> StoreResult<ArtifactVersion> {
        let mut conn = self.read.acquire().await?;
        let coll = collection_or_404(&mut conn, project, collection).await?;
        let mem = resolve(&mut conn, project, &coll, r).await?;
        load_version(&mut conn, project, &coll, mem.id).await
    }

    async fn list_versions(
        &self,
        project: &Project,
        collection: &str,
    ) -> StoreResult<Vec<ArtifactVersion>> {
        let mut conn = self.read.acquire().await?;
        let coll = collection_or_404(&mut conn, project, collection).await?;
        let ids = sqlx::query(
            "SELECT id FROM memberships WHERE collection_id = $1 ORDER BY version_index",
        )
        .bind(coll.id)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for r in ids {
            out.push(load_version(&mut conn, project, &coll, r.try_get("id")?).await?);
        }
        Ok(out)
    }

    async fn add_alias(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        alias: &AliasName,
    ) -> StoreResult<ArtifactVersion> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let mem = resolve(&mut tx, project, &coll, r).await?;
        add_aliases(
            &mut tx,
            project,
            &coll,
            &mem,
            std::slice::from_ref(alias),
            author,
            now,
        )
        .await?;
        let version = load_version(&mut tx, project, &coll, mem.id).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn remove_alias(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        alias: &AliasName,
    ) -> StoreResult<ArtifactVersion> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let mem = resolve(&mut tx, project, &coll, r).await?;
        let deleted = sqlx::query(
            "DELETE FROM aliases WHERE collection_id = $1 AND alias = $2 AND membership_id = $3",
        )
        .bind(coll.id)
        .bind(alias.as_str())
        .bind(mem.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(StoreError::not_found(format!(
                "alias {:?} is not on {} of {}/{}/{}",
                alias.as_str(),
                version_string(mem.version_index),
                project.entity,
                project.name,
                coll.name
            )));
        }
        let mut e = artifact_event(
            EventType::RemoveArtifactAlias,
            project,
            &coll,
            Some(&mem),
            author,
        );
        e.alias = Some(alias.to_string());
        insert_event(&mut tx, &e, now).await?;
        let version = load_version(&mut tx, project, &coll, mem.id).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn add_version_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        tag: &TagName,
    ) -> StoreResult<ArtifactVersion> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let mem = resolve(&mut tx, project, &coll, r).await?;
        tag_version(&mut tx, project, &coll, &mem, tag, author, now).await?;
        let version = load_version(&mut tx, project, &coll, mem.id).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn remove_version_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        tag: &TagName,
    ) -> StoreResult<ArtifactVersion> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let mem = resolve(&mut tx, project, &coll, r).await?;
        let deleted = sqlx::query("DELETE FROM version_tags WHERE version_id = $1 AND tag = $2")
            .bind(mem.version_id)
            .bind(tag.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::not_found(format!(
                "tag {:?} is not on {} of {}/{}/{}",
                tag.as_str(),
                version_string(mem.version_index),
                project.entity,
                project.name,
                coll.name
            )));
        }
        let mut e = artifact_event(
            EventType::RemoveArtifactTag,
            project,
            &coll,
            Some(&mem),
            author,
        );
        e.tag = Some(tag.to_string());
        insert_event(&mut tx, &e, now).await?;
        let version = load_version(&mut tx, project, &coll, mem.id).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn add_collection_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        tag: &TagName,
    ) -> StoreResult<Collection> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let added = sqlx::query(
            "INSERT INTO collection_tags (collection_id, tag, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (collection_id, tag) DO NOTHING",
        )
        .bind(coll.id)
        .bind(tag.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added > 0 {
            let mut e = artifact_event(EventType::AddCollectionTag, project, &coll, None, author);
            e.tag = Some(tag.to_string());
            insert_event(&mut tx, &e, now).await?;
        }
        let c = load_collection(&mut tx, project, &coll).await?;
        tx.commit().await?;
        Ok(c)
    }

    async fn remove_collection_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        tag: &TagName,
    ) -> StoreResult<Collection> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let deleted =
            sqlx::query("DELETE FROM collection_tags WHERE collection_id = $1 AND tag = $2")
                .bind(coll.id)
                .bind(tag.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if deleted == 0 {
            return Err(StoreError::not_found(format!(
                "tag {:?} is not on collection {}/{}/{}",
                tag.as_str(),
                project.entity,
                project.name,
                coll.name
            )));
        }
        let mut e = artifact_event(EventType::RemoveCollectionTag, project, &coll, None, author);
        e.tag = Some(tag.to_string());
        insert_event(&mut tx, &e, now).await?;
        let c = load_collection(&mut tx, project, &coll).await?;
        tx.commit().await?;
        Ok(c)
    }

    async fn link_version(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        registry: &Project,
        target: &CollectionName,
        aliases: &[AliasName],
    ) -> StoreResult<ArtifactVersion> {
        if !registry.is_registry {
            return Err(StoreError::invalid(
                "registry",
                format!(
                    "{}/{} is not a registry; versions can only be linked into registries",
                    registry.entity, registry.name
                ),
            ));
        }
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let source_coll = collection_or_404(&mut tx, project, collection).await?;
        let source = resolve(&mut tx, project, &source_coll, r).await?;
        let source_version = load_version(&mut tx, project, &source_coll, source.id).await?;
        let portfolio = collection_for_write(
            &mut tx,
            registry,
            target.as_str(),
            CollectionKind::Portfolio,
            &source_coll.artifact_type,
            now,
        )
        .await?;
        let existing = sqlx::query(
            "SELECT version_index FROM memberships WHERE collection_id = $1 AND version_id = $2",
        )
        .bind(portfolio.id)
        .bind(source.version_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Err(StoreError::conflict(format!(
                "{}/{}/{}:{} is already linked to {}/{}/{} as {}",
                project.entity,
                project.name,
                source_coll.name,
                version_string(source.version_index),
                registry.entity,
                registry.name,
                portfolio.name,
                version_string(row.try_get("version_index")?)
            )));
        }
        let mem = add_membership(&mut tx, &portfolio, source.version_id, author, now).await?;
        refresh_latest(&mut tx, &portfolio, now).await?;
        let mut e = artifact_event(
            EventType::LinkModel,
            registry,
            &portfolio,
            Some(&mem),
            author,
        );
        e.body = json!({ "source": source_version.source, "aliases": aliases });
        insert_event(&mut tx, &e, now).await?;
        add_aliases(&mut tx, registry, &portfolio, &mem, aliases, author, now).await?;
        let version = load_version(&mut tx, registry, &portfolio, mem.id).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn version_metadata(
        &self,
        entity: EntityId,
        id: VersionId,
    ) -> StoreResult<Option<serde_json::Value>> {
        // The version is named by an event of `entity`: it was created in one of the entity's
        // projects or linked into one of its registries (possibly unlinked since).
        let row = sqlx::query(
            "SELECT v.metadata FROM versions v WHERE v.id = $1 AND (\
             EXISTS (SELECT 1 FROM collections c JOIN projects p ON p.id = c.project_id \
                     WHERE c.id = v.collection_id AND p.entity_id = $2) OR \
             EXISTS (SELECT 1 FROM events ev WHERE ev.entity_id = $2 AND ev.version_id = v.id))",
        )
        .bind(id.0)
        .bind(entity.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("metadata"))
            .transpose()?
            .map(|m| json_col(&m)))
    }

    async fn unlink_version(
        &self,
        registry: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
    ) -> StoreResult<()> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let coll = collection_or_404(&mut tx, registry, collection).await?;
        if coll.kind != CollectionKind::Portfolio {
            return Err(StoreError::invalid(
                "collection",
                format!(
                    "{}/{}/{} is the sequence its versions were created in; only links into registry collections can be removed",
                    registry.entity, registry.name, coll.name
                ),
            ));
        }
        let mem = resolve(&mut tx, registry, &coll, r).await?;
        let version = load_version(&mut tx, registry, &coll, mem.id).await?;
        sqlx::query("DELETE FROM aliases WHERE membership_id = $1")
            .bind(mem.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM memberships WHERE id = $1")
            .bind(mem.id)
            .execute(&mut *tx)
            .await?;
        refresh_latest(&mut tx, &coll, now).await?;
        let mut e = artifact_event(
            EventType::UnlinkArtifact,
            registry,
            &coll,
            Some(&mem),
            author,
        );
        let removed: Vec<&String> = version
            .aliases
            .iter()
            .filter(|a| a.as_str() != LATEST)
            .collect();
        e.body = json!({ "source": version.source, "aliases": removed });
        insert_event(&mut tx, &e, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Adds `tag` to the version behind `mem`; writes ADD_ARTIFACT_TAG only if it was not there.
#[allow(clippy::too_many_arguments)]
async fn tag_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project: &Project,
    coll: &CollRow,
    mem: &MemRow,
    tag: &TagName,
    author: &User,
    now: i64,
) -> StoreResult<()> {
    let added = sqlx::query(ADD_VERSION_TAG)
        .bind(mem.version_id)
        .bind(tag.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if added > 0 {
        insert_event(tx, &tag_event(project, coll, mem, tag, author), now).await?;
    }
    Ok(())
}
