//! Clients that hold connections without finishing their requests: half-open connections are
//! closed after the header timeout, a flood of them cannot lock out clients being served, and a
//! body that is declared too large or never arrives is answered at once or timed out.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A server with these `[server]` settings (and the bootstrap key only).
async fn app_with(server: &str) -> TestApp {
    let env = vec![(
        "HERALD_BOOTSTRAP_API_KEY".to_string(),
        ADMIN_KEY.to_string(),
    )];
    start_app(Some(format!("[server]\n{server}\n")), env).await
}

/// Opens a connection and sends the start of a request whose headers never end.
async fn half_open(base: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.expect("connecting");
    s.write_all(b"GET /api/v1/viewer HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writing");
    s
}

/// Reads until the server closes the connection (or `limit` passes), returning what it sent.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

/// Whether the server has closed `s` already (a read returns at once with nothing, or fails).
async fn is_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A client that opens a new connection for every request.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed_after_the_header_timeout() {
    let app = app_with("header_timeout = \"1s\"").await;
    let mut s = half_open(&app.base).await;
    let answer = read_until_closed(&mut s, Duration::from_secs(15))
        .await
        .expect("the server must close the connection after its header timeout");
    // hyper answers a header timeout by closing, with at most a 408.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A client that finishes its request in time is served as usual.
    expect(app.admin.get("/api/v1/viewer").await, StatusCode::OK);
}

#[tokio::test]
async fn a_flood_of_half_open_connections_cannot_lock_out_clients_being_served() {
    // A long header timeout: here only the connection limit can make room.
    let app = app_with("header_timeout = \"60s\"\nmax_connections = 50").await;
    // A client that was served before the flood keeps its connection.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /api/v1/viewer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n"
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // Four times the limit in half-open connections.
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(half_open(&app.base).await);
    }
    // New clients are still answered, on new connections, anonymous and authenticated.
    let http = fresh_connections();
    for _ in 0..20 {
        let health = http
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .expect("healthz is answered during the flood");
        assert_eq!(health.status(), StatusCode::OK);
        let viewer = http
            .get(format!("{}/api/v1/viewer", app.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("an authenticated call is answered during the flood");
        assert_eq!(viewer.status(), StatusCode::OK);
    }
    // The flood pushed out its own oldest connections, not the client being served.
    let mut closed = 0;
    for s in flood.iter_mut().take(100) {
        if is_closed(s).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 90,
        "only {closed} of the 100 oldest half-open connections were closed"
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the kept connection was closed"
    );
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_refused_before_it_arrives() {
    let app = app_with("body_timeout = \"60s\"").await;
    let addr = app.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/entities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{{\"name\":1"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test]
async fn a_body_that_never_arrives_whole_times_out() {
    let app = app_with("body_timeout = \"1s\"").await;
    let addr = app.base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/entities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Trickle a byte now and then: each arrives, the whole body never does.
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if s.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    let answer = read_until_closed(&mut s, Duration::from_secs(15))
        .await
        .expect("the server answers and closes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // Nothing was created: the admin's own entity is the only one.
    let entities = expect(app.admin.get("/api/v1/entities").await, StatusCode::OK);
    assert_eq!(entities.as_array().map(Vec::len), Some(1), "{entities}");
}
