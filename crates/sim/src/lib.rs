//! Deterministic simulation of tenants, providers and auditors trading on the ledger: seeded
//! random blocks of mostly valid and some invalid transactions, for property tests, crash
//! tests and benchmarks; and [`market`], the market over days of chain time that `gridlease
//! sim` runs. Nothing here touches a disk, a network or a clock.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use gridlease_ledger::state::{BidState, DeploymentState, LeaseState, OrderState};
use gridlease_ledger::{
    BlockContext, BlockOutput, ExecError, Genesis, GenesisBalance, MemState, Params, StateView,
    query,
};
use gridlease_types::msg::{self, ProviderInfo};
use gridlease_types::{
    Address, Attribute, BidId, CheckedTx, Coin, DecAmount, DecCoin, Denom, Endpoint, EndpointKind,
    GpuOffer, GpuRequirement, GpuSpec, GroupSpec, Keypair, Msg, OrderId, PlacementRequirements,
    ResourceOffer, ResourceUnit, Resources, SignedBy, StorageVolume, Tx, TxBody,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub mod market;
pub mod world;
pub use world::World;

pub const CHAIN_ID: &str = "gridlease-sim";

pub fn ugrid() -> Denom {
    Denom::new("ugrid").unwrap_or_else(|_| unreachable!())
}
pub fn uusdc() -> Denom {
    Denom::new("uusdc").unwrap_or_else(|_| unreachable!())
}

pub(crate) const GPU_MODELS: [(&str, &str, &str); 4] = [
    ("a100", "80Gi", "sxm"),
    ("h100", "80Gi", "sxm"),
    ("rtx4090", "24Gi", "pcie"),
    ("t4", "16Gi", "pcie"),
];
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// The simulated participants, derived from fixed secrets.
#[derive(Debug, Clone)]
pub struct Actors {
    pub tenants: Vec<Keypair>,
    pub providers: Vec<Keypair>,
    pub auditors: Vec<Keypair>,
}

impl Actors {
    pub fn new(tenants: usize, providers: usize, auditors: usize) -> Self {
        let key = |kind: u8, i: usize| {
            let mut secret = [0u8; 32];
            secret[0] = kind;
            secret[1..9].copy_from_slice(&(i as u64).to_le_bytes());
            Keypair::from_secret(secret)
        };
        Actors {
            tenants: (0..tenants).map(|i| key(1, i)).collect(),
            providers: (0..providers).map(|i| key(2, i)).collect(),
            auditors: (0..auditors).map(|i| key(3, i)).collect(),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Keypair> {
        self.tenants.iter().chain(&self.providers).chain(&self.auditors)
    }

    pub fn by_address(&self, a: &Address) -> Option<&Keypair> {
        self.all().find(|k| &k.address() == a)
    }

    /// Short windows so that auctions, depletion and grace expiry happen within a few blocks.
    pub fn genesis(&self) -> Genesis {
        let params = Params {
            bid_window: 3,
            overdraw_grace: 4,
            failover_grace_blocks: 6,
            min_fee: 100,
            min_deposits: vec![Coin::new(10_000, &ugrid()), Coin::new(10_000, &uusdc())],
            bid_deposit: Coin::new(5_000, &ugrid()),
            max_bids_per_order: 8,
            auditors: self.auditors.iter().map(Keypair::address).collect(),
            // The simulation signs at a flat fee; tests/attacks.rs checks the size fees.
            fee_per_msg: 0,
            fee_per_byte: 0,
            ..Params::devnet()
        };
        let balances = self
            .all()
            .map(|k| GenesisBalance {
                address: k.address(),
                coins: vec![Coin::new(50_000_000, &ugrid()), Coin::new(20_000_000, &uusdc())],
            })
            .collect();
        Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: 1_700_000_000_000,
            params,
            balances,
            validators: Vec::new(),
        }
    }

    pub fn provider_gpu(&self, idx: usize) -> (&'static str, &'static str, &'static str) {
        GPU_MODELS[idx % GPU_MODELS.len()]
    }

    pub fn provider_attributes(&self, idx: usize) -> Vec<Attribute> {
        vec![
            Attribute::new("region", REGIONS[idx % REGIONS.len()]),
            Attribute::new("tier", "community"),
        ]
    }
}

/// Signs a body for `key` with the given sequence and the minimum fee.
pub fn sign(key: &Keypair, sequence: u64, fee: u128, messages: Vec<Msg>) -> Tx {
    TxBody {
        chain_id: CHAIN_ID.into(),
        signer: key.address(),
        sequence,
        fee: Coin::new(fee, &ugrid()),
        memo: String::new(),
        messages,
    }
    .sign(key)
}

/// Checks signatures and executes a block on an in-memory state, applying its changes.
pub fn run_block(state: &mut MemState, height: u64, txs: &[Tx]) -> Result<BlockOutput, ExecError> {
    let checked: Vec<CheckedTx> = txs.iter().cloned().map(Tx::check).collect();
    let ctx = BlockContext {
        chain_id: CHAIN_ID.into(),
        height,
        time_ms: 1_700_000_000_000 + height * 1000,
        verified_evidence: Default::default(),
    };
    let out = gridlease_ledger::execute(state, &ctx, &checked)?;
    state.apply(&out.changes);
    Ok(out)
}

/// A random group spec; `gpu` picks whether it asks for GPUs.
pub fn random_group(
    rng: &mut impl Rng,
    name: &str,
    denom: &Denom,
    auditors: &[Address],
) -> GroupSpec {
    let units = rng.gen_range(1..=2);
    let resources = (0..units)
        .map(|i| {
            let gpu_units = if rng.gen_bool(0.6) { rng.gen_range(1..=2) } else { 0 };
            let options = if gpu_units == 0 || rng.gen_bool(0.3) {
                Vec::new()
            } else {
                let (model, ram, iface) = GPU_MODELS[rng.gen_range(0..GPU_MODELS.len())];
                vec![GpuSpec {
                    vendor: "nvidia".into(),
                    model: Some(model.into()),
                    ram: rng.gen_bool(0.5).then(|| ram.into()),
                    interface: rng.gen_bool(0.3).then(|| iface.into()),
                }]
            };
            ResourceUnit {
                resources: Resources {
                    id: i + 1,
                    cpu_millis: rng.gen_range(1..=8) * 500,
                    memory_bytes: rng.gen_range(1..=16) << 30,
                    storage: vec![StorageVolume {
                        name: "default".into(),
                        bytes: rng.gen_range(1..=100) << 30,
                        class: None,
                        persistent: false,
                    }],
                    gpu: GpuRequirement { units: gpu_units, options },
                    endpoints: vec![Endpoint {
                        kind: EndpointKind::SharedHttp,
                        sequence_number: 0,
                    }],
                },
                count: rng.gen_range(1..=3),
                price: DecCoin {
                    denom: denom.clone(),
                    amount: DecAmount(rng.gen_range(1..=10_000u128) * 10u128.pow(17)),
                },
            }
        })
        .collect();
    let mut requirements = PlacementRequirements::default();
    if rng.gen_bool(0.3) {
        requirements
            .attributes
            .push(Attribute::new("region", REGIONS[rng.gen_range(0..REGIONS.len())]));
        if !auditors.is_empty() && rng.gen_bool(0.5) {
            requirements.signed_by = SignedBy {
                all_of: vec![],
                any_of: vec![auditors[rng.gen_range(0..auditors.len())]],
            };
        }
    }
    GroupSpec {
        distinct_providers: false,
        bid_policy: Default::default(),
        sla: None,
        name: name.into(),
        requirements,
        resources,
    }
}

/// A group of one replica of 1 CPU, 1 GiB and one GPU of any model, at `price` per block.
pub fn one_gpu_group(name: &str, price: DecCoin) -> GroupSpec {
    GroupSpec {
        distinct_providers: false,
        bid_policy: Default::default(),
        sla: None,
        name: name.into(),
        requirements: PlacementRequirements::default(),
        resources: vec![ResourceUnit {
            resources: Resources {
                id: 1,
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
                storage: vec![],
                gpu: GpuRequirement { units: 1, options: vec![] },
                endpoints: vec![],
            },
            count: 1,
            price,
        }],
    }
}

/// The offer a provider with `gpu` makes for a group: exactly what is asked, its own GPU model.
pub fn offer_for(spec: &GroupSpec, gpu: (&str, &str, &str)) -> Vec<ResourceOffer> {
    spec.resources
        .iter()
        .map(|u| ResourceOffer {
            cpu_millis: u.resources.cpu_millis,
            memory_bytes: u.resources.memory_bytes,
            storage: u.resources.storage.clone(),
            gpu: (u.resources.gpu.units > 0).then(|| GpuOffer {
                units: u.resources.gpu.units,
                vendor: "nvidia".into(),
                model: gpu.0.into(),
                ram: gpu.1.into(),
                interface: gpu.2.into(),
            }),
            count: u.count,
        })
        .collect()
}

/// Generates blocks of random transactions from the current state.
#[derive(Debug)]
pub struct Generator {
    pub actors: Actors,
    /// Share of transactions built to fail (0.0 to 1.0).
    pub invalid_share: f64,
    /// Share of transactions that play an attack (0.0 to 1.0): prices that seek overflows,
    /// bid/withdraw churn, gapped sequences, oversized groups, reopening others' orders.
    pub adversarial_share: f64,
}

impl Generator {
    pub fn new(actors: Actors) -> Self {
        Generator { actors, invalid_share: 0.1, adversarial_share: 0.0 }
    }

    /// A block of up to `n` transactions for `height`, a pure function of (seed, height, state).
    pub fn block(&self, seed: u64, height: u64, view: &impl StateView, n: usize) -> Vec<Tx> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ height.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut seqs: BTreeMap<Address, u64> = BTreeMap::new();
        let orders: Vec<_> = query::orders(view).unwrap_or_default();
        let open_orders: Vec<OrderId> = orders
            .iter()
            .filter(|o| matches!(o.state, OrderState::Open { .. }))
            .map(|o| o.id)
            .collect();
        let groups = query::groups(view).unwrap_or_default();
        let bids = query::bids(view).unwrap_or_default();
        let open_bids: Vec<BidId> =
            bids.iter().filter(|b| b.state == BidState::Open).map(|b| b.id).collect();
        let leases: Vec<BidId> = query::leases(view)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.state == LeaseState::Active)
            .map(|l| l.id)
            .collect();
        let deployments: Vec<_> = query::deployments(view)
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.state == DeploymentState::Active)
            .map(|d| d.id)
            .collect();
        let registered: Vec<Address> =
            query::providers(view).unwrap_or_default().into_iter().map(|p| p.owner).collect();
        let auditors: Vec<Address> = self.actors.auditors.iter().map(|k| k.address()).collect();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            if self.adversarial_share > 0.0 && rng.gen_bool(self.adversarial_share) {
                let attack = self.attack(&mut rng, &open_orders, &seqs, view);
                if let Some((key, tx, next)) = attack {
                    if let Some(next) = next {
                        seqs.insert(key, next);
                    }
                    out.push(tx);
                }
                continue;
            }
            let bad = rng.gen_bool(self.invalid_share);
            let choice = rng.gen_range(0..110);
            let (key, msg): (&Keypair, Msg) = match choice {
                0..=14 => {
                    let from = &self.actors.tenants[rng.gen_range(0..self.actors.tenants.len())];
                    let to = self
                        .actors
                        .all()
                        .nth(rng.gen_range(0..self.actors.all().count()))
                        .map(|k| k.address())
                        .unwrap_or_default();
                    let amount = if bad { 0 } else { rng.gen_range(1..=10_000) };
                    let denom = if rng.gen_bool(0.5) { ugrid() } else { uusdc() };
                    (from, Msg::Send { to, amount: Coin::new(amount, &denom) })
                }
                15..=22 => {
                    let i = rng.gen_range(0..self.actors.providers.len());
                    let p = &self.actors.providers[i];
                    let host = if bad {
                        "ftp://bad".to_string()
                    } else {
                        format!("https://provider{i}.example:8443")
                    };
                    let msg = if registered.contains(&p.address()) {
                        Msg::UpdateProvider {
                            host_uri: host,
                            attributes: self.actors.provider_attributes(i),
                            info: ProviderInfo::default(),
                        }
                    } else {
                        Msg::CreateProvider {
                            host_uri: host,
                            attributes: self.actors.provider_attributes(i),
                            info: ProviderInfo::default(),
                        }
                    };
                    (p, msg)
                }
                23..=27 if !auditors.is_empty() => {
                    let a = &self.actors.auditors[rng.gen_range(0..self.actors.auditors.len())];
                    let i = rng.gen_range(0..self.actors.providers.len());
                    let provider = self.actors.providers[i].address();
                    (
                        a,
                        Msg::SignProviderAttributes {
                            provider,
                            attributes: self.actors.provider_attributes(i),
                        },
                    )
                }
                28..=42 => {
                    let t = &self.actors.tenants[rng.gen_range(0..self.actors.tenants.len())];
                    let denom = if rng.gen_bool(0.5) { ugrid() } else { uusdc() };
                    let groups = (0..rng.gen_range(1..=2))
                        .map(|g| random_group(&mut rng, &format!("g{g}"), &denom, &auditors))
                        .collect();
                    let deposit = if bad { 1 } else { rng.gen_range(10_000..=60_000) };
                    let dseq = if bad && !deployments.is_empty() {
                        deployments[0].dseq
                    } else {
                        rng.gen_range(1..=1_000_000)
                    };
                    (
                        t,
                        Msg::CreateDeployment {
                            dseq,
                            groups,
                            manifest_hash: [rng.r#gen(); 32],
                            deposit: Coin::new(deposit, &denom),
                        },
                    )
                }
                43..=67 if !open_orders.is_empty() => {
                    let order = open_orders[rng.gen_range(0..open_orders.len())];
                    let i = rng.gen_range(0..self.actors.providers.len());
                    let p = &self.actors.providers[i];
                    let Some(group) = groups.iter().find(|g| g.id == order.group()) else {
                        continue;
                    };
                    let Some(max) =
                        orders.iter().find(|o| o.id == order).map(|o| o.max_price.clone())
                    else {
                        continue;
                    };
                    let price = if bad {
                        DecAmount(max.amount.0 + 1)
                    } else {
                        DecAmount(rng.gen_range(1..=max.amount.0.max(1)))
                    };
                    let offer = offer_for(&group.spec, self.actors.provider_gpu(i));
                    let deposit = Coin::new(5_000, &ugrid());
                    (
                        p,
                        Msg::CreateBid {
                            order,
                            price: DecCoin { denom: max.denom, amount: price },
                            offer,
                            deposit,
                        },
                    )
                }
                68..=72 if !open_bids.is_empty() => {
                    let b = open_bids[rng.gen_range(0..open_bids.len())];
                    let Some(p) = self.actors.by_address(&b.provider) else {
                        continue;
                    };
                    (p, Msg::CloseBid { order: b.order })
                }
                73..=77 if !open_bids.is_empty() => {
                    let b = open_bids[rng.gen_range(0..open_bids.len())];
                    let signer =
                        if bad { self.actors.providers[0].address() } else { b.order.owner };
                    let Some(k) = self.actors.by_address(&signer) else {
                        continue;
                    };
                    (k, Msg::AcceptBid { bid: b })
                }
                78..=84 if !leases.is_empty() => {
                    let l = leases[rng.gen_range(0..leases.len())];
                    let Some(k) = self.actors.by_address(&l.provider) else {
                        continue;
                    };
                    (k, Msg::WithdrawLease { lease: l })
                }
                85..=89 if !leases.is_empty() => {
                    let l = leases[rng.gen_range(0..leases.len())];
                    let signer = if rng.gen_bool(0.5) { l.order.owner } else { l.provider };
                    let signer = if bad {
                        self.actors.auditors.first().map_or(signer, |a| a.address())
                    } else {
                        signer
                    };
                    let Some(k) = self.actors.by_address(&signer) else {
                        continue;
                    };
                    (k, Msg::CloseLease { lease: l })
                }
                90..=95 if !deployments.is_empty() => {
                    let d = deployments[rng.gen_range(0..deployments.len())];
                    let Some(k) = self.actors.by_address(&d.owner) else {
                        continue;
                    };
                    let denom = if rng.gen_bool(0.8) {
                        query::escrow(view, &d).ok().flatten().map_or(ugrid(), |e| e.denom)
                    } else {
                        ugrid()
                    };
                    (
                        k,
                        Msg::DepositDeployment {
                            dseq: d.dseq,
                            amount: Coin::new(rng.gen_range(1..=50_000), &denom),
                        },
                    )
                }
                96..=99 if !deployments.is_empty() => {
                    let d = deployments[rng.gen_range(0..deployments.len())];
                    let Some(k) = self.actors.by_address(&d.owner) else {
                        continue;
                    };
                    (k, Msg::CloseDeployment { dseq: d.dseq })
                }
                100..=103 if !deployments.is_empty() && !auditors.is_empty() => {
                    // The tenant names some of the auditor accounts as monitors.
                    let d = deployments[rng.gen_range(0..deployments.len())];
                    let Some(k) = self.actors.by_address(&d.owner) else {
                        continue;
                    };
                    let n = rng.gen_range(0..=auditors.len().min(3));
                    let mut monitors = auditors[..n].to_vec();
                    if bad && !monitors.is_empty() {
                        monitors.push(monitors[0]);
                    }
                    (k, Msg::SetMonitors { dseq: d.dseq, monitors })
                }
                104..=109 if !leases.is_empty() && !auditors.is_empty() => {
                    // A monitor reports on a few leases, named by their tenant or not.
                    let m = &self.actors.auditors[rng.gen_range(0..self.actors.auditors.len())];
                    let reports = (0..rng.gen_range(1..=4))
                        .map(|_| msg::HealthReport {
                            lease: leases[rng.gen_range(0..leases.len())],
                            up: rng.gen_bool(0.5),
                        })
                        .collect();
                    (m, Msg::ReportHealth { reports })
                }
                _ => continue,
            };
            let addr = key.address();
            let seq = *seqs.entry(addr).or_insert_with(|| {
                query::account(view, &addr).ok().flatten().map_or(0, |a| a.sequence)
            });
            let fee = if bad && rng.gen_bool(0.2) { 1 } else { 100 };
            let use_seq = if bad && rng.gen_bool(0.1) { seq + 7 } else { seq };
            let tx = sign(key, use_seq, fee, vec![msg]);
            if use_seq == seq && fee >= 100 {
                seqs.insert(addr, seq + 1);
            }
            out.push(tx);
        }
        out
    }
}

