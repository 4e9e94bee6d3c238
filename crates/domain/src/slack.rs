//! Slack messages for the `NOTIFICATION` action: this module owns their look (a Block Kit
//! layout per event family, see [`render`]), the action's [`Severity`], the mrkdwn escaping that
//! keeps event data from adding links or mentions, and Slack's size limits, which every message
//! meets by construction (text is cut with "…", counted in characters). Sending is the engine's
//! job: the same body works for an incoming webhook and, with `"channel"` added, for
//! `chat.postMessage`.
//!
//! Layout, for every event:
//! - `text`: a plain-text fallback (notifications, clients without Block Kit) naming the
//!   severity, what happened, the facts and the link;
//! - `blocks`: a header (the action's title after the severity emoji, or a default sentence per
//!   event type such as "🚀 New alias production on my-model:v3") and the action's message;
//! - one attachment in the severity's colour whose blocks hold the facts (a fields section:
//!   what happened, to what, by whom), a link button when the event has a link, and a context
//!   line (severity, event type, entity/project, automation).
//!
//! Everything that is not a fixed label is escaped for mrkdwn, the action's message included:
//! its author may use `*bold*` and `_italic_`, but `<…>` links and mentions only ever show as
//! text. Header and button texts are `plain_text`, where Slack parses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::event::EventType;
use crate::InvalidInput;

/// Longest header text, in characters.
pub const MAX_HEADER: usize = 150;
/// Longest section text (and context element text), in characters.
pub const MAX_SECTION: usize = 3000;
/// Longest text of one section field, in characters.
pub const MAX_FIELD: usize = 2000;
/// Most fields in one section.
pub const MAX_FIELDS: usize = 10;
/// Most blocks in one message, counting the attachment's blocks.
pub const MAX_BLOCKS: usize = 50;
/// Longest button text, in characters.
pub const MAX_BUTTON: usize = 75;
/// Longest button URL, in characters; a longer link is left out rather than cut.
pub const MAX_URL: usize = 3000;
/// Longest top-level `text` fallback, in characters.
pub const MAX_TEXT: usize = 40_000;

/// What a cut text ends with.
const ELLIPSIS: char = '…';
/// `action_id` of the link button, so that an app with interactivity can acknowledge clicks.
const LINK_ACTION_ID: &str = "herald_open_link";

/// How loud a notification is (W&B's `AlertSeverity`); INFO when the action does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    #[default]
    Info,
    Warn,
    Error,
}

impl Severity {
    pub const ALL: [Self; 3] = [Self::Info, Self::Warn, Self::Error];

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    /// Parses a wire value, in any case (W&B's SDK upper-cases it too).
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                InvalidInput::new(
                    "severity",
                    format!("unknown severity {s:?}; expected INFO, WARN or ERROR"),
                )
            })
    }

    /// The emoji that shows the severity in the header, context line and fallback text.
    /// Unicode rather than `:shortcodes:`, so it also reads right in push notifications.
    pub fn emoji(self) -> &'static str {
        match self {
            Self::Info => "ℹ️",
            Self::Warn => "⚠️",
            Self::Error => "🚨",
        }
    }

    /// The colour of the attachment's bar (Slack's own good / warning / danger colours).
    pub fn color(self) -> &'static str {
        match self {
            Self::Info => "#2eb886",
            Self::Warn => "#daa038",
            Self::Error => "#a30200",
        }
    }
}

/// The three shapes of message, one per kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFamily {
    /// Something happened to an artifact version or collection.
    Artifact,
    /// A run's metric met a condition.
    RunMetric,
    /// A run changed state.
    RunState,
}

impl EventFamily {
    /// The family an event type's message takes. `LOG_RUN_HISTORY` is not a trigger, but has
    /// a family so the function is total.
    pub fn of(event_type: EventType) -> Self {
        use EventType::*;
        match event_type {
            CreateArtifact | LinkModel | UnlinkArtifact | AddArtifactAlias
            | RemoveArtifactAlias | AddArtifactTag | RemoveArtifactTag | AddCollectionTag
            | RemoveCollectionTag => Self::Artifact,
            RunMetric | RunMetricChange | RunMetricZscore | LogRunHistory => Self::RunMetric,
            RunState => Self::RunState,
        }
    }
}

/// Everything a message shows, as text. Build it with [`MessageInput::new`] and struct-update
/// syntax; fields that do not apply to the event stay `None`. Blank strings count as absent.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageInput<'a> {
    /// Decides the family ([`EventFamily::of`]), the default header and the wording.
    pub event_type: EventType,
    pub automation_name: &'a str,
    /// The action's title; replaces the default header.
    pub title: Option<&'a str>,
    /// The action's message, shown under the header (mrkdwn, escaped).
    pub message: Option<&'a str>,
    pub severity: Severity,
    pub entity: &'a str,
    pub project: Option<&'a str>,
    /// Who caused the event (for runs, the run's user).
    pub author: Option<&'a str>,
    /// Absolute `http(s)` URL of the version or run; anything else is left out.
    pub link: Option<&'a str>,
    pub collection: Option<&'a str>,
    /// `model`, `dataset`, …
    pub artifact_type: Option<&'a str>,
    /// The version string, `entity/project/collection:v3` (its last segment names it in the header).
    pub version: Option<&'a str>,
    pub alias: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub run_id: Option<&'a str>,
    /// The run's display name; the header falls back to `run_id`.
    pub run_name: Option<&'a str>,
    /// `RUNNING`, `FINISHED`, `FAILED`, …
    pub run_state: Option<&'a str>,
    pub metric_name: Option<&'a str>,
    /// The condition as text (`RunCondition::describe`): `AVERAGE(loss) > 0.5 (last 5)`.
    pub condition: Option<&'a str>,
    /// The value that met the condition.
    pub metric_value: Option<&'a str>,
    /// The window's values, as text.
    pub metric_values: Option<&'a str>,
}

