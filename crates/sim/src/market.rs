//! A seeded simulation of the whole market over days of chain time, at scales that real
//! processes on one machine cannot reach: providers that go down and come back, tenants whose
//! deployments ask for replicas on distinct providers, the tenants' monitors reporting on chain,
//! auctions, failovers and escrow, all through the real ledger, block by block.
//!
//! The ledger decides everything it decides on a real chain (auctions, lease down and up,
//! failover, payments, penalties); the simulation plays the world outside it: when a provider
//! is up (the truth), what the monitors see and report, which providers bid, and when a
//! workload serves after its lease starts. It measures what the tenants saw from the truth,
//! not from the chain: a deployment is up while at least one of its replicas serves.
//!
//! One seed gives one run: every choice comes from a ChaCha stream seeded by it, every
//! collection iterates in a fixed order, and the ledger is deterministic, so the report is the
//! same bytes on every machine.

use std::collections::{BTreeMap, BTreeSet};

use gridlease_ledger::Params;
use gridlease_ledger::state::CloseReason;
use gridlease_ledger::{
    BlockContext, Event, Genesis, GenesisBalance, MemState, ReceiptCode, query,
};
use gridlease_types::amount::DEC_ONE;
use gridlease_types::msg::{HealthReport, MAX_HEALTH_REPORTS, ProviderInfo};
use gridlease_types::tx::MAX_MSGS;
use gridlease_types::{
    Address, BidId, BidPolicy, CheckedTx, Coin, DecAmount, DecCoin, Denom, GroupSpec, Keypair, Msg,
    OrderId, TxBody,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use serde::Serialize;

use crate::{CHAIN_ID, offer_for, one_gpu_group, ugrid, uusdc};

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketConfig {
    pub seed: u64,
    pub providers: usize,
    pub deployments: usize,
    pub days: u32,
    /// Simulated seconds per block (the node's default block time is 1 s).
    pub block_seconds: u64,
    /// Replicas of each deployment, each on a distinct provider.
    pub replicas: u32,
    /// Share of the time each provider is up, on average (0 < uptime < 1).
    pub provider_uptime: f64,
    /// Each provider's own uptime is drawn uniformly within this much of `provider_uptime`
    /// (0: all alike), so that some providers are more reliable than others.
    pub uptime_spread: f64,
    /// Mean length of a provider's outage; outages and up spells are exponentially distributed.
    pub mean_outage_minutes: f64,
    /// The chain's `failover_grace_blocks`.
    pub grace_blocks: u64,
    /// The chain's `bid_window`.
    pub bid_window: u64,
    /// The chain's `failover_exclusion_blocks`.
    pub exclusion_blocks: u64,
    /// How often the tenants' monitors probe each lease.
    pub probe_seconds: u64,
    /// From a lease's start (or its provider's return) to its workload serving.
    pub startup_seconds: u64,
    /// Providers that bid on each order (chosen at random among those able to).
    pub bidders_per_order: usize,
    /// How the deployments' auctions pick their winners.
    pub auction: BidPolicy,
}

impl Default for MarketConfig {
    fn default() -> Self {
        let devnet = Params::devnet();
        MarketConfig {
            seed: 1,
            providers: 1_000,
            deployments: 10_000,
            days: 30,
            block_seconds: 1,
            replicas: 3,
            provider_uptime: 0.95,
            uptime_spread: 0.0,
            mean_outage_minutes: 120.0,
            grace_blocks: devnet.failover_grace_blocks,
            bid_window: devnet.bid_window,
            exclusion_blocks: devnet.failover_exclusion_blocks,
            probe_seconds: 5,
            startup_seconds: 10,
            bidders_per_order: 4,
            auction: BidPolicy::Price,
        }
    }
}

impl MarketConfig {
    /// Whether the configuration can run, or the first thing wrong with it in one sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.providers == 0 || self.providers > 100_000 {
            return Err(format!("providers must be 1 to 100000, not {}", self.providers));
        }
        if self.deployments == 0 || self.deployments > 1_000_000 {
            return Err(format!("deployments must be 1 to 1000000, not {}", self.deployments));
        }
        if self.days == 0 || self.days > 366 {
            return Err(format!("days must be 1 to 366, not {}", self.days));
        }
        if self.block_seconds == 0 || self.block_seconds > 600 {
            return Err(format!("block seconds must be 1 to 600, not {}", self.block_seconds));
        }
        if self.replicas == 0 || self.replicas > 10 {
            return Err(format!("replicas must be 1 to 10, not {}", self.replicas));
        }
        if self.replicas as usize > self.providers {
            return Err(format!(
                "{} replicas need at least as many providers, not {}",
                self.replicas, self.providers
            ));
        }
        if !(self.provider_uptime > 0.0 && self.provider_uptime < 1.0) {
            return Err(format!(
                "provider uptime must be above 0 and below 1, not {}",
                self.provider_uptime
            ));
        }
        let (low, high) =
            (self.provider_uptime - self.uptime_spread, self.provider_uptime + self.uptime_spread);
        if !(self.uptime_spread >= 0.0 && low > 0.0 && high < 1.0) {
            return Err(format!(
                "uptime {} with spread {} leaves (0, 1): each provider's uptime must be above 0 and below 1",
                self.provider_uptime, self.uptime_spread
            ));
        }
        if !(self.mean_outage_minutes > 0.0 && self.mean_outage_minutes <= 100_000.0) {
            return Err(format!(
                "mean outage must be above 0 and at most 100000 minutes, not {}",
                self.mean_outage_minutes
            ));
        }
        if self.grace_blocks == 0 || self.bid_window == 0 || self.exclusion_blocks == 0 {
            return Err("grace, bid window and exclusion must be at least 1 block".into());
        }
        if self.bidders_per_order == 0 || self.bidders_per_order > 50 {
            return Err(format!(
                "bidders per order must be 1 to 50, not {}",
                self.bidders_per_order
            ));
        }
        Ok(())
    }

    pub fn total_blocks(&self) -> u64 {
        u64::from(self.days) * 86_400 / self.block_seconds
    }

    fn blocks(&self, seconds: u64) -> u64 {
        seconds.div_ceil(self.block_seconds).max(1)
    }
}

