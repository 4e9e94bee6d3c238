//! Property tests: compiled filters against a naive reference evaluator, and parsing that
//! never panics on arbitrary input.

use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::cmp::Ordering;

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
