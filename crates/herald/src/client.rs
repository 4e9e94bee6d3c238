//! A small client for herald's REST API, used by the CLI and the benchmarks.

use reqwest::Method;
use serde_json::Value;

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

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

pub use herald_domain::names::url_segment as seg;

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

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::DELETE, path, None).await
    }

    /// Sends one request; a 2xx answer's JSON (or null for an empty body) is returned.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                server: self.base.clone(),
                source,
            })?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable {
                server: self.base.clone(),
                source,
            })?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                ClientError::Protocol(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ))
            })?
        };
        if status.is_success() {
            return Ok(json);
        }
        let err = &json["error"];
        Err(ClientError::Api {
            status: status.as_u16(),
            code: err["code"].as_str().unwrap_or("unknown").to_string(),
            message: err["message"].as_str().unwrap_or("no message").to_string(),
        })
    }
}
