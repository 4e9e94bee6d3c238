//! `herald automation`: create (from flags or a file), list, show, change, enable, disable and
//! delete automations.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use herald_domain::automation::Automation;
use serde_json::Value;

use super::automation_flags::{automation_body, AutomationArgs};
use super::remote::{cell, read_json_file, set_enabled, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum AutomationCmd {
    /// Create an automation from flags or from a JSON file (the REST body).
    Create(Box<AutomationArgs>),
    /// List ENTITY's automations.
    List {
        /// The team, user or organization.
        entity: String,
        /// Only the automation with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show automation ID.
    Get {
        /// The automation's id.
        id: i64,
    },
    /// Change automation ID: the JSON file's top-level fields replace the stored ones.
    Update {
        /// The automation's id.
        id: i64,
        /// A JSON file with the fields to replace.
        #[arg(long)]
        file: PathBuf,
    },
    /// Enable automation ID.
    Enable {
        /// The automation's id.
        id: i64,
    },
    /// Disable automation ID: its waiting executions are cancelled.
    Disable {
        /// The automation's id.
        id: i64,
    },
    /// Delete automation ID: its waiting executions are cancelled.
    Delete {
        /// The automation's id.
        id: i64,
    },
}

fn print_table(automations: &[Automation]) {
    table(
        &["ID", "NAME", "ENABLED", "SCOPE", "EVENT", "ACTION"],
        automations
            .iter()
            .map(|a| {
                vec![
                    cell(&a.id),
                    cell(&a.name),
                    cell(&a.enabled),
                    cell(&a.scope.path),
                    cell(&a.event.event_type),
                    cell(&a.action.action_type()),
                ]
            })
            .collect(),
    )
}

pub(super) async fn automation(r: &Remote, cmd: AutomationCmd) -> anyhow::Result<()> {
    match cmd {
        AutomationCmd::Create(args) => {
            let body = match &args.file {
                Some(f) => read_json_file(f)?,
                None => automation_body(&args)?,
            };
            let path = body["scope"]["path"]
                .as_str()
                .context("the automation has no scope.path")?;
            let entity = path.split('/').next().unwrap_or_default().to_string();
            let url = format!("/api/v1/entities/{}/automations", seg(&entity));
            let out = r.client.post(&url, &body).await?;
            r.show(&out, |a: Automation| print_table(&[a]))
        }
        AutomationCmd::List { entity, name } => {
            let mut url = format!("/api/v1/entities/{}/automations", seg(&entity));
            if let Some(n) = &name {
                url.push_str(&format!("?name={}", seg(n)));
            }
            let out = r.client.get(&url).await?;
            r.show(&out, |list: Vec<Automation>| print_table(&list))
        }
        AutomationCmd::Get { id } => {
            let out = r.client.get(&format!("/api/v1/automations/{id}")).await?;
            // For people too the whole automation, filter and payload included, as JSON.
            r.show(&out, |a: Value| {
                outln!("{}", serde_json::to_string_pretty(&a).unwrap_or_default())
            })
        }
        AutomationCmd::Update { id, file } => {
            let out = r
                .client
                .patch(
                    &format!("/api/v1/automations/{id}"),
                    &read_json_file(&file)?,
                )
                .await?;
            r.show(&out, |a: Automation| print_table(&[a]))
        }
        AutomationCmd::Enable { id } => set_enabled(r, "automation", id, true).await,
        AutomationCmd::Disable { id } => set_enabled(r, "automation", id, false).await,
        AutomationCmd::Delete { id } => {
            let out = r
                .client
                .delete(&format!("/api/v1/automations/{id}"))
                .await?;
            r.said(&out, || outln!("deleted automation {id}"))
        }
    }
}
