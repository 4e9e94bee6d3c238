//! `POST /graphql` as W&B's SDK uses it: the documents below are the SDK's own (wandb 0.31.0,
//! `wandb/automations/_generated` and wandb-core), trimmed to what each test reads. The SDK
//! itself drives the same surface in `sdk-tests/`; these tests pin the wire details and the bad
//! paths on both backends.

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// Posts a GraphQL document as the SDK does: `operationName` empty, variables as given.
pub(crate) async fn gql(api: &Api, query: &str, variables: Value) -> (StatusCode, Value) {
    api.post(
        "/graphql",
        json!({"operationName": "", "query": query, "variables": variables}),
    )
    .await
}

/// The data of an answer that must have no errors.
pub(crate) async fn data(api: &Api, query: &str, variables: Value) -> Value {
    let (status, body) = gql(api, query, variables).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

/// The first error's message of an answer that must fail with `status`.
async fn error(api: &Api, query: &str, variables: Value, status: StatusCode) -> String {
    let (got, body) = gql(api, query, variables).await;
    assert_eq!(got, status, "{body}");
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_string()
}

fn global(kind: &str, id: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{kind}:{id}"))
}

fn local(global: &str) -> i64 {
    let text = base64::engine::general_purpose::STANDARD
        .decode(global)
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap_or_else(|_| panic!("{global} is not base64"));
    text.rsplit_once(':').unwrap().1.parse().unwrap()
}

const TRIGGER_FIELDS: &str = r#"
fragment WebhookIntegrationFields on GenericWebhookIntegration { __typename id name urlEndpoint }
fragment ProjectScopeFields on Project { __typename id name }
fragment ArtifactPortfolioScopeFields on ArtifactPortfolio { __typename id name }
fragment ArtifactSequenceScopeFields on ArtifactSequence { __typename id name }
fragment EntityScopeFields on Entity { __typename id name entityType }
fragment FilterEventFields on FilterEventTriggeringCondition { __typename eventType filter }
fragment GenericWebhookActionFields on GenericWebhookTriggeredAction {
  __typename integration { ...WebhookIntegrationFields } requestPayload }
fragment NoOpActionFields on NoOpTriggeredAction { __typename noOp }
fragment TriggerFields on Trigger {
  __typename id createdAt updatedAt name description enabled
  scope { ...ProjectScopeFields ...ArtifactPortfolioScopeFields ...ArtifactSequenceScopeFields ...EntityScopeFields }
  event: triggeringCondition { ...FilterEventFields }
  action: triggeredAction { ...GenericWebhookActionFields ...NoOpActionFields }
}"#;

fn create_doc() -> String {
    format!(
        "mutation CreateAutomation($input: CreateFilterTriggerInput!) {{
           result: createFilterTrigger(input: $input) {{ trigger {{ ...TriggerFields }} }} }}
         {TRIGGER_FIELDS}"
    )
}

fn update_doc() -> String {
    format!(
        "mutation UpdateAutomation($input: UpdateFilterTriggerInput!) {{
           result: updateFilterTrigger(input: $input) {{ trigger {{ ...TriggerFields }} }} }}
         {TRIGGER_FIELDS}"
    )
}

const DELETE_DOC: &str = "mutation DeleteAutomation($id: ID!) {
  result: deleteTrigger(input: {triggerID: $id}) { success } }";

fn list_doc() -> String {
    format!(
        "query GetEntityAutomations($entity: String!, $cursor: String, $perPage: Int, $order: String, $filters: JSONString) {{
           scope: entity(name: $entity) {{
             triggers(after: $cursor, first: $perPage, order: $order, filters: $filters) {{
               pageInfo {{ endCursor hasNextPage }} edges {{ node {{ ...TriggerFields }} }} }} }} }}
         {TRIGGER_FIELDS}"
    )
}

/// A team `acme` in organization `acme-org` with project `vision`, collection `resnet`, the
/// registry `model` holding `classifiers`, and a webhook; alice is ADMIN in both.
async fn world(app: &TestApp) -> Api {
    let alice = acme_in_org(app).await;
    alice.create_version("acme", "vision", "resnet").await;
    expect(
        alice
            .post(
                "/api/v1/entities/acme/projects/vision/artifacts/resnet/versions/v0/links",
                json!({"registry": "model", "collection": "classifiers"}),
            )
            .await,
        StatusCode::CREATED,
    );
    alice
        .create_integration_from(
            "acme",
            json!({"kind": "webhook", "name": "hook", "url": "https://hooks.example.com/x"}),
        )
        .await;
    alice
}

