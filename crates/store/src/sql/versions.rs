//! The rows behind artifact versions: collections, memberships, aliases and tags, read and
//! written inside the caller's connection or transaction, and the creation of a version.
//!
//! A version is created in its home *sequence* and gets a membership there at the same index;
//! linking gives it a further membership in a registry *portfolio*. Aliases hang off
//! memberships (unique per collection), tags off versions and collections. `latest` is an
//! alias row like any other, moved by herald to the newest membership without an event.

use herald_domain::catalog::{
    ArtifactVersion, Collection, CollectionKind, Project, User, VersionSource,
};
use herald_domain::event::{EventType, NewEvent};
use herald_domain::ids::{CollectionId, VersionId};
use herald_domain::names::{version_string, AliasName, TagName, VersionRef, LATEST};
use serde_json::json;

use super::db::{params, Columns, Conn};
use super::events::insert_event;
use super::{json_col, json_text, ts};
use crate::{NewVersion, StoreError, StoreResult};

/// A collection row, with what events and errors need to name it.
pub(crate) struct CollRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) kind: CollectionKind,
    pub(crate) artifact_type: String,
    pub(crate) next_index: i64,
    pub(crate) created_at: i64,
}

/// A membership: a version's place in one collection.
pub(crate) struct MemRow {
    pub(crate) id: i64,
    pub(crate) version_id: i64,
    pub(crate) version_index: i64,
}

fn mem_from_row(r: &dyn Columns) -> StoreResult<MemRow> {
    Ok(MemRow {
        id: r.int_required("id")?,
        version_id: r.int_required("version_id")?,
        version_index: r.int_required("version_index")?,
    })
}

pub(crate) async fn find_collection(
    conn: &mut Conn<'_>,
    project: &Project,
    name: &str,
) -> StoreResult<Option<CollRow>> {
    conn.fetch_optional(
        "SELECT id, name, kind, artifact_type, next_index, created_at FROM collections \
         WHERE project_id = $1 AND name = $2",
        params![project.id.0, name],
        |r| {
            Ok(CollRow {
                id: r.int_required("id")?,
                name: r.text_required("name")?,
                kind: CollectionKind::from_db(&r.text_required("kind")?)
                    .unwrap_or(CollectionKind::Sequence),
                artifact_type: r.text_required("artifact_type")?,
                next_index: r.int_required("next_index")?,
                created_at: r.int_required("created_at")?,
            })
        },
    )
    .await
}

