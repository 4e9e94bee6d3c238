//! Artifact versions as W&B's GraphQL names them: `Artifact` (one version, in its home sequence),
//! `ArtifactCollectionMembership` (a version's place in a sequence or portfolio), its
//! `ArtifactAlias`es, and its `ArtifactManifest` and `File`s with signed download URLs.
//!
//! An artifact the SDK is still uploading is an `Artifact` too, in state `PENDING`, with the id
//! CreateArtifact gave it; once committed, that id names the version it became.

use async_graphql::{Context, Object, SimpleObject, ID};
use base64::Engine as _;
use herald_blobs::BlobKey;
use herald_domain::catalog::{ArtifactVersion, Collection, Project, Role, User};
use herald_domain::ids::{UploadId, VersionId};
use herald_domain::wandb_artifact::{parse_artifact_name, Manifest, MANIFEST_NAME};
use herald_engine::access;
use herald_store::Upload;

use super::catalog::{parts, timestamp};
use super::collections::{
    collection_named, ArtifactCollection, ArtifactSequence, ArtifactType, Tag,
};
use super::errors;
use super::page::connection;
use super::scalars::JsonString;
use crate::AppState;

/// Most files one page of `files` may hold (the SDK asks for 5000).
const MAX_FILES_PAGE: i32 = 10_000;

connection!(FileConnection, FileEdge, FileNode);

fn b64(s: String) -> ID {
    ID(base64::engine::general_purpose::STANDARD.encode(s))
}

/// What an artifact id names: a committed version, or an upload (which may since have become
/// one).
#[derive(Debug, Clone, Copy)]
pub enum ArtifactRef {
    Version(VersionId),
    Upload(UploadId),
}

impl ArtifactRef {
    pub fn parse(field: &str, id: &str) -> async_graphql::Result<Self> {
        VersionId::from_global(id)
            .map(Self::Version)
            .or_else(|| UploadId::from_global(id).map(Self::Upload))
            .ok_or_else(|| errors::invalid(field, format!("{id:?} is not an artifact id")))
    }
}

/// The committed version `id` names and its home project, if `user` holds `needed` there;
/// "not found" otherwise (also while it is still being uploaded).
pub async fn version_for(
    state: &AppState,
    user: &User,
    field: &str,
    id: &str,
    needed: Role,
) -> async_graphql::Result<(Project, ArtifactVersion)> {
    let missing = || errors::not_found(format!("artifact {id:?} not found"), None);
    let version = match ArtifactRef::parse(field, id)? {
        ArtifactRef::Version(v) => v,
        ArtifactRef::Upload(u) => {
            let (_, upload) = herald_engine::artifact_save::writable_upload(&*state.store, user, u)
                .await
                .map_err(errors::plain)?;
            upload.version.ok_or_else(|| {
                errors::invalid(field, format!("artifact {id:?} is not committed yet"))
            })?
        }
    };
    let (project, v) = state
        .store
        .version_by_id(version)
        .await
        .map_err(errors::store)?
        .ok_or_else(missing)?;
    access::owner(
        &*state.store,
        user,
        Some(project.entity_id),
        "artifact",
        needed,
    )
    .await
    .map_err(|e| match e {
        herald_engine::Error::NotFound(_) => missing(),
        other => errors::plain(other),
    })?;
    Ok((project, v))
}

