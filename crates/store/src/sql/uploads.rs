//! The [`ArtifactSaveStore`]: artifacts the `wandb` SDK saves in steps. CreateArtifact leaves
//! a row in `artifact_uploads`; CommitArtifact turns it into a version through the same
//! [`create_version`] as REST, so the catalog and its events cannot tell the two apart.

use async_trait::async_trait;
use herald_domain::catalog::{ArtifactVersion, Collection, Project, User};
use herald_domain::ids::{ProjectId, RunId, UploadId, VersionId};
use herald_domain::names::{AliasName, ArtifactType, CollectionName, RunName};

use chrono::{DateTime, Utc};

use super::db::{param_list, params, values_sql, Columns, Conn, Value};
use super::versions::{
    add_aliases, create_version, find_collection, load_collection, load_version, type_conflict,
    MemRow,
};
use super::{json_col, json_text, now_us, ts, SqlStore};
use crate::{
    ArtifactSaveStore, EntityStore, NewUpload, NewVersion, StoreError, StoreResult, Upload,
    UploadStart, VersionContents, VersionEdit,
};

/// MD5s per statement (two parameters each in an insert, far below either database's limit).
const FILES_CHUNK: usize = 400;

const UPLOAD_SELECT: &str =
    "SELECT id, project_id, collection_name, artifact_type, digest, description, metadata, \
     aliases, run_name, manifest_md5, version_id, created_at FROM artifact_uploads WHERE id = $1";

struct UploadRow {
    upload: Upload,
    project_id: i64,
    aliases: Vec<String>,
    run: Option<String>,
}

fn upload_from_row(r: &dyn Columns) -> StoreResult<UploadRow> {
    Ok(UploadRow {
        upload: Upload {
            id: UploadId(r.int_required("id")?),
            collection: r.text_required("collection_name")?,
            artifact_type: r.text_required("artifact_type")?,
            digest: r.text_required("digest")?,
            description: r.text("description")?,
            metadata: json_col(&r.text_required("metadata")?),
            manifest_md5: r.text("manifest_md5")?,
            version: r.int("version_id")?.map(VersionId),
            created_at: ts(r.int_required("created_at")?),
        },
        project_id: r.int_required("project_id")?,
        aliases: serde_json::from_value(json_col(&r.text_required("aliases")?)).unwrap_or_default(),
        run: r.text("run_name")?,
    })
}

/// The membership of version `version` in its home sequence.
async fn home_membership(
    conn: &mut Conn<'_>,
    version: i64,
) -> StoreResult<Option<(i64, i64, String)>> {
    conn.fetch_optional(
        "SELECT m.id, c.project_id, c.name FROM versions v \
         JOIN memberships m ON m.version_id = v.id AND m.collection_id = v.collection_id \
         JOIN collections c ON c.id = v.collection_id WHERE v.id = $1",
        params![version],
        |r| {
            Ok((
                r.int_required("id")?,
                r.int_required("project_id")?,
                r.text_required("name")?,
            ))
        },
    )
    .await
}

impl SqlStore {
    /// Version `version` as its home sequence sees it, read on `conn`.
    async fn home_version(
        &self,
        conn: &mut Conn<'_>,
        version: i64,
    ) -> StoreResult<Option<(Project, ArtifactVersion)>> {
        let Some((mem, project, coll)) = home_membership(conn, version).await? else {
            return Ok(None);
        };
        let Some(project) = self.project_by_id(ProjectId(project)).await? else {
            return Ok(None);
        };
        let Some(coll) = find_collection(conn, &project, &coll).await? else {
            return Ok(None);
        };
        let v = load_version(conn, &project, &coll, mem).await?;
        Ok(Some((project, v)))
    }
}

