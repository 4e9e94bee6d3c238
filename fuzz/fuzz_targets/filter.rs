//! Event filters (`herald_domain::filter`): any text, read as an artifact filter and as a run
//! filter. Parsing must never panic; an accepted filter must evaluate on any document, and its
//! normalised wire form (what herald stores and re-parses for the matcher) must parse back to
//! a filter that means the same thing.
#![no_main]

use herald_domain::filter::{Filter, FilterFields};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The input itself, when it is JSON, doubles as an event document of arbitrary shape.
    let input: Option<Value> = serde_json::from_str(text).ok();
    for fields in [FilterFields::Artifact, FilterFields::Run] {
        let Ok(filter) = Filter::parse_str(text, fields) else {
            continue;
        };
        let mut docs = sample_docs(fields);
        docs.extend(input.clone());
        check(&filter, fields, &docs);
    }
});

fn sample_docs(fields: FilterFields) -> Vec<Value> {
    let typical = match fields {
        FilterFields::Artifact => json!({
            "alias": ["latest", "production", "v3"],
            "tag": "eu-west",
            "collection_name": "mnist-classifier",
            "artifact_type": "model",
            "entity_name": "ml-team",
            "project_name": "wandb-registry-model",
        }),
        FilterFields::Run => json!({
            "display_name": "bright-sun-42",
            "username": "ada",
            "tags": ["baseline", "gpu"],
            "config": {"learning_rate": 0.001, "epochs": 10, "optimizer": {"name": "adam"}},
        }),
    };
    vec![
        json!({}),
        typical,
        json!({"alias": null, "tag": [], "display_name": 1.5, "tags": [null, true, "x", 7]}),
    ]
}

fn check(filter: &Filter, fields: FilterFields, docs: &[Value]) {
    let results: Vec<bool> = docs.iter().map(|d| filter.matches(d)).collect();
    if filter.is_empty() {
        assert!(
            results.iter().all(|m| *m),
            "an empty filter must match every document"
        );
    }

    // The string form goes through both entry points (`parse_str` reads JSON, then `parse`);
    // one re-parse keeps the regex compilations per input down.
    let wire = filter.to_wire();
    let again = Filter::parse_str(&filter.to_wire_string(), fields)
        .unwrap_or_else(|e| panic!("the wire form {wire} of an accepted filter is refused: {e}"));
    assert_eq!(again.to_wire(), wire, "the wire form is not stable");
    let again_results: Vec<bool> = docs.iter().map(|d| again.matches(d)).collect();
    assert_eq!(
        results, again_results,
        "the wire form {wire} means something else"
    );
}
