//! [`Receiver`]: a real HTTP server on loopback that records every request and answers as each
//! test tells it to (a status, `Retry-After`, a redirect, a delay, a dropped connection, a
//! 100 MB body).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::eventually;

/// How the receiver answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with this body.
    Status(u16, &'static str),
    /// This status with a `Retry-After` header (seconds).
    RetryAfter(u16, u64),
    /// A redirect with this status to this path on the receiver.
    Redirect(u16, &'static str),
    /// Waits this long, then answers 200.
    Delay(Duration),
    /// Drops the connection without answering (TCP reset).
    Reset,
    /// 200 with a body of this many bytes, streamed.
    Huge(u64),
    /// This status, echoing the request's headers and body as text (as many test receivers do).
    Echo(u16),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// The `webhook-id` header, if any.
    pub webhook_id: Option<String>,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "delivery body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `webhook-id` header, which must be there.
    pub fn webhook_id(&self) -> String {
        self.header("webhook-id").expect("webhook-id").to_string()
    }
}

#[derive(Default)]
struct Route {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
}

#[derive(Default)]
struct Inner {
    routes: Mutex<HashMap<String, Route>>,
    received: Mutex<Vec<Received>>,
}

/// A real HTTP server on 127.0.0.1:0 that records every request. Paths answer 200 "ok"
/// unless told otherwise.
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let addr = listener.local_addr().expect("address");
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(
                ResettableListener(listener),
                app.into_make_service_with_connect_info::<Conn>(),
            )
            .await
            .expect("receiver serves");
        });
        Receiver {
            addr,
            inner,
            _task: task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Changes how `path` is answered (its route is made on first use).
    fn route(&self, path: &str, f: impl FnOnce(&mut Route)) {
        let mut routes = self.inner.routes.lock().unwrap();
        f(routes.entry(path.to_string()).or_default());
    }

    /// Every request to `path` gets `reply` (after any queued replies).
    pub fn answer(&self, path: &str, reply: Reply) {
        self.route(path, |r| r.default = Some(reply));
    }

    /// The next requests to `path` get these replies, one each, in order.
    pub fn queue(&self, path: &str, replies: Vec<Reply>) {
        self.route(path, |r| r.queue.extend(replies));
    }

    /// The next request to `path` is recorded at once but answered (200) only after `d`.
    pub fn delay_next(&self, path: &str, d: Duration) {
        self.queue(path, vec![Reply::Delay(d)]);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The requests to `path` so far.
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The JSON bodies received at `path`, oldest first.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.received_at(path).iter().map(Received::json).collect()
    }

    /// Waits until `path` has received at least `n` requests; returns them.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        eventually(&format!("{n} requests to {path}"), timeout, || async move {
            let got = self.received_at(path);
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect::<Vec<_>>();
    let webhook_id = headers
        .iter()
        .find(|(k, _)| k == "webhook-id")
        .map(|(_, v)| v.clone());
    let echo = format!(
        "{}\n\n{}",
        headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&body)
    );
    inner.received.lock().unwrap().push(Received {
        at: Instant::now(),
        method: parts.method.to_string(),
        path: path.clone(),
        headers,
        webhook_id,
        body,
    });
    let reply = {
        let mut routes = inner.routes.lock().unwrap();
        let route = routes.entry(path).or_default();
        route.queue.pop_front().or_else(|| route.default.clone())
    };
    let status = |c: u16| AxStatus::from_u16(c).expect("status code");
    match reply.unwrap_or(Reply::Status(200, "ok")) {
        Reply::Status(c, body) => (status(c), body).into_response(),
        Reply::RetryAfter(c, secs) => {
            (status(c), [("retry-after", secs.to_string())], "slow down").into_response()
        }
        Reply::Redirect(c, to) => {
            let mut r = (status(c), "moved").into_response();
            r.headers_mut()
                .insert("location", HeaderValue::from_static(to));
            r
        }
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            (AxStatus::OK, "late").into_response()
        }
        Reply::Reset => {
            conn.0.store(true, Ordering::SeqCst);
            (AxStatus::OK, "never sent").into_response()
        }
        Reply::Huge(n) => Response::new(Body::new(HugeBody { remaining: n })),
        Reply::Echo(c) => (status(c), echo).into_response(),
    }
}

static FILLER: [u8; 64 * 1024] = [b'x'; 64 * 1024];

/// A streamed body of `remaining` bytes that allocates nothing per chunk.
struct HugeBody {
    remaining: u64,
}

impl http_body::Body for HugeBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(FILLER.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
            &FILLER[..n],
        )))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// A listener whose connections a handler can reset: the connection's kill switch is its
/// connect info, and once set, the next write fails and the socket closes with a zero linger,
/// which sends a TCP RST instead of an answer.
struct ResettableListener(TcpListener);

struct ResettableIo {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Conn(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, ResettableListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        Conn(stream.io().killed.clone())
    }
}

impl Listener for ResettableListener {
    type Io = ResettableIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((s, a)) => {
                    let _ = s.set_nodelay(true);
                    return (
                        ResettableIo {
                            inner: s,
                            killed: Arc::new(AtomicBool::new(false)),
                        },
                        a,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl ResettableIo {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by test",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for ResettableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
