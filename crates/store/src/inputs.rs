//! Parsed inputs and outputs of store calls that are not catalog records themselves.

use herald_domain::automation::{AutomationName, IntegrationName, SecretName, WebhookUrl};
use herald_domain::console::NumberedLine;
use herald_domain::names::{AliasName, ArtifactType, CollectionName, RunName, TagName, Username};
use herald_domain::run::{HistoryRow, RunState};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub email: Option<String>,
    pub is_admin: bool,
    /// SHA-256 of the user's first API key; the key itself is never stored.
    pub key_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewVersion {
    pub collection: CollectionName,
    pub artifact_type: ArtifactType,
    pub digest: Option<String>,
    pub description: Option<String>,
    pub metadata: serde_json::Value,
    pub aliases: Vec<AliasName>,
    pub tags: Vec<TagName>,
    pub run: Option<RunName>,
}

#[derive(Debug, Clone)]
pub struct NewRun {
    /// The run id; generated when absent.
    pub id: RunName,
    pub display_name: Option<String>,
    pub tags: Vec<TagName>,
    pub config: serde_json::Value,
    pub state: RunState,
}

/// W&B's UpsertBucket on a run that exists: each field given replaces the stored one; absent
/// fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct RunPatch {
    pub display_name: Option<String>,
    pub tags: Option<Vec<TagName>>,
    pub config: Option<serde_json::Value>,
    pub notes: Option<String>,
    /// The SDK resumes the run: a FINISHED or FAILED run is RUNNING again (as in W&B).
    pub resume: bool,
}

/// One post to W&B's file_stream, parsed. Each file's lines start at its `offset`: lines the
/// run already has are skipped, so a resent post adds nothing; a gap is refused.
#[derive(Debug, Clone, Default)]
pub struct StreamPost {
    /// History lines from an offset: each a row, or `None` for a line with no value herald keeps.
    pub history: Option<(i64, Vec<Option<HistoryRow>>)>,
    /// The whole summary, replacing the stored one.
    pub summary: Option<serde_json::Value>,
    /// Console lines: from an offset, how many, and those of them kept (by the console
    /// policy; each may rewrite a line the run has).
    pub log: Option<ConsoleChunk>,
    /// System-metrics lines: from an offset, how many (herald counts them).
    pub events: Option<(i64, i64)>,
    /// The run ended (`complete`) with this exit code: FINISHED, FAILED, or KILLED when it was
    /// asked to stop (see `wandb_run::exit_state`).
    pub exit: Option<i64>,
}

/// `output.log` lines posted from `offset`: `count` of them, of which `kept` are stored.
#[derive(Debug, Clone, Default)]
pub struct ConsoleChunk {
    pub offset: i64,
    pub count: i64,
    pub kept: Vec<NumberedLine>,
}

/// A page of a run's kept console lines, and how many lines the run has streamed (kept or not).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsolePage {
    pub lines: Vec<NumberedLine>,
    pub line_count: i64,
}

/// What a history append stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedHistory {
    pub rows: usize,
    pub values: usize,
    pub first_step: i64,
    pub last_step: i64,
}

/// A stored history row, in logging order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredHistoryRow {
    /// Position in the run's log; the cursor for the next page.
    pub seq: i64,
    pub step: i64,
    pub values: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage {
    pub rows: Vec<StoredHistoryRow>,
}

/// A new webhook or Slack integration.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    pub kind: herald_domain::automation::IntegrationKind,
    pub name: IntegrationName,
    /// Webhooks: where deliveries go; none for Slack.
    pub url: Option<WebhookUrl>,
    pub access_token_secret: Option<SecretName>,
    pub signing_secret: Option<SecretName>,
    pub slack: Option<herald_domain::automation::SlackTarget>,
    pub enabled: bool,
}

/// A partial update of an integration; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default)]
pub struct IntegrationPatch {
    pub name: Option<IntegrationName>,
    pub url: Option<WebhookUrl>,
    pub access_token_secret: Option<Option<SecretName>>,
    pub signing_secret: Option<Option<SecretName>>,
    pub slack: Option<herald_domain::automation::SlackTarget>,
    pub enabled: Option<bool>,
}

/// A new or replacement automation, validated by the engine.
#[derive(Debug, Clone)]
pub struct NewAutomation {
    pub name: AutomationName,
    pub description: Option<String>,
    pub enabled: bool,
    pub scope: herald_domain::automation::Scope,
    pub event: herald_domain::automation::EventSpec,
    pub action: herald_domain::automation::Action,
    pub rate_limit_per_minute: u32,
    pub cooldown_seconds: Option<u32>,
    pub created_by: String,
}

