//! [`ObjectBlobStore`]: the [`BlobStore`] on `object_store` (a local directory, an S3-compatible
//! bucket, or memory for tests), with the per-file and total limits and the MD5 check.
//!
//! An upload no larger than [`CHUNK`] is gathered and written with one `put`; a larger one goes
//! up as a multipart upload in parts of [`CHUNK`], at most [`PARTS_IN_FLIGHT`] being written at
//! once, so an upload holds at most about 24 MiB of memory whatever its size. Both are
//! invisible under their key until complete: a local store writes a staging file beside the
//! target (`<name>#<n>`) and renames it; S3 shows a multipart upload only once it is completed.
//! A refused, failed or interrupted upload is aborted (its staging file deleted, its parts
//! dropped), also when the request's future is dropped half-way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use md5::{Digest as _, Md5};
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use crate::store::{Blob, BlobError, BlobStore, ByteStream, PutOptions, Stored};
use crate::BlobKey;

/// Size of a multipart upload's parts, and the most a small upload gathers before writing
/// (S3 needs parts of at least 5 MiB).
pub const CHUNK: usize = 8 * 1024 * 1024;
/// Parts of one upload being written at once.
pub const PARTS_IN_FLIGHT: usize = 2;
/// How much of a local file a download reads at a time.
const READ_CHUNK: usize = 256 * 1024;

/// Limits on what a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file, in bytes.
    pub max_file_size: u64,
    /// The most all blobs together may take, in bytes; `None`: no limit.
    pub max_total_size: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_size: 5 * 1024 * 1024 * 1024,
            max_total_size: None,
        }
    }
}

/// The blob store on an [`ObjectStore`].
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    limits: Limits,
    quota: Quota,
}

impl std::fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("inner", &self.inner.to_string())
            .field("limits", &self.limits)
            .field("used", &self.quota.used.load(Ordering::Relaxed))
            .finish()
    }
}

impl ObjectBlobStore {
    /// A store on `inner` already holding `used` bytes (what the total limit counts from).
    pub fn new(inner: Arc<dyn ObjectStore>, limits: Limits, used: u64) -> Self {
        Self {
            inner,
            limits,
            quota: Quota {
                limit: limits.max_total_size,
                used: AtomicU64::new(used),
            },
        }
    }

