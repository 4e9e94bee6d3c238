//! `herald artifact`: versions and collections, their aliases and tags, links into registries.

use anyhow::bail;
use clap::Subcommand;
use herald_domain::catalog::{ArtifactVersion, Collection};
use serde_json::json;

use super::remote::{cell, json_arg, split_path, table, Remote};
use crate::client::seg;

#[derive(Subcommand, Debug)]
pub enum ArtifactCmd {
    /// Create a new version: ENTITY/PROJECT/COLLECTION.
    Create {
        /// ENTITY/PROJECT/COLLECTION.
        path: String,
        /// Artifact type (model, dataset, …).
        #[arg(long = "type")]
        artifact_type: String,
        /// The version's content digest (any text, such as a checksum).
        #[arg(long)]
        digest: Option<String>,
        /// What this version is.
        #[arg(long)]
        description: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// An alias to add (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// A tag to add (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// The run that produced it.
        #[arg(long)]
        run_id: Option<String>,
    },
    /// Show a version: ENTITY/PROJECT/COLLECTION[:VERSION] (vN or alias; latest by default).
    Get {
        /// ENTITY/PROJECT/COLLECTION[:VERSION].
        path: String,
    },
    /// List collections (ENTITY/PROJECT) or a collection's versions (ENTITY/PROJECT/COLLECTION).
    List {
        /// ENTITY/PROJECT or ENTITY/PROJECT/COLLECTION.
        path: String,
    },
    /// Add or remove an alias: ENTITY/PROJECT/COLLECTION:VERSION ALIAS.
    #[command(subcommand)]
    Alias(LabelCmd),
    /// Add or remove a tag: on a version (…/COLLECTION:VERSION) or a collection (…/COLLECTION).
    #[command(subcommand)]
    Tag(LabelCmd),
    /// Link a version into a registry collection.
    Link {
        /// ENTITY/PROJECT/COLLECTION:VERSION
        path: String,
        /// The registry: ORG/NAME, or NAME for one of the organization your team belongs to.
        #[arg(long)]
        registry: String,
        /// Registry collection (defaults to the source collection's name).
        #[arg(long)]
        collection: Option<String>,
        /// An alias to add in the registry collection (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// Unlink a version from a registry collection: ORG/wandb-registry-NAME/COLLECTION:VERSION.
    Unlink {
        /// ORG/wandb-registry-NAME/COLLECTION:VERSION.
        path: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum LabelCmd {
    /// Add it (an alias held by another version moves here).
    Add {
        /// ENTITY/PROJECT/COLLECTION:VERSION (or …/COLLECTION for a collection's tag).
        path: String,
        /// The alias or tag.
        name: String,
    },
    /// Remove it.
    Remove {
        /// ENTITY/PROJECT/COLLECTION:VERSION (or …/COLLECTION for a collection's tag).
        path: String,
        /// The alias or tag.
        name: String,
    },
}

impl LabelCmd {
    /// The path, the label, and whether it is added.
    fn parts(self) -> (String, String, bool) {
        match self {
            Self::Add { path, name } => (path, name, true),
            Self::Remove { path, name } => (path, name, false),
        }
    }
}

/// `ENTITY/PROJECT/COLLECTION[:VERSION]`.
struct ArtifactPath {
    entity: String,
    project: String,
    collection: String,
    version: Option<String>,
}

impl ArtifactPath {
    fn parse(s: &str) -> anyhow::Result<Self> {
        let (path, version) = match s.rsplit_once(':') {
            Some((p, v)) if !v.is_empty() => (p, Some(v.to_string())),
            Some(_) => bail!("{s:?}: nothing after ':'; write ENTITY/PROJECT/COLLECTION:VERSION"),
            None => (s, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            [e, p, c] if !e.is_empty() && !p.is_empty() && !c.is_empty() => Ok(Self {
                entity: e.to_string(),
                project: p.to_string(),
                collection: c.to_string(),
                version,
            }),
            _ => bail!("{s:?} is not ENTITY/PROJECT/COLLECTION[:VERSION]"),
        }
    }

    fn collection_url(&self) -> String {
        format!(
            "/api/v1/entities/{}/projects/{}/artifacts/{}",
            seg(&self.entity),
            seg(&self.project),
            seg(&self.collection)
        )
    }

    fn version_url(&self) -> String {
        format!(
            "{}/versions/{}",
            self.collection_url(),
            seg(self.version.as_deref().unwrap_or("latest"))
        )
    }
}

pub(super) async fn artifact(r: &Remote, cmd: ArtifactCmd) -> anyhow::Result<()> {
    match cmd {
        ArtifactCmd::Create {
            path,
            artifact_type,
            digest,
            description,
            metadata,
            aliases,
            tags,
            run_id,
        } => {
            let a = ArtifactPath::parse(&path)?;
            if a.version.is_some() {
                bail!(
                    "{path:?}: a new version has no version yet; write ENTITY/PROJECT/COLLECTION"
                );
            }
            let body = json!({
                "collection": a.collection, "type": artifact_type, "digest": digest, "description": description,
                "metadata": json_arg("metadata", &metadata)?, "aliases": aliases, "tags": tags, "run_id": run_id,
            });
            let url = format!(
                "/api/v1/entities/{}/projects/{}/artifacts",
                seg(&a.entity),
                seg(&a.project)
            );
            let out = r.client.post(&url, &body).await?;
            r.show(&out, |v| print_version(&v))
        }
        ArtifactCmd::Get { path } => {
            let a = ArtifactPath::parse(&path)?;
            let out = r.client.get(&a.version_url()).await?;
            r.show(&out, |v| print_version(&v))
        }
        ArtifactCmd::List { path } => list(r, &path).await,
        ArtifactCmd::Alias(cmd) => {
            let (path, name, add) = cmd.parts();
            let a = ArtifactPath::parse(&path)?;
            if a.version.is_none() {
                bail!(
                    "{path:?}: say which version gets the alias: ENTITY/PROJECT/COLLECTION:VERSION"
                );
            }
            let out = if add {
                let url = format!("{}/aliases", a.version_url());
                r.client.post(&url, &json!({"alias": name})).await?
            } else {
                let url = format!("{}/aliases/{}", a.version_url(), seg(&name));
                r.client.delete(&url).await?
            };
            r.show(&out, |v| print_version(&v))
        }
        ArtifactCmd::Tag(cmd) => {
            let (path, name, add) = cmd.parts();
            let a = ArtifactPath::parse(&path)?;
            let base = if a.version.is_some() {
                a.version_url()
            } else {
                a.collection_url()
            };
            let out = if add {
                let url = format!("{base}/tags");
                r.client.post(&url, &json!({"tag": name})).await?
            } else {
                r.client
                    .delete(&format!("{base}/tags/{}", seg(&name)))
                    .await?
            };
            // A version's tags come back with the version, a collection's with the collection.
            if a.version.is_some() {
                return r.show(&out, |v| print_version(&v));
            }
            r.show(&out, |c: Collection| {
                outln!(
                    "{}/{}/{} tags: {}",
                    a.entity,
                    a.project,
                    a.collection,
                    cell(&c.tags)
                )
            })
        }
        ArtifactCmd::Link {
            path,
            registry,
            collection,
            aliases,
        } => {
            let a = ArtifactPath::parse(&path)?;
            let body = json!({"registry": registry, "collection": collection, "aliases": aliases});
            let url = format!("{}/links", a.version_url());
            let out = r.client.post(&url, &body).await?;
            r.show(&out, |v: ArtifactVersion| {
                outln!(
                    "linked {path} into {}/{}/{} as {}",
                    v.entity,
                    v.project,
                    v.collection,
                    v.version
                );
                print_version(&v)
            })
        }
        ArtifactCmd::Unlink { path } => {
            let a = ArtifactPath::parse(&path)?;
            if a.version.is_none() {
                bail!("{path:?}: say which version to unlink: ORG/wandb-registry-NAME/COLLECTION:VERSION");
            }
            let out = r.client.delete(&a.version_url()).await?;
            r.said(&out, || outln!("unlinked {path}"))
        }
    }
}

/// `artifact list`: a project's collections, or a collection's versions.
async fn list(r: &Remote, path: &str) -> anyhow::Result<()> {
    if let Ok(p) = split_path(path, 2, "") {
        let url = format!(
            "/api/v1/entities/{}/projects/{}/artifacts",
            seg(p[0]),
            seg(p[1])
        );
        let out = r.client.get(&url).await?;
        return r.show(&out, |collections: Vec<Collection>| {
            table(
                &["COLLECTION", "KIND", "TYPE", "TAGS"],
                collections
                    .iter()
                    .map(|c| {
                        vec![
                            cell(&c.name),
                            cell(&c.kind),
                            cell(&c.artifact_type),
                            cell(&c.tags),
                        ]
                    })
                    .collect(),
            )
        });
    }
    let a = ArtifactPath::parse(path)?;
    let out = r
        .client
        .get(&format!("{}/versions", a.collection_url()))
        .await?;
    r.show(&out, |versions: Vec<ArtifactVersion>| {
        table(
            &[
                "VERSION",
                "ALIASES",
                "TAGS",
                "DIGEST",
                "CREATED BY",
                "CREATED",
            ],
            versions
                .iter()
                .map(|v| {
                    vec![
                        cell(&v.version),
                        cell(&v.aliases),
                        cell(&v.tags),
                        cell(&v.digest),
                        cell(&v.created_by),
                        cell(&v.created_at),
                    ]
                })
                .collect(),
        )
    })
}

fn print_version(v: &ArtifactVersion) {
    outln!(
        "{}/{}/{}:{}  type={}  aliases={}  tags={}  digest={}",
        v.entity,
        v.project,
        v.collection,
        v.version,
        v.artifact_type,
        cell(&v.aliases),
        cell(&v.tags),
        cell(&v.digest)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths() {
        let a = ArtifactPath::parse("team/proj/model:production").unwrap();
        assert_eq!(
            (a.entity.as_str(), a.project.as_str(), a.collection.as_str()),
            ("team", "proj", "model")
        );
        assert_eq!(a.version.as_deref(), Some("production"));
        assert_eq!(
            a.version_url(),
            "/api/v1/entities/team/projects/proj/artifacts/model/versions/production"
        );
        assert!(ArtifactPath::parse("team/proj").is_err());
        assert!(ArtifactPath::parse("team/proj/model:").is_err());
        assert_eq!(
            ArtifactPath::parse("a/b/c").unwrap().version_url(),
            "/api/v1/entities/a/projects/b/artifacts/c/versions/latest"
        );
    }
}
