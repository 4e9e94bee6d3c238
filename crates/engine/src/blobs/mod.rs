//! File storage as the rest of herald uses it: [`Blobs`] joins the blob store
//! ([`herald_blobs::BlobStore`]) with the URLs clients reach it by. The W&B SDK uploads run
//! files and artifact files with a `PUT` to an absolute URL the server hands out, and downloads
//! them with a `GET`, both without credentials: the URL carries its own ([`signing`]).
//!
//! What a GraphQL handler calls (all on `state.blobs`):
//!
//! ```ignore
//! use herald_blobs::BlobKey;
//! // CreateArtifactFiles: a file whose content is stored already gets `uploadUrl: null`.
//! let key = BlobKey::content(owner, &md5);                // the team's entity id; md5 from the SDK
//! let upload_url = match blobs.exists(&key).await? {
//!     Some(_size) => None,
//!     None => Some(blobs.presign_upload(&key, Some(md5), None)),   // PUT; 24 h by default
//! };
//! let direct_url = blobs.presign_download(&key, None);    // GET; 1 h by default
//! // CreateRunFiles: one key per run row and file name; a bad name is an InvalidKey.
//! let key = BlobKey::run_file(run_row_id, "media/images/x.png")?;
//! // CreateArtifactManifest, then reading what the SDK uploaded:
//! let key = BlobKey::artifact_file(artifact_row_id, "wandb_manifest.json")?;
//! let manifest: Option<bytes::Bytes> = blobs.read(&key, 64 << 20).await?;
//! let stream = blobs.open(&key).await?;                   // Option<Blob { size, stream }>
//! ```
//!
//! URLs are `{public_url}/storage/v1/{key}?expires=…[&md5=…]&sig=…`, each key segment
//! percent-encoded; `public_url` is the configured one, or `http://<the address herald
//! listens on>`.

pub mod signing;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt as _;
use herald_blobs::{Blob, BlobError, BlobKey, BlobStore};

pub use signing::{Access, Grant, SignedParams, UrlError, UrlSigner, STORAGE_PATH};

use crate::secrets::MasterKey;

/// How long URLs work unless a caller says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlLifetimes {
    pub upload: Duration,
    pub download: Duration,
}

impl Default for UrlLifetimes {
    fn default() -> Self {
        Self {
            upload: Duration::from_secs(24 * 3600),
            download: Duration::from_secs(3600),
        }
    }
}

/// The blob store and its signed URLs.
pub struct Blobs {
    store: Arc<dyn BlobStore>,
    signer: UrlSigner,
    /// The public URL, without a trailing `/`.
    base: url::Url,
    lifetimes: UrlLifetimes,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("base", &self.base.as_str())
            .field("lifetimes", &self.lifetimes)
            .finish_non_exhaustive()
    }
}

impl Blobs {
    /// Blobs in `store`, reached at `public_url` (`http(s)://host[:port][/path]`), URLs signed
    /// under a key derived from `master`.
    pub fn new(
        store: Arc<dyn BlobStore>,
        master: &MasterKey,
        public_url: &str,
        lifetimes: UrlLifetimes,
    ) -> anyhow::Result<Self> {
        let base = url::Url::parse(public_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .filter(|u| u.query().is_none() && u.fragment().is_none())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "public_url {public_url:?} is not a base URL like https://herald.example.com"
                )
            })?;
        Ok(Self {
            store,
            signer: UrlSigner::new(master),
            base,
            lifetimes,
        })
    }

    /// An absolute URL a client may `PUT` `key`'s bytes to, for `ttl` (default: the configured
    /// upload lifetime). With `expected_md5`, bytes that hash otherwise are refused; a content
    /// key (`md5/…`) is always checked against its own MD5.
    pub fn presign_upload(
        &self,
        key: &BlobKey,
        expected_md5: Option<[u8; 16]>,
        ttl: Option<Duration>,
    ) -> String {
        let expires = now() + seconds(ttl.unwrap_or(self.lifetimes.upload));
        self.signed_url(Access::Upload, key, expected_md5.as_ref(), expires)
    }

    /// An absolute URL a client may `GET` (or `HEAD`) `key` from, for `ttl` (default: the
    /// configured download lifetime).
    pub fn presign_download(&self, key: &BlobKey, ttl: Option<Duration>) -> String {
        let expires = now() + seconds(ttl.unwrap_or(self.lifetimes.download));
        self.signed_url(Access::Download, key, None, expires)
    }

    /// The URL granting `access` to `key` until `expires` (Unix seconds).
    pub fn signed_url(
        &self,
        access: Access,
        key: &BlobKey,
        md5: Option<&[u8; 16]>,
        expires: i64,
    ) -> String {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(STORAGE_PATH.trim_matches('/').split('/'))
            .extend(key.as_str().split('/'));
        url.set_query(Some(&self.signer.query(access, key, expires, md5)));
        url.into()
    }

    /// Whether the request's `params` grant `access` to `key` now.
    pub fn verify(
        &self,
        access: Access,
        key: &BlobKey,
        params: &SignedParams,
    ) -> Result<Grant, UrlError> {
        self.signer.verify(access, key, params, now())
    }

    /// The size of the blob under `key`, if there is one.
    pub async fn exists(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        self.store.head(key).await
    }

    /// The blob under `key`, streaming, for reading on the server.
    pub async fn open(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        self.store.get(key).await
    }

    /// The whole blob under `key` in memory (an artifact manifest, a small run file), refused
    /// with [`BlobError::TooLarge`] if it is over `max` bytes.
    pub async fn read(&self, key: &BlobKey, max: u64) -> Result<Option<Bytes>, BlobError> {
        let Some(mut blob) = self.store.get(key).await? else {
            return Ok(None);
        };
        if blob.size > max {
            return Err(BlobError::TooLarge { limit: max });
        }
        let mut out = Vec::with_capacity(blob.size as usize);
        while let Some(chunk) = blob.stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| BlobError::Backend(e.into()))?);
            if out.len() as u64 > max {
                return Err(BlobError::TooLarge { limit: max });
            }
        }
        Ok(Some(out.into()))
    }

    /// The store itself: put, get, head, delete.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    pub fn lifetimes(&self) -> UrlLifetimes {
        self.lifetimes
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whole seconds, rounded up, so a URL never lives shorter than asked.
fn seconds(d: Duration) -> i64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(s).unwrap_or(i64::MAX / 2)
}