/// Smallest, median, 99th percentile and largest of a sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Spread {
    pub min: u128,
    pub p50: u128,
    pub p99: u128,
    pub max: u128,
}

impl Spread {
    fn of(mut v: Vec<u128>) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Spread { min: v[0], p50: at(0.5), p99: at(0.99), max: v[v.len() - 1] }
    }
}

/// What the chain carried.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LedgerLoad {
    pub blocks: u64,
    pub txs: u64,
    pub tx_bytes: u64,
    /// Transactions the ledger refused; the simulation builds only valid ones, so anything
    /// here is a finding.
    pub refused_txs: u64,
    pub first_refusal: Option<String>,
    pub health_report_txs: u64,
    pub health_reports: u64,
    pub health_report_bytes: u64,
    /// Health-report transactions and bytes per lease per hour of lease time.
    pub health_txs_per_lease_hour: f64,
    pub health_bytes_per_lease_hour: f64,
    pub bids: u64,
    pub leases_created: u64,
}

/// The outcome of a run. Every figure is a pure function of the configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarketReport {
    pub seed: u64,
    pub providers: usize,
    pub deployments: usize,
    pub days: u32,
    pub block_seconds: u64,
    pub replicas: u32,
    pub auction: BidPolicy,
    pub grace_blocks: u64,
    /// Share of provider-time up, as simulated (the target is the configuration's uptime).
    pub provider_uptime: f64,
    pub provider_outages: u64,
    /// Share of deployment-time with at least one replica serving, from each deployment's
    /// first serving block to the end, over all deployments.
    pub availability: f64,
    /// The worst single deployment's availability.
    pub availability_min: f64,
    /// Deployments that were ever down (no replica serving) after they first served.
    pub deployments_ever_down: u64,
    /// Leases the chain closed as unhealthy and replaced.
    pub failovers: u64,
    /// From a replica's last serving moment to its replacement serving, in seconds.
    pub failover_p50_s: u64,
    pub failover_p99_s: u64,
    pub failover_max_s: u64,
    /// Failed-over replicas not yet replaced when the run ended.
    pub failovers_unfinished: u64,
    pub denom: String,
    /// What the tenants paid, in `denom` base units.
    pub tenant_cost: u128,
    /// What the tenants' leases would have cost without the blocks they were down.
    pub tenant_cost_if_always_paid: u128,
    /// What the providers received (the tenants' cost less the community pool's take).
    pub provider_earnings: u128,
    pub provider_earnings_each: Spread,
    /// Bid deposits moved to tenants for leases closed as unhealthy (native denomination).
    pub sla_penalties: u128,
    /// Whether the tenants paid, to the unit, the lease price for every block the chain held
    /// each lease up and nothing for the blocks it held it down.
    pub escrow_exact: bool,
    pub ledger: LedgerLoad,
}

/// Called with (blocks done, blocks in all) as the run goes.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Task {
    Flip(usize),
    Serve(BidId),
    Probe(BidId),
}

