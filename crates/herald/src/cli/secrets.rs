//! `herald secret`: set (create or rotate), list and delete a team's secrets. Values go to the
//! server and never come back.

use std::io::Read as _;

use anyhow::Context as _;
use clap::Subcommand;
use herald_domain::automation::SecretMeta;
use serde_json::json;

use super::remote::{cell, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum SecretCmd {
    /// Create or rotate a secret. The value is read from standard input unless --value is given.
    /// A rotated signing secret's previous value keeps signing deliveries beside the new one
    /// for the grace period, so receivers can switch without rejecting a message.
    Set {
        /// The team that owns the secret.
        entity: String,
        /// The secret's name (letters, digits and `_`, not starting with a digit).
        name: String,
        /// The value (prefer standard input, which keeps it out of shell history).
        #[arg(long)]
        value: Option<String>,
        /// On a rotation, seconds the previous value stays valid (0 to 604800; the server's
        /// default is 86400, a day). 0 ends every previous value at once, as for a leaked secret.
        #[arg(long, value_name = "SECONDS")]
        grace_period: Option<u32>,
    },
    /// List secret names (values are never shown).
    List {
        /// The team that owns the secrets.
        entity: String,
    },
    /// Delete a secret.
    Delete {
        /// The team that owns the secret.
        entity: String,
        /// The secret's name.
        name: String,
    },
}

pub(super) async fn secret(r: &Remote, cmd: SecretCmd) -> anyhow::Result<()> {
    match cmd {
        SecretCmd::Set {
            entity,
            name,
            value,
            grace_period,
        } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::stdin()
                        .read_to_string(&mut v)
                        .context("reading the secret from standard input")?;
                    v.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let url = format!("/api/v1/entities/{}/secrets/{}", seg(&entity), seg(&name));
            let mut body = json!({ "value": value });
            if let Some(g) = grace_period {
                body["grace_period_seconds"] = json!(g);
            }
            let out = r.client.put(&url, &body).await?;
            r.said(&out, || outln!("secret {name} saved in {entity}"))
        }
        SecretCmd::List { entity } => {
            let url = format!("/api/v1/entities/{}/secrets", seg(&entity));
            let out = r.client.get(&url).await?;
            r.show(&out, |secrets: Vec<SecretMeta>| {
                table(
                    &["SECRET", "UPDATED", "PREVIOUS VALUES"],
                    secrets
                        .iter()
                        .map(|s| {
                            vec![
                                cell(&s.name),
                                cell(&s.updated_at),
                                // How many rotated-out values still sign deliveries.
                                s.previous_values.len().to_string(),
                            ]
                        })
                        .collect(),
                )
            })
        }
        SecretCmd::Delete { entity, name } => {
            let url = format!("/api/v1/entities/{}/secrets/{}", seg(&entity), seg(&name));
            let out = r.client.delete(&url).await?;
            r.said(&out, || outln!("deleted secret {name} from {entity}"))
        }
    }
}
