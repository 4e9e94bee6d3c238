//! Committing an artifact the `wandb` SDK uploaded. The SDK announces a digest at CreateArtifact,
//! PUTs the files and a manifest to signed URLs, and then asks for the commit; herald commits
//! only what it can vouch for: the manifest it was told about is stored, it lists exactly the
//! files the announced digest covers, and every one of those files is stored. Anything else is
//! refused, naming the problem, and the upload stays uncommitted.

use futures_util::{StreamExt as _, TryStreamExt as _};
use herald_blobs::BlobKey;
use herald_domain::catalog::{ArtifactVersion, Project, Role, User};
use herald_domain::ids::UploadId;
use herald_domain::wandb_artifact::Manifest;
use herald_domain::InvalidInput;
use herald_store::{Store, Upload, VersionContents};

use crate::blobs::Blobs;
use crate::{access, Error, Result};

/// Largest manifest read back at commit (a manifest of 100 000 files is about 25 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Most missing files a refusal names.
const NAMED_MISSING: usize = 5;

/// Blob-store lookups in flight at once while checking or answering for many files.
pub const EXISTS_AT_ONCE: usize = 16;

/// Upload `id` and its project, if `user` may write there (MEMBER); hidden as "not found"
/// otherwise.
pub async fn writable_upload(
    store: &dyn Store,
    user: &User,
    id: UploadId,
) -> Result<(Project, Upload)> {
    let missing = || Error::NotFound(format!("artifact {:?} not found", id.to_global()));
    let (project, upload) = store.upload(id).await?.ok_or_else(missing)?;
    access::owner(
        store,
        user,
        Some(project.entity_id),
        "artifact",
        Role::Member,
    )
    .await
    .map_err(|e| match e {
        Error::NotFound(_) => missing(),
        other => other,
    })?;
    Ok((project, upload))
}

/// CommitArtifact: checks what was uploaded against what was announced, then makes the upload
/// a version. A second commit returns the version the first one made.
pub async fn commit(
    store: &dyn Store,
    blobs: &Blobs,
    user: &User,
    id: UploadId,
) -> Result<(Project, ArtifactVersion)> {
    let (project, upload) = writable_upload(store, user, id).await?;
    if let Some(version) = upload.version {
        return store.version_by_id(version).await?.ok_or_else(|| {
            Error::NotFound(format!("artifact {:?} not found", version.to_global()))
        });
    }
    let contents = check_uploaded(blobs, &upload).await?;
    let version = store.commit_upload(id, user, contents).await?;
    Ok((project, version))
}

fn refused(message: String) -> Error {
    Error::Invalid(InvalidInput::new("artifactID", message))
}

/// The manifest and files of `upload`, if all are stored and agree with its digest.
async fn check_uploaded(blobs: &Blobs, upload: &Upload) -> Result<VersionContents> {
    let manifest_md5 = upload.manifest_md5.as_deref().ok_or_else(|| {
        refused("no manifest was announced: call createArtifactManifest with the manifest's digest and upload it before committing".into())
    })?;
    let md5: [u8; 16] = hex::decode(manifest_md5)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored manifest md5 {manifest_md5:?}")))?;
    let bytes = blobs
        .read(&BlobKey::content(&md5), MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| match e {
            herald_blobs::BlobError::TooLarge { limit } => {
                refused(format!("the manifest is over {limit} bytes"))
            }
            other => other.into(),
        })?
        .ok_or_else(|| refused("the manifest was never uploaded: PUT it to the uploadUrl createArtifactManifest gave".into()))?;
    let manifest = Manifest::parse(&bytes).map_err(Error::Invalid)?;
    let digest = manifest.digest();
    if digest != upload.digest {
        return Err(refused(format!(
            "the uploaded manifest's digest is {digest}, but the artifact was created with digest {}",
            upload.digest
        )));
    }
    // One HEAD per file, a few at a time: a bucket answers each in milliseconds, and an
    // artifact may hold thousands.
    let md5s: Vec<[u8; 16]> = manifest.entries.iter().filter_map(|e| e.md5).collect();
    let stored: Vec<Option<u64>> = futures_util::stream::iter(md5s)
        .map(|md5| async move { blobs.exists(&BlobKey::content(&md5)).await })
        .buffered(EXISTS_AT_ONCE)
        .try_collect()
        .await?;
    let mut missing = Vec::new();
    let checked = manifest.entries.iter().filter(|e| e.md5.is_some());
    for (entry, size) in checked.zip(stored) {
        match size {
            Some(size) if size == entry.size => {}
            Some(size) => {
                return Err(refused(format!(
                    "file {:?} is stored with {size} bytes; the manifest says {}",
                    entry.path, entry.size
                )))
            }
            None => missing.push(entry.path.as_str()),
        }
    }
    if !missing.is_empty() {
        let more = missing.len().saturating_sub(NAMED_MISSING);
        let mut names = missing[..missing.len().min(NAMED_MISSING)].join(", ");
        if more > 0 {
            names.push_str(&format!(" and {more} more"));
        }
        return Err(refused(format!(
            "the manifest names files that were never uploaded: {names}"
        )));
    }
    Ok(VersionContents {
        manifest_md5: manifest_md5.to_string(),
        file_count: manifest.entries.len() as i64,
        size: i64::try_from(manifest.size()).unwrap_or(i64::MAX),
    })
}
