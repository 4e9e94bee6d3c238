//! The OpenAPI document: its header (info, security, the hand-written schemas), and the
//! additions made to every operation once the routes have put their own annotations in it
//! (authentication schemes, the error answers that follow from an operation's shape, links from
//! created resources). The paths themselves come from the route table in [`crate::routes`].

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// What the routes' annotations do not say; they add the paths and the schemas they use.
#[derive(OpenApi)]
#[openapi(
    info(title = "herald", description = "Automations for ML teams: the catalog and its events, automations, integrations, secrets and execution history.\n\nErrors are `{\"error\": {\"code\", \"message\", \"path\"?}}`, `path` naming the field or parameter at fault. Request bodies are JSON of at most 1 MiB (1048576 bytes), apart from file uploads to `/storage/v1`; no string in a body, path or query may hold the NUL character (U+0000), apart from the console lines of a file_stream post, which keep it as U+FFFD."),
    components(schemas(
        crate::doc::Identifier, crate::doc::RegistryName, crate::doc::Label,
        herald_domain::automation::SecretName, herald_domain::automation::IntegrationName,
        herald_domain::automation::AutomationName, crate::doc::DisplayName, crate::doc::BlobKeyPath,
    )),
    security(("bearer" = []), ("basic" = [])),
)]
pub struct ApiDoc;

/// Completes the document the route table collected.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    spell_wildcards(doc);
    Security.modify(doc);
    ErrorResponses.modify(doc);
    Links.modify(doc);
}

/// A route that takes the rest of the path (`/storage/v1/{*key}`) is written as axum matches
/// it; OpenAPI names its parameter `{key}`.
fn spell_wildcards(doc: &mut utoipa::openapi::OpenApi) {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
}

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

/// Adds the error answers that follow from an operation's shape, so that no handler can
/// forget one: 401 wherever a key is required, 400 wherever there is a body or a parameter to
/// get wrong (a path or query value holding `%00` is one), 404 wherever a path names something,
/// 413 wherever a body is read, and 415 wherever it must be JSON. Answers that depend on what a
/// handler does (403 for a role too low, 409 for a conflict) are in the handlers' own
/// annotations.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let params = op.parameters.as_deref().unwrap_or_default();
                let in_path = params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path));
                let has_body = op.request_body.is_some();
                // `security: [{}]` marks the few operations anyone may call.
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|r| *r == Default::default()));
                if has_body || !params.is_empty() {
                    error(
                        op,
                        400,
                        "Bad input: the field or parameter at fault is in `error.path`.",
                    );
                }
                if !public {
                    error(op, 401, "No API key, or not a valid one.");
                }
                if in_path {
                    error(
                        op,
                        404,
                        "Not found, or in an entity the caller is not a member of.",
                    );
                }
                if has_body {
                    error(
                        op,
                        413,
                        "The body is over the limit of 1 MiB (1048576 bytes).",
                    );
                }
                // Uploads of raw bytes (`application/octet-stream`) take any content type.
                let json_body = op
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                if json_body {
                    error(
                        op,
                        415,
                        "The body is not declared JSON (`Content-Type: application/json`).",
                    );
                }
            }
        }
    }
}

/// Which field of a created body fills which path parameter: `(parameter, field)`.
type Fills = &'static [(&'static str, &'static str)];

/// What each creating operation's answer names, and where that thing lives: `(operation,
/// prefix of the routes that act on it, path parameter ← field of the created body)`.
const CREATED: &[(&str, &str, Fills)] = &[
    (
        "create_entity",
        "/api/v1/entities/{entity}",
        &[("entity", "name")],
    ),
    (
        "create_project",
        "/api/v1/entities/{entity}/projects/{project}",
        &[("entity", "entity"), ("project", "name")],
    ),
    (
        "create_registry",
        "/api/v1/entities/{entity}/projects/{project}",
        &[("entity", "entity"), ("project", "name")],
    ),
    (
        "create_version",
        "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}",
        &[
            ("entity", "entity"),
            ("project", "project"),
            ("collection", "collection"),
            ("version", "version"),
        ],
    ),
    (
        "link_version",
        "/api/v1/entities/{entity}/projects/{project}/artifacts/{collection}",
        &[
            ("entity", "entity"),
            ("project", "project"),
            ("collection", "collection"),
            ("version", "version"),
        ],
    ),
    (
        "create_run",
        "/api/v1/entities/{entity}/projects/{project}/runs/{run}",
        &[("entity", "entity"), ("project", "project"), ("run", "id")],
    ),
    (
        "create_integration",
        "/api/v1/integrations/{id}",
        &[("id", "id")],
    ),
    (
        "create_automation",
        "/api/v1/automations/{id}",
        &[("id", "id")],
    ),
];

/// Links each creating operation's 201 answer to the operations on what it created, so that
/// clients (and stateful test tools) know which field fills which path parameter: the names
/// in the path are the created body's names, never its numeric `id`s, except for
/// integrations and automations, which are addressed by id.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        let targets: Vec<(String, String)> = openapi
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                    .into_iter()
                    .flatten()
                    .filter_map(|op| Some((path.clone(), op.operation_id.clone()?)))
                    .collect::<Vec<_>>()
            })
            .collect();
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.post, &mut item.put].into_iter().flatten() {
                let Some((_, prefix, fields)) = CREATED
                    .iter()
                    .find(|(id, _, _)| op.operation_id.as_deref() == Some(*id))
                else {
                    continue;
                };
                let Some(utoipa::openapi::RefOr::T(created)) =
                    op.responses.responses.get_mut("201")
                else {
                    continue;
                };
                for (path, target) in &targets {
                    let params: Vec<&str> = path
                        .split('/')
                        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                        .collect();
                    // Each parameter with the field that fills it; a target with a parameter
                    // the created body cannot fill (a tag, an alias) gets no link.
                    let filled: Vec<(&str, &str)> = params
                        .iter()
                        .filter_map(|p| fields.iter().find(|(name, _)| name == p).copied())
                        .collect();
                    if !path.starts_with(prefix) || filled.len() != params.len() {
                        continue;
                    }
                    let link = filled.into_iter().fold(
                        LinkBuilder::new().operation_id(target.clone()),
                        |l, (p, field)| l.parameter(p, format!("$response.body#/{field}")),
                    );
                    created.links.insert(target.clone(), link.build().into());
                }
            }
        }
    }
}

/// Documents `status` with the error body, unless the handler already does.
fn error(op: &mut utoipa::openapi::path::Operation, status: u16, description: &str) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
                .into()
        });
}

/// The document as JSON text, built once.
pub fn openapi_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, doc) = crate::routes::routes();
        let mut doc = serde_json::to_value(doc).unwrap_or_default();
        spell_links(&mut doc);
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_string())
    })
}

/// utoipa writes a link's `operationId` as `operation_id`, which no OpenAPI reader knows:
/// renamed here, in every response's links.
fn spell_links(doc: &mut serde_json::Value) {
    let operations = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for op in operations {
        let links = op
            .get_mut("responses")
            .and_then(serde_json::Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links")?.as_object_mut())
            .flat_map(|links| links.values_mut())
            .filter_map(serde_json::Value::as_object_mut);
        for link in links {
            if let Some(id) = link.remove("operation_id") {
                link.insert("operationId".into(), id);
            }
        }
    }
}