impl From<BlobError> for crate::Error {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Backend(e) => Self::Internal(e),
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<herald_blobs::InvalidKey> for crate::Error {
    fn from(e: herald_blobs::InvalidKey) -> Self {
        Self::Invalid(herald_domain::InvalidInput::new("", e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_blobs::{Limits, ObjectBlobStore, PutOptions};

    fn blobs(public_url: &str) -> Blobs {
        let store = Arc::new(ObjectBlobStore::in_memory(Limits::default()));
        Blobs::new(
            store,
            &MasterKey::generate(),
            public_url,
            UrlLifetimes::default(),
        )
        .unwrap()
    }

    fn query(url: &str) -> SignedParams {
        SignedParams::from_query(url.split_once('?').unwrap().1)
    }

    #[test]
    fn urls_are_absolute_under_the_public_url_and_verify() {
        let b = blobs("https://herald.example.com/");
        let key = BlobKey::run_file(5, "media/a b#1.png").unwrap();
        let url = b.presign_upload(&key, Some([1; 16]), None);
        assert!(
            url.starts_with(
                "https://herald.example.com/storage/v1/runs/5/media/a%20b%231.png?expires="
            ),
            "{url}"
        );
        assert!(url.contains("&md5=01010101"), "{url}");
        let grant = b.verify(Access::Upload, &key, &query(&url)).unwrap();
        assert_eq!(grant.md5, Some([1; 16]));
        let lifetime = grant.expires - now();
        assert!((86_399..=86_401).contains(&lifetime), "{lifetime}");
        let down = b.presign_download(&key, Some(Duration::from_millis(1500)));
        let grant = b.verify(Access::Download, &key, &query(&down)).unwrap();
        assert!((1..=2).contains(&(grant.expires - now())), "rounded up");
        assert!(b.verify(Access::Upload, &key, &query(&down)).is_err());

        // A public URL with a path keeps it.
        let b = blobs("http://10.0.0.5:8080/herald");
        let url = b.presign_download(&BlobKey::content(9, &[0xff; 16]), None);
        assert!(
            url.starts_with("http://10.0.0.5:8080/herald/storage/v1/md5/9/ffff"),
            "{url}"
        );
        for bad in [
            "",
            "herald.example.com",
            "ftp://x",
            "http://",
            "http://x/?q=1",
        ] {
            let store = Arc::new(ObjectBlobStore::in_memory(Limits::default()));
            let e = Blobs::new(store, &MasterKey::generate(), bad, UrlLifetimes::default());
            assert!(e.is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn reads_on_the_server() {
        let b = blobs("http://127.0.0.1:8080");
        let key = BlobKey::artifact_file(3, "wandb_manifest.json").unwrap();
        assert_eq!(b.exists(&key).await.unwrap(), None);
        assert!(b.read(&key, 100).await.unwrap().is_none());
        let body =
            futures_util::stream::iter([Ok(Bytes::from_static(b"{\"version\": 1}"))]).boxed();
        b.store()
            .put(&key, body, PutOptions::default())
            .await
            .unwrap();
        assert_eq!(b.exists(&key).await.unwrap(), Some(14));
        assert_eq!(
            &b.read(&key, 100).await.unwrap().unwrap()[..],
            b"{\"version\": 1}"
        );
        assert!(matches!(
            b.read(&key, 10).await,
            Err(BlobError::TooLarge { limit: 10 })
        ));
        assert_eq!(b.open(&key).await.unwrap().unwrap().size, 14);
    }
}