impl<'a> MessageInput<'a> {
    /// An INFO message about `event_type` with nothing else known.
    pub fn new(event_type: EventType, automation_name: &'a str, entity: &'a str) -> Self {
        Self {
            event_type,
            automation_name,
            title: None,
            message: None,
            severity: Severity::Info,
            entity,
            project: None,
            author: None,
            link: None,
            collection: None,
            artifact_type: None,
            version: None,
            alias: None,
            tag: None,
            run_id: None,
            run_name: None,
            run_state: None,
            metric_name: None,
            condition: None,
            metric_value: None,
            metric_values: None,
        }
    }
}

/// The Slack message for one event: `{"text", "blocks", "attachments": [{"color", "blocks"}]}`.
pub fn render(input: &MessageInput) -> Value {
    let m = input.without_blanks();
    let header_text = match m.title {
        Some(t) => format!("{} {t}", m.severity.emoji()),
        None => default_header(&m),
    };
    let facts = facts(&m);

    let mut blocks = vec![header(&header_text)];
    if let Some(msg) = m.message {
        blocks.push(section(&escape_mrkdwn(msg)));
    }

    let mut details = Vec::new();
    if !facts.is_empty() {
        details.push(fields(
            facts
                .iter()
                .map(|(label, value)| format!("*{label}*\n{}", escape_mrkdwn(value)))
                .collect(),
        ));
    }
    let link = m.link.filter(|l| is_link(l));
    if let Some(url) = link {
        details.push(button(&link_label(&m), url));
    }
    let where_ = match m.project {
        Some(p) => format!("{}/{p}", m.entity),
        None => m.entity.to_string(),
    };
    details.push(context(&format!(
        "{} *{}*  ·  `{}`  ·  {}  ·  automation *{}*",
        m.severity.emoji(),
        m.severity.as_str(),
        m.event_type.public_name(),
        escape_mrkdwn(&where_),
        escape_mrkdwn(m.automation_name),
    )));

    // The header already leads with an emoji; the fallback adds the severity in words.
    let mut text = format!("{}: {}", m.severity.as_str(), one_line(&header_text));
    if let Some(msg) = m.message {
        text.push('\n');
        text.push_str(msg);
    }
    if !facts.is_empty() {
        let line: Vec<String> = facts.iter().map(|(l, v)| format!("{l}: {v}")).collect();
        text.push('\n');
        text.push_str(&line.join(" · "));
    }
    text.push_str(&format!("\n{where_} · automation {}", m.automation_name));
    if let Some(url) = link {
        text.push('\n');
        text.push_str(url);
    }

    message(&escape_mrkdwn(&text), blocks, m.severity.color(), details)
}

/// The message posted when someone tests a Slack integration.
pub fn render_test(integration_name: &str, channel: &str) -> Value {
    let name = escape_mrkdwn(integration_name);
    let channel = channel_mention(channel);
    message(
        &format!("✅ herald test message: the Slack integration {name} can post to {channel}."),
        vec![
            header("✅ herald test message"),
            section(&format!(
                "The Slack integration *{name}* can post to {channel}. \
                 Automations that use it will notify this channel."
            )),
        ],
        Severity::Info.color(),
        vec![context(
            "Sent by herald when the integration was tested; no automation fired.",
        )],
    )
}

/// `s` with `&`, `<` and `>` escaped, so that Slack shows it as text: no links, no mentions
/// (`<!channel>`, `<@U123>`), no channel references.
pub fn escape_mrkdwn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

impl<'a> MessageInput<'a> {
    /// The same input with blank strings made absent, so that no block is built around
    /// empty text (Slack refuses those).
    fn without_blanks(&self) -> Self {
        let f = |o: Option<&'a str>| o.filter(|s| !s.trim().is_empty());
        Self {
            title: f(self.title),
            message: f(self.message),
            project: f(self.project),
            author: f(self.author),
            link: f(self.link).map(str::trim),
            collection: f(self.collection),
            artifact_type: f(self.artifact_type),
            version: f(self.version),
            alias: f(self.alias),
            tag: f(self.tag),
            run_id: f(self.run_id),
            run_name: f(self.run_name),
            run_state: f(self.run_state),
            metric_name: f(self.metric_name),
            condition: f(self.condition),
            metric_value: f(self.metric_value),
            metric_values: f(self.metric_values),
            ..self.clone()
        }
    }

    fn family(&self) -> EventFamily {
        EventFamily::of(self.event_type)
    }

    /// What the artifact message is about: `collection:v3`, else the collection.
    fn artifact(&self) -> &str {
        self.version
            .and_then(|v| v.rsplit('/').next())
            .filter(|s| !s.is_empty())
            .or(self.collection)
            .unwrap_or("an artifact")
    }

