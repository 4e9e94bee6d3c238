//! `herald execution`: list an automation's or an entity's executions, show one with its
//! request and attempts, redeliver or cancel it.

use anyhow::bail;
use clap::Subcommand;
use herald_api::responses::ExecutionPage;
use herald_domain::automation::{Attempt, Execution};
use serde_json::{json, Value};

use super::remote::{cell, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum ExecutionCmd {
    /// List executions of an automation (--automation) or of an entity (--entity).
    List {
        /// The automation's id.
        #[arg(long, required_unless_present = "entity")]
        automation: Option<i64>,
        /// The team, user or organization (every automation of it).
        #[arg(long)]
        entity: Option<String>,
        /// PENDING, RUNNING, FINISHED, FAILED, SKIPPED or CANCELLED.
        #[arg(long)]
        status: Option<String>,
        /// Executions to show, newest first (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show execution ID: its request (URL, headers and body, secrets masked) and every attempt.
    Show {
        /// The execution's id.
        id: i64,
    },
    /// Deliver execution ID again (same webhook-id).
    Redeliver {
        /// The execution's id.
        id: i64,
    },
    /// Cancel execution ID: a waiting retry never happens (an attempt in flight may finish).
    Cancel {
        /// The execution's id.
        id: i64,
    },
}

fn print_table(executions: &[Execution]) {
    table(
        &[
            "ID",
            "AUTOMATION",
            "EVENT",
            "STATUS",
            "ATTEMPTS",
            "NEXT ATTEMPT",
            "REASON",
            "CREATED",
        ],
        executions
            .iter()
            .map(|x| {
                vec![
                    cell(&x.id),
                    cell(&x.automation_name),
                    cell(&x.event_type),
                    cell(&x.status),
                    cell(&x.attempt_count),
                    cell(&x.next_attempt_at),
                    cell(&x.reason),
                    cell(&x.created_at),
                ]
            })
            .collect(),
    )
}

fn print_attempts(attempts: &[Attempt]) {
    table(
        &[
            "#",
            "STARTED",
            "MS",
            "STATUS",
            "ERROR CLASS",
            "ERROR",
            "RESPONSE",
        ],
        attempts
            .iter()
            .map(|a| {
                vec![
                    cell(&a.number),
                    cell(&a.started_at),
                    cell(&a.duration_ms),
                    cell(&a.status_code),
                    cell(&a.error_class),
                    cell(&a.error),
                    cell(&a.response),
                ]
            })
            .collect(),
    )
}

pub(super) async fn execution(r: &Remote, cmd: ExecutionCmd) -> anyhow::Result<()> {
    match cmd {
        ExecutionCmd::List {
            automation,
            entity,
            status,
            limit,
        } => {
            let mut url = match (automation, &entity) {
                (Some(a), None) => format!("/api/v1/automations/{a}/executions?limit={limit}"),
                (a, Some(e)) => {
                    let mut u = format!("/api/v1/entities/{}/executions?limit={limit}", seg(e));
                    if let Some(a) = a {
                        u.push_str(&format!("&automation={a}"));
                    }
                    u
                }
                (None, None) => bail!("give --automation ID or --entity ENTITY"),
            };
            if let Some(s) = &status {
                url.push_str(&format!("&status={}", seg(s)));
            }
            let out = r.client.get(&url).await?;
            r.show(&out, |page: ExecutionPage| print_table(&page.executions))
        }
        ExecutionCmd::Show { id } => {
            let out = r.client.get(&format!("/api/v1/executions/{id}")).await?;
            r.show(&out, |x: Execution| {
                print_table(std::slice::from_ref(&x));
                print_request(&x.request);
                print_attempts(x.attempts.as_deref().unwrap_or_default());
            })
        }
        ExecutionCmd::Redeliver { id } => {
            let url = format!("/api/v1/executions/{id}/redeliver");
            let out = r.client.post(&url, &json!({})).await?;
            r.said(&out, || outln!("execution {id} will be delivered again"))
        }
        ExecutionCmd::Cancel { id } => {
            let url = format!("/api/v1/executions/{id}/cancel");
            let out = r.client.post(&url, &json!({})).await?;
            r.show(&out, |x: Execution| {
                outln!("execution {id} is {}", x.status.as_str())
            })
        }
    }
}

/// An execution's request as a person reads it: the line, the headers, the body. The request
/// is free-form JSON (its shape depends on the action), so it is read as such.
fn print_request(request: &Value) {
    outln!();
    match request["url"].as_str() {
        Some(url) => outln!("{} {url}", request["method"].as_str().unwrap_or("POST")),
        None => outln!("request (nothing is sent):"),
    }
    if let Some(headers) = request["headers"].as_object() {
        for (k, v) in headers {
            outln!("{k}: {}", v.as_str().unwrap_or_default());
        }
    }
    let body = match request.get("body").or_else(|| request.get("slack")) {
        Some(b) => b.clone(),
        None => request.clone(),
    };
    outln!();
    outln!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    outln!();
}
