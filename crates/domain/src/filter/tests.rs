use super::parse::Parser;
use super::*;
use std::cmp::Ordering;

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
use proptest::prelude::*;
use serde_json::json;

fn art(v: Value) -> Filter {
    Filter::parse(&v, FilterFields::Artifact).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn run(v: Value) -> Filter {
    Filter::parse(&v, FilterFields::Run).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn refused(v: Value, fields: FilterFields) -> InvalidInput {
    match Filter::parse(&v, fields) {
        Ok(f) => panic!("{v} was accepted as {:?}", f.to_wire()),
        Err(e) => e,
    }
}

/// Checks one condition on `alias` against a list of (document, expected) pairs.
fn table(cond: Value, cases: &[(Value, bool)]) {
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

#[test]
fn normalisation_spells_out_implicit_forms() {
    assert_eq!(
        art(json!({"alias": "a", "tag": {"$regex": "x", "$options": "i"}})).to_wire(),
        json!({"$or": [{"$and": [
            {"alias": {"$eq": "a"}},
            {"tag": {"$regex": "x", "$options": "i"}}
        ]}]})
    );
    assert_eq!(
        art(json!({"alias": {"$regex": "x", "$options": ""}})).to_wire(),
        json!({"$or": [{"$and": [{"alias": {"$regex": "x"}}]}]})
    );
    // Integers stay integers.
    assert_eq!(
        run(json!({"config.epochs": {"$gte": 5}})).to_wire_string(),
        r#"{"$and":[{"config.epochs":{"$gte":5}}]}"#
    );
    // A meaningful empty $or survives rather than being mistaken for the wrapper.
    let never = art(json!({"$or": []}));
    assert!(!never.is_empty());
    assert!(!art(never.to_wire()).matches(&json!({})));
}

#[test]
fn float_operands_keep_their_value_through_the_saved_form() {
    // The wire form writes each number's shortest form; reading it back must give the
    // same number, or a stored filter compares against a neighbouring value.
    let f = Filter::parse_str(
        r#"{"config.lr": {"$gt": 7.777777777777777e127}}"#,
        FilterFields::Run,
    )
    .unwrap();
    let again = Filter::parse_str(&f.to_wire_string(), FilterFields::Run).unwrap();
    assert_eq!(again.to_wire(), f.to_wire());
    let doc = json!({"config": {"lr": 7.777777777777777e127}});
    assert!(!f.matches(&doc));
    assert!(!again.matches(&doc));
}

#[test]
fn run_filters_use_run_fields_and_config_paths() {
    let doc = json!({
        "display_name": "bert-large-3",
        "username": "ada",
        "tags": ["baseline", "eu"],
        "config": {"lr": 0.01, "optimizer": {"name": "adam", "beta": 0.9}, "epochs": 10}
    });
    let cases = [
        (
            json!({"$and": [{"display_name": {"$contains": "bert"}}]}),
            true,
        ),
        (
            json!({"$and": [{"display_name": {"$regex": "^bert-(base|large)"}}]}),
            true,
        ),
        (json!({"username": "ada"}), true),
        (json!({"username": "bob"}), false),
        (json!({"tags": {"$in": ["eu", "us"]}}), true),
        (json!({"tags": {"$nin": ["eu"]}}), false),
        (json!({"config.lr": {"$lt": 0.1}}), true),
        (json!({"config.optimizer.name": "adam"}), true),
        (json!({"config.optimizer.beta": {"$gte": 0.95}}), false),
        (json!({"config.epochs": 10.0}), true),
        (json!({"config.missing": {"$exists": false}}), true),
        (json!({"config.lr.value": {"$exists": true}}), false),
        (json!({"config.optimizer": {"$exists": true}}), true),
        (json!({"config.optimizer": "adam"}), false),
    ];
    for (f, want) in cases {
        let filter = run(f.clone());
        assert_eq!(filter.matches(&doc), want, "{f}");
        assert_eq!(
            run(filter.to_wire()).matches(&doc),
            want,
            "round trip of {f}"
        );
    }
    assert!(!run(json!({"config.lr": 0.01})).matches(&json!({"config": 5})));
    let empty = Filter::parse_str(r#"{"$and":[]}"#, FilterFields::Run).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.to_wire_string(), r#"{"$and":[]}"#);
    let f = Filter::parse_str(
        r#"{"$and":[{"display_name":{"$contains":"my-run"}}]}"#,
        FilterFields::Run,
    )
    .unwrap();
    assert_eq!(
        f.to_wire_string(),
        r#"{"$and":[{"display_name":{"$contains":"my-run"}}]}"#
    );
}

#[test]
fn is_empty_is_structural() {
    assert!(art(json!({"$and": [{}, {"$and": []}]})).is_empty());
    assert!(art(json!({"$or": [{"alias": "x"}, {}]})).is_empty());
    assert!(art(json!({"$not": {"$or": []}})).is_empty());
    assert!(art(json!({"$nor": [{"$or": []}]})).is_empty());
    assert!(!art(json!({"$nor": [{}]})).is_empty());
    assert!(!art(json!({"$not": {}})).is_empty());
    assert!(!art(json!({"alias": {"$exists": false}})).is_empty());
}

fn assert_refused(v: Value, fields: FilterFields, path: &str, needles: &[&str]) {
    let e = refused(v.clone(), fields);
    assert_eq!(e.path, path, "{v}: {e}");
    for n in needles {
        assert!(e.message.contains(n), "{v}: {:?} lacks {n:?}", e.message);
    }
}

#[test]
fn refusals_name_the_problem_and_its_path() {
    use FilterFields::{Artifact as A, Run as R};
    let all_ops = "$and, $or, $nor, $not, $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists, $regex, $contains";
    let cases: Vec<(Value, FilterFields, &str, Vec<&str>)> = vec![
        (
            json!({"$foo": 1}),
            A,
            "$foo",
            vec!["unknown operator \"$foo\"", all_ops],
        ),
        (
            json!({"alias": {"$size": 1}}),
            A,
            "alias.$size",
            vec!["unknown operator", all_ops],
        ),
        (
            json!({"$or": [{"$and": [{"alias": "a"}, {"color": "red"}]}]}),
            A,
            "$or[0].$and[1].color",
            vec![
                "unknown field \"color\"",
                "alias, tag, collection_name, artifact_type, entity_name, project_name",
            ],
        ),
        (
            json!({"filter": {"$or": [{"$and": [{"alias": {"$regex": "("}}]}]}}),
            A,
            "filter.$or[0].$and[0].alias.$regex",
            vec!["invalid regular expression", "unclosed group"],
        ),
        (
            json!({"alias": {"$regex": "a".repeat(MAX_REGEX_CHARS + 1)}}),
            A,
            "alias.$regex",
            vec!["1001 characters", "limit is 1000"],
        ),
        (
            json!({"alias": {"$regex": "(?:\\w{100}){100}"}}),
            A,
            "alias.$regex",
            vec!["invalid regular expression", "size limit"],
        ),
        (
            json!({"alias": {"$regex": 5}}),
            A,
            "alias.$regex",
            vec!["$regex takes a string"],
        ),
        (
            json!({"alias": {"$regex": "a", "$options": "m"}}),
            A,
            "alias.$options",
            vec!["only \"i\""],
        ),
        (
            json!({"alias": {"$options": "i"}}),
            A,
            "alias.$options",
            vec!["next to $regex"],
        ),
        (
            json!({"alias": {"$in": "prod"}}),
            A,
            "alias.$in",
            vec!["$in takes an array"],
        ),
        (
            json!({"alias": {"$nin": {}}}),
            A,
            "alias.$nin",
            vec!["$nin takes an array"],
        ),
        (
            json!({"alias": {"$in": ["a", {"b": 1}]}}),
            A,
            "alias.$in[1]",
            vec!["$in takes a string, number, bool or null, found an object"],
        ),
        (
            json!({"alias": {"$gt": null}}),
            A,
            "alias.$gt",
            vec!["$gt takes a string, number or bool, found null"],
        ),
        (
            json!({"alias": {"$lte": [1]}}),
            A,
            "alias.$lte",
            vec!["found an array"],
        ),
        (
            json!({"alias": {"$eq": {"a": 1}}}),
            A,
            "alias.$eq",
            vec!["$eq takes"],
        ),
        (
            json!({"alias": {"$exists": "yes"}}),
            A,
            "alias.$exists",
            vec!["true or false"],
        ),
        (
            json!({"alias": {"$contains": 5}}),
            A,
            "alias.$contains",
            vec!["$contains takes a string"],
        ),
        (
            json!({"alias": {"$not": "x"}}),
            A,
            "alias.$not",
            vec!["operator object"],
        ),
        (
            json!({"alias": {"$not": {}}}),
            A,
            "alias.$not",
            vec!["operator object"],
        ),
        (
            json!({"alias": {"$and": [{"$eq": 1}]}}),
            A,
            "alias.$and",
            vec!["cannot apply to a field"],
        ),
        (json!({"alias": ["a", "b"]}), A, "alias", vec!["$in"]),
        (json!({"alias": {}}), A, "alias", vec!["operator object"]),
        (
            json!({"alias": {"x": 1}}),
            A,
            "alias",
            vec!["operator object"],
        ),
        (
            json!({"alias": {"$eq": 1, "x": 1}}),
            A,
            "alias.x",
            vec!["only operators"],
        ),
        (json!({"$eq": "a"}), A, "$eq", vec!["inside one"]),
        (
            json!({"$and": {"alias": "a"}}),
            A,
            "$and",
            vec!["$and takes an array"],
        ),
        (
            json!({"$or": [{"alias": "a"}, "b"]}),
            A,
            "$or[1]",
            vec!["expected a filter object", "found a string"],
        ),
        (
            json!({"$not": [1]}),
            A,
            "$not",
            vec!["expected a filter object"],
        ),
        (json!(["alias"]), A, "", vec!["expected a filter object"]),
        (json!("x"), A, "", vec!["found a string"]),
        (json!({"tags": "a"}), A, "tags", vec!["unknown field"]),
        (
            json!({"filter": {"alias": "a"}, "tag": "b"}),
            A,
            "filter",
            vec!["unknown field"],
        ),
        (
            json!({"filter": {"alias": "a"}}),
            R,
            "filter",
            vec!["unknown field"],
        ),
        (
            json!({"alias": "a"}),
            R,
            "alias",
            vec![
                "unknown field",
                "display_name, username, tags, config.<key>",
            ],
        ),
        (
            json!({"config": 1}),
            R,
            "config",
            vec!["needs a config key"],
        ),
        (
            json!({"config.": 1}),
            R,
            "config.",
            vec!["needs a config key"],
        ),
        (
            json!({"config.a-b": 1}),
            R,
            "config.a-b",
            vec!["segment \"a-b\""],
        ),
        (
            json!({"config.a..b": 1}),
            R,
            "config.a..b",
            vec!["segment \"\""],
        ),
        (
            json!({"config.1st": 1}),
            R,
            "config.1st",
            vec!["segment \"1st\""],
        ),
        (
            json!({"$and": [{"username": {"$regex": "[z-a]"}}]}),
            R,
            "$and[0].username.$regex",
            vec!["invalid regular expression"],
        ),
    ];
    for (v, fields, path, needles) in cases {
        assert_refused(v, fields, path, &needles);
    }
}

fn nested_nots(levels: usize) -> Value {
    (0..levels).fold(json!({"alias": "x"}), |inner, _| json!({ "$not": inner }))
}

#[test]
fn depth_is_capped_at_32_levels() {
    // The innermost expression of n `$not`s sits at level n + 1; the saved form's
    // wrapping and `$eq` object take three more (see `the_limits_apply_to_the_saved_form`).
    let f = art(nested_nots(MAX_DEPTH - 4));
    assert!(f.matches(&json!({"alias": "x"})));
    let e = refused(nested_nots(MAX_DEPTH), FilterFields::Artifact);
    assert_eq!(e.path, vec!["$not"; MAX_DEPTH].join("."));
    assert!(e.message.contains("deeper than 32 levels"), "{e}");
    // Field-level `$not`s count too.
    let deep_field = (0..MAX_DEPTH).fold(json!({"$eq": "x"}), |inner, _| json!({ "$not": inner }));
    let e = refused(json!({ "alias": deep_field }), FilterFields::Artifact);
    assert!(e.message.contains("deeper than 32 levels"), "{e}");
    // A very deep value is refused without recursing through all of it.
    let e = refused(nested_nots(1_000), FilterFields::Artifact);
    assert!(e.message.contains("deeper"), "{e}");
}

#[test]
fn node_count_is_capped() {
    let ok: Vec<Value> = (0..300).map(|i| json!({ "alias": i })).collect();
    art(json!({ "$or": ok }));
    let many: Vec<Value> = (0..600).map(|i| json!({ "alias": i })).collect();
    let e = refused(json!({ "$or": many }), FilterFields::Artifact);
    assert!(e.path.starts_with("$or["), "{e}");
    assert!(e.message.contains("more than 1000 nodes"), "{e}");
    let big_in: Vec<Value> = (0..1000).map(|i| json!(i)).collect();
    let e = refused(json!({"alias": {"$in": big_in}}), FilterFields::Artifact);
    assert!(e.path.starts_with("alias.$in["), "{e}");
}

/// `levels` `$not`s around `{field: "x"}`.
fn nots_on(field: &str, levels: usize) -> Value {
    (0..levels).fold(json!({ field: "x" }), |inner, _| json!({ "$not": inner }))
}

/// `levels` objects, each holding a `$not` around the next and `field` beside it.
fn pairs_on(field: &str, levels: usize) -> Value {
    (0..levels).fold(
        json!({ field: "x" }),
        |inner, _| json!({ "$not": inner, field: "t" }),
    )
}

#[test]
fn the_limits_apply_to_the_saved_form() {
    // The saved form (`to_wire`) adds levels and nodes: the `{"$or":[{"$and":[…]}]}`
    // wrapping, `{"$eq": …}` for bare values, an `$and` for each object with several
    // keys. The matcher re-parses that form, so a filter whose saved form broke a limit
    // was stored, then skipped on every reload. Found while writing the filter fuzz
    // target, whose round trip now checks it.
    for (fields, field) in [
        (FilterFields::Artifact, "alias"),
        (FilterFields::Run, "username"),
    ] {
        for n in 0..=MAX_DEPTH {
            for v in [nots_on(field, n), pairs_on(field, n)] {
                if let Ok(f) = Filter::parse(&v, fields) {
                    let again = Filter::parse(&f.to_wire(), fields)
                        .unwrap_or_else(|e| panic!("saved form of {v}: {e}"));
                    assert_eq!(again.to_wire(), f.to_wire());
                }
            }
        }
    }
    // Two levels of wrapping and the `$eq` object: 28 `$not`s are the most an artifact
    // filter may hold around a bare value, 29 a run filter (one level of wrapping).
    art(nots_on("alias", MAX_DEPTH - 4));
    let e = refused(nots_on("alias", MAX_DEPTH - 3), FilterFields::Artifact);
    assert_eq!(e.path, "");
    assert!(e.message.contains("deeper than 32 levels"), "{e}");
    assert!(e.message.contains("once saved"), "{e}");
    run(nots_on("username", MAX_DEPTH - 3));
    refused(nots_on("username", MAX_DEPTH - 2), FilterFields::Run);
    // Each object with two keys is two levels once saved.
    art(pairs_on("alias", 14));
    let e = refused(pairs_on("alias", 15), FilterFields::Artifact);
    assert!(e.message.contains("deeper than 32 levels"), "{e}");

    // 332 bare conditions under `$or`: 3 nodes each once saved (`{"alias": {"$eq": i}}`),
    // plus `$or`, `$and` and this `$or`.
    let or = |n: usize| json!({ "$or": (0..n).map(|i| json!({ "alias": i })).collect::<Vec<_>>() });
    let f = art(or(332));
    art(f.to_wire());
    let e = refused(or(333), FilterFields::Artifact);
    assert_eq!(e.path, "");
    assert!(e.message.contains("more than 1000 nodes"), "{e}");
}

#[test]
fn saved_size_counts_what_the_parser_counts() {
    let cases = [
        json!({}),
        json!({"alias": "a"}),
        json!({"alias": "a", "tag": {"$in": [1, 2, 3], "$not": {"$regex": "x", "$options": "i"}}}),
        json!({"$or": [{"$and": [{"alias": {"$nin": []}}]}]}),
        json!({"$nor": [{"$not": {"tag": {"$not": {"$not": {"$exists": true}}}}}, {}]}),
        json!({"filter": {"$or": [{"tag": null}, {"alias": {"$gt": 1, "$lt": 3}}]}}),
        pairs_on("alias", 5),
    ];
    for v in cases {
        let f = art(v.clone());
        let mut parser = Parser {
            fields: FilterFields::Artifact,
            nodes: 0,
            regexes: 0,
        };
        parser.expr(&f.to_wire(), "", 1).unwrap();
        assert_eq!(f.saved_size().1, parser.nodes, "{v}");
    }
}

#[test]
fn parse_str_refuses_bad_json() {
    let e = Filter::parse_str("{\"$and\": [", FilterFields::Run).unwrap_err();
    assert!(
        e.message.starts_with("run_filter is not valid JSON: "),
        "{e}"
    );
    let e = Filter::parse_str("nope", FilterFields::Artifact).unwrap_err();
    assert!(
        e.message.starts_with("event filter is not valid JSON: "),
        "{e}"
    );
    let e = Filter::parse_str(r#"{"$and":[{"nope":1}]}"#, FilterFields::Run).unwrap_err();
    assert_eq!(e.path, "$and[0].nope");
}

#[test]
fn errors_reroot_under_the_callers_field() {
    let e = refused(json!({"alias": {"$in": 1}}), FilterFields::Artifact).at("eventFilter");
    assert_eq!(e.path, "eventFilter.alias.$in");
    let e = refused(json!([]), FilterFields::Artifact).at("eventFilter");
    assert_eq!(e.path, "eventFilter");
}

#[test]
fn filters_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
}

// ---- property tests ----------------------------------------------------------------

/// The filter language as the tests see it, evaluated by `reference` straight from the
/// documented semantics, independently of the compiled tree.
#[derive(Debug, Clone)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Nor(Vec<Expr>),
    Not(Box<Expr>),
    Bare(&'static str, Value),
    Field(&'static str, Vec<Op>),
}

#[derive(Debug, Clone)]
enum Op {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    /// Literal text, optional `^`/`$` anchors, case-insensitivity.
    Regex(String, bool, bool, bool),
    Contains(String),
    Not(Vec<Op>),
}

impl Op {
    fn key(&self) -> &'static str {
        match self {
            Op::Eq(_) => "$eq",
            Op::Ne(_) => "$ne",
            Op::Gt(_) => "$gt",
            Op::Gte(_) => "$gte",
            Op::Lt(_) => "$lt",
            Op::Lte(_) => "$lte",
            Op::In(_) => "$in",
            Op::Nin(_) => "$nin",
            Op::Exists(_) => "$exists",
            Op::Regex(..) => "$regex",
            Op::Contains(_) => "$contains",
            Op::Not(_) => "$not",
        }
    }
}

fn ops_json(ops: &[Op]) -> Value {
    let mut m = Map::new();
    for op in ops {
        let v = match op {
            Op::Eq(v) | Op::Ne(v) | Op::Gt(v) | Op::Gte(v) | Op::Lt(v) | Op::Lte(v) => v.clone(),
            Op::In(l) | Op::Nin(l) => Value::Array(l.clone()),
            Op::Exists(b) => json!(b),
            Op::Regex(lit, start, end, ci) => {
                if *ci {
                    m.insert("$options".into(), json!("i"));
                }
                let p = format!(
                    "{}{}{}",
                    if *start { "^" } else { "" },
                    regex::escape(lit),
                    if *end { "$" } else { "" }
                );
                json!(p)
            }
            Op::Contains(s) => json!(s),
            Op::Not(inner) => ops_json(inner),
        };
        m.insert(op.key().into(), v);
    }
    Value::Object(m)
}

impl Expr {
    fn to_json(&self) -> Value {
        let list = |cs: &[Expr]| Value::Array(cs.iter().map(Expr::to_json).collect());
        match self {
            Expr::And(cs) => json!({ "$and": list(cs) }),
            Expr::Or(cs) => json!({ "$or": list(cs) }),
            Expr::Nor(cs) => json!({ "$nor": list(cs) }),
            Expr::Not(c) => json!({ "$not": c.to_json() }),
            Expr::Bare(f, v) => json!({ *f: v }),
            Expr::Field(f, ops) => json!({ *f: ops_json(ops) }),
        }
    }
}

fn elements(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None => vec![],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(x) => vec![x],
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn ref_op(op: &Op, v: Option<&Value>) -> bool {
    let els = elements(v);
    let cmp = |s: &Value, want: &dyn Fn(Ordering) -> bool| {
        els.iter().any(|e| order(e, s).is_some_and(want))
    };
    match op {
        Op::Eq(s) if s.is_null() => v.is_none() || els.iter().any(|e| e.is_null()),
        Op::Eq(s) => els.iter().any(|e| same(e, s)),
        Op::Ne(s) => !ref_op(&Op::Eq(s.clone()), v),
        Op::Gt(s) => cmp(s, &|o| o == Ordering::Greater),
        Op::Gte(s) => cmp(s, &|o| o != Ordering::Less),
        Op::Lt(s) => cmp(s, &|o| o == Ordering::Less),
        Op::Lte(s) => cmp(s, &|o| o != Ordering::Greater),
        Op::In(l) => l.iter().any(|s| ref_op(&Op::Eq(s.clone()), v)),
        Op::Nin(l) => !ref_op(&Op::In(l.clone()), v),
        Op::Exists(b) => {
            let present = match v {
                None | Some(Value::Null) => false,
                Some(Value::Array(a)) => !a.is_empty(),
                _ => true,
            };
            present == *b
        }
        Op::Regex(lit, start, end, ci) => els.iter().any(|e| {
            let Some(s) = e.as_str() else { return false };
            let (s, lit) = if *ci {
                (s.to_lowercase(), lit.to_lowercase())
            } else {
                (s.to_string(), lit.clone())
            };
            match (start, end) {
                (true, true) => s == lit,
                (true, false) => s.starts_with(&lit),
                (false, true) => s.ends_with(&lit),
                (false, false) => s.contains(&lit),
            }
        }),
        Op::Contains(sub) => els
            .iter()
            .any(|e| e.as_str().is_some_and(|s| s.contains(sub.as_str()))),
        Op::Not(inner) => !inner.iter().all(|o| ref_op(o, v)),
    }
}

fn reference(e: &Expr, doc: &Value) -> bool {
    match e {
        Expr::And(cs) => cs.iter().all(|c| reference(c, doc)),
        Expr::Or(cs) => cs.iter().any(|c| reference(c, doc)),
        Expr::Nor(cs) => !cs.iter().any(|c| reference(c, doc)),
        Expr::Not(c) => !reference(c, doc),
        Expr::Bare(f, v) => ref_op(&Op::Eq(v.clone()), doc.get(*f)),
        Expr::Field(f, ops) => ops.iter().all(|o| ref_op(o, doc.get(*f))),
    }
}

const FIELDS: &[&str] = &["alias", "tag", "collection_name"];

fn field() -> impl Strategy<Value = &'static str> {
    prop::sample::select(FIELDS)
}

fn word() -> impl Strategy<Value = String> {
    "[abAB]{0,3}"
}

fn scalar(null: bool) -> BoxedStrategy<Value> {
    let s = prop_oneof![
        word().prop_map(Value::String),
        (-2i64..=3).prop_map(|n| json!(n)),
        prop::sample::select(vec![json!(1.0), json!(1.5), json!(-0.5)]),
        any::<bool>().prop_map(Value::Bool),
    ];
    if null {
        prop_oneof![4 => s, 1 => Just(Value::Null)].boxed()
    } else {
        s.boxed()
    }
}

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        scalar(true).prop_map(Op::Eq),
        scalar(true).prop_map(Op::Ne),
        scalar(false).prop_map(Op::Gt),
        scalar(false).prop_map(Op::Gte),
        scalar(false).prop_map(Op::Lt),
        scalar(false).prop_map(Op::Lte),
        prop::collection::vec(scalar(true), 0..4).prop_map(Op::In),
        prop::collection::vec(scalar(true), 0..4).prop_map(Op::Nin),
        any::<bool>().prop_map(Op::Exists),
        (word(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(w, s, e, ci)| Op::Regex(w, s, e, ci)),
        word().prop_map(Op::Contains),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop::collection::vec(inner, 1..3).prop_map(|ops| Op::Not(dedup(ops)))
    })
}

/// One JSON object holds each operator once.
fn dedup(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::new();
    for op in ops {
        if !out.iter().any(|o| o.key() == op.key()) {
            out.push(op);
        }
    }
    out
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (field(), scalar(true)).prop_map(|(f, v)| Expr::Bare(f, v)),
        (field(), prop::collection::vec(op(), 1..4))
            .prop_map(|(f, ops)| Expr::Field(f, dedup(ops))),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Expr::Or),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Expr::Nor),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

fn doc() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        scalar(true),
        prop::collection::vec(scalar(true), 0..4).prop_map(Value::Array),
    ];
    prop::collection::vec((field(), prop::option::of(value)), 0..4).prop_map(|kvs| {
        let mut m = Map::new();
        for (k, v) in kvs {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        }
        Value::Object(m)
    })
}