#[async_trait]
impl ArtifactSaveStore for SqlStore {
    async fn begin_upload(
        &self,
        project: &Project,
        author: &User,
        new: NewUpload,
    ) -> StoreResult<UploadStart> {
        if project.is_registry {
            return Err(StoreError::invalid(
                "input.projectName",
                format!(
                    "{}/{} is a registry; artifacts are logged to projects and linked into registries",
                    project.entity, project.name
                ),
            ));
        }
        let now = now_us();
        let mut tx = self.write().await?;
        if let Some(coll) = find_collection(&mut tx, project, new.collection.as_str()).await? {
            if coll.artifact_type != new.artifact_type.as_str() {
                return Err(type_conflict(
                    project,
                    &coll.name,
                    &coll.artifact_type,
                    new.artifact_type.as_str(),
                ));
            }
            let same = tx
                .fetch_optional(
                    "SELECT m.id, m.version_id, m.version_index FROM versions v \
                     JOIN memberships m ON m.version_id = v.id AND m.collection_id = v.collection_id \
                     WHERE v.collection_id = $1 AND v.digest = $2 ORDER BY v.version_index DESC LIMIT 1",
                    params![coll.id, new.digest.as_str()],
                    |r| {
                        Ok(MemRow {
                            id: r.int_required("id")?,
                            version_id: r.int_required("version_id")?,
                            version_index: r.int_required("version_index")?,
                        })
                    },
                )
                .await?;
            if let Some(mem) = same.filter(|_| new.dedupe) {
                add_aliases(&mut tx, project, &coll, &mem, &new.aliases, author, now).await?;
                let version = load_version(&mut tx, project, &coll, mem.id).await?;
                tx.commit().await?;
                return Ok(UploadStart::Existing(Box::new(version)));
            }
        }
        let aliases: Vec<&str> = new.aliases.iter().map(|a| a.as_str()).collect();
        let id = tx
            .insert_id(
                "INSERT INTO artifact_uploads (project_id, collection_name, artifact_type, digest, \
                 description, metadata, aliases, run_name, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                params![
                    project.id.0,
                    new.collection.as_str(),
                    new.artifact_type.as_str(),
                    new.digest.as_str(),
                    &new.description,
                    &json_text(&new.metadata),
                    &json_text(&serde_json::json!(aliases)),
                    new.run.as_ref().map(|r| r.as_str()),
                    author.id.0,
                    now
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(UploadStart::Pending(UploadId(id)))
    }

    async fn upload(&self, id: UploadId) -> StoreResult<Option<(Project, Upload)>> {
        let row = self
            .read()
            .await?
            .fetch_optional(UPLOAD_SELECT, params![id.0], upload_from_row)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(self
            .project_by_id(ProjectId(row.project_id))
            .await?
            .map(|p| (p, row.upload)))
    }

    async fn set_upload_manifest(&self, id: UploadId, manifest_md5: &str) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let changed = tx
            .execute(
                "UPDATE artifact_uploads SET manifest_md5 = $1 WHERE id = $2 AND version_id IS NULL",
                params![manifest_md5, id.0],
            )
            .await?;
        tx.commit().await?;
        if changed == 0 {
            return Err(StoreError::conflict(format!(
                "artifact {} is committed already; its manifest cannot change",
                id.to_global()
            )));
        }
        Ok(())
    }

