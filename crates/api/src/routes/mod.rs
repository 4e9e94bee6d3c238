//! The route table: one module per resource. Each handler's `#[utoipa::path]` is the only
//! place its path and method are written; the router and the document are both built from
//! those annotations, so a route cannot be served undocumented or documented unserved.

pub mod artifacts;
pub mod automations;
pub mod entities;
pub mod events;
pub mod file_stream;
pub mod integrations;
pub mod ops;
pub mod params;
pub mod runs;
pub mod storage;
pub mod users;

use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiDoc;
use crate::AppState;

/// The routes and the document that describes them. Each `routes!` groups the handlers of one
/// path (it mounts them all on each path they name).
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::openapi))
        .routes(routes!(users::create_user))
        .routes(routes!(users::viewer))
        .routes(routes!(entities::create_entity, entities::list_entities))
        .routes(routes!(entities::get_entity, entities::update_entity))
        .routes(routes!(entities::list_members))
        .routes(routes!(entities::set_member, entities::remove_member))
        .routes(routes!(entities::create_project, entities::list_projects))
        .routes(routes!(entities::create_registry))
        .routes(routes!(entities::get_project))
        .routes(routes!(
            artifacts::create_version,
            artifacts::list_collections
        ))
        .routes(routes!(artifacts::get_collection))
        .routes(routes!(artifacts::add_collection_tag))
        .routes(routes!(artifacts::remove_collection_tag))
        .routes(routes!(artifacts::list_versions))
        .routes(routes!(artifacts::get_version, artifacts::unlink_version))
        .routes(routes!(artifacts::add_alias))
        .routes(routes!(artifacts::remove_alias))
        .routes(routes!(artifacts::add_version_tag))
        .routes(routes!(artifacts::remove_version_tag))
        .routes(routes!(artifacts::link_version))
        .routes(routes!(runs::create_run, runs::list_runs))
        .routes(routes!(runs::get_run, runs::update_run))
        .routes(routes!(runs::stop_run))
        .routes(routes!(runs::log_history, runs::get_history))
        .routes(routes!(runs::get_console))
        .routes(routes!(events::list_events))
        .routes(routes!(integrations::list_secrets))
        .routes(routes!(
            integrations::put_secret,
            integrations::delete_secret
        ))
        .routes(routes!(
            integrations::create_integration,
            integrations::list_integrations
        ))
        .routes(routes!(
            integrations::get_integration,
            integrations::update_integration,
            integrations::delete_integration
        ))
        .routes(routes!(integrations::test_integration))
        .routes(routes!(
            automations::create_automation,
            automations::list_automations
        ))
        .routes(routes!(
            automations::get_automation,
            automations::replace_automation,
            automations::patch_automation,
            automations::delete_automation
        ))
        .routes(routes!(automations::automation_executions))
        .routes(routes!(automations::entity_executions))
        .routes(routes!(automations::get_execution))
        .routes(routes!(automations::redeliver))
        .routes(routes!(automations::cancel_execution))
        .routes(routes!(crate::graphql::handler))
        .routes(routes!(file_stream::file_stream))
        .routes(routes!(storage::upload, storage::download))
        .split_for_parts();
    crate::openapi::finish(&mut doc);
    (router, doc)
}
