//! The query root and the catalog as W&B's GraphQL names it: `User` (the viewer), `Entity`,
//! `Organization`, `Project` (registries are projects), `ArtifactType`, and the two kinds of
//! `ArtifactCollection`. What a caller may not see resolves to null, as in W&B.

use async_graphql::{Context, Object, SimpleObject, ID};
use base64::Engine as _;
use herald_domain::catalog::{Collection, Entity, EntityKind, Project, Role, User};
use herald_engine::access;

use super::collections::{collection_named, ArtifactCollection, ArtifactType};
use super::errors;
use super::page::connection;
use super::scalars::JsonString;
use super::triggers::{IntegrationConnection, IntegrationNode, TriggerConnection, TriggerNode};
use crate::AppState;

/// The state and the caller every resolver works for.
pub fn parts<'a>(ctx: &Context<'a>) -> (&'a AppState, &'a User) {
    (
        ctx.data_unchecked::<AppState>(),
        ctx.data_unchecked::<User>(),
    )
}

/// The features herald implements, as W&B's `ServerFeature` names them; the SDK treats any
/// name left out as disabled and then neither sends nor expects what it gates.
pub const FEATURES: &[&str] = &[
    "ARTIFACT_REGISTRY_SEARCH",
    "AUTOMATION_EVENT_RUN_METRIC",
    "AUTOMATION_EVENT_RUN_METRIC_CHANGE",
    "AUTOMATION_EVENT_RUN_METRIC_ZSCORE",
    "AUTOMATION_EVENT_RUN_STATE",
    "AUTOMATION_EVENT_ADD_ARTIFACT_TAG",
    "AUTOMATION_EVENT_REMOVE_ARTIFACT_TAG",
    "AUTOMATION_EVENT_ADD_COLLECTION_TAG",
    "AUTOMATION_EVENT_REMOVE_COLLECTION_TAG",
    "AUTOMATION_EVENT_UNLINK_ARTIFACT",
    "AUTOMATION_ACTION_NO_OP",
    "AUTOMATION_SCOPE_ENTITY",
    "QUERY_AUTOMATIONS_ON_ENTITY",
];

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// The caller.
    async fn viewer(&self, ctx: &Context<'_>) -> UserNode {
        UserNode(parts(ctx).1.clone())
    }

    async fn server_info(&self) -> ServerInfo {
        ServerInfo
    }

    /// An entity (team, organization or user) the caller is a member of; null otherwise.
    async fn entity(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<EntityNode>> {
        let (state, user) = parts(ctx);
        let name = name.unwrap_or_else(|| user.username.to_string());
        visible_entity(state, user, &name).await
    }

    /// A project or registry of an entity the caller is a member of; null otherwise.
    async fn project(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        entity_name: Option<String>,
    ) -> async_graphql::Result<Option<ProjectNode>> {
        let (state, user) = parts(ctx);
        let entity_name = entity_name.unwrap_or_else(|| user.username.to_string());
        let Some(name) = name else {
            return Err(errors::invalid(
                "name",
                "a project is named by name and entityName",
            ));
        };
        visible_project(state, user, &entity_name, &name).await
    }

    /// An organization the caller is a member of; null otherwise.
    async fn organization(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<Organization>> {
        let (state, user) = parts(ctx);
        Ok(visible_entity(state, user, &name)
            .await?
            .filter(|e| e.0.kind == EntityKind::Organization)
            .map(|e| Organization {
                name: e.0.name.to_string(),
            }))
    }
}

/// `entity` as `user` sees it: `None` when absent or not theirs.
pub async fn visible_entity(
    state: &AppState,
    user: &User,
    name: &str,
) -> async_graphql::Result<Option<EntityNode>> {
    match access::entity(&*state.store, user, name, Role::Viewer).await {
        Ok(a) => Ok(Some(EntityNode(a.entity))),
        Err(herald_engine::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(errors::plain(e)),
    }
}

/// Project `name` of `entity` as `user` sees it: `None` when absent or not theirs.
pub async fn visible_project(
    state: &AppState,
    user: &User,
    entity: &str,
    name: &str,
) -> async_graphql::Result<Option<ProjectNode>> {
    match access::project(&*state.store, user, entity, name, Role::Viewer).await {
        Ok(p) => Ok(Some(ProjectNode(p))),
        Err(herald_engine::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(errors::plain(e)),
    }
}

pub struct ServerInfo;

#[derive(SimpleObject)]
pub struct ServerFeature {
    pub name: String,
    pub is_enabled: bool,
}

#[Object]
impl ServerInfo {
    async fn features(&self) -> Vec<ServerFeature> {
        FEATURES
            .iter()
            .map(|f| ServerFeature {
                name: f.to_string(),
                is_enabled: true,
            })
            .collect()
    }
}

connection!(EntityConnection, EntityEdge, EntityNode);
connection!(ProjectConnection, ProjectEdge, ProjectNode);
connection!(ApiKeyConnection, ApiKeyEdge, ApiKey);
connection!(ArtifactTypeConnection, ArtifactTypeEdge, ArtifactType);

/// A member of an entity. Emails and keys are never shown.
#[derive(SimpleObject)]
pub struct TeamMember {
    pub id: ID,
    pub admin: bool,
    pub pending: bool,
    pub email: Option<String>,
    pub username: String,
    pub name: String,
    pub photo_url: Option<String>,
    /// The member's role: `ADMIN`, `MEMBER` or `VIEWER`.
    pub account_type: String,
    pub api_key: Option<String>,
}

/// Never listed: herald shows API keys only when it makes them.
#[derive(SimpleObject)]
pub struct ApiKey {
    pub id: ID,
    pub name: String,
    pub description: Option<String>,
}

/// W&B's `User`: here always the caller.
pub struct UserNode(pub User);

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_global())
    }
    async fn name(&self) -> &str {
        self.0.username.as_str()
    }
    async fn username(&self) -> &str {
        self.0.username.as_str()
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn admin(&self) -> bool {
        self.0.is_admin
    }
    async fn flags(&self) -> JsonString {
        JsonString("{}".into())
    }
    /// The default entity: the user's own.
    async fn entity(&self) -> &str {
        self.0.username.as_str()
    }
    async fn deleted_at(&self) -> Option<String> {
        None
    }
    async fn created_at(&self) -> String {
        timestamp(self.0.created_at)
    }
    async fn api_keys(&self) -> async_graphql::Result<ApiKeyConnection> {
        ApiKeyConnection::of(Vec::new(), None, None)
    }
    /// The teams the user is a member of.
    async fn teams(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<EntityConnection> {
        let state = parts(ctx).0;
        let teams = state
            .store
            .entities_of(&self.0)
            .await
            .map_err(errors::store)?
            .into_iter()
            .filter(|(e, _)| e.kind == EntityKind::Team)
            .map(|(e, _)| EntityNode(e))
            .collect();
        EntityConnection::of(teams, after.as_deref(), first)
    }
    /// The organizations the user is a member of, directly or through a team.
    async fn organizations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Organization>> {
        let state = parts(ctx).0;
        let mut names: Vec<String> = Vec::new();
        for (e, _) in state
            .store
            .entities_of(&self.0)
            .await
            .map_err(errors::store)?
        {
            let org = match e.kind {
                EntityKind::Organization => Some(e.name.to_string()),
                _ => e.organization.map(|o| o.to_string()),
            };
            if let Some(o) = org.filter(|o| !names.contains(o)) {
                names.push(o);
            }
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| Organization { name })
            .collect())
    }
    /// Every project of every entity the user is a member of.
    async fn projects(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<ProjectConnection> {
        let state = parts(ctx).0;
        let mut all = Vec::new();
        for (e, _) in state
            .store
            .entities_of(&self.0)
            .await
            .map_err(errors::store)?
        {
            let projects = state.store.list_projects(&e).await.map_err(errors::store)?;
            all.extend(projects.into_iter().map(ProjectNode));
        }
        ProjectConnection::of(all, after.as_deref(), first)
    }
}

/// W&B's `Entity`: a team, organization or user.
#[derive(Clone)]
pub struct EntityNode(pub Entity);

impl EntityNode {
    /// Re-checks the caller's access, for entities reached through another object.
    async fn access(&self, ctx: &Context<'_>, needed: Role) -> async_graphql::Result<Entity> {
        let (state, user) = parts(ctx);
        access::entity(&*state.store, user, self.0.name.as_str(), needed)
            .await
            .map(|a| a.entity)
            .map_err(errors::plain)
    }
}

#[Object(name = "Entity")]
impl EntityNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_global())
    }
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }
    /// `team`, `organization` or `user`.
    async fn entity_type(&self) -> &'static str {
        self.0.kind.as_str()
    }
    async fn is_team(&self) -> bool {
        self.0.kind == EntityKind::Team
    }
    /// What W&B's team settings hold and herald has no notion of, answered as a plain team.
    async fn available(&self) -> Option<bool> {
        None
    }
    async fn photo_url(&self) -> Option<String> {
        None
    }
    async fn read_only(&self) -> bool {
        false
    }
    async fn read_only_admin(&self) -> bool {
        false
    }
    async fn private_only(&self) -> bool {
        false
    }
    async fn storage_bytes(&self) -> i64 {
        0
    }
    async fn code_saving_enabled(&self) -> bool {
        false
    }
    async fn default_access(&self) -> &'static str {
        "PRIVATE"
    }
    async fn is_paid(&self) -> Option<bool> {
        None
    }
    /// The entity's members and their roles (`accountType`), as REST lists them.
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TeamMember>> {
        let entity = self.access(ctx, Role::Viewer).await?;
        let members = parts(ctx)
            .0
            .store
            .list_members(&entity)
            .await
            .map_err(errors::store)?;
        Ok(members
            .into_iter()
            .map(|m| TeamMember {
                id: ID(base64::engine::general_purpose::STANDARD
                    .encode(format!("Member:{}:{}", entity.name, m.username))),
                admin: m.role == Role::Admin,
                pending: false,
                email: None,
                username: m.username.to_string(),
                name: m.username.to_string(),
                photo_url: None,
                account_type: m.role.as_str().to_string(),
                api_key: None,
            })
            .collect())
    }
    async fn created_at(&self) -> String {
        timestamp(self.0.created_at)
    }
    /// A team's organization; an organization's entity is its own.
    async fn organization(&self) -> Option<Organization> {
        match self.0.kind {
            EntityKind::Organization => Some(Organization {
                name: self.0.name.to_string(),
            }),
            _ => self.0.organization.as_ref().map(|o| Organization {
                name: o.to_string(),
            }),
        }
    }
    /// A user's personal entity's user (only the caller's own is shown).
    async fn user(&self, ctx: &Context<'_>) -> Option<UserNode> {
        let user = parts(ctx).1;
        (self.0.kind == EntityKind::User && self.0.name.as_str() == user.username.as_str())
            .then(|| UserNode(user.clone()))
    }
    async fn project(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<ProjectNode>> {
        let (state, user) = parts(ctx);
        visible_project(state, user, self.0.name.as_str(), &name).await
    }
    /// The entity's projects (an organization's are its registries), by name. `filters`
    /// (a JSONString) may select by `name`: a string, `{"$eq"}`, `{"$in"}` or `{"$regex"}`,
    /// combined with `$and` and `$or`; `order` is `name` or `-name`.
    async fn projects(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
        filters: Option<JsonString>,
        order: Option<String>,
    ) -> async_graphql::Result<ProjectConnection> {
        let entity = self.access(ctx, Role::Viewer).await?;
        let filter = match &filters {
            Some(f) => super::project_filter::ProjectFilter::parse(&f.parse("filters")?)?,
            None => super::project_filter::ProjectFilter::All,
        };
        let state = parts(ctx).0;
        let mut projects: Vec<ProjectNode> = state
            .store
            .list_projects(&entity)
            .await
            .map_err(errors::store)?
            .into_iter()
            .filter(|p| filter.matches(p.name.as_str()))
            .map(ProjectNode)
            .collect();
        match order.as_deref() {
            None | Some("") | Some("name") => {}
            Some("-name") => projects.reverse(),
            Some(o) => {
                return Err(errors::invalid(
                    "order",
                    format!("unknown order {o:?}; expected name or -name"),
                ))
            }
        }
        ProjectConnection::of(projects, after.as_deref(), first)
    }
    /// The entity's webhook and Slack integrations (MEMBER or above, as over REST).
    async fn integrations(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<IntegrationConnection> {
        let entity = self.access(ctx, Role::Member).await?;
        let state = parts(ctx).0;
        let list = state
            .store
            .list_integrations(&entity)
            .await
            .map_err(errors::store)?;
        IntegrationConnection::of(
            list.into_iter().map(IntegrationNode::from).collect(),
            after.as_deref(),
            first,
        )
    }
    /// The entity's automations: those on the entity itself, its projects and collections.
    /// `filters` is a JSONString, `{"name": "…"}` or null; `order` is `createdAt` or
    /// `-createdAt` (the default).
    async fn triggers(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        first: Option<i32>,
        order: Option<String>,
        filters: Option<JsonString>,
    ) -> async_graphql::Result<TriggerConnection> {
        let entity = self.access(ctx, Role::Viewer).await?;
        let name = match &filters {
            None => None,
            Some(f) => trigger_name_filter(f)?,
        };
        let state = parts(ctx).0;
        let mut list = state
            .store
            .list_automations(&entity, name.as_deref())
            .await
            .map_err(errors::store)?;
        match order.as_deref() {
            None | Some("") | Some("-createdAt") => {
                list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)))
            }
            Some("createdAt") => {
                list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
            }
            Some(o) => {
                return Err(errors::invalid(
                    "order",
                    format!("unknown order {o:?}; expected createdAt or -createdAt"),
                ))
            }
        }
        let (page, info) = super::page::page(list, after.as_deref(), first)?;
        let total = page.len();
        let mut edges = Vec::with_capacity(total);
        for (cursor, a) in page {
            edges.push(super::triggers::TriggerEdge {
                node: TriggerNode::load(state, &entity, a).await?,
                cursor,
            });
        }
        Ok(TriggerConnection {
            edges,
            page_info: info,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }
}

