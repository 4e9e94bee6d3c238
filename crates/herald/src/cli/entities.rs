//! `herald entity`: teams and organizations, and their members.

use clap::Subcommand;
use herald_api::responses::EntityRole;
use herald_domain::catalog::Member;
use serde_json::json;

use super::remote::{cell, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum EntityCmd {
    /// Create a team (or, with --kind organization, an organization).
    Create {
        /// The entity's name.
        name: String,
        /// team, or organization (registries live in organizations).
        #[arg(long, default_value = "team", value_parser = ["team", "organization"])]
        kind: String,
        /// Teams only: the organization the team belongs to (you must be its ADMIN).
        #[arg(long)]
        organization: Option<String>,
    },
    /// Put a team in an organization, or with --none take it out of its organization.
    SetOrganization {
        /// The team.
        team: String,
        /// The organization (you must be ADMIN of it and of the team).
        #[arg(required_unless_present = "none")]
        organization: Option<String>,
        /// Take the team out of its organization.
        #[arg(long, conflicts_with = "organization")]
        none: bool,
    },
    /// List the entities you are a member of.
    List,
    /// List an entity's members.
    Members {
        /// The team or organization.
        entity: String,
    },
    /// Add a member or change their role (ADMIN, MEMBER or VIEWER).
    SetMember {
        /// The team or organization.
        entity: String,
        /// The user to add or change.
        username: String,
        /// ADMIN, MEMBER or VIEWER.
        role: String,
    },
    /// Remove a member.
    RemoveMember {
        /// The team or organization.
        entity: String,
        /// The member to remove.
        username: String,
    },
}

fn member_url(entity: &str, username: &str) -> String {
    format!("/api/v1/entities/{}/members/{}", seg(entity), seg(username))
}

pub(super) async fn entity(r: &Remote, cmd: EntityCmd) -> anyhow::Result<()> {
    match cmd {
        EntityCmd::Create {
            name,
            kind,
            organization,
        } => {
            let mut body = json!({"name": name, "kind": kind});
            if let Some(org) = &organization {
                body["organization"] = json!(org);
            }
            let out = r.client.post("/api/v1/entities", &body).await?;
            r.said(&out, || match &organization {
                Some(org) => outln!("created {kind} {name} in {org}; you are its ADMIN"),
                None => outln!("created {kind} {name}; you are its ADMIN"),
            })
        }
        EntityCmd::SetOrganization {
            team,
            organization,
            none: _,
        } => {
            let url = format!("/api/v1/entities/{}", seg(&team));
            let out = r
                .client
                .patch(&url, &json!({"organization": organization}))
                .await?;
            r.said(&out, || match &organization {
                Some(org) => outln!("{team} is now in {org}"),
                None => outln!("{team} is in no organization"),
            })
        }
        EntityCmd::List => {
            let out = r.client.get("/api/v1/entities").await?;
            r.show(&out, |list: Vec<EntityRole>| {
                table(
                    &["ENTITY", "KIND", "ROLE", "ORGANIZATION"],
                    list.iter()
                        .map(|e| {
                            vec![
                                cell(&e.entity.name),
                                cell(&e.entity.kind),
                                cell(&e.role),
                                cell(&e.entity.organization),
                            ]
                        })
                        .collect(),
                )
            })
        }
        EntityCmd::Members { entity } => {
            let url = format!("/api/v1/entities/{}/members", seg(&entity));
            let out = r.client.get(&url).await?;
            r.show(&out, |members: Vec<Member>| {
                table(
                    &["USER", "ROLE"],
                    members
                        .iter()
                        .map(|m| vec![cell(&m.username), cell(&m.role)])
                        .collect(),
                )
            })
        }
        EntityCmd::SetMember {
            entity,
            username,
            role,
        } => {
            let body = json!({"role": role.to_ascii_uppercase()});
            let out = r.client.put(&member_url(&entity, &username), &body).await?;
            r.show(&out, |m: Member| {
                outln!("{username} is now {} in {entity}", m.role.as_str())
            })
        }
        EntityCmd::RemoveMember { entity, username } => {
            let out = r.client.delete(&member_url(&entity, &username)).await?;
            r.said(&out, || outln!("removed {username} from {entity}"))
        }
    }
}
