//! How the `wandb` SDK saves an artifact, in its order: `createArtifact` (a version with the same
//! digest stands in for the new one, and the SDK uploads nothing), `createArtifactManifest`
//! (once to reserve, once with the manifest's MD5 for its upload URL), `createArtifactFiles`
//! (an upload URL per file, null for content herald has), the PUTs, and `commitArtifact`,
//! which checks the uploads against the digest and makes the version (see
//! [`herald_engine::artifact_save`]).

use std::collections::HashMap;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use base64::Engine as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use herald_blobs::BlobKey;
use herald_domain::catalog::{check_description, parse_metadata, Project, Role};
use herald_domain::ids::UploadId;
use herald_domain::names::{AliasName, ArtifactType, CollectionName, RunName, LATEST};
use herald_domain::wandb_artifact::{parse_b64_md5, MAX_MANIFEST_ENTRIES};
use herald_engine::artifact_save::{commit, writable_upload, EXISTS_AT_ONCE};
use herald_store::{NewUpload, Upload, UploadStart};

use super::artifacts::{ArtifactNode, ArtifactRef, FileConnection, FileNode};
use super::catalog::parts;
use super::errors;
use super::scalars::JsonString;
use crate::AppState;

/// An alias for a collection, as CreateArtifact, LinkArtifact and UpdateArtifact name them.
#[derive(InputObject)]
pub struct ArtifactAliasInput {
    pub artifact_collection_name: String,
    pub alias: String,
}