fn no_op(name: &str, scope_type: &str, scope_id: &str, event: &str, filter: &str) -> Value {
    json!({"input": {
        "name": name, "enabled": true, "scopeType": scope_type, "scopeID": scope_id,
        "triggeringEventType": event, "eventFilter": filter,
        "triggeredActionType": "NO_OP", "triggeredActionConfig": {"noOpActionInput": {"noOp": true}},
    }})
}

#[tokio::test]
async fn the_sdks_lookups_answer_in_wandbs_shapes() {
    let app = spawn_app().await;
    let alice = world(&app).await;

    // wandb-core's Viewer, with the empty operationName every public document carries.
    let d = data(
        &alice,
        "query Viewer { viewer { id entity username email flags teams { edges { node { name } } } } }",
        Value::Null,
    )
    .await;
    assert_eq!(d["viewer"]["entity"], "alice");
    assert_eq!(d["viewer"]["teams"]["edges"][0]["node"]["name"], "acme");
    assert_eq!(d["viewer"]["flags"], "{}");

    // Exactly the implemented features, each enabled.
    let d = data(
        &alice,
        "query ServerFeaturesQuery { serverInfo { features { name isEnabled } } }",
        Value::Null,
    )
    .await;
    let features: Vec<&str> = d["serverInfo"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        features.contains(&"QUERY_AUTOMATIONS_ON_ENTITY"),
        "{features:?}"
    );
    assert!(
        !features.contains(&"AUTOMATION_ACTION_ARIA"),
        "{features:?}"
    );

    // FetchOrgInfoFromEntity: a team answers with its organization.
    let d = data(
        &alice,
        "query FetchOrgInfoFromEntity($entity: String!) { entity(name: $entity) {
           organization { ...OrgInfoFragment } user { organizations { ...OrgInfoFragment } } } }
         fragment OrgInfoFragment on Organization { name orgEntity { name } }",
        json!({"entity": "acme"}),
    )
    .await;
    assert_eq!(d["entity"]["organization"]["name"], "acme-org");
    assert_eq!(d["entity"]["organization"]["orgEntity"]["name"], "acme-org");
    assert_eq!(d["entity"]["user"], Value::Null);

    // GetProject and the internalId the registry helpers decode.
    let d = data(
        &alice,
        "query GetProject($name: String!, $entity: String!) { project(name: $name, entityName: $entity) {
           __typename id internalId name entityName createdAt isBenchmark user { id } } }",
        json!({"name": "vision", "entity": "acme"}),
    )
    .await;
    let project = &d["project"];
    assert_eq!(project["__typename"], "Project");
    assert_eq!(project["entityName"], "acme");
    assert_eq!(project["isBenchmark"], false);
    let pid = local(project["id"].as_str().unwrap());
    let internal = base64::engine::general_purpose::STANDARD
        .decode(project["internalId"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(internal).unwrap(),
        format!("ProjectInternalId:{pid}")
    );

    // ProjectArtifactCollection on a registry: the interface, answered as a portfolio, with an
    // alias and `@include` and a variable default the executor must honour.
    let d = data(
        &alice,
        "query ProjectArtifactCollection($entity: String!, $project: String!, $type: String!, $name: String!, $withTags: Boolean = false) {
           project(entityName: $entity, name: $project) { artifactType(name: $type) {
             artifactCollection(name: $name) { __typename ...ArtifactCollectionFragment } } } }
         fragment ArtifactCollectionFragment on ArtifactCollection {
           __typename id name description createdAt updatedAt
           project { id internalId name entity { name } } type: defaultArtifactType { name }
           tags @include(if: $withTags) { edges { node { __typename id name } } } }",
        json!({"entity": "acme-org", "project": "wandb-registry-model", "type": "model", "name": "classifiers"}),
    )
    .await;
    let c = &d["project"]["artifactType"]["artifactCollection"];
    assert_eq!(c["__typename"], "ArtifactPortfolio");
    assert_eq!(c["type"]["name"], "model");
    assert_eq!(c["project"]["entity"]["name"], "acme-org");
    assert!(
        c.get("tags").is_none(),
        "@include(if: false) left tags in: {c}"
    );

    // IntegrationsByEntity: the typenames the SDK filters on.
    let d = data(
        &alice,
        "query IntegrationsByEntity($entity: String!, $cursor: String, $perPage: Int) {
           entity(name: $entity) { integrations(after: $cursor, first: $perPage) {
             pageInfo { endCursor hasNextPage }
             edges { node { __typename ...SlackIntegrationFields ...WebhookIntegrationFields } } } } }
         fragment SlackIntegrationFields on SlackIntegration { __typename id teamName channelName }
         fragment WebhookIntegrationFields on GenericWebhookIntegration { __typename id name urlEndpoint }",
        json!({"entity": "acme", "perPage": 50}),
    )
    .await;
    let page = &d["entity"]["integrations"];
    assert_eq!(page["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        page["edges"][0]["node"]["__typename"],
        "GenericWebhookIntegration"
    );
    assert_eq!(
        page["edges"][0]["node"]["urlEndpoint"],
        "https://hooks.example.com/x"
    );

    // Basic auth, as wandb-core sends it.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{ADMIN_KEY}"));
    let (status, body) = app
        .admin
        .send(
            app.admin
                .unauthenticated(reqwest::Method::POST, "/graphql")
                .header("Authorization", format!("Basic {basic}"))
                .json(&json!({"query": "{ viewer { username } }"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["viewer"]["username"], "admin");
}

#[tokio::test]
async fn automations_made_over_graphql_round_trip_and_fire() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let collection = data(
        &alice,
        "query($e: String!, $p: String!) { project(entityName: $e, name: $p) { artifactCollection(name: \"resnet\") { id } } }",
        json!({"e": "acme", "p": "vision"}),
    )
    .await["project"]["artifactCollection"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let org = data(
        &alice,
        "query { entity(name: \"acme-org\") { id } }",
        Value::Null,
    )
    .await["entity"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // An alias automation on the sequence: the filter comes back wrapped as W&B saves it.
    let filter = r#"{"$or":[{"$and":[{"alias":{"$regex":"^prod"}}]}]}"#;
    let d = data(
        &alice,
        &create_doc(),
        no_op(
            "alias-prod",
            "ARTIFACT_COLLECTION",
            &collection,
            "ADD_ARTIFACT_ALIAS",
            filter,
        ),
    )
    .await;
    let t = &d["result"]["trigger"];
    assert_eq!(t["scope"]["__typename"], "ArtifactSequence");
    assert_eq!(t["action"]["__typename"], "NoOpTriggeredAction");
    let saved: Value = serde_json::from_str(t["event"]["filter"].as_str().unwrap()).unwrap();
    let inner: Value = serde_json::from_str(saved["filter"].as_str().unwrap()).unwrap();
    assert_eq!(inner, serde_json::from_str::<Value>(filter).unwrap());
    let alias_id = t["id"].as_str().unwrap().to_string();

    // The organization's ENTITY-scoped link automation sees its teams' links into registries;
    // OnLinkArtifact keeps W&B's wire name.
    let d = data(
        &alice,
        &create_doc(),
        no_op(
            "org-links",
            "ENTITY",
            &org,
            "LINK_MODEL",
            r#"{"$or":[{"$and":[]}]}"#,
        ),
    )
    .await;
    let t = &d["result"]["trigger"];
    assert_eq!(t["event"]["eventType"], "LINK_MODEL");
    assert_eq!(t["scope"]["__typename"], "Entity");
    assert_eq!(t["scope"]["entityType"], "organization");
    let link_id = t["id"].as_str().unwrap().to_string();

    // Listed by name, server-side.
    let d = data(
        &alice,
        &list_doc(),
        json!({"entity": "acme", "filters": "{\"name\":\"alias-prod\"}"}),
    )
    .await;
    let edges = d["scope"]["triggers"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["name"], "alias-prod");

    // The SDK's update re-sends the filter unwrapped; disabling keeps it.
    let d = data(
        &alice,
        &update_doc(),
        json!({"input": {"id": alias_id, "enabled": false, "eventFilter": filter}}),
    )
    .await;
    assert_eq!(d["result"]["trigger"]["enabled"], false);
    let d = data(
        &alice,
        &update_doc(),
        json!({"input": {"id": alias_id, "enabled": true, "name": "alias-production"}}),
    )
    .await;
    assert_eq!(d["result"]["trigger"]["name"], "alias-production");

    // Both fire on events logged over REST.
    expect(
        alice
            .post(
                "/api/v1/entities/acme/projects/vision/artifacts/resnet/versions/v0/aliases",
                json!({"alias": "production"}),
            )
            .await,
        StatusCode::OK,
    );
    alice
        .wait_execution(local(&alias_id), "FINISHED", Duration::from_secs(20))
        .await;
    alice.create_version("acme", "vision", "resnet").await;
    expect(
        alice
            .post(
                "/api/v1/entities/acme/projects/vision/artifacts/resnet/versions/v1/links",
                json!({"registry": "model", "collection": "classifiers"}),
            )
            .await,
        StatusCode::CREATED,
    );
    alice
        .wait_execution(local(&link_id), "FINISHED", Duration::from_secs(20))
        .await;

    // Deleted once, then a 404 as the SDK expects of an unknown id.
    let d = data(&alice, DELETE_DOC, json!({"id": alias_id})).await;
    assert_eq!(d["result"]["success"], true);
    let m = error(
        &alice,
        DELETE_DOC,
        json!({"id": alias_id}),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(m.contains("not found"), "{m}");
}

#[tokio::test]
async fn roles_and_names_answer_as_wandb_does() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let bob = app.create_user("bob").await;
    let carol = app.create_user("carol").await;
    alice.set_member("acme", "bob", "VIEWER").await;
    let project = global("Project", 1);
    let run_filter = r#"{"run_filter":"{\"$and\":[]}","run_metric_filter":{"threshold_filter":{"name":"loss","agg_op":"AVERAGE","window_size":5,"cmp_op":"$lt","threshold":0.1}},"metric_filter":null}"#;
    let vars = no_op("low-loss", "PROJECT", &project, "RUN_METRIC", run_filter);
    let d = data(&alice, &create_doc(), vars.clone()).await;
    let id = d["result"]["trigger"]["id"].as_str().unwrap().to_string();
    let saved: Value =
        serde_json::from_str(d["result"]["trigger"]["event"]["filter"].as_str().unwrap()).unwrap();
    assert_eq!(
        saved["run_metric_filter"]["threshold_filter"]["name"],
        "loss"
    );

    // A taken name is HTTP 409; an unknown or malformed id on update is 404.
    let m = error(&alice, &create_doc(), vars.clone(), StatusCode::CONFLICT).await;
    assert!(m.contains("low-loss"), "{m}");
    for unknown in [
        global("Trigger", 999),
        "not-an-id".to_string(),
        global("Project", 1),
    ] {
        error(
            &alice,
            &update_doc(),
            json!({"input": {"id": unknown, "enabled": false}}),
            StatusCode::NOT_FOUND,
        )
        .await;
    }

    // A viewer lists but cannot create; the message names the role.
    let d = data(&bob, &list_doc(), json!({"entity": "acme"})).await;
    assert_eq!(d["scope"]["triggers"]["edges"].as_array().unwrap().len(), 1);
    let m = error(
        &bob,
        &create_doc(),
        no_op("b", "PROJECT", &project, "RUN_METRIC", run_filter),
        StatusCode::OK,
    )
    .await;
    assert!(m.contains("MEMBER"), "{m}");

    // A non-member sees nothing: no entity, no project, no automation to change.
    let d = data(&carol, &list_doc(), json!({"entity": "acme"})).await;
    assert_eq!(d["scope"], Value::Null);
    let d = data(
        &carol,
        "query { project(entityName: \"acme\", name: \"vision\") { id } }",
        Value::Null,
    )
    .await;
    assert_eq!(d["project"], Value::Null);
    let m = error(
        &carol,
        &create_doc(),
        no_op("c", "PROJECT", &project, "RUN_METRIC", run_filter),
        StatusCode::OK,
    )
    .await;
    assert!(m.contains("scopeID") && m.contains("no project"), "{m}");
    error(
        &carol,
        &update_doc(),
        json!({"input": {"id": id, "enabled": false}}),
        StatusCode::NOT_FOUND,
    )
    .await;
    error(&carol, DELETE_DOC, json!({"id": id}), StatusCode::NOT_FOUND).await;
    // …and alice's automation is untouched.
    let d = data(&alice, &list_doc(), json!({"entity": "acme"})).await;
    assert_eq!(d["scope"]["triggers"]["edges"][0]["node"]["enabled"], true);
}

#[tokio::test]
async fn bad_graphql_is_named_never_a_500() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let project = global("Project", 1);
    let cases: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        (
            "syntax",
            "query { viewer { id ".into(),
            Value::Null,
            StatusCode::OK,
            "expected",
        ),
        (
            "unknown field",
            "query { viewer { favouriteColour } }".into(),
            Value::Null,
            StatusCode::OK,
            "favouriteColour",
        ),
        (
            "unknown root field",
            "query { runQueues { id } }".into(),
            Value::Null,
            StatusCode::OK,
            "runQueues",
        ),
        (
            "unknown type in a fragment",
            "query { viewer { ...F } } fragment F on QueueJobTriggeredAction { template }".into(),
            Value::Null,
            StatusCode::OK,
            "QueueJobTriggeredAction",
        ),
        (
            "missing variable",
            "query($e: String!) { entity(name: $e) { id } }".into(),
            Value::Null,
            StatusCode::OK,
            "variable e",
        ),
        (
            "bad enum",
            create_doc(),
            no_op("x", "PROJECT", &project, "RUN_EXPLODED", "{}"),
            StatusCode::OK,
            "RUN_EXPLODED",
        ),
        (
            "filter not JSON",
            create_doc(),
            no_op("x", "PROJECT", &project, "RUN_METRIC", "{not json"),
            StatusCode::OK,
            "input.eventFilter",
        ),
        (
            "filter wrong shape",
            create_doc(),
            no_op(
                "x",
                "PROJECT",
                &project,
                "RUN_METRIC",
                r#"{"run_metric_filter": 3}"#,
            ),
            StatusCode::OK,
            "eventFilter",
        ),
        (
            "artifact filter bad op",
            create_doc(),
            no_op(
                "x",
                "PROJECT",
                &project,
                "LINK_MODEL",
                r#"{"alias":{"$explode":1}}"#,
            ),
            StatusCode::OK,
            "$explode",
        ),
        (
            "scope id of another type",
            create_doc(),
            no_op(
                "x",
                "ARTIFACT_COLLECTION",
                &project,
                "CREATE_ARTIFACT",
                "{}",
            ),
            StatusCode::OK,
            "input.scopeID",
        ),
        (
            "event not allowed on scope",
            create_doc(),
            no_op(
                "x",
                "ARTIFACT_COLLECTION",
                &global("ArtifactCollection", 1),
                "RUN_STATE",
                r#"{"run_filter":"{}","run_state_filter":{"states":["FAILED"]}}"#,
            ),
            StatusCode::OK,
            "input.triggeringEventType: RUN_STATE is allowed at PROJECT or ENTITY",
        ),
        (
            "empty name",
            create_doc(),
            no_op("", "PROJECT", &project, "RUN_METRIC", "{}"),
            StatusCode::OK,
            "input.name",
        ),
        (
            "integration of another kind",
            create_doc(),
            json!({"input": {
            "name": "x", "enabled": true, "scopeType": "PROJECT", "scopeID": project,
            "triggeringEventType": "LINK_MODEL", "eventFilter": "{}",
            "triggeredActionType": "NOTIFICATION",
            "triggeredActionConfig": {"notificationActionInput": {"integrationID": global("Integration", 1)}}}}),
            StatusCode::OK,
            "Slack",
        ),
        (
            "config for another action",
            create_doc(),
            json!({"input": {
            "name": "x", "enabled": true, "scopeType": "PROJECT", "scopeID": project,
            "triggeringEventType": "LINK_MODEL", "eventFilter": "{}",
            "triggeredActionType": "NO_OP",
            "triggeredActionConfig": {"genericWebhookActionInput": {"integrationID": global("Integration", 1)}}}}),
            StatusCode::OK,
            "genericWebhookActionInput",
        ),
        (
            "filters not an object",
            list_doc(),
            json!({"entity": "acme", "filters": "[1]"}),
            StatusCode::OK,
            "filters",
        ),
        (
            "page too large",
            list_doc(),
            json!({"entity": "acme", "perPage": 100000}),
            StatusCode::OK,
            "first",
        ),
        (
            "too deep",
            format!(
                "query {{ viewer {{ {}id{} }} }}",
                "projects { edges { node { entity { ".repeat(6),
                " }".repeat(24)
            ),
            Value::Null,
            StatusCode::OK,
            "too deep",
        ),
    ];
    for (what, query, vars, status, names) in cases {
        let m = error(&alice, &query, vars, status).await;
        assert!(
            m.to_lowercase().contains(&names.to_lowercase()),
            "{what}: the error should name {names:?}: {m}"
        );
    }
    // Nothing was made by any of them.
    let d = data(&alice, &list_doc(), json!({"entity": "acme"})).await;
    assert_eq!(d["scope"]["triggers"]["edges"], json!([]));

    // Transport-level problems are 4xx with a GraphQL-shaped body.
    let raw = |body: &'static str, ct: &'static str| {
        alice
            .request(reqwest::Method::POST, "/graphql")
            .header("Content-Type", ct)
            .body(body)
    };
    for (body, ct, want) in [
        ("{", "application/json", StatusCode::BAD_REQUEST),
        (
            r#"{"query": "{ viewer { id } }", "variables": [1]}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"qeury": "{ viewer { id } }"}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "{ viewer { id } }",
            "application/graphql",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let (status, got) = alice.send(raw(body, ct)).await;
        assert_eq!(status, want, "{body}: {got}");
        assert!(got["errors"][0]["message"].is_string(), "{got}");
    }
    let (status, got) = app
        .anonymous()
        .post("/graphql", json!({"query": "{ viewer { id } }"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        got["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization"),
        "{got}"
    );
}
