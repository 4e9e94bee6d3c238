//! [`Leases`]: the heartbeat that renews the leases of everything this process holds (as the
//! [`Ledger`] lists it), so a live process keeps its work however long it takes, and a dead
//! one's expires soon and is claimed by another.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_store::Store;
use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;

pub(super) struct Leases {
    pub(super) store: Arc<dyn Store>,
    pub(super) ledger: Arc<Ledger>,
    /// How long a lease lasts from each renewal.
    pub(super) lease: Duration,
}

impl Leases {
    /// Renews every lease three times per lease, until `shutdown` and nothing is held.
    pub(super) async fn run(self, shutdown: CancellationToken) {
        let every = (self.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => {}
            }
            let ids = self.ledger.leased();
            if !ids.is_empty() {
                let until = Utc::now() + chrono::Duration::from_std(self.lease).unwrap_or_default();
                if let Err(e) = self.store.renew_leases(&ids, until).await {
                    tracing::error!(error = %e, "could not renew delivery leases");
                }
            }
            if shutdown.is_cancelled() && ids.is_empty() {
                return;
            }
        }
    }
}