/// Arbitrary JSON, biased towards the words the parser reacts to.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        prop::sample::select(
            OPERATORS
                .iter()
                .chain(ARTIFACT_FIELDS)
                .chain(RUN_FIELDS)
                .chain(&[
                    "$options",
                    "$size",
                    "filter",
                    "config",
                    "config.a",
                    "config.a.b",
                    "x",
                    ""
                ])
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        ),
        "\\PC{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof!["[a-z^$.*()\\[\\]|+?{}\\\\]{0,8}", "\\PC{0,8}"].prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|kvs| Value::Object(kvs.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_filters_agree_with_the_reference(e in expr(), docs in prop::collection::vec(doc(), 1..8)) {
        let wire = e.to_json();
        let f = Filter::parse(&wire, FilterFields::Artifact)
            .map_err(|err| TestCaseError::fail(format!("{wire}: {err}")))?;
        let again = Filter::parse(&f.to_wire(), FilterFields::Artifact)
            .map_err(|err| TestCaseError::fail(format!("{}: {err}", f.to_wire())))?;
        // Normalising is idempotent.
        prop_assert_eq!(again.to_wire(), f.to_wire());
        for d in &docs {
            let want = reference(&e, d);
            prop_assert_eq!(f.matches(d), want, "filter {} on {}", wire, d);
            prop_assert_eq!(again.matches(d), want, "round trip {} on {}", f.to_wire(), d);
        }
    }

    #[test]
    fn parse_never_panics(v in arbitrary_json(), docs in prop::collection::vec(arbitrary_json(), 0..3)) {
        for fields in [FilterFields::Artifact, FilterFields::Run] {
            if let Ok(f) = Filter::parse(&v, fields) {
                for d in &docs {
                    let m = f.matches(d);
                    let again = Filter::parse(&f.to_wire(), fields).expect("normal form parses");
                    prop_assert_eq!(again.matches(d), m);
                }
            }
            let _ = Filter::parse_str(&v.to_string(), fields);
        }
    }

    #[test]
    fn parse_str_never_panics(s in "\\PC{0,40}") {
        let _ = Filter::parse_str(&s, FilterFields::Run);
        let _ = Filter::parse_str(&s, FilterFields::Artifact);
    }
}
