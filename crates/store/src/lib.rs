//! herald's storage: one [`Store`] trait for everything herald keeps, and its SQL
//! implementation ([`sql::SqlStore`]) over SQLite (the embedded default) or PostgreSQL.
//!
//! Every write that the design names as an event writes its [`NewEvent`] in the same
//! transaction as the change, so the event log never disagrees with the catalog. Every
//! tenant-owned read and write takes its owner (an [`Entity`] or a [`Project`] that was found
//! through one): there is no way to reach a row without saying whose it is.
#![forbid(unsafe_code)]

mod error;
mod inputs;
pub mod sql;

use async_trait::async_trait;
use herald_domain::catalog::{
    ArtifactVersion, Collection, Entity, EntityKind, Member, Project, Role, User,
};
use herald_domain::event::{Event, PageRequest};
use herald_domain::ids::EntityId;
use herald_domain::names::{
    AliasName, CollectionName, EntityName, ProjectName, RunName, TagName, Username, VersionRef,
};
use herald_domain::run::{HistoryRow, Run, RunState};

pub use error::{StoreError, StoreResult};
pub use inputs::{HistoryPage, LoggedHistory, NewRun, NewUser, NewVersion, StoredHistoryRow};

/// Users and their API keys.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user, their personal entity (same name, kind `user`, the user as ADMIN) and
    /// their first API key (given as a hash).
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn user_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<User>>;
    async fn count_users(&self) -> StoreResult<i64>;
    async fn add_api_key(&self, user: &User, key_hash: &str) -> StoreResult<()>;
}

/// Entities, their members, and their projects and registries.
#[async_trait]
pub trait EntityStore: Send + Sync {
    /// Creates a team or organization with `creator` as its ADMIN.
    async fn create_entity(
        &self,
        name: &EntityName,
        kind: EntityKind,
        creator: &User,
    ) -> StoreResult<Entity>;
    async fn entity_by_name(&self, name: &str) -> StoreResult<Option<Entity>>;
    /// The entities `user` is a member of, with their role in each.
    async fn entities_of(&self, user: &User) -> StoreResult<Vec<(Entity, Role)>>;
    async fn member_role(&self, entity: &Entity, user: &User) -> StoreResult<Option<Role>>;
    async fn list_members(&self, entity: &Entity) -> StoreResult<Vec<Member>>;
    /// Adds `username` to the entity or changes their role; refuses to demote the last ADMIN.
    async fn set_member(
        &self,
        entity: &Entity,
        username: &Username,
        role: Role,
    ) -> StoreResult<Member>;
    /// Removes a member; refuses to remove the last ADMIN.
    async fn remove_member(&self, entity: &Entity, username: &Username) -> StoreResult<()>;

    async fn create_project(
        &self,
        entity: &Entity,
        name: &ProjectName,
        description: Option<&str>,
    ) -> StoreResult<Project>;
    async fn project(&self, entity: &Entity, name: &str) -> StoreResult<Project>;
    async fn list_projects(&self, entity: &Entity) -> StoreResult<Vec<Project>>;
}

/// Artifact collections, versions, memberships, aliases, tags and links.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Creates the next version of a sequence (creating the sequence on first use), moves
    /// `latest` onto it and applies the given aliases and tags.
    async fn create_version(
        &self,
        project: &Project,
        author: &User,
        new: NewVersion,
    ) -> StoreResult<ArtifactVersion>;
    async fn collection(&self, project: &Project, name: &str) -> StoreResult<Collection>;
    async fn list_collections(&self, project: &Project) -> StoreResult<Vec<Collection>>;
    async fn version(
        &self,
        project: &Project,
        collection: &str,
        r: &VersionRef,
    ) -> StoreResult<ArtifactVersion>;
    async fn list_versions(
        &self,
        project: &Project,
        collection: &str,
    ) -> StoreResult<Vec<ArtifactVersion>>;
    /// Puts `alias` on the version, moving it off any other version of the collection.
    async fn add_alias(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        alias: &AliasName,
    ) -> StoreResult<ArtifactVersion>;
    async fn remove_alias(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        alias: &AliasName,
    ) -> StoreResult<ArtifactVersion>;
    async fn add_version_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        tag: &TagName,
    ) -> StoreResult<ArtifactVersion>;
    async fn remove_version_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        tag: &TagName,
    ) -> StoreResult<ArtifactVersion>;
    async fn add_collection_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        tag: &TagName,
    ) -> StoreResult<Collection>;
    async fn remove_collection_tag(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        tag: &TagName,
    ) -> StoreResult<Collection>;
    /// Links a version into a registry's portfolio (created on first link, with the version's
    /// type), at the portfolio's next index, with `latest` and the given aliases.
    #[allow(clippy::too_many_arguments)]
    async fn link_version(
        &self,
        project: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
        registry: &Project,
        target: &CollectionName,
        aliases: &[AliasName],
    ) -> StoreResult<ArtifactVersion>;
    /// Removes a version's membership in a registry portfolio (the version itself stays).
    async fn unlink_version(
        &self,
        registry: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
    ) -> StoreResult<()>;
}

/// Runs and their history.
#[async_trait]
pub trait RunStore: Send + Sync {
    async fn create_run(&self, project: &Project, author: &User, new: NewRun) -> StoreResult<Run>;
    async fn run(&self, project: &Project, id: &str) -> StoreResult<Run>;
    async fn list_runs(&self, project: &Project, page: PageRequest) -> StoreResult<Vec<Run>>;
    async fn set_run_state(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        state: RunState,
    ) -> StoreResult<Run>;
    /// Appends rows to a RUNNING run's history.
    async fn log_history(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        rows: &[HistoryRow],
    ) -> StoreResult<LoggedHistory>;
    async fn history(
        &self,
        project: &Project,
        id: &str,
        page: PageRequest,
    ) -> StoreResult<HistoryPage>;
}

/// The event log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// An entity's events in the order they happened, after the page's cursor.
    async fn list_events(&self, entity: EntityId, page: PageRequest) -> StoreResult<Vec<Event>>;
}

/// Everything herald stores. Implementations make each method atomic: either the change and
/// its events are all stored, or nothing is.
#[async_trait]
pub trait Store: UserStore + EntityStore + ArtifactStore + RunStore + EventStore + 'static {
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> bool;
    /// Closes connections, waiting for those in use.
    async fn close(&self);
}
