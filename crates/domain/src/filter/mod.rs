//! Event filters: the MongoDB-style expressions that decide whether an event concerns an
//! automation, in W&B's wire format. This module owns their validation (so a bad operator,
//! field or regex is refused when an automation is saved, naming the offending path), their
//! compiled form (a tree of enums with regexes compiled once, evaluated without allocating on
//! every event), and their normalised wire form (`to_wire`), which W&B clients round-trip.
//!
//! Artifact filters arrive as `{"$or":[{"$and":[…]}]}` (W&B's input wrapping), as
//! `{"filter": {"$or": …}}` (the saved wrapping) or as a bare expression; run filters arrive as
//! a JSON string holding a bare expression, usually `{"$and":[…]}`.

use serde_json::{Map, Value};

use crate::InvalidInput;

mod parse;
mod tree;

use parse::Parser;
use tree::{FieldPath, Node};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;

/// Deepest nesting of expressions and operator objects a filter may have, as given and in its
/// saved form ([`Filter::to_wire`]).
pub const MAX_DEPTH: usize = 32;
/// Most expressions, field conditions, operators and `$in` elements a filter may hold, as
/// given and in its saved form.
pub const MAX_NODES: usize = 1000;
/// Longest `$regex` pattern, in characters.
pub const MAX_REGEX_CHARS: usize = 1000;
/// Most `$regex` conditions in one filter. Compiling a pattern can take milliseconds of CPU
/// (`\w{20}` expands to a large automaton), so without a bound a small request could cost
/// seconds; real filters use one or two.
pub const MAX_REGEXES: usize = 16;
/// Bound on a compiled regex's memory, so a short pattern such as `\w{1000}` cannot blow up.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Every operator herald understands, in the order error messages list them.
pub const OPERATORS: &[&str] = &[
    "$and",
    "$or",
    "$nor",
    "$not",
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "$contains",
];

/// Fields of artifact and collection events.
pub const ARTIFACT_FIELDS: &[&str] = &[
    "alias",
    "tag",
    "collection_name",
    "artifact_type",
    "entity_name",
    "project_name",
];

/// Plain fields of run events; `config.<key>` paths are allowed besides.
pub const RUN_FIELDS: &[&str] = &["display_name", "username", "tags"];

const CONFIG_PREFIX: &str = "config.";

/// Which field names a filter may use: those of artifact events or those of run events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterFields {
    Artifact,
    Run,
}

impl FilterFields {
    fn field(self, name: &str) -> Result<FieldPath, String> {
        match self {
            Self::Artifact if ARTIFACT_FIELDS.contains(&name) => Ok(FieldPath::new(name)),
            Self::Run if RUN_FIELDS.contains(&name) => Ok(FieldPath::new(name)),
            Self::Run if name == "config" || name.starts_with(CONFIG_PREFIX) => {
                let key = name.strip_prefix(CONFIG_PREFIX).unwrap_or("");
                if key.is_empty() {
                    return Err(format!(
                        "{name:?} needs a config key, as in \"config.learning_rate\""
                    ));
                }
                if let Some(bad) = key.split('.').find(|s| !is_identifier(s)) {
                    return Err(format!(
                        "invalid config path {name:?}: segment {bad:?} must match [A-Za-z_][A-Za-z0-9_]*"
                    ));
                }
                Ok(FieldPath::new(name))
            }
            Self::Artifact => Err(format!(
                "unknown field {name:?}; allowed fields: {}",
                ARTIFACT_FIELDS.join(", ")
            )),
            Self::Run => Err(format!(
                "unknown field {name:?}; allowed fields: {}, config.<key> (each dotted segment matching [A-Za-z_][A-Za-z0-9_]*)",
                RUN_FIELDS.join(", ")
            )),
        }
    }
}

/// W&B's `FIELD_REGEX` (`[A-Za-z_]\w*`, ASCII).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A compiled filter. Cheap to evaluate, `Send + Sync`, and cloneable.
#[derive(Debug, Clone)]
pub struct Filter {
    fields: FilterFields,
    root: Node,
}

impl PartialEq for Filter {
    /// Two filters are equal when their normalised wire forms are.
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields && self.to_wire() == other.to_wire()
    }
}

impl Filter {
    /// The filter that matches every event: W&B's `{"$or":[{"$and":[]}]}` or `{"$and":[]}`.
    pub fn empty(fields: FilterFields) -> Filter {
        Filter {
            fields,
            root: Node::And(Vec::new()),
        }
    }

