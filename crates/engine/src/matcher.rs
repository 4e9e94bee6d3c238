//! The matcher: reads the event log in order and turns every (event, enabled automation whose
//! scope and filter match) into an execution row, in the same transaction that moves its
//! cursor past those events. The automations live in an in-memory index keyed by event type
//! and entity, rebuilt when the automation epoch in the store changes.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use herald_domain::automation::{Action, ActionType, Automation, ExecutionStatus};
use herald_domain::event::{Event, EventType};
use herald_domain::ids::{AutomationId, EntityId};
use herald_domain::template::{Template, EVENT_VARIABLES};
use herald_store::{NewExecution, Store};
use serde_json::{json, Value};

use crate::automations::{compile_spec, Rule};
use crate::variables::{event_variables, filter_document, metadata_text, METADATA_PREFIX};

/// An enabled automation, compiled for matching.
pub struct Compiled {
    pub automation: Automation,
    pub rule: Rule,
    /// The action as stored with each execution, serialised once and shared by them all.
    action_json: Arc<Value>,
    project: Option<String>,
    collection: Option<String>,
    template: Option<Template>,
    /// The variables a webhook's payload uses, the only ones its executions keep; `None`
    /// keeps all (a Slack message shows more than its template names).
    wanted: Option<Vec<String>>,
    /// The payload's placeholders that name secrets, masked in the stored request.
    secrets: Vec<String>,
    /// An artifact automation whose filter matches every event (W&B's empty filter, the
    /// usual case): its events need no filter document.
    matches_all: bool,
}

impl Compiled {
    fn new(a: Automation) -> Option<Self> {
        let rule = match compile_spec(&a.event) {
            Ok(r) => r,
            Err(e) => {
                // Saved filters were validated; one that no longer compiles is skipped, loudly.
                tracing::error!(automation = a.id.0, error = %e, "stored filter does not compile; automation skipped");
                return None;
            }
        };
        let path = a.scope.parse_path().ok()?;
        let template = match &a.action {
            Action::GenericWebhook { payload, .. } => Template::parse(payload).ok(),
            // Title and message as one template, so their placeholders are found together.
            Action::Notification { title, message, .. } => Template::parse(&json!([
                title.as_deref().unwrap_or(""),
                message.as_deref().unwrap_or("")
            ]))
            .ok(),
            Action::NoOp => None,
        };
        // Saving admitted only event variables, metadata keys, ACCESS_TOKEN and the
        // integration's secrets, so every other placeholder names a secret.
        let (variables, secrets): (Vec<String>, Vec<String>) = template
            .iter()
            .flat_map(Template::placeholders)
            .map(str::to_string)
            .partition(|p| EVENT_VARIABLES.contains(&p.as_str()) || p.starts_with(METADATA_PREFIX));
        let wanted = matches!(a.action, Action::GenericWebhook { .. }).then_some(variables);
        Some(Self {
            wanted,
            secrets,
            action_json: Arc::new(serde_json::to_value(&a.action).unwrap_or(Value::Null)),
            matches_all: matches!(&rule, Rule::Artifact(f) if f.is_empty()),
            rule,
            project: path.project,
            collection: path.collection,
            template,
            automation: a,
        })
    }

    pub fn in_scope(&self, e: &Event) -> bool {
        // The index already matched the entity; names are immutable, so comparing them is exact.
        (self.project.is_none() || self.project == e.project)
            && (self.collection.is_none() || self.collection == e.collection)
    }
}

/// Enabled automations by (event type, entity).
#[derive(Default)]
pub struct Index {
    by_key: HashMap<(EventType, EntityId), Vec<Arc<Compiled>>>,
    /// Run-metric automations by (entity, metric), so a history batch touches only those
    /// watching a metric it holds.
    by_metric: HashMap<(EntityId, String), Vec<Arc<Compiled>>>,
    pub epoch: i64,
}

