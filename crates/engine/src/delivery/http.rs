//! One HTTP POST to a destination, observed: status, the first 4 KiB of the answer, how long
//! it took, and what kind of failure it was. Redirects are not followed, the whole exchange
//! has a deadline, and a huge answer is cut off after 4 KiB, so memory stays bounded whatever
//! the destination does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::retry::parse_retry_after;
use super::ssrf::{
    check_literal_host, check_name_for_proxy, AllowList, Blocked, GuardedResolver, NameLookup,
    SystemLookup,
};

/// How much of a response body herald keeps.
pub const RESPONSE_SNIPPET: usize = 4096;

/// A request ready to send: the body bytes are exactly what gets signed.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(reqwest::header::HeaderName, String)>,
    pub body: Vec<u8>,
}

/// What one attempt saw.
#[derive(Debug, Clone)]
pub struct Observed {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub status: Option<u16>,
    /// `None` on a 2xx.
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    pub response: Option<String>,
    pub retry_after: Option<Duration>,
}

/// Kinds of failure, as recorded in attempt history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A non-2xx, non-3xx answer.
    HttpStatus,
    /// A 3xx: herald does not follow redirects.
    Redirect,
    Timeout,
    Connect,
    /// The destination reset or closed the connection mid-exchange.
    ConnectionReset,
    /// Slack refused the message (`ok: false`, or an error code from an incoming webhook).
    SlackError,
    /// The SSRF guard refused the destination.
    Blocked,
    InvalidUrl,
    /// The answer broke off while being read.
    Body,
    /// herald itself failed while delivering (a bug); retried.
    Internal,
    Other,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpStatus => "http_status",
            Self::Redirect => "redirect",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::ConnectionReset => "connection_reset",
            Self::SlackError => "slack_error",
            Self::Blocked => "blocked",
            Self::InvalidUrl => "invalid_url",
            Self::Body => "body",
            Self::Internal => "internal",
            Self::Other => "other",
        }
    }

    /// Failures that retrying cannot fix.
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::Blocked | Self::InvalidUrl)
    }
}

/// How deliveries reach destinations.
#[derive(Clone)]
pub struct Egress {
    /// Which otherwise-refused internal networks may be called.
    pub allow: AllowList,
    /// A forward proxy every delivery goes through, from herald's own configuration; `None`
    /// connects directly. The environment's proxy variables (`HTTP_PROXY`, …) are never used:
    /// a proxy resolves destination names itself, out of the guard's sight.
    pub proxy: Option<reqwest::Url>,
    pub lookup: Arc<dyn NameLookup>,
}

impl Egress {
    /// Direct connections through the system's resolver.
    pub fn direct(allow: AllowList) -> Self {
        Self {
            allow,
            proxy: None,
            lookup: Arc::new(SystemLookup),
        }
    }
}

/// The HTTP client for deliveries and integration tests.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow: AllowList,
    /// Set when deliveries go through a proxy: names are then checked before each request.
    proxy_lookup: Option<Arc<dyn NameLookup>>,
    /// Destination URLs already parsed and checked, by their text: parsing a URL (its host
    /// through IDNA) cost more than building and signing the rest of a request.
    parsed: Arc<parking_lot::Mutex<HashMap<String, Destination>>>,
}

/// A destination URL as parsed and checked, or why it cannot be sent to.
type Destination = Result<reqwest::Url, (ErrorClass, String)>;

/// Most URLs [`Sender`] keeps parsed; past that it starts over (there is one per integration,
/// and a Slack channel's messages all share one).
const PARSED_URLS: usize = 1024;