/// An execution the matcher decided on.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub entity_id: herald_domain::ids::EntityId,
    pub automation_id: herald_domain::ids::AutomationId,
    pub automation_name: String,
    pub event_id: herald_domain::ids::EventId,
    pub event_type: herald_domain::event::EventType,
    pub action_type: herald_domain::automation::ActionType,
    pub integration_id: Option<herald_domain::ids::IntegrationId>,
    pub status: herald_domain::automation::ExecutionStatus,
    pub reason: Option<String>,
    /// Shared by every execution of one automation's action (the matcher holds one copy).
    pub action: std::sync::Arc<serde_json::Value>,
    pub variables: serde_json::Value,
    pub request: serde_json::Value,
    /// When the first attempt is due (PENDING executions only).
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set when the matching process delivers the execution itself: it is stored RUNNING
    /// under a lease until then, as if claimed, and needs no separate claim.
    pub lease_until: Option<chrono::DateTime<chrono::Utc>>,
    /// For run-metric firings: the run whose cooldown starts now (stored with the execution).
    pub fired_run: Option<herald_domain::ids::RunId>,
}

/// Which executions to list.
#[derive(Debug, Clone, Copy)]
pub struct ExecutionQuery {
    pub automation: Option<herald_domain::ids::AutomationId>,
    pub status: Option<herald_domain::automation::ExecutionStatus>,
    pub page: herald_domain::event::PageRequest,
}

/// An execution a worker has leased for delivery.
#[derive(Debug, Clone)]
pub struct ClaimedExecution {
    pub id: herald_domain::ids::ExecutionId,
    pub entity_id: herald_domain::ids::EntityId,
    pub automation_id: herald_domain::ids::AutomationId,
    pub integration_id: Option<herald_domain::ids::IntegrationId>,
    /// Shared with the matcher's copy when the execution was handed off, so deliveries can
    /// tell an action they have prepared before without comparing it.
    pub action: std::sync::Arc<serde_json::Value>,
    pub variables: serde_json::Value,
    pub attempt_count: i64,
    pub round_attempts: i64,
}

/// What one delivery attempt observed.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    /// 1 for the first attempt of the execution (claims carry the count so far).
    pub number: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration: std::time::Duration,
    pub status_code: Option<u16>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// Where an execution goes after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Finished,
    RetryAt(chrono::DateTime<chrono::Utc>),
    Failed(String),
    /// Nothing was sent: the execution was cancelled (its automation or integration withdrawn)
    /// before it started. No attempt is stored; the execution is CANCELLED with this reason.
    Cancelled(String),
}

/// W&B's CreateArtifact: a version the SDK is about to upload, committed later.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub collection: CollectionName,
    pub artifact_type: ArtifactType,
    /// W&B's manifest digest (hex MD5), checked against the manifest at commit.
    pub digest: String,
    pub description: Option<String>,
    pub metadata: serde_json::Value,
    /// Put on the version at commit (`latest` is herald's and is left out).
    pub aliases: Vec<AliasName>,
    pub run: Option<RunName>,
    /// Whether a version of the sequence with the same digest stands for this one.
    pub dedupe: bool,
}

/// A pending upload, as CreateArtifact left it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: herald_domain::ids::UploadId,
    pub collection: String,
    pub artifact_type: String,
    pub digest: String,
    pub description: Option<String>,
    pub metadata: serde_json::Value,
    /// Hex MD5 of the manifest the SDK announced (CreateArtifactManifest with a digest).
    pub manifest_md5: Option<String>,
    /// The version it became, once committed.
    pub version: Option<herald_domain::ids::VersionId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// What CreateArtifact found.
#[derive(Debug, Clone)]
pub enum UploadStart {
    /// A version of the sequence has this digest already; the SDK uploads nothing.
    Existing(Box<herald_domain::catalog::ArtifactVersion>),
    Pending(herald_domain::ids::UploadId),
}

/// The files a committed version holds, from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionContents {
    /// Hex MD5 of the manifest, which is stored content-addressed.
    pub manifest_md5: String,
    pub file_count: i64,
    pub size: i64,
}

/// W&B's UpdateArtifact: fields given are replaced.
#[derive(Debug, Clone, Default)]
pub struct VersionEdit {
    pub description: Option<String>,
    pub metadata: Option<serde_json::Value>,
}
