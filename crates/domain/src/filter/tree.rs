//! A compiled filter's tree: expressions, field conditions and operands, evaluated against an
//! event document without allocating, and written back in the normalised wire form.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::{Map, Number, Value};

use super::single;

#[derive(Debug, Clone)]
pub(super) enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    Not(Box<Node>),
    /// All conditions hold for the field's value.
    Field(FieldPath, Vec<Cond>),
}

impl Node {
    pub(super) fn eval(&self, doc: &Value) -> bool {
        match self {
            Node::And(cs) => cs.iter().all(|c| c.eval(doc)),
            Node::Or(cs) => cs.iter().any(|c| c.eval(doc)),
            Node::Nor(cs) => !cs.iter().any(|c| c.eval(doc)),
            Node::Not(c) => !c.eval(doc),
            Node::Field(path, conds) => {
                let v = path.lookup(doc);
                conds.iter().all(|c| c.eval(v))
            }
        }
    }

    pub(super) fn always_true(&self) -> bool {
        match self {
            Node::And(cs) => cs.iter().all(Node::always_true),
            Node::Or(cs) => cs.iter().any(Node::always_true),
            Node::Nor(cs) => cs.iter().all(Node::always_false),
            Node::Not(c) => c.always_false(),
            Node::Field(..) => false,
        }
    }

    pub(super) fn always_false(&self) -> bool {
        match self {
            Node::And(cs) => cs.iter().any(Node::always_false),
            Node::Or(cs) => cs.iter().all(Node::always_false),
            Node::Nor(cs) => cs.iter().any(Node::always_true),
            Node::Not(c) => c.always_true(),
            Node::Field(..) => false,
        }
    }

    /// The deepest level and the number of nodes [`Parser`] counts in this node's wire form
    /// when it sits at level `depth`.
    pub(super) fn saved_size(&self, depth: usize) -> (usize, usize) {
        let children = |cs: &[Node]| {
            cs.iter()
                .map(|c| c.saved_size(depth + 1))
                .fold((depth, 1), |(d, n), (cd, cn)| (d.max(cd), n + cn))
        };
        match self {
            Node::And(cs) | Node::Or(cs) | Node::Nor(cs) => children(cs),
            Node::Not(c) => children(std::slice::from_ref(&**c)),
            // The expression object and the field, then the operator object one level down.
            Node::Field(_, conds) => {
                let (d, n) = conds_saved_size(conds, depth + 1);
                (d, n + 2)
            }
        }
    }

    pub(super) fn to_wire(&self) -> Value {
        let list = |cs: &[Node]| Value::Array(cs.iter().map(Node::to_wire).collect());
        match self {
            Node::And(cs) => single("$and", list(cs)),
            Node::Or(cs) => single("$or", list(cs)),
            Node::Nor(cs) => single("$nor", list(cs)),
            Node::Not(c) => single("$not", c.to_wire()),
            Node::Field(path, conds) => single(&path.name, conds_to_wire(conds)),
        }
    }
}

/// [`Node::saved_size`] of an operator object at level `depth`: one node per operator and per
/// `$in` element, as [`Parser::operators`] counts them.
pub(super) fn conds_saved_size(conds: &[Cond], depth: usize) -> (usize, usize) {
    conds.iter().fold((depth, 0), |(d, n), c| match c {
        Cond::In(l) | Cond::Nin(l) => (d, n + 1 + l.len()),
        Cond::Not(inner) => {
            let (id, inn) = conds_saved_size(inner, depth + 1);
            (d.max(id), n + 1 + inn)
        }
        _ => (d, n + 1),
    })
}

pub(super) fn conds_to_wire(conds: &[Cond]) -> Value {
    let mut m = Map::new();
    for c in conds {
        c.write_wire(&mut m);
    }
    Value::Object(m)
}

/// A field name and its pre-split dotted path (`config.optimizer.lr` → three segments).
#[derive(Debug, Clone)]
pub(super) struct FieldPath {
    pub(super) name: Box<str>,
    pub(super) segments: Box<[Box<str>]>,
}

impl FieldPath {
    pub(super) fn new(name: &str) -> FieldPath {
        FieldPath {
            name: name.into(),
            segments: name.split('.').map(Box::from).collect(),
        }
    }

    pub(super) fn lookup<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(doc, |cur, seg| cur.as_object()?.get(&**seg))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    pub(super) fn key(self) -> &'static str {
        match self {
            CmpOp::Gt => "$gt",
            CmpOp::Gte => "$gte",
            CmpOp::Lt => "$lt",
            CmpOp::Lte => "$lte",
        }
    }

    pub(super) fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Gte => o != Ordering::Less,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Lte => o != Ordering::Greater,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Pattern {
    pub(super) re: Regex,
    pub(super) source: Box<str>,
    pub(super) case_insensitive: bool,
}