    fn run(&self) -> &str {
        self.run_name.or(self.run_id).unwrap_or("?")
    }

    /// The registry's name when the project is one (`wandb-registry-<name>`).
    fn registry(&self) -> Option<&str> {
        self.project
            .and_then(|p| p.strip_prefix("wandb-registry-"))
            .filter(|r| !r.is_empty())
    }
}

fn default_header(m: &MessageInput) -> String {
    use EventType::*;
    let subject = m.artifact();
    let alias = m.alias.unwrap_or("?");
    let tag = m.tag.unwrap_or("?");
    let collection = m.collection.unwrap_or(subject);
    let registry = |word: &str| {
        m.registry()
            .map(|r| format!(" {word} registry {r}"))
            .unwrap_or_default()
    };
    let run = m.run();
    let metric_header = |emoji: &str, fallback: &str| match (m.condition, m.metric_name) {
        (Some(c), _) => format!("{emoji} {c} on run {run}"),
        (None, Some(name)) => format!("{emoji} {name} {fallback} on run {run}"),
        (None, None) => format!("{emoji} A metric {fallback} on run {run}"),
    };
    match m.event_type {
        CreateArtifact => match m.artifact_type {
            Some(t) => format!("📦 New {t} version {subject}"),
            None => format!("📦 New version {subject}"),
        },
        LinkModel => format!("🔗 Linked {subject}{}", registry("to")),
        UnlinkArtifact => format!("✂️ Unlinked {subject}{}", registry("from")),
        AddArtifactAlias => format!("🚀 New alias {alias} on {subject}"),
        RemoveArtifactAlias => format!("➖ Alias {alias} removed from {subject}"),
        AddArtifactTag => format!("🏷️ Tag {tag} added to {subject}"),
        RemoveArtifactTag => format!("🏷️ Tag {tag} removed from {subject}"),
        AddCollectionTag => format!("🏷️ Tag {tag} added to collection {collection}"),
        RemoveCollectionTag => format!("🏷️ Tag {tag} removed from collection {collection}"),
        RunMetric => metric_header("📉", "met its threshold"),
        RunMetricChange => metric_header("📈", "changed"),
        RunMetricZscore => metric_header("📊", "is an outlier"),
        LogRunHistory => format!("📈 New metrics logged on run {run}"),
        RunState => match m.run_state {
            Some(s) => {
                let state = s.to_uppercase();
                let emoji = match state.as_str() {
                    "FINISHED" => "✅",
                    "FAILED" | "CRASHED" => "❌",
                    "RUNNING" => "🏃",
                    "KILLED" => "🛑",
                    _ => "🔄",
                };
                format!("{emoji} Run {run} {state}")
            }
            None => format!("🔄 Run {run} changed state"),
        },
    }
}

/// The facts section, as (label, raw value): what happened, to what, by whom.
fn facts<'a>(m: &MessageInput<'a>) -> Vec<(&'static str, &'a str)> {
    use EventType::*;
    let mut out = Vec::new();
    let mut put = |label, v: Option<&'a str>| {
        if let Some(v) = v {
            out.push((label, v));
        }
    };
    match m.family() {
        EventFamily::Artifact => {
            put("Version", m.version);
            put("Collection", m.collection);
            put("Type", m.artifact_type);
            match m.event_type {
                AddArtifactTag | RemoveArtifactTag | AddCollectionTag | RemoveCollectionTag => {
                    put("Tag", m.tag)
                }
                _ => put("Alias", m.alias),
            }
        }
        EventFamily::RunMetric => {
            put("Run", m.run_name.or(m.run_id));
            put(
                "Run ID",
                m.run_id.filter(|id| m.run_name.is_some_and(|n| n != *id)),
            );
            put("Metric", m.metric_name);
            put("Condition", m.condition);
            put("Value", m.metric_value);
            put("Window", m.metric_values);
        }
        EventFamily::RunState => {
            put("Run", m.run_name.or(m.run_id));
            put(
                "Run ID",
                m.run_id.filter(|id| m.run_name.is_some_and(|n| n != *id)),
            );
            put("State", m.run_state);
        }
    }
    put("By", m.author);
    out
}

fn link_label(m: &MessageInput) -> String {
    match m.family() {
        EventFamily::Artifact => format!("View {}", m.artifact()),
        EventFamily::RunMetric | EventFamily::RunState => format!("View run {}", m.run()),
    }
}

/// Whether Slack will take `url` as a button's URL: absolute http(s), no spaces, not too long.
fn is_link(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && url.chars().count() <= MAX_URL
}

/// `#name`, or Slack's own reference when `channel` is an id (`C0123ABCD`, upper case: channel
/// names never are).
fn channel_mention(channel: &str) -> String {
    let c = channel.trim().trim_start_matches('#');
    let is_id = c.len() >= 9
        && c.starts_with(['C', 'G'])
        && c.chars()
            .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit());
    if is_id {
        format!("<#{c}>")
    } else {
        format!("#{}", escape_mrkdwn(c))
    }
}

/// Assembles the message and holds it to the block budget: top-level blocks first, then as
/// many of the attachment's blocks as still fit.
fn message(text: &str, mut blocks: Vec<Value>, color: &str, mut details: Vec<Value>) -> Value {
    blocks.truncate(MAX_BLOCKS);
    details.truncate(MAX_BLOCKS - blocks.len());
    let mut msg = json!({ "text": truncate_mrkdwn(text, MAX_TEXT), "blocks": blocks });
    if !details.is_empty() {
        msg["attachments"] = json!([{ "color": color, "blocks": details }]);
    }
    msg
}

