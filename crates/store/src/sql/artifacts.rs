//! The [`ArtifactStore`]: artifact collections, versions, aliases, tags, and links into
//! registries, over the rows of [`super::versions`].

use async_trait::async_trait;
use herald_domain::catalog::{
    ArtifactVersion, Collection, CollectionKind, Project, User, VersionSource,
};
use herald_domain::event::EventType;
use herald_domain::ids::{CollectionId, EntityId, ProjectId, VersionId};
use herald_domain::names::{
    version_string, AliasName, CollectionName, TagName, VersionRef, LATEST,
};
use serde_json::json;

use super::db::params;
use super::events::insert_event;
use super::versions::{
    add_aliases, add_membership, artifact_event, collection_for_write, collection_or_404,
    create_version, load_collection, load_version, refresh_latest, resolve, tag_version,
};
use super::{json_col, now_us, ts, SqlStore};
use crate::{ArtifactStore, EntityStore, NewVersion, StoreError, StoreResult};

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
        let mut tx = self.write().await?;
        let (coll, mem) = create_version(&mut tx, project, author, &new, now).await?;
        tx.commit().await?;
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
        let mut conn = self.read().await?;
        let coll = collection_or_404(&mut conn, project, name).await?;
        load_collection(&mut conn, project, &coll).await
    }

    async fn collection_by_id(
        &self,
        id: CollectionId,
    ) -> StoreResult<Option<(Project, Collection)>> {
        let found = self
            .read()
            .await?
            .fetch_optional(
                "SELECT project_id, name FROM collections WHERE id = $1",
                params![id.0],
                |r| Ok((r.int_required("project_id")?, r.text_required("name")?)),
            )
            .await?;
        let Some((project, name)) = found else {
            return Ok(None);
        };
        let Some(project) = self.project_by_id(ProjectId(project)).await? else {
            return Ok(None);
        };
        let collection = self.collection(&project, &name).await?;
        Ok(Some((project, collection)))
    }

    async fn list_collections(&self, project: &Project) -> StoreResult<Vec<Collection>> {
        let mut conn = self.read().await?;
        let names = conn
            .fetch_all(
                "SELECT name FROM collections WHERE project_id = $1 ORDER BY name",
                params![project.id.0],
                |r| r.text_required("name"),
            )
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let coll = collection_or_404(&mut conn, project, &name).await?;
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
        let mut conn = self.read().await?;
        let coll = collection_or_404(&mut conn, project, collection).await?;
        let mem = resolve(&mut conn, project, &coll, r).await?;
        load_version(&mut conn, project, &coll, mem.id).await
    }

    async fn list_versions(
        &self,
        project: &Project,
        collection: &str,
    ) -> StoreResult<Vec<ArtifactVersion>> {
        let mut conn = self.read().await?;
        let coll = collection_or_404(&mut conn, project, collection).await?;
        let ids = conn
            .fetch_all(
                "SELECT id FROM memberships WHERE collection_id = $1 ORDER BY version_index",
                params![coll.id],
                |r| r.int_required("id"),
            )
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(load_version(&mut conn, project, &coll, id).await?);
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
        let mut tx = self.write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let mem = resolve(&mut tx, project, &coll, r).await?;
        let aliases = std::slice::from_ref(alias);
        add_aliases(&mut tx, project, &coll, &mem, aliases, author, now).await?;
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
        let mut tx = self.write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let mem = resolve(&mut tx, project, &coll, r).await?;
        let deleted = tx
            .execute(
                "DELETE FROM aliases WHERE collection_id = $1 AND alias = $2 AND membership_id = $3",
                params![coll.id, alias.as_str(), mem.id],
            )
            .await?;
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
        let mut tx = self.write().await?;
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
        let mut tx = self.write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let mem = resolve(&mut tx, project, &coll, r).await?;
        let deleted = tx
            .execute(
                "DELETE FROM version_tags WHERE version_id = $1 AND tag = $2",
                params![mem.version_id, tag.as_str()],
            )
            .await?;
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
        let mut tx = self.write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let added = tx
            .execute(
                "INSERT INTO collection_tags (collection_id, tag, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (collection_id, tag) DO NOTHING",
                params![coll.id, tag.as_str(), now],
            )
            .await?;
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
        let mut tx = self.write().await?;
        let coll = collection_or_404(&mut tx, project, collection).await?;
        let deleted = tx
            .execute(
                "DELETE FROM collection_tags WHERE collection_id = $1 AND tag = $2",
                params![coll.id, tag.as_str()],
            )
            .await?;
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
        let mut tx = self.write().await?;
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
        let existing = tx
            .fetch_optional(
                "SELECT version_index FROM memberships WHERE collection_id = $1 AND version_id = $2",
                params![portfolio.id, source.version_id],
                |r| r.int_required("version_index"),
            )
            .await?;
        if let Some(index) = existing {
            return Err(StoreError::conflict(format!(
                "{}/{}/{}:{} is already linked to {}/{}/{} as {}",
                project.entity,
                project.name,
                source_coll.name,
                version_string(source.version_index),
                registry.entity,
                registry.name,
                portfolio.name,
                version_string(index)
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
        let mut conn = self.read().await?;
        conn.fetch_optional(
            "SELECT v.metadata FROM versions v WHERE v.id = $1 AND (\
             EXISTS (SELECT 1 FROM collections c JOIN projects p ON p.id = c.project_id \
                     WHERE c.id = v.collection_id AND p.entity_id = $2) OR \
             EXISTS (SELECT 1 FROM events ev WHERE ev.entity_id = $2 AND ev.version_id = v.id))",
            params![id.0, entity.0],
            |r| Ok(json_col(&r.text_required("metadata")?)),
        )
        .await
    }

    async fn unlink_version(
        &self,
        registry: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
    ) -> StoreResult<()> {
        let now = now_us();
        let mut tx = self.write().await?;
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
        tx.execute(
            "DELETE FROM aliases WHERE membership_id = $1",
            params![mem.id],
        )
        .await?;
        tx.execute("DELETE FROM memberships WHERE id = $1", params![mem.id])
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
        tx.commit().await
    }
}
