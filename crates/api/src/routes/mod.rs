//! The route table: one module per resource.

pub mod artifacts;
pub mod automations;
pub mod entities;
pub mod events;
pub mod integrations;
pub mod ops;
pub mod runs;
pub mod users;

use axum::routing::{get, post, put};
use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    const P: &str = "/api/v1/entities/{entity}/projects/{project}";
    const A: &str = "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}";
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/api/v1/users", post(users::create_user))
        .route("/api/v1/viewer", get(users::viewer))
        .route(
            "/api/v1/entities",
            post(entities::create_entity).get(entities::list_entities),
        )
        .route("/api/v1/entities/{entity}", get(entities::get_entity))
        .route(
            "/api/v1/entities/{entity}/members",
            get(entities::list_members),
        )
        .route(
            "/api/v1/entities/{entity}/members/{username}",
            put(entities::set_member).delete(entities::remove_member),
        )
        .route(
            "/api/v1/entities/{entity}/projects",
            post(entities::create_project).get(entities::list_projects),
        )
        .route(
            "/api/v1/entities/{entity}/registries",
            post(entities::create_registry),
        )
        .route(P, get(entities::get_project))
        .route(
            &format!("{P}/artifacts"),
            post(artifacts::create_version).get(artifacts::list_collections),
        )
        .route(A, get(artifacts::get_collection))
        .route(&format!("{A}/tags"), post(artifacts::add_collection_tag))
        .route(
            &format!("{A}/tags/{{tag}}"),
            axum::routing::delete(artifacts::remove_collection_tag),
        )
        .route(&format!("{A}/versions"), get(artifacts::list_versions))
        .route(
            &format!("{A}/versions/{{version}}"),
            get(artifacts::get_version).delete(artifacts::unlink_version),
        )
        .route(
            &format!("{A}/versions/{{version}}/aliases"),
            post(artifacts::add_alias),
        )
        .route(
            &format!("{A}/versions/{{version}}/aliases/{{alias}}"),
            axum::routing::delete(artifacts::remove_alias),
        )
        .route(
            &format!("{A}/versions/{{version}}/tags"),
            post(artifacts::add_version_tag),
        )
        .route(
            &format!("{A}/versions/{{version}}/tags/{{tag}}"),
            axum::routing::delete(artifacts::remove_version_tag),
        )
        .route(
            &format!("{A}/versions/{{version}}/links"),
            post(artifacts::link_version),
        )
        .route(
            &format!("{P}/runs"),
            post(runs::create_run).get(runs::list_runs),
        )
        .route(
            &format!("{P}/runs/{{run}}"),
            get(runs::get_run).patch(runs::update_run),
        )
        .route(
            &format!("{P}/runs/{{run}}/history"),
            post(runs::log_history).get(runs::get_history),
        )
        .route("/api/v1/entities/{entity}/events", get(events::list_events))
        .route(
            "/api/v1/entities/{entity}/secrets",
            get(integrations::list_secrets),
        )
        .route(
            "/api/v1/entities/{entity}/secrets/{name}",
            put(integrations::put_secret).delete(integrations::delete_secret),
        )
        .route(
            "/api/v1/entities/{entity}/integrations",
            post(integrations::create_integration).get(integrations::list_integrations),
        )
        .route(
            "/api/v1/integrations/{id}",
            get(integrations::get_integration)
                .patch(integrations::update_integration)
                .delete(integrations::delete_integration),
        )
        .route(
            "/api/v1/integrations/{id}/test",
            post(integrations::test_integration),
        )
        .route(
            "/api/v1/entities/{entity}/automations",
            post(automations::create_automation).get(automations::list_automations),
        )
        .route(
            "/api/v1/automations/{id}",
            get(automations::get_automation)
                .put(automations::replace_automation)
                .patch(automations::patch_automation)
                .delete(automations::delete_automation),
        )
        .route(
            "/api/v1/automations/{id}/executions",
            get(automations::automation_executions),
        )
        .route(
            "/api/v1/entities/{entity}/executions",
            get(automations::entity_executions),
        )
        .route("/api/v1/executions/{id}", get(automations::get_execution))
        .route(
            "/api/v1/executions/{id}/redeliver",
            post(automations::redeliver),
        )
        .route(
            "/api/v1/executions/{id}/cancel",
            post(automations::cancel_execution),
        )
}
