//! The daemon: follows the chain, bids, runs leases, serves tenants. Everything shares one
//! [`Provider`]; the tasks are the bid loop (event stream, catch-up after every reconnect),
//! the lease monitor (health, restarts, withdrawals) and the manifest service.
//!
//! What it knows survives a restart through `state/`: the holds of open bids and leases, and
//! one record per lease (its manifest and workload). The runtime keeps the workloads running
//! while the daemon is down; a restarted daemon re-adopts them. A provider fault (the node
//! unreachable, the daemon restarting) never closes a lease.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use gridlease_client::{
    AuditRecord, BidState, BlockEvents, Client, ClientError, Event, LeaseState, ListQuery, Receipt,
    TxBuilder,
};
use gridlease_types::{Address, BidId, Coin, DecCoin, Keypair, Msg, OrderId};

use crate::api::{BidDecision, DecisionOutcome};
use crate::bidengine::{self, BidContext};
use crate::config::{Config, DriverKind};
use crate::driver::Driver;
use crate::driver::exec::{ExecDriver, ExecSettings};
use crate::driver::podman::PodmanDriver;
use crate::home::Home;
use crate::inventory::{self, GpuDetection, Inventory};
use crate::leases::{self, LeaseRecord};
use crate::reserve::{Capacity, Hold, Reservations};
use crate::{pricing, server, tls};

/// Event types the bid loop follows.
const FOLLOWED: &[&str] =
    &["order_opened", "order_closed", "bid_closed", "lease_created", "lease_closed"];

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
    /// Per lease, the right to act on its workload (see [`leases::lease_turn`]).
    pub lease_turns: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub decisions: Mutex<VecDeque<BidDecision>>,
    pub ports: Mutex<leases::PortPool>,
    /// Lease records found at start that cannot be read, with why: while there is any, the
    /// daemon removes nothing it finds running without a record.
    pub unreadable_records: Vec<(PathBuf, String)>,
    pub bid_ctx: Mutex<BidContext>,
    pub bid_deposit: Coin,
    pub height: AtomicU64,
    pub node_connected: AtomicBool,
    pub tls: tls::CertBundle,
    signer: tokio::sync::Mutex<TxBuilder>,
    /// Serializes chain calls that decide on the same order.
    deciding: Mutex<std::collections::BTreeSet<String>>,
}

/// Locks a std mutex, taking the data even if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads the hardware: from the config where given, else from the host; GPUs from NVML, or
/// declared in the config when NVML finds none (or `skip_nvml`). Returns a note on the source.
pub fn detect_inventory(
    config: &Config,
    data_dir: &std::path::Path,
) -> anyhow::Result<(Inventory, String)> {
    let host = inventory::detect_host(data_dir)?;
    let c = &config.inventory;
    let detection = if c.skip_nvml {
        GpuDetection::NoDriver("NVML skipped by inventory.skip_nvml".into())
    } else {
        inventory::detect_gpus()
    };
    let selection = inventory::select_gpus(detection, &c.gpus)?;
    let note = match &selection.note {
        Some(n) => format!("{:?}: {n}", selection.source),
        None => format!("{:?}", selection.source),
    };
    Ok((
        Inventory {
            cpu_millis: c.cpu_millis.unwrap_or(host.cpu_millis),
            memory_bytes: c.memory_bytes.unwrap_or(host.memory_bytes),
            storage_bytes: c.storage_bytes.unwrap_or(host.storage_bytes),
            gpus: selection.gpus,
        },
        note,
    ))
}

fn holds_path(home: &Home) -> PathBuf {
    home.state_dir().join("holds.json")
}