fn header(text: &str) -> Value {
    json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&one_line(text), MAX_HEADER), "emoji": true },
    })
}

/// A section of mrkdwn text, already escaped.
fn section(mrkdwn: &str) -> Value {
    json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": truncate_mrkdwn(mrkdwn, MAX_SECTION) },
    })
}

/// A section of mrkdwn fields, already escaped; the first [`MAX_FIELDS`] are kept.
fn fields(texts: Vec<String>) -> Value {
    let fields: Vec<Value> = texts
        .iter()
        .take(MAX_FIELDS)
        .map(|t| json!({ "type": "mrkdwn", "text": truncate_mrkdwn(t, MAX_FIELD) }))
        .collect();
    json!({ "type": "section", "fields": fields })
}

fn button(label: &str, url: &str) -> Value {
    json!({
        "type": "actions",
        "elements": [{
            "type": "button",
            "text": { "type": "plain_text", "text": truncate(&one_line(label), MAX_BUTTON), "emoji": true },
            "url": url,
            "action_id": LINK_ACTION_ID,
        }],
    })
}

/// A context line of mrkdwn, already escaped.
fn context(mrkdwn: &str) -> Value {
    json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": truncate_mrkdwn(mrkdwn, MAX_SECTION) }],
    })
}

/// `s` with line breaks and other control characters as spaces (a header is one line).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` cut to at most `max` characters, the last being "…" when anything was cut. Cuts fall
/// between chars, so the result is always valid UTF-8; a grapheme made of several chars
/// (a flag, a ZWJ emoji) may lose its tail.
fn truncate(s: &str, max: usize) -> String {
    cut(s, max).map_or_else(|| s.to_string(), |keep| format!("{keep}{ELLIPSIS}"))
}

/// [`truncate`] for escaped mrkdwn: never leaves half an entity (`&am…`) behind.
fn truncate_mrkdwn(s: &str, max: usize) -> String {
    match cut(s, max) {
        None => s.to_string(),
        Some(mut keep) => {
            // Escaped text has no bare `&`, so one not followed by `;` starts a cut entity.
            if let Some(amp) = keep.rfind('&') {
                if !keep[amp..].contains(';') {
                    keep = &keep[..amp];
                }
            }
            format!("{keep}{ELLIPSIS}")
        }
    }
}