    /// A store in memory, for tests.
    pub fn in_memory(limits: Limits) -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), limits, 0)
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes the store holds, as counted since it was opened (uploads in progress included).
    pub fn used(&self) -> u64 {
        self.quota.used.load(Ordering::Relaxed)
    }

    /// Reads `body` whole if it ends within [`CHUNK`] bytes; otherwise returns what it read
    /// so far and leaves the rest in `body`.
    async fn gather(
        &self,
        body: &mut ByteStream,
        check: &mut Check<'_>,
    ) -> Result<(Vec<Bytes>, bool), BlobError> {
        let mut parts = Vec::new();
        let mut gathered = 0;
        while gathered < CHUNK {
            match body.next().await {
                None => return Ok((parts, true)),
                Some(chunk) => {
                    let chunk = chunk.map_err(BlobError::Body)?;
                    check.take(&chunk)?;
                    gathered += chunk.len();
                    parts.push(chunk);
                }
            }
        }
        Ok((parts, false))
    }

    /// Streams the rest of an upload larger than [`CHUNK`] as a multipart upload, completing
    /// it only if every check passes.
    async fn put_multipart(
        &self,
        path: &object_store::path::Path,
        first: Vec<Bytes>,
        mut body: ByteStream,
        check: &mut Check<'_>,
    ) -> Result<(), BlobError> {
        let upload = self.inner.put_multipart(path).await.map_err(backend)?;
        let mut upload = AbortOnDrop(Some(WriteMultipart::new_with_chunk_size(upload, CHUNK)));
        let writer = upload.0.as_mut().expect("present until finished");
        for chunk in first {
            writer.put(chunk);
        }
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(BlobError::Body)?;
            check.take(&chunk)?;
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(backend)?;
            writer.put(chunk);
        }
        check.verify()?;
        let writer = upload.0.take().expect("present until finished");
        writer.finish().await.map_err(backend)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<Stored, BlobError> {
        let expected: Vec<[u8; 16]> = options.md5.into_iter().chain(key.content_md5()).collect();
        if let Some(n) = options.declared_len {
            if n > self.limits.max_file_size {
                return Err(BlobError::TooLarge {
                    limit: self.limits.max_file_size,
                });
            }
            self.quota.check(n)?;
        }
        let mut check = Check {
            expected,
            max: self.limits.max_file_size,
            size: 0,
            md5: Md5::new(),
            reservation: Reservation {
                quota: &self.quota,
                bytes: 0,
            },
        };
        let path = key.object_path();
        let (first, whole) = self.gather(&mut body, &mut check).await?;
        let replaced = self.head(key).await?.unwrap_or(0);
        if whole {
            check.verify()?;
            self.inner
                .put(&path, PutPayload::from_iter(first))
                .await
                .map_err(backend)?;
        } else {
            self.put_multipart(&path, first, body, &mut check).await?;
        }
        let md5 = check.md5.clone().finalize().into();
        let size = check.size;
        check.reservation.commit(replaced);
        Ok(Stored { size, md5 })
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        match self.inner.get(&key.object_path()).await {
            Ok(got) => {
                let size = got.meta.size;
                let stream = match got.payload {
                    // object_store reads a local file 8 KiB per blocking task; reads of 256 KiB
                    // serve a download at more than twice the rate.
                    object_store::GetResultPayload::File(file, _) => read_file(file),
                    object_store::GetResultPayload::Stream(s) => {
                        s.map(|r| r.map_err(std::io::Error::other)).boxed()
                    }
                };
                Ok(Some(Blob { size, stream }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        match self.inner.head(&key.object_path()).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn content_written_before(&self, before: i64) -> Result<Vec<BlobKey>, BlobError> {
        let mut listing = self
            .inner
            .list(Some(&object_store::path::Path::from("md5")));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(backend)?;
            if meta.last_modified.timestamp() >= before {
                continue;
            }
            // Anything that is not `md5/<owner>/xx/<32 hex>` (a local store's staging file) is
            // not a blob of ours.
            let parts: Vec<_> = meta.location.parts().collect();
            let [_, owner, _, hex] = parts.as_slice() else {
                continue;
            };
            if let Ok(key) = BlobKey::parse(&format!("md5/{}/{}", owner.as_ref(), hex.as_ref())) {
                if key.object_path() == meta.location {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }

    async fn delete(&self, key: &BlobKey) -> Result<bool, BlobError> {
        let Some(size) = self.head(key).await? else {
            return Ok(false);
        };
        match self.inner.delete(&key.object_path()).await {
            Ok(()) => {
                self.quota.release(size);
                Ok(true)
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }
}

/// A local file's bytes from where it is open, [`READ_CHUNK`] at a time.
fn read_file(file: std::fs::File) -> ByteStream {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::from_std(file);
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = bytes::BytesMut::with_capacity(READ_CHUNK);
        match file.read_buf(&mut buf).await? {
            0 => Ok(None),
            _ => Ok(Some((buf.freeze(), file))),
        }
    })
    .boxed()
}

/// What an upload is checked against as its bytes arrive.
struct Check<'a> {
    expected: Vec<[u8; 16]>,
    max: u64,
    size: u64,
    md5: Md5,
    reservation: Reservation<'a>,
}

impl Check<'_> {
    /// Counts and hashes `chunk`, refusing it past the per-file or the total limit.
    fn take(&mut self, chunk: &Bytes) -> Result<(), BlobError> {
        let n = chunk.len() as u64;
        self.size += n;
        if self.size > self.max {
            return Err(BlobError::TooLarge { limit: self.max });
        }
        self.reservation.add(n)?;
        self.md5.update(chunk);
        Ok(())
    }

    /// Whether all the bytes hash to every MD5 the upload must have.
    fn verify(&self) -> Result<(), BlobError> {
        let actual: [u8; 16] = self.md5.clone().finalize().into();
        match self.expected.iter().find(|e| **e != actual) {
            Some(expected) => Err(BlobError::Md5Mismatch {
                expected: B64.encode(expected),
                actual: B64.encode(actual),
            }),
            None => Ok(()),
        }
    }
}

/// The total limit: bytes stored and being uploaded, counted since the store was opened.
struct Quota {
    limit: Option<u64>,
    used: AtomicU64,
}

impl Quota {
    /// Refuses at once an upload declared larger than what is left.
    fn check(&self, n: u64) -> Result<(), BlobError> {
        match self.limit {
            Some(limit) if self.used.load(Ordering::Relaxed).saturating_add(n) > limit => {
                Err(BlobError::Full { limit: Some(limit) })
            }
            _ => Ok(()),
        }
    }

    fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// Bytes of an upload in progress, counted against the total limit; given back when dropped
/// unless committed.
struct Reservation<'a> {
    quota: &'a Quota,
    bytes: u64,
}

impl Reservation<'_> {
    fn add(&mut self, n: u64) -> Result<(), BlobError> {
        let before = self.quota.used.fetch_add(n, Ordering::Relaxed);
        self.bytes += n;
        match self.quota.limit {
            Some(limit) if before.saturating_add(n) > limit => {
                Err(BlobError::Full { limit: Some(limit) })
            }
            _ => Ok(()),
        }
    }

    /// The upload is stored: its bytes stay counted, those of the blob it `replaced` go.
    fn commit(mut self, replaced: u64) {
        self.bytes = 0;
        self.quota.release(replaced);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.quota.release(self.bytes);
    }
}

/// A multipart upload aborted if dropped before it was finished: on an error, or when the
/// request's future is dropped half-way.
struct AbortOnDrop(Option<WriteMultipart>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(upload) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = upload.abort().await {
                            tracing::warn!(error = %e, "aborting an unfinished upload");
                        }
                    });
                }
                Err(_) => drop(upload),
            }
        }
    }
}

/// An `object_store` error as a [`BlobError`]: a full disk is [`BlobError::Full`].
pub(crate) fn backend(e: object_store::Error) -> BlobError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull {
                return BlobError::Full { limit: None };
            }
        }
        source = s.source();
    }
    BlobError::Backend(anyhow::Error::new(e))
}
