//! Artifact types and collections as W&B's GraphQL names them: `ArtifactType` within a
//! project, and the `ArtifactCollection` interface with its two kinds, `ArtifactSequence`
//! (versions made in a project) and `ArtifactPortfolio` (versions linked into a registry).

use async_graphql::{Context, Interface, Object, SimpleObject, ID};
use base64::Engine as _;
use herald_domain::catalog::{Collection, CollectionKind, Project};

use super::artifacts::{collection_membership, project_artifact, ArtifactNode, Membership};
use super::catalog::{parts, timestamp, ProjectNode};
use super::errors;
use super::page::connection;

connection!(TagConnection, TagEdge, Tag);

/// Collection `name` of `project`, if it exists (and holds `artifact_type`, when given).
pub async fn collection_named(
    ctx: &Context<'_>,
    project: &Project,
    name: &str,
    artifact_type: Option<&str>,
) -> async_graphql::Result<Option<ArtifactCollection>> {
    match parts(ctx).0.store.collection(project, name).await {
        Ok(c) if artifact_type.is_none_or(|t| t == c.artifact_type) => {
            Ok(Some(ArtifactCollection::new(project.clone(), c)))
        }
        Ok(_) | Err(herald_store::StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(errors::store(e)),
    }
}

/// An artifact type within one project.
pub struct ArtifactType {
    pub project: Project,
    pub name: String,
}

#[Object]
impl ArtifactType {
    async fn id(&self) -> ID {
        ID(base64::engine::general_purpose::STANDARD
            .encode(format!("ArtifactType:{}:{}", self.project.id.0, self.name)))
    }
    async fn name(&self) -> &str {
        &self.name
    }
    /// The project's collection `name`, if it holds this type.
    async fn artifact_collection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<ArtifactCollection>> {
        collection_named(ctx, &self.project, &name, Some(&self.name)).await
    }
}

#[derive(SimpleObject)]
pub struct Tag {
    pub id: ID,
    pub name: String,
}

impl Tag {
    pub fn named(name: &str) -> Self {
        Self {
            id: ID(base64::engine::general_purpose::STANDARD.encode(format!("Tag:{name}"))),
            name: name.to_string(),
        }
    }
}

/// What sequences and portfolios share.
#[derive(Clone)]
pub struct CollectionData {
    pub project: Project,
    pub collection: Collection,
}

impl CollectionData {
    fn tags(&self) -> async_graphql::Result<TagConnection> {
        let tags = self.collection.tags.iter().map(|t| Tag::named(t)).collect();
        TagConnection::of(tags, None, Some(super::page::MAX_FIRST))
    }
}

macro_rules! collection_object {
    ($ty:ident, $name:literal) => {
        /// An artifact collection.
        #[derive(Clone)]
        pub struct $ty(pub CollectionData);

        #[Object(name = $name)]
        impl $ty {
            async fn id(&self) -> ID {
                ID(self.0.collection.id.to_global())
            }
            async fn name(&self) -> &str {
                &self.0.collection.name
            }
            async fn description(&self) -> Option<&str> {
                None
            }
            async fn created_at(&self) -> String {
                timestamp(self.0.collection.created_at)
            }
            async fn updated_at(&self) -> Option<String> {
                None
            }
            async fn project(&self) -> ProjectNode {
                ProjectNode(self.0.project.clone())
            }
            async fn default_artifact_type(&self) -> ArtifactType {
                ArtifactType {
                    project: self.0.project.clone(),
                    name: self.0.collection.artifact_type.clone(),
                }
            }
            async fn tags(&self) -> async_graphql::Result<TagConnection> {
                self.0.tags()
            }
            /// The version an alias or `vN` names here.
            async fn artifact_membership(
                &self,
                ctx: &Context<'_>,
                alias_name: String,
            ) -> async_graphql::Result<Option<Membership>> {
                collection_membership(ctx, &self.0.project, &self.0.collection, &alias_name).await
            }
            /// The version `latest` names here.
            async fn latest_artifact(
                &self,
                ctx: &Context<'_>,
            ) -> async_graphql::Result<Option<ArtifactNode>> {
                let name = format!("{}:latest", self.0.collection.name);
                project_artifact(ctx, &self.0.project, &name).await
            }
        }
    };
}

collection_object!(ArtifactSequence, "ArtifactSequence");
collection_object!(ArtifactPortfolio, "ArtifactPortfolio");

/// W&B's `ArtifactCollection` interface: a sequence (versions made in a project) or a
/// portfolio (versions linked into a registry).
#[derive(Interface, Clone)]
#[graphql(
    name = "ArtifactCollection",
    field(name = "id", ty = "ID"),
    field(name = "name", ty = "&str"),
    field(name = "description", ty = "Option<&str>"),
    field(name = "created_at", ty = "String"),
    field(name = "updated_at", ty = "Option<String>"),
    field(name = "project", ty = "ProjectNode"),
    field(name = "default_artifact_type", ty = "ArtifactType"),
    field(name = "tags", ty = "async_graphql::Result<TagConnection>"),
    field(
        name = "artifact_membership",
        ty = "async_graphql::Result<Option<Membership>>",
        arg(name = "alias_name", ty = "String")
    ),
    field(
        name = "latest_artifact",
        ty = "async_graphql::Result<Option<ArtifactNode>>"
    )
)]
pub enum ArtifactCollection {
    ArtifactSequence(ArtifactSequence),
    ArtifactPortfolio(ArtifactPortfolio),
}

impl ArtifactCollection {
    pub fn new(project: Project, collection: Collection) -> Self {
        let data = CollectionData {
            project,
            collection,
        };
        match data.collection.kind {
            CollectionKind::Sequence => Self::ArtifactSequence(ArtifactSequence(data)),
            CollectionKind::Portfolio => Self::ArtifactPortfolio(ArtifactPortfolio(data)),
        }
    }
}
