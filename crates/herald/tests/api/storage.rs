//! Files through `/storage/v1/{key}` with the URLs the server signs, over real HTTP into a real
//! data directory: round trips (one file far over the API's 1 MiB body limit), every way a URL
//! can be wrong, the MD5 check, keys that try to leave their prefix, the size limits, and
//! uploads that stop half-way. Whatever is refused leaves nothing in the blob store.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use herald_blobs::BlobKey;
use herald_engine::blobs::Access;
use md5::{Digest as _, Md5};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// Bytes that are not all alike.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Every file under the server's blob store.
fn stored_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), root, out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let root = app.data_dir.join("blobs");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Waits for the blob store to hold exactly `want` (an aborted upload's staging file is
/// deleted in the background).
async fn settles_to(app: &TestApp, want: &[&str]) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    eventually("the blob store to settle", Duration::from_secs(10), || {
        let now = stored_files(app);
        std::future::ready((now == want).then_some(()))
    })
    .await;
}

async fn put(url: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let res = http_client().put(url).body(body).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.expect("a JSON answer"))
}

/// The error's code, after checking the status; its message is returned.
#[track_caller]
fn refused((status, body): (StatusCode, Value), want: StatusCode, code: &str) -> String {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// A server with these `[storage.blobs]` (and `[server]`) settings.
async fn app_with(config: &str) -> TestApp {
    let env = vec![(
        "HERALD_BOOTSTRAP_API_KEY".to_string(),
        ADMIN_KEY.to_string(),
    )];
    start_app(Some(config.to_string()), env).await
}

#[tokio::test]
async fn uploads_and_downloads_round_trip_through_signed_urls() {
    let app = spawn_app().await;
    let http = http_client();
    // 20 MiB: twenty times the API's body limit, and a multipart upload in the store.
    for (name, n) in [("output.log", 5), ("empty", 0), ("media/big.bin", 20 << 20)] {
        let bytes = data(n);
        let key = BlobKey::run_file(1, name).unwrap();
        let url = app.blobs.presign_upload(&key, None, None);
        assert!(
            url.starts_with(&format!("{}/storage/v1/runs/1/", app.base)),
            "{url}"
        );
        let stored = expect(put(&url, bytes.clone()).await, StatusCode::OK);
        assert_eq!(stored["size"], n);
        assert_eq!(stored["key"], key.as_str());
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5_of(&bytes));
        assert_eq!(stored["md5"], md5);
        assert_eq!(app.blobs.exists(&key).await.unwrap(), Some(n as u64));

        let down = app.blobs.presign_download(&key, None);
        let res = http.get(&down).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/octet-stream");
        assert_eq!(res.headers()["content-length"], n.to_string().as_str());
        let got = res.bytes().await.unwrap();
        assert!(got[..] == bytes[..], "{name}: the bytes differ");
        let head = http.head(&down).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()["content-length"], n.to_string().as_str());
    }
    // A content-addressed artifact file, its MD5 named by its key.
    let bytes = data(3000);
    let key = BlobKey::content(1, &md5_of(&bytes));
    let url = app.blobs.presign_upload(&key, Some(md5_of(&bytes)), None);
    expect(put(&url, bytes.clone()).await, StatusCode::OK);
    assert_eq!(app.blobs.exists(&key).await.unwrap(), Some(3000));
    let read = app.blobs.read(&key, 1 << 20).await.unwrap().unwrap();
    assert!(read[..] == bytes[..]);
    // Uploading the same key again replaces it.
    let key = BlobKey::run_file(1, "output.log").unwrap();
    let url = app.blobs.presign_upload(&key, None, None);
    expect(put(&url, b"second".to_vec()).await, StatusCode::OK);
    let again = app.blobs.read(&key, 100).await.unwrap().unwrap();
    assert_eq!(&again[..], b"second");
    let hex = hex::encode(md5_of(&bytes));
    settles_to(
        &app,
        &[
            &format!("md5/1/{}/{hex}", &hex[..2]),
            "runs/1/empty",
            "runs/1/media/big.bin",
            "runs/1/output.log",
        ],
    )
    .await;
}