impl Provider {
    /// Opens everything the daemon needs, signing with `key` (the provider's account key);
    /// fails with one clear sentence when something is missing (config, certificate,
    /// registration, runtime).
    pub async fn open(home: Home, key: Keypair) -> anyhow::Result<Arc<Provider>> {
        let config = Config::load(&home.config_path())?;
        let tls = home.load_tls()?;
        let address = key.address();
        let client = Client::new(&config.node);
        let status = client
            .status()
            .await
            .with_context(|| format!("cannot reach the node at {}", config.node))?;
        if client.provider(&address).await?.is_none() {
            anyhow::bail!(
                "{address} is not a registered provider: run `gridlease provider register` first"
            );
        }
        let params = client.params().await?;
        let bid_deposit = match config.bid_deposit().map_err(|e| anyhow::anyhow!(e))? {
            Some(c) => c,
            None => params.bid_deposit.clone(),
        };
        std::fs::create_dir_all(home.state_dir())?;
        let (inventory, source) = detect_inventory(&config, &home.dir)?;
        tracing::info!(gpus = inventory.gpus.len(), %source, "provider.inventory");
        let driver: Arc<dyn Driver> = match config.driver.kind {
            DriverKind::Podman => Arc::new(
                PodmanDriver::connect(&config.driver.podman_socket)
                    .await?
                    .with_pids_limit(config.lease.pids_limit)?
                    .with_volume_dir(
                        &config
                            .driver
                            .volume_dir
                            .clone()
                            .unwrap_or_else(|| home.dir.join("volumes")),
                    )?,
            ),
            DriverKind::Exec => Arc::new(ExecDriver::new(
                &home.exec_dir(),
                ExecSettings {
                    enabled_for_development: config.driver.allow_exec_for_development,
                    images: config.driver.exec_images.clone(),
                    allowed_programs: config.driver.exec_allowed_programs.clone(),
                },
            )?),
        };
        let rates = config.rates().map_err(|(f, m)| anyhow::anyhow!("{f}: {m}"))?;
        let audits = client.provider(&address).await?.map(|p| p.audits).unwrap_or_default();
        let bid_ctx = BidContext {
            attributes: config.attribute_list(),
            audits,
            storage_classes: config.inventory.storage_classes.clone(),
            rates,
        };
        let mut reservations = Reservations::new(Capacity {
            cpu_millis: inventory.cpu_millis,
            memory_bytes: inventory.memory_bytes,
            storage_bytes: inventory.storage_bytes,
            gpus: inventory.gpus.clone(),
        });
        let holds_file = holds_path(&home);
        let saved_holds = match std::fs::read(&holds_file) {
            Ok(bytes) => {
                Some(serde_json::from_slice::<BTreeMap<String, Hold>>(&bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "{} cannot be read ({e}): without it this provider could promise the \
                         resources of its running leases twice; restore it, or delete it to \
                         start without holds",
                        holds_file.display()
                    )
                })?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("cannot read {}: {e}", holds_file.display()),
        };
        if let Some(saved) = saved_holds {
            for (k, h) in saved {
                if let Err(e) = reservations.restore(&k, h) {
                    tracing::warn!(hold = %k, error = %e, "provider.restore_hold");
                }
            }
        }
        let leases::LoadedRecords { records: lease_records, unreadable } =
            leases::load_records(&home.state_dir())?;
        let ports = leases::PortPool::new(config.driver.port_range, &lease_records);
        // The chain's own fees and the key's sequence.
        let signer = TxBuilder::for_chain(&client, key).await?;
        let provider = Arc::new(Provider {
            ports: Mutex::new(ports),
            leases: Mutex::new(lease_records),
            lease_turns: Mutex::new(BTreeMap::new()),
            unreadable_records: unreadable,
            reservations: Mutex::new(reservations),
            decisions: Mutex::new(VecDeque::new()),
            bid_ctx: Mutex::new(bid_ctx),
            height: AtomicU64::new(status.latest_height),
            node_connected: AtomicBool::new(true),
            signer: tokio::sync::Mutex::new(signer),
            deciding: Mutex::new(Default::default()),
            config,
            home,
            address,
            client,
            driver,
            inventory,
            bid_deposit,
            tls,
        });
        provider.resync_sequence().await?;
        Ok(provider)
    }

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

