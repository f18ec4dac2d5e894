//! The market a seeding run creates, decided before anything is sent: each provider's GPU,
//! region and tier, each deployment's groups and maximum prices, and which providers bid on
//! each order at which price. Pure and deterministic: one seed, one plan.

use gridlease_types::msg::ProviderInfo;
use gridlease_types::{
    Attribute, Coin, DecAmount, DecCoin, Denom, Endpoint, EndpointKind, GpuOffer, GpuRequirement,
    GpuSpec, GroupSpec, Msg, OrderId, PlacementRequirements, ResourceOffer, ResourceUnit,
    Resources, StorageVolume,
};

/// One 18-decimal unit of a price, in atto-units.
const DEC_ONE: u128 = 1_000_000_000_000_000_000;
const GIB: u64 = 1 << 30;

/// A GPU model a provider offers, with the price level tenants pay per GPU and block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuModel {
    pub name: &'static str,
    pub ram: &'static str,
    pub interface: &'static str,
    /// Base price of one GPU for one block, in base units of the stable denominations
    /// (about $2, $1.20, $0.80 and $0.40 an hour with one-second blocks).
    pub price_per_gpu: u128,
}

pub const VENDOR: &str = "nvidia";

pub const MODELS: [GpuModel; 4] = [
    GpuModel { name: "h100", ram: "80Gi", interface: "sxm", price_per_gpu: 550 },
    GpuModel { name: "a100", ram: "80Gi", interface: "sxm", price_per_gpu: 330 },
    GpuModel { name: "l40s", ram: "48Gi", interface: "pcie", price_per_gpu: 220 },
    GpuModel { name: "rtx4090", ram: "24Gi", interface: "pcie", price_per_gpu: 110 },
];

pub const REGIONS: [&str; 4] = ["us-east", "us-west", "eu-central", "ap-southeast"];
const TIERS: [&str; 3] = ["datacenter", "enterprise", "community"];
const WORKLOADS: [&str; 6] = ["inference", "training", "finetune", "embeddings", "render", "batch"];
/// GPUs a group asks, and how often (out of 10).
const GPU_COUNTS: [(u32, u64); 4] = [(1, 4), (2, 3), (4, 2), (8, 1)];
/// Groups per deployment, drawn uniformly from this list.
const GROUPS_PER_DEPLOYMENT: [usize; 5] = [1, 1, 1, 2, 3];

