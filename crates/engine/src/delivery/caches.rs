//! What deliveries keep of what they read: integrations and opened secrets for a moment
//! ([`ReadCache`]), and each automation's action parsed once ([`PreparedActions`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_domain::automation::{Action, Integration};
use herald_domain::ids::{AutomationId, EntityId, IntegrationId};
use herald_domain::template::Template;
use serde::Deserialize as _;
use serde_json::Value;

/// How long a value read for delivery (an integration, an opened secret) is used before it is
/// read again. Changes made through this process clear the cache at once; this bounds how late
/// another replica's are seen (as the automation index does).
const READ_TTL: Duration = Duration::from_millis(250);

/// Most values a [`ReadCache`] keeps; past it the least used go first.
const READ_CAPACITY: u64 = 10_000;

/// Values recently read from the store for delivery, so that a busy destination's integration
/// and secrets are not read from the database for every message.
pub struct ReadCache<K, V> {
    read: moka::sync::Cache<K, V>,
    /// Bumped by every clear, so a read that began before a change is not cached after it.
    generation: std::sync::atomic::AtomicU64,
    /// Held to store a read or to clear: a read checks the generation and stores under it, so
    /// a clear cannot fall between the two.
    writing: parking_lot::Mutex<()>,
}

/// Integrations by owner and id, shared by the deliveries that use them.
pub type IntegrationCache = ReadCache<(EntityId, IntegrationId), Arc<Integration>>;
/// Secrets by owner and name, decrypted: this process holds the master key that opens them
/// anyway, and opening them for every message cost more than the rest of signing it.
pub type SecretCache = ReadCache<(EntityId, String), Arc<OpenedSecret>>;

/// A secret's value and its previous values (each with the end of its grace period), opened.
pub struct OpenedSecret {
    pub value: String,
    pub previous: Vec<(String, DateTime<Utc>)>,
}

impl<K, V> Default for ReadCache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self {
            read: moka::sync::Cache::builder()
                .max_capacity(READ_CAPACITY)
                .time_to_live(READ_TTL)
                .build(),
            generation: Default::default(),
            writing: Default::default(),
        }
    }
}