#[tokio::test]
async fn urls_that_are_unsigned_wrong_or_expired_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let http = http_client();
    let key = BlobKey::run_file(2, "f.txt").unwrap();
    let up = app.blobs.presign_upload(&key, None, None);
    let (path, query) = up.split_once('?').unwrap();

    let msg = refused(
        put(path, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "unsigned",
    );
    assert!(msg.contains("not signed"), "{msg}");
    // Another signature, time or key than the one signed.
    let sig = query.rsplit_once("sig=").unwrap().1;
    let forged = up.replace(sig, &"A".repeat(sig.len()));
    let msg = refused(
        put(&forged, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "bad_signature",
    );
    assert!(msg.contains("does not match"), "{msg}");
    let expires = query.split('&').next().unwrap();
    let later = up.replace(expires, "expires=99999999999");
    refused(
        put(&later, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "bad_signature",
    );
    let other_key = up.replace("/f.txt?", "/g.txt?");
    refused(
        put(&other_key, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "bad_signature",
    );
    let other_run = up.replace("/runs/2/", "/runs/3/");
    refused(
        put(&other_run, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "bad_signature",
    );
    // A download URL does not upload, nor an upload URL download.
    let down = app.blobs.presign_download(&key, None);
    refused(
        put(&down, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "bad_signature",
    );
    let res = http.get(&up).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Expired, but genuine: said so.
    let past = chrono::Utc::now().timestamp() - 1;
    let expired = app.blobs.signed_url(Access::Upload, &key, None, past);
    let msg = refused(
        put(&expired, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "url_expired",
    );
    assert!(msg.contains("expired"), "{msg}");
    let expired = app.blobs.signed_url(Access::Download, &key, None, past);
    let res = http.get(&expired).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A URL signed by another server (another master key) does not verify here.
    let other = spawn_app().await;
    let theirs = other.blobs.presign_upload(&key, None, None);
    let theirs = theirs.replace(&other.base, &app.base);
    refused(
        put(&theirs, b"x".to_vec()).await,
        StatusCode::FORBIDDEN,
        "bad_signature",
    );

    assert_eq!(app.blobs.exists(&key).await.unwrap(), None);
    assert_eq!(stored_files(&app), Vec::<String>::new());
    // The same URL, untouched, works.
    expect(put(&up, b"x".to_vec()).await, StatusCode::OK);
}

#[tokio::test]
async fn bytes_whose_md5_is_not_the_one_signed_are_refused() {
    let app = spawn_app().await;
    let bytes = data(2 << 20);
    let wrong = md5_of(b"other bytes");
    // A run file whose URL names an MD5, and a content key.
    let key = BlobKey::run_file(4, "model.pt").unwrap();
    let url = app.blobs.presign_upload(&key, Some(wrong), None);
    let msg = refused(
        put(&url, bytes.clone()).await,
        StatusCode::BAD_REQUEST,
        "md5_mismatch",
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(wrong);
    assert!(msg.contains(&b64), "the expected MD5 is named: {msg}");
    let content = BlobKey::content(1, &wrong);
    let url = app.blobs.presign_upload(&content, None, None);
    refused(
        put(&url, bytes.clone()).await,
        StatusCode::BAD_REQUEST,
        "md5_mismatch",
    );
    settles_to(&app, &[]).await;
    // The right bytes under the same URL are taken.
    let url = app.blobs.presign_upload(&key, Some(md5_of(&bytes)), None);
    expect(put(&url, bytes).await, StatusCode::OK);
}

/// Sends `request` on a new connection and returns the status and body of the answer.
async fn raw(base: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

#[tokio::test]
async fn keys_that_leave_their_prefix_are_refused() {
    let app = spawn_app().await;
    // Nothing signs such a key...
    for name in ["../x", "a/../../x", "/etc/passwd", "a\0b", "a\\..\\b", "."] {
        assert!(BlobKey::run_file(1, name).is_err(), "{name:?}");
    }
    // ...and the server refuses them as sent, however spelled, signed or not.
    let key = BlobKey::run_file(1, "x").unwrap();
    let up = app.blobs.presign_upload(&key, None, None);
    let query = up.split_once('?').unwrap().1;
    for path in [
        "runs/1/../../../etc/passwd",
        "runs/1/%2e%2e/%2e%2e/x",
        "runs/1/..%2f..%2fx",
        "runs/1/a%00b",
        "runs/1//x",
        "runs/1/a%5c..%5cb",
        "../runs/1/x",
        "%2Fetc%2Fpasswd",
        "md5/../../herald.db",
    ] {
        let request = format!(
            "PUT /storage/v1/{path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil"
        );
        let (status, text) = raw(&app.base, &request).await;
        assert!(
            status == 400 || status == 403,
            "{path}: answered {status}: {text}"
        );
        let get = format!(
            "GET /storage/v1/{path}?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw(&app.base, &get).await;
        assert!(
            status == 400 || status == 403,
            "GET {path}: {status}: {text}"
        );
    }
    assert_eq!(stored_files(&app), Vec::<String>::new());
    assert!(
        app.data_dir.join("herald.db").exists() || std::env::var("HERALD_TEST_BACKEND").is_ok()
    );
}

#[tokio::test]
async fn a_download_of_nothing_is_a_404() {
    let app = spawn_app().await;
    let key = BlobKey::content(1, &[9; 16]);
    let url = app.blobs.presign_download(&key, None);
    let res = http_client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let head = http_client().head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn files_over_the_size_limits_are_refused_with_the_limit_named() {
    let app =
        app_with("[storage.blobs]\nmax_file_size = \"1MiB\"\nmax_total_size = \"2.5MiB\"\n").await;
    let key = |n: &str| BlobKey::run_file(5, n).unwrap();
    // Declared over the limit: refused before the body is read.
    let url = app.blobs.presign_upload(&key("big"), None, None);
    let msg = refused(
        put(&url, data((1 << 20) + 1)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(msg.contains("1048576 bytes"), "{msg}");
    // Not declared (chunked): refused once the bytes pass it.
    let (head, _) = url.split_once("/storage").unwrap();
    let path = &url[head.len()..];
    let chunk = data(256 * 1024);
    let mut request = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..5 {
        request.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend(&chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    let mut s = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = s.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("1048576 bytes"), "{answer}");
    // Exactly the limit is fine; the total limit then stops the third such file.
    for name in ["a", "b"] {
        let url = app.blobs.presign_upload(&key(name), None, None);
        expect(put(&url, data(1 << 20)).await, StatusCode::OK);
    }
    let url = app.blobs.presign_upload(&key("c"), None, None);
    let msg = refused(
        put(&url, data(1 << 20)).await,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    assert!(msg.contains("2621440 bytes"), "{msg}");
    settles_to(&app, &["runs/5/a", "runs/5/b"]).await;
}

#[tokio::test]
async fn an_upload_cut_off_or_stalled_half_way_leaves_nothing() {
    let app = app_with("[server]\nbody_timeout = \"1s\"\n").await;
    let key = BlobKey::run_file(6, "checkpoint.bin").unwrap();
    let url = app.blobs.presign_upload(&key, None, None);
    let path = &url[app.base.len()..];
    let connect = || TcpStream::connect(app.base.trim_start_matches("http://"));
    // 12 MiB of a declared 20 MiB (past the first part of a multipart upload), then the
    // client goes away.
    let mut s = connect().await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        20 << 20
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&data(12 << 20)).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    settles_to(&app, &[]).await;
    assert_eq!(app.blobs.exists(&key).await.unwrap(), None);

    // A client that stops sending: 408 after the body timeout, counted from its last bytes.
    let mut s = connect().await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..3 {
        s.write_all(&data(64 * 1024)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("the server answers a stalled upload")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("no part of the upload arrived"), "{answer}");
    settles_to(&app, &[]).await;

    // The store still takes a whole upload.
    expect(put(&url, data(1000)).await, StatusCode::OK);
}
