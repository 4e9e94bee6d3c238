//! A fake Slack on 127.0.0.1:0, built with axum: incoming webhooks at `/services/{T}/{B}/{X}`
//! and the Web API's `/api/chat.postMessage`. It records every request with the time it
//! arrived, checks each one's shape the way Slack would (JSON content type, bot token and
//! channel for `chat.postMessage`, a plain-text `text` fallback, Block Kit types and limits),
//! and answers as each test scripts it: success, 429 with `Retry-After`, `{"ok":false,
//! "error":…}`, or a plain-text error status such as 404 `no_service`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::eventually;

/// Block types a herald message may use.
pub const BLOCK_TYPES: &[&str] = &["header", "section", "context", "actions", "divider"];
pub const MAX_HEADER: usize = 150;
pub const MAX_SECTION: usize = 3000;
pub const MAX_FIELD: usize = 2000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_BLOCKS: usize = 50;
pub const MAX_BUTTON: usize = 75;

/// The path of the incoming webhook most tests use.
pub const HOOK_PATH: &str = "/services/T/B/X";

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Success: `ok` for a webhook; `{"ok":true,"channel":…,"ts":…}` for the Web API.
    Ok,
    /// HTTP 429 with `Retry-After: secs`: `rate_limited` (webhook) or
    /// `{"ok":false,"error":"ratelimited"}` (Web API).
    RateLimited(u64),
    /// The Web API's refusal: HTTP 200 with `{"ok":false,"error":code}`.
    ApiError(&'static str),
    /// This status with this plain-text body (incoming webhooks' errors: 404 `no_service`).
    Plain(u16, &'static str),
}

/// Which endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Webhook,
    PostMessage,
}

/// One request the fake got.
#[derive(Debug, Clone)]
pub struct SlackRequest {
    pub at: Instant,
    pub endpoint: Endpoint,
    /// The webhook's path, or the channel a `chat.postMessage` names.
    pub key: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub raw: String,
    /// The body, parsed (`Null` when it is not JSON).
    pub body: Value,
    /// What was wrong with the request; empty when Slack would have taken it.
    pub problems: Vec<String>,
    /// The status and body the fake answered.
    pub status: u16,
    pub answer: String,
}

impl SlackRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The types of the top-level blocks followed by those of the attachments' blocks.
    pub fn block_types(&self) -> Vec<String> {
        all_blocks(&self.body)
            .iter()
            .map(|b| b["type"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
}

#[derive(Default)]
struct Inner {
    scripts: Mutex<HashMap<String, Script>>,
    /// Bot token → the channel id it may post to.
    bots: Mutex<HashMap<String, String>>,
    received: Mutex<Vec<SlackRequest>>,
    ts: AtomicU64,
}

/// The fake Slack server. Dropping it stops it.
pub struct FakeSlack {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let addr = listener.local_addr().expect("address");
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/services/{t}/{b}/{x}", post(webhook))
            .route("/api/chat.postMessage", post(post_message))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake Slack serves");
        });
        FakeSlack { addr, inner, task }
    }

    /// The base URL, for `HERALD_SLACK_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of an incoming webhook at `path` (`/services/T/B/X`).
    pub fn hook_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Lets `token` post to `channel_id` with `chat.postMessage`.
    pub fn add_bot(&self, token: &str, channel_id: &str) {
        self.inner
            .bots
            .lock()
            .unwrap()
            .insert(token.to_string(), channel_id.to_string());
    }

    /// Every later request for `key` (a webhook path or a channel id) gets `reply`, after
    /// any queued replies.
    pub fn answer(&self, key: &str, reply: Reply) {
        self.inner
            .scripts
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .default = Some(reply);
    }

    /// The next requests for `key` get these replies, one each, in order.
    pub fn queue(&self, key: &str, replies: Vec<Reply>) {
        self.inner
            .scripts
            .lock()
            .unwrap()
            .entry(key.to_string())
            .or_default()
            .queue
            .extend(replies);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<SlackRequest> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The requests for `key` so far, oldest first.
    pub fn received_for(&self, key: &str) -> Vec<SlackRequest> {
        self.received()
            .into_iter()
            .filter(|r| r.key == key)
            .collect()
    }

    /// Waits until `key` has had at least `n` requests; returns them.
    pub async fn wait_for(&self, key: &str, n: usize, timeout: Duration) -> Vec<SlackRequest> {
        eventually(
            &format!("{n} Slack requests for {key}"),
            timeout,
            || async move {
                let got = self.received_for(key);
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }

    /// Fails the test if any request so far was malformed.
    #[track_caller]
    pub fn assert_all_valid(&self) {
        for r in self.received() {
            assert!(
                r.problems.is_empty(),
                "Slack would refuse the request for {}: {:?}\nbody: {}",
                r.key,
                r.problems,
                r.raw
            );
        }
    }
}

fn next_ts(inner: &Inner) -> String {
    let n = inner.ts.fetch_add(1, Ordering::SeqCst) + 1;
    format!("1700000000.{n:06}")
}

fn next_reply(inner: &Inner, key: &str) -> Reply {
    let mut scripts = inner.scripts.lock().unwrap();
    let s = scripts.entry(key.to_string()).or_default();
    s.queue
        .pop_front()
        .or_else(|| s.default.clone())
        .unwrap_or(Reply::Ok)
}

struct Parsed {
    at: Instant,
    path: String,
    headers: Vec<(String, String)>,
    raw: String,
    body: Value,
    problems: Vec<String>,
}

async fn parse(req: Request) -> Parsed {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 4 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let mut problems = Vec::new();
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        problems.push(format!(
            "Content-Type is {content_type:?}, not application/json"
        ));
    }
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => {
            problems.extend(check_message(&v));
            v
        }
        Err(e) => {
            problems.push(format!("the body is not JSON: {e}"));
            Value::Null
        }
    };
    Parsed {
        at,
        path: parts.uri.path().to_string(),
        headers,
        raw,
        body,
        problems,
    }
}

