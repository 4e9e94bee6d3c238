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
use chrono::{DateTime, Utc};
use herald_domain::automation::{Automation, Execution, Integration, SecretMeta};
use herald_domain::catalog::{
    ArtifactVersion, Collection, Entity, EntityKind, Member, Project, Role, User,
};
use herald_domain::event::{Event, PageRequest};
use herald_domain::ids::{
    AutomationId, CollectionId, EntityId, ExecutionId, IntegrationId, ProjectId, RunId, UploadId,
    VersionId,
};
use herald_domain::names::{
    AliasName, CollectionName, EntityName, ProjectName, RunName, TagName, Username, VersionRef,
};
use herald_domain::run::{HistoryRow, Run, RunState};

pub use error::{StoreError, StoreResult};
pub use inputs::{
    AttemptOutcome, ClaimedExecution, ConsoleChunk, ConsolePage, ExecutionQuery, HistoryPage,
    IntegrationPatch, LoggedHistory, NewAttempt, NewAutomation, NewExecution, NewIntegration,
    NewRun, NewUpload, NewUser, NewVersion, RunPatch, StoredHistoryRow, StreamPost, Upload,
    UploadStart, VersionContents, VersionEdit,
};

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
    /// Creates an entity with `creator` as its ADMIN, a team in `organization` if given.
    async fn create_entity(
        &self,
        name: &EntityName,
        kind: EntityKind,
        organization: Option<&Entity>,
        creator: &User,
    ) -> StoreResult<Entity>;
    /// Puts a team in `organization`, or takes it out of any with `None`.
    async fn set_organization(
        &self,
        team: &Entity,
        organization: Option<&Entity>,
    ) -> StoreResult<Entity>;
    async fn entity_by_name(&self, name: &str) -> StoreResult<Option<Entity>>;
    async fn entity_by_id(&self, id: EntityId) -> StoreResult<Option<Entity>>;
    /// Entity `name` and `user`'s role there (none if not a member), in one read.
    async fn entity_with_role(
        &self,
        name: &str,
        user: &User,
    ) -> StoreResult<Option<(Entity, Option<Role>)>>;
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
    /// The project (or registry) with this id, in whichever entity holds it.
    async fn project_by_id(&self, id: ProjectId) -> StoreResult<Option<Project>>;
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
    /// The collection with this id and the project holding it.
    async fn collection_by_id(
        &self,
        id: CollectionId,
    ) -> StoreResult<Option<(Project, Collection)>>;
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
    /// The metadata of the version an event of `entity` names, for `${artifact_metadata.KEY}`.
    /// Only the matcher calls this, with ids taken from stored events.
    async fn version_metadata(
        &self,
        entity: EntityId,
        id: VersionId,
    ) -> StoreResult<Option<serde_json::Value>>;
    /// Removes a version's membership in a registry portfolio (the version itself stays).
    async fn unlink_version(
        &self,
        registry: &Project,
        author: &User,
        collection: &str,
        r: &VersionRef,
    ) -> StoreResult<()>;
}

