//! Parsing: the saved (wire) form, run filters' fields, refusals that name their path, and
//! the size limits.

use super::parse::Parser;
use super::tests::{art, refused, run};
use super::*;
use serde_json::json;

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
