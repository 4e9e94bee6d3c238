//! `herald run`: start a run, log its history, finish it, or ask it to stop.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Subcommand;
use herald_api::responses::LoggedOut;
use herald_domain::run::Run;
use serde_json::{json, Value};

use super::remote::{cell, json_arg, split_path, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum RunCmd {
    /// Start a run in ENTITY/PROJECT.
    Create {
        /// ENTITY/PROJECT.
        path: String,
        /// Run id (8 random characters when absent).
        #[arg(long)]
        id: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Config as a JSON object.
        #[arg(long)]
        config: Option<String>,
    },
    /// Show a run: ENTITY/PROJECT/RUN.
    Get {
        /// ENTITY/PROJECT/RUN.
        path: String,
    },
    /// Log history to ENTITY/PROJECT/RUN: `--step 3 loss=0.4 acc=0.9`, or rows from a JSON file.
    Log {
        /// ENTITY/PROJECT/RUN.
        path: String,
        /// Step of the row given as NAME=VALUE pairs.
        #[arg(long)]
        step: Option<i64>,
        /// NAME=VALUE pairs.
        values: Vec<String>,
        /// A JSON file: an array of {"step": N, "values": {...}} rows, or one such row per line.
        #[arg(long, conflicts_with_all = ["step", "values"])]
        file: Option<PathBuf>,
    },
    /// Finish a run (FINISHED by default; or FAILED, CRASHED, KILLED).
    Finish {
        /// ENTITY/PROJECT/RUN.
        path: String,
        /// FINISHED, FAILED, CRASHED (stored as FAILED) or KILLED.
        #[arg(long, default_value = "FINISHED")]
        state: String,
    },
    /// Mark a run FAILED (the same as `finish --state FAILED`).
    Fail {
        /// ENTITY/PROJECT/RUN.
        path: String,
    },
    /// Ask a running run to stop, as W&B's Stop button does: the `wandb` SDK running it
    /// interrupts the script within about half a minute, and the run ends KILLED.
    Stop {
        /// ENTITY/PROJECT/RUN.
        path: String,
    },
}

fn run_url(path: &str) -> anyhow::Result<String> {
    let p = split_path(path, 3, "ENTITY/PROJECT/RUN")?;
    Ok(format!(
        "/api/v1/entities/{}/projects/{}/runs/{}",
        seg(p[0]),
        seg(p[1]),
        seg(p[2])
    ))
}

pub(super) async fn run(r: &Remote, cmd: RunCmd) -> anyhow::Result<()> {
    match cmd {
        RunCmd::Create {
            path,
            id,
            name,
            tags,
            config,
        } => {
            let p = split_path(&path, 2, "ENTITY/PROJECT")?;
            let body = json!({"id": id, "display_name": name, "tags": tags, "config": json_arg("config", &config)?});
            let url = format!("/api/v1/entities/{}/projects/{}/runs", seg(p[0]), seg(p[1]));
            let out = r.client.post(&url, &body).await?;
            r.show(&out, |run: Run| {
                outln!(
                    "started run {}/{}/{} ({})",
                    p[0],
                    p[1],
                    run.id,
                    run.state.as_str()
                )
            })
        }
        RunCmd::Get { path } => {
            let out = r.client.get(&run_url(&path)?).await?;
            r.show(&out, |run: Run| {
                table(
                    &["RUN", "NAME", "STATE", "USER", "TAGS", "UPDATED"],
                    vec![vec![
                        cell(&run.id),
                        cell(&run.display_name),
                        cell(&run.state),
                        cell(&run.username),
                        cell(&run.tags),
                        cell(&run.updated_at),
                    ]],
                )
            })
        }
        RunCmd::Log {
            path,
            step,
            values,
            file,
        } => {
            let rows = match file {
                Some(f) => read_rows(&f)?,
                None => vec![row_from_pairs(step, &values)?],
            };
            let url = format!("{}/history", run_url(&path)?);
            let out = r.client.post(&url, &json!({"rows": rows})).await?;
            r.show(&out, |logged: LoggedOut| {
                outln!(
                    "logged {} rows ({} values) to {path}",
                    logged.rows,
                    logged.values
                )
            })
        }
        RunCmd::Finish { path, state } => finish(r, &path, &state).await,
        RunCmd::Fail { path } => finish(r, &path, "FAILED").await,
        RunCmd::Stop { path } => {
            let out = r
                .client
                .post(&format!("{}/stop", run_url(&path)?), &json!({}))
                .await?;
            r.show(&out, |_: Run| {
                outln!("asked run {path} to stop; it ends KILLED once its script has stopped")
            })
        }
    }
}

async fn finish(r: &Remote, path: &str, state: &str) -> anyhow::Result<()> {
    let out = r
        .client
        .patch(&run_url(path)?, &json!({"state": state}))
        .await?;
    r.show(&out, |run: Run| {
        outln!("run {path} is {}", run.state.as_str())
    })
}

/// The history row given as `--step N NAME=VALUE…`.
fn row_from_pairs(step: Option<i64>, values: &[String]) -> anyhow::Result<Value> {
    let step = step.context("give --step N with NAME=VALUE pairs, or --file")?;
    if values.is_empty() {
        bail!("give at least one NAME=VALUE pair");
    }
    let mut map = serde_json::Map::new();
    for v in values {
        let (k, x) = v
            .split_once('=')
            .with_context(|| format!("{v:?} is not NAME=VALUE"))?;
        let x: f64 = x
            .parse()
            .with_context(|| format!("{v:?}: {x:?} is not a number"))?;
        map.insert(k.to_string(), json!(x));
    }
    Ok(json!({"step": step, "values": map}))
}

/// History rows from a file: a JSON array, `{"rows": [...]}`, or one row per line.
fn read_rows(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return match v {
            Value::Array(rows) => Ok(rows),
            Value::Object(mut o) if o.contains_key("rows") => Ok(o
                .remove("rows")
                .and_then(|r| r.as_array().cloned())
                .unwrap_or_default()),
            row @ Value::Object(_) => Ok(vec![row]),
            _ => bail!(
                "{}: expected rows of {{\"step\": N, \"values\": {{...}}}}",
                path.display()
            ),
        };
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_make_one_row() {
        let row = row_from_pairs(Some(3), &["loss=0.5".into(), "acc=1".into()]).unwrap();
        assert_eq!(row, json!({"step": 3, "values": {"loss": 0.5, "acc": 1.0}}));
        assert!(row_from_pairs(None, &["loss=0.5".into()]).is_err());
        assert!(row_from_pairs(Some(0), &[]).is_err());
        assert!(row_from_pairs(Some(0), &["loss".into()]).is_err());
        assert!(row_from_pairs(Some(0), &["loss=high".into()]).is_err());
    }

    #[test]
    fn rows_files_in_each_shape() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            read_rows(&p)
        };
        let row = json!({"step": 0, "values": {"x": 1.0}});
        let text = row.to_string();
        let one = std::slice::from_ref(&row);
        assert_eq!(file("a", &format!("[{text}]")).unwrap(), one);
        assert_eq!(file("b", &format!("{{\"rows\": [{text}]}}")).unwrap(), one);
        assert_eq!(file("c", &text).unwrap(), one);
        assert_eq!(
            file("d", &format!("{text}\n\n{text}\n")).unwrap(),
            [row.clone(), row]
        );
        assert!(file("e", "7").is_err());
        assert!(file("f", "{}\nnot json").is_err());
    }
}