/// Artifacts saved the way W&B's SDK saves them (reserve, upload files, commit), and what the
/// SDK reads of a version beyond the catalog: every collection it is in, its files.
#[async_trait]
pub trait ArtifactSaveStore: Send + Sync {
    /// CreateArtifact: the newest version of the sequence with `new.digest`, when there is one
    /// (the user's aliases are put on it), or else a new pending upload.
    async fn begin_upload(
        &self,
        project: &Project,
        author: &User,
        new: NewUpload,
    ) -> StoreResult<UploadStart>;
    /// An upload, and the project it is in.
    async fn upload(&self, id: UploadId) -> StoreResult<Option<(Project, Upload)>>;
    /// Records the manifest the SDK is about to PUT (its hex MD5).
    async fn set_upload_manifest(&self, id: UploadId, manifest_md5: &str) -> StoreResult<()>;
    /// CommitArtifact: makes the upload the sequence's next version, with its aliases and a
    /// CREATE_ARTIFACT event. Committing a committed upload returns its version unchanged.
    /// `files` are the hex MD5s of the content the version holds (its manifest's entries).
    async fn commit_upload(
        &self,
        id: UploadId,
        author: &User,
        contents: VersionContents,
        files: &[String],
    ) -> StoreResult<ArtifactVersion>;
    /// A version as its home sequence sees it, and that sequence's project.
    async fn version_by_id(&self, id: VersionId)
        -> StoreResult<Option<(Project, ArtifactVersion)>>;
    /// Every collection a version is in (its sequence first, then the portfolios it is linked
    /// into, in link order), and the version as each sees it.
    async fn version_memberships(
        &self,
        id: VersionId,
    ) -> StoreResult<Vec<(Project, Collection, ArtifactVersion)>>;
    /// The files of a version saved through the SDK; `None` for one made over REST.
    async fn version_contents(&self, id: VersionId) -> StoreResult<Option<VersionContents>>;
    /// UpdateArtifact's description and metadata.
    async fn edit_version(&self, id: VersionId, edit: VersionEdit) -> StoreResult<()>;
    /// `run.use_artifact`: records that the run used the version (once).
    async fn use_version(&self, run: RunId, version: VersionId) -> StoreResult<()>;
    /// Which of `md5s` (hex) some version holds, as a file or as its manifest.
    async fn content_in_use(&self, md5s: &[String]) -> StoreResult<Vec<String>>;
    /// Deletes uploads begun before `before` and never committed; returns how many.
    async fn purge_uploads(&self, before: DateTime<Utc>) -> StoreResult<u64>;
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
    /// The project and id of the run with row id `row`.
    async fn run_by_row(&self, row: RunId) -> StoreResult<Option<(Project, String)>>;
    /// W&B's UpsertBucket: creates run `id` (RUNNING) with what `patch` gives, or changes the
    /// fields it gives of the existing run. Returns the run and whether it was created.
    async fn upsert_run(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        patch: RunPatch,
    ) -> StoreResult<(Run, bool)>;
    /// Applies one file_stream post in one transaction: new history rows (a LOG_RUN_HISTORY
    /// event), the summary, the kept console lines, the line counts, and the final state (a
    /// RUN_STATE event).
    async fn stream_run(
        &self,
        project: &Project,
        author: &User,
        id: &RunName,
        post: StreamPost,
    ) -> StoreResult<Run>;
    /// Asks RUNNING run `id` to stop: the SDK running it is told so in its file_stream answers,
    /// and interrupts the script. Asking again changes nothing; a run that has ended is a
    /// conflict.
    async fn request_stop(&self, project: &Project, id: &RunName) -> StoreResult<Run>;
    /// Run `id`'s kept console lines by number, from the one after the page's cursor (a line
    /// number), with how many lines the run has streamed.
    async fn console(
        &self,
        project: &Project,
        id: &str,
        page: PageRequest,
    ) -> StoreResult<ConsolePage>;
    /// Run `id`'s last `last` kept console lines, in order, with how many lines it has streamed.
    async fn console_tail(
        &self,
        project: &Project,
        id: &str,
        last: u32,
    ) -> StoreResult<ConsolePage>;
}

/// The event log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// An entity's events in the order they happened, after the page's cursor.
    async fn list_events(&self, entity: EntityId, page: PageRequest) -> StoreResult<Vec<Event>>;
}

/// A secret as stored: sealed by the engine, never opened by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub sealed: String,
    /// Rotated-out values still valid, newest first, with the time each stops being valid.
    pub previous: Vec<(String, DateTime<Utc>)>,
}

