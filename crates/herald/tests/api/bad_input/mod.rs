//! Input the caller got wrong: each answer is a 4xx JSON error that names the problem, and the
//! store is left as it was (checked through the event logs and listings afterwards).
//!
//! - [`bodies`]: request bodies that are not JSON, not the right JSON, too large, or not
//!   declared JSON, and paths that are not UTF-8;
//! - [`names`]: names that break the naming rules, reserved aliases, and things that do not exist;
//! - [`nul`]: the NUL character in bodies, path segments and query values;
//! - [`rules`]: requests that break a catalog rule: links, final run states, run history.

mod bodies;
mod names;
mod nul;
mod rules;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{catalog, collection, expect, project, projects, run, Api, Catalog};

pub(super) const REG: &str = "wandb-registry-model";

/// What the store holds, as far as the tests can see: both event logs, the entity and project
/// lists, the collections and versions, the runs and r1's history.
pub(super) async fn snapshot(alice: &Api) -> Value {
    json!({
        "ml_events": alice.events("ml").await,
        "acme_events": alice.events("acme").await,
        "entities": expect(alice.get("/api/v1/entities").await, StatusCode::OK),
        "ml_projects": expect(alice.get(&projects("ml")).await, StatusCode::OK),
        "acme_projects": expect(alice.get(&projects("acme")).await, StatusCode::OK),
        "members": expect(alice.get("/api/v1/entities/ml/members").await, StatusCode::OK),
        "collections": expect(alice.get(&format!("{}/artifacts", project("ml", "vision"))).await, StatusCode::OK),
        "versions": expect(alice.get(&format!("{}/versions", collection("ml", "vision", "resnet"))).await, StatusCode::OK),
        "runs": expect(alice.get(&format!("{}/runs", project("ml", "vision"))).await, StatusCode::OK),
        "history": expect(alice.get(&format!("{}/history", run("ml", "vision", "r1"))).await, StatusCode::OK),
    })
}

/// The `catalog()` fixture with `resnet:v0` (alias `best`), a run `r1`, and a bob to add.
pub(super) async fn fixture() -> Catalog {
    let c = catalog().await;
    c.app.create_user("bob").await;
    c.alice
        .create_version_with("ml", "vision", "resnet", json!({"aliases": ["best"]}))
        .await;
    c.alice
        .create_run("ml", "vision", json!({"id": "r1"}))
        .await;
    c
}