async fn webhook(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let mut p = parse(req).await;
    if p.body.get("channel").is_some() {
        problems_push(
            &mut p,
            "an app's incoming webhook cannot choose a channel, yet the body names one",
        );
    }
    let key = p.path.clone();
    let (status, answer, retry_after) = if !p.problems.is_empty() {
        (400, "invalid_blocks".to_string(), None)
    } else {
        match next_reply(&inner, &key) {
            Reply::Ok => (200, "ok".to_string(), None),
            Reply::RateLimited(s) => (429, "rate_limited".to_string(), Some(s)),
            Reply::ApiError(code) => (400, code.to_string(), None),
            Reply::Plain(s, body) => (s, body.to_string(), None),
        }
    };
    respond(
        &inner,
        p,
        Endpoint::Webhook,
        key,
        status,
        answer,
        retry_after,
    )
}

async fn post_message(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let mut p = parse(req).await;
    let channel = p.body["channel"].as_str().unwrap_or("").to_string();
    let auth = p
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    let mut auth_error = None;
    match auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
        Some(token) if token.starts_with("xoxb-") => {
            let bound = inner.bots.lock().unwrap().get(token).cloned();
            match bound {
                None => {
                    problems_push(&mut p, "the bot token is not one the fake knows");
                    auth_error = Some("invalid_auth");
                }
                Some(c) if c != channel => {
                    let why = format!("channel {channel:?} is not the bot's channel {c:?}");
                    problems_push(&mut p, &why);
                    auth_error = Some("channel_not_found");
                }
                Some(_) => {}
            }
        }
        _ => {
            let why = format!("Authorization is {auth:?}, not Bearer xoxb-…");
            problems_push(&mut p, &why);
            auth_error = Some("not_authed");
        }
    }
    if channel.is_empty() {
        problems_push(&mut p, "chat.postMessage without a channel");
    }
    let ok = |inner: &Inner| json!({ "ok": true, "channel": channel, "ts": next_ts(inner) });
    let (status, answer, retry_after) = if let Some(code) = auth_error {
        (200, json!({ "ok": false, "error": code }).to_string(), None)
    } else if !p.problems.is_empty() {
        (
            200,
            json!({ "ok": false, "error": "invalid_blocks" }).to_string(),
            None,
        )
    } else {
        match next_reply(&inner, &channel) {
            Reply::Ok => (200, ok(&inner).to_string(), None),
            Reply::RateLimited(s) => (
                429,
                json!({ "ok": false, "error": "ratelimited" }).to_string(),
                Some(s),
            ),
            Reply::ApiError(code) => (200, json!({ "ok": false, "error": code }).to_string(), None),
            Reply::Plain(s, body) => (s, body.to_string(), None),
        }
    };
    respond(
        &inner,
        p,
        Endpoint::PostMessage,
        channel,
        status,
        answer,
        retry_after,
    )
}

