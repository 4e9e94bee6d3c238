//! A small client for herald's REST API, used by the CLI and the benchmarks. A successful
//! answer is kept as the bytes the server sent ([`Answer`]): `--json` prints them as they are,
//! and everything else reads them into the server's own response types.

use herald_api::responses::ErrorBody;
use reqwest::Method;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize as _, Serialize};

/// An error answer from the server, or a failure to reach it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{message} (HTTP {status} {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    // The cause follows from the error chain (`{:#}`), not from this text.
    #[error("could not reach herald at {server}")]
    Unreachable {
        server: String,
        source: reqwest::Error,
    },
    #[error("unexpected answer from herald: {0}")]
    Protocol(String),
}

/// A 2xx answer's body, as sent.
#[derive(Debug, Clone)]
pub struct Answer {
    status: reqwest::StatusCode,
    body: bytes::Bytes,
}

impl Answer {
    /// The body read as `T`, the type the server wrote it from.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ClientError::Protocol(format!(
                "HTTP {}: {e}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            ))
        })
    }

    /// The body as text; `null` for an empty one (a 204), so it is always one JSON document.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        if self.body.is_empty() {
            "null".into()
        } else {
            String::from_utf8_lossy(&self.body)
        }
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

pub use herald_domain::names::url_segment as seg;

/// What no request carries: the body of a GET or DELETE.
const NO_BODY: Option<&()> = None;

impl Client {
    pub fn new(server: &str, key: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("a reqwest client with default TLS settings builds");
        Self {
            http,
            base: server.trim_end_matches('/').to_string(),
            key,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, NO_BODY).await
    }

    pub async fn post(&self, path: &str, body: &impl Serialize) -> Result<Answer, ClientError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &impl Serialize) -> Result<Answer, ClientError> {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &impl Serialize) -> Result<Answer, ClientError> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::DELETE, path, NO_BODY).await
    }

    /// Sends one request; a 2xx answer is returned as sent, any other as [`ClientError::Api`].
    /// A body that is not JSON is a [`ClientError::Protocol`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Answer, ClientError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let unreachable = |source| ClientError::Unreachable {
            server: self.base.clone(),
            source,
        };
        let res = req.send().await.map_err(unreachable)?;
        let status = res.status();
        let body = res.bytes().await.map_err(unreachable)?;
        // Whatever the status, a body that is not JSON did not come from herald.
        let not_json =
            || ClientError::Protocol(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
        if status.is_success() {
            if !body.is_empty() {
                serde_json::from_slice::<IgnoredAny>(&body).map_err(|_| not_json())?;
            }
            return Ok(Answer { status, body });
        }
        // Every error herald sends is an `ErrorBody`; any other JSON (or none) still reaches
        // the user with its status.
        let error = if body.is_empty() {
            None
        } else {
            let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| not_json())?;
            ErrorBody::deserialize(json).ok()
        };
        let (code, message) = match error {
            Some(ErrorBody { error }) => (error.code, error.message),
            None => ("unknown".into(), "no message".into()),
        };
        Err(ClientError::Api {
            status: status.as_u16(),
            code,
            message,
        })
    }
}
