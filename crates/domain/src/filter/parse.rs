//! Parsing and validating a filter's JSON into its tree: operators, fields, operands and
//! patterns, each refusal naming the path of what is wrong, within the size limits.

use regex::RegexBuilder;
use serde_json::{Map, Value};

use super::tree::{CmpOp, Cond, Node, Pattern, Scalar};
use super::{
    FilterFields, MAX_DEPTH, MAX_NODES, MAX_REGEXES, MAX_REGEX_CHARS, OPERATORS, REGEX_SIZE_LIMIT,
};
use crate::InvalidInput;

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn unknown_operator(op: &str, path: &str) -> InvalidInput {
    InvalidInput::new(
        path,
        format!(
            "unknown operator {op:?}; allowed operators: {}",
            OPERATORS.join(", ")
        ),
    )
}

pub(super) struct Parser {
    pub(super) fields: FilterFields,
    pub(super) nodes: usize,
    pub(super) regexes: usize,
}

impl Parser {
    pub(super) fn count(&mut self, path: &str) -> Result<(), InvalidInput> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(InvalidInput::new(
                path,
                format!("filter has more than {MAX_NODES} nodes; simplify it"),
            ));
        }
        Ok(())
    }

    pub(super) fn depth(path: &str, depth: usize) -> Result<(), InvalidInput> {
        if depth > MAX_DEPTH {
            return Err(InvalidInput::new(
                path,
                format!("filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// An expression: an object whose keys are logical operators or field names.
    pub(super) fn expr(
        &mut self,
        v: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Node, InvalidInput> {
        Self::depth(path, depth)?;
        self.count(path)?;
        let Value::Object(obj) = v else {
            return Err(InvalidInput::new(
                path,
                format!(
                    "expected a filter object such as {{\"alias\": \"production\"}}, found {}",
                    kind(v)
                ),
            ));
        };
        let mut parts = Vec::with_capacity(obj.len());
        for (key, val) in obj {
            let p = join(path, key);
            let node = match key.as_str() {
                "$and" | "$or" | "$nor" => {
                    let Value::Array(items) = val else {
                        return Err(InvalidInput::new(
                            &p,
                            format!(
                                "{key} takes an array of filter objects, found {}",
                                kind(val)
                            ),
                        ));
                    };
                    let mut children = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        children.push(self.expr(item, &format!("{p}[{i}]"), depth + 1)?);
                    }
                    match key.as_str() {
                        "$and" => Node::And(children),
                        "$or" => Node::Or(children),
                        _ => Node::Nor(children),
                    }
                }
                "$not" => Node::Not(Box::new(self.expr(val, &p, depth + 1)?)),
                op if op.starts_with('$') => {
                    if OPERATORS.contains(&op) || op == "$options" {
                        return Err(InvalidInput::new(
                            &p,
                            format!(
                                "{op} applies to a field and must sit inside one, as in {{\"alias\": {{\"{op}\": …}}}}"
                            ),
                        ));
                    }
                    return Err(unknown_operator(op, &p));
                }
                field => {
                    let fp = self
                        .fields
                        .field(field)
                        .map_err(|m| InvalidInput::new(&p, m))?;
                    self.count(&p)?;
                    Node::Field(fp, self.condition(val, &p, depth + 1)?)
                }
            };
            parts.push(node);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Node::And(parts)
        })
    }

    /// What follows a field name: a bare scalar (`$eq`) or an object of operators.
    pub(super) fn condition(
        &mut self,
        v: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Cond>, InvalidInput> {
        match v {
            Value::Object(ops) if !ops.is_empty() && ops.keys().all(|k| k.starts_with('$')) => {
                self.operators(ops, path, depth)
            }
            Value::Object(ops) => {
                if let Some(k) = ops.keys().find(|k| !k.starts_with('$')) {
                    if ops.keys().any(|k| k.starts_with('$')) {
                        return Err(InvalidInput::new(
                            join(path, k),
                            "an operator object may contain only operators ($eq, $regex, …)",
                        ));
                    }
                }
                Err(InvalidInput::new(
                    path,
                    "a field's value must be a scalar (string, number, bool or null) or an operator object such as {\"$regex\": \"^prod\"}",
                ))
            }
            Value::Array(_) => Err(InvalidInput::new(
                path,
                "a field's value must be a scalar (string, number, bool or null); to match any of several values use {\"$in\": [...]}",
            )),
            scalar => Ok(vec![Cond::Eq(operand(scalar, "$eq", path, true)?)]),
        }
    }

    pub(super) fn operators(
        &mut self,
        ops: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Cond>, InvalidInput> {
        Self::depth(path, depth)?;
        let case_insensitive = match ops.get("$options") {
            None => false,
            Some(opts) => {
                let p = join(path, "$options");
                if !ops.contains_key("$regex") {
                    return Err(InvalidInput::new(p, "$options only applies next to $regex"));
                }
                match opts.as_str() {
                    Some("") => false,
                    Some("i") => true,
                    _ => {
                        return Err(InvalidInput::new(
                            p,
                            format!(
                                "$options supports only \"i\" (case-insensitive), found {opts}"
                            ),
                        ))
                    }
                }
            }
        };
        let mut conds = Vec::with_capacity(ops.len());
        for (op, arg) in ops {
            let p = join(path, op);
            let cond = match op.as_str() {
                "$options" => continue,
                "$eq" => Cond::Eq(operand(arg, op, &p, true)?),
                "$ne" => Cond::Ne(operand(arg, op, &p, true)?),
                "$gt" => Cond::Cmp(CmpOp::Gt, operand(arg, op, &p, false)?),
                "$gte" => Cond::Cmp(CmpOp::Gte, operand(arg, op, &p, false)?),
                "$lt" => Cond::Cmp(CmpOp::Lt, operand(arg, op, &p, false)?),
                "$lte" => Cond::Cmp(CmpOp::Lte, operand(arg, op, &p, false)?),
                "$in" | "$nin" => {
                    let Value::Array(items) = arg else {
                        return Err(InvalidInput::new(
                            &p,
                            format!("{op} takes an array of scalars, found {}", kind(arg)),
                        ));
                    };
                    let mut list = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{p}[{i}]");
                        self.count(&ip)?;
                        list.push(operand(item, op, &ip, true)?);
                    }
                    if op == "$in" {
                        Cond::In(list.into())
                    } else {
                        Cond::Nin(list.into())
                    }
                }
                "$exists" => match arg {
                    Value::Bool(b) => Cond::Exists(*b),
                    _ => {
                        return Err(InvalidInput::new(
                            &p,
                            format!("$exists takes true or false, found {}", kind(arg)),
                        ))
                    }
                },
                "$regex" => {
                    self.regexes += 1;
                    if self.regexes > MAX_REGEXES {
                        return Err(InvalidInput::new(
                            &p,
                            format!("filter has more than {MAX_REGEXES} $regex conditions; combine them"),
                        ));
                    }
                    Cond::Regex(pattern(arg, case_insensitive, &p)?)
                }
                "$contains" => match arg {
                    Value::String(s) => Cond::Contains(s.as_str().into()),
                    _ => {
                        return Err(InvalidInput::new(
                            &p,
                            format!("$contains takes a string, found {}", kind(arg)),
                        ))
                    }
                },
                "$not" => match arg {
                    Value::Object(inner)
                        if !inner.is_empty() && inner.keys().all(|k| k.starts_with('$')) =>
                    {
                        Cond::Not(self.operators(inner, &p, depth + 1)?)
                    }
                    _ => {
                        return Err(InvalidInput::new(
                            &p,
                            "$not on a field takes an operator object such as {\"$regex\": \"^tmp\"}",
                        ))
                    }
                },
                "$and" | "$or" | "$nor" => {
                    return Err(InvalidInput::new(
                        &p,
                        format!(
                            "{op} combines filter objects and cannot apply to a field; put it around fields, as in {{\"{op}\": [{{\"alias\": \"a\"}}, {{\"tag\": \"b\"}}]}}"
                        ),
                    ))
                }
                other => return Err(unknown_operator(other, &p)),
            };
            self.count(&p)?;
            conds.push(cond);
        }
        Ok(conds)
    }
}

/// A comparison operand: a string, number or bool, and `null` where `allow_null`.
pub(super) fn operand(
    v: &Value,
    op: &str,
    path: &str,
    allow_null: bool,
) -> Result<Scalar, InvalidInput> {
    let what = if allow_null {
        "a string, number, bool or null"
    } else {
        "a string, number or bool"
    };
    match v {
        Value::Null if allow_null => Ok(Scalar::Null),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Scalar::Num(f, n.clone())),
            _ => Err(InvalidInput::new(
                path,
                format!("{op}: number {n} is out of range"),
            )),
        },
        Value::String(s) => Ok(Scalar::Str(s.as_str().into())),
        _ => Err(InvalidInput::new(
            path,
            format!("{op} takes {what}, found {}", kind(v)),
        )),
    }
}

pub(super) fn pattern(
    v: &Value,
    case_insensitive: bool,
    path: &str,
) -> Result<Pattern, InvalidInput> {
    let Value::String(source) = v else {
        return Err(InvalidInput::new(
            path,
            format!("$regex takes a string pattern, found {}", kind(v)),
        ));
    };
    let chars = source.chars().count();
    if chars > MAX_REGEX_CHARS {
        return Err(InvalidInput::new(
            path,
            format!(
                "regular expression is {chars} characters long; the limit is {MAX_REGEX_CHARS}"
            ),
        ));
    }
    let re = RegexBuilder::new(source)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| InvalidInput::new(path, format!("invalid regular expression: {e}")))?;
    Ok(Pattern {
        re,
        source: source.as_str().into(),
        case_insensitive,
    })
}
