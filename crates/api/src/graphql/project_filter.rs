//! The `filters` W&B's SDK sends when it lists projects (`api.registries()`): conditions on a
//! project's `name`, combined with `$and` and `$or`. Anything else is refused by name rather
//! than ignored, so a filter herald does not understand never widens a listing.

use serde_json::Value;

use super::errors;

/// Longest regex accepted, and the compiled size allowed (the `regex` crate runs in linear
/// time; this bounds its memory).
const MAX_PATTERN: usize = 1_000;
const MAX_COMPILED: usize = 1 << 20;

pub enum ProjectFilter {
    All,
    And(Vec<ProjectFilter>),
    Or(Vec<ProjectFilter>),
    NameIn(Vec<String>),
    NameMatches(regex::Regex),
}

impl ProjectFilter {
    pub fn parse(v: &Value) -> async_graphql::Result<Self> {
        Self::parse_at(v, "filters", 0)
    }

    fn parse_at(v: &Value, at: &str, depth: usize) -> async_graphql::Result<Self> {
        if depth > 8 {
            return Err(errors::invalid(at, "nests too deeply"));
        }
        let Value::Object(m) = v else {
            return match v {
                Value::Null => Ok(Self::All),
                _ => Err(errors::invalid(at, "must be a JSON object")),
            };
        };
        let mut all = Vec::new();
        for (k, x) in m {
            let here = format!("{at}.{k}");
            all.push(match k.as_str() {
                "$and" | "$or" => {
                    let Value::Array(items) = x else {
                        return Err(errors::invalid(&here, "must be a list of filters"));
                    };
                    let parts = items
                        .iter()
                        .enumerate()
                        .map(|(i, f)| Self::parse_at(f, &format!("{here}[{i}]"), depth + 1))
                        .collect::<async_graphql::Result<Vec<_>>>()?;
                    if k == "$and" {
                        Self::And(parts)
                    } else {
                        Self::Or(parts)
                    }
                }
                "name" => Self::name(x, &here)?,
                other => {
                    return Err(errors::invalid(
                        &here,
                        format!("unknown project filter {other:?}; projects filter by name"),
                    ))
                }
            });
        }
        Ok(if all.len() == 1 {
            all.pop().unwrap_or(Self::All)
        } else {
            Self::And(all)
        })
    }

    fn name(v: &Value, at: &str) -> async_graphql::Result<Self> {
        let text = |v: &Value, at: &str| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(errors::invalid(at, "must be a string")),
        };
        match v {
            Value::String(s) => Ok(Self::NameIn(vec![s.clone()])),
            Value::Object(m) if m.len() == 1 => {
                let Some((op, x)) = m.iter().next() else {
                    return Err(errors::invalid(at, "names no operator"));
                };
                let here = format!("{at}.{op}");
                match op.as_str() {
                    "$eq" => Ok(Self::NameIn(vec![text(x, &here)?])),
                    "$in" => match x {
                        Value::Array(items) => Ok(Self::NameIn(
                            items
                                .iter()
                                .map(|i| text(i, &here))
                                .collect::<Result<_, _>>()?,
                        )),
                        _ => Err(errors::invalid(&here, "must be a list of names")),
                    },
                    "$regex" => {
                        let pattern = text(x, &here)?;
                        if pattern.len() > MAX_PATTERN {
                            return Err(errors::invalid(
                                &here,
                                format!("is over {MAX_PATTERN} bytes"),
                            ));
                        }
                        regex::RegexBuilder::new(&pattern)
                            .size_limit(MAX_COMPILED)
                            .build()
                            .map(Self::NameMatches)
                            .map_err(|e| {
                                errors::invalid(&here, format!("is not a valid regex: {e}"))
                            })
                    }
                    other => Err(errors::invalid(
                        &here,
                        format!("unknown operator {other:?}; expected $eq, $in or $regex"),
                    )),
                }
            }
            _ => Err(errors::invalid(
                at,
                "must be a name or one {\"$eq\"|\"$in\"|\"$regex\": …}",
            )),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::And(fs) => fs.iter().all(|f| f.matches(name)),
            Self::Or(fs) => fs.iter().any(|f| f.matches(name)),
            Self::NameIn(names) => names.iter().any(|n| n == name),
            Self::NameMatches(r) => r.is_match(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProjectFilter;
    use serde_json::json;

    fn names(f: serde_json::Value) -> Vec<&'static str> {
        let f = ProjectFilter::parse(&f).unwrap();
        ["vision", "wandb-registry-model", "wandb-registry-data"]
            .into_iter()
            .filter(|n| f.matches(n))
            .collect()
    }

    #[test]
    fn filters_select_by_name() {
        assert_eq!(
            names(json!({"name": {"$regex": "^wandb-registry-"}})).len(),
            2
        );
        assert_eq!(
            names(
                json!({"$and": [{"name": {"$regex": "^wandb-registry-"}}, {"name": "wandb-registry-data"}]})
            ),
            ["wandb-registry-data"]
        );
        assert_eq!(
            names(
                json!({"$or": [{"name": {"$eq": "vision"}}, {"name": {"$in": ["wandb-registry-model"]}}]})
            ),
            ["vision", "wandb-registry-model"]
        );
        assert_eq!(names(json!({})).len(), 3);
    }

    #[test]
    fn unknown_filters_are_refused_by_name() {
        for (bad, says) in [
            (json!({"owner": "x"}), "filters.owner"),
            (json!({"name": {"$gt": "a"}}), "filters.name.$gt"),
            (json!({"name": {"$regex": "("}}), "not a valid regex"),
            (json!({"$and": {"name": "x"}}), "filters.$and"),
            (json!([1]), "JSON object"),
        ] {
            let message = ProjectFilter::parse(&bad).err().unwrap().message;
            assert!(message.contains(says), "{message} should name {says}");
        }
    }
}