/// The artifact `id` names, as `artifact(id:)` answers: null when absent or not the caller's.
pub async fn artifact_by_id(
    ctx: &Context<'_>,
    id: &str,
) -> async_graphql::Result<Option<ArtifactNode>> {
    let (state, user) = parts(ctx);
    if let ArtifactRef::Upload(u) = ArtifactRef::parse("id", id)? {
        match herald_engine::artifact_save::writable_upload(&*state.store, user, u).await {
            Ok((project, upload)) if upload.version.is_none() => {
                return Ok(Some(ArtifactNode::pending(project, upload)))
            }
            Ok(_) => {}
            Err(herald_engine::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(errors::plain(e)),
        }
    }
    match version_for(state, user, "id", id, Role::Viewer).await {
        Ok((project, v)) => Ok(Some(ArtifactNode::committed(project, v))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_not_found(e: &async_graphql::Error) -> bool {
    e.extensions
        .as_ref()
        .and_then(|x| x.get("code"))
        .is_some_and(|c| *c == async_graphql::Value::from("NOT_FOUND"))
}

/// Membership `name` (`resnet:v0`, `resnet:latest`) of `project`: null when there is none.
pub async fn membership_named(
    ctx: &Context<'_>,
    project: &Project,
    name: &str,
) -> async_graphql::Result<Option<Membership>> {
    let (collection, r) =
        parse_artifact_name(name).map_err(|e| errors::invalid("name", e.message))?;
    let store = &parts(ctx).0.store;
    let coll = match store.collection(project, &collection).await {
        Ok(c) => c,
        Err(herald_store::StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(errors::store(e)),
    };
    match store.version(project, &collection, &r).await {
        Ok(v) => Ok(Some(Membership::new(project.clone(), coll, v))),
        Err(herald_store::StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(errors::store(e)),
    }
}

enum Inner {
    Committed(Box<ArtifactVersion>),
    Pending(Upload),
}

/// One artifact version (W&B's `Artifact`), or an upload not yet committed.
pub struct ArtifactNode {
    project: Project,
    inner: Inner,
}

impl ArtifactNode {
    pub fn committed(project: Project, version: ArtifactVersion) -> Self {
        Self {
            project,
            inner: Inner::Committed(Box::new(version)),
        }
    }

    pub fn pending(project: Project, upload: Upload) -> Self {
        Self {
            project,
            inner: Inner::Pending(upload),
        }
    }

    fn collection_name(&self) -> &str {
        match &self.inner {
            Inner::Committed(v) => &v.source.collection,
            Inner::Pending(u) => &u.collection,
        }
    }

    async fn contents(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<herald_store::VersionContents>> {
        match &self.inner {
            Inner::Committed(v) => parts(ctx)
                .0
                .store
                .version_contents(v.id)
                .await
                .map_err(errors::store),
            Inner::Pending(_) => Ok(None),
        }
    }
}

#[Object(name = "Artifact")]
impl ArtifactNode {
    async fn id(&self) -> ID {
        match &self.inner {
            Inner::Committed(v) => ID(v.id.to_global()),
            Inner::Pending(u) => ID(u.id.to_global()),
        }
    }
    /// The sequence the version was made in (null for the first version, until committed).
    async fn artifact_sequence(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ArtifactSequence>> {
        Ok(
            match collection_named(ctx, &self.project, self.collection_name(), None).await? {
                Some(ArtifactCollection::ArtifactSequence(s)) => Some(s),
                _ => None,
            },
        )
    }
    async fn version_index(&self) -> Option<i64> {
        match &self.inner {
            Inner::Committed(v) => Some(v.version_index),
            Inner::Pending(_) => None,
        }
    }
    async fn artifact_type(&self) -> ArtifactType {
        ArtifactType {
            project: self.project.clone(),
            name: match &self.inner {
                Inner::Committed(v) => v.artifact_type.clone(),
                Inner::Pending(u) => u.artifact_type.clone(),
            },
        }
    }
    async fn description(&self) -> Option<&str> {
        match &self.inner {
            Inner::Committed(v) => v.description.as_deref(),
            Inner::Pending(u) => u.description.as_deref(),
        }
    }
    async fn metadata(&self) -> JsonString {
        JsonString::of(match &self.inner {
            Inner::Committed(v) => &v.metadata,
            Inner::Pending(u) => &u.metadata,
        })
    }
    /// herald keeps versions until deleted: `-1`, W&B's "inherit the collection's (none)".
    async fn ttl_duration_seconds(&self) -> i64 {
        -1
    }
    async fn ttl_is_inherited(&self) -> bool {
        true
    }
    async fn tags(&self) -> Vec<Tag> {
        match &self.inner {
            Inner::Committed(v) => v.tags.iter().map(|t| Tag::named(t)).collect(),
            Inner::Pending(_) => Vec::new(),
        }
    }
    async fn history_step(&self) -> Option<i64> {
        None
    }
    async fn state(&self) -> &'static str {
        match &self.inner {
            Inner::Committed(_) => "COMMITTED",
            Inner::Pending(_) => "PENDING",
        }
    }
    /// Total bytes of the files (0 for a version made over REST, which holds none).
    async fn size(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.contents(ctx).await?.map_or(0, |c| c.size))
    }
    async fn file_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.contents(ctx).await?.map_or(0, |c| c.file_count))
    }
    async fn digest(&self) -> &str {
        match &self.inner {
            Inner::Committed(v) => v.digest.as_deref().unwrap_or(""),
            Inner::Pending(u) => &u.digest,
        }
    }
    async fn digest_algorithm(&self) -> &'static str {
        "MANIFEST_MD5"
    }
    async fn commit_hash(&self) -> Option<String> {
        None
    }
    async fn created_at(&self) -> String {
        timestamp(match &self.inner {
            Inner::Committed(v) => v.created_at,
            Inner::Pending(u) => u.created_at,
        })
    }
    async fn updated_at(&self) -> Option<String> {
        None
    }
    /// Its aliases in every collection it is in (its sequence, and the portfolios it is linked
    /// into).
    async fn aliases(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ArtifactAlias>> {
        let Inner::Committed(v) = &self.inner else {
            return Ok(Vec::new());
        };
        let memberships = parts(ctx)
            .0
            .store
            .version_memberships(v.id)
            .await
            .map_err(errors::store)?;
        Ok(memberships
            .into_iter()
            .flat_map(|(project, coll, view)| ArtifactAlias::all(&project, &coll, &view))
            .collect())
    }
    /// Its manifest (for a version made over REST, which holds no files, an empty one).
    async fn current_manifest(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ArtifactManifest>> {
        let Inner::Committed(v) = &self.inner else {
            return Ok(None);
        };
        let manifest_md5 = match self.contents(ctx).await? {
            Some(c) => c.manifest_md5,
            None => herald_engine::artifact_save::empty_manifest(
                &parts(ctx).0.blobs,
                self.project.entity_id.0,
            )
            .await
            .map_err(errors::plain)?,
        };
        let key = BlobKey::content(self.project.entity_id.0, &content_md5(&manifest_md5)?);
        let url = parts(ctx).0.blobs.presign_download(&key, None);
        Ok(Some(ArtifactManifest {
            id: b64(format!("ArtifactManifest:{}", v.id.0)),
            file: FileNode {
                id: Some(b64(format!("File:{manifest_md5}"))),
                name: MANIFEST_NAME.to_string(),
                direct_url: Some(url.clone()),
                url: Some(url),
                storage_path: Some(key.as_str().to_string()),
                ..FileNode::default()
            },
        }))
    }
}

/// One alias of a version in one collection.
#[derive(SimpleObject)]
pub struct ArtifactAlias {
    pub id: ID,
    pub alias: String,
    pub artifact_collection: ArtifactCollection,
}

impl ArtifactAlias {
    /// The aliases `view` (a version as `coll` sees it) has there.
    pub fn all(project: &Project, coll: &Collection, view: &ArtifactVersion) -> Vec<Self> {
        view.aliases
            .iter()
            .map(|a| Self {
                id: b64(format!("ArtifactAlias:{}:{a}", coll.id.0)),
                alias: a.clone(),
                artifact_collection: ArtifactCollection::new(project.clone(), coll.clone()),
            })
            .collect()
    }
}

/// A version's place in a collection: W&B's `ArtifactCollectionMembership`.
pub struct Membership {
    project: Project,
    collection: Collection,
    view: ArtifactVersion,
}

impl Membership {
    pub fn new(project: Project, collection: Collection, view: ArtifactVersion) -> Self {
        Self {
            project,
            collection,
            view,
        }
    }
}

#[Object(name = "ArtifactCollectionMembership")]
impl Membership {
    async fn id(&self) -> ID {
        b64(format!(
            "ArtifactCollectionMembership:{}:{}",
            self.collection.id.0, self.view.version_index
        ))
    }
    async fn version_index(&self) -> i64 {
        self.view.version_index
    }
    async fn created_at(&self) -> String {
        timestamp(self.view.created_at)
    }
    async fn aliases(&self) -> Vec<ArtifactAlias> {
        ArtifactAlias::all(&self.project, &self.collection, &self.view)
    }
    async fn artifact_collection(&self) -> ArtifactCollection {
        ArtifactCollection::new(self.project.clone(), self.collection.clone())
    }
    /// The version itself, as its home sequence sees it.
    async fn artifact(&self, ctx: &Context<'_>) -> async_graphql::Result<ArtifactNode> {
        let (project, v) = parts(ctx)
            .0
            .store
            .version_by_id(self.view.id)
            .await
            .map_err(errors::store)?
            .ok_or_else(|| {
                errors::not_found(format!("artifact {} not found", self.view.id), None)
            })?;
        Ok(ArtifactNode::committed(project, v))
    }
    /// The version's files, each with a signed download URL.
    async fn files(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<FileConnection> {
        let files = manifest_files(ctx, self.view.id).await?;
        FileConnection::of_up_to(files, after.as_deref(), first, MAX_FILES_PAGE)
    }
}

/// An artifact's manifest: the file listing the others.
#[derive(SimpleObject)]
pub struct ArtifactManifest {
    pub id: ID,
    pub file: FileNode,
}

/// A file of an artifact: where to GET it, or (while uploading) where to PUT it.
#[derive(SimpleObject, Default)]
#[graphql(name = "File")]
pub struct FileNode {
    pub id: Option<ID>,
    pub name: String,
    pub direct_url: Option<String>,
    pub url: Option<String>,
    pub digest: Option<String>,
    pub size_bytes: Option<i64>,
    /// Where the bytes are kept (informational).
    pub storage_path: Option<String>,
    /// Where to PUT the bytes: null when they are stored already.
    pub upload_url: Option<String>,
    /// Headers the PUT must send, as `Name:Value`; herald needs none.
    pub upload_headers: Vec<String>,
    /// herald takes every file in one PUT: always null.
    pub upload_multipart_urls: Option<UploadMultipartUrls>,
    /// The artifact the file is being uploaded for.
    pub artifact: Option<ArtifactNode>,
}

#[derive(SimpleObject)]
pub struct UploadMultipartUrls {
    #[graphql(name = "uploadID")]
    pub upload_id: String,
    pub upload_url_parts: Vec<UploadUrlPart>,
}

#[derive(SimpleObject)]
pub struct UploadUrlPart {
    pub part_number: i64,
    pub upload_url: String,
}

pub fn content_md5(hex_md5: &str) -> async_graphql::Result<[u8; 16]> {
    hex::decode(hex_md5)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            async_graphql::Error::new(format!("stored manifest md5 {hex_md5:?} is not an MD5"))
        })
}

/// The files version `id`'s manifest lists (none for a version made over REST).
async fn manifest_files(ctx: &Context<'_>, id: VersionId) -> async_graphql::Result<Vec<FileNode>> {
    let state = parts(ctx).0;
    let Some(contents) = state
        .store
        .version_contents(id)
        .await
        .map_err(errors::store)?
    else {
        return Ok(Vec::new());
    };
    // Files are the home team's, wherever the version is linked.
    let (home, _) = state
        .store
        .version_by_id(id)
        .await
        .map_err(errors::store)?
        .ok_or_else(|| errors::not_found(format!("artifact {id} not found"), None))?;
    let owner = home.entity_id.0;
    let key = BlobKey::content(owner, &content_md5(&contents.manifest_md5)?);
    let bytes = state
        .blobs
        .read(&key, herald_engine::artifact_save::MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| errors::plain(e.into()))?
        .ok_or_else(|| {
            errors::not_found(
                format!("the manifest of artifact {id} is missing from storage"),
                None,
            )
        })?;
    let manifest = Manifest::parse(&bytes).map_err(|e| errors::plain(e.into()))?;
    Ok(manifest
        .entries
        .into_iter()
        .map(|e| {
            let url = match e.md5 {
                Some(md5) => state
                    .blobs
                    .presign_download(&BlobKey::content(owner, &md5), None),
                // A reference names bytes stored elsewhere; the SDK fetches those itself.
                None => String::new(),
            };
            FileNode {
                id: Some(b64(format!("File:{}:{}", id.0, e.path))),
                name: e.path,
                direct_url: Some(url.clone()),
                url: Some(url),
                digest: Some(e.digest),
                size_bytes: i64::try_from(e.size).ok(),
                ..FileNode::default()
            }
        })
        .collect())
}

/// `Project.artifact(name)`: the version `name` names, as its home sequence sees it.
pub async fn project_artifact(
    ctx: &Context<'_>,
    project: &Project,
    name: &str,
) -> async_graphql::Result<Option<ArtifactNode>> {
    match membership_named(ctx, project, name).await? {
        Some(m) => Ok(Some(m.artifact(ctx).await?)),
        None => Ok(None),
    }
}

/// `ArtifactCollection.artifactMembership(aliasName)`.
pub async fn collection_membership(
    ctx: &Context<'_>,
    project: &Project,
    collection: &Collection,
    alias: &str,
) -> async_graphql::Result<Option<Membership>> {
    membership_named(ctx, project, &format!("{}:{alias}", collection.name)).await
}

#[derive(Default)]
pub struct ArtifactQuery;

#[Object]
impl ArtifactQuery {
    /// The artifact `id` names (a version, or an upload in progress); null when absent or not
    /// the caller's.
    async fn artifact(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ArtifactNode>> {
        artifact_by_id(ctx, &id).await
    }
}
