use super::*;

#[test]
fn a_filter_holds_at_most_so_many_regexes() {
    let with = |n: usize| {
        let conds: Vec<Value> = (0..n)
            .map(|i| json!({"alias": {"$regex": format!("^a{i}")}}))
            .collect();
        Filter::parse(&json!({"$or": [{"$and": conds}]}), FilterFields::Artifact)
    };
    assert!(with(MAX_REGEXES).is_ok());
    let e = with(MAX_REGEXES + 1).unwrap_err();
    assert!(e.message.contains("$regex"), "{e:?}");
    assert!(e.path.ends_with("$regex"), "{e:?}");
}
use serde_json::json;

pub(super) fn art(v: Value) -> Filter {
    Filter::parse(&v, FilterFields::Artifact).unwrap_or_else(|e| panic!("{v}: {e}"))
}

pub(super) fn run(v: Value) -> Filter {
    Filter::parse(&v, FilterFields::Run).unwrap_or_else(|e| panic!("{v}: {e}"))
}

pub(super) fn refused(v: Value, fields: FilterFields) -> InvalidInput {
    match Filter::parse(&v, fields) {
        Ok(f) => panic!("{v} was accepted as {:?}", f.to_wire()),
        Err(e) => e,
    }
}

/// Checks one condition on `alias` against a list of (document, expected) pairs.
pub(super) fn table(cond: Value, cases: &[(Value, bool)]) {
    let f = art(json!({ "alias": cond }));
    for (doc, want) in cases {
        assert_eq!(f.matches(doc), *want, "{cond} on {doc}");
        // The normalised form means the same thing.
        let again = art(f.to_wire());
        assert_eq!(again.matches(doc), *want, "round trip of {cond} on {doc}");
    }
}

#[test]
fn eq_matches_scalars_and_any_array_element() {
    table(
        json!("prod"),
        &[
            (json!({"alias": "prod"}), true),
            (json!({"alias": "production"}), false),
            (json!({"alias": ["best", "prod"]}), true),
            (json!({"alias": ["best"]}), false),
            (json!({"alias": []}), false),
            (json!({"alias": null}), false),
            (json!({}), false),
            (json!({"tag": "prod"}), false),
        ],
    );
    table(
        json!({"$eq": 1}),
        &[
            (json!({"alias": 1}), true),
            (json!({"alias": 1.0}), true),
            (json!({"alias": "1"}), false),
            (json!({"alias": true}), false),
            (json!({"alias": [0, 1]}), true),
        ],
    );
    table(
        json!({"$eq": true}),
        &[
            (json!({"alias": true}), true),
            (json!({"alias": 1}), false),
            (json!({"alias": "true"}), false),
        ],
    );
}

#[test]
fn eq_null_matches_null_and_missing() {
    table(
        json!(null),
        &[
            (json!({}), true),
            (json!({"alias": null}), true),
            (json!({"alias": [null, "a"]}), true),
            (json!({"alias": []}), false),
            (json!({"alias": "a"}), false),
        ],
    );
    table(
        json!({"$ne": null}),
        &[
            (json!({}), false),
            (json!({"alias": null}), false),
            (json!({"alias": "a"}), true),
            (json!({"alias": []}), true),
        ],
    );
}

#[test]
fn ne_matches_when_no_element_equals_and_when_missing() {
    table(
        json!({"$ne": "prod"}),
        &[
            (json!({"alias": "prod"}), false),
            (json!({"alias": "dev"}), true),
            (json!({"alias": ["dev", "prod"]}), false),
            (json!({"alias": ["dev", "qa"]}), true),
            (json!({"alias": []}), true),
            (json!({"alias": null}), true),
            (json!({}), true),
            (json!({"alias": 3}), true),
        ],
    );
}