pub(crate) async fn collection_or_404(
    conn: &mut Conn<'_>,
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

pub(crate) async fn resolve(
    conn: &mut Conn<'_>,
    project: &Project,
    coll: &CollRow,
    r: &VersionRef,
) -> StoreResult<MemRow> {
    let row = match r {
        VersionRef::Index(i) => {
            conn.fetch_optional(
                "SELECT id, version_id, version_index FROM memberships WHERE collection_id = $1 AND version_index = $2",
                params![coll.id, *i],
                mem_from_row,
            )
            .await?
        }
        VersionRef::Alias(a) => {
            conn.fetch_optional(
                "SELECT m.id, m.version_id, m.version_index FROM aliases a JOIN memberships m ON m.id = a.membership_id \
                 WHERE a.collection_id = $1 AND a.alias = $2",
                params![coll.id, a.as_str()],
                mem_from_row,
            )
            .await?
        }
    };
    row.ok_or_else(|| {
        let what = match r {
            VersionRef::Index(_) => format!("version {r}"),
            VersionRef::Alias(_) => format!("alias {:?}", r.to_string()),
        };
        StoreError::not_found(format!(
            "{what} not found in {}/{}/{}",
            project.entity, project.name, coll.name
        ))
    })
}

async fn strings(
    conn: &mut Conn<'_>,
    sql: &str,
    column: &str,
    id: i64,
) -> StoreResult<Vec<String>> {
    conn.fetch_all(sql, params![id], |r| r.text_required(column))
        .await
}

/// Loads a version as seen through membership `mem_id` of `coll`.
pub(crate) async fn load_version(
    conn: &mut Conn<'_>,
    project: &Project,
    coll: &CollRow,
    mem_id: i64,
) -> StoreResult<ArtifactVersion> {
    let mut version = conn
        .fetch_one(
            "SELECT m.version_index AS idx, v.id AS vid, v.digest, v.description, v.metadata, v.run_name, v.created_at, \
             u.username AS creator, v.version_index AS home_idx, hc.name AS home_coll, hp.name AS home_project, \
             he.name AS home_entity \
             FROM memberships m JOIN versions v ON v.id = m.version_id JOIN users u ON u.id = v.created_by \
             JOIN collections hc ON hc.id = v.collection_id JOIN projects hp ON hp.id = hc.project_id \
             JOIN entities he ON he.id = hp.entity_id WHERE m.id = $1",
            params![mem_id],
            |row| {
                let idx = row.int_required("idx")?;
                Ok(ArtifactVersion {
                    id: VersionId(row.int_required("vid")?),
                    entity: project.entity.to_string(),
                    project: project.name.to_string(),
                    collection: coll.name.clone(),
                    collection_kind: coll.kind,
                    artifact_type: coll.artifact_type.clone(),
                    version: version_string(idx),
                    version_index: idx,
                    aliases: Vec::new(),
                    tags: Vec::new(),
                    digest: row.text("digest")?,
                    description: row.text("description")?,
                    metadata: json_col(&row.text_required("metadata")?),
                    created_by: row.text_required("creator")?,
                    run_id: row.text("run_name")?,
                    created_at: ts(row.int_required("created_at")?),
                    source: VersionSource {
                        entity: row.text_required("home_entity")?,
                        project: row.text_required("home_project")?,
                        collection: row.text_required("home_coll")?,
                        version: version_string(row.int_required("home_idx")?),
                    },
                })
            },
        )
        .await?;
    version.aliases = strings(
        conn,
        "SELECT alias FROM aliases WHERE membership_id = $1 ORDER BY alias",
        "alias",
        mem_id,
    )
    .await?;
    version.tags = strings(
        conn,
        "SELECT tag FROM version_tags WHERE version_id = $1 ORDER BY tag",
        "tag",
        version.id.0,
    )
    .await?;
    Ok(version)
}

pub(crate) async fn load_collection(
    conn: &mut Conn<'_>,
    project: &Project,
    coll: &CollRow,
) -> StoreResult<Collection> {
    let tags = strings(
        conn,
        "SELECT tag FROM collection_tags WHERE collection_id = $1 ORDER BY tag",
        "tag",
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
pub(crate) fn artifact_event(
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

const FIND_ALIAS: &str =
    "SELECT m.id, m.version_index FROM aliases a JOIN memberships m ON m.id = a.membership_id \
     WHERE a.collection_id = $1 AND a.alias = $2";
const UPSERT_ALIAS: &str = "INSERT INTO aliases (collection_id, alias, membership_id, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (collection_id, alias) DO UPDATE SET membership_id = excluded.membership_id, \
     created_at = excluded.created_at";
const ADD_VERSION_TAG: &str = "INSERT INTO version_tags (version_id, tag, created_at) VALUES ($1, $2, $3) ON CONFLICT (version_id, tag) DO NOTHING";
const INSERT_MEMBERSHIP: &str =
    "INSERT INTO memberships (collection_id, version_id, version_index, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";

/// Points `alias` of `coll` at `mem`; returns the index it moved from, `Some(None)` when it was
/// new, and `None` when it was already there (nothing changed).
async fn put_alias(
    conn: &mut Conn<'_>,
    coll: &CollRow,
    mem: &MemRow,
    alias: &str,
    now: i64,
) -> StoreResult<Option<Option<i64>>> {
    let current = conn
        .fetch_optional(FIND_ALIAS, params![coll.id, alias], |r| {
            Ok((r.int_required("id")?, r.int_required("version_index")?))
        })
        .await?;
    let previous = match current {
        Some((id, _)) if id == mem.id => return Ok(None),
        Some((_, index)) => Some(index),
        None => None,
    };
    conn.execute(UPSERT_ALIAS, params![coll.id, alias, mem.id, now])
        .await?;
    Ok(Some(previous))
}

/// Sets user-given aliases on `mem`, writing an ADD_ARTIFACT_ALIAS event for each change.
pub(crate) async fn add_aliases(
    tx: &mut Conn<'_>,
    project: &Project,
    coll: &CollRow,
    mem: &MemRow,
    aliases: &[AliasName],
    author: &User,
    now: i64,
) -> StoreResult<()> {
    for alias in dedup(aliases) {
        if let Some(previous) = put_alias(tx, coll, mem, alias.as_str(), now).await? {
            let mut e = artifact_event(
                EventType::AddArtifactAlias,
                project,
                coll,
                Some(mem),
                author,
            );
            e.alias = Some(alias.to_string());
            e.body = json!({ "previous_version": previous.map(version_string) });
            insert_event(tx, &e, now).await?;
        }
    }
    Ok(())
}

/// Adds `tag` to the version behind `mem`; writes ADD_ARTIFACT_TAG only if it was not there.
pub(crate) async fn tag_version(
    tx: &mut Conn<'_>,
    project: &Project,
    coll: &CollRow,
    mem: &MemRow,
    tag: &TagName,
    author: &User,
    now: i64,
) -> StoreResult<()> {
    let added = tx
        .execute(ADD_VERSION_TAG, params![mem.version_id, tag.as_str(), now])
        .await?;
    if added > 0 {
        let mut e = artifact_event(EventType::AddArtifactTag, project, coll, Some(mem), author);
        e.tag = Some(tag.to_string());
        insert_event(tx, &e, now).await?;
    }
    Ok(())
}

pub(crate) fn dedup<T: PartialEq>(items: &[T]) -> Vec<&T> {
    let mut out: Vec<&T> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Moves `latest` to the collection's newest membership, or drops it if there is none.
pub(crate) async fn refresh_latest(
    conn: &mut Conn<'_>,
    coll: &CollRow,
    now: i64,
) -> StoreResult<()> {
    let newest = conn
        .fetch_optional(
            "SELECT id FROM memberships WHERE collection_id = $1 ORDER BY version_index DESC LIMIT 1",
            params![coll.id],
            |r| r.int_required("id"),
        )
        .await?;
    match newest {
        Some(id) => {
            let mem = MemRow {
                id,
                version_id: 0,
                version_index: 0,
            };
            put_alias(conn, coll, &mem, LATEST, now).await?;
        }
        None => {
            conn.execute(
                "DELETE FROM aliases WHERE collection_id = $1 AND alias = $2",
                params![coll.id, LATEST],
            )
            .await?;
        }
    }
    Ok(())
}

/// Takes the collection's next index and records the version's membership there.
pub(crate) async fn add_membership(
    conn: &mut Conn<'_>,
    coll: &CollRow,
    version_id: i64,
    author: &User,
    now: i64,
) -> StoreResult<MemRow> {
    let index = coll.next_index;
    conn.execute(
        "UPDATE collections SET next_index = $1 WHERE id = $2",
        params![index + 1, coll.id],
    )
    .await?;
    let id = conn
        .insert_id(
            INSERT_MEMBERSHIP,
            params![coll.id, version_id, index, author.id.0, now],
        )
        .await?;
    Ok(MemRow {
        id,
        version_id,
        version_index: index,
    })
}

/// Collection `name` exists holding artifacts of type `existing`, not `wanted`.
pub(crate) fn type_conflict(
    project: &Project,
    name: &str,
    existing: &str,
    wanted: &str,
) -> StoreError {
    StoreError::conflict(format!(
        "collection {}/{}/{name} holds artifacts of type {existing:?}, not {wanted:?}",
        project.entity, project.name
    ))
}

/// Finds collection `name` or creates it with `kind` and `artifact_type`; an existing collection
/// must hold the same type.
pub(crate) async fn collection_for_write(
    conn: &mut Conn<'_>,
    project: &Project,
    name: &str,
    kind: CollectionKind,
    artifact_type: &str,
    now: i64,
) -> StoreResult<CollRow> {
    if let Some(c) = find_collection(conn, project, name).await? {
        if c.artifact_type != artifact_type {
            return Err(type_conflict(
                project,
                name,
                &c.artifact_type,
                artifact_type,
            ));
        }
        return Ok(c);
    }
    let id = conn
        .insert_id(
            "INSERT INTO collections (project_id, name, kind, artifact_type, next_index, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5) RETURNING id",
            params![project.id.0, name, kind.as_str(), artifact_type, now],
        )
        .await?;
    Ok(CollRow {
        id,
        name: name.to_string(),
        kind,
        artifact_type: artifact_type.to_string(),
        next_index: 0,
        created_at: now,
    })
}

/// Creates the next version of `new.collection` in one transaction: the hot path of a busy
/// server. The sequence is found or created, and its next index taken, in one statement.
pub(crate) async fn create_version(
    tx: &mut Conn<'_>,
    project: &Project,
    author: &User,
    new: &NewVersion,
    now: i64,
) -> StoreResult<(CollRow, MemRow)> {
    if let Some(run) = &new.run {
        let exists = tx
            .fetch_optional(
                "SELECT 1 AS found FROM runs WHERE project_id = $1 AND name = $2",
                params![project.id.0, run.as_str()],
                |_| Ok(()),
            )
            .await?;
        if exists.is_none() {
            return Err(StoreError::not_found(format!(
                "run {:?} not found in {}/{}",
                run.as_str(),
                project.entity,
                project.name
            )));
        }
    }
    let (coll_id, index, existing_type, created_at) = tx
        .fetch_one(
            "INSERT INTO collections (project_id, name, kind, artifact_type, next_index, created_at) \
             VALUES ($1, $2, $3, $4, 1, $5) \
             ON CONFLICT (project_id, name) DO UPDATE SET next_index = collections.next_index + 1 \
             RETURNING id, next_index - 1 AS idx, artifact_type, created_at",
            params![
                project.id.0,
                new.collection.as_str(),
                CollectionKind::Sequence.as_str(),
                new.artifact_type.as_str(),
                now
            ],
            |r| {
                Ok((
                    r.int_required("id")?,
                    r.int_required("idx")?,
                    r.text_required("artifact_type")?,
                    r.int_required("created_at")?,
                ))
            },
        )
        .await?;
    if existing_type != new.artifact_type.as_str() {
        return Err(type_conflict(
            project,
            new.collection.as_str(),
            &existing_type,
            new.artifact_type.as_str(),
        ));
    }
    let coll = CollRow {
        id: coll_id,
        name: new.collection.to_string(),
        kind: CollectionKind::Sequence,
        artifact_type: existing_type,
        next_index: index + 1,
        created_at,
    };
    let metadata = json_text(&new.metadata);
    let version_id = tx
        .insert_id(
            "INSERT INTO versions (collection_id, version_index, digest, description, metadata, created_by, run_name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            params![
                coll.id,
                index,
                &new.digest,
                &new.description,
                &metadata,
                author.id.0,
                new.run.as_ref().map(|r| r.as_str()),
                now
            ],
        )
        .await?;
    let mem_id = tx
        .insert_id(
            INSERT_MEMBERSHIP,
            params![coll.id, version_id, index, author.id.0, now],
        )
        .await?;
    let mem = MemRow {
        id: mem_id,
        version_id,
        version_index: index,
    };
    // The new version is the newest, so `latest` moves to it without looking.
    tx.execute(UPSERT_ALIAS, params![coll.id, LATEST, mem.id, now])
        .await?;
    let mut e = artifact_event(
        EventType::CreateArtifact,
        project,
        &coll,
        Some(&mem),
        author,
    );
    e.body = json!({
        "digest": new.digest,
        "aliases": new.aliases,
        "tags": new.tags,
        "run_id": new.run,
    });
    insert_event(tx, &e, now).await?;
    add_aliases(tx, project, &coll, &mem, &new.aliases, author, now).await?;
    for tag in dedup(&new.tags) {
        tag_version(tx, project, &coll, &mem, tag, author, now).await?;
    }
    Ok((coll, mem))
}
