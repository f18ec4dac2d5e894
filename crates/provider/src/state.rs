//! What the daemon's tasks share: the `Provider` (configuration, chain client, runtime driver,
//! inventory and holds, the lease book, recent bid decisions, the signer) and the few actions
//! every task takes on it (save and release holds, record a decision, sign and submit). The
//! tasks themselves live in `daemon.rs` (bidding, following the chain), `leases.rs` (the
//! lease lifecycle) and `server.rs` (the manifest service); none of them imports another's.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gridlease_client::{Client, ClientError, Receipt, TxBuilder};
use gridlease_types::{Address, Coin, Msg, OrderId};

use crate::api::{BidDecision, DecisionOutcome};
use crate::bidengine::BidContext;
use crate::book::{LeaseRecord, PortPool};
use crate::config::Config;
use crate::driver::Driver;
use crate::home::Home;
use crate::inventory::Inventory;
use crate::reserve::{Hold, Reservations};
use crate::tls;

/// Recent bid decisions kept for `provider status`.
const DECISIONS_KEPT: usize = 200;

/// Everything the daemon's tasks share.
#[derive(Debug)]
pub struct Provider {
    pub config: Config,
    pub home: Home,
    pub address: Address,
    pub client: Client,
    pub driver: Arc<dyn Driver>,
    pub inventory: Inventory,
    pub reservations: Mutex<Reservations>,
    pub leases: Mutex<BTreeMap<String, LeaseRecord>>,
    /// Per lease, the right to act on its workload (see `leases::lease_turn`).
    pub lease_turns: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub decisions: Mutex<VecDeque<BidDecision>>,
    pub ports: Mutex<PortPool>,
    /// Lease records found at start that cannot be read, with why: while there is any, the
    /// daemon removes nothing it finds running without a record.
    pub unreadable_records: Vec<(PathBuf, String)>,
    pub bid_ctx: Mutex<BidContext>,
    pub bid_deposit: Coin,
    pub height: AtomicU64,
    pub node_connected: AtomicBool,
    pub tls: tls::CertBundle,
    pub(crate) signer: tokio::sync::Mutex<TxBuilder>,
    /// Serializes chain calls that decide on the same order.
    pub(crate) deciding: Mutex<std::collections::BTreeSet<String>>,
}

/// Locks a std mutex, taking the data even if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn holds_path(home: &Home) -> PathBuf {
    home.state_dir().join("holds.json")
}

impl Provider {
    /// Writes the holds to disk (after every change).
    pub fn save_holds(&self) {
        let holds: BTreeMap<String, Hold> =
            lock(&self.reservations).holds().map(|(k, h)| (k.clone(), h.clone())).collect();
        let path = holds_path(&self.home);
        let written = serde_json::to_vec(&holds).map_err(|e| e.to_string()).and_then(|bytes| {
            crate::durable_file::write_durably(&path, &bytes, 0o600).map_err(|e| e.to_string())
        });
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "provider.save_holds failed");
        }
    }

    pub fn release(&self, key: &str) {
        if lock(&self.reservations).release(key) {
            self.save_holds();
        }
    }

    pub(crate) fn record(&self, order: &OrderId, outcome: DecisionOutcome, detail: String) {
        tracing::info!(order = %order, ?outcome, detail = %detail, "bid.decision");
        let mut d = lock(&self.decisions);
        d.push_back(BidDecision {
            order: order.to_string(),
            height: self.height.load(Ordering::Relaxed),
            outcome,
            detail,
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
    pub async fn submit(&self, msgs: Vec<Msg>) -> anyhow::Result<Receipt> {
        for attempt in 0..2 {
            let tx = self.signer.lock().await.build(msgs.clone());
            match self.client.submit(&tx, true).await {
                Ok(r) => {
                    return match r.receipt {
                        Some(receipt) => Ok(receipt),
                        None => anyhow::bail!("transaction {} was not committed in time", r.hash),
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
        anyhow::bail!("the node kept refusing the account sequence")
    }
}

#[cfg(test)]
impl Provider {
    /// A provider over `driver` with its home in `dir` and no node behind it (calls to the
    /// chain fail): for tests of what the daemon does with its own state.
    pub(crate) fn for_tests(driver: Arc<dyn Driver>, dir: &std::path::Path) -> Arc<Provider> {
        let home = Home::new(dir);
        std::fs::write(
            home.config_path(),
            crate::config::template("http://127.0.0.1:9", 8443, crate::config::DriverKind::Podman),
        )
        .expect("write the test config");
        let config = Config::load(&home.config_path()).expect("the template loads");
        let key = gridlease_types::Keypair::from_secret([7; 32]);
        let address = key.address();
        let inventory = Inventory {
            cpu_millis: 8_000,
            memory_bytes: 16 << 30,
            storage_bytes: 100 << 30,
            gpus: vec![],
        };
        let capacity = crate::reserve::Capacity {
            cpu_millis: inventory.cpu_millis,
            memory_bytes: inventory.memory_bytes,
            storage_bytes: inventory.storage_bytes,
            gpus: vec![],
        };
        let rates = config.rates().expect("the template's rates");
        let denom = rates.denom.clone();
        let bid_ctx =
            BidContext { attributes: vec![], audits: vec![], storage_classes: vec![], rates };
        let tls = tls::generate(&address, &["localhost".to_owned()]).expect("a certificate");
        let fee = Coin::new(0, &denom);
        let signer = TxBuilder {
            key,
            chain_id: "test".into(),
            sequence: 0,
            fee: fee.clone(),
            fees: Default::default(),
        };
        Arc::new(Provider {
            ports: Mutex::new(PortPool::new(config.driver.port_range, &BTreeMap::new())),
            leases: Mutex::new(BTreeMap::new()),
            lease_turns: Mutex::new(BTreeMap::new()),
            unreadable_records: Vec::new(),
            reservations: Mutex::new(Reservations::new(capacity)),
            decisions: Mutex::new(VecDeque::new()),
            bid_ctx: Mutex::new(bid_ctx),
            height: AtomicU64::new(1),
            node_connected: AtomicBool::new(false),
            signer: tokio::sync::Mutex::new(signer),
            deciding: Mutex::new(Default::default()),
            client: Client::new(&config.node),
            config,
            home,
            address,
            driver,
            inventory,
            bid_deposit: fee,
            tls,
        })
    }
}