#[test]
fn comparisons_never_coerce_across_types() {
    table(
        json!({"$gt": 5}),
        &[
            (json!({"alias": 6}), true),
            (json!({"alias": 5}), false),
            (json!({"alias": 5.5}), true),
            (json!({"alias": "6"}), false),
            (json!({"alias": [1, 2, 7]}), true),
            (json!({"alias": [1, "9"]}), false),
            (json!({"alias": null}), false),
            (json!({}), false),
        ],
    );
    table(
        json!({"$gte": 5}),
        &[(json!({"alias": 5}), true), (json!({"alias": 4.99}), false)],
    );
    table(
        json!({"$lt": "m"}),
        &[
            (json!({"alias": "a"}), true),
            (json!({"alias": "m"}), false),
            (json!({"alias": "z"}), false),
            (json!({"alias": "M"}), true),
            (json!({"alias": 1}), false),
        ],
    );
    table(
        json!({"$lte": "m"}),
        &[
            (json!({"alias": "m"}), true),
            (json!({"alias": "ma"}), false),
        ],
    );
    table(
        json!({"$gt": false}),
        &[
            (json!({"alias": true}), true),
            (json!({"alias": false}), false),
            (json!({"alias": 1}), false),
        ],
    );
    // Several operators on one field all have to hold: a range.
    table(
        json!({"$gt": 1, "$lt": 3}),
        &[
            (json!({"alias": 2}), true),
            (json!({"alias": 3}), false),
            (json!({"alias": 0}), false),
        ],
    );
}

#[test]
fn in_and_nin() {
    table(
        json!({"$in": ["prod", "staging", 3]}),
        &[
            (json!({"alias": "prod"}), true),
            (json!({"alias": 3}), true),
            (json!({"alias": "3"}), false),
            (json!({"alias": ["dev", "staging"]}), true),
            (json!({"alias": ["dev"]}), false),
            (json!({}), false),
            (json!({"alias": null}), false),
        ],
    );
    table(
        json!({"$in": [null, "a"]}),
        &[
            (json!({}), true),
            (json!({"alias": null}), true),
            (json!({"alias": "a"}), true),
            (json!({"alias": "b"}), false),
        ],
    );
    table(
        json!({"$in": []}),
        &[(json!({"alias": "a"}), false), (json!({}), false)],
    );
    table(
        json!({"$nin": ["prod", "staging"]}),
        &[
            (json!({"alias": "prod"}), false),
            (json!({"alias": "dev"}), true),
            (json!({"alias": ["dev", "prod"]}), false),
            (json!({"alias": ["dev", "qa"]}), true),
            (json!({}), true),
            (json!({"alias": null}), true),
        ],
    );
}

#[test]
fn exists_means_present_not_null_and_not_empty() {
    table(
        json!({"$exists": true}),
        &[
            (json!({}), false),
            (json!({"alias": null}), false),
            (json!({"alias": []}), false),
            (json!({"alias": [null]}), true),
            (json!({"alias": ""}), true),
            (json!({"alias": 0}), true),
            (json!({"alias": false}), true),
        ],
    );
    table(
        json!({"$exists": false}),
        &[
            (json!({}), true),
            (json!({"alias": null}), true),
            (json!({"alias": []}), true),
            (json!({"alias": "x"}), false),
        ],
    );
}

#[test]
fn regex_is_unanchored_and_matches_any_string_element() {
    table(
        json!({"$regex": "prod"}),
        &[
            (json!({"alias": "prod"}), true),
            (json!({"alias": "my-production"}), true),
            (json!({"alias": "PROD"}), false),
            (json!({"alias": ["a", "b-prod"]}), true),
            (json!({"alias": ["a", 5]}), false),
            (json!({"alias": 5}), false),
            (json!({}), false),
        ],
    );
    table(
        json!({"$regex": "^prod.*$"}),
        &[
            (json!({"alias": "production"}), true),
            (json!({"alias": "my-prod"}), false),
        ],
    );
    table(
        json!({"$regex": "^prod", "$options": "i"}),
        &[
            (json!({"alias": "PRODUCTION"}), true),
            (json!({"alias": "x-PROD"}), false),
        ],
    );
    table(
        json!({"$regex": "^prod", "$options": ""}),
        &[
            (json!({"alias": "PROD"}), false),
            (json!({"alias": "prod"}), true),
        ],
    );
    // A regex on a number does not stringify it.
    table(json!({"$regex": "1"}), &[(json!({"alias": 1}), false)]);
}

#[test]
fn contains_is_substring_match_on_strings() {
    table(
        json!({"$contains": "my-run"}),
        &[
            (json!({"alias": "a-my-run-3"}), true),
            (json!({"alias": "my-ru"}), false),
            (json!({"alias": ["x", "my-run"]}), true),
            (json!({"alias": 5}), false),
            (json!({}), false),
        ],
    );
    table(
        json!({"$contains": ""}),
        &[(json!({"alias": ""}), true), (json!({}), false)],
    );
    // Regex metacharacters are plain text here.
    table(
        json!({"$contains": "a.b"}),
        &[(json!({"alias": "axb"}), false)],
    );
}