    /// Validates and compiles a filter. Error paths are relative to the filter itself (the
    /// root is `""`), so callers re-root them with [`InvalidInput::at`].
    pub fn parse(v: &Value, fields: FilterFields) -> Result<Filter, InvalidInput> {
        let mut parser = Parser {
            fields,
            nodes: 0,
            regexes: 0,
        };
        let root = match v {
            // The saved form wraps the input form once more; `filter` is no field name, so
            // stripping it cannot change what a bare expression means.
            Value::Object(m)
                if fields == FilterFields::Artifact && m.len() == 1 && m.contains_key("filter") =>
            {
                parser.expr(&m["filter"], "filter", 1)?
            }
            _ => parser.expr(v, "", 1)?,
        };
        // `{"$or":[{"$and":[…]}]}` is `{"$and":[…]}`; unwrapping it keeps `to_wire` from
        // wrapping a second time.
        let root = match root {
            Node::Or(mut cs) if cs.len() == 1 && matches!(cs[0], Node::And(_)) => {
                cs.pop().expect("one child")
            }
            other => other,
        };
        let filter = Filter { fields, root };
        filter.check_saved_form()?;
        Ok(filter)
    }

    /// The limits again, on the saved form: it is what the matcher re-parses, and it can be
    /// deeper and larger than the input (the wrapping, `{"$eq": …}` for bare values, `$and`
    /// for objects with several keys). The saved form of a saved form is itself, so every
    /// filter accepted here is accepted again when it is reloaded.
    fn check_saved_form(&self) -> Result<(), InvalidInput> {
        let (depth, nodes) = self.saved_size();
        let problem = if depth > MAX_DEPTH {
            format!("filter nests deeper than {MAX_DEPTH} levels")
        } else if nodes > MAX_NODES {
            format!("filter has more than {MAX_NODES} nodes")
        } else {
            return Ok(());
        };
        let wrapping = match self.fields {
            FilterFields::Artifact => "{\"$or\":[{\"$and\":[…]}]}",
            FilterFields::Run => "{\"$and\":[…]}",
        };
        Err(InvalidInput::new(
            "",
            format!(
                "{problem} once saved (bare values become {{\"$eq\": …}}, objects with several keys become an $and, and the whole is wrapped in {wrapping}); simplify it"
            ),
        ))
    }

    /// The deepest level and the number of nodes of [`Filter::to_wire`], as [`Parser`] counts
    /// them: the wrapping is one level and one node per `$or` or `$and`.
    fn saved_size(&self) -> (usize, usize) {
        let (wrapping, first) = match self.fields {
            FilterFields::Artifact => (2, 3),
            FilterFields::Run => (1, 2),
        };
        let conjuncts = match &self.root {
            Node::And(cs) => cs.as_slice(),
            other => std::slice::from_ref(other),
        };
        conjuncts
            .iter()
            .map(|c| c.saved_size(first))
            .fold((wrapping, wrapping), |(d, n), (cd, cn)| (d.max(cd), n + cn))
    }

    /// Parses a filter sent as a JSON string, as W&B sends `run_filter` and `eventFilter`.
    pub fn parse_str(s: &str, fields: FilterFields) -> Result<Filter, InvalidInput> {
        let v: Value = serde_json::from_str(s).map_err(|e| {
            let what = match fields {
                FilterFields::Run => "run_filter",
                FilterFields::Artifact => "event filter",
            };
            InvalidInput::new("", format!("{what} is not valid JSON: {e}"))
        })?;
        Self::parse(&v, fields)
    }

    pub fn fields(&self) -> FilterFields {
        self.fields
    }

    /// Whether the filter matches every document by its shape alone (no field condition can
    /// fail), as W&B's empty filter does.
    pub fn is_empty(&self) -> bool {
        self.root.always_true()
    }

    /// Evaluates the filter against an event document: a JSON object whose fields are scalars,
    /// arrays (multi-valued fields such as `alias`) or absent. Anything else matches no field.
    pub fn matches(&self, doc: &Value) -> bool {
        self.root.eval(doc)
    }

    /// The normalised input form: artifact filters as `{"$or":[{"$and":[…]}]}` (the SDK's
    /// `wrap_mutation_event_filter`), run filters as `{"$and":[…]}` (its `wrap_run_filter`).
    /// Bare values become `$eq`, objects with several keys become `$and`.
    pub fn to_wire(&self) -> Value {
        let conjuncts = match &self.root {
            Node::And(cs) => cs.iter().map(Node::to_wire).collect(),
            other => vec![other.to_wire()],
        };
        let and = single("$and", Value::Array(conjuncts));
        match self.fields {
            FilterFields::Artifact => single("$or", Value::Array(vec![and])),
            FilterFields::Run => and,
        }
    }

    /// [`Filter::to_wire`] as a JSON string, the form `run_filter` and `eventFilter` travel in.
    pub fn to_wire_string(&self) -> String {
        self.to_wire().to_string()
    }
}

fn single(key: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_string(), v);
    Value::Object(m)
}