    fn record(&self, order: &OrderId, outcome: DecisionOutcome, detail: String) {
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

    async fn resync_sequence(&self) -> Result<(), ClientError> {
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

    /// Decides on one order and bids when it matches.
    pub async fn consider_order(self: &Arc<Self>, order: OrderId, max_price: DecCoin) {
        let key = bidengine::hold_key(&order);
        if lock(&self.reservations).get(&key).is_some() || !lock(&self.deciding).insert(key.clone())
        {
            return;
        }
        let outcome = self.bid_on(&order, &max_price).await;
        lock(&self.deciding).remove(&key);
        match outcome {
            Ok(detail) => self.record(&order, DecisionOutcome::Bid, detail),
            Err(Outcome::Skip(why)) => self.record(&order, DecisionOutcome::Skip, why),
            Err(Outcome::Failed(why)) => {
                self.release(&key);
                self.record(&order, DecisionOutcome::Failed, why);
            }
        }
    }

    async fn bid_on(&self, order: &OrderId, max_price: &DecCoin) -> Result<String, Outcome> {
        let failed = |e: &dyn std::fmt::Display| Outcome::Failed(e.to_string());
        let record = self
            .client
            .deployment(&order.owner, order.dseq)
            .await
            .map_err(|e| failed(&e))?
            .ok_or_else(|| Outcome::Skip("the deployment no longer exists".into()))?;
        let group = record
            .groups
            .iter()
            .find(|g| g.id.gseq == order.gseq)
            .ok_or_else(|| Outcome::Skip("the order's group does not exist".into()))?;
        let matched = {
            let ctx = lock(&self.bid_ctx).clone();
            let mut r = lock(&self.reservations);
            bidengine::decide(&ctx, &mut r, order, max_price, &group.spec).map_err(Outcome::Skip)?
        };
        self.save_holds();
        let mut price = matched.price.clone();
        if let Some(script) = &self.config.pricing.script {
            let input = pricing::script_input(&group.spec, &matched.offer, price.denom.as_str());
            let timeout = Duration::from_millis(self.config.pricing.script_timeout_ms);
            let p = pricing::run_script(script, &input, timeout).await.map_err(|e| failed(&e))?;
            bidengine::within_max(p, max_price).map_err(Outcome::Failed)?;
            price.amount = p;
        }
        let gpus: Vec<String> = matched
            .offer
            .iter()
            .filter_map(|o| {
                o.gpu.as_ref().map(|g| format!("{}x {}/{}", g.units * o.count, g.vendor, g.model))
            })
            .collect();
        let msg = Msg::CreateBid {
            order: *order,
            price: price.clone(),
            offer: matched.offer,
            deposit: self.bid_deposit.clone(),
        };
        let receipt = self.submit(vec![msg]).await.map_err(|e| failed(&e))?;
        if !receipt.is_ok() {
            return Err(Outcome::Failed(format!(
                "bid refused ({}): {}",
                receipt.code, receipt.log
            )));
        }
        Ok(format!(
            "bid {}{} per block{}",
            price.amount,
            price.denom,
            if gpus.is_empty() { String::new() } else { format!(" with {}", gpus.join(", ")) }
        ))
    }

    /// Catches up with the chain after (re)connecting: bids that closed while we were away
    /// give back their holds, leases that started or ended are taken in, and every open order
    /// we have not bid on is considered.
    pub async fn reconcile(self: &Arc<Self>) -> anyhow::Result<()> {
        let mine = ListQuery { provider: Some(self.address), ..Default::default() };
        let bids = self.client.bids(&mine).await?;
        let leases_on_chain = self.client.leases(&mine).await?;
        let active: BTreeMap<String, &gridlease_client::Lease> = leases_on_chain
            .iter()
            .filter(|l| l.state == LeaseState::Active)
            .map(|l| (bidengine::hold_key(&l.id.order), l))
            .collect();
        for (key, lease) in &active {
            leases::adopt_lease(self, lease.id, key).await;
        }
        let known: Vec<String> = lock(&self.leases).keys().cloned().collect();
        for key in known {
            if !active.contains_key(&key) {
                leases::close_local(self, &key, "the lease is closed on chain").await;
            }
        }
        let open_bids: std::collections::BTreeSet<String> = bids
            .iter()
            .filter(|b| b.state == BidState::Open)
            .map(|b| bidengine::hold_key(&b.id.order))
            .collect();
        let held: Vec<String> = lock(&self.reservations).holds().map(|(k, _)| k.clone()).collect();
        for key in held {
            if !open_bids.contains(&key)
                && !active.contains_key(&key)
                && !lock(&self.deciding).contains(&key)
            {
                self.release(&key);
            }
        }
        let orders = self
            .client
            .orders(&ListQuery { state: Some("open".into()), ..Default::default() })
            .await?;
        for o in orders {
            let key = bidengine::hold_key(&o.id);
            if !open_bids.contains(&key) && !active.contains_key(&key) {
                self.consider_order(o.id, o.max_price).await;
            }
        }
        Ok(())
    }

    async fn on_block(self: &Arc<Self>, block: BlockEvents) {
        self.height.store(block.height, Ordering::Relaxed);
        for e in block.events {
            match e.event {
                Event::OrderOpened { id, max_price, .. } => {
                    let me = Arc::clone(self);
                    tokio::spawn(async move { me.consider_order(id, max_price).await });
                }
                Event::BidClosed { id, .. } => {
                    if let Some(id) = self.my_bid(id) {
                        let key = bidengine::hold_key(&id.order);
                        if !lock(&self.leases).contains_key(&key) {
                            self.release(&key);
                        }
                    }
                }
                Event::OrderClosed { id, .. } => {
                    let key = bidengine::hold_key(&id);
                    if !lock(&self.leases).contains_key(&key)
                        && !lock(&self.deciding).contains(&key)
                    {
                        self.release(&key);
                    }
                }
                Event::LeaseCreated { id, .. } => {
                    if let Some(id) = self.my_bid(id) {
                        let key = bidengine::hold_key(&id.order);
                        leases::adopt_lease(self, id, &key).await;
                    }
                }
                Event::LeaseClosed { id, reason } => {
                    if let Some(id) = self.my_bid(id) {
                        let key = bidengine::hold_key(&id.order);
                        leases::close_local(
                            self,
                            &key,
                            &format!("lease closed on chain: {reason}"),
                        )
                        .await;
                    }
                }
                _ => {}
            }
        }
        let every = self.config.lease.withdraw_every_blocks;
        if block.height.is_multiple_of(every) {
            let me = Arc::clone(self);
            tokio::spawn(async move { leases::withdraw_all(&me).await });
        }
    }

    fn my_bid(&self, id: BidId) -> Option<BidId> {
        (id.provider == self.address).then_some(id)
    }

    /// Follows the chain forever, reconnecting with a growing pause (at most 5 s).
    pub async fn follow_chain(self: Arc<Self>) {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.client.subscribe(FOLLOWED).await {
                Ok(mut stream) => {
                    self.node_connected.store(true, Ordering::Relaxed);
                    pause = Duration::from_millis(200);
                    let me = Arc::clone(&self);
                    let catch_up = tokio::spawn(async move {
                        if let Err(e) = me.reconcile().await {
                            tracing::warn!(error = %e, "provider.reconcile failed");
                        }
                    });
                    loop {
                        match stream.next_block().await {
                            Ok(Some(block)) => self.on_block(block).await,
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "provider.events broke");
                                break;
                            }
                        }
                    }
                    catch_up.abort();
                }
                Err(e) => tracing::warn!(error = %e, "provider.events cannot subscribe"),
            }
            self.node_connected.store(false, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Refreshes the audits tenants' `signedBy` checks need (they change rarely).
    async fn refresh_audits(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(30)).await;
            if let Ok(Some(p)) = self.client.provider(&self.address).await {
                let audits: Vec<AuditRecord> = p.audits;
                lock(&self.bid_ctx).audits = audits;
            }
        }
    }
}

