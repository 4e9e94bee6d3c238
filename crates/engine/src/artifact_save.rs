//! Committing an artifact the `wandb` SDK uploaded. The SDK announces a digest at CreateArtifact,
//! PUTs the files and a manifest to signed URLs, and then asks for the commit; herald commits
//! only what it can vouch for: the manifest it was told about is stored, it lists exactly the
//! files the announced digest covers, and every one of those files is stored. Anything else is
//! refused, naming the problem, and the upload stays uncommitted.

use futures_util::{StreamExt as _, TryStreamExt as _};
use std::time::Duration;

use herald_blobs::BlobKey;
use herald_domain::catalog::{ArtifactVersion, Project, Role, User};
use herald_domain::ids::UploadId;
use herald_domain::wandb_artifact::{md5_of, Manifest, EMPTY_MANIFEST};
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
    let (contents, files) = check_uploaded(blobs, project.entity_id.0, &upload).await?;
    let version = store.commit_upload(id, user, contents, &files).await?;
    Ok((project, version))
}

fn refused(message: String) -> Error {
    Error::Invalid(InvalidInput::new("artifactID", message))
}

/// The manifest and files of `upload` (the hex MD5s of its files), if all are stored and agree
/// with its digest.
async fn check_uploaded(
    blobs: &Blobs,
    owner: i64,
    upload: &Upload,
) -> Result<(VersionContents, Vec<String>)> {
    let manifest_md5 = upload.manifest_md5.as_deref().ok_or_else(|| {
        refused("no manifest was announced: call createArtifactManifest with the manifest's digest and upload it before committing".into())
    })?;
    let md5: [u8; 16] = hex::decode(manifest_md5)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("stored manifest md5 {manifest_md5:?}")))?;
    let bytes = blobs
        .read(&BlobKey::content(owner, &md5), MAX_MANIFEST_BYTES)
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
    let stored: Vec<Option<u64>> = futures_util::stream::iter(md5s.clone())
        .map(|md5| async move { blobs.exists(&BlobKey::content(owner, &md5)).await })
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
    let contents = VersionContents {
        manifest_md5: manifest_md5.to_string(),
        file_count: manifest.entries.len() as i64,
        size: i64::try_from(manifest.size()).unwrap_or(i64::MAX),
    };
    Ok((contents, md5s.iter().map(hex::encode).collect()))
}

/// Stores `owner`'s empty manifest (once: it is content-addressed), the manifest of a version
/// made over REST, which holds no files; answers its hex MD5.
pub async fn empty_manifest(blobs: &Blobs, owner: i64) -> Result<String> {
    let bytes = bytes::Bytes::from_static(EMPTY_MANIFEST.as_bytes());
    let md5 = md5_of(&bytes);
    let key = BlobKey::content(owner, &md5);
    if blobs.exists(&key).await?.is_none() {
        let body = futures_util::stream::iter([Ok(bytes)]).boxed();
        blobs
            .store()
            .put(&key, body, herald_blobs::PutOptions::default())
            .await?;
    }
    Ok(hex::encode(md5))
}

/// What one sweep of [`collect_garbage`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Uploads begun and never committed.
    pub uploads: u64,
    /// Content blobs no version holds.
    pub blobs: u64,
}

/// Deletes what saves that never committed left behind, once it is older than `grace`: their
/// pending rows, and every content blob (`md5/…`) no version holds as a file or manifest. The
/// grace must outlive an upload URL (a client may PUT until it expires, then commit), so that
/// nothing a save in progress still needs is taken. A save that found its content stored and
/// lost it to a sweep before committing is refused at commit ("never uploaded"), never
/// committed without it.
pub async fn collect_garbage(store: &dyn Store, blobs: &Blobs, grace: Duration) -> Result<Swept> {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    let uploads = store.purge_uploads(cutoff).await?;
    let old = blobs
        .store()
        .content_written_before(cutoff.timestamp())
        .await?;
    let mut swept = Swept { uploads, blobs: 0 };
    for chunk in old.chunks(1000) {
        let hexes: Vec<String> = chunk
            .iter()
            .filter_map(|k| k.content_md5().map(hex::encode))
            .collect();
        let used: std::collections::HashSet<String> =
            store.content_in_use(&hexes).await?.into_iter().collect();
        for (key, hex) in chunk.iter().zip(&hexes) {
            if !used.contains(hex) && blobs.store().delete(key).await? {
                swept.blobs += 1;
            }
        }
    }
    Ok(swept)
}

/// How often [`sweep_until_stopped`] sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Runs [`collect_garbage`] every [`SWEEP_EVERY`] (the first a minute after start) until
/// `shutdown`, with a grace of an upload URL's lifetime and an hour more. Replicas sharing a
/// bucket may all sweep: deleting twice is harmless.
pub async fn sweep_until_stopped(
    store: std::sync::Arc<dyn Store>,
    blobs: std::sync::Arc<Blobs>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let grace = blobs.lifetimes().upload + Duration::from_secs(3600);
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
        wait = SWEEP_EVERY;
        match collect_garbage(&*store, &blobs, grace).await {
            Ok(Swept {
                uploads: 0,
                blobs: 0,
            }) => {}
            Ok(s) => tracing::info!(
                uploads = s.uploads,
                blobs = s.blobs,
                "deleted what uncommitted artifact saves left"
            ),
            Err(e) => tracing::error!(error = %e, "could not sweep the blob store"),
        }
    }
}