impl<K, V> ReadCache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value of `key`: cached if read within `READ_TTL`, else what `load` reads (cached
    /// when found, unless the cache was cleared meanwhile). `load` is called only then: a
    /// store's read allocates its future as soon as it is called.
    pub async fn get<E, F>(&self, key: K, load: impl FnOnce() -> F) -> Result<Option<V>, E>
    where
        F: std::future::Future<Output = Result<Option<V>, E>>,
    {
        if let Some(v) = self.read.get(&key) {
            return Ok(Some(v));
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let found = load().await?;
        let _writing = self.writing.lock();
        match &found {
            Some(v) if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation => {
                self.read.insert(key, v.clone());
            }
            _ => self.read.invalidate(&key),
        }
        Ok(found)
    }

    /// Forgets everything: something cached changed.
    pub fn clear(&self) {
        let _writing = self.writing.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.read.invalidate_all();
    }
}

/// An execution's action made ready to deliver: read, and its payload parsed as a template.
pub struct Prepared {
    pub action: Action,
    /// A webhook's payload template, or why the stored payload is not one.
    pub(super) template: Option<Result<Template, String>>,
}

/// Prepared actions by automation. Every execution stores the action it matched with, so
/// without this each delivery would read the action and parse its template again; with it,
/// that happens once per automation (and again only when the automation's action changes).
/// A plain map, not a moka cache: nothing in it goes stale (each entry is checked against the
/// action it was prepared from), so it needs no time to live, only a bound.
#[derive(Default)]
pub struct PreparedActions {
    by_automation: parking_lot::Mutex<HashMap<AutomationId, PreparedFrom>>,
}

/// The action an automation's entry was prepared from, and what it gave.
type PreparedFrom = (Arc<Value>, Arc<Prepared>);

impl PreparedActions {
    /// Entries kept at most; past it the cache starts afresh (deleted automations leave
    /// entries behind).
    const MAX: usize = 4096;

    /// `action` of an execution of `automation`, prepared; `Err` says why it cannot be read.
    pub fn get(
        &self,
        automation: AutomationId,
        action: &Arc<Value>,
    ) -> Result<Arc<Prepared>, String> {
        if let Some((seen, prepared)) = self.lock().get(&automation) {
            // Handed-off executions share the matcher's copy; claimed ones carry their own.
            if Arc::ptr_eq(seen, action) || **seen == **action {
                return Ok(prepared.clone());
            }
        }
        let parsed = Action::deserialize(&**action).map_err(|e| e.to_string())?;
        let template = match &parsed {
            Action::GenericWebhook { payload, .. } => {
                Some(Template::parse(payload).map_err(|e| e.to_string()))
            }
            Action::Notification { .. } | Action::NoOp => None,
        };
        let prepared = Arc::new(Prepared {
            action: parsed,
            template,
        });
        let mut by_automation = self.lock();
        if by_automation.len() >= Self::MAX {
            by_automation.clear();
        }
        by_automation.insert(automation, (action.clone(), prepared.clone()));
        Ok(prepared)
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<AutomationId, PreparedFrom>> {
        self.by_automation.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(payload: Value) -> Arc<Value> {
        Arc::new(serde_json::json!({
            "type": "GENERIC_WEBHOOK", "integration_id": 7, "payload": payload
        }))
    }

    fn rendered(p: &Prepared) -> Value {
        match &p.template {
            Some(Ok(t)) => t.render(&|name: &str| Some(format!("<{name}>"))),
            _ => panic!("no template"),
        }
    }

    #[tokio::test]
    async fn the_read_cache_reads_the_store_only_on_a_miss() {
        let cache: ReadCache<u32, Arc<String>> = ReadCache::default();
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let load = |v: &'static str| {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(Ok::<_, ()>(Some(Arc::new(v.to_string()))))
        };
        let value = |got: Result<Option<Arc<String>>, ()>| got.unwrap().unwrap().to_string();
        assert_eq!(value(cache.get(1, || load("first")).await), "first");
        // A hit does not even start a read.
        assert_eq!(value(cache.get(1, || load("second")).await), "first");
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A change clears it: the next get reads again.
        cache.clear();
        assert_eq!(value(cache.get(1, || load("third")).await), "third");
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Nothing found is not cached.
        let missing = cache.get(2, || std::future::ready(Ok::<_, ()>(None))).await;
        assert_eq!(missing, Ok(None));
        let found = cache.get(2, || load("later")).await.unwrap();
        assert_eq!(found.as_deref().map(String::as_str), Some("later"));
    }

    #[test]
    fn a_prepared_action_follows_the_action_each_execution_carries() {
        let cache = PreparedActions::default();
        let a = AutomationId(1);
        let old = webhook(serde_json::json!({"v": "${artifact_version}"}));
        let first = cache.get(a, &old).unwrap();
        assert_eq!(
            rendered(&first),
            serde_json::json!({"v": "<artifact_version>"})
        );
        // The same action read back from a row (another copy) is the prepared one.
        let copy = Arc::new((*old).clone());
        assert!(Arc::ptr_eq(&first, &cache.get(a, &copy).unwrap()));
        // The automation's action changed: executions matched since carry the new one, and
        // those matched before still carry (and get) the old one.
        let new = webhook(serde_json::json!({"w": "${project_name}"}));
        assert_eq!(
            rendered(&cache.get(a, &new).unwrap()),
            serde_json::json!({"w": "<project_name>"})
        );
        assert_eq!(
            rendered(&cache.get(a, &old).unwrap()),
            serde_json::json!({"v": "<artifact_version>"})
        );
    }

    #[test]
    fn an_unreadable_action_or_payload_is_reported_not_prepared() {
        let cache = PreparedActions::default();
        let bad = Arc::new(serde_json::json!({"type": "NO_SUCH_ACTION"}));
        assert!(cache.get(AutomationId(1), &bad).is_err());
        // A payload that is no template (nested past the limit) is kept as its error.
        let deep = (0..200).fold(serde_json::json!("${artifact_version}"), |v, _| {
            serde_json::json!([v])
        });
        let p = cache.get(AutomationId(2), &webhook(deep)).unwrap();
        assert!(matches!(&p.template, Some(Err(e)) if e.contains("deeper than")));
    }

    #[tokio::test]
    async fn a_read_is_used_for_its_moment_only_and_not_across_a_clear() {
        let cache: ReadCache<u32, Arc<String>> = ReadCache::default();
        let load = |v: &str| std::future::ready(Ok::<_, ()>(Some(Arc::new(v.to_string()))));
        let value = |got: Result<Option<Arc<String>>, ()>| got.unwrap().unwrap().to_string();
        assert_eq!(value(cache.get(1, || load("old")).await), "old");
        assert_eq!(value(cache.get(1, || load("new")).await), "old");
        tokio::time::sleep(READ_TTL + Duration::from_millis(50)).await;
        assert_eq!(value(cache.get(1, || load("new")).await), "new");
        // A read that a change overtook is returned, not kept.
        let overtaken = cache.get(2, || {
            cache.clear();
            load("stale")
        });
        assert_eq!(value(overtaken.await), "stale");
        assert_eq!(value(cache.get(2, || load("fresh")).await), "fresh");
    }
}
