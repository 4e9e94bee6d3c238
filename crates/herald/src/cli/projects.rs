//! `herald project` and `herald registry` (a registry is a project of an organization).

use clap::Subcommand;
use herald_domain::catalog::Project;
use serde_json::json;

use super::remote::{cell, split_path, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum ProjectCmd {
    /// Create a project: ENTITY/PROJECT.
    Create {
        /// ENTITY/PROJECT.
        path: String,
        /// What the project is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List an entity's projects and registries.
    List {
        /// The team, user or organization.
        entity: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// Create a registry: ORG/NAME (the project wandb-registry-NAME).
    Create {
        /// ORG/NAME.
        path: String,
        /// What the registry holds.
        #[arg(long)]
        description: Option<String>,
    },
}

pub(super) async fn project(r: &Remote, cmd: ProjectCmd) -> anyhow::Result<()> {
    match cmd {
        ProjectCmd::Create { path, description } => {
            let p = split_path(&path, 2, "ENTITY/PROJECT")?;
            let url = format!("/api/v1/entities/{}/projects", seg(p[0]));
            let body = json!({"name": p[1], "description": description});
            let out = r.client.post(&url, &body).await?;
            r.said(&out, || outln!("created project {}/{}", p[0], p[1]))
        }
        ProjectCmd::List { entity } => {
            let url = format!("/api/v1/entities/{}/projects", seg(&entity));
            let out = r.client.get(&url).await?;
            r.show(&out, |projects: Vec<Project>| {
                table(
                    &["PROJECT", "REGISTRY", "DESCRIPTION"],
                    projects
                        .iter()
                        .map(|p| vec![cell(&p.name), cell(&p.is_registry), cell(&p.description)])
                        .collect(),
                )
            })
        }
    }
}

pub(super) async fn registry(r: &Remote, cmd: RegistryCmd) -> anyhow::Result<()> {
    let RegistryCmd::Create { path, description } = cmd;
    let p = split_path(&path, 2, "ORG/NAME")?;
    let url = format!("/api/v1/entities/{}/registries", seg(p[0]));
    let body = json!({"name": p[1], "description": description});
    let out = r.client.post(&url, &body).await?;
    r.show(&out, |created: Project| {
        outln!("created registry {}/{}", p[0], created.name)
    })
}
