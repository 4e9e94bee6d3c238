//! Where a store lives, as configured (`storage.blobs.url`), and opening it: a local directory
//! (by default `<data_dir>/blobs`), or an S3-compatible bucket (`s3://bucket/prefix`), whose
//! credentials, region and endpoint come from the usual `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for MinIO and
//! other S3-compatible servers, `AWS_ALLOW_HTTP=true` for one without TLS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use object_store::ObjectStore;

use crate::object::{Limits, ObjectBlobStore};

/// A configured store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory on this machine.
    Local(PathBuf),
    /// A bucket, and the prefix every key is put under (empty for none).
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Reads `url`: empty for `<data_dir>/blobs`, `s3://bucket[/prefix]`, `file:///abs/dir`, or
    /// a directory path.
    pub fn parse(url: &str, data_dir: &Path) -> anyhow::Result<Self> {
        let url = url.trim();
        if url.is_empty() {
            return Ok(Self::Local(data_dir.join("blobs")));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                bail!("{url:?} does not name a bucket: write s3://bucket/prefix (a bucket name is 3 to 63 lowercase letters, digits, `-` or `.`)");
            }
            if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
                bail!("{url:?}: the prefix may not hold `.`, `..` or empty segments");
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                bail!("{url:?}: a file URL names an absolute directory, as in file:///srv/herald-blobs");
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if url.contains("://") {
            bail!("{url:?}: blobs are stored in a directory (a path or file:///dir) or an S3-compatible bucket (s3://bucket/prefix)");
        }
        Ok(Self::Local(PathBuf::from(url)))
    }

    /// For logs: the directory, or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(dir) => dir.display().to_string(),
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Opens the store at `location` with `limits`. A local directory is created (0700) if need be;
/// what interrupted uploads left there (staging files, after a crash) is deleted, and what it
/// holds is counted for the total limit. A bucket is not contacted: its credentials are
/// checked at the first request. A total limit is for a local store only (a bucket's quota is
/// its provider's to keep), and is refused with a bucket.
pub async fn open(location: &Location, limits: Limits) -> anyhow::Result<ObjectBlobStore> {
    match location {
        Location::Local(dir) => {
            create_private_dir(dir)?;
            let root = dir.clone();
            let used = tokio::task::spawn_blocking(move || sweep(&root))
                .await
                .context("counting the blob store")??;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .with_context(|| format!("opening the blob store {}", dir.display()))?
                .with_automatic_cleanup(true);
            Ok(ObjectBlobStore::new(Arc::new(fs), limits, used))
        }
        Location::S3 { bucket, prefix } => {
            if limits.max_total_size.is_some() {
                bail!("storage.blobs.max_total_size limits a local blob store only; set a quota on the bucket {bucket} instead");
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("configuring the bucket {}", location.describe()))?;
            let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
            };
            Ok(ObjectBlobStore::new(inner, limits, 0))
        }
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating the blob store {}", dir.display()))
}

/// Whether `name` is a local store's staging file: `<name>#<digits>`, a name no key maps to
/// (keys have `#` percent-encoded).
fn is_staging(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes staging files under `dir` and returns the size of everything else.
fn sweep(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if is_staging(&entry.file_name()) {
                tracing::info!(path = %entry.path().display(), "deleting an interrupted upload");
                let _ = std::fs::remove_file(entry.path());
            } else if kind.is_file() {
                total += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read() {
        let data = Path::new("/var/lib/herald");
        assert_eq!(
            Location::parse("", data).unwrap(),
            Location::Local(data.join("blobs"))
        );
        assert_eq!(
            Location::parse("/srv/blobs", data).unwrap(),
            Location::Local("/srv/blobs".into())
        );
        assert_eq!(
            Location::parse("file:///srv/blobs", data).unwrap(),
            Location::Local("/srv/blobs".into())
        );
        assert_eq!(
            Location::parse("s3://ml-blobs/herald/prod/", data).unwrap(),
            Location::S3 {
                bucket: "ml-blobs".into(),
                prefix: "herald/prod".into()
            }
        );
        let bare = Location::parse("s3://ml-blobs", data).unwrap();
        assert_eq!(bare.describe(), "s3://ml-blobs");
        for bad in [
            "s3://",
            "s3://UPPER/x",
            "s3://b/x",
            "s3://bucket/../x",
            "s3://bucket/a//b",
            "gs://bucket",
            "file://relative",
        ] {
            assert!(Location::parse(bad, data).is_err(), "{bad} accepted");
        }
    }

    #[tokio::test]
    async fn a_bucket_store_is_constructed_without_contacting_it() {
        let loc = Location::parse("s3://ml-blobs/herald", Path::new(".")).unwrap();
        let store = open(&loc, Limits::default()).await.unwrap();
        assert!(format!("{store:?}").contains("herald"), "{store:?}");
        let quota = Limits {
            max_total_size: Some(1),
            ..Limits::default()
        };
        let e = open(&loc, quota).await.unwrap_err().to_string();
        assert!(e.contains("max_total_size"), "{e}");
    }

    #[tokio::test]
    async fn opening_a_local_store_counts_it_and_deletes_interrupted_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        std::fs::create_dir_all(root.join("runs/1")).unwrap();
        std::fs::write(root.join("runs/1/a.txt"), b"12345").unwrap();
        std::fs::write(root.join("runs/1/b.txt#1"), b"partial").unwrap();
        std::fs::write(root.join("runs/1/c%231"), b"xy").unwrap();
        let store = open(&Location::Local(root.clone()), Limits::default())
            .await
            .unwrap();
        assert_eq!(store.used(), 7);
        assert!(!root.join("runs/1/b.txt#1").exists());
        assert!(root.join("runs/1/c%231").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let fresh = dir.path().join("fresh");
            open(&Location::Local(fresh.clone()), Limits::default())
                .await
                .unwrap();
            let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
