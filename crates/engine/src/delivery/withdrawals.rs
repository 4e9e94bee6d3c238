//! Executions to leave alone: what this process withdrew lately (see [`Withdrawals`]).

use std::collections::HashMap;
use std::time::Duration;

use herald_domain::ids::AutomationId;
use herald_store::ClaimedExecution;

/// What this process has withdrawn lately: automations deleted or disabled, executions
/// cancelled. The database already says so; this tells the executions this process claimed
/// before (queued in memory, leased) not to start. Entries go after an hour, by when anything
/// claimed before them has long been sent or given back. (A withdrawn integration needs no
/// entry: every delivery reads its integration, from a cache a change empties.) Not a cache:
/// an entry must hold for its hour, so nothing may evict it sooner.
#[derive(Default)]
pub struct Withdrawals {
    any: std::sync::atomic::AtomicBool,
    since: parking_lot::Mutex<HashMap<Withdrawn, std::time::Instant>>,
}

/// One thing withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Withdrawn {
    Automation(AutomationId),
    Execution(herald_domain::ids::ExecutionId),
}

impl Withdrawals {
    const KEEP: Duration = Duration::from_secs(3600);

    pub fn add(&self, what: Withdrawn) {
        let mut since = self.since.lock();
        since.retain(|_, at| at.elapsed() < Self::KEEP);
        since.insert(what, std::time::Instant::now());
        self.any.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn remove(&self, what: Withdrawn) {
        let mut since = self.since.lock();
        since.remove(&what);
        self.any
            .store(!since.is_empty(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Why `x` must not start, if something it belongs to was withdrawn.
    pub(super) fn covering(&self, x: &ClaimedExecution) -> Option<String> {
        if !self.any.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let since = self.since.lock();
        let has = |w| since.contains_key(&w);
        if has(Withdrawn::Execution(x.id)) {
            Some("cancelled by a user".into())
        } else if has(Withdrawn::Automation(x.automation_id)) {
            Some(format!(
                "cancelled: automation {} was deleted or disabled",
                x.automation_id
            ))
        } else {
            None
        }
    }
}
