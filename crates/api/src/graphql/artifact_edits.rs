//! What the `wandb` SDK changes on a saved artifact: `useArtifact` (a run's input),
//! `addAliases`/`deleteAliases`, `updateArtifact` (description, metadata, tags),
//! `linkArtifact` into a registry and `unlinkArtifact`. Each goes through the store calls REST
//! uses, so the same events (ADD_ARTIFACT_ALIAS, ADD/REMOVE_ARTIFACT_TAG, LINK_MODEL,
//! UNLINK_ARTIFACT) fire the same automations.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use herald_domain::catalog::{
    check_description, parse_metadata, ArtifactVersion, Collection, Project, Role,
};
use herald_domain::ids::CollectionId;
use herald_domain::names::{AliasName, CollectionName, TagName, VersionRef, LATEST};
use herald_engine::access;
use herald_store::VersionEdit;

use super::artifact_save::ArtifactAliasInput;
use super::artifacts::{version_for, ArtifactNode, Membership};
use super::catalog::parts;
use super::errors;
use super::mutations::SuccessPayload;
use super::scalars::JsonString;
use crate::AppState;

#[derive(InputObject)]
pub struct UseArtifactInput {
    pub entity_name: String,
    pub project_name: String,
    pub run_name: String,
    #[graphql(name = "artifactID")]
    pub artifact_id: ID,
    pub used_as: Option<String>,
    pub artifact_entity_name: Option<String>,
    pub artifact_project_name: Option<String>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UseArtifactPayload {
    pub artifact: Option<ArtifactNode>,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct ArtifactCollectionAliasInput {
    pub alias: String,
    pub artifact_collection_name: String,
    pub entity_name: String,
    pub project_name: String,
}

/// Declares the input of addAliases and of deleteAliases (the same fields, two names).
macro_rules! aliases_input {
    ($name:ident) => {
        #[derive(InputObject)]
        pub struct $name {
            #[graphql(name = "artifactID")]
            pub artifact_id: ID,
            pub aliases: Vec<ArtifactCollectionAliasInput>,
            pub client_mutation_id: Option<String>,
        }
    };
}
aliases_input!(AddAliasesInput);
aliases_input!(DeleteAliasesInput);

#[derive(InputObject)]
pub struct TagInput {
    pub tag_name: String,
    pub tag_category_name: Option<String>,
    pub attributes: Option<JsonString>,
}

#[derive(InputObject)]
pub struct UpdateArtifactInput {
    #[graphql(name = "artifactID")]
    pub artifact_id: ID,
    pub description: Option<String>,
    pub metadata: Option<JsonString>,
    pub labels: Option<JsonString>,
    /// Refused: aliases are changed with addAliases and deleteAliases (as wandb 0.31 does).
    pub aliases: Option<Vec<ArtifactAliasInput>>,
    pub tags_to_add: Option<Vec<TagInput>>,
    pub tags_to_delete: Option<Vec<TagInput>>,
    pub ttl_duration_seconds: Option<i64>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct UpdateArtifactPayload {
    pub artifact: ArtifactNode,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct LinkArtifactInput {
    #[graphql(name = "artifactID")]
    pub artifact_id: Option<ID>,
    #[graphql(name = "artifactPortfolioID")]
    pub artifact_portfolio_id: Option<ID>,
    pub artifact_portfolio_name: Option<String>,
    pub entity_name: Option<String>,
    pub project_name: Option<String>,
    pub aliases: Option<Vec<ArtifactAliasInput>>,
    #[graphql(name = "clientID")]
    pub client_id: Option<ID>,
    pub client_mutation_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct LinkArtifactPayload {
    pub version_index: Option<i64>,
    pub artifact_membership: Option<Membership>,
    pub client_mutation_id: Option<String>,
}

#[derive(InputObject)]
pub struct UnlinkArtifactInput {
    #[graphql(name = "artifactID")]
    pub artifact_id: ID,
    #[graphql(name = "artifactPortfolioID")]
    pub artifact_portfolio_id: ID,
    pub client_mutation_id: Option<String>,
}

/// The version's place in collection `collection` of `entity/project`: the project, the
/// collection and the version's index there.
async fn place_in(
    state: &AppState,
    version: &ArtifactVersion,
    entity: &str,
    project: &str,
    collection: &str,
) -> async_graphql::Result<Option<(Project, Collection, ArtifactVersion)>> {
    Ok(state
        .store
        .version_memberships(version.id)
        .await
        .map_err(errors::store)?
        .into_iter()
        .find(|(p, c, _)| {
            p.entity.as_str() == entity && p.name.as_str() == project && c.name == collection
        }))
}

fn success(client_mutation_id: Option<String>) -> SuccessPayload {
    SuccessPayload {
        success: true,
        client_mutation_id,
    }
}

/// Adds (`add`) or removes aliases of the version `input` names, each in its collection.
async fn change_aliases(
    ctx: &Context<'_>,
    artifact_id: &ID,
    aliases: &[ArtifactCollectionAliasInput],
    add: bool,
) -> async_graphql::Result<()> {
    let (state, user) = parts(ctx);
    let (_, version) =
        version_for(state, user, "input.artifactID", artifact_id, Role::Viewer).await?;
    for (i, a) in aliases.iter().enumerate() {
        let field = format!("input.aliases[{i}]");
        let alias = AliasName::parse(&a.alias)
            .map_err(|e| errors::invalid(&format!("{field}.alias"), e.message))?;
        let project = access::project(
            &*state.store,
            user,
            &a.entity_name,
            &a.project_name,
            Role::Member,
        )
        .await
        .map_err(errors::plain)?;
        let (_, coll, view) = place_in(
            state,
            &version,
            &a.entity_name,
            &a.project_name,
            &a.artifact_collection_name,
        )
        .await?
        .ok_or_else(|| {
            errors::invalid(
                &field,
                format!(
                    "the artifact is not in {}/{}/{}",
                    a.entity_name, a.project_name, a.artifact_collection_name
                ),
            )
        })?;
        let r = VersionRef::Index(view.version_index);
        let done = if add {
            state
                .store
                .add_alias(&project, user, &coll.name, &r, &alias)
                .await
        } else {
            state
                .store
                .remove_alias(&project, user, &coll.name, &r, &alias)
                .await
        };
        match done {
            Ok(_) => {}
            // Removing an alias that is not there leaves what was asked for.
            Err(herald_store::StoreError::NotFound(_)) if !add => {}
            Err(e) => return Err(errors::store(e)),
        }
    }
    Ok(())
}

fn tag_names(field: &str, tags: Option<Vec<TagInput>>) -> async_graphql::Result<Vec<TagName>> {
    tags.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            TagName::parse(&t.tag_name)
                .map_err(|e| errors::invalid(&format!("{field}[{i}].tagName"), e.message))
        })
        .collect()
}

#[derive(Default)]
pub struct ArtifactEditMutation;

#[Object]
impl ArtifactEditMutation {
    /// Records that a run used an artifact (MEMBER of the run's entity; the artifact need only
    /// be visible).
    async fn use_artifact(
        &self,
        ctx: &Context<'_>,
        input: UseArtifactInput,
    ) -> async_graphql::Result<UseArtifactPayload> {
        let (state, user) = parts(ctx);
        let run = super::runs::writable_run(
            state,
            user,
            &input.entity_name,
            &input.project_name,
            &input.run_name,
        )
        .await?;
        let (home, version) = version_for(
            state,
            user,
            "input.artifactID",
            &input.artifact_id,
            Role::Viewer,
        )
        .await?;
        state
            .store
            .use_version(run.row_id, version.id)
            .await
            .map_err(errors::store)?;
        Ok(UseArtifactPayload {
            artifact: Some(ArtifactNode::committed(home, version)),
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Puts aliases on the version, each in the collection it names (moving it off another
    /// version there).
    async fn add_aliases(
        &self,
        ctx: &Context<'_>,
        input: AddAliasesInput,
    ) -> async_graphql::Result<SuccessPayload> {
        change_aliases(ctx, &input.artifact_id, &input.aliases, true).await?;
        Ok(success(input.client_mutation_id))
    }

    /// Takes aliases off the version.
    async fn delete_aliases(
        &self,
        ctx: &Context<'_>,
        input: DeleteAliasesInput,
    ) -> async_graphql::Result<SuccessPayload> {
        change_aliases(ctx, &input.artifact_id, &input.aliases, false).await?;
        Ok(success(input.client_mutation_id))
    }

    /// Changes a version's description, metadata and tags.
    async fn update_artifact(
        &self,
        ctx: &Context<'_>,
        input: UpdateArtifactInput,
    ) -> async_graphql::Result<UpdateArtifactPayload> {
        let (state, user) = parts(ctx);
        if input.aliases.is_some() {
            return Err(errors::invalid(
                "input.aliases",
                "aliases are changed with addAliases and deleteAliases",
            ));
        }
        if input.ttl_duration_seconds.is_some_and(|t| t > 0) {
            return Err(errors::invalid(
                "input.ttlDurationSeconds",
                "herald keeps versions until they are deleted; a TTL is not supported",
            ));
        }
        let (project, version) = version_for(
            state,
            user,
            "input.artifactID",
            &input.artifact_id,
            Role::Member,
        )
        .await?;
        check_description("input.description", &input.description)
            .map_err(|e| errors::invalid("", e.to_string()))?;
        let metadata = match &input.metadata {
            Some(m) => Some(
                parse_metadata(Some(m.parse("input.metadata")?))
                    .map_err(|e| errors::invalid("input.metadata", e.message))?,
            ),
            None => None,
        };
        let add = tag_names("input.tagsToAdd", input.tags_to_add)?;
        let delete = tag_names("input.tagsToDelete", input.tags_to_delete)?;
        state
            .store
            .edit_version(
                version.id,
                VersionEdit {
                    description: input.description,
                    metadata,
                },
            )
            .await
            .map_err(errors::store)?;
        let r = VersionRef::Index(version.version_index);
        for tag in &add {
            state
                .store
                .add_version_tag(&project, user, &version.collection, &r, tag)
                .await
                .map_err(errors::store)?;
        }
        for tag in &delete {
            match state
                .store
                .remove_version_tag(&project, user, &version.collection, &r, tag)
                .await
            {
                Ok(_) | Err(herald_store::StoreError::NotFound(_)) => {}
                Err(e) => return Err(errors::store(e)),
            }
        }
        let (project, version) = version_for(
            state,
            user,
            "input.artifactID",
            &input.artifact_id,
            Role::Viewer,
        )
        .await?;
        Ok(UpdateArtifactPayload {
            artifact: ArtifactNode::committed(project, version),
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Links a version into a registry's collection (created on first link), with `latest`
    /// and the aliases given; linking it again adds the aliases to the link there is.
    async fn link_artifact(
        &self,
        ctx: &Context<'_>,
        input: LinkArtifactInput,
    ) -> async_graphql::Result<LinkArtifactPayload> {
        let (state, user) = parts(ctx);
        let id = input
            .artifact_id
            .ok_or_else(|| errors::invalid("input.artifactID", "name the artifact to link"))?;
        let (project, version) =
            version_for(state, user, "input.artifactID", &id, Role::Member).await?;
        let (registry, portfolio) = match input.artifact_portfolio_id.as_deref() {
            Some(pid) => {
                let cid = CollectionId::from_global(pid).ok_or_else(|| {
                    errors::invalid(
                        "input.artifactPortfolioID",
                        format!("{pid:?} is not a collection id"),
                    )
                })?;
                let (registry, coll) = state
                    .store
                    .collection_by_id(cid)
                    .await
                    .map_err(errors::store)?
                    .ok_or_else(|| {
                        errors::not_found(format!("collection {pid:?} not found"), None)
                    })?;
                (format!("{}/{}", registry.entity, registry.name), coll.name)
            }
            None => {
                let (Some(e), Some(p), Some(name)) = (
                    &input.entity_name,
                    &input.project_name,
                    &input.artifact_portfolio_name,
                ) else {
                    return Err(errors::invalid(
                        "input",
                        "name the registry collection: entityName, projectName and artifactPortfolioName, or artifactPortfolioID",
                    ));
                };
                (format!("{e}/{p}"), name.clone())
            }
        };
        let target = CollectionName::parse(&portfolio)
            .map_err(|e| errors::invalid("input.artifactPortfolioName", e.message))?;
        let mut aliases = Vec::new();
        for (i, a) in input.aliases.unwrap_or_default().iter().enumerate() {
            if a.alias == LATEST || a.artifact_collection_name != target.as_str() {
                continue;
            }
            aliases.push(
                AliasName::parse(&a.alias).map_err(|e| {
                    errors::invalid(&format!("input.aliases[{i}].alias"), e.message)
                })?,
            );
        }
        let registry =
            herald_engine::catalog::link_target(&*state.store, user, &project, &registry)
                .await
                .map_err(errors::plain)?;
        let linked = place_in(
            state,
            &version,
            registry.entity.as_str(),
            registry.name.as_str(),
            target.as_str(),
        )
        .await?;
        let (coll, view) = match linked {
            Some((_, coll, view)) => {
                let r = VersionRef::Index(view.version_index);
                let mut view = view;
                for alias in &aliases {
                    view = state
                        .store
                        .add_alias(&registry, user, &coll.name, &r, alias)
                        .await
                        .map_err(errors::store)?;
                }
                (coll, view)
            }
            None => {
                let view = state
                    .store
                    .link_version(
                        &project,
                        user,
                        &version.collection,
                        &VersionRef::Index(version.version_index),
                        &registry,
                        &target,
                        &aliases,
                    )
                    .await
                    .map_err(errors::store)?;
                let coll = state
                    .store
                    .collection(&registry, target.as_str())
                    .await
                    .map_err(errors::store)?;
                (coll, view)
            }
        };
        Ok(LinkArtifactPayload {
            version_index: Some(view.version_index),
            artifact_membership: Some(Membership::new(registry, coll, view)),
            client_mutation_id: input.client_mutation_id,
        })
    }

    /// Removes a version's link from a registry collection (the version itself stays).
    async fn unlink_artifact(
        &self,
        ctx: &Context<'_>,
        input: UnlinkArtifactInput,
    ) -> async_graphql::Result<SuccessPayload> {
        let (state, user) = parts(ctx);
        let (_, version) = version_for(
            state,
            user,
            "input.artifactID",
            &input.artifact_id,
            Role::Viewer,
        )
        .await?;
        let pid = &input.artifact_portfolio_id;
        let cid = CollectionId::from_global(pid).ok_or_else(|| {
            errors::invalid(
                "input.artifactPortfolioID",
                format!("{:?} is not a collection id", pid.as_str()),
            )
        })?;
        let missing =
            || errors::not_found(format!("collection {:?} not found", pid.as_str()), None);
        let (registry, coll) = state
            .store
            .collection_by_id(cid)
            .await
            .map_err(errors::store)?
            .ok_or_else(missing)?;
        let registry = access::project(
            &*state.store,
            user,
            registry.entity.as_str(),
            registry.name.as_str(),
            Role::Member,
        )
        .await
        .map_err(errors::plain)?;
        if !registry.is_registry {
            return Err(errors::invalid(
                "input.artifactPortfolioID",
                format!(
                    "{}/{} is not a registry; only links into registry collections can be removed",
                    registry.entity, registry.name
                ),
            ));
        }
        let (_, _, view) = place_in(
            state,
            &version,
            registry.entity.as_str(),
            registry.name.as_str(),
            &coll.name,
        )
        .await?
        .ok_or_else(|| {
            errors::invalid(
                "input.artifactID",
                format!(
                    "the artifact is not linked into {}/{}/{}",
                    registry.entity, registry.name, coll.name
                ),
            )
        })?;
        state
            .store
            .unlink_version(
                &registry,
                user,
                &coll.name,
                &VersionRef::Index(view.version_index),
            )
            .await
            .map_err(errors::store)?;
        Ok(success(input.client_mutation_id))
    }
}