/// Team secrets (sealed by the engine; the store never sees a plain value), webhook
/// integrations and automations.
#[async_trait]
pub trait AutomationStore: Send + Sync {
    /// Creates or replaces a secret; returns it and whether it was new. With `retire`, a
    /// replaced value stays valid for that long (kept among the secret's previous values, at
    /// most `MAX_PREVIOUS_SECRET_VALUES` of them), and zero ends every previous value at once;
    /// without it (the same value put again), the previous values stay as they are.
    async fn put_secret(
        &self,
        entity: &Entity,
        name: &str,
        sealed: &str,
        retire: Option<std::time::Duration>,
    ) -> StoreResult<(SecretMeta, bool)>;
    async fn list_secrets(&self, entity: &Entity) -> StoreResult<Vec<SecretMeta>>;
    /// Deletes a secret, previous values and all; refuses while an integration refers to it.
    async fn delete_secret(&self, entity: &Entity, name: &str) -> StoreResult<()>;
    /// A secret's sealed value and its previous values still valid now.
    async fn sealed_secret(
        &self,
        entity: EntityId,
        name: &str,
    ) -> StoreResult<Option<SealedSecret>>;

    /// Creates an integration; its secret names must exist in the entity.
    async fn create_integration(
        &self,
        entity: &Entity,
        new: NewIntegration,
    ) -> StoreResult<Integration>;
    async fn list_integrations(&self, entity: &Entity) -> StoreResult<Vec<Integration>>;
    /// The entity owning integration `id`, for access checks before any scoped read.
    async fn integration_owner(&self, id: IntegrationId) -> StoreResult<Option<EntityId>>;
    async fn integration(&self, entity: &Entity, id: IntegrationId) -> StoreResult<Integration>;
    /// Delivery's unscoped read: the integration an execution of `entity` points at.
    async fn integration_for_delivery(
        &self,
        entity: EntityId,
        id: IntegrationId,
    ) -> StoreResult<Option<Integration>>;
    async fn update_integration(
        &self,
        entity: &Entity,
        id: IntegrationId,
        patch: IntegrationPatch,
    ) -> StoreResult<Integration>;
    /// Deletes an integration; refuses while an automation uses it.
    async fn delete_integration(&self, entity: &Entity, id: IntegrationId) -> StoreResult<()>;
    /// Disables an integration with a reason users will see (e.g. the destination said 410 Gone)
    /// and cancels its waiting executions but `except`, the one whose attempt disabled it.
    async fn disable_integration(
        &self,
        entity: EntityId,
        id: IntegrationId,
        reason: &str,
        except: ExecutionId,
    ) -> StoreResult<()>;

    async fn create_automation(
        &self,
        entity: &Entity,
        new: NewAutomation,
    ) -> StoreResult<Automation>;
    async fn list_automations(
        &self,
        entity: &Entity,
        name: Option<&str>,
    ) -> StoreResult<Vec<Automation>>;
    async fn automation_owner(&self, id: AutomationId) -> StoreResult<Option<EntityId>>;
    async fn automation(&self, entity: &Entity, id: AutomationId) -> StoreResult<Automation>;
    /// Replaces every field of an automation but its id, creator and creation time.
    async fn replace_automation(
        &self,
        entity: &Entity,
        id: AutomationId,
        new: NewAutomation,
    ) -> StoreResult<Automation>;
    async fn delete_automation(&self, entity: &Entity, id: AutomationId) -> StoreResult<()>;
    /// Every enabled automation, for the matcher's index.
    async fn enabled_automations(&self) -> StoreResult<Vec<Automation>>;
    /// A number that changes whenever any automation changes.
    async fn automation_epoch(&self) -> StoreResult<i64>;
}

