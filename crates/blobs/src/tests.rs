//! The store on a real directory and in memory: round trips, limits, the MD5 check, and
//! what a refused or interrupted upload leaves (nothing).

use std::path::Path;

use bytes::Bytes;
use futures_util::{stream, StreamExt as _, TryStreamExt as _};
use md5::{Digest as _, Md5};

use crate::*;

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// `data` as a body arriving in chunks of `chunk` bytes.
fn body(data: &[u8], chunk: usize) -> ByteStream {
    let parts: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(parts).boxed()
}

/// `data`, then the client going away.
fn interrupted(data: &[u8]) -> ByteStream {
    let parts = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection closed before the body ended",
        )),
    ];
    stream::iter(parts).boxed()
}

async fn read_all(store: &dyn BlobStore, key: &BlobKey) -> Option<Vec<u8>> {
    let blob = store.get(key).await.unwrap()?;
    let parts: Vec<Bytes> = blob.stream.try_collect().await.unwrap();
    let data = parts.concat();
    assert_eq!(data.len() as u64, blob.size);
    Some(data)
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                pending.push(e.path());
            } else {
                let p = e.path();
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

async fn local(limits: Limits) -> (tempfile::TempDir, ObjectBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&Location::Local(dir.path().join("blobs")), limits)
        .await
        .unwrap();
    (dir, store)
}

/// Some bytes that are not all alike.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn small_and_large_blobs_round_trip_on_disk() {
    let (dir, store) = local(Limits::default()).await;
    for (n, chunk) in [
        (0, 1),
        (5, 2),
        (CHUNK, 64 * 1024),
        (3 * CHUNK + 17, 100_000),
    ] {
        let bytes = data(n);
        let key = BlobKey::content(1, &md5_of(&bytes));
        let stored = store
            .put(&key, body(&bytes, chunk), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(stored.size, n as u64);
        assert_eq!(stored.md5, md5_of(&bytes));
        assert_eq!(store.head(&key).await.unwrap(), Some(n as u64));
        assert_eq!(read_all(&store, &key).await.unwrap(), bytes, "{n} bytes");
    }
    let run = BlobKey::run_file(9, "media/a#1.txt").unwrap();
    store
        .put(&run, body(b"log", 3), PutOptions::default())
        .await
        .unwrap();
    let on_disk = files(&dir.path().join("blobs"));
    assert!(
        on_disk.contains(&"runs/9/media/a%231.txt".to_string()),
        "{on_disk:?}"
    );
    assert!(on_disk.iter().all(|f| !f.contains('#')), "{on_disk:?}");
    assert!(store.delete(&run).await.unwrap());
    assert!(!store.delete(&run).await.unwrap());
    assert_eq!(store.head(&run).await.unwrap(), None);
    assert!(store.get(&run).await.unwrap().is_none());
}

#[tokio::test]
async fn a_wrong_md5_stores_nothing_and_keeps_what_was_there() {
    let (dir, store) = local(Limits::default()).await;
    let key = BlobKey::run_file(1, "f").unwrap();
    store
        .put(&key, body(b"old", 3), PutOptions::default())
        .await
        .unwrap();
    for n in [10, 2 * CHUNK + 1] {
        let bytes = data(n);
        let wrong = PutOptions {
            md5: Some(md5_of(b"something else")),
            declared_len: None,
        };
        let e = store
            .put(&key, body(&bytes, 65536), wrong)
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::Md5Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("MD5"), "{e}");
        // A content key's own MD5 is checked too.
        let content = BlobKey::content(1, &md5_of(b"other"));
        let e = store
            .put(&content, body(&bytes, 65536), PutOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::Md5Mismatch { .. }), "{e}");
        assert_eq!(store.head(&content).await.unwrap(), None);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(read_all(&store, &key).await.unwrap(), b"old");
    assert_eq!(files(&dir.path().join("blobs")), ["runs/1/f"]);
    assert_eq!(store.used(), 3);
}

#[tokio::test]
async fn the_per_file_limit_is_kept_declared_or_not() {
    let limits = Limits {
        max_file_size: 1000,
        max_total_size: None,
    };
    let (dir, store) = local(limits).await;
    let key = BlobKey::run_file(1, "big").unwrap();
    let declared = PutOptions {
        md5: None,
        declared_len: Some(1001),
    };
    let e = store.put(&key, body(b"", 1), declared).await.unwrap_err();
    assert!(e.to_string().contains("1000 bytes"), "{e}");
    // Declared small (or not at all), sent large.
    let e = store
        .put(&key, body(&data(1001), 100), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, BlobError::TooLarge { limit: 1000 }), "{e}");
    store
        .put(&key, body(&data(1000), 100), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(files(&dir.path().join("blobs")), ["runs/1/big"]);
}

#[tokio::test]
async fn the_total_limit_counts_what_is_stored_replaced_and_deleted() {
    let limits = Limits {
        max_file_size: u64::MAX,
        max_total_size: Some(100),
    };
    let store = ObjectBlobStore::in_memory(limits);
    let a = BlobKey::run_file(1, "a").unwrap();
    let b = BlobKey::run_file(1, "b").unwrap();
    store
        .put(&a, body(&data(60), 7), PutOptions::default())
        .await
        .unwrap();
    let e = store
        .put(&b, body(&data(41), 7), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, BlobError::Full { limit: Some(100) }), "{e}");
    assert!(e.to_string().contains("100 bytes"), "{e}");
    let declared = PutOptions {
        md5: None,
        declared_len: Some(41),
    };
    assert!(matches!(
        store.put(&b, body(b"", 1), declared).await,
        Err(BlobError::Full { .. })
    ));
    assert_eq!(store.used(), 60, "a refused upload gives its bytes back");
    // Replacing a blob counts the difference once stored (while the new one is uploaded, both
    // are on disk, and both count).
    store
        .put(&a, body(&data(30), 7), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(store.used(), 30);
    store.delete(&a).await.unwrap();
    assert_eq!(store.used(), 0);
    store
        .put(&b, body(&data(100), 7), PutOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing() {
    let (dir, store) = local(Limits::default()).await;
    let key = BlobKey::run_file(1, "partial").unwrap();
    for n in [10, 2 * CHUNK + 5] {
        let e = store
            .put(&key, interrupted(&data(n)), PutOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, BlobError::Body(_)), "{e}");
    }
    // The upload whose future is dropped half-way, as when a request is cancelled.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tx.send(Ok(Bytes::from(data(3 * CHUNK)))).await.unwrap();
    let body = tokio_stream_from(rx);
    let put = store.put(&key, body, PutOptions::default());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), put)
            .await
            .is_err(),
        "the upload waits for the rest of its body"
    );
    drop(tx);
    // The staging file goes in the background.
    let root = dir.path().join("blobs");
    for _ in 0..100 {
        if files(&root).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(files(&root), Vec::<String>::new());
    assert_eq!(store.head(&key).await.unwrap(), None);
    assert_eq!(store.used(), 0);
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> ByteStream {
    stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
