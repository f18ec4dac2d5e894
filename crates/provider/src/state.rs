//! What the daemon's tasks share: the `Provider` (configuration, chain client, runtime driver,
//! inventory and holds, the handle of the lease engine, recent bid decisions, the signer) and
//! the few actions every task takes on it (save and release holds, record a decision, sign
//! and submit). The tasks themselves live in `daemon.rs` (bidding, following the chain),
//! `leases.rs` (the lease engine, sole owner of the lease book) and `server.rs` (the manifest
//! service); none of them imports another's.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gridlease_client::{Client, ClientError, Receipt, TxBuilder};
use gridlease_types::{Address, Coin, Msg, OrderId};

use crate::api::{BidDecision, DecisionOutcome};
use crate::bidengine::BidContext;
use crate::config::Config;
use crate::driver::Driver;
use crate::error::ProviderError;
use crate::home::Home;
use crate::inventory::Inventory;
use crate::lease_handle::Leases;
use crate::reserve::{Hold, Reservations};
use crate::tls;

/// Recent bid decisions kept for `provider status`.
const DECISIONS_KEPT: usize = 200;

/// Everything the daemon's tasks share. The leases are not here but in the lease engine,
/// reached through `leases`.
#[derive(Debug)]
pub struct Provider {
    pub(crate) config: Config,
    pub(crate) home: Home,
    pub(crate) address: Address,
    pub(crate) client: Client,
    pub(crate) driver: Arc<dyn Driver>,
    pub(crate) inventory: Inventory,
    pub(crate) reservations: Mutex<Reservations>,
    pub(crate) leases: Leases,
    pub(crate) decisions: Mutex<VecDeque<BidDecision>>,
    pub(crate) bid_ctx: Mutex<BidContext>,
    pub(crate) bid_deposit: Coin,
    pub(crate) height: AtomicU64,
    pub(crate) node_connected: AtomicBool,
    pub(crate) tls: tls::CertBundle,
    pub(crate) signer: tokio::sync::Mutex<TxBuilder>,
    /// Serializes chain calls that decide on the same order.
    pub(crate) deciding: Mutex<std::collections::BTreeSet<OrderId>>,
}

/// Locks a std mutex, taking the data even if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn holds_path(home: &Home) -> PathBuf {
    home.state_dir().join("holds.json")
}

impl Provider {
    /// Writes the holds to disk (after every change), keyed by order id as it displays.
    pub fn save_holds(&self) {
        let holds: BTreeMap<String, Hold> =
            lock(&self.reservations).holds().map(|(k, h)| (k.to_string(), h.clone())).collect();
        let path = holds_path(&self.home);
        let written = serde_json::to_vec(&holds).map_err(|e| e.to_string()).and_then(|bytes| {
            crate::durable_file::write_durably(&path, &bytes, 0o600).map_err(|e| e.to_string())
        });
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "provider.save_holds failed");
        }
    }

    pub fn release(&self, order: &OrderId) {
        if lock(&self.reservations).release(order) {
            self.save_holds();
        }
    }

    pub(crate) fn record(
        &self,
        order: &OrderId,
        outcome: DecisionOutcome,
        detail: String,
        skip: Option<(crate::api::DeclineReason, Option<String>)>,
    ) {
        tracing::info!(order = %order, ?outcome, detail = %detail, "bid.decision");
        let (reason, suggestion) = match skip {
            Some((r, s)) => (Some(r), s),
            None => (None, None),
        };
        let mut d = lock(&self.decisions);
        d.push_back(BidDecision {
            order: order.to_string(),
            height: self.height.load(Ordering::Relaxed),
            outcome,
            detail,
            reason,
            suggestion,
        });
        while d.len() > DECISIONS_KEPT {
            d.pop_front();
        }
    }

    pub(crate) async fn resync_sequence(&self) -> Result<(), ClientError> {
        let seq = self.client.next_sequence(&self.address).await?;
        self.signer.lock().await.sequence = seq;
        Ok(())
    }

    /// Signs and submits `msgs` in one transaction and waits for its receipt. Resyncs the
    /// account sequence and retries once when the node refuses the sequence.
    pub async fn submit(&self, msgs: Vec<Msg>) -> Result<Receipt, ProviderError> {
        for attempt in 0..2 {
            let tx = self.signer.lock().await.build(msgs.clone());
            match self.client.submit(&tx, true).await {
                Ok(r) => {
                    return match r.receipt {
                        Some(receipt) => Ok(receipt),
                        None => Err(ProviderError::NotCommitted(r.hash)),
                    };
                }
                Err(ClientError::Refused { code, .. }) if attempt == 0 && code.is_sequence() => {
                    self.resync_sequence().await?;
                }
                Err(e) => {
                    // The sequence may now be ahead of the chain's: read it again.
                    let _ = self.resync_sequence().await;
                    return Err(e.into());
                }
            }
        }
        Err(ProviderError::SequenceRefused)
    }
}