/// The matcher's and the delivery workers' queue: events in, executions and attempts out.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// The id of the last event the matcher has handled.
    async fn matcher_cursor(&self) -> StoreResult<i64>;
    /// Events written but not yet matched.
    async fn matcher_lag(&self) -> StoreResult<i64>;
    /// Deletes finished, failed, skipped and cancelled executions (and their attempts) last
    /// updated before `before`; returns how many.
    async fn purge_executions(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Events of every entity after `after`, oldest first.
    async fn events_after(&self, after: i64, limit: u32) -> StoreResult<Vec<Event>>;
    /// Stores `executions` and moves the matcher cursor to `up_to` in one transaction, so an
    /// event is never matched twice nor skipped.
    /// Only if the cursor still stands at `from` (else another process matched these events
    /// first: nothing is stored and `None` is returned), so each event is matched exactly
    /// once however many processes share the store.
    /// Returns each execution's id, in the order given (`None` for one already stored, or
    /// already given earlier in `executions`).
    async fn record_matches(
        &self,
        from: i64,
        up_to: i64,
        executions: &[NewExecution],
    ) -> StoreResult<Option<Vec<Option<ExecutionId>>>>;
    /// Executions of `automation` created (not skipped) since `since`, counted up to `cap`,
    /// for its rate limit.
    async fn recent_executions(
        &self,
        automation: AutomationId,
        since: DateTime<Utc>,
        cap: i64,
    ) -> StoreResult<i64>;
    /// Leases up to `limit` due executions until `lease_until`, skipping destinations in
    /// `busy` (integrations at their concurrency limit).
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        busy: &[IntegrationId],
    ) -> StoreResult<Vec<ClaimedExecution>>;
    /// The earliest time a PENDING execution falls due, if any.
    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// Records attempts and moves their executions on, all in one transaction (workers batch
    /// what finished together, so a busy server commits once for many deliveries).
    async fn record_attempts(
        &self,
        done: &[(ExecutionId, NewAttempt, AttemptOutcome)],
    ) -> StoreResult<()>;
    /// Extends the leases of executions still RUNNING (a live worker's heartbeat).
    async fn renew_leases(&self, ids: &[ExecutionId], until: DateTime<Utc>) -> StoreResult<()>;
    /// Returns executions a dead process left RUNNING to PENDING (single-node start-up).
    async fn release_running(&self) -> StoreResult<u64>;
    async fn list_executions(
        &self,
        entity: &Entity,
        query: ExecutionQuery,
    ) -> StoreResult<Vec<Execution>>;
    async fn execution_owner(&self, id: ExecutionId) -> StoreResult<Option<EntityId>>;
    /// One execution with its attempts.
    async fn execution(&self, entity: &Entity, id: ExecutionId) -> StoreResult<Execution>;
    /// Cancels a pending or running execution: no new attempt starts (one in flight may
    /// finish, and leaves it CANCELLED). Conflict when it is already final.
    async fn cancel_execution(&self, entity: &Entity, id: ExecutionId) -> StoreResult<Execution>;
    /// Starts a new round of delivery for a finished or failed execution (same id, so receivers
    /// can deduplicate).
    async fn redeliver(&self, entity: &Entity, id: ExecutionId) -> StoreResult<Execution>;
}

/// What run-metric and run-state matching reads.
#[async_trait]
pub trait RunTriggerStore: Send + Sync {
    /// The run an event of `entity` names (by project and run id), if it still exists.
    async fn run_for_event(
        &self,
        entity: EntityId,
        project: &str,
        run: &str,
    ) -> StoreResult<Option<Run>>;
    /// A run's history rows with `first_seq <= seq <= last_seq`, in logging order.
    async fn history_range(
        &self,
        run: RunId,
        first_seq: i64,
        last_seq: i64,
    ) -> StoreResult<Vec<StoredHistoryRow>>;
    /// Up to `limit` history rows logged before `before_seq`, newest first.
    async fn history_before(
        &self,
        run: RunId,
        before_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredHistoryRow>>;
    /// When `automation` last fired for `run` (cooldowns survive restarts).
    async fn last_fired(
        &self,
        automation: AutomationId,
        run: RunId,
    ) -> StoreResult<Option<DateTime<Utc>>>;
}

/// Everything herald stores. Implementations make each method atomic: either the change and
/// its events are all stored, or nothing is.
#[async_trait]
pub trait Store:
    UserStore
    + EntityStore
    + ArtifactStore
    + ArtifactSaveStore
    + RunStore
    + EventStore
    + AutomationStore
    + ExecutionStore
    + RunTriggerStore
    + 'static
{
    /// Whether the database answers (for `/readyz`).
    async fn ping(&self) -> bool;
    /// Closes connections, waiting for those in use.
    async fn close(&self);
}
