//! Waiting on the engine, by polling until a deadline: executions reaching a state, and a
//! running matcher catching up with every event written so far.

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{eventually, expect, Api};

/// The statuses an execution never leaves.
pub const FINAL_STATUSES: [&str; 4] = ["FINISHED", "FAILED", "SKIPPED", "CANCELLED"];

impl Api {
    /// Waits until automation `id` has exactly `n` executions, each with one of `statuses`;
    /// returns them, oldest first.
    pub async fn executions_in(
        &self,
        id: i64,
        n: usize,
        statuses: &[&str],
        timeout: Duration,
    ) -> Vec<Value> {
        eventually(
            &format!("{n} executions of automation {id}, each {statuses:?}"),
            timeout,
            || async move {
                let xs = self.executions(id).await;
                let there = xs.len() == n
                    && xs
                        .iter()
                        .all(|x| statuses.contains(&x["status"].as_str().unwrap_or("")));
                there.then_some(xs)
            },
        )
        .await
    }

    /// Waits until automation `id` has `n` executions and all of them are final; returns them.
    pub async fn settled_executions(&self, id: i64, n: usize, timeout: Duration) -> Vec<Value> {
        self.executions_in(id, n, &FINAL_STATUSES, timeout).await
    }

    /// Waits until automation `id` has `n` executions, all FINISHED; returns them.
    pub async fn finished_executions(&self, id: i64, n: usize, timeout: Duration) -> Vec<Value> {
        self.executions_in(id, n, &["FINISHED"], timeout).await
    }

    /// Waits until execution `id` has status `status`; returns it with its attempts.
    pub async fn wait_status(&self, id: i64, status: &str, timeout: Duration) -> Value {
        eventually(
            &format!("execution {id} to be {status}"),
            timeout,
            || async move {
                let x = self.execution(id).await;
                (x["status"] == status).then_some(x)
            },
        )
        .await
    }

    /// Waits until automation `automation` has an execution with status `status`; returns
    /// the first such, with its attempts.
    pub async fn wait_execution(&self, automation: i64, status: &str, timeout: Duration) -> Value {
        let id = eventually(
            &format!("a {status} execution of automation {automation}"),
            timeout,
            || async move {
                self.executions(automation)
                    .await
                    .into_iter()
                    .find(|x| x["status"] == status)
                    .and_then(|x| x["id"].as_i64())
            },
        )
        .await;
        self.execution(id).await
    }

    /// Waits until automation `id` has at least one execution; returns the first one's id.
    pub async fn first_execution(&self, id: i64) -> i64 {
        eventually(
            &format!("an execution of automation {id}"),
            Duration::from_secs(10),
            || async move {
                self.executions(id)
                    .await
                    .first()
                    .and_then(|x| x["id"].as_i64())
            },
        )
        .await
    }
}

/// For servers whose matcher runs on its own: waits until it has matched every event written
/// so far. A NO_OP automation on `event` watches project `probe/p` (both made at the first
/// call); `probe`, a future not yet polled, writes an event there that it matches. The matcher
/// handles events in order, so once that execution exists everything before it is matched.
pub async fn sync_matcher_on(api: &Api, event: Value, probe: impl Future) {
    let (status, _) = api.get("/api/v1/entities/probe").await;
    let automation = if status == StatusCode::NOT_FOUND {
        api.create_entity("probe", "team").await;
        api.create_project("probe", "p").await;
        api.create_automation(
            "probe",
            json!({
                "name": "probe",
                "scope": { "type": "PROJECT", "path": "probe/p" },
                "event": event,
                "action": { "type": "NO_OP" },
                "rate_limit_per_minute": 10000
            }),
        )
        .await
    } else {
        expect(
            api.get("/api/v1/entities/probe/automations").await,
            StatusCode::OK,
        )[0]
        .clone()
    };
    let id = automation["id"].as_i64().expect("probe automation id");
    let before = api.executions(id).await.len();
    probe.await;
    eventually(
        "the matcher to reach the probe",
        Duration::from_secs(10),
        || async { (api.executions(id).await.len() > before).then_some(()) },
    )
    .await;
}