impl Generator {
    /// One attacking transaction, its signer and (when it uses the signer's sequence) the
    /// sequence after it.
    fn attack(
        &self,
        rng: &mut ChaCha8Rng,
        open_orders: &[OrderId],
        seqs: &BTreeMap<Address, u64>,
        view: &impl StateView,
    ) -> Option<(Address, Tx, Option<u64>)> {
        let next_seq = |k: &Keypair| {
            seqs.get(&k.address()).copied().unwrap_or_else(|| {
                query::account(view, &k.address()).ok().flatten().map_or(0, |a| a.sequence)
            })
        };
        let tenant = &self.actors.tenants[rng.gen_range(0..self.actors.tenants.len())];
        let provider = &self.actors.providers[rng.gen_range(0..self.actors.providers.len())];
        let (key, msgs, gap) = match rng.gen_range(0..6) {
            // Groups whose prices each fit but whose sum (or price × count) overflows.
            0 => {
                let denom = if rng.gen_bool(0.5) { ugrid() } else { uusdc() };
                let groups = (0..rng.gen_range(2..=3))
                    .map(|g| {
                        let mut spec = random_group(rng, &format!("g{g}"), &denom, &[]);
                        for u in &mut spec.resources {
                            u.price.amount = DecAmount(u128::MAX / 10 * rng.gen_range(3..=9));
                            u.count = 1;
                        }
                        spec.resources.truncate(1);
                        spec
                    })
                    .collect();
                let msg = Msg::CreateDeployment {
                    dseq: rng.gen_range(1..=1_000_000),
                    groups,
                    manifest_hash: [rng.r#gen(); 32],
                    deposit: Coin::new(20_000, &denom),
                };
                (tenant, vec![msg], 0)
            }
            // Bid and withdraw in one transaction, over and over.
            1 if !open_orders.is_empty() => {
                let order = open_orders[rng.gen_range(0..open_orders.len())];
                let max = query::order(view, &order).ok().flatten()?.max_price;
                let spec = query::group(view, &order.group()).ok().flatten()?.spec;
                let gpu = self.actors.provider_gpu(rng.gen_range(0..4));
                let bid = Msg::CreateBid {
                    order,
                    price: DecCoin { denom: max.denom, amount: max.amount },
                    offer: offer_for(&spec, gpu),
                    deposit: Coin::new(5_000, &ugrid()),
                };
                (provider, vec![bid, Msg::CloseBid { order }], 0)
            }
            // A sequence far ahead of the account's: never executable.
            2 => {
                let to = tenant.address();
                (tenant, vec![Msg::Send { to, amount: Coin::new(1, &ugrid()) }], 1_000)
            }
            // More replicas and groups than allowed.
            3 => {
                let mut spec = random_group(rng, "huge", &ugrid(), &[]);
                for u in &mut spec.resources {
                    u.count = u32::MAX;
                }
                let msg = Msg::CreateDeployment {
                    dseq: rng.gen_range(1..=1_000_000),
                    groups: vec![spec; rng.gen_range(1..=40)],
                    manifest_hash: [0; 32],
                    deposit: Coin::new(20_000, &ugrid()),
                };
                (tenant, vec![msg], 0)
            }
            // Reopening somebody else's order, or one whose auction still runs.
            4 if !open_orders.is_empty() => {
                let order = open_orders[rng.gen_range(0..open_orders.len())];
                let signer = if rng.gen_bool(0.5) {
                    self.actors.by_address(&order.owner).unwrap_or(tenant)
                } else {
                    provider
                };
                (signer, vec![Msg::ReopenOrder { order }], 0)
            }
            // Signing attributes without being a registered auditor.
            _ => {
                let msg = Msg::SignProviderAttributes {
                    provider: provider.address(),
                    attributes: vec![Attribute::new("tier", "platinum")],
                };
                (tenant, vec![msg], 0)
            }
        };
        let seq = next_seq(key);
        let tx = sign(key, seq + gap, 100, msgs);
        Some((key.address(), tx, (gap == 0).then_some(seq + 1)))
    }
}