impl Sender {
    pub fn new(egress: &Egress, timeout: Duration) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .dns_resolver(Arc::new(GuardedResolver {
                allow: egress.allow.clone(),
                lookup: egress.lookup.clone(),
                trusted_host: egress
                    .proxy
                    .as_ref()
                    .and_then(|p| p.host_str())
                    .map(str::to_string),
            }))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")));
        builder = match &egress.proxy {
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy.clone()).expect("a proxy URL checked by the config"),
            ),
            None => builder.no_proxy(),
        };
        let client = builder
            .build()
            .expect("the delivery HTTP client builds with rustls");
        Self {
            client,
            allow: egress.allow.clone(),
            proxy_lookup: egress.proxy.as_ref().map(|_| egress.lookup.clone()),
            parsed: Default::default(),
        }
    }

    /// `url` parsed, with its scheme and (for an IP literal) its address checked; cached.
    /// Host names are checked again at every connection, by the resolver.
    fn destination(&self, url: &str) -> Destination {
        if let Some(d) = self.parsed.lock().get(url) {
            return d.clone();
        }
        let d = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => check_literal_host(&u, &self.allow)
                .map(|()| u)
                .map_err(|Blocked(why)| (ErrorClass::Blocked, why)),
            Ok(u) => Err((
                ErrorClass::InvalidUrl,
                format!("unsupported scheme {:?}", u.scheme()),
            )),
            Err(e) => Err((ErrorClass::InvalidUrl, format!("invalid URL: {e}"))),
        };
        let mut parsed = self.parsed.lock();
        if parsed.len() >= PARSED_URLS {
            parsed.clear();
        }
        parsed.insert(url.to_string(), d.clone());
        d
    }

    /// Sends `out`, which it takes so that the body and header values go out without a copy.
    pub async fn send(&self, out: Outgoing) -> Observed {
        let started_at = Utc::now();
        let t0 = Instant::now();
        let failed = |class: ErrorClass, msg: String| Observed {
            started_at,
            duration: t0.elapsed(),
            status: None,
            error_class: Some(class),
            error: Some(msg),
            response: None,
            retry_after: None,
        };
        let url = match self.destination(&out.url) {
            Ok(u) => u,
            Err((class, why)) => return failed(class, why),
        };
        if let Some(lookup) = &self.proxy_lookup {
            if let Err(Blocked(why)) = check_name_for_proxy(&url, &self.allow, &**lookup).await {
                return failed(ErrorClass::Blocked, why);
            }
        }
        let mut req = self.client.post(url).body(out.body);
        for (k, v) in out.headers {
            req = req.header(k, v);
        }
        let mut res = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let (class, msg) = classify(&e.without_url());
                return failed(class, msg);
            }
        };
        let status = res.status();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let location = res
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut snippet = Vec::with_capacity(256);
        let mut body_error = None;
        while snippet.len() < RESPONSE_SNIPPET {
            match res.chunk().await {
                Ok(Some(chunk)) => snippet
                    .extend_from_slice(&chunk[..chunk.len().min(RESPONSE_SNIPPET - snippet.len())]),
                Ok(None) => break,
                Err(e) => {
                    body_error = Some(classify(&e.without_url()));
                    break;
                }
            }
        }
        // Dropping `res` here closes the connection if the body was longer: nothing more is read.
        drop(res);
        let response = Some(String::from_utf8_lossy(&snippet).into_owned());
        let code = status.as_u16();
        let (error_class, error) = if status.is_success() {
            (None, None)
        } else if status.is_redirection() {
            (
                Some(ErrorClass::Redirect),
                Some(format!(
                    "HTTP {code}: redirects are not followed{}",
                    location
                        .map(|l| format!(" (to {})", without_secrets(&l)))
                        .unwrap_or_default()
                )),
            )
        } else {
            (Some(ErrorClass::HttpStatus), Some(format!("HTTP {code}")))
        };
        // A 2xx whose body broke off still counts as delivered; otherwise note the break.
        let (error_class, error) = match (error_class, body_error) {
            (Some(c), Some((_, msg))) => (Some(c), error.map(|e| format!("{e}; {msg}"))),
            (c, _) => (c, error),
        };
        Observed {
            started_at,
            duration: t0.elapsed(),
            status: Some(code),
            error_class,
            error,
            response,
            retry_after,
        }
    }
}

/// A URL for history and logs: scheme, host and path, without the credentials or query it
/// may carry.
fn without_secrets(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        // A relative location: its path only.
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// The class and text of a failed exchange. Callers pass the error without its URL: a Slack
/// incoming-webhook URL is a credential, and the text goes to execution history and API answers.
fn classify(e: &reqwest::Error) -> (ErrorClass, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<Blocked>() {
            return (ErrorClass::Blocked, b.0.clone());
        }
        source = s.source();
    }
    let msg = error_chain(e);
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
            if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) {
                return (ErrorClass::ConnectionReset, msg);
            }
        }
        source = s.source();
    }
    if e.is_timeout() {
        (ErrorClass::Timeout, format!("timed out: {msg}"))
    } else if e.is_connect() {
        (ErrorClass::Connect, msg)
    } else if e.is_body() || e.is_decode() {
        (ErrorClass::Body, msg)
    } else {
        (ErrorClass::Other, msg)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_lose_credentials_and_queries() {
        assert_eq!(
            without_secrets("https://user:pw@example.com/a/b?token=s3cret#x"),
            "https://example.com/a/b"
        );
        assert_eq!(without_secrets("/login?next=/x&sig=abc"), "/login");
    }

    #[tokio::test]
    async fn a_cached_destination_is_checked_as_when_first_parsed() {
        let sender = Sender::new(
            &Egress::direct(AllowList::parse("10.1.0.0/16").unwrap()),
            Duration::from_secs(1),
        );
        // Each twice: the second answer comes from the cache and must be the same.
        for _ in 0..2 {
            let allowed = sender.destination("http://10.1.2.3:8080/hook?a=1").unwrap();
            assert_eq!(allowed.as_str(), "http://10.1.2.3:8080/hook?a=1");
            let blocked = sender.destination("http://127.0.0.1:9/hook").unwrap_err();
            assert_eq!(blocked.0, ErrorClass::Blocked);
            assert!(blocked.1.contains("127.0.0.1"), "{}", blocked.1);
            let scheme = sender.destination("ftp://example.com/x").unwrap_err();
            assert_eq!(
                scheme,
                (
                    ErrorClass::InvalidUrl,
                    "unsupported scheme \"ftp\"".to_string()
                )
            );
            let invalid = sender.destination("not a url").unwrap_err();
            assert_eq!(invalid.0, ErrorClass::InvalidUrl);
        }
        assert_eq!(sender.parsed.lock().len(), 4);
        // The cache stays bounded: past its size it starts over.
        for i in 0..PARSED_URLS {
            let _ = sender.destination(&format!("https://example.com/{i}"));
        }
        assert!(sender.parsed.lock().len() <= PARSED_URLS);
        let blocked = sender.destination("http://127.0.0.1:9/hook").unwrap_err();
        assert_eq!(blocked.0, ErrorClass::Blocked);
    }
}
