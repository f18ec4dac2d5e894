//! The daemon: follows the chain, bids, runs leases, serves tenants. Everything shares one
//! [`Provider`]; the tasks are the bid loop (event stream, catch-up after every reconnect),
//! the lease monitor (health, restarts, withdrawals) and the manifest service.
//!
//! What it knows survives a restart through `state/`: the holds of open bids and leases, and
//! one record per lease (its manifest and workload). The runtime keeps the workloads running
//! while the daemon is down; a restarted daemon re-adopts them. A provider fault (the node
//! unreachable, the daemon restarting) never closes a lease.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridlease_client::{
    AuditRecord, BidState, BlockEvents, Client, ClientError, Event, LeaseState, ListQuery,
    TxBuilder,
};
use gridlease_types::{BidId, DecCoin, Keypair, LeaseId, Msg, OrderId};

use crate::api::DecisionOutcome;
use crate::bidengine::{self, BidContext};
use crate::book::{self, LeaseBook};
use crate::config::{Config, ConfigError, DriverKind};
use crate::driver::Driver;
use crate::driver::exec::{ExecDriver, ExecSettings};
use crate::driver::podman::PodmanDriver;
use crate::error::ProviderError;
use crate::home::{Home, Running};
use crate::inventory::{self, GpuDetection, Inventory};
use crate::leases::{self, Leases};
use crate::reserve::{Capacity, Hold, Reservations};
use crate::state::{Provider, holds_path, lock};
use crate::tls::CertBundle;
use crate::{pricing, server};

/// Event types the bid loop follows.
const FOLLOWED: &[&str] = &[
    "order_opened",
    "order_stalled",
    "order_closed",
    "bid_closed",
    "lease_created",
    "lease_closed",
];