struct Prov {
    key: Keypair,
    up: bool,
    /// The block its current state began.
    since: u64,
    slots: u32,
    used: u32,
    rate: u128,
    gpu: (&'static str, &'static str, &'static str),
    leases: BTreeSet<BidId>,
    down_blocks: u64,
    /// Its share of the time up, on average.
    uptime: f64,
}

struct Dep {
    tenant: usize,
    dseq: u64,
    serving: u32,
    first_serving: Option<u64>,
    outage_since: Option<u64>,
    down_blocks: u64,
    /// Providers holding a lease or an open bid on one of its groups.
    involved: BTreeSet<usize>,
}

struct SimLease {
    provider: usize,
    dep: usize,
    created: u64,
    price: u128,
    serving: bool,
    unserved_at: u64,
    reported_up: bool,
    chain_down_since: Option<u64>,
    chain_down_blocks: u64,
}

struct Sim {
    cfg: MarketConfig,
    rng: ChaCha8Rng,
    state: MemState,
    height: u64,
    providers: Vec<Prov>,
    by_address: BTreeMap<Address, usize>,
    tenants: Vec<Keypair>,
    monitors: Vec<Keypair>,
    sequences: BTreeMap<Address, u64>,
    deps: Vec<Dep>,
    dep_of: BTreeMap<(Address, u64), usize>,
    leases: BTreeMap<BidId, SimLease>,
    /// Orders to bid on, by the block the bids go in.
    bid_on: BTreeMap<u64, Vec<OrderId>>,
    open_bids: BTreeSet<BidId>,
    /// Orders open for bids, as the chain's events said.
    open_orders: BTreeSet<OrderId>,
    /// Providers a group's auctions refuse, and until which block.
    excluded: BTreeMap<(usize, u32), BTreeMap<usize, u64>>,
    /// Groups whose replica failed over, and the block it stopped serving.
    lost: BTreeMap<(usize, u32), u64>,
    tasks: BTreeMap<u64, Vec<Task>>,
    /// Health reports to send, by monitor.
    reports: BTreeMap<usize, Vec<HealthReport>>,
    failover_blocks: Vec<u128>,
    failovers: u64,
    outages: u64,
    paid_expected: u128,
    unpaid_down: u128,
    sla_penalties: u128,
    lease_blocks: u128,
    load: LedgerLoad,
    spec_max: u128,
}

/// A transaction body and the key that signs it.
type Unsigned = (Keypair, TxBody);

fn sign_and_check((key, body): Unsigned) -> (CheckedTx, usize) {
    let tx = body.sign(&key);
    let size = tx.to_bytes().len();
    (tx.check(), size)
}

const MONITORS: usize = 16;
const DEPLOYMENTS_PER_TENANT: usize = 10;
const MAX_RATE: u128 = 800;
const STALL_RETRY_BLOCKS: u64 = 5;

fn key(kind: u8, i: usize) -> Keypair {
    let mut secret = [0u8; 32];
    secret[0] = kind;
    secret[1] = 0x5a;
    secret[2..10].copy_from_slice(&(i as u64).to_le_bytes());
    Keypair::from_secret(secret)
}

/// Runs the simulation and reports what the tenants saw.
pub fn run(cfg: &MarketConfig, progress: Progress<'_>) -> Result<MarketReport, String> {
    cfg.validate()?;
    let mut sim = Sim::new(cfg.clone())?;
    sim.setup()?;
    let total = cfg.total_blocks();
    let step = (total / 1000).max(1);
    while sim.height < total {
        sim.step()?;
        if sim.height % step == 0 {
            progress(sim.height, total);
        }
    }
    progress(total, total);
    sim.finish()
}

impl Sim {
    fn new(cfg: MarketConfig) -> Result<Sim, String> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let tenants: Vec<Keypair> =
            (0..cfg.deployments.div_ceil(DEPLOYMENTS_PER_TENANT)).map(|i| key(1, i)).collect();
        let monitors: Vec<Keypair> = (0..MONITORS).map(|i| key(3, i)).collect();
        // Capacity: half again the average demand, spread from half to one and a half times
        // that, and never below one slot.
        let demand = (cfg.deployments * cfg.replicas as usize).div_ceil(cfg.providers) as f64;
        let providers: Vec<Prov> = (0..cfg.providers)
            .map(|i| Prov {
                key: key(2, i),
                up: true,
                since: 0,
                slots: ((demand * 1.5 * rng.gen_range(0.5..1.5)).ceil() as u32).max(1),
                used: 0,
                rate: rng.gen_range(250..=600),
                gpu: crate::GPU_MODELS[i % crate::GPU_MODELS.len()],
                leases: BTreeSet::new(),
                down_blocks: 0,
                uptime: if cfg.uptime_spread > 0.0 {
                    cfg.provider_uptime + rng.gen_range(-cfg.uptime_spread..=cfg.uptime_spread)
                } else {
                    cfg.provider_uptime
                },
            })
            .collect();
        let mut params = Params::devnet();
        params.failover_grace_blocks = cfg.grace_blocks;
        params.bid_window = cfg.bid_window;
        params.failover_exclusion_blocks = cfg.exclusion_blocks;
        params.fee_per_msg = 0;
        params.fee_per_byte = 0;
        params.min_fee = 1;
        params.max_bids_per_order = 100;
        params.validate().map_err(|e| e.0)?;
        let rich = |k: &Keypair, usdc: u128| GenesisBalance {
            address: k.address(),
            coins: vec![Coin::new(1_000_000_000_000, &ugrid()), Coin::new(usdc, &uusdc())],
        };
        let per_tenant =
            MAX_RATE * u128::from(cfg.replicas) * u128::from(cfg.total_blocks() + 1_000) * 11;
        let balances = tenants
            .iter()
            .map(|k| rich(k, per_tenant))
            .chain(providers.iter().map(|p| rich(&p.key, 0)))
            .chain(monitors.iter().map(|k| rich(k, 0)))
            .map(|mut b| {
                b.coins.retain(|c| c.amount > 0);
                b
            })
            .collect();
        let genesis = Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: 1_700_000_000_000,
            params,
            balances,
            validators: Vec::new(),
        };
        let state = genesis.mem_state();
        let by_address = providers.iter().enumerate().map(|(i, p)| (p.key.address(), i)).collect();
        Ok(Sim {
            rng,
            state,
            height: 0,
            providers,
            by_address,
            tenants,
            monitors,
            sequences: BTreeMap::new(),
            deps: Vec::new(),
            dep_of: BTreeMap::new(),
            leases: BTreeMap::new(),
            bid_on: BTreeMap::new(),
            open_bids: BTreeSet::new(),
            open_orders: BTreeSet::new(),
            excluded: BTreeMap::new(),
            lost: BTreeMap::new(),
            tasks: BTreeMap::new(),
            reports: BTreeMap::new(),
            failover_blocks: Vec::new(),
            failovers: 0,
            outages: 0,
            paid_expected: 0,
            unpaid_down: 0,
            sla_penalties: 0,
            lease_blocks: 0,
            load: LedgerLoad::default(),
            spec_max: MAX_RATE,
            cfg,
        })
    }

    fn exp_blocks(&mut self, mean_blocks: f64) -> u64 {
        let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        // Capped far past any run's end, so heights never overflow.
        ((-mean_blocks * u.ln()).round().min(1e12) as u64).max(1)
    }

    fn outage_mean(&self) -> f64 {
        self.cfg.mean_outage_minutes * 60.0 / self.cfg.block_seconds as f64
    }

    fn up_mean(&self, p: usize) -> f64 {
        let u = self.providers[p].uptime;
        self.outage_mean() * u / (1.0 - u)
    }

    fn schedule(&mut self, at: u64, task: Task) {
        self.tasks.entry(at).or_default().push(task);
    }

    /// A transaction of `msgs` from `k` at its next sequence, to be signed with the block.
    fn sign(&mut self, k: &Keypair, msgs: Vec<Msg>) -> Unsigned {
        let seq = self.sequences.entry(k.address()).or_insert(0);
        let body = TxBody {
            chain_id: CHAIN_ID.into(),
            signer: k.address(),
            sequence: *seq,
            fee: Coin::new(1, &ugrid()),
            memo: String::new(),
            messages: msgs,
        };
        *seq += 1;
        (k.clone(), body)
    }

    /// Registers the providers, then opens the deployments over the first hour (or the
    /// first tenth of the run when it is shorter), and draws each provider's first spell.
    fn setup(&mut self) -> Result<(), String> {
        self.height = 1;
        let txs: Vec<Unsigned> = (0..self.providers.len())
            .map(|i| {
                let k = self.providers[i].key.clone();
                let msg = Msg::CreateProvider {
                    host_uri: format!("https://provider{i}.sim.example"),
                    attributes: Vec::new(),
                    info: ProviderInfo::default(),
                };
                self.sign(&k, vec![msg])
            })
            .collect();
        self.block(txs)?;
        for p in 0..self.providers.len() {
            let up = self.rng.gen_bool(self.providers[p].uptime);
            let mean = if up { self.up_mean(p) } else { self.outage_mean() };
            let spell = self.exp_blocks(mean);
            let prov = &mut self.providers[p];
            prov.up = up;
            prov.since = self.height;
            if !up {
                self.outages += 1;
            }
            self.schedule(self.height + spell, Task::Flip(p));
        }
        Ok(())
    }

    fn ramp_blocks(&self) -> u64 {
        (3_600 / self.cfg.block_seconds).clamp(1, (self.cfg.total_blocks() / 10).max(1))
    }

    fn groups(&self) -> Vec<GroupSpec> {
        let price = DecCoin { denom: uusdc(), amount: DecAmount(self.spec_max * DEC_ONE) };
        (1..=self.cfg.replicas)
            .map(|r| {
                let name = if r == 1 { "svc".to_string() } else { format!("svc-{r}") };
                let mut g = one_gpu_group(&name, price.clone());
                g.distinct_providers = self.cfg.replicas > 1;
                g.bid_policy = self.cfg.auction;
                g
            })
            .collect()
    }

    /// The deployments the tenants open in this block.
    fn open_deployments(&mut self) -> Vec<Unsigned> {
        let ramp = self.ramp_blocks();
        let want = (self.cfg.deployments as u64 * self.height.min(ramp)).div_ceil(ramp) as usize;
        let want = want.min(self.cfg.deployments);
        let groups = self.groups();
        let deposit = MAX_RATE
            * u128::from(self.cfg.replicas)
            * u128::from(self.cfg.total_blocks() + 1_000)
            * 21
            / 20;
        let mut txs = Vec::new();
        while self.deps.len() < want {
            let i = self.deps.len();
            let tenant = i / DEPLOYMENTS_PER_TENANT;
            let dseq = (i % DEPLOYMENTS_PER_TENANT) as u64 + 1;
            let monitor = self.monitors[i % MONITORS].address();
            let t = self.tenants[tenant].clone();
            let msgs = vec![
                Msg::CreateDeployment {
                    dseq,
                    groups: groups.clone(),
                    manifest_hash: [7; 32],
                    deposit: Coin::new(deposit, &uusdc()),
                },
                Msg::SetMonitors { dseq, monitors: vec![monitor] },
            ];
            txs.push(self.sign(&t, msgs));
            self.dep_of.insert((t.address(), dseq), i);
            self.deps.push(Dep {
                tenant,
                dseq,
                serving: 0,
                first_serving: None,
                outage_since: None,
                down_blocks: 0,
                involved: BTreeSet::new(),
            });
        }
        txs
    }

    fn dep_index(&self, order: &OrderId) -> Option<usize> {
        self.dep_of.get(&(order.owner, order.dseq)).copied()
    }

    /// Bids on the orders due in this block by a few providers able to take them.
    fn bids(&mut self) -> Vec<(Unsigned, Vec<BidId>)> {
        let Some(mut due) = self.bid_on.remove(&self.height) else { return Vec::new() };
        due.sort_unstable();
        due.dedup();
        due.retain(|o| self.open_orders.contains(o));
        let mut by_provider: BTreeMap<usize, Vec<OrderId>> = BTreeMap::new();
        let n = self.providers.len();
        for order in due {
            let Some(d) = self.dep_index(&order) else { continue };
            let mut chosen = Vec::new();
            for _ in 0..self.cfg.bidders_per_order * 8 {
                if chosen.len() == self.cfg.bidders_per_order {
                    break;
                }
                let p = self.rng.gen_range(0..n);
                let prov = &self.providers[p];
                let excluded = self
                    .excluded
                    .get(&(d, order.gseq))
                    .and_then(|m| m.get(&p))
                    .is_some_and(|until| *until > self.height);
                if !prov.up
                    || prov.used >= prov.slots
                    || excluded
                    || self.deps[d].involved.contains(&p)
                    || chosen.contains(&p)
                {
                    continue;
                }
                chosen.push(p);
                self.providers[p].used += 1;
                self.deps[d].involved.insert(p);
            }
            if chosen.is_empty() {
                // Nobody can take it now; providers look again a little later.
                self.bid_on.entry(self.height + STALL_RETRY_BLOCKS).or_default().push(order);
            }
            for p in chosen {
                by_provider.entry(p).or_default().push(order);
            }
        }
        let spec = &self.groups()[0];
        let deposit = Coin::new(Params::devnet().bid_deposit.amount, &ugrid());
        let mut out = Vec::new();
        for (p, orders) in by_provider {
            let prov = &self.providers[p];
            let (k, rate, gpu) = (prov.key.clone(), prov.rate, prov.gpu);
            for chunk in orders.chunks(MAX_MSGS) {
                let msgs: Vec<Msg> = chunk
                    .iter()
                    .map(|order| Msg::CreateBid {
                        order: *order,
                        price: DecCoin { denom: uusdc(), amount: DecAmount(rate * DEC_ONE) },
                        offer: offer_for(spec, gpu),
                        deposit: deposit.clone(),
                    })
                    .collect();
                let ids: Vec<BidId> = chunk
                    .iter()
                    .map(|order| BidId { order: *order, provider: k.address() })
                    .collect();
                let tx = self.sign(&k, msgs);
                out.push((tx, ids));
            }
        }
        out
    }

    fn release(&mut self, id: &BidId) {
        let Some(&p) = self.by_address.get(&id.provider) else { return };
        self.providers[p].used = self.providers[p].used.saturating_sub(1);
        if let Some(d) = self.dep_index(&id.order) {
            self.deps[d].involved.remove(&p);
        }
    }

    fn set_serving(&mut self, id: &BidId, serving: bool) {
        let h = self.height;
        let Some(l) = self.leases.get_mut(id) else { return };
        if l.serving == serving {
            return;
        }
        l.serving = serving;
        let d = l.dep;
        if !serving {
            l.unserved_at = h;
        }
        let dep = &mut self.deps[d];
        if serving {
            dep.serving += 1;
            if dep.serving == 1 {
                if dep.first_serving.is_none() {
                    dep.first_serving = Some(h);
                }
                if let Some(since) = dep.outage_since.take() {
                    dep.down_blocks += h - since;
                }
            }
            if let Some(lost_at) = self.lost.remove(&(d, id.order.gseq)) {
                self.failover_blocks.push(u128::from(h - lost_at));
            }
        } else {
            dep.serving -= 1;
            if dep.serving == 0 && dep.first_serving.is_some() {
                dep.outage_since = Some(h);
            }
        }
    }

    fn next_probe(&self) -> u64 {
        let every = self.cfg.blocks(self.cfg.probe_seconds);
        (self.height / every + 1) * every
    }

    /// The world outside the chain moves on to this block: providers fail and come back,
    /// workloads start, monitors probe.
    fn run_tasks(&mut self) {
        let Some(tasks) = self.tasks.remove(&self.height) else { return };
        let startup = self.cfg.blocks(self.cfg.startup_seconds);
        for task in tasks {
            match task {
                Task::Flip(p) => {
                    let h = self.height;
                    let leases: Vec<BidId> = self.providers[p].leases.iter().copied().collect();
                    let probe = self.next_probe();
                    let prov = &mut self.providers[p];
                    let up = !prov.up;
                    if up {
                        prov.down_blocks += h - prov.since;
                    } else {
                        self.outages += 1;
                    }
                    prov.up = up;
                    prov.since = h;
                    for l in &leases {
                        if up {
                            self.schedule(h + startup, Task::Serve(*l));
                        } else {
                            self.set_serving(l, false);
                        }
                        self.schedule(probe, Task::Probe(*l));
                    }
                    let mean = if up { self.up_mean(p) } else { self.outage_mean() };
                    let spell = self.exp_blocks(mean);
                    self.schedule(h + spell, Task::Flip(p));
                }
                Task::Serve(id) => {
                    let Some(l) = self.leases.get(&id) else { continue };
                    let prov = &self.providers[l.provider];
                    if prov.up && self.height >= l.created.max(prov.since) + startup {
                        self.set_serving(&id, true);
                    }
                }
                Task::Probe(id) => {
                    let Some(l) = self.leases.get_mut(&id) else { continue };
                    let up = self.providers[l.provider].up;
                    if up != l.reported_up {
                        l.reported_up = up;
                        let monitor = l.dep % MONITORS;
                        self.reports
                            .entry(monitor)
                            .or_default()
                            .push(HealthReport { lease: id, up });
                    }
                }
            }
        }
    }

    fn step(&mut self) -> Result<(), String> {
        self.height += 1;
        self.run_tasks();
        let mut txs = self.open_deployments();
        let reports = std::mem::take(&mut self.reports);
        let mut health = Vec::new();
        for (m, list) in reports {
            let k = self.monitors[m].clone();
            for chunk in list.chunks(MAX_HEALTH_REPORTS) {
                let tx = self.sign(&k, vec![Msg::ReportHealth { reports: chunk.to_vec() }]);
                self.load.health_report_txs += 1;
                self.load.health_reports += chunk.len() as u64;
                health.push(txs.len());
                txs.push(tx);
            }
        }
        let bids = self.bids();
        let first_bid = txs.len();
        let bid_ids: Vec<Vec<BidId>> = bids.iter().map(|(_, ids)| ids.clone()).collect();
        txs.extend(bids.into_iter().map(|(tx, _)| tx));
        let (receipts, sizes) = self.block(txs)?;
        self.load.health_report_bytes += health.iter().map(|i| sizes[*i] as u64).sum::<u64>();
        for (i, ids) in bid_ids.iter().enumerate() {
            if receipts.get(first_bid + i).is_some_and(|c| *c == ReceiptCode::Ok) {
                self.load.bids += ids.len() as u64;
                self.open_bids.extend(ids.iter().copied());
            } else {
                for id in ids {
                    self.release(id);
                    if self.open_orders.contains(&id.order) {
                        let retry = self.height + STALL_RETRY_BLOCKS;
                        self.bid_on.entry(retry).or_default().push(id.order);
                    }
                }
            }
        }
        Ok(())
    }

    /// Signs and runs one block through the ledger (signatures made and checked on every
    /// core, in order) and follows its events; returns the receipt codes and the transactions'
    /// sizes.
    fn block(&mut self, txs: Vec<Unsigned>) -> Result<(Vec<ReceiptCode>, Vec<usize>), String> {
        self.load.blocks += 1;
        self.load.txs += txs.len() as u64;
        let signed: Vec<(CheckedTx, usize)> = if txs.len() < 64 {
            txs.into_iter().map(sign_and_check).collect()
        } else {
            txs.into_par_iter().map(sign_and_check).collect()
        };
        let (checked, sizes): (Vec<CheckedTx>, Vec<usize>) = signed.into_iter().unzip();
        self.load.tx_bytes += sizes.iter().map(|n| *n as u64).sum::<u64>();
        let ctx = BlockContext {
            chain_id: CHAIN_ID.into(),
            height: self.height,
            time_ms: 1_700_000_000_000 + self.height * self.cfg.block_seconds * 1_000,
            verified_evidence: Default::default(),
        };
        let out = gridlease_ledger::execute(&self.state, &ctx, &checked)
            .map_err(|e| format!("block {} failed: {e}", self.height))?;
        self.state.apply(&out.changes);
        let mut codes = Vec::with_capacity(out.receipts.len());
        for r in &out.receipts {
            if r.code != ReceiptCode::Ok {
                self.load.refused_txs += 1;
                if self.load.first_refusal.is_none() {
                    self.load.first_refusal =
                        Some(format!("block {}: {}: {}", self.height, r.code, r.log));
                }
            }
            codes.push(r.code);
        }
        let events: Vec<Event> = out
            .begin_events
            .into_iter()
            .chain(out.receipts.into_iter().flat_map(|r| r.events))
            .collect();
        for e in events {
            self.follow(e);
        }
        Ok((codes, sizes))
    }

    fn follow(&mut self, e: Event) {
        let h = self.height;
        match e {
            Event::OrderOpened { id, .. } => {
                self.open_orders.insert(id);
                self.bid_on.entry(h + 1).or_default().push(id);
            }
            Event::OrderClosed { id, .. } => {
                self.open_orders.remove(&id);
            }
            Event::OrderStalled { id, .. } => {
                self.bid_on.entry(h + STALL_RETRY_BLOCKS).or_default().push(id);
            }
            Event::BidClosed { id, .. } if self.open_bids.remove(&id) => self.release(&id),
            Event::LeaseCreated { id, price } => {
                self.open_bids.remove(&id);
                self.open_orders.remove(&id.order);
                self.load.leases_created += 1;
                let (Some(&p), Some(d)) =
                    (self.by_address.get(&id.provider), self.dep_index(&id.order))
                else {
                    return;
                };
                let price = price.amount.0 / DEC_ONE;
                self.leases.insert(
                    id,
                    SimLease {
                        provider: p,
                        dep: d,
                        created: h,
                        price,
                        serving: false,
                        unserved_at: h,
                        reported_up: true,
                        chain_down_since: None,
                        chain_down_blocks: 0,
                    },
                );
                self.providers[p].leases.insert(id);
                let startup = self.cfg.blocks(self.cfg.startup_seconds);
                self.schedule(h + startup, Task::Serve(id));
                if !self.providers[p].up {
                    let probe = self.next_probe();
                    self.schedule(probe, Task::Probe(id));
                }
            }
            Event::LeaseDown { id, .. } => {
                if let Some(l) = self.leases.get_mut(&id) {
                    l.chain_down_since = Some(h);
                }
            }
            Event::LeaseUp { id, down_blocks } => {
                if let Some(l) = self.leases.get_mut(&id) {
                    l.chain_down_since = None;
                    l.chain_down_blocks += down_blocks;
                }
            }
            Event::LeaseClosed { id, reason } => {
                self.set_serving(&id, false);
                let Some(l) = self.leases.remove(&id) else { return };
                self.providers[l.provider].leases.remove(&id);
                self.release(&id);
                let down_now = l.chain_down_since.map_or(0, |s| h - s);
                let down = l.chain_down_blocks + down_now;
                let lived = h - l.created;
                self.paid_expected += l.price * u128::from(lived - down);
                self.unpaid_down += l.price * u128::from(down);
                self.lease_blocks += u128::from(lived);
                if reason == CloseReason::Unhealthy {
                    self.failovers += 1;
                    let key = (l.dep, id.order.gseq);
                    self.lost.insert(key, l.unserved_at);
                    let until = h + self.cfg.exclusion_blocks;
                    let map = self.excluded.entry(key).or_default();
                    map.retain(|_, u| *u > h);
                    map.insert(l.provider, until);
                }
            }
            Event::SlaPenalty { to_tenant, .. } => self.sla_penalties += to_tenant.amount,
            _ => {}
        }
    }

    fn balance(&self, a: &Address, denom: &Denom) -> u128 {
        query::balance(&self.state, a, denom).unwrap_or(0)
    }

    /// Ends the run: the tenants close every deployment, which settles every lease.
    fn finish(mut self) -> Result<MarketReport, String> {
        let end = self.height;
        let mut availability_min = 1.0f64;
        let (mut down, mut lived, mut ever_down) = (0u128, 0u128, 0u64);
        for d in &mut self.deps {
            if let Some(since) = d.outage_since.take() {
                d.down_blocks += end - since;
            }
            let Some(first) = d.first_serving else {
                // Never served: down from its opening on.
                ever_down += 1;
                availability_min = 0.0;
                continue;
            };
            let span = end - first;
            if d.down_blocks > 0 {
                ever_down += 1;
            }
            if span > 0 {
                availability_min = availability_min.min(1.0 - d.down_blocks as f64 / span as f64);
            }
            down += u128::from(d.down_blocks);
            lived += u128::from(span);
        }
        let unfinished = self.lost.len() as u64;
        let provider_time = (self.providers.len() as f64) * end as f64;
        let provider_down: u64 = self
            .providers
            .iter()
            .map(|p| p.down_blocks + if p.up { 0 } else { end - p.since })
            .sum();
        let mut closes: Vec<(usize, u64)> = self.deps.iter().map(|d| (d.tenant, d.dseq)).collect();
        closes.sort_unstable();
        let mut txs = Vec::new();
        for tenant in 0..self.tenants.len() {
            let msgs: Vec<Msg> = closes
                .iter()
                .filter(|(t, _)| *t == tenant)
                .map(|(_, dseq)| Msg::CloseDeployment { dseq: *dseq })
                .collect();
            let k = self.tenants[tenant].clone();
            for chunk in msgs.chunks(MAX_MSGS) {
                txs.push(self.sign(&k, chunk.to_vec()));
            }
        }
        self.height += 1;
        self.block(txs)?;
        // What each tenant spent is its deposits less the refunds; deposits left the balance
        // when the deployments opened, so count from the genesis balance instead.
        let genesis_usdc = MAX_RATE
            * u128::from(self.cfg.replicas)
            * u128::from(self.cfg.total_blocks() + 1_000)
            * 11;
        let tenant_cost: u128 =
            self.tenants.iter().map(|t| genesis_usdc - self.balance(&t.address(), &uusdc())).sum();
        let earnings: Vec<u128> =
            self.providers.iter().map(|p| self.balance(&p.key.address(), &uusdc())).collect();
        let provider_earnings = earnings.iter().sum();
        let secs = |b: u128| (b * u128::from(self.cfg.block_seconds)) as u64;
        let fo = Spread::of(self.failover_blocks.clone());
        let lease_hours = self.lease_blocks as f64 * self.cfg.block_seconds as f64 / 3_600.0;
        let mut load = self.load.clone();
        if lease_hours > 0.0 {
            load.health_txs_per_lease_hour = load.health_report_txs as f64 / lease_hours;
            load.health_bytes_per_lease_hour = load.health_report_bytes as f64 / lease_hours;
        }
        Ok(MarketReport {
            seed: self.cfg.seed,
            providers: self.cfg.providers,
            deployments: self.cfg.deployments,
            days: self.cfg.days,
            block_seconds: self.cfg.block_seconds,
            replicas: self.cfg.replicas,
            auction: self.cfg.auction,
            grace_blocks: self.cfg.grace_blocks,
            provider_uptime: 1.0 - provider_down as f64 / provider_time,
            provider_outages: self.outages,
            availability: if lived == 0 { 0.0 } else { 1.0 - down as f64 / lived as f64 },
            availability_min,
            deployments_ever_down: ever_down,
            failovers: self.failovers,
            failover_p50_s: secs(fo.p50),
            failover_p99_s: secs(fo.p99),
            failover_max_s: secs(fo.max),
            failovers_unfinished: unfinished,
            denom: uusdc().to_string(),
            tenant_cost,
            tenant_cost_if_always_paid: self.paid_expected + self.unpaid_down,
            provider_earnings,
            provider_earnings_each: Spread::of(earnings),
            sla_penalties: self.sla_penalties,
            escrow_exact: tenant_cost == self.paid_expected,
            ledger: load,
        })
    }
}
