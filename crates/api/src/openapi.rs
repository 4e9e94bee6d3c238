//! The OpenAPI document, generated from the handlers' annotations and the types they use.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{artifacts, automations, entities, events, integrations, ops, runs, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "herald", description = "Automations for ML teams: the catalog and its events, automations, integrations, secrets and execution history."),
    paths(
        ops::healthz, ops::readyz, ops::openapi,
        users::create_user, users::viewer,
        entities::create_entity, entities::list_entities, entities::get_entity, entities::list_members,
        entities::set_member, entities::remove_member, entities::create_project, entities::list_projects,
        entities::get_project, entities::create_registry,
        artifacts::create_version, artifacts::list_collections, artifacts::get_collection, artifacts::list_versions,
        artifacts::get_version, artifacts::add_alias, artifacts::remove_alias, artifacts::add_version_tag,
        artifacts::remove_version_tag, artifacts::add_collection_tag, artifacts::remove_collection_tag,
        artifacts::link_version, artifacts::unlink_version,
        runs::create_run, runs::list_runs, runs::get_run, runs::update_run, runs::log_history, runs::get_history,
        events::list_events,
        integrations::put_secret, integrations::list_secrets, integrations::delete_secret,
        integrations::create_integration, integrations::list_integrations, integrations::get_integration,
        integrations::update_integration, integrations::delete_integration, integrations::test_integration,
        automations::create_automation, automations::list_automations, automations::get_automation,
        automations::replace_automation, automations::patch_automation, automations::delete_automation,
        automations::automation_executions, automations::entity_executions, automations::get_execution,
        automations::redeliver,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("basic" = [])),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The document as JSON text, built once.
pub fn openapi_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_string())
    })
}