enum Outcome {
    Skip(String),
    Failed(String),
}

/// Runs the daemon until SIGINT or SIGTERM. Workloads keep running after it stops, unless
/// `stop_workloads` (they are then started again at the next start).
pub async fn run(home: Home, key: Keypair, stop_workloads: bool) -> anyhow::Result<()> {
    let provider = Provider::open(home, key).await?;
    leases::readopt(&provider).await;
    let listener = tokio::net::TcpListener::bind(&provider.config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", provider.config.listen))?;
    let local = listener.local_addr()?;
    println!("provider {} listening on https://{local}", provider.address);
    let server = tokio::spawn(server::serve(Arc::clone(&provider), listener));
    let follower = tokio::spawn(Arc::clone(&provider).follow_chain());
    let monitor = tokio::spawn(leases::monitor(Arc::clone(&provider)));
    let audits = tokio::spawn(Arc::clone(&provider).refresh_audits());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        r = server => { r.context("manifest service stopped")??; }
    }
    follower.abort();
    monitor.abort();
    audits.abort();
    provider.save_holds();
    if stop_workloads {
        leases::stop_all(&provider).await;
        println!("provider stopped with its workloads; they start again at the next start");
    } else {
        println!("provider stopped; leases keep running and are re-adopted at the next start");
    }
    Ok(())
}

#[cfg(test)]
impl Provider {
    /// A provider over `driver` with its home in `dir` and no node behind it (calls to the
    /// chain fail): for tests of what the daemon does with its own state.
    pub(crate) fn for_tests(driver: Arc<dyn Driver>, dir: &std::path::Path) -> Arc<Provider> {
        let home = Home::new(dir);
        std::fs::write(
            home.config_path(),
            crate::config::template("http://127.0.0.1:9", 8443, DriverKind::Podman),
        )
        .expect("write the test config");
        let config = Config::load(&home.config_path()).expect("the template loads");
        let key = Keypair::from_secret([7; 32]);
        let address = key.address();
        let inventory = Inventory {
            cpu_millis: 8_000,
            memory_bytes: 16 << 30,
            storage_bytes: 100 << 30,
            gpus: vec![],
        };
        let capacity = Capacity {
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
            ports: Mutex::new(leases::PortPool::new(config.driver.port_range, &BTreeMap::new())),
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
