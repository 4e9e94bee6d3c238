//! The [`BlobStore`] trait and what passes through it.

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::BlobKey;

/// Bytes arriving (an upload's body) or leaving (a download).
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// What an upload must satisfy besides the store's limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// The MD5 the bytes must have (a content key's own MD5 is always checked as well).
    pub md5: Option<[u8; 16]>,
    /// The length the client declared (`Content-Length`), to refuse an oversized or
    /// over-quota upload before reading it. The bytes actually read are what count.
    pub declared_len: Option<u64>,
}

/// A blob that was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub md5: [u8; 16],
}

/// A blob being read: its size and its bytes.
pub struct Blob {
    pub size: u64,
    pub stream: ByteStream,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob").field("size", &self.size).finish()
    }
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The upload is larger than one file may be.
    #[error("the file is over the limit of {limit} bytes per file (storage.blobs.max_file_size)")]
    TooLarge { limit: u64 },
    /// Storing the upload would take the store past its limit, or the disk is full (`limit`
    /// is then `None`).
    #[error("{}", full_message(*.limit))]
    Full { limit: Option<u64> },
    /// The bytes do not hash to the MD5 the upload was issued for (both base64, as W&B writes
    /// digests).
    #[error("the content's MD5 is {actual}, not {expected} as the upload URL was issued for")]
    Md5Mismatch { expected: String, actual: String },
    /// The upload's body could not be read: the client went away, or was too slow.
    #[error("reading the upload failed: {0}")]
    Body(std::io::Error),
    /// The store itself failed.
    #[error("blob store: {0:#}")]
    Backend(anyhow::Error),
}

fn full_message(limit: Option<u64>) -> String {
    match limit {
        Some(limit) => format!(
            "the blob store is full: storing this file would take it past its limit of {limit} bytes (storage.blobs.max_total_size)"
        ),
        None => "the blob store is full: no space is left on its disk".to_string(),
    }
}

/// Where blobs are kept: put, get, head and delete by [`BlobKey`]. An upload is streamed (never
/// held whole in memory), checked (size, quota, MD5) as it arrives, and committed only once
/// all of it has arrived and passed: a refused or interrupted upload leaves nothing under its
/// key, and an existing blob under that key stays as it was.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` under `key`, replacing what was there.
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        options: PutOptions,
    ) -> Result<Stored, BlobError>;

    /// The blob under `key`, streaming; `None` if there is none.
    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError>;

    /// The size of the blob under `key`; `None` if there is none.
    async fn head(&self, key: &BlobKey) -> Result<Option<u64>, BlobError>;

    /// Deletes the blob under `key`; `false` if there was none.
    async fn delete(&self, key: &BlobKey) -> Result<bool, BlobError>;

    /// The content-addressed blobs (`md5/…`) last written before `before` (Unix seconds).
    async fn content_written_before(&self, before: i64) -> Result<Vec<BlobKey>, BlobError>;
}
