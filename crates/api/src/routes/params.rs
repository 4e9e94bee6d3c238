//! The path parameters of each kind of route, as handlers extract them (by name) and as the
//! document lists them, with the naming rule each one follows.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::doc::{Identifier, Label};
use herald_domain::automation::SecretName;

/// `{entity}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EntityPath {
    /// The entity (team, organization or user).
    #[param(value_type = Identifier)]
    pub entity: String,
}

/// `{entity}/{username}` of a member.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    /// The member's username.
    #[param(value_type = Identifier)]
    pub username: String,
}

/// `{entity}/{name}` of a secret.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SecretPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    #[param(value_type = SecretName)]
    pub name: String,
}

/// `{entity}/{project}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProjectPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    /// The project, or a registry's project (`wandb-registry-NAME`).
    #[param(value_type = Identifier)]
    pub project: String,
}

/// `{entity}/{project}/{run}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RunPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    #[param(value_type = Identifier)]
    pub project: String,
    /// The run's id.
    #[param(value_type = Identifier)]
    pub run: String,
}

/// `{entity}/{project}/{collection}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CollectionPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    #[param(value_type = Identifier)]
    pub project: String,
    /// The artifact collection.
    #[param(value_type = Identifier)]
    pub collection: String,
}

/// `{entity}/{project}/{collection}/{tag}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CollectionTagPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    #[param(value_type = Identifier)]
    pub project: String,
    #[param(value_type = Identifier)]
    pub collection: String,
    #[param(value_type = Label)]
    pub tag: String,
}

/// `{entity}/{project}/{collection}/{version}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    #[param(value_type = Identifier)]
    pub project: String,
    #[param(value_type = Identifier)]
    pub collection: String,
    /// `vN` or an alias (`latest`, `production`).
    #[param(value_type = Label)]
    pub version: String,
}

/// `{entity}/{project}/{collection}/{version}/{alias}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionAliasPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    #[param(value_type = Identifier)]
    pub project: String,
    #[param(value_type = Identifier)]
    pub collection: String,
    /// `vN` or an alias.
    #[param(value_type = Label)]
    pub version: String,
    #[param(value_type = Label)]
    pub alias: String,
}

/// `{entity}/{project}/{collection}/{version}/{tag}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionTagPath {
    #[param(value_type = Identifier)]
    pub entity: String,
    #[param(value_type = Identifier)]
    pub project: String,
    #[param(value_type = Identifier)]
    pub collection: String,
    /// `vN` or an alias.
    #[param(value_type = Label)]
    pub version: String,
    #[param(value_type = Label)]
    pub tag: String,
}

/// `{id}` of an integration, automation or execution.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    pub id: i64,
}