/// Reads the hardware: from the config where given, else from the host; GPUs from NVML, or
/// declared in the config when NVML finds none (or `skip_nvml`). Returns a note on the source.
pub fn detect_inventory(
    config: &Config,
    data_dir: &std::path::Path,
) -> Result<(Inventory, String), ProviderError> {
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

impl Provider {
    /// Opens everything the daemon needs, signing with `key` (the provider's account key);
    /// fails with one clear sentence when something is missing (config, certificate,
    /// registration, runtime).
    pub async fn open(
        home: Home,
        key: Keypair,
        tls: CertBundle,
    ) -> Result<Arc<Provider>, ProviderError> {
        let config = Config::load(&home.config_path())?;
        let address = key.address();
        let client = Client::new(&config.node);
        let status = client.status().await.map_err(|source| ProviderError::NodeUnreachable {
            node: config.node.clone(),
            source,
        })?;
        if client.provider(&address).await?.is_none() {
            return Err(ProviderError::NotRegistered(address));
        }
        let params = client.params().await?;
        // `Config::load` checked the deposit already.
        let bid_deposit = match config.bid_deposit().ok().flatten() {
            Some(c) => c,
            None => params.bid_deposit.clone(),
        };
        std::fs::create_dir_all(home.state_dir())
            .map_err(ProviderError::io("create", &home.state_dir()))?;
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
        let rates = config.rates().map_err(|e| ConfigError::Invalid {
            path: home.config_path().display().to_string(),
            field: e.field,
            message: e.message,
        })?;
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
        let unreadable_holds = |why: &dyn std::fmt::Display| ProviderError::HoldsUnreadable {
            path: holds_file.clone(),
            why: why.to_string(),
        };
        let saved_holds = match std::fs::read(&holds_file) {
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, Hold>>(&bytes)
                .map_err(|e| unreadable_holds(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(ProviderError::io("read", &holds_file)(e)),
        };
        for (k, h) in saved_holds {
            let order: OrderId = k.parse().map_err(|e| unreadable_holds(&e))?;
            if let Err(e) = reservations.restore(&order, h) {
                tracing::warn!(hold = %order, error = %e, "provider.restore_hold");
            }
        }
        let book::LoadedRecords { records: lease_records, unreadable } =
            book::load_records(&home.state_dir())?;
        let book = LeaseBook::new(lease_records, config.driver.port_range);
        // The chain's own fees and the key's sequence.
        let signer = TxBuilder::for_chain(&client, key).await?;
        let (leases, inbox) = Leases::channel();
        let provider = Arc::new(Provider {
            leases,
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
        leases::start(&provider, book, unreadable, inbox);
        provider.resync_sequence().await?;
        Ok(provider)
    }

    /// Decides on one order and bids when it matches.
    pub async fn consider_order(self: &Arc<Self>, order: OrderId, max_price: DecCoin) {
        if lock(&self.reservations).get(&order).is_some() || !lock(&self.deciding).insert(order) {
            return;
        }
        let outcome = self.bid_on(&order, &max_price).await;
        lock(&self.deciding).remove(&order);
        match outcome {
            Ok(detail) => self.record(&order, DecisionOutcome::Bid, detail, None),
            Err(Outcome::Skip(why)) => self.record(
                &order,
                DecisionOutcome::Skip,
                why.detail,
                Some((why.reason, why.suggestion)),
            ),
            Err(Outcome::Failed(why)) => {
                self.release(&order);
                self.record(&order, DecisionOutcome::Failed, why, None);
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
            .ok_or_else(|| Outcome::skip("the deployment no longer exists"))?;
        let group = record
            .groups
            .iter()
            .find(|g| g.id.gseq == order.gseq)
            .ok_or_else(|| Outcome::skip("the order's group does not exist"))?;
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
            bidengine::within_max(p, max_price).map_err(|s| Outcome::Failed(s.detail))?;
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
    pub async fn reconcile(self: &Arc<Self>) -> Result<(), ClientError> {
        let mine = ListQuery { provider: Some(self.address), ..Default::default() };
        let bids = self.client.bids(&mine).await?;
        let leases_on_chain = self.client.leases(&mine).await?;
        // Active leases of this provider, by their order (what holds are keyed by).
        let active: BTreeMap<OrderId, LeaseId> = leases_on_chain
            .iter()
            .filter(|l| l.state == LeaseState::Active)
            .map(|l| (l.id.order, l.id))
            .collect();
        for lease in active.values() {
            self.leases.adopt(*lease).await;
        }
        for r in self.leases.list().await {
            if active.get(&r.id.order) != Some(&r.id) {
                self.leases.close(r.id, "the lease is closed on chain").await;
            }
        }
        let open_bids: std::collections::BTreeSet<OrderId> =
            bids.iter().filter(|b| b.state == BidState::Open).map(|b| b.id.order).collect();
        let held: Vec<OrderId> = lock(&self.reservations).holds().map(|(k, _)| *k).collect();
        for order in held {
            if !open_bids.contains(&order)
                && !active.contains_key(&order)
                && !lock(&self.deciding).contains(&order)
            {
                self.release(&order);
            }
        }
        let orders = self
            .client
            .orders(&ListQuery { state: Some("open".into()), ..Default::default() })
            .await?;
        for o in orders {
            if !open_bids.contains(&o.id) && !active.contains_key(&o.id) {
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
                Event::OrderStalled { id, .. } => {
                    // An auction that ended without a winner takes new bids (and a bid that
                    // lost in this block may have given back what this order needs).
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        let q = ListQuery {
                            owner: Some(id.owner),
                            state: Some("open".into()),
                            ..Default::default()
                        };
                        if let Ok(orders) = me.client.orders(&q).await
                            && let Some(o) = orders.into_iter().find(|o| o.id == id)
                        {
                            me.consider_order(id, o.max_price).await;
                        }
                    });
                }
                Event::BidClosed { id, .. } => {
                    // A bid that lost: its hold goes. One that won is the lease's now.
                    if let Some(id) = self.my_bid(id)
                        && self.leases.get(id).await.is_none()
                    {
                        self.release(&id.order);
                    }
                }
                Event::OrderClosed { id, .. } => {
                    let lease = LeaseId { order: id, provider: self.address };
                    if self.leases.get(lease).await.is_none() && !lock(&self.deciding).contains(&id)
                    {
                        self.release(&id);
                    }
                }
                Event::LeaseCreated { id, .. } => {
                    if let Some(id) = self.my_bid(id) {
                        self.leases.adopt(id).await;
                    }
                }
                Event::LeaseClosed { id, reason } => {
                    if let Some(id) = self.my_bid(id) {
                        self.leases.close(id, &format!("lease closed on chain: {reason}")).await;
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
    Skip(bidengine::Skip),
    Failed(String),
}

impl Outcome {
    fn skip(detail: &str) -> Outcome {
        Outcome::Skip(bidengine::Skip {
            reason: crate::api::DeclineReason::Other,
            detail: detail.to_owned(),
            suggestion: None,
        })
    }
}

/// Runs the daemon until SIGINT or SIGTERM. Workloads keep running after it stops, unless
/// `stop_workloads` (they are then started again at the next start).
/// `tls` is the manifest service's certificate with its private key.
pub async fn run(
    home: Home,
    key: Keypair,
    tls: CertBundle,
    stop_workloads: bool,
) -> Result<(), ProviderError> {
    let provider = Provider::open(home, key, tls).await?;
    provider.leases.readopt().await;
    let addr = provider.config.listen.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ProviderError::Listen { addr: addr.clone(), source })?;
    let local = listener.local_addr().map_err(|source| ProviderError::Listen { addr, source })?;
    println!("provider {} listening on https://{local}", provider.address);
    let running =
        Running { pid: std::process::id(), address: provider.address, listen: local.to_string() };
    let running_path = provider.home.running_path();
    let bytes = serde_json::to_vec_pretty(&running).unwrap_or_default();
    crate::durable_file::write_durably(&running_path, &bytes, 0o600)?;
    let server = tokio::spawn(server::serve(Arc::clone(&provider), listener));
    let follower = tokio::spawn(Arc::clone(&provider).follow_chain());
    let monitor = tokio::spawn(leases::monitor(Arc::clone(&provider)));
    let audits = tokio::spawn(Arc::clone(&provider).refresh_audits());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ProviderError::Signal)?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        r = server => {
            r.map_err(|e| ProviderError::ServiceStopped(e.to_string()))??;
        }
    }
    follower.abort();
    monitor.abort();
    audits.abort();
    let _ = std::fs::remove_file(&running_path);
    provider.save_holds();
    if stop_workloads {
        provider.leases.stop_all().await;
        println!("provider stopped with its workloads; they start again at the next start");
    } else {
        println!("provider stopped; leases keep running and are re-adopted at the next start");
    }
    Ok(())
}
