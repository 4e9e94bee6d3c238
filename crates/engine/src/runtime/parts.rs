//! [`DeliveryParts`]: what one delivery needs, shared by the dispatcher's deliveries and the
//! engine's own sends (integration tests): the store, the master key, the HTTP senders, the
//! read caches, Slack's pacer and the withdrawals. It runs nothing itself.

use std::sync::Arc;

use herald_store::Store;

use crate::delivery::http::{Egress, Sender};
use crate::delivery::slack::Pacer;
use crate::delivery::{
    Deliverer, DeliveryConfig, IntegrationCache, PreparedActions, SecretCache, Withdrawals,
};
use crate::secrets::MasterKey;

pub(super) struct DeliveryParts {
    pub(super) store: Arc<dyn Store>,
    pub(super) key: MasterKey,
    pub(super) config: DeliveryConfig,
    sender: Sender,
    /// Integration tests' sends, apart from deliveries: its connections are made on the
    /// caller's runtime, and would otherwise join the deliveries' pool.
    test_sender: Sender,
    pacer: Pacer,
    pub(super) integrations: IntegrationCache,
    prepared: PreparedActions,
    pub(super) secrets: SecretCache,
    pub(super) withdrawals: Withdrawals,
}

impl DeliveryParts {
    pub(super) fn new(store: Arc<dyn Store>, key: MasterKey, config: DeliveryConfig) -> Self {
        let egress = Egress {
            proxy: config.proxy.clone(),
            ..Egress::direct(config.allow.clone())
        };
        Self {
            store,
            key,
            sender: Sender::new(&egress, config.timeout),
            test_sender: Sender::new(&egress, config.timeout),
            config,
            pacer: Pacer::default(),
            integrations: IntegrationCache::default(),
            prepared: PreparedActions::default(),
            secrets: SecretCache::default(),
            withdrawals: Withdrawals::default(),
        }
    }

    /// What deliveries send through.
    pub(super) fn deliverer(&self) -> Deliverer<'_> {
        Deliverer {
            store: &*self.store,
            withdrawals: &self.withdrawals,
            prepared: &self.prepared,
            integrations: &self.integrations,
            secrets: &self.secrets,
            key: &self.key,
            sender: &self.sender,
            policy: &self.config.retry,
            slack: &self.config.slack,
            pacer: &self.pacer,
        }
    }

    /// What integration tests send through: as deliveries do, on connections of their own.
    pub(super) fn test_deliverer(&self) -> Deliverer<'_> {
        Deliverer {
            sender: &self.test_sender,
            ..self.deliverer()
        }
    }
}