#[test]
fn not_on_a_field_inverts_and_matches_missing_fields() {
    table(
        json!({"$not": {"$regex": "^tmp"}}),
        &[
            (json!({"alias": "tmp-1"}), false),
            (json!({"alias": "prod"}), true),
            (json!({"alias": ["prod", "tmp"]}), false),
            (json!({}), true),
        ],
    );
    table(
        json!({"$not": {"$gt": 1, "$lt": 3}}),
        &[(json!({"alias": 2}), false), (json!({"alias": 5}), true)],
    );
}

#[test]
fn logical_operators() {
    let doc = json!({"alias": ["prod", "best"], "tag": "eu", "collection_name": "bert"});
    let cases = [
        (json!({"$and": [{"alias": "prod"}, {"tag": "eu"}]}), true),
        (json!({"$and": [{"alias": "prod"}, {"tag": "us"}]}), false),
        (json!({"$or": [{"alias": "dev"}, {"tag": "eu"}]}), true),
        (json!({"$or": [{"alias": "dev"}, {"tag": "us"}]}), false),
        (json!({"$nor": [{"alias": "dev"}, {"tag": "us"}]}), true),
        (json!({"$nor": [{"alias": "dev"}, {"tag": "eu"}]}), false),
        (json!({"$not": {"alias": "prod"}}), false),
        (json!({"$not": {"alias": "dev"}}), true),
        // Several keys at one level mean all of them.
        (json!({"alias": "best", "tag": "eu"}), true),
        (json!({"alias": "best", "tag": "us"}), false),
        (
            json!({"alias": "best", "$or": [{"tag": "us"}, {"collection_name": "bert"}]}),
            true,
        ),
        // Empty lists: $and is true, $or false, $nor true.
        (json!({"$and": []}), true),
        (json!({"$or": []}), false),
        (json!({"$nor": []}), true),
        (json!({}), true),
    ];
    for (f, want) in cases {
        let filter = art(f.clone());
        assert_eq!(filter.matches(&doc), want, "{f}");
        assert_eq!(
            art(filter.to_wire()).matches(&doc),
            want,
            "round trip of {f}"
        );
    }
}

#[test]
fn wandb_wrappings_are_accepted_and_the_empty_filter_matches_everything() {
    for empty in [
        json!({"$or": [{"$and": []}]}),
        json!({"filter": {"$or": [{"$and": []}]}}),
        json!({"$and": []}),
        json!({}),
    ] {
        let f = art(empty.clone());
        assert!(f.is_empty(), "{empty}");
        assert!(f.matches(&json!({})));
        assert!(f.matches(&json!({"alias": "x"})));
        assert!(f.matches(&json!("not even an object")));
        assert_eq!(f.to_wire(), json!({"$or": [{"$and": []}]}));
        assert_eq!(f, Filter::empty(FilterFields::Artifact));
    }
    let input = json!({"$or": [{"$and": [{"alias": {"$regex": "^prod.*"}}]}]});
    let saved = json!({ "filter": input.clone() });
    let bare = json!({"alias": {"$regex": "^prod.*"}});
    for v in [&input, &saved, &bare] {
        let f = art(v.clone());
        assert!(!f.is_empty());
        assert!(f.matches(&json!({"alias": ["production"]})));
        assert!(!f.matches(&json!({"alias": ["dev"]})));
        // The SDK's wrap_mutation_event_filter form, whatever the input wrapping.
        assert_eq!(f.to_wire(), input);
    }
    // The SDK's OR of two aliases keeps its shape.
    let or = json!({"$or":[{"$and":[{"$or":[{"alias":{"$eq":"a"}},{"alias":{"$eq":"b"}}]}]}]});
    assert_eq!(art(or.clone()).to_wire(), or);
    assert_eq!(
        art(json!({"$or":[{"$and":[{"tag":{"$eq":"europe"}}]}]})).to_wire_string(),
        r#"{"$or":[{"$and":[{"tag":{"$eq":"europe"}}]}]}"#
    );
}
