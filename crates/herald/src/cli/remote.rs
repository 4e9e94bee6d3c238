//! What every client command shares: the client options (declared here once, global to every
//! subcommand), the client built from them, and how an answer is shown: with `--json` the
//! server's JSON as it sent it, otherwise a table or a sentence made from the answer read into
//! the server's own response type.

use anyhow::{bail, Context as _};
use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{Answer, Client};

#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// herald server URL.
    #[arg(
        long,
        global = true,
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// API key (printed by the server on first start and kept in <data-dir>/admin-api-key).
    #[arg(long, global = true, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The server a command talks to, and whether it prints JSON.
pub(crate) struct Remote {
    pub client: Client,
    pub json: bool,
}

impl Remote {
    pub fn new(opts: &ClientOpts) -> Self {
        Self {
            client: Client::new(&opts.server, opts.api_key.clone()),
            json: opts.json,
        }
    }

    /// Prints the answer as sent with `--json`; otherwise reads it as `T` for `human`.
    pub fn show<T: DeserializeOwned>(
        &self,
        answer: &Answer,
        human: impl FnOnce(T),
    ) -> anyhow::Result<()> {
        if self.json {
            self.print(answer);
        } else {
            human(answer.parse()?);
        }
        Ok(())
    }

    /// Prints the answer as sent with `--json`; otherwise `human`, a sentence that needs no
    /// field of the answer.
    pub fn said(&self, answer: &Answer, human: impl FnOnce()) -> anyhow::Result<()> {
        if self.json {
            self.print(answer);
        } else {
            human();
        }
        Ok(())
    }

    /// The answer's body as the server sent it.
    pub fn print(&self, answer: &Answer) {
        outln!("{}", answer.text());
    }
}

/// `automation enable|disable ID` and `integration enable|disable ID` (`what` says which).
pub(crate) async fn set_enabled(
    r: &Remote,
    what: &str,
    id: i64,
    enabled: bool,
) -> anyhow::Result<()> {
    let url = format!("/api/v1/{what}s/{id}");
    let out = r.client.patch(&url, &json!({ "enabled": enabled })).await?;
    r.said(&out, || {
        let state = if enabled { "enabled" } else { "disabled" };
        outln!("{what} {id} is {state}")
    })
}

/// A value as a table cell, written as the server writes it in JSON (times in RFC 3339,
/// enums in capitals), with `-` for null and lists joined by commas.
pub(crate) fn cell<T: Serialize + ?Sized>(v: &T) -> String {
    value_cell(&serde_json::to_value(v).unwrap_or(Value::Null))
}

fn value_cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub(crate) fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        outln!("{}", s.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

/// `A/B` or `A/B/C` split into `n` non-empty parts.
pub(crate) fn split_path<'a>(s: &'a str, n: usize, shape: &str) -> anyhow::Result<Vec<&'a str>> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() != n || parts.iter().any(|p| p.is_empty()) {
        bail!("{s:?} is not {shape}");
    }
    Ok(parts)
}

/// A flag holding JSON (`--metadata`, `--payload`, …), parsed.
pub(crate) fn json_arg(what: &str, s: &Option<String>) -> anyhow::Result<Option<Value>> {
    s.as_deref()
        .map(|s| serde_json::from_str(s).with_context(|| format!("--{what} is not valid JSON")))
        .transpose()
}

/// A JSON file given on the command line, parsed.
pub(crate) fn read_json_file(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn cells_read_as_the_json_did() {
        assert_eq!(cell(&None::<String>), "-");
        assert_eq!(cell(&vec!["a", "b"]), "a,b");
        assert_eq!(cell(&Vec::<String>::new()), "");
        assert_eq!(cell(&12.5f64), "12.5");
        assert_eq!(cell(&1.0f64), "1.0");
        assert_eq!(cell(&true), "true");
        assert_eq!(cell(&herald_domain::run::RunState::Failed), "FAILED");
        let t: DateTime<Utc> = "2026-12-06T21:35:30.120Z".parse().unwrap();
        assert_eq!(cell(&t), "2026-12-06T21:35:30.120Z");
    }

    #[test]
    fn paths_split_into_non_empty_parts() {
        assert_eq!(split_path("a/b", 2, "A/B").unwrap(), ["a", "b"]);
        assert!(split_path("a//b", 3, "A/B/C").is_err());
        assert!(split_path("a/b/c", 2, "A/B").is_err());
    }
}