    async fn commit_upload(
        &self,
        id: UploadId,
        author: &User,
        contents: VersionContents,
        files: &[String],
    ) -> StoreResult<ArtifactVersion> {
        let now = now_us();
        let mut tx = self.write().await?;
        let row = tx
            .fetch_optional(UPLOAD_SELECT, params![id.0], upload_from_row)
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!("artifact {} not found", id.to_global()))
            })?;
        if let Some(v) = row.upload.version {
            drop(tx);
            return self.version_by_id(v).await?.map(|(_, v)| v).ok_or_else(|| {
                StoreError::not_found(format!("artifact {} not found", v.to_global()))
            });
        }
        let project = self
            .project_by_id(ProjectId(row.project_id))
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!("artifact {} not found", id.to_global()))
            })?;
        // Checked when the upload was made; a stored name that no longer parses is a bug.
        let corrupt = |what: &str| {
            StoreError::Internal(anyhow::anyhow!(
                "upload {}: stored {what} does not parse",
                id.0
            ))
        };
        let new = NewVersion {
            collection: CollectionName::parse(&row.upload.collection)
                .map_err(|_| corrupt("collection"))?,
            artifact_type: ArtifactType::parse(&row.upload.artifact_type)
                .map_err(|_| corrupt("type"))?,
            digest: Some(row.upload.digest.clone()),
            description: row.upload.description.clone(),
            metadata: row.upload.metadata.clone(),
            aliases: row
                .aliases
                .iter()
                .map(|a| AliasName::parse(a))
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("alias"))?,
            tags: Vec::new(),
            run: row
                .run
                .as_deref()
                .map(RunName::parse)
                .transpose()
                .map_err(|_| corrupt("run"))?,
        };
        let (coll, mem) = create_version(&mut tx, &project, author, &new, now).await?;
        tx.execute(
            "UPDATE versions SET manifest_md5 = $1, file_count = $2, total_size = $3 WHERE id = $4",
            params![
                contents.manifest_md5.as_str(),
                contents.file_count,
                contents.size,
                mem.version_id
            ],
        )
        .await?;
        let mut held: Vec<&String> = files.iter().collect();
        held.sort();
        held.dedup();
        for chunk in held.chunks(FILES_CHUNK) {
            let sql = values_sql(
                "INSERT INTO version_files (version_id, md5)",
                2,
                chunk.len(),
                0,
                "",
            );
            let values: Vec<Value> = chunk
                .iter()
                .flat_map(|m| [Value::from(mem.version_id), Value::from(m.as_str())])
                .collect();
            tx.execute(&sql, &values).await?;
        }
        // A second commit racing this one waits here for it (PostgreSQL's row lock; SQLite has
        // one writer), then finds the upload committed and changes nothing.
        let claimed = tx
            .execute(
                "UPDATE artifact_uploads SET version_id = $1 WHERE id = $2 AND version_id IS NULL",
                params![mem.version_id, id.0],
            )
            .await?;
        if claimed == 0 {
            drop(tx);
            return Box::pin(self.commit_upload(id, author, contents, files)).await;
        }
        let version = load_version(&mut tx, &project, &coll, mem.id).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn version_by_id(
        &self,
        id: VersionId,
    ) -> StoreResult<Option<(Project, ArtifactVersion)>> {
        let mut conn = self.read().await?;
        self.home_version(&mut conn, id.0).await
    }

    async fn version_memberships(
        &self,
        id: VersionId,
    ) -> StoreResult<Vec<(Project, Collection, ArtifactVersion)>> {
        let mut conn = self.read().await?;
        let rows = conn
            .fetch_all(
                "SELECT m.id, c.project_id, c.name FROM memberships m \
                 JOIN collections c ON c.id = m.collection_id JOIN versions v ON v.id = m.version_id \
                 WHERE m.version_id = $1 ORDER BY (m.collection_id = v.collection_id) DESC, m.id",
                params![id.0],
                |r| {
                    Ok((
                        r.int_required("id")?,
                        r.int_required("project_id")?,
                        r.text_required("name")?,
                    ))
                },
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (mem, project, coll) in rows {
            let Some(project) = self.project_by_id(ProjectId(project)).await? else {
                continue;
            };
            let Some(coll) = find_collection(&mut conn, &project, &coll).await? else {
                continue;
            };
            let collection = load_collection(&mut conn, &project, &coll).await?;
            let version = load_version(&mut conn, &project, &coll, mem).await?;
            out.push((project, collection, version));
        }
        Ok(out)
    }

    async fn version_contents(&self, id: VersionId) -> StoreResult<Option<VersionContents>> {
        let found = self
            .read()
            .await?
            .fetch_optional(
                "SELECT manifest_md5, file_count, total_size FROM versions WHERE id = $1",
                params![id.0],
                |r| {
                    Ok((
                        r.text("manifest_md5")?,
                        r.int_required("file_count")?,
                        r.int_required("total_size")?,
                    ))
                },
            )
            .await?;
        Ok(found.and_then(|(manifest, file_count, size)| {
            manifest.map(|manifest_md5| VersionContents {
                manifest_md5,
                file_count,
                size,
            })
        }))
    }

    async fn edit_version(&self, id: VersionId, edit: VersionEdit) -> StoreResult<()> {
        let mut tx = self.write().await?;
        if let Some(d) = &edit.description {
            tx.execute(
                "UPDATE versions SET description = $1 WHERE id = $2",
                params![d.as_str(), id.0],
            )
            .await?;
        }
        if let Some(m) = &edit.metadata {
            tx.execute(
                "UPDATE versions SET metadata = $1 WHERE id = $2",
                params![&json_text(m), id.0],
            )
            .await?;
        }
        tx.commit().await
    }

    async fn content_in_use(&self, md5s: &[String]) -> StoreResult<Vec<String>> {
        let mut conn = self.read().await?;
        let mut used = Vec::new();
        for chunk in md5s.chunks(FILES_CHUNK) {
            let sql = format!(
                "SELECT md5 FROM version_files WHERE md5 IN ({}) \
                 UNION SELECT manifest_md5 AS md5 FROM versions WHERE manifest_md5 IN ({})",
                param_list(1, chunk.len()),
                param_list(chunk.len() + 1, chunk.len())
            );
            let values: Vec<Value> = chunk
                .iter()
                .chain(chunk.iter())
                .map(|m| Value::from(m.as_str()))
                .collect();
            used.extend(
                conn.fetch_all(&sql, &values, |r| r.text_required("md5"))
                    .await?,
            );
        }
        Ok(used)
    }

    async fn purge_uploads(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let n = tx
            .execute(
                "DELETE FROM artifact_uploads WHERE version_id IS NULL AND created_at < $1",
                params![before.timestamp_micros()],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn use_version(&self, run: RunId, version: VersionId) -> StoreResult<()> {
        let mut tx = self.write().await?;
        tx.execute(
            "INSERT INTO run_inputs (run_id, version_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (run_id, version_id) DO NOTHING",
            params![run.0, version.0, now_us()],
        )
        .await?;
        tx.commit().await
    }
}