impl Index {
    pub fn build(automations: Vec<Automation>, epoch: i64) -> Self {
        let mut by_key: HashMap<(EventType, EntityId), Vec<Arc<Compiled>>> = HashMap::new();
        let mut by_metric: HashMap<(EntityId, String), Vec<Arc<Compiled>>> = HashMap::new();
        for a in automations {
            let key = (trigger(a.event.event_type), a.entity_id);
            if let Some(c) = Compiled::new(a) {
                let c = Arc::new(c);
                if let Rule::Run(r) = &c.rule {
                    if let Some(m) = r.condition.metric() {
                        by_metric
                            .entry((key.1, m.as_str().to_string()))
                            .or_default()
                            .push(c.clone());
                        continue;
                    }
                }
                by_key.entry(key).or_default().push(c);
            }
        }
        Self {
            by_key,
            by_metric,
            epoch,
        }
    }

    /// An index that is stale by construction, so the first refresh rebuilds it.
    pub fn stale() -> Self {
        Self {
            by_key: HashMap::new(),
            by_metric: HashMap::new(),
            epoch: -1,
        }
    }

    pub fn len(&self) -> usize {
        self.by_key
            .values()
            .chain(self.by_metric.values())
            .map(Vec::len)
            .sum()
    }

    /// The run-metric automations of `entity` watching `metric`.
    pub fn watching(&self, entity: EntityId, metric: &str) -> &[Arc<Compiled>] {
        self.by_metric
            .get(&(entity, metric.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The automations `e` may fire: those watching its type in its entity.
    pub fn candidates(&self, e: &Event) -> &[Arc<Compiled>] {
        self.by_key
            .get(&(e.event_type, e.entity_id))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The artifact automations `e` fires (scope and filter match).
    pub fn matching<'a>(&'a self, e: &'a Event) -> impl Iterator<Item = &'a Arc<Compiled>> + 'a {
        let candidates = self.candidates(e);
        // Built only when some automation's filter looks at it, and once for all of them.
        let doc = candidates
            .iter()
            .any(|c| matches!(c.rule, Rule::Artifact(_)) && !c.matches_all)
            .then(|| filter_document(e));
        candidates.iter().filter(move |c| {
            c.in_scope(e)
                && match (&c.rule, &doc) {
                    (Rule::Artifact(_), _) if c.matches_all => true,
                    (Rule::Artifact(f), Some(d)) => f.matches(d),
                    _ => false,
                }
        })
    }
}

/// The event that makes an automation of type `t` look: run-metric conditions are evaluated
/// on each logged history batch.
fn trigger(t: EventType) -> EventType {
    match t {
        EventType::RunMetric | EventType::RunMetricChange | EventType::RunMetricZscore => {
            EventType::LogRunHistory
        }
        other => other,
    }
}

/// Builds the execution for `c` firing on `e`; `status` says whether it runs or was skipped.
pub async fn execution_for(
    store: &dyn Store,
    c: &Compiled,
    e: &Event,
    status: ExecutionStatus,
    reason: Option<String>,
    run: Option<RunFiring>,
    public_url: Option<&str>,
) -> NewExecution {
    let a = &c.automation;
    // A webhook's execution keeps only what its payload uses: the rest would be worked out,
    // stored and read back for nothing.
    let wanted = |k: &str| c.wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == k));
    let mut vars = event_variables(e, a.name.as_str(), &wanted, public_url);
    let fired_run = run.as_ref().and_then(|r| r.fired_run);
    if let Some(r) = run {
        vars.insert(
            "event_type".into(),
            Value::String(a.event.event_type.public_name().to_string()),
        );
        for (k, v) in r.variables {
            vars.insert(k, v);
        }
        vars.retain(|k, _| wanted(k));
    }
    if let (Some(t), Some(version)) = (&c.template, e.version_id) {
        let keys: Vec<&str> = t
            .placeholders()
            .filter_map(|p| p.strip_prefix(METADATA_PREFIX))
            .collect();
        if !keys.is_empty() {
            let metadata = store
                .version_metadata(e.entity_id, version)
                .await
                .ok()
                .flatten()
                .unwrap_or(Value::Null);
            for k in keys {
                let text = metadata.get(k).map(metadata_text).unwrap_or_default();
                vars.insert(format!("{METADATA_PREFIX}{k}"), Value::String(text));
            }
        }
    }
    let (request, integration_id) = match &a.action {
        Action::GenericWebhook { integration_id, .. } => {
            let body = c
                .template
                .as_ref()
                .map(|t| {
                    // History shows a secret as `***`, not as an empty string.
                    t.render_masked(
                        &|name| vars.get(name).and_then(Value::as_str).map(str::to_string),
                        &c.secrets,
                    )
                })
                .unwrap_or(Value::Null);
            (
                json!({ "method": "POST", "integration_id": integration_id, "body": body }),
                Some(*integration_id),
            )
        }
        Action::Notification {
            integration_id,
            severity,
            ..
        } => {
            let rendered = c
                .template
                .as_ref()
                .map(|t| {
                    t.render(&|name| vars.get(name).and_then(Value::as_str).map(str::to_string))
                })
                .unwrap_or(Value::Null);
            let text = |i: usize| {
                rendered
                    .get(i)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            (
                json!({ "integration_id": integration_id, "slack": {
                    "title": text(0), "message": text(1), "severity": severity.as_str() } }),
                Some(*integration_id),
            )
        }
        Action::NoOp => (json!({ "action": ActionType::NoOp.as_str() }), None),
    };
    // NO_OP does nothing, so there is nothing to deliver: it is finished as soon as it matched.
    let status = if a.action.action_type() == ActionType::NoOp && status == ExecutionStatus::Pending
    {
        ExecutionStatus::Finished
    } else {
        status
    };
    NewExecution {
        entity_id: e.entity_id,
        automation_id: a.id,
        automation_name: a.name.as_str().to_string(),
        event_id: e.id,
        event_type: a.event.event_type,
        action_type: a.action.action_type(),
        integration_id,
        status,
        reason,
        action: c.action_json.clone(),
        variables: Value::Object(vars),
        request,
        next_attempt_at: (status == ExecutionStatus::Pending).then(Utc::now),
        lease_until: None,
        fired_run,
    }
}

/// What a run event adds to an execution: the run and metric variables, and for metric
/// firings the run whose cooldown starts.
pub struct RunFiring {
    pub variables: serde_json::Map<String, Value>,
    pub fired_run: Option<herald_domain::ids::RunId>,
}

/// Each automation's admitted executions in the last minute, kept across matcher steps (the
/// matcher is the only writer of executions) and seeded from the store when an automation is
/// first seen, so the limit costs O(1) per firing however high it is set.
#[derive(Default)]
pub struct RateLimiter {
    admitted: parking_lot::Mutex<HashMap<AutomationId, Window>>,
}

/// One automation's admissions in the last minute, as (millisecond, count) runs: a matcher
/// batch admits all its firings at one instant, so the window holds one entry per batch, not
/// per firing, however high the limit is.
#[derive(Default)]
struct Window {
    runs: std::collections::VecDeque<(i64, u32)>,
    total: u64,
}

impl RateLimiter {
    const WINDOW_MS: i64 = 60_000;

    /// Whether `a` may run once more at `now_ms`; counts the run if so.
    pub async fn admit(&self, store: &dyn Store, a: &Automation, now_ms: i64) -> bool {
        let seen = self.admitted.lock().contains_key(&a.id);
        if !seen {
            let since = Utc::now() - chrono::Duration::milliseconds(Self::WINDOW_MS);
            let n = store
                .recent_executions(a.id, since, a.rate_limit_per_minute as i64)
                .await
                .unwrap_or(0);
            // Their exact times are unknown: count them as just now, which errs on the safe side.
            let n = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
            let seeded = Window {
                runs: (n > 0).then_some((now_ms, n)).into_iter().collect(),
                total: u64::from(n),
            };
            self.admitted.lock().entry(a.id).or_insert(seeded);
        }
        let mut map = self.admitted.lock();
        let w = map.entry(a.id).or_default();
        while let Some(&(t, n)) = w.runs.front() {
            if t > now_ms - Self::WINDOW_MS {
                break;
            }
            w.runs.pop_front();
            w.total -= u64::from(n);
        }
        if w.total >= u64::from(a.rate_limit_per_minute) {
            return false;
        }
        w.total += 1;
        match w.runs.back_mut() {
            Some((t, n)) if *t == now_ms => *n += 1,
            _ => w.runs.push_back((now_ms, 1)),
        }
        true
    }

    /// Forgets everything (a batch failed to commit: its admissions never happened).
    pub fn clear(&self) {
        self.admitted.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::automation::{Scope, ScopeType, Severity};
    use herald_domain::ids::{EventId, IntegrationId, VersionId};
    use herald_store::sql::{SqlOptions, SqlStore};

    fn automation(action: Action) -> Automation {
        Automation {
            id: AutomationId(7),
            entity_id: EntityId(1),
            entity: "team".into(),
            name: herald_domain::automation::AutomationName::parse("notify").unwrap(),
            description: None,
            enabled: true,
            scope: Scope {
                scope_type: ScopeType::Project,
                path: "team/p".into(),
            },
            event: herald_domain::automation::EventSpec {
                event_type: EventType::CreateArtifact,
                filter: json!({}),
            },
            action,
            rate_limit_per_minute: 0,
            cooldown_seconds: None,
            created_by: "admin".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn created_v3() -> Event {
        Event {
            id: EventId(1),
            event_type: EventType::CreateArtifact,
            entity_id: EntityId(1),
            entity: "team".into(),
            project: Some("p".into()),
            collection: Some("c".into()),
            artifact_type: Some("model".into()),
            version_id: Some(VersionId(5)),
            version: Some("v3".into()),
            alias: None,
            tag: None,
            run: None,
            author: Some("ada".into()),
            created_at: Utc::now(),
            body: json!({}),
        }
    }

    #[tokio::test]
    async fn a_webhook_execution_keeps_only_the_variables_its_payload_uses() {
        let store = SqlStore::connect("sqlite::memory:", &SqlOptions::default())
            .await
            .unwrap();
        let webhook = Compiled::new(automation(Action::GenericWebhook {
            integration_id: IntegrationId(3),
            payload: json!({"version": "${artifact_version_string}",
                            "by": "${event_type} by ${event_author}",
                            "token": "${ACCESS_TOKEN}"}),
        }))
        .unwrap();
        let pending = ExecutionStatus::Pending;
        let x = execution_for(&store, &webhook, &created_v3(), pending, None, None, None).await;
        assert_eq!(
            x.variables,
            json!({"artifact_version_string": "team/p/c:v3", "event_type": "CREATE_ARTIFACT",
                   "event_author": "ada"})
        );
        assert_eq!(
            x.request["body"],
            json!({"version": "team/p/c:v3", "by": "CREATE_ARTIFACT by ada", "token": "***"})
        );

        // A Slack message shows more than its template names: it keeps them all.
        let slack = Compiled::new(automation(Action::Notification {
            integration_id: IntegrationId(4),
            title: Some("${artifact_collection_name}".into()),
            message: None,
            severity: Severity::Info,
        }))
        .unwrap();
        let x = execution_for(&store, &slack, &created_v3(), pending, None, None, None).await;
        let kept = x.variables.as_object().unwrap();
        for name in EVENT_VARIABLES.iter().chain(&["artifact_type"]) {
            assert!(kept.contains_key(*name), "{name} missing from {kept:?}");
        }
        assert_eq!(
            kept["artifact_version"],
            "wandb-artifact://_id/QXJ0aWZhY3Q6NQ=="
        );
        assert_eq!(x.request["slack"]["title"], "c");
    }
}