/// What shapes a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanSettings {
    pub seed: u64,
    pub providers: usize,
    pub tenants: usize,
    /// Orders (one group each) to create; each becomes one lease.
    pub leases: usize,
    /// Most bids on one order (at least 1).
    pub max_bids: usize,
    /// How many escrow denominations deployments choose among (at least 1).
    pub denoms: usize,
    /// Most groups in one deployment (the chain's `max_groups`).
    pub max_groups: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderPlan {
    /// Index into [`MODELS`].
    pub model: usize,
    /// Index into [`REGIONS`].
    pub region: usize,
    pub tier: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BidPlan {
    /// Provider index.
    pub provider: usize,
    /// Price per block, atto-units.
    pub price: u128,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPlan {
    pub name: String,
    pub model: usize,
    pub gpus: u32,
    /// A required `region` attribute.
    pub region: Option<usize>,
    /// The most the tenant pays per block, atto-units.
    pub max_price: u128,
    /// Distinct providers, all offering `model` (and in `region`), at distinct prices.
    pub bids: Vec<BidPlan>,
}

impl GroupPlan {
    /// The bid the auction picks: the lowest price (prices within an order are distinct).
    pub fn winner(&self) -> Option<&BidPlan> {
        self.bids.iter().min_by_key(|b| b.price)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentPlan {
    /// Tenant index (0-based among the tenants).
    pub tenant: usize,
    /// This deployment's position among its tenant's (0-based).
    pub nth: u64,
    /// Index into the run's escrow denominations.
    pub denom: usize,
    pub groups: Vec<GroupPlan>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketPlan {
    pub providers: Vec<ProviderPlan>,
    pub deployments: Vec<DeploymentPlan>,
}

/// splitmix64: a small, fast, seedable stream; enough to vary a benchmark's market.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Provider `index`'s GPU, region and tier: a function of the index alone, so the same
/// account gets the same plan whatever the run's sizes. Models go round-robin, so any four
/// consecutive providers cover every model.
pub fn provider_plan(seed: u64, index: usize) -> ProviderPlan {
    let mut rng = Rng::new(seed, 1 << 32 | index as u64);
    ProviderPlan {
        model: index % MODELS.len(),
        region: (index / MODELS.len()) % REGIONS.len(),
        tier: TIERS[rng.below(TIERS.len())],
    }
}

impl MarketPlan {
    pub fn new(s: &PlanSettings) -> MarketPlan {
        let providers: Vec<ProviderPlan> =
            (0..s.providers).map(|i| provider_plan(s.seed, i)).collect();
        let mut by_model = vec![Vec::new(); MODELS.len()];
        let mut by_model_region = vec![vec![Vec::new(); REGIONS.len()]; MODELS.len()];
        for (i, p) in providers.iter().enumerate() {
            by_model[p.model].push(i);
            by_model_region[p.model][p.region].push(i);
        }
        let offered: Vec<usize> = (0..MODELS.len()).filter(|m| !by_model[*m].is_empty()).collect();
        let mut deployments = Vec::new();
        if offered.is_empty() || s.tenants == 0 {
            return MarketPlan { providers, deployments };
        }
        let mut rng = Rng::new(s.seed, 2);
        let mut left = s.leases;
        let mut d = 0usize;
        while left > 0 {
            let n_groups = GROUPS_PER_DEPLOYMENT[rng.below(GROUPS_PER_DEPLOYMENT.len())]
                .min(s.max_groups.max(1))
                .min(left);
            let groups = (0..n_groups)
                .map(|g| {
                    let model = offered[rng.below(offered.len())];
                    let gpus = draw_gpus(&mut rng);
                    // A quarter of the groups insist on a region: one where the model is found.
                    let region = (rng.below(4) == 0).then(|| {
                        let some = &by_model[model];
                        providers[some[rng.below(some.len())]].region
                    });
                    let candidates = match region {
                        Some(r) => &by_model_region[model][r],
                        None => &by_model[model],
                    };
                    let workload = WORKLOADS[rng.below(WORKLOADS.len())];
                    let name = if n_groups == 1 {
                        workload.to_string()
                    } else {
                        format!("{workload}-{}", g + 1)
                    };
                    // 1.000 to 1.499 times the model's level, per GPU.
                    let markup = 1_000 + rng.below(500) as u128;
                    let max_price =
                        MODELS[model].price_per_gpu * u128::from(gpus) * markup * (DEC_ONE / 1_000);
                    let bids = draw_bids(&mut rng, candidates, s.max_bids, max_price);
                    GroupPlan { name, model, gpus, region, max_price, bids }
                })
                .collect();
            deployments.push(DeploymentPlan {
                tenant: d % s.tenants,
                nth: (d / s.tenants) as u64,
                denom: rng.below(s.denoms.max(1)),
                groups,
            });
            left -= n_groups;
            d += 1;
        }
        MarketPlan { providers, deployments }
    }

    pub fn orders(&self) -> usize {
        self.deployments.iter().map(|d| d.groups.len()).sum()
    }

    pub fn bids(&self) -> usize {
        self.deployments.iter().flat_map(|d| &d.groups).map(|g| g.bids.len()).sum()
    }
}

fn draw_gpus(rng: &mut Rng) -> u32 {
    let total: u64 = GPU_COUNTS.iter().map(|(_, w)| w).sum();
    let mut pick = rng.next() % total;
    for (n, w) in GPU_COUNTS {
        if pick < w {
            return n;
        }
        pick -= w;
    }
    1
}

/// 1 to `max_bids` distinct providers among `candidates`, each at a distinct price from 60.0%
/// to 99.9% of `max_price`.
fn draw_bids(
    rng: &mut Rng,
    candidates: &[usize],
    max_bids: usize,
    max_price: u128,
) -> Vec<BidPlan> {
    let n = (1 + rng.below(max_bids.max(1))).min(candidates.len());
    let mut bids: Vec<BidPlan> = Vec::with_capacity(n);
    while bids.len() < n {
        let provider = candidates[rng.below(candidates.len())];
        let permille = 600 + rng.below(400) as u128;
        let price = max_price / 1_000 * permille;
        if bids.iter().all(|b| b.provider != provider && b.price != price) {
            bids.push(BidPlan { provider, price });
        }
    }
    bids
}

/// The attributes a provider publishes.
pub fn provider_attributes(p: &ProviderPlan) -> Vec<Attribute> {
    let model = MODELS[p.model].name;
    vec![
        Attribute::new("region", REGIONS[p.region]),
        Attribute::new("tier", p.tier),
        Attribute::new(&format!("capabilities/gpu/vendor/{VENDOR}/model/{model}"), "true"),
        Attribute::new("host", "gridlease-loadgen"),
    ]
}

/// `CreateProvider` of provider `index`.
pub fn provider_msg(index: usize, p: &ProviderPlan) -> Msg {
    Msg::CreateProvider {
        host_uri: format!("https://provider-{index}.invalid:8443"),
        attributes: provider_attributes(p),
        info: ProviderInfo {
            email: format!("ops@provider-{index}.invalid"),
            website: format!("https://provider-{index}.invalid"),
        },
    }
}

fn resources(g: &GroupPlan) -> Resources {
    let model = &MODELS[g.model];
    let gpus = u64::from(g.gpus);
    Resources {
        id: 1,
        cpu_millis: 8_000 * gpus,
        memory_bytes: 64 * GIB * gpus,
        storage: vec![StorageVolume {
            name: "data".into(),
            bytes: 256 * GIB * gpus,
            class: None,
            persistent: false,
        }],
        gpu: GpuRequirement {
            units: g.gpus,
            options: vec![GpuSpec {
                vendor: VENDOR.into(),
                model: Some(model.name.into()),
                ram: Some(model.ram.into()),
                interface: None,
            }],
        },
        endpoints: vec![Endpoint { kind: EndpointKind::SharedHttp, sequence_number: 0 }],
    }
}

/// The group spec of `g`, priced in `denom`.
pub fn group_spec(g: &GroupPlan, denom: &Denom) -> GroupSpec {
    let mut requirements = PlacementRequirements::default();
    if let Some(r) = g.region {
        requirements.attributes.push(Attribute::new("region", REGIONS[r]));
    }
    GroupSpec {
        name: g.name.clone(),
        requirements,
        resources: vec![ResourceUnit {
            resources: resources(g),
            count: 1,
            price: DecCoin { denom: denom.clone(), amount: DecAmount(g.max_price) },
        }],
        distinct_providers: false,
        bid_policy: Default::default(),
        sla: None,
    }
}

/// The deposit that pays every group of `d` at its maximum price for `blocks` blocks, and at
/// least `min`.
pub fn deposit_amount(d: &DeploymentPlan, blocks: u64, min: u128) -> u128 {
    let per_block: u128 = d.groups.iter().map(|g| g.max_price).sum();
    per_block.saturating_mul(u128::from(blocks)).div_ceil(DEC_ONE).max(min)
}

/// A manifest hash that differs per deployment (no manifest is ever sent: there is no
/// provider daemon behind these providers).
fn manifest_hash(tenant: usize, nth: u64) -> [u8; 32] {
    let mut rng = Rng::new(tenant as u64, 3 << 32 | nth);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    out
}

/// `CreateDeployment` of `d` as `dseq`.
pub fn deployment_msg(d: &DeploymentPlan, dseq: u64, denom: &Denom, deposit: u128) -> Msg {
    Msg::CreateDeployment {
        dseq,
        groups: d.groups.iter().map(|g| group_spec(g, denom)).collect(),
        manifest_hash: manifest_hash(d.tenant, d.nth),
        deposit: Coin::new(deposit, denom),
    }
}

/// `CreateBid` of `bid` on `order` (the order of group `g`).
pub fn bid_msg(order: OrderId, g: &GroupPlan, bid: &BidPlan, denom: &Denom, deposit: &Coin) -> Msg {
    let model = &MODELS[g.model];
    let r = resources(g);
    Msg::CreateBid {
        order,
        price: DecCoin { denom: denom.clone(), amount: DecAmount(bid.price) },
        offer: vec![ResourceOffer {
            cpu_millis: r.cpu_millis,
            memory_bytes: r.memory_bytes,
            storage: r.storage,
            gpu: Some(GpuOffer {
                units: g.gpus,
                vendor: VENDOR.into(),
                model: model.name.into(),
                ram: model.ram.into(),
                interface: model.interface.into(),
            }),
            count: 1,
        }],
        deposit: deposit.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridlease_types::attributes::attributes_satisfied;

    fn settings(providers: usize, leases: usize) -> PlanSettings {
        PlanSettings {
            seed: 7,
            providers,
            tenants: 10,
            leases,
            max_bids: 3,
            denoms: 2,
            max_groups: 20,
        }
    }

    #[test]
    fn the_plan_is_deterministic_and_has_one_order_per_lease() {
        let s = settings(40, 500);
        let plan = MarketPlan::new(&s);
        assert_eq!(plan, MarketPlan::new(&s));
        assert_ne!(plan, MarketPlan::new(&PlanSettings { seed: 8, ..s.clone() }));
        assert_eq!(plan.orders(), 500);
        assert_eq!(plan.providers.len(), 40);
        // Tenants take turns, and each tenant's deployments count up from 0.
        for (i, d) in plan.deployments.iter().enumerate() {
            assert_eq!((d.tenant, d.nth), (i % 10, (i / 10) as u64));
            assert!(!d.groups.is_empty() && d.groups.len() <= 3);
            assert!(d.denom < 2);
        }
        assert!(plan.deployments.iter().any(|d| d.groups.len() > 1));
        assert!(plan.deployments.iter().any(|d| d.denom == 0));
        assert!(plan.deployments.iter().any(|d| d.denom == 1));
        // A provider's plan depends on its index, not on the run's size.
        assert_eq!(MarketPlan::new(&settings(400, 10)).providers[..40], plan.providers[..]);
    }

    #[test]
    fn every_bid_is_one_the_chain_accepts_and_the_cheapest_wins() {
        let plan = MarketPlan::new(&settings(40, 2_000));
        let usdc = Denom::new("uusdc").unwrap();
        let deposit = Coin::new(500_000, &Denom::new("ugrid").unwrap());
        let mut bid_counts = [0usize; 4];
        for d in &plan.deployments {
            let mut names: Vec<&str> = d.groups.iter().map(|g| g.name.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), d.groups.len(), "group names are unique");
            for g in &d.groups {
                let spec = group_spec(g, &usdc);
                spec.validate().unwrap();
                assert!((1..=3).contains(&g.bids.len()));
                bid_counts[g.bids.len()] += 1;
                let mut bidders: Vec<usize> = g.bids.iter().map(|b| b.provider).collect();
                bidders.sort();
                bidders.dedup();
                assert_eq!(bidders.len(), g.bids.len(), "bidders are distinct");
                for b in &g.bids {
                    assert!(b.price > 0 && b.price <= g.max_price);
                    let p = &plan.providers[b.provider];
                    assert_eq!(p.model, g.model);
                    assert!(attributes_satisfied(
                        &spec.requirements.attributes,
                        &provider_attributes(p)
                    ));
                    let order = OrderId {
                        owner: gridlease_types::Address([1; 20]),
                        dseq: 1,
                        gseq: 1,
                        oseq: 1,
                    };
                    let Msg::CreateBid { offer, price, .. } = bid_msg(order, g, b, &usdc, &deposit)
                    else {
                        unreachable!()
                    };
                    assert_eq!(spec.resources[0].offer_mismatch(&offer[0]), None);
                    assert!(price.amount <= spec.max_price().unwrap().amount);
                }
                let winner = g.winner().unwrap();
                assert!(g.bids.iter().all(|b| b.price >= winner.price));
                assert_eq!(g.bids.iter().filter(|b| b.price == winner.price).count(), 1);
            }
        }
        // Auctions with one, two and three bidders, so there are losers too.
        assert!(bid_counts[1] > 0 && bid_counts[2] > 0 && bid_counts[3] > 0);
    }

    #[test]
    fn few_providers_still_get_a_plan() {
        // Fewer providers than models: only the offered models are ordered, and no order asks
        // for more bidders than there are.
        let plan = MarketPlan::new(&settings(2, 50));
        assert_eq!(plan.orders(), 50);
        for g in plan.deployments.iter().flat_map(|d| &d.groups) {
            assert!(g.model < 2);
            assert_eq!(g.bids.len(), 1);
        }
        assert_eq!(MarketPlan::new(&settings(0, 50)).orders(), 0);
    }

    #[test]
    fn deposits_cover_the_maximum_price_and_the_minimum() {
        let plan = MarketPlan::new(&settings(8, 30));
        let d = &plan.deployments[0];
        let per_block: u128 = d.groups.iter().map(|g| g.max_price).sum();
        let amount = deposit_amount(d, 1_000, 0);
        assert!(amount * DEC_ONE >= per_block * 1_000);
        assert!((amount - 1) * DEC_ONE < per_block * 1_000);
        assert_eq!(deposit_amount(d, 1, u128::MAX), u128::MAX);
    }
}
