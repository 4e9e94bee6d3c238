//! [`Retention`]: deletes execution history older than the retention period, hourly. It
//! shares nothing with the other parts but the store.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_store::Store;
use tokio_util::sync::CancellationToken;

/// How often old history is deleted.
const EVERY: Duration = Duration::from_secs(3600);

pub(super) struct Retention {
    pub(super) store: Arc<dyn Store>,
    /// How long finished executions are kept.
    pub(super) keep: Duration,
}

impl Retention {
    pub(super) async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let cutoff = Utc::now() - chrono::Duration::from_std(self.keep).unwrap_or_default();
            match self.store.purge_executions(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    executions = n,
                    "deleted execution history past its retention"
                ),
                Err(e) => tracing::error!(error = %e, "could not delete old execution history"),
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
}
