//! Template variables taken from an event (the names W&B documents for webhook payloads). A
//! variable that does not apply to the event renders empty, so every name asked for is present.

use herald_domain::event::{Event, EventType};
use serde_json::{Map, Value};

/// Prefix of per-key metadata variables.
pub const METADATA_PREFIX: &str = "artifact_metadata.";

/// The event's variables for automation `automation`: those `wanted` names (each variable's
/// value is only worked out when wanted).
pub fn event_variables(
    e: &Event,
    automation: &str,
    wanted: &dyn Fn(&str) -> bool,
    public_url: Option<&str>,
) -> Map<String, Value> {
    let mut v = Map::new();
    let mut put = |k: &str, val: &dyn Fn() -> Option<String>| {
        if wanted(k) {
            v.insert(k.to_string(), Value::String(val().unwrap_or_default()));
        }
    };
    put("event_type", &|| {
        Some(e.event_type.public_name().to_string())
    });
    put("event_author", &|| e.author.clone());
    put("entity_name", &|| Some(e.entity.clone()));
    put("project_name", &|| e.project.clone());
    put("automation_name", &|| Some(automation.to_string()));
    put("alias", &|| e.alias.clone());
    put("tag", &|| e.tag.clone());
    put("artifact_collection_name", &|| e.collection.clone());
    // Not a template variable (W&B has none); Slack messages show it.
    put("artifact_type", &|| e.artifact_type.clone());
    put("artifact_version", &|| {
        e.version_id
            .map(|id| format!("wandb-artifact://_id/{}", id.to_global()))
    });
    put(
        "artifact_version_string",
        &|| match (&e.project, &e.collection, &e.version) {
            (Some(p), Some(c), Some(ver)) => Some(format!("{}/{p}/{c}:{ver}", e.entity)),
            _ => None,
        },
    );
    put("artifact_version_index", &|| {
        e.version
            .as_ref()
            .map(|s| s.trim_start_matches('v').to_string())
    });
    put("run_id", &|| e.run.clone());
    put("run_name", &|| e.run.clone());
    put("run_status", &|| {
        (e.event_type == EventType::RunState)
            .then(|| {
                e.body
                    .get("state")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .flatten()
    });
    put("event_url", &|| {
        let (base, project) = (public_url?, e.project.as_deref()?);
        let what = match (&e.run, &e.collection) {
            (Some(run), _) if e.collection.is_none() => Linked::Run(run),
            (_, Some(collection)) => Linked::Version {
                collection,
                version: e.version.as_deref(),
            },
            _ => return None,
        };
        Some(link(base, &e.entity, project, what))
    });
    for k in [
        "metric_name",
        "metric_value",
        "metric_values",
        "metric_filter",
    ] {
        put(k, &|| None);
    }
    v
}

/// What a link points at.
pub enum Linked<'a> {
    /// An artifact version, or its collection when the version is not known.
    Version {
        collection: &'a str,
        version: Option<&'a str>,
    },
    Run(&'a str),
}

/// A link to what an event is about, on the herald server's public URL `base`: the REST
/// resource of the artifact version (or collection) or of the run.
pub fn link(base: &str, entity: &str, project: &str, what: Linked<'_>) -> String {
    use herald_domain::names::url_segment as seg;
    let base = base.trim_end_matches('/');
    let project = format!(
        "{base}/api/v1/entities/{}/projects/{}",
        seg(entity),
        seg(project)
    );
    match what {
        Linked::Version {
            collection,
            version,
        } => {
            let collection = format!("{project}/artifacts/{}", seg(collection));
            match version {
                Some(v) => format!("{collection}/versions/{}", seg(v)),
                None => collection,
            }
        }
        Linked::Run(run) => format!("{project}/runs/{}", seg(run)),
    }
}

/// A metadata value as template text: strings as they are, anything else as JSON.
pub fn metadata_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The document artifact filters are evaluated against: the version's aliases and tags, its
/// collection and type, and the entity and project names.
pub fn filter_document(e: &Event) -> Value {
    let body_list = |k: &str| {
        e.body
            .get(k)
            .cloned()
            .filter(Value::is_array)
            .unwrap_or(Value::Array(vec![]))
    };
    let alias = match e.event_type {
        EventType::AddArtifactAlias => {
            Value::Array(e.alias.iter().map(|a| Value::String(a.clone())).collect())
        }
        // Linking and creating: the aliases given with the version.
        _ => body_list("aliases"),
    };
    let tag = match &e.tag {
        Some(t) => Value::Array(vec![Value::String(t.clone())]),
        None => body_list("tags"),
    };
    serde_json::json!({
        "alias": alias,
        "tag": tag,
        "collection_name": e.collection,
        "artifact_type": e.artifact_type,
        "entity_name": e.entity,
        "project_name": e.project,
    })
}
