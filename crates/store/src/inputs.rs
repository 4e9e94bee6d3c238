//! Parsed inputs and outputs of store calls that are not catalog records themselves.

use herald_domain::names::{AliasName, ArtifactType, CollectionName, RunName, TagName, Username};
use herald_domain::run::RunState;
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
