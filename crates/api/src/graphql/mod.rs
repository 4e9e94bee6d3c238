//! `POST /graphql`: W&B's GraphQL surface for what herald holds, so that the `wandb` Python SDK
//! (`wandb.Api()` and `wandb.automations`) manages herald's automations unchanged. It sits
//! beside the REST routes and calls the same access checks, validation and store: a resolver
//! translates W&B's names and ids into those calls and nothing more.
//!
//! Where the SDK reads the HTTP status rather than the body, the answer carries it: 409 for an
//! automation name already taken, 404 for an automation to update or delete that does not
//! exist (or is another team's), 401 for no or a bad API key. Every other problem is a GraphQL
//! error (HTTP 200) whose message names the field or value at fault.

mod artifact_edits;
mod artifact_save;
mod artifacts;
mod catalog;
mod collections;
mod console;
mod errors;
mod inputs;
mod mutations;
mod page;
mod project_filter;
mod runs;
mod scalars;
mod triggers;

use async_graphql::{EmptySubscription, Schema};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;

pub use errors::STATUS;

/// The query root: the catalog and automations, runs, and artifacts by id.
#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    catalog::CatalogQuery,
    runs::RunQuery,
    artifacts::ArtifactQuery,
);

/// The mutation root: automations and integrations, runs, and saving and changing artifacts.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(
    mutations::AutomationMutation,
    runs::RunMutation,
    artifact_save::ArtifactSaveMutation,
    artifact_edits::ArtifactEditMutation,
);

/// herald's GraphQL schema.
pub type HeraldSchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest selection accepted: the SDK's deepest (a trigger's integration through
/// `viewer.projects`) is 9 levels.
const MAX_DEPTH: usize = 20;
/// Most fields (weighted by list sizes unknown to the validator) one request may select.
const MAX_COMPLEXITY: usize = 2_000;

/// The schema, with the limits every request runs under.
pub fn schema() -> HeraldSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as `docs/schema.graphql` holds it.
pub fn sdl() -> String {
    schema().sdl()
}

/// A GraphQL request as GraphQL-over-HTTP sends it. `operationName` arrives as `""` from the
/// SDK's public documents; that means "the only operation", not one named "".
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphqlRequest {
    /// The GraphQL document.
    query: String,
    /// Which of the document's operations to run; absent, null or empty for its only one.
    #[serde(default)]
    operation_name: Option<String>,
    /// The operation's variables.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Value>,
}

/// A GraphQL answer: `data` as the document selected it (null where a field failed), and
/// `errors`, each naming what went wrong.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct GraphqlAnswer {
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Value>,
    errors: Option<Vec<GraphqlError>>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct GraphqlError {
    message: String,
    #[schema(value_type = Option<Vec<Object>>)]
    locations: Option<Vec<serde_json::Value>>,
    /// Field names and list indexes from the root to the field that failed.
    path: Option<Vec<serde_json::Value>>,
    /// `code` (`BAD_USER_INPUT`, `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`, …) and, where it sets the
    /// HTTP status, `status`.
    #[schema(value_type = Option<Object>)]
    extensions: Option<serde_json::Value>,
}

/// The parser's multi-line syntax error (` --> 1:28`, the line, a caret, `= expected …`) as
/// one line: `syntax error at 1:28: expected …`. Other messages are kept.
fn one_line(message: &str) -> String {
    let Some(rest) = message.trim_start().strip_prefix("-->") else {
        return message.to_string();
    };
    let at = rest.lines().next().unwrap_or_default().trim();
    let what = message
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("= "))
        .unwrap_or("unexpected input");
    format!("syntax error at {at}: {what}")
}

/// An error before execution, in GraphQL's shape.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let mut res = (
        status,
        axum::Json(json!({"errors": [{"message": message.into()}]})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"herald\""),
        );
    }
    res
}

/// W&B's GraphQL API, for the `wandb` SDK: the schema is `docs/schema.graphql`. GraphQL
/// errors travel with status 200, except a taken automation name (409) and an automation to
/// update or delete that is not there or not the caller's (404), which the SDK reads from the
/// status.
#[utoipa::path(post, path = "/graphql", tag = "graphql", request_body = GraphqlRequest,
    responses(
        (status = 200, body = GraphqlAnswer, description = "Executed: `data`, and `errors` naming any problem."),
        (status = 400, body = GraphqlAnswer, description = "Not a GraphQL request: the body is not JSON, has no `query`, has a key it does not know, or `variables` is not an object."),
        (status = 401, body = GraphqlAnswer, description = "No API key, or not a valid one."),
        (status = 404, body = GraphqlAnswer, description = "The automation to update or delete does not exist or is not the caller's."),
        (status = 409, body = GraphqlAnswer, description = "The entity already has an automation of that name."),
        (status = 415, body = GraphqlAnswer, description = "The body is not declared JSON (`Content-Type: application/json`).")))]
pub async fn handler(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let user = match crate::extract::caller_from_headers(&headers, &state).await {
        Ok(u) => u,
        Err(e) => return refuse(e.status, e.message),
    };
    if !crate::extract::declared_json(&headers) {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the GraphQL request as Content-Type: application/json",
        );
    }
    let envelope: GraphqlRequest = match crate::extract::parse_json(&body) {
        Ok(e) => e,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.message),
    };
    tracing::debug!(
        operation = envelope.operation_name.as_deref().unwrap_or(""),
        query = %envelope.query.chars().take(200).collect::<String>(),
        variables = %envelope.variables.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        "graphql request"
    );
    let mut request = async_graphql::Request::new(envelope.query);
    if let Some(name) = envelope.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    match envelope.variables {
        None | Some(serde_json::Value::Null) => {}
        Some(v @ serde_json::Value::Object(_)) => {
            request = request.variables(async_graphql::Variables::from_json(v));
        }
        Some(_) => return refuse(StatusCode::BAD_REQUEST, "variables must be a JSON object"),
    }
    let schema = state.graphql.clone();
    let mut response = schema.execute(request.data(state).data(user)).await;
    for e in &mut response.errors {
        e.message = one_line(&e.message);
    }
    let status = errors::status_of(&response.errors);
    let body = serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn syntax_errors_read_on_one_line() {
        let pest = " --> 1:21\n  |\n1 | query { viewer { id \n  |                     ^---\n  |\n  = expected selection";
        assert_eq!(
            super::one_line(pest),
            "syntax error at 1:21: expected selection"
        );
        assert_eq!(super::one_line("Unknown field"), "Unknown field");
    }

    #[test]
    fn the_checked_in_schema_is_the_servers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema.graphql");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        let now = super::sdl();
        if std::env::var_os("HERALD_WRITE_SCHEMA").is_some() {
            std::fs::write(path, &now).unwrap();
            return;
        }
        assert!(
            on_disk == now,
            "docs/schema.graphql is not the schema the server serves; \
             run `HERALD_WRITE_SCHEMA=1 cargo test -p herald-api the_checked_in_schema` and commit it"
        );
    }
}