/// The first `max - 1` chars of `s` when `s` has more than `max`, else `None`.
fn cut(s: &str, max: usize) -> Option<&str> {
    let mut ends = s.char_indices().map(|(i, _)| i);
    let end = ends.nth(max.saturating_sub(1))?;
    ends.next()?;
    Some(&s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chars(v: &Value) -> usize {
        v.as_str().expect("a string").chars().count()
    }

    fn all_blocks(msg: &Value) -> Vec<&Value> {
        let mut out: Vec<&Value> = msg["blocks"].as_array().unwrap().iter().collect();
        if let Some(atts) = msg.get("attachments") {
            for a in atts.as_array().unwrap() {
                out.extend(a["blocks"].as_array().unwrap());
            }
        }
        out
    }

    fn block<'a>(msg: &'a Value, kind: &str) -> &'a Value {
        all_blocks(msg)
            .into_iter()
            .find(|b| b["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} block in {msg:#}"))
    }

    fn field_texts(msg: &Value) -> Vec<String> {
        all_blocks(msg)
            .into_iter()
            .filter_map(|b| b.get("fields"))
            .flat_map(|f| f.as_array().unwrap())
            .map(|f| f["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn header_text(msg: &Value) -> &str {
        block(msg, "header")["text"]["text"].as_str().unwrap()
    }

    fn context_text(msg: &Value) -> &str {
        block(msg, "context")["elements"][0]["text"]
            .as_str()
            .unwrap()
    }

    /// Escaped mrkdwn: no `<` or `>`, and every `&` starts one of our three entities.
    fn assert_inert(mrkdwn: &str) {
        assert!(!mrkdwn.contains(['<', '>']), "unescaped: {mrkdwn}");
        for (i, _) in mrkdwn.match_indices('&') {
            let rest = &mrkdwn[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare &: {rest}"
            );
        }
    }

    /// Every Slack limit this module promises, and nothing empty where Slack wants text.
    fn assert_within_limits(msg: &Value) {
        assert!(chars(&msg["text"]) <= MAX_TEXT);
        assert!(chars(&msg["text"]) > 0);
        assert_inert(msg["text"].as_str().unwrap());
        let blocks = all_blocks(msg);
        assert!(blocks.len() <= MAX_BLOCKS);
        for b in blocks {
            match b["type"].as_str().unwrap() {
                "header" => {
                    let n = chars(&b["text"]["text"]);
                    assert!(n > 0 && n <= MAX_HEADER, "header of {n}");
                }
                "section" => {
                    if let Some(t) = b.get("text") {
                        let n = chars(&t["text"]);
                        assert!(n > 0 && n <= MAX_SECTION, "section of {n}");
                        assert_inert(t["text"].as_str().unwrap());
                    }
                    if let Some(f) = b.get("fields") {
                        let f = f.as_array().unwrap();
                        assert!(!f.is_empty() && f.len() <= MAX_FIELDS);
                        for x in f {
                            let n = chars(&x["text"]);
                            assert!(n > 0 && n <= MAX_FIELD, "field of {n}");
                            assert_inert(x["text"].as_str().unwrap());
                        }
                    }
                }
                "context" => {
                    for e in b["elements"].as_array().unwrap() {
                        assert!(chars(&e["text"]) <= MAX_SECTION);
                        assert_inert(e["text"].as_str().unwrap());
                    }
                }
                "actions" => {
                    for e in b["elements"].as_array().unwrap() {
                        let n = chars(&e["text"]["text"]);
                        assert!(n > 0 && n <= MAX_BUTTON, "button of {n}");
                        assert!(chars(&e["url"]) <= MAX_URL);
                    }
                }
                other => panic!("unexpected block {other}"),
            }
        }
    }

    fn alias_event() -> MessageInput<'static> {
        MessageInput {
            entity: "acme",
            project: Some("vision"),
            author: Some("alice"),
            link: Some("https://herald.example/acme/vision/artifacts/model/my-model/v3"),
            collection: Some("my-model"),
            artifact_type: Some("model"),
            version: Some("acme/vision/my-model:v3"),
            alias: Some("production"),
            ..MessageInput::new(EventType::AddArtifactAlias, "promote-to-prod", "acme")
        }
    }

    fn metric_event() -> MessageInput<'static> {
        MessageInput {
            severity: Severity::Warn,
            message: Some("Loss is *not* going down. Check the learning rate."),
            project: Some("vision"),
            author: Some("bob"),
            link: Some("https://herald.example/acme/vision/runs/3xk9q2"),
            run_id: Some("3xk9q2"),
            run_name: Some("my-run"),
            metric_name: Some("loss"),
            condition: Some("AVERAGE(loss) > 0.5 (last 5)"),
            metric_value: Some("0.62"),
            metric_values: Some("0.58, 0.61, 0.6, 0.66, 0.65"),
            ..MessageInput::new(EventType::RunMetric, "loss-watch", "acme")
        }
    }

    fn state_event() -> MessageInput<'static> {
        MessageInput {
            severity: Severity::Error,
            title: Some("Training crashed"),
            project: Some("vision"),
            author: Some("carol"),
            link: Some("https://herald.example/acme/vision/runs/7hq1"),
            run_id: Some("7hq1"),
            run_name: Some("resnet-50-sweep"),
            run_state: Some("FAILED"),
            ..MessageInput::new(EventType::RunState, "failed-runs", "acme")
        }
    }

    #[test]
    fn artifact_event_message() {
        let msg = render(&alias_event());
        assert_within_limits(&msg);
        assert_eq!(header_text(&msg), "🚀 New alias production on my-model:v3");
        assert_eq!(msg["blocks"].as_array().unwrap().len(), 1, "no message");
        assert_eq!(msg["attachments"][0]["color"], "#2eb886");
        assert_eq!(
            field_texts(&msg),
            [
                "*Version*\nacme/vision/my-model:v3",
                "*Collection*\nmy-model",
                "*Type*\nmodel",
                "*Alias*\nproduction",
                "*By*\nalice",
            ]
        );
        let button = &block(&msg, "actions")["elements"][0];
        assert_eq!(button["text"]["text"], "View my-model:v3");
        assert_eq!(
            button["url"],
            "https://herald.example/acme/vision/artifacts/model/my-model/v3"
        );
        assert_eq!(
            context_text(&msg),
            "ℹ️ *INFO*  ·  `ADD_ARTIFACT_ALIAS`  ·  acme/vision  ·  automation *promote-to-prod*"
        );
        let text = msg["text"].as_str().unwrap();
        for fact in [
            "INFO",
            "production",
            "acme/vision/my-model:v3",
            "alice",
            "promote-to-prod",
            "https://herald.example/acme/vision/artifacts/model/my-model/v3",
        ] {
            assert!(text.contains(fact), "{fact} missing from {text}");
        }
    }

    #[test]
    fn artifact_headers_per_event_type() {
        let h = |event_type, project| {
            let input = MessageInput {
                event_type,
                project,
                tag: Some("candidate"),
                ..alias_event()
            };
            header_text(&render(&input)).to_string()
        };
        use EventType::*;
        assert_eq!(
            h(CreateArtifact, Some("vision")),
            "📦 New model version my-model:v3"
        );
        assert_eq!(
            h(LinkModel, Some("wandb-registry-model")),
            "🔗 Linked my-model:v3 to registry model"
        );
        assert_eq!(h(LinkModel, Some("vision")), "🔗 Linked my-model:v3");
        assert_eq!(
            h(UnlinkArtifact, Some("wandb-registry-model")),
            "✂️ Unlinked my-model:v3 from registry model"
        );
        assert_eq!(
            h(AddArtifactTag, None),
            "🏷️ Tag candidate added to my-model:v3"
        );
        assert_eq!(
            h(RemoveCollectionTag, None),
            "🏷️ Tag candidate removed from collection my-model"
        );
        let tagged = render(&MessageInput {
            tag: Some("candidate"),
            ..MessageInput {
                event_type: AddArtifactTag,
                ..alias_event()
            }
        });
        assert!(field_texts(&tagged).contains(&"*Tag*\ncandidate".to_string()));
        assert!(!field_texts(&tagged)
            .iter()
            .any(|f| f.starts_with("*Alias*")));
    }

    #[test]
    fn run_metric_event_message() {
        let msg = render(&metric_event());
        assert_within_limits(&msg);
        assert_eq!(
            header_text(&msg),
            "📉 AVERAGE(loss) > 0.5 (last 5) on run my-run"
        );
        assert_eq!(
            msg["blocks"][1]["text"]["text"],
            "Loss is *not* going down. Check the learning rate."
        );
        assert_eq!(msg["attachments"][0]["color"], "#daa038");
        assert_eq!(
            field_texts(&msg),
            [
                "*Run*\nmy-run",
                "*Run ID*\n3xk9q2",
                "*Metric*\nloss",
                "*Condition*\nAVERAGE(loss) &gt; 0.5 (last 5)",
                "*Value*\n0.62",
                "*Window*\n0.58, 0.61, 0.6, 0.66, 0.65",
                "*By*\nbob",
            ]
        );
        let button = &block(&msg, "actions")["elements"][0];
        assert_eq!(button["text"]["text"], "View run my-run");
        assert_eq!(
            button["url"],
            "https://herald.example/acme/vision/runs/3xk9q2"
        );
        assert_eq!(
            context_text(&msg),
            "⚠️ *WARN*  ·  `RUN_METRIC_THRESHOLD`  ·  acme/vision  ·  automation *loss-watch*"
        );
        let text = msg["text"].as_str().unwrap();
        for fact in [
            "WARN",
            "my-run",
            "AVERAGE(loss) &gt; 0.5",
            "0.62",
            "loss-watch",
        ] {
            assert!(text.contains(fact), "{fact} missing from {text}");
        }
    }

    #[test]
    fn run_metric_headers_without_a_condition() {
        let input = MessageInput {
            event_type: EventType::RunMetricChange,
            condition: None,
            run_name: None,
            ..metric_event()
        };
        let msg = render(&input);
        assert_eq!(header_text(&msg), "📈 loss changed on run 3xk9q2");
        assert_eq!(field_texts(&msg)[0], "*Run*\n3xk9q2");
        assert!(!field_texts(&msg).iter().any(|f| f.starts_with("*Run ID*")));
    }

    #[test]
    fn run_state_event_message() {
        let msg = render(&state_event());
        assert_within_limits(&msg);
        assert_eq!(header_text(&msg), "🚨 Training crashed");
        assert_eq!(msg["attachments"][0]["color"], "#a30200");
        assert_eq!(
            field_texts(&msg),
            [
                "*Run*\nresnet-50-sweep",
                "*Run ID*\n7hq1",
                "*State*\nFAILED",
                "*By*\ncarol",
            ]
        );
        let button = &block(&msg, "actions")["elements"][0];
        assert_eq!(button["text"]["text"], "View run resnet-50-sweep");
        assert_eq!(
            context_text(&msg),
            "🚨 *ERROR*  ·  `RUN_STATE`  ·  acme/vision  ·  automation *failed-runs*"
        );
        let text = msg["text"].as_str().unwrap();
        assert_eq!(
            text,
            "ERROR: 🚨 Training crashed\n\
             Run: resnet-50-sweep · Run ID: 7hq1 · State: FAILED · By: carol\n\
             acme/vision · automation failed-runs\n\
             https://herald.example/acme/vision/runs/7hq1"
        );
        for fact in [
            "resnet-50-sweep",
            "FAILED",
            "carol",
            "failed-runs",
            "runs/7hq1",
        ] {
            assert!(text.contains(fact), "{fact} missing from {text}");
        }

        let untitled = |state| {
            let input = MessageInput {
                title: None,
                run_state: Some(state),
                ..state_event()
            };
            header_text(&render(&input)).to_string()
        };
        assert_eq!(untitled("FAILED"), "❌ Run resnet-50-sweep FAILED");
        assert_eq!(untitled("finished"), "✅ Run resnet-50-sweep FINISHED");
        assert_eq!(untitled("RUNNING"), "🏃 Run resnet-50-sweep RUNNING");
    }

    #[test]
    fn blanks_and_bad_links_are_left_out() {
        let input = MessageInput {
            title: Some("  "),
            message: Some(""),
            author: Some(" "),
            link: Some("javascript:alert(1)"),
            ..alias_event()
        };
        let msg = render(&input);
        assert_within_limits(&msg);
        assert_eq!(header_text(&msg), "🚀 New alias production on my-model:v3");
        assert_eq!(msg["blocks"].as_array().unwrap().len(), 1);
        assert!(all_blocks(&msg).iter().all(|b| b["type"] != "actions"));
        assert!(!field_texts(&msg).iter().any(|f| f.starts_with("*By*")));
        assert!(!msg["text"].as_str().unwrap().contains("javascript"));

        let bare = render(&MessageInput::new(EventType::RunState, "a", "e"));
        assert_within_limits(&bare);
        assert_eq!(header_text(&bare), "🔄 Run ? changed state");
        assert_eq!(
            context_text(&bare),
            "ℹ️ *INFO*  ·  `RUN_STATE`  ·  e  ·  automation *a*"
        );
        let long = "https://x.example/".to_string() + &"a".repeat(MAX_URL);
        let input = MessageInput {
            link: Some(&long),
            ..alias_event()
        };
        assert!(all_blocks(&render(&input))
            .iter()
            .all(|b| b["type"] != "actions"));
    }

    #[test]
    fn severity_wire_values_emoji_and_colour() {
        for (s, wire, emoji, color) in [
            (Severity::Info, "INFO", "ℹ️", "#2eb886"),
            (Severity::Warn, "WARN", "⚠️", "#daa038"),
            (Severity::Error, "ERROR", "🚨", "#a30200"),
        ] {
            assert_eq!(s.as_str(), wire);
            assert_eq!(Severity::parse(wire), Ok(s));
            assert_eq!(Severity::parse(&wire.to_lowercase()), Ok(s));
            assert_eq!(s.emoji(), emoji);
            assert_eq!(s.color(), color);
            assert_eq!(serde_json::to_value(s).unwrap(), wire);
        }
        let err = Severity::parse("CRITICAL").unwrap_err();
        assert_eq!(err.path, "severity");
        assert!(err.message.contains("INFO, WARN or ERROR"), "{err}");
        assert_eq!(Severity::default(), Severity::Info);
    }

    #[test]
    fn event_families() {
        use EventType::*;
        assert_eq!(EventFamily::of(LinkModel), EventFamily::Artifact);
        assert_eq!(EventFamily::of(RemoveCollectionTag), EventFamily::Artifact);
        assert_eq!(EventFamily::of(RunMetricZscore), EventFamily::RunMetric);
        assert_eq!(EventFamily::of(RunState), EventFamily::RunState);
    }

    #[test]
    fn mentions_and_links_in_event_data_stay_text() {
        let input = MessageInput {
            message: Some("<!channel> ping <@U024BE7LH> & <https://evil.example|click>"),
            alias: Some("<!here>"),
            author: Some("<@U0ADMIN>"),
            automation_name: "<#C0123|general>",
            project: Some("a&b"),
            ..alias_event()
        };
        let msg = render(&input);
        assert_within_limits(&msg);
        assert_eq!(
            msg["blocks"][1]["text"]["text"],
            "&lt;!channel&gt; ping &lt;@U024BE7LH&gt; &amp; &lt;https://evil.example|click&gt;"
        );
        assert!(field_texts(&msg).contains(&"*Alias*\n&lt;!here&gt;".to_string()));
        assert!(field_texts(&msg).contains(&"*By*\n&lt;@U0ADMIN&gt;".to_string()));
        assert!(context_text(&msg).contains("acme/a&amp;b"));
        assert!(context_text(&msg).contains("*&lt;#C0123|general&gt;*"));
        // plain_text is never parsed by Slack, so the header keeps the text as written.
        assert_eq!(header_text(&msg), "🚀 New alias <!here> on my-model:v3");
        assert!(msg["text"].as_str().unwrap().contains("&lt;!channel&gt;"));
        assert_eq!(escape_mrkdwn("a<b>&c"), "a&lt;b&gt;&amp;c");
    }

    #[test]
    fn truncate_counts_chars_and_ends_with_an_ellipsis() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("", 3), "");
        assert_eq!(truncate("😀😀😀", 3), "😀😀😀");
        assert_eq!(truncate("😀😀😀😀", 3), "😀😀…");
        assert_eq!(truncate("漢字漢字", 3), "漢字…");
        assert_eq!(truncate_mrkdwn("ab&amp;", 7), "ab&amp;");
        assert_eq!(truncate_mrkdwn("ab&amp;c", 7), "ab…");
        assert_eq!(truncate_mrkdwn("ab&lt;cd", 7), "ab&lt;…");
        assert_eq!(truncate_mrkdwn("ab&lt;cd", 6), "ab…");
    }

    #[test]
    fn header_is_cut_at_150_chars_on_multibyte_text() {
        for unit in ["😀", "漢", "é", "a"] {
            let title = unit.repeat(MAX_HEADER); // with the severity emoji, over the limit
            let msg = render(&MessageInput {
                title: Some(&title),
                ..state_event()
            });
            let h = header_text(&msg);
            assert_eq!(h.chars().count(), MAX_HEADER);
            assert!(h.starts_with("🚨 "));
            assert!(h.ends_with(&format!("{unit}…")), "{h}");
        }
        let exact = "漢".repeat(MAX_HEADER - 2); // after "🚨 ", two chars
        let msg = render(&MessageInput {
            title: Some(&exact),
            ..state_event()
        });
        assert_eq!(header_text(&msg), format!("🚨 {exact}"));
        assert_eq!(header_text(&msg).chars().count(), MAX_HEADER);
    }

    #[test]
    fn message_is_cut_at_3000_chars_without_breaking_an_entity() {
        let long = "界".repeat(MAX_SECTION + 1);
        let msg = render(&MessageInput {
            message: Some(&long),
            ..metric_event()
        });
        let text = msg["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), MAX_SECTION);
        assert!(text.ends_with("界…"));

        // The 2,999th char falls inside the escape of `<`.
        let tricky = format!("{}<b", "x".repeat(MAX_SECTION - 3));
        let msg = render(&MessageInput {
            message: Some(&tricky),
            ..metric_event()
        });
        let text = msg["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(text, format!("{}…", "x".repeat(MAX_SECTION - 3)));
        assert_within_limits(&msg);
    }

    #[test]
    fn fields_are_cut_at_2000_chars_and_10_per_section() {
        let long = "🚀".repeat(MAX_FIELD);
        let msg = render(&MessageInput {
            alias: Some(&long),
            ..alias_event()
        });
        let alias = field_texts(&msg)
            .into_iter()
            .find(|f| f.starts_with("*Alias*"))
            .unwrap();
        assert_eq!(alias.chars().count(), MAX_FIELD);
        assert!(alias.ends_with("🚀…"));

        let section = fields((0..12).map(|i| format!("f{i}")).collect());
        let f = section["fields"].as_array().unwrap();
        assert_eq!(f.len(), MAX_FIELDS);
        assert_eq!(f[9]["text"], "f9");
    }

    #[test]
    fn blocks_are_capped_at_50_top_level_first() {
        let top: Vec<Value> = (0..40).map(|i| section(&format!("top {i}"))).collect();
        let att: Vec<Value> = (0..20).map(|i| context(&format!("att {i}"))).collect();
        let msg = message("t", top, "#000000", att);
        assert_eq!(msg["blocks"].as_array().unwrap().len(), 40);
        let att = msg["attachments"][0]["blocks"].as_array().unwrap();
        assert_eq!(att.len(), 10);
        assert_eq!(all_blocks(&msg).len(), MAX_BLOCKS);

        let top: Vec<Value> = (0..60).map(|i| section(&format!("top {i}"))).collect();
        let msg = message("t", top, "#000000", vec![context("c")]);
        assert_eq!(msg["blocks"].as_array().unwrap().len(), MAX_BLOCKS);
        assert!(msg.get("attachments").is_none());
    }

    #[test]
    fn button_text_is_cut_at_75_chars() {
        let name = "ラン".repeat(MAX_BUTTON);
        let msg = render(&MessageInput {
            run_name: Some(&name),
            ..state_event()
        });
        let label = block(&msg, "actions")["elements"][0]["text"]["text"]
            .as_str()
            .unwrap();
        assert_eq!(label.chars().count(), MAX_BUTTON);
        assert!(label.starts_with("View run ラン") && label.ends_with('…'));
    }

    #[test]
    fn fallback_text_is_cut_at_40000_chars() {
        let long = "😀".repeat(MAX_TEXT);
        let msg = render(&MessageInput {
            message: Some(&long),
            ..metric_event()
        });
        let text = msg["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), MAX_TEXT);
        assert!(text.ends_with("😀…"));
        assert_within_limits(&msg);
    }

    #[test]
    fn test_message() {
        let msg = render_test("ml-alerts <!channel>", "#ml-ops");
        assert_within_limits(&msg);
        assert_eq!(header_text(&msg), "✅ herald test message");
        assert_eq!(
            msg["blocks"][1]["text"]["text"],
            "The Slack integration *ml-alerts &lt;!channel&gt;* can post to #ml-ops. \
             Automations that use it will notify this channel."
        );
        assert_eq!(msg["attachments"][0]["color"], Severity::Info.color());
        assert!(msg["text"].as_str().unwrap().contains("#ml-ops"));
        let by_id = render_test("x", "C0123ABCDE");
        assert!(by_id["text"].as_str().unwrap().contains("<#C0123ABCDE>"));
        assert!(render_test("x", "general")["text"]
            .as_str()
            .unwrap()
            .contains("#general"));
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "[a-z<>&!@|*_~`é漢😀 \n]{0,3500}",
            "[&<>😀漢]{1900,2100}",
        ]
    }

    fn opt() -> impl Strategy<Value = Option<String>> {
        prop::option::of(text())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        // Whatever the event carries, the message is JSON that reads back as itself and keeps
        // every Slack limit, and no mrkdwn text holds an unescaped `<`, `>` or `&`.
        #[test]
        fn every_message_keeps_slack_limits(
            ty in prop::sample::select(EventType::ALL.to_vec()),
            sev in prop::sample::select(Severity::ALL.to_vec()),
            names in prop::collection::vec(text(), 2),
            a in prop::collection::vec(opt(), 10),
            b in prop::collection::vec(opt(), 6),
            link in prop::option::of("https://[a-z]{1,10}\\.example/[a-z0-9/]{0,3000}"),
        ) {
            fn s(o: &Option<String>) -> Option<&str> {
                o.as_deref()
            }
            let input = MessageInput {
                event_type: ty,
                automation_name: &names[0],
                title: s(&a[0]),
                message: s(&a[1]),
                severity: sev,
                entity: &names[1],
                project: s(&a[2]),
                author: s(&a[3]),
                link: link.as_deref(),
                collection: s(&a[4]),
                artifact_type: s(&a[5]),
                version: s(&a[6]),
                alias: s(&a[7]),
                tag: s(&a[8]),
                run_id: s(&a[9]),
                run_name: s(&b[0]),
                run_state: s(&b[1]),
                metric_name: s(&b[2]),
                condition: s(&b[3]),
                metric_value: s(&b[4]),
                metric_values: s(&b[5]),
            };
            let msg = render(&input);
            assert_within_limits(&msg);
            let wire = serde_json::to_string(&msg).unwrap();
            prop_assert_eq!(serde_json::from_str::<Value>(&wire).unwrap(), msg);
        }
    }
}
