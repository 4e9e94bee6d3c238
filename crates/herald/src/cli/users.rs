//! `herald user create` and `herald whoami`.

use clap::Subcommand;
use herald_api::responses::{CreatedUser, Viewer};
use serde_json::json;

use super::remote::{cell, table, Remote};

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user and print their API key.
    Create {
        /// The new user's name (1-128 letters, digits, `-`, `_` or `.`).
        username: String,
        /// The user's email address.
        #[arg(long)]
        email: Option<String>,
        /// Make the user a server admin.
        #[arg(long)]
        admin: bool,
    },
}

pub(super) async fn user(r: &Remote, cmd: UserCmd) -> anyhow::Result<()> {
    let UserCmd::Create {
        username,
        email,
        admin,
    } = cmd;
    let body = json!({"username": username, "email": email, "admin": admin});
    let out = r.client.post("/api/v1/users", &body).await?;
    r.show(&out, |created: CreatedUser| {
        outln!(
            "created user {}; API key (shown once):\n\n    {}\n",
            created.user.username,
            created.api_key
        );
    })
}

pub(super) async fn whoami(r: &Remote) -> anyhow::Result<()> {
    let out = r.client.get("/api/v1/viewer").await?;
    r.show(&out, |viewer: Viewer| {
        outln!(
            "{}{}",
            viewer.user.username,
            if viewer.user.is_admin {
                " (server admin)"
            } else {
                ""
            }
        );
        table(
            &["ENTITY", "KIND", "ROLE"],
            viewer
                .entities
                .iter()
                .map(|e| vec![cell(&e.entity.name), cell(&e.entity.kind), cell(&e.role)])
                .collect(),
        );
    })
}