/// A predicate on one field's value (`None` when the field is absent).
#[derive(Debug, Clone)]
pub(super) enum Cond {
    Eq(Scalar),
    Ne(Scalar),
    Cmp(CmpOp, Scalar),
    In(Box<[Scalar]>),
    Nin(Box<[Scalar]>),
    Exists(bool),
    Regex(Pattern),
    Contains(Box<str>),
    /// None of the field conditions hold together.
    Not(Vec<Cond>),
}

/// Whether `f` holds for the value, or for any element when the value is an array.
pub(super) fn any_value(v: Option<&Value>, f: impl Fn(&Value) -> bool) -> bool {
    match v {
        None => false,
        Some(Value::Array(items)) => items.iter().any(f),
        Some(x) => f(x),
    }
}

impl Cond {
    pub(super) fn eval(&self, v: Option<&Value>) -> bool {
        match self {
            Cond::Eq(s) => s.matches_eq(v),
            Cond::Ne(s) => !s.matches_eq(v),
            Cond::Cmp(op, s) => any_value(v, |x| s.compare(x).is_some_and(|o| op.holds(o))),
            Cond::In(list) => list.iter().any(|s| s.matches_eq(v)),
            Cond::Nin(list) => !list.iter().any(|s| s.matches_eq(v)),
            Cond::Exists(want) => {
                let present = match v {
                    None | Some(Value::Null) => false,
                    Some(Value::Array(items)) => !items.is_empty(),
                    Some(_) => true,
                };
                present == *want
            }
            Cond::Regex(p) => any_value(v, |x| x.as_str().is_some_and(|s| p.re.is_match(s))),
            Cond::Contains(needle) => {
                any_value(v, |x| x.as_str().is_some_and(|s| s.contains(&**needle)))
            }
            Cond::Not(conds) => !conds.iter().all(|c| c.eval(v)),
        }
    }

    pub(super) fn write_wire(&self, m: &mut Map<String, Value>) {
        let list = |l: &[Scalar]| Value::Array(l.iter().map(Scalar::to_value).collect());
        let (k, v) = match self {
            Cond::Eq(s) => ("$eq", s.to_value()),
            Cond::Ne(s) => ("$ne", s.to_value()),
            Cond::Cmp(op, s) => (op.key(), s.to_value()),
            Cond::In(l) => ("$in", list(l)),
            Cond::Nin(l) => ("$nin", list(l)),
            Cond::Exists(b) => ("$exists", Value::Bool(*b)),
            Cond::Regex(p) => {
                if p.case_insensitive {
                    m.insert("$options".into(), Value::String("i".into()));
                }
                ("$regex", Value::String(p.source.to_string()))
            }
            Cond::Contains(s) => ("$contains", Value::String(s.to_string())),
            Cond::Not(conds) => ("$not", conds_to_wire(conds)),
        };
        m.insert(k.to_string(), v);
    }
}

/// An operand. Numbers keep their wire form so that `to_wire` writes `5`, not `5.0`.
#[derive(Debug, Clone)]
pub(super) enum Scalar {
    Null,
    Bool(bool),
    Num(f64, Number),
    Str(Box<str>),
}

impl Scalar {
    pub(super) fn to_value(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Num(_, n) => Value::Number(n.clone()),
            Scalar::Str(s) => Value::String(s.to_string()),
        }
    }

    pub(super) fn equals(&self, x: &Value) -> bool {
        match (self, x) {
            (Scalar::Null, Value::Null) => true,
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Num(a, _), Value::Number(b)) => b.as_f64() == Some(*a),
            (Scalar::Str(a), Value::String(b)) => **a == **b,
            _ => false,
        }
    }

    /// MongoDB's equality: any element of an array; `null` also matches an absent field.
    pub(super) fn matches_eq(&self, v: Option<&Value>) -> bool {
        match v {
            None => matches!(self, Scalar::Null),
            Some(_) => any_value(v, |x| self.equals(x)),
        }
    }

    /// How `x` orders against this operand; `None` across types, since herald never coerces.
    pub(super) fn compare(&self, x: &Value) -> Option<Ordering> {
        match (x, self) {
            (Value::Number(a), Scalar::Num(b, _)) => a.as_f64()?.partial_cmp(b),
            (Value::String(a), Scalar::Str(b)) => Some((**a).cmp(&**b)),
            (Value::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}
