//! `herald integration`: a team's webhook and Slack integrations, and test deliveries.

use clap::Subcommand;
use herald_api::responses::TestResult;
use herald_domain::automation::Integration;
use serde_json::json;

use super::remote::{cell, json_arg, set_enabled, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing would only add noise
pub enum IntegrationCmd {
    /// Create a webhook or Slack integration in ENTITY (integrations belong to one team).
    Create {
        /// The team the integration belongs to; only its automations can use it.
        entity: String,
        /// webhook or slack.
        #[arg(long, default_value = "webhook", value_parser = ["webhook", "slack"])]
        kind: String,
        /// The integration's name, unique in the team.
        #[arg(long)]
        name: String,
        /// Webhooks: where deliveries are POSTed.
        #[arg(long)]
        url: Option<String>,
        /// Slack: the channel's name, for display.
        #[arg(long)]
        channel_name: Option<String>,
        /// Slack: the workspace's name, for display.
        #[arg(long)]
        workspace: Option<String>,
        /// Slack: a secret holding an incoming-webhook URL.
        #[arg(long)]
        webhook_url_secret: Option<String>,
        /// Slack: a secret holding a bot token (with --channel-id).
        #[arg(long)]
        bot_token_secret: Option<String>,
        /// Slack: the channel's id, for chat.postMessage.
        #[arg(long)]
        channel_id: Option<String>,
        /// Secret sent as `Authorization: Bearer …`.
        #[arg(long)]
        access_token_secret: Option<String>,
        /// Secret that signs deliveries.
        #[arg(long)]
        signing_secret: Option<String>,
    },
    /// List ENTITY's integrations.
    List {
        /// The team.
        entity: String,
    },
    /// Send a test payload through integration ID and show the answer (exits 1 unless 2xx).
    Test {
        /// The integration's id.
        id: i64,
        /// JSON payload (may use ${ACCESS_TOKEN} and the integration's secrets).
        #[arg(long)]
        payload: Option<String>,
    },
    /// Enable integration ID (also after herald disabled it, clearing the reason).
    Enable {
        /// The integration's id.
        id: i64,
    },
    /// Disable integration ID: its automations' waiting executions are cancelled.
    Disable {
        /// The integration's id.
        id: i64,
    },
    /// Delete integration ID.
    Delete {
        /// The integration's id.
        id: i64,
    },
}

fn print_table(integrations: &[Integration]) {
    table(
        &[
            "ID",
            "KIND",
            "NAME",
            "URL",
            "CHANNEL",
            "TOKEN SECRET",
            "SIGNING SECRET",
            "ENABLED",
            "DISABLED BECAUSE",
        ],
        integrations
            .iter()
            .map(|i| {
                vec![
                    cell(&i.id),
                    cell(&i.kind),
                    cell(&i.name),
                    // A Slack integration has no URL.
                    cell(&i.url),
                    cell(&i.slack.as_ref().map(|s| &s.channel_name)),
                    cell(&i.access_token_secret),
                    cell(&i.signing_secret),
                    cell(&i.enabled),
                    cell(&i.disabled_reason),
                ]
            })
            .collect(),
    )
}

pub(super) async fn integration(r: &Remote, cmd: IntegrationCmd) -> anyhow::Result<()> {
    match cmd {
        IntegrationCmd::Create {
            entity,
            kind,
            name,
            url,
            access_token_secret,
            signing_secret,
            channel_name,
            workspace,
            webhook_url_secret,
            bot_token_secret,
            channel_id,
        } => {
            let mut body = json!({"kind": kind, "name": name});
            let fields = [
                ("url", url),
                ("access_token_secret", access_token_secret),
                ("signing_secret", signing_secret),
                ("channel_name", channel_name),
                ("workspace_name", workspace),
                ("webhook_url_secret", webhook_url_secret),
                ("bot_token_secret", bot_token_secret),
                ("channel_id", channel_id),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let url = format!("/api/v1/entities/{}/integrations", seg(&entity));
            let out = r.client.post(&url, &body).await?;
            r.show(&out, |i: Integration| print_table(&[i]))
        }
        IntegrationCmd::List { entity } => {
            let url = format!("/api/v1/entities/{}/integrations", seg(&entity));
            let out = r.client.get(&url).await?;
            r.show(&out, |list: Vec<Integration>| print_table(&list))
        }
        IntegrationCmd::Test { id, payload } => {
            let body = json!({ "payload": json_arg("payload", &payload)? });
            let out = r
                .client
                .post(&format!("/api/v1/integrations/{id}/test"), &body)
                .await?;
            // Read in both modes: the exit code says whether the destination took it.
            let result: TestResult = out.parse()?;
            if r.json {
                r.print(&out);
            } else {
                print_test(&result);
            }
            if !result.ok {
                let why = match result.status_code {
                    Some(code) => format!("the destination answered HTTP {code}"),
                    None => format!("no answer: {}", cell(&result.error)),
                };
                anyhow::bail!("the test delivery failed: {why}");
            }
            Ok(())
        }
        IntegrationCmd::Enable { id } => set_enabled(r, "integration", id, true).await,
        IntegrationCmd::Disable { id } => set_enabled(r, "integration", id, false).await,
        IntegrationCmd::Delete { id } => {
            let out = r
                .client
                .delete(&format!("/api/v1/integrations/{id}"))
                .await?;
            r.said(&out, || outln!("deleted integration {id}"))
        }
    }
}

fn print_test(result: &TestResult) {
    match result.status_code {
        Some(code) => outln!("HTTP {code} in {:.1} ms", result.duration_ms),
        None => outln!(
            "no answer: {} ({})",
            cell(&result.error),
            cell(&result.error_class)
        ),
    }
    if let Some(response) = result.response.as_deref().filter(|r| !r.is_empty()) {
        outln!("{response}");
    }
}