fn problems_push(p: &mut Parsed, why: &str) {
    p.problems.push(why.to_string());
}

fn respond(
    inner: &Inner,
    p: Parsed,
    endpoint: Endpoint,
    key: String,
    status: u16,
    answer: String,
    retry_after: Option<u64>,
) -> Response {
    inner.received.lock().unwrap().push(SlackRequest {
        at: p.at,
        endpoint,
        key,
        headers: p.headers,
        raw: p.raw,
        body: p.body,
        problems: p.problems,
        status,
        answer: answer.clone(),
    });
    let code = StatusCode::from_u16(status).expect("status code");
    let content_type = if answer.starts_with('{') {
        "application/json; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut res = (code, [("content-type", content_type)], answer).into_response();
    if let Some(s) = retry_after {
        res.headers_mut()
            .insert("retry-after", s.to_string().parse().expect("header value"));
    }
    res
}

/// The top-level blocks followed by the attachments' blocks.
pub fn all_blocks(msg: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = msg["blocks"].as_array().cloned().unwrap_or_default();
    for a in msg["attachments"].as_array().into_iter().flatten() {
        out.extend(a["blocks"].as_array().cloned().unwrap_or_default());
    }
    out
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// A text object: `{"type": "plain_text"|"mrkdwn", "text": non-empty ≤ max}`.
fn check_text(what: &str, t: &Value, max: usize, plain_only: bool, out: &mut Vec<String>) {
    let ty = t["type"].as_str().unwrap_or("");
    let types: &[&str] = if plain_only {
        &["plain_text"]
    } else {
        &["plain_text", "mrkdwn"]
    };
    if !types.contains(&ty) {
        out.push(format!("{what}: text type {ty:?} is not one of {types:?}"));
    }
    match t["text"].as_str() {
        None => out.push(format!("{what}: no text")),
        Some(s) if s.trim().is_empty() => out.push(format!("{what}: empty text")),
        Some(_) if chars(&t["text"]) > max => out.push(format!(
            "{what}: text of {} chars is over {max}",
            chars(&t["text"])
        )),
        Some(_) => {}
    }
}

fn check_block(i: usize, b: &Value, out: &mut Vec<String>) {
    let ty = b["type"].as_str().unwrap_or("");
    let what = format!("block {i} ({ty})");
    match ty {
        "header" => check_text(&what, &b["text"], MAX_HEADER, true, out),
        "section" => {
            let text = b.get("text");
            let fields = b.get("fields");
            if text.is_none() && fields.is_none() {
                out.push(format!("{what}: neither text nor fields"));
            }
            if let Some(t) = text {
                check_text(&what, t, MAX_SECTION, false, out);
            }
            if let Some(f) = fields {
                let f = f.as_array().cloned().unwrap_or_default();
                if f.is_empty() || f.len() > MAX_FIELDS {
                    out.push(format!("{what}: {} fields", f.len()));
                }
                for (j, t) in f.iter().enumerate() {
                    check_text(&format!("{what} field {j}"), t, MAX_FIELD, false, out);
                }
            }
        }
        "context" => {
            let els = b["elements"].as_array().cloned().unwrap_or_default();
            if els.is_empty() || els.len() > 10 {
                out.push(format!("{what}: {} elements", els.len()));
            }
            for (j, e) in els.iter().enumerate() {
                check_text(&format!("{what} element {j}"), e, MAX_SECTION, false, out);
            }
        }
        "actions" => {
            let els = b["elements"].as_array().cloned().unwrap_or_default();
            if els.is_empty() || els.len() > 25 {
                out.push(format!("{what}: {} elements", els.len()));
            }
            for (j, e) in els.iter().enumerate() {
                if e["type"] != "button" {
                    out.push(format!("{what} element {j}: not a button"));
                    continue;
                }
                check_text(
                    &format!("{what} button {j}"),
                    &e["text"],
                    MAX_BUTTON,
                    true,
                    out,
                );
                if let Some(url) = e.get("url") {
                    let u = url.as_str().unwrap_or("");
                    if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 3000 {
                        out.push(format!("{what} button {j}: bad url {u:?}"));
                    }
                }
            }
        }
        "divider" => {}
        other => out.push(format!(
            "block {i}: type {other:?} is not one of {BLOCK_TYPES:?}"
        )),
    }
    if let Some(id) = b.get("block_id") {
        if chars(id) > 255 {
            out.push(format!("{what}: block_id over 255 chars"));
        }
    }
}

/// What Slack would refuse in a message body (empty when it would take it): a plain-text
/// `text` fallback, valid Block Kit blocks (header ≤ 150, section ≤ 3,000, fields ≤ 10 of
/// ≤ 2,000), attachments with a colour, at most 50 blocks in all.
pub fn check_message(msg: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if !msg.is_object() {
        out.push("the body is not a JSON object".into());
        return out;
    }
    match msg["text"].as_str() {
        Some(t) if !t.trim().is_empty() => {}
        _ => out.push("no plain-text `text` fallback".into()),
    }
    let mut blocks = Vec::new();
    if let Some(b) = msg.get("blocks") {
        match b.as_array() {
            Some(b) => blocks.extend(b.iter().cloned()),
            None => out.push("`blocks` is not an array".into()),
        }
    }
    if let Some(atts) = msg.get("attachments") {
        match atts.as_array() {
            Some(atts) => {
                for (i, a) in atts.iter().enumerate() {
                    let color = a["color"].as_str().unwrap_or("");
                    let hex = color.len() == 7
                        && color.starts_with('#')
                        && color[1..].chars().all(|c| c.is_ascii_hexdigit());
                    if !hex {
                        out.push(format!("attachment {i}: colour {color:?} is not #rrggbb"));
                    }
                    match a["blocks"].as_array() {
                        Some(b) => blocks.extend(b.iter().cloned()),
                        None => out.push(format!("attachment {i}: no blocks")),
                    }
                }
            }
            None => out.push("`attachments` is not an array".into()),
        }
    }
    if blocks.len() > MAX_BLOCKS {
        out.push(format!("{} blocks, over {MAX_BLOCKS}", blocks.len()));
    }
    for (i, b) in blocks.iter().enumerate() {
        check_block(i, b, &mut out);
    }
    out
}

#[test]
fn the_checker_refuses_what_slack_refuses() {
    let good = json!({
        "text": "fallback",
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": "h" } },
            { "type": "divider" }
        ],
        "attachments": [{ "color": "#2eb886", "blocks": [
            { "type": "section", "fields": [{ "type": "mrkdwn", "text": "*a*\nb" }] },
            { "type": "context", "elements": [{ "type": "mrkdwn", "text": "c" }] },
            { "type": "actions", "elements": [{ "type": "button",
              "text": { "type": "plain_text", "text": "View" }, "url": "https://x.example/" }] }
        ] }]
    });
    assert_eq!(check_message(&good), Vec::<String>::new());
    let mut bad = good.clone();
    bad["blocks"][0]["text"]["text"] = json!("h".repeat(151));
    assert!(check_message(&bad)[0].contains("over 150"));
    let mut bad = good.clone();
    bad["blocks"][1]["type"] = json!("image");
    assert!(check_message(&bad)[0].contains("\"image\""));
    let mut bad = good.clone();
    bad["blocks"][0]["text"]["type"] = json!("mrkdwn");
    assert!(!check_message(&bad).is_empty(), "headers are plain_text");
    let mut bad = good.clone();
    bad["attachments"][0]["blocks"][0]["fields"][0]["text"] = json!("x".repeat(2001));
    assert!(!check_message(&bad).is_empty());
    let mut bad = good.clone();
    bad["text"] = json!("");
    assert!(check_message(&bad)[0].contains("fallback"));
    let mut bad = good.clone();
    bad["blocks"] = json!(vec![json!({ "type": "divider" }); 49]);
    assert!(check_message(&bad)[0].contains("52 blocks"));
    let mut bad = good;
    bad["blocks"][0] =
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": "x".repeat(3001) } });
    assert!(!check_message(&bad).is_empty());
}
