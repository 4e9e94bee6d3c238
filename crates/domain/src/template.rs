//! Payload templates: the JSON a webhook action posts, with `${name}` placeholders for event
//! variables and the integration's secrets. This module owns their syntax, the check made when
//! an automation is saved (every placeholder must name something herald can fill), and
//! rendering, both the real one and the masked one kept in execution history.
//!
//! Substitution happens inside the strings of the parsed JSON, never in its text: whatever an
//! event carries (quotes, backslashes, `}` or another `${…}`), it ends up as the content of one
//! JSON string, so rendering always yields valid JSON and no event data can add structure.
//!
//! Syntax, where W&B's docs are silent:
//! - A placeholder is `${NAME}` with `NAME` matching `[A-Za-z_][A-Za-z0-9_]*(\.[^}]+)?`, in an
//!   object key or a string value; one string may hold several, mixed with text.
//! - Anything else is literal text: `$NAME` without braces, `${}`, `${ name }`, an
//!   unterminated `${name`. There is no escape: `$$` stays `$$`, and `$${x}` is `$` followed
//!   by the placeholder `${x}`, as a textual substitution such as W&B's would treat it.
//! - Values are always substituted as text, so `"${metric_value}"` renders as the string
//!   `"0.5"`, not the number `0.5`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::InvalidInput;

/// The event variables a payload may use. Every event offers all of them; those that do not
/// apply to the event render empty.
pub const EVENT_VARIABLES: &[&str] = &[
    "event_type",
    "event_author",
    "entity_name",
    "project_name",
    "automation_name",
    "alias",
    "tag",
    "artifact_collection_name",
    "artifact_version",
    "artifact_version_string",
    "artifact_version_index",
    "run_id",
    "run_name",
    "run_status",
    "metric_name",
    "metric_value",
    "metric_values",
    "metric_filter",
    "event_url",
];

/// The payload a webhook sends when its automation gives none: what matters to the event's
/// family, each value a variable.
pub fn default_payload(event_type: crate::event::EventType) -> Value {
    use crate::event::EventType::*;
    use crate::slack::EventFamily;
    let mut keys: Vec<&str> = vec![
        "event_type",
        "event_author",
        "automation_name",
        "entity_name",
        "project_name",
    ];
    match EventFamily::of(event_type) {
        EventFamily::Artifact => {
            keys.extend([
                "artifact_collection_name",
                "artifact_version_string",
                "artifact_version",
            ]);
            match event_type {
                AddArtifactAlias | RemoveArtifactAlias => keys.push("alias"),
                AddArtifactTag | RemoveArtifactTag | AddCollectionTag | RemoveCollectionTag => {
                    keys.push("tag")
                }
                _ => {}
            }
        }
        EventFamily::RunMetric => keys.extend([
            "run_id",
            "run_name",
            "metric_name",
            "metric_value",
            "metric_values",
            "metric_filter",
        ]),
        EventFamily::RunState => keys.extend(["run_id", "run_name", "run_status"]),
    }
    keys.push("event_url");
    Value::Object(
        keys.into_iter()
            .map(|k| (k.to_string(), Value::String(format!("${{{k}}}"))))
            .collect(),
    )
}

/// `${artifact_metadata.KEY}` reads the top-level metadata key `KEY` of the artifact version.
pub const ARTIFACT_METADATA_PREFIX: &str = "artifact_metadata.";

/// `${ACCESS_TOKEN}` is the webhook integration's access token.
pub const ACCESS_TOKEN: &str = "ACCESS_TOKEN";

/// What [`Template::render_masked`] writes in place of a secret.
pub const MASK: &str = "***";

/// Deepest JSON nesting a payload may have; serde_json's own parser stops at 128 too.
const MAX_DEPTH: usize = 128;