#[derive(InputObject)]
pub struct CreateArtifactInput {
    pub artifact_type_name: String,
    pub artifact_collection_name: Option<String>,
    pub artifact_collection_names: Option<Vec<String>>,
    pub entity_name: String,
    pub project_name: String,
    pub run_name: Option<String>,
    /// W&B's manifest digest: the hex MD5 over the manifest's `path:digest` lines.
    pub digest: String,
    pub digest_algorithm: Option<String>,
    pub description: Option<String>,
    pub labels: Option<JsonString>,
    pub aliases: Option<Vec<ArtifactAliasInput>>,
    pub metadata: Option<JsonString>,
    pub ttl_duration_seconds: Option<i64>,
    pub history_step: Option<i64>,
    pub enable_digest_deduplication: Option<bool>,
    #[graphql(name = "distributedID")]
    pub distributed_id: Option<String>,
    #[graphql(name = "clientID")]
    pub client_id: Option<String>,
    #[graphql(name = "sequenceClientID")]
    pub sequence_client_id: Option<String>,
    pub storage_region: Option<String>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateArtifactPayload {
    pub artifact: ArtifactNode,
    pub client_mutation_id: Option<String>,
}

#[derive(Enum, Copy, Clone, PartialEq, Eq)]
pub enum ArtifactManifestType {
    Full,
    Patch,
    Incremental,
}

#[derive(InputObject)]
pub struct CreateArtifactManifestInput {
    #[graphql(name = "artifactID")]
    pub artifact_id: ID,
    #[graphql(name = "baseArtifactID")]
    pub base_artifact_id: Option<ID>,
    pub name: String,
    /// Empty to reserve the manifest; the base64 MD5 of the manifest's bytes to upload it.
    pub digest: String,
    pub entity_name: String,
    pub project_name: String,
    pub run_name: Option<String>,
    #[graphql(name = "type")]
    pub manifest_type: Option<ArtifactManifestType>,
    pub include_upload: Option<bool>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateArtifactManifestPayload {
    pub artifact_manifest: super::artifacts::ArtifactManifest,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct UploadPartsInput {
    pub part_number: i64,
    #[graphql(name = "hexMD5")]
    pub hex_md5: String,
}

#[derive(InputObject)]
pub struct CreateArtifactFileSpecInput {
    #[graphql(name = "artifactID")]
    pub artifact_id: ID,
    #[graphql(name = "artifactManifestID")]
    pub artifact_manifest_id: Option<ID>,
    pub name: String,
    /// The file's base64 MD5.
    pub md5: String,
    pub digest: Option<String>,
    pub mimetype: Option<String>,
    pub upload_parts_input: Option<Vec<UploadPartsInput>>,
}

#[derive(InputObject)]
pub struct CreateArtifactFilesInput {
    pub artifact_files: Vec<CreateArtifactFileSpecInput>,
    pub storage_layout: Option<String>,
    pub digest_algorithm: Option<String>,
    #[graphql(name = "cloudRegionID")]
    pub cloud_region_id: Option<ID>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CreateArtifactFilesPayload {
    pub files: FileConnection,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct CommitArtifactInput {
    #[graphql(name = "artifactID")]
    pub artifact_id: ID,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct CommitArtifactPayload {
    pub artifact: ArtifactNode,
    pub client_mutation_id: Option<String>,
}

/// The pending upload `id` names, if the caller may write it.
async fn pending(
    state: &AppState,
    user: &herald_domain::catalog::User,
    field: &str,
    id: &str,
) -> async_graphql::Result<(Project, Upload)> {
    match ArtifactRef::parse(field, id)? {
        ArtifactRef::Upload(u) => writable_upload(&*state.store, user, u)
            .await
            .map_err(errors::plain),
        ArtifactRef::Version(_) => Err(errors::invalid(
            field,
            format!("artifact {id:?} is committed; its files cannot change"),
        )),
    }
}

/// The aliases of CreateArtifact that are for `collection`, without herald's own `latest`.
fn user_aliases(
    collection: &str,
    aliases: Option<Vec<ArtifactAliasInput>>,
) -> async_graphql::Result<Vec<AliasName>> {
    aliases
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter(|(_, a)| a.artifact_collection_name == collection && a.alias != LATEST)
        .map(|(i, a)| {
            AliasName::parse(&a.alias)
                .map_err(|e| errors::invalid(&format!("input.aliases[{i}].alias"), e.message))
        })
        .collect()
}

#[derive(Default)]
pub struct ArtifactSaveMutation;

#[Object]
impl ArtifactSaveMutation {
    /// Starts saving an artifact version (MEMBER). With `enableDigestDeduplication`, a version
    /// of the sequence with the same digest is returned instead, COMMITTED, and gets the
    /// aliases asked for.
    async fn create_artifact(
        &self,
        ctx: &Context<'_>,
        input: CreateArtifactInput,
    ) -> async_graphql::Result<CreateArtifactPayload> {
        let (state, user) = parts(ctx);
        let collection = input
            .artifact_collection_name
            .clone()
            .or_else(|| input.artifact_collection_names.as_ref()?.first().cloned())
            .ok_or_else(|| {
                errors::invalid("input.artifactCollectionName", "the artifact needs a name")
            })?;
        let collection = CollectionName::parse(&collection)
            .map_err(|e| errors::invalid("input.artifactCollectionName", e.message))?;
        let artifact_type = ArtifactType::parse(&input.artifact_type_name)
            .map_err(|e| errors::invalid("input.artifactTypeName", e.message))?;
        if input.ttl_duration_seconds.is_some_and(|t| t > 0) {
            return Err(errors::invalid(
                "input.ttlDurationSeconds",
                "herald keeps versions until they are deleted; a TTL is not supported",
            ));
        }
        if input.digest.is_empty() || input.digest.len() > 256 {
            return Err(errors::invalid(
                "input.digest",
                "must be 1 to 256 characters",
            ));
        }
        let metadata = match &input.metadata {
            Some(m) => Some(m.parse("input.metadata")?),
            None => None,
        };
        let metadata =
            parse_metadata(metadata).map_err(|e| errors::invalid("input.metadata", e.message))?;
        check_description("input.description", &input.description)
            .map_err(|e| errors::invalid("", e.to_string()))?;
        let aliases = user_aliases(collection.as_str(), input.aliases)?;
        let project =
            super::runs::project_for_runs(state, user, &input.entity_name, &input.project_name)
                .await?;
        let run = match input.run_name.as_deref() {
            Some(name) => {
                let run = RunName::parse(name)
                    .map_err(|e| errors::invalid("input.runName", e.message))?;
                // The run must be in the artifact's project, as the version will name it.
                state
                    .store
                    .run(&project, run.as_str())
                    .await
                    .map_err(errors::store)?;
                Some(run)
            }
            None => None,
        };
        let new = NewUpload {
            collection,
            artifact_type,
            digest: input.digest,
            description: input.description,
            metadata,
            aliases,
            run,
            dedupe: input.enable_digest_deduplication.unwrap_or(false),
        };
        let artifact = match state
            .store
            .begin_upload(&project, user, new)
            .await
            .map_err(errors::store)?
        {
            UploadStart::Existing(v) => ArtifactNode::committed(project, *v),
            UploadStart::Pending(id) => {
                let (project, upload) = state
                    .store
                    .upload(id)
                    .await
                    .map_err(errors::store)?
                    .ok_or_else(|| errors::not_found("the new artifact vanished", None))?;
                ArtifactNode::pending(project, upload)
            }
        };
        Ok(CreateArtifactPayload {
            artifact,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Reserves the artifact's manifest (empty `digest`), or names the manifest about to be
    /// uploaded (its base64 MD5) and answers where to PUT it.
    async fn create_artifact_manifest(
        &self,
        ctx: &Context<'_>,
        input: CreateArtifactManifestInput,
    ) -> async_graphql::Result<CreateArtifactManifestPayload> {
        let (state, user) = parts(ctx);
        let (project, upload) =
            pending(state, user, "input.artifactID", &input.artifact_id).await?;
        let mut file = FileNode {
            id: Some(ID(upload.id.to_global())),
            name: input.name,
            ..FileNode::default()
        };
        if !input.digest.is_empty() {
            let md5 = parse_b64_md5("input.digest", &input.digest)
                .map_err(|e| errors::invalid("input.digest", e.message))?;
            state
                .store
                .set_upload_manifest(upload.id, &hex::encode(md5))
                .await
                .map_err(errors::store)?;
            let key = BlobKey::content(project.entity_id.0, &md5);
            file.upload_url = Some(state.blobs.presign_upload(&key, Some(md5), None));
            file.storage_path = Some(key.as_str().to_string());
        }
        Ok(CreateArtifactManifestPayload {
            artifact_manifest: super::artifacts::ArtifactManifest {
                id: manifest_id(upload.id),
                file,
            },
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Where to PUT each file of an artifact being saved: one edge per file, in order, with a
    /// null `uploadUrl` for content herald stores already.
    async fn create_artifact_files(
        &self,
        ctx: &Context<'_>,
        input: CreateArtifactFilesInput,
    ) -> async_graphql::Result<CreateArtifactFilesPayload> {
        let (state, user) = parts(ctx);
        if input.artifact_files.len() > MAX_MANIFEST_ENTRIES {
            return Err(errors::invalid(
                "input.artifactFiles",
                format!("at most {MAX_MANIFEST_ENTRIES} files per request"),
            ));
        }
        let mut uploads: HashMap<String, (Project, Upload)> = HashMap::new();
        let mut wanted = Vec::with_capacity(input.artifact_files.len());
        for (i, spec) in input.artifact_files.into_iter().enumerate() {
            let field = format!("input.artifactFiles[{i}]");
            let id = spec.artifact_id.to_string();
            if !uploads.contains_key(&id) {
                let found = pending(state, user, &format!("{field}.artifactID"), &id).await?;
                uploads.insert(id.clone(), found);
            }
            let md5 = parse_b64_md5(&format!("{field}.md5"), &spec.md5)
                .map_err(|e| errors::invalid(&format!("{field}.md5"), e.message))?;
            let owner = uploads[&id].0.entity_id.0;
            wanted.push((id, BlobKey::content(owner, &md5), md5, spec));
        }
        // Which contents are stored already, a few lookups at a time, in order.
        let keys: Vec<BlobKey> = wanted.iter().map(|w| w.1.clone()).collect();
        let stored: Vec<Option<u64>> = futures_util::stream::iter(keys)
            .map(|key| async move { state.blobs.exists(&key).await })
            .buffered(EXISTS_AT_ONCE)
            .try_collect()
            .await
            .map_err(|e| errors::plain(e.into()))?;
        let mut files = Vec::with_capacity(wanted.len());
        for ((id, key, md5, spec), stored) in wanted.into_iter().zip(stored) {
            let (project, upload) = &uploads[&id];
            files.push(FileNode {
                name: spec.name,
                digest: Some(spec.md5),
                upload_url: stored
                    .is_none()
                    .then(|| state.blobs.presign_upload(&key, Some(md5), None)),
                storage_path: Some(key.as_str().to_string()),
                artifact: Some(ArtifactNode::pending(project.clone(), upload.clone())),
                ..FileNode::default()
            });
        }
        let n = i32::try_from(files.len()).unwrap_or(i32::MAX);
        Ok(CreateArtifactFilesPayload {
            files: FileConnection::of_up_to(files, None, Some(n), n)?,
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Makes an uploaded artifact a version, with its aliases and `latest`, once its manifest
    /// and every file it lists are stored and agree with its digest.
    async fn commit_artifact(
        &self,
        ctx: &Context<'_>,
        input: CommitArtifactInput,
    ) -> async_graphql::Result<CommitArtifactPayload> {
        let (state, user) = parts(ctx);
        let (project, version) = match ArtifactRef::parse("input.artifactID", &input.artifact_id)? {
            ArtifactRef::Upload(id) => commit(&*state.store, &state.blobs, user, id)
                .await
                .map_err(errors::plain)?,
            // Committing what is committed changes nothing.
            ArtifactRef::Version(_) => {
                super::artifacts::version_for(
                    state,
                    user,
                    "input.artifactID",
                    &input.artifact_id,
                    Role::Member,
                )
                .await?
            }
        };
        Ok(CommitArtifactPayload {
            artifact: ArtifactNode::committed(project, version),
            client_mutation_id: input.client_mutation_id,
        })
    }
}

fn manifest_id(id: UploadId) -> ID {
    ID(base64::engine::general_purpose::STANDARD.encode(format!("ArtifactManifest:u{}", id.0)))
}