/// The name in `filters` (`{"name": "…"}`); anything else is refused by name.
fn trigger_name_filter(f: &JsonString) -> async_graphql::Result<Option<String>> {
    match f.parse("filters")? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| k.as_str() != "name") {
                return Err(errors::invalid(
                    "filters",
                    format!("unknown filter key {k:?}; automations filter by \"name\" only"),
                ));
            }
            match m.get("name") {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(errors::invalid("filters", "\"name\" must be a string")),
            }
        }
        _ => Err(errors::invalid(
            "filters",
            "must be a JSON object such as {\"name\": \"…\"}",
        )),
    }
}

pub struct Organization {
    pub name: String,
}

#[Object]
impl Organization {
    async fn id(&self) -> ID {
        ID(base64::engine::general_purpose::STANDARD.encode(format!("Organization:{}", self.name)))
    }
    async fn name(&self) -> &str {
        &self.name
    }
    /// CoreWeave's id for the organization: herald has none.
    async fn core_weave_organization_id(&self) -> Option<String> {
        None
    }
    /// The organization's entity, where its registries are (null when the caller cannot see it).
    async fn org_entity(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<EntityNode>> {
        let (state, user) = parts(ctx);
        visible_entity(state, user, &self.name).await
    }
}

/// W&B's `Project`; a registry is a project named `wandb-registry-<name>` in an organization.
#[derive(Clone)]
pub struct ProjectNode(pub Project);

#[Object(name = "Project")]
impl ProjectNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_global())
    }
    /// `base64("ProjectInternalId:<n>")`, which the SDK's registry helpers decode.
    async fn internal_id(&self) -> ID {
        ID(base64::engine::general_purpose::STANDARD
            .encode(format!("ProjectInternalId:{}", self.0.id.0)))
    }
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }
    async fn entity_name(&self) -> &str {
        self.0.entity.as_str()
    }
    async fn entity(&self, ctx: &Context<'_>) -> async_graphql::Result<EntityNode> {
        let state = parts(ctx).0;
        state
            .store
            .entity_by_id(self.0.entity_id)
            .await
            .map_err(errors::store)?
            .map(EntityNode)
            .ok_or_else(|| errors::not_found("the project's entity is gone", None))
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn created_at(&self) -> String {
        timestamp(self.0.created_at)
    }
    async fn updated_at(&self) -> Option<String> {
        None
    }
    async fn is_benchmark(&self) -> bool {
        false
    }
    /// Who made it: not recorded.
    async fn user(&self) -> Option<UserNode> {
        None
    }
    /// Registries: who may see them (members of the organization).
    async fn access(&self) -> Option<&str> {
        self.0.is_registry.then_some("PRIVATE")
    }
    /// Registries accept every artifact type.
    async fn allow_all_artifact_types_in_registry(&self) -> bool {
        true
    }
    /// The artifact types its collections hold.
    async fn artifact_types(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_all: bool,
        after: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<ArtifactTypeConnection> {
        let _ = include_all;
        let mut types: Vec<String> = self
            .collections(ctx)
            .await?
            .into_iter()
            .map(|c| c.artifact_type)
            .collect();
        types.sort();
        types.dedup();
        let nodes = types
            .into_iter()
            .map(|name| ArtifactType {
                project: self.0.clone(),
                name,
            })
            .collect();
        ArtifactTypeConnection::of(nodes, after.as_deref(), first)
    }
    /// The type `name`, when a collection of the project holds it.
    async fn artifact_type(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<ArtifactType>> {
        let found = self
            .collections(ctx)
            .await?
            .iter()
            .any(|c| c.artifact_type == name);
        Ok(found.then(|| ArtifactType {
            project: self.0.clone(),
            name,
        }))
    }
    /// Collection `name`, of any type.
    async fn artifact_collection(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<ArtifactCollection>> {
        collection_named(ctx, &self.0, &name, None).await
    }
    /// The version `name` (`resnet:v0`, `resnet:latest`) names, if there is one.
    async fn artifact(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<super::artifacts::ArtifactNode>> {
        super::artifacts::project_artifact(ctx, &self.0, &name).await
    }
    /// The version `name` names, as its collection here sees it.
    async fn artifact_collection_membership(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<super::artifacts::Membership>> {
        super::artifacts::membership_named(ctx, &self.0, &name).await
    }
    /// Run `name`, if the project has one.
    async fn run(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<super::runs::RunNode>> {
        super::runs::run_of(ctx, &self.0, &name).await
    }
    /// W&B's older name for `run`; `missingOk` is accepted (a missing run is null either way).
    async fn bucket(
        &self,
        ctx: &Context<'_>,
        name: String,
        missing_ok: Option<bool>,
    ) -> async_graphql::Result<Option<super::runs::RunNode>> {
        let _ = missing_ok;
        super::runs::run_of(ctx, &self.0, &name).await
    }
    /// The automations on the project and on its collections.
    async fn triggers(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TriggerNode>> {
        let (state, user) = parts(ctx);
        let entity = access::entity(&*state.store, user, self.0.entity.as_str(), Role::Viewer)
            .await
            .map_err(errors::plain)?
            .entity;
        let here = format!("{}/{}", self.0.entity, self.0.name);
        let inside = format!("{here}/");
        let mut out = Vec::new();
        for a in state
            .store
            .list_automations(&entity, None)
            .await
            .map_err(errors::store)?
        {
            if a.scope.path == here || a.scope.path.starts_with(&inside) {
                out.push(TriggerNode::load(state, &entity, a).await?);
            }
        }
        Ok(out)
    }
}

impl ProjectNode {
    async fn collections(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Collection>> {
        parts(ctx)
            .0
            .store
            .list_collections(&self.0)
            .await
            .map_err(errors::store)
    }
}

/// Timestamps as W&B writes them: UTC, to the second, no zone (`2026-12-06T17:10:08`).
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}