/// A parsed payload template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: Value,
    root: Node,
    names: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A subtree without placeholders, copied as is.
    Literal(Value),
    Text(Text),
    Array(Vec<Node>),
    Object(Vec<(Text, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
struct Text(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(Box<str>),
    Placeholder(Box<str>),
}

impl Template {
    /// Parses a payload given as JSON. Fails only for nesting deeper than 128 levels.
    pub fn parse(payload: &Value) -> Result<Template, InvalidInput> {
        let mut names = BTreeSet::new();
        let root = compile(payload, &mut names, 1)?;
        Ok(Template {
            source: payload.clone(),
            root,
            names,
        })
    }

    /// Parses a payload given as text, as W&B's `requestPayload` is.
    pub fn parse_str(s: &str) -> Result<Template, InvalidInput> {
        let v: Value = serde_json::from_str(s)
            .map_err(|e| InvalidInput::new("payload", format!("payload is not valid JSON: {e}")))?;
        Self::parse(&v)
    }

    /// The payload as given, placeholders unexpanded: the form to store and show.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The names of the placeholders used, each once, sorted.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Checks that every placeholder names an event variable, `artifact_metadata.<KEY>`,
    /// `ACCESS_TOKEN` or one of `secret_names` (the integration's secrets).
    pub fn check(&self, secret_names: &[&str]) -> Result<(), InvalidInput> {
        let unknown: Vec<&str> = self
            .placeholders()
            .filter(|n| !is_known(n, secret_names))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut valid = braced(EVENT_VARIABLES.iter().copied());
        valid.push_str(&format!(
            ", ${{{ARTIFACT_METADATA_PREFIX}<KEY>}}, ${{{ACCESS_TOKEN}}}"
        ));
        let mut secrets: Vec<&str> = secret_names.to_vec();
        secrets.sort_unstable();
        secrets.dedup();
        let secrets = if secrets.is_empty() {
            "the integration has no secrets".to_string()
        } else {
            format!("the integration's secrets: {}", braced(secrets.into_iter()))
        };
        Err(InvalidInput::new(
            "payload",
            format!(
                "unknown template variable{} {}; valid variables: {valid}; {secrets}",
                if unknown.len() == 1 { "" } else { "s" },
                braced(unknown.into_iter()),
            ),
        ))
    }

    /// Renders the payload: each placeholder becomes `lookup(name)`, or `""` when that is
    /// `None`. Keys that render equal collapse into one, the last one winning.
    pub fn render(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Value {
        render(&self.root, lookup)
    }

    /// Renders the payload as [`Template::render`] does, but with `***` for `ACCESS_TOKEN` and
    /// every name in `secret_names`, whatever `lookup` would return: the form execution history
    /// keeps. A secret that shares its name with an event variable is masked too.
    pub fn render_masked(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        secret_names: &[impl AsRef<str>],
    ) -> Value {
        let masked = |name: &str| {
            if name == ACCESS_TOKEN || secret_names.iter().any(|s| s.as_ref() == name) {
                Some(MASK.to_string())
            } else {
                lookup(name)
            }
        };
        render(&self.root, &masked)
    }
}

fn braced<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("${{{n}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_known(name: &str, secret_names: &[&str]) -> bool {
    EVENT_VARIABLES.contains(&name)
        || name == ACCESS_TOKEN
        || secret_names.contains(&name)
        || name
            .strip_prefix(ARTIFACT_METADATA_PREFIX)
            .is_some_and(|key| !key.is_empty())
}

fn compile(v: &Value, names: &mut BTreeSet<String>, depth: usize) -> Result<Node, InvalidInput> {
    if depth > MAX_DEPTH {
        return Err(InvalidInput::new(
            "payload",
            format!("payload nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let node = match v {
        Value::String(s) => Node::Text(scan(s, names)),
        Value::Array(items) => Node::Array(
            items
                .iter()
                .map(|item| compile(item, names, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Node::Object(
            m.iter()
                .map(|(k, item)| Ok((scan(k, names), compile(item, names, depth + 1)?)))
                .collect::<Result<_, InvalidInput>>()?,
        ),
        _ => Node::Literal(v.clone()),
    };
    // Subtrees without placeholders render to themselves; keeping them whole saves rebuilding
    // them on every firing.
    Ok(if node.is_literal() {
        Node::Literal(v.clone())
    } else {
        node
    })
}

impl Node {
    fn is_literal(&self) -> bool {
        match self {
            Node::Literal(_) => true,
            Node::Text(t) => t.is_literal(),
            Node::Array(items) => items.iter().all(Node::is_literal),
            Node::Object(entries) => entries
                .iter()
                .all(|(k, v)| k.is_literal() && v.is_literal()),
        }
    }
}

impl Text {
    fn is_literal(&self) -> bool {
        self.0.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    fn render(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Placeholder(name) => {
                    if let Some(v) = lookup(name) {
                        out.push_str(&v);
                    }
                }
            }
        }
        out
    }
}

/// Splits a string into literal text and placeholders.
fn scan(s: &str, names: &mut BTreeSet<String>) -> Text {
    let mut parts = Vec::new();
    let mut literal_from = 0;
    let mut at = 0;
    while let Some(offset) = s[at..].find("${") {
        let start = at + offset;
        let body = &s[start + 2..];
        match placeholder_len(body) {
            Some(len) => {
                if literal_from < start {
                    parts.push(Part::Literal(s[literal_from..start].into()));
                }
                let name = &body[..len];
                names.insert(name.to_string());
                parts.push(Part::Placeholder(name.into()));
                at = start + 2 + len + 1;
                literal_from = at;
            }
            // `$` is one byte, so the next search starts on a character boundary.
            None => at = start + 1,
        }
    }
    if literal_from < s.len() || parts.is_empty() {
        parts.push(Part::Literal(s[literal_from..].into()));
    }
    Text(parts)
}

/// The length of the name at the start of `body` (what follows `${`) when a `}` closes it.
fn placeholder_len(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    if !matches!(bytes.first(), Some(b) if b.is_ascii_alphabetic() || *b == b'_') {
        return None;
    }
    let ident = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))?;
    match bytes[ident] {
        b'}' => Some(ident),
        b'.' => {
            let close = body[ident + 1..].find('}')?;
            (close > 0).then_some(ident + 1 + close)
        }
        _ => None,
    }
}

fn render(node: &Node, lookup: &dyn Fn(&str) -> Option<String>) -> Value {
    match node {
        Node::Literal(v) => v.clone(),
        Node::Text(t) => Value::String(t.render(lookup)),
        Node::Array(items) => Value::Array(items.iter().map(|n| render(n, lookup)).collect()),
        Node::Object(entries) => {
            let mut m = Map::new();
            for (k, v) in entries {
                m.insert(k.render(lookup), render(v, lookup));
            }
            Value::Object(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_payloads_carry_what_matters_to_each_family() {
        use crate::event::EventType;
        let keys = |t: EventType| -> Vec<String> {
            let p = default_payload(t);
            let t = Template::parse(&p).expect("a default payload is a valid template");
            t.check(&[]).expect("it names only known variables");
            p.as_object().unwrap().keys().cloned().collect()
        };
        let alias = keys(EventType::AddArtifactAlias);
        for k in [
            "artifact_version_string",
            "artifact_version",
            "alias",
            "event_url",
        ] {
            assert!(alias.contains(&k.to_string()), "{k}: {alias:?}");
        }
        assert!(keys(EventType::AddArtifactTag).contains(&"tag".to_string()));
        assert!(!keys(EventType::CreateArtifact).contains(&"alias".to_string()));
        let metric = keys(EventType::RunMetricZscore);
        for k in [
            "run_id",
            "run_name",
            "metric_name",
            "metric_value",
            "metric_filter",
            "event_url",
        ] {
            assert!(metric.contains(&k.to_string()), "{k}: {metric:?}");
        }
        let state = keys(EventType::RunState);
        assert!(state.contains(&"run_status".to_string()));
        assert!(!state.contains(&"metric_value".to_string()));
    }
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn names(t: &Template) -> Vec<&str> {
        t.placeholders().collect()
    }

    fn values(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn every_event_variable_is_substituted() {
        let mut payload = Map::new();
        for v in EVENT_VARIABLES {
            payload.insert(v.to_string(), json!(format!("${{{v}}}")));
        }
        payload.insert("meta".into(), json!("${artifact_metadata.accuracy}"));
        payload.insert("token".into(), json!("Bearer ${ACCESS_TOKEN}"));
        let t = Template::parse(&Value::Object(payload)).unwrap();
        t.check(&[]).unwrap();
        let out = t.render(&|name: &str| Some(format!("<{name}>")));
        for v in EVENT_VARIABLES {
            assert_eq!(out[v], json!(format!("<{v}>")));
        }
        assert_eq!(out["meta"], "<artifact_metadata.accuracy>");
        assert_eq!(out["token"], "Bearer <ACCESS_TOKEN>");
        assert_eq!(names(&t).len(), EVENT_VARIABLES.len() + 2);
    }

    #[test]
    fn the_github_dispatch_example_renders() {
        let t = Template::parse_str(
            r#"{
              "event_type": "BUILD_AND_DEPLOY",
              "client_payload": {
                "event_author": "${event_author}",
                "artifact_version_string": "${artifact_version_string}",
                "count": 3, "ok": true, "none": null,
                "list": ["${alias}", 1, "plain"]
              }
            }"#,
        )
        .unwrap();
        t.check(&[]).unwrap();
        let out = t.render(&values(&[
            ("event_author", "ada"),
            ("artifact_version_string", "team/proj/model:v3"),
        ]));
        assert_eq!(
            out,
            json!({
                "event_type": "BUILD_AND_DEPLOY",
                "client_payload": {
                    "event_author": "ada",
                    "artifact_version_string": "team/proj/model:v3",
                    "count": 3, "ok": true, "none": null,
                    // `alias` does not apply: empty, never the placeholder itself.
                    "list": ["", 1, "plain"]
                }
            })
        );
    }

    #[test]
    fn placeholders_are_found_in_keys_and_mixed_text() {
        let t = Template::parse(&json!({
            "${project_name}": "run ${run_name} of ${project_name} is ${run_status}!",
            "k-${tag}-${tag}": ["${metric_name}=${metric_value}"],
        }))
        .unwrap();
        assert_eq!(
            names(&t),
            [
                "metric_name",
                "metric_value",
                "project_name",
                "run_name",
                "run_status",
                "tag"
            ]
        );
        let out = t.render(&values(&[
            ("project_name", "mnist"),
            ("run_name", "r1"),
            ("run_status", "FAILED"),
            ("tag", "eu"),
            ("metric_name", "loss"),
            ("metric_value", "0.5"),
        ]));
        assert_eq!(
            out,
            json!({
                "mnist": "run r1 of mnist is FAILED!",
                "k-eu-eu": ["loss=0.5"],
            })
        );
    }

    #[test]
    fn malformed_placeholders_stay_literal() {
        let cases = [
            ("$event_type", "$event_type"),
            ("${}", "${}"),
            ("${ event_type }", "${ event_type }"),
            ("${event-type}", "${event-type}"),
            ("${1abc}", "${1abc}"),
            ("${event_type", "${event_type"),
            ("${artifact_metadata.}", "${artifact_metadata.}"),
            ("${artifact_metadata.x", "${artifact_metadata.x"),
            ("$$", "$$"),
            ("$${tag}", "$T"),
            ("${${tag}}", "${T}"),
            ("${tag}}", "T}"),
            ("${", "${"),
            ("$", "$"),
            ("", ""),
            ("é${tag}ü", "éTü"),
        ];
        for (input, want) in cases {
            let t = Template::parse(&json!(input)).unwrap();
            let out = t.render(&values(&[("tag", "T")]));
            assert_eq!(out, json!(want), "{input:?}");
        }
    }

    #[test]
    fn metadata_keys_may_hold_any_character_but_a_brace() {
        let t = Template::parse(&json!(
            "${artifact_metadata.my key-1.x} ${artifact_metadata.a\"b}"
        ))
        .unwrap();
        assert_eq!(
            names(&t),
            ["artifact_metadata.a\"b", "artifact_metadata.my key-1.x"]
        );
        t.check(&[]).unwrap();
        let out = t.render(&values(&[
            ("artifact_metadata.my key-1.x", "1"),
            ("artifact_metadata.a\"b", "2"),
        ]));
        assert_eq!(out, json!("1 2"));
    }

    #[test]
    fn substituted_values_cannot_inject_structure() {
        let t = Template::parse_str(
            r#"{"a": "${run_name}", "b": ["x${run_name}y"], "${run_name}": 1}"#,
        )
        .unwrap();
        let evil = [
            r#"", "admin": true, "x": ""#,
            "\\\"}]}",
            "line1\nline2\r\t\u{0}",
            "${ACCESS_TOKEN}",
            "${run_name}",
            "}{\"",
            "\u{2028}emoji 🎉",
        ];
        for v in evil {
            let lookup = |name: &str| match name {
                "run_name" => Some(v.to_string()),
                "ACCESS_TOKEN" => Some("SECRET".to_string()),
                _ => None,
            };
            let out = t.render(&lookup);
            let text = serde_json::to_string(&out).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, out);
            let obj = back.as_object().unwrap();
            assert_eq!(obj.len(), 3, "{v:?} added keys: {text}");
            assert_eq!(obj["a"], json!(v));
            assert_eq!(obj["b"], json!([format!("x{v}y")]));
            assert_eq!(obj[v], json!(1));
            // A value is never expanded a second time.
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    #[test]
    fn check_refuses_unknown_names_and_lists_valid_ones() {
        let t = Template::parse_str(
            r#"{"a": "${event_type} ${evnt_author} ${MY_TOKEN} ${run.name} ${artifact_metadata}"}"#,
        )
        .unwrap();
        let e = t.check(&["MY_TOKEN"]).unwrap_err();
        assert_eq!(e.path, "payload");
        assert!(
            e.message.starts_with(
                "unknown template variables ${artifact_metadata}, ${evnt_author}, ${run.name}; valid variables: ${event_type}, ${event_author}"
            ),
            "{}",
            e.message
        );
        for v in EVENT_VARIABLES {
            assert!(e.message.contains(&format!("${{{v}}}")), "{v}");
        }
        assert!(e
            .message
            .contains("${artifact_metadata.<KEY>}, ${ACCESS_TOKEN}"));
        assert!(
            e.message
                .ends_with("the integration's secrets: ${MY_TOKEN}"),
            "{}",
            e.message
        );

        let e = Template::parse_str(r#""${MY_TOKEN}""#)
            .unwrap()
            .check(&[])
            .unwrap_err();
        assert!(
            e.message
                .starts_with("unknown template variable ${MY_TOKEN};"),
            "{}",
            e.message
        );
        assert!(
            e.message.ends_with("the integration has no secrets"),
            "{}",
            e.message
        );

        Template::parse_str(r#""${MY_TOKEN} ${ACCESS_TOKEN} ${artifact_metadata.k}""#)
            .unwrap()
            .check(&["MY_TOKEN"])
            .unwrap();
        // Names are case-sensitive.
        assert!(Template::parse_str(r#""${Event_Type}""#)
            .unwrap()
            .check(&[])
            .is_err());
        assert!(Template::parse_str(r#""${access_token}""#)
            .unwrap()
            .check(&[])
            .is_err());
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in [
            "",
            "{",
            r#"{"a": "${event_type}"#,
            "{'a': 1}",
            r#"{"a": 1} x"#,
            "${event_type}",
        ] {
            let e = Template::parse_str(bad).unwrap_err();
            assert_eq!(e.path, "payload");
            assert!(
                e.message.starts_with("payload is not valid JSON: "),
                "{bad:?}: {}",
                e.message
            );
        }
        let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
        let e = Template::parse(&deep).unwrap_err();
        assert!(e.message.contains("deeper than 128"), "{}", e.message);
        let ok = (0..100).fold(json!("${tag}"), |inner, _| json!([inner]));
        Template::parse(&ok).unwrap();
    }

    #[test]
    fn masked_rendering_never_contains_secrets() {
        let t = Template::parse_str(
            r#"{"auth": "Bearer ${ACCESS_TOKEN}", "${API_KEY}": "${API_KEY}", "who": "${event_author}", "missing": "${OTHER}"}"#,
        )
        .unwrap();
        let lookup = values(&[
            ("ACCESS_TOKEN", "tok-123"),
            ("API_KEY", "key-456"),
            ("OTHER", "other-789"),
            ("event_author", "ada"),
        ]);
        let masked = t.render_masked(&lookup, &["API_KEY", "OTHER"]);
        let text = masked.to_string();
        for secret in ["tok-123", "key-456", "other-789"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(
            masked,
            json!({"auth": "Bearer ***", "***": "***", "who": "ada", "missing": "***"})
        );
        let real = t.render(&lookup);
        assert_eq!(real["auth"], "Bearer tok-123");
        assert_eq!(real["key-456"], "key-456");
    }

    #[test]
    fn literal_payloads_render_to_themselves() {
        let v = json!({"a": [1, 2.5, null, {"b": "c"}], "d": "$notaplaceholder"});
        let t = Template::parse(&v).unwrap();
        assert_eq!(t.placeholders().count(), 0);
        assert_eq!(
            t.render(&|_: &str| -> Option<String> { panic!("no lookups expected") }),
            v
        );
        assert_eq!(t.source(), &v);
        assert!(matches!(t.root, Node::Literal(_)));
    }

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "event_type",
            "run_name",
            "alias",
            "artifact_metadata.k y",
            "S1",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // Whatever the values, the output is JSON that reads back as itself, and every string
        // is exactly its text with each placeholder replaced by its value.
        #[test]
        fn render_substitutes_exactly(
            pieces in prop::collection::vec(
                prop::collection::vec((prop_oneof!["[^$]{0,5}", "\\PC{0,5}"], prop::option::of(name())), 1..4),
                1..5,
            ),
            vals in prop::collection::btree_map(name(), any::<String>(), 0..5),
        ) {
            let text_of = |ps: &[(String, Option<String>)]| -> String {
                ps.iter().map(|(lit, n)| match n {
                    Some(n) => format!("{lit}${{{n}}}"),
                    None => lit.clone(),
                }).collect()
            };
            let expected_of = |ps: &[(String, Option<String>)]| -> String {
                ps.iter().map(|(lit, n)| {
                    let v = n.as_ref().and_then(|n| vals.get(n)).cloned().unwrap_or_default();
                    format!("{lit}{v}")
                }).collect()
            };
            // The literals avoid `$`, so each placeholder is exactly the one written, in order.
            let pieces: Vec<Vec<(String, Option<String>)>> = pieces
                .into_iter()
                .map(|ps| ps.into_iter().map(|(l, n)| (l.replace('$', ""), n)).collect())
                .collect();
            let mut payload = Map::new();
            let mut expected = Map::new();
            for (i, ps) in pieces.iter().enumerate() {
                payload.insert(format!("k{i}"), json!([text_of(ps)]));
                expected.insert(format!("k{i}"), json!([expected_of(ps)]));
            }
            // And once as a key, alone so that keys cannot collide.
            payload.insert(text_of(&pieces[0]), json!(0));
            expected.insert(expected_of(&pieces[0]), json!(0));
            let t = Template::parse(&Value::Object(payload)).unwrap();
            let lookup = |n: &str| vals.get(n).cloned();
            let out = t.render(&lookup);
            let text = serde_json::to_string(&out).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &out);
            // A rendered key may equal a `kN` key; compare only when they stay apart.
            if expected.len() == pieces.len() + 1 {
                prop_assert_eq!(back, Value::Object(expected));
            }
            // Masking is rendering with `***` for the secret, whatever the secret's value.
            let masked_lookup = |n: &str| if n == "S1" { Some(MASK.to_string()) } else { vals.get(n).cloned() };
            prop_assert_eq!(t.render_masked(&lookup, &["S1"]), t.render(&masked_lookup));
        }

        #[test]
        fn scanning_never_panics(s in "\\PC{0,40}") {
            let t = Template::parse(&json!({ s.clone(): s.clone() })).unwrap();
            let out = t.render(&|n: &str| Some(format!("<{n}>")));
            prop_assert!(out.is_object());
            let _ = Template::parse_str(&s);
        }
    }
}
