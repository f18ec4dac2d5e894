//! Resource units of a group (CPU, memory, storage volumes, GPUs, endpoints), the group
//! specification a tenant orders, and the exact resources a provider offers in a bid.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::amount::{DecAmount, DecCoin, Denom};
use crate::attributes::PlacementRequirements;

/// Largest number of resource units, volumes, GPU options or endpoints in one group.
pub const MAX_LIST_LEN: usize = 64;
/// Largest replica count of one resource unit.
pub const MAX_COUNT: u32 = 10_000;

/// A storage volume: size in bytes, optional class (`beta2`, `ram`, ...) and persistence.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct StorageVolume {
    pub name: String,
    pub bytes: u64,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub persistent: bool,
}

/// One acceptable GPU. `model: None` is the wildcard (any model of the vendor).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct GpuSpec {
    pub vendor: String,
    #[serde(default)]
    pub model: Option<String>,
    /// Memory size as written in SDL, e.g. `80Gi`.
    #[serde(default)]
    pub ram: Option<String>,
    /// `pcie` or `sxm`.
    #[serde(default)]
    pub interface: Option<String>,
}

/// GPUs a resource unit needs: how many, and which models are acceptable (any of them).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct GpuRequirement {
    pub units: u32,
    #[serde(default)]
    pub options: Vec<GpuSpec>,
}

/// How an endpoint is exposed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    SharedHttp,
    RandomPort,
    LeasedIp,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Endpoint {
    pub kind: EndpointKind,
    #[serde(default)]
    pub sequence_number: u32,
}

/// The resources of one replica.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Resources {
    pub id: u32,
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    #[serde(default)]
    pub storage: Vec<StorageVolume>,
    #[serde(default)]
    pub gpu: GpuRequirement,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// A resource unit of a group: `count` replicas of `resources`, each at most `price` per block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ResourceUnit {
    pub resources: Resources,
    pub count: u32,
    pub price: DecCoin,
}

/// Why a group cannot be ordered, in one sentence (it becomes the receipt's log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidGroup(pub String);

/// What a tenant orders for one group.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct GroupSpec {
    pub name: String,
    #[serde(default)]
    pub requirements: PlacementRequirements,
    pub resources: Vec<ResourceUnit>,
    /// A replica of a service that must not share a provider: a provider holds at most one
    /// lease among a deployment's groups that say so (gridlease's SDL extension
    /// `x-gridlease.replicas` sets it; Akash files never do).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub distinct_providers: bool,
    /// How the group's auctions pick the winner (`x-gridlease.auction`).
    #[serde(default, skip_serializing_if = "BidPolicy::is_price")]
    pub bid_policy: BidPolicy,
    /// The service level the tenant asks of each lease (`x-gridlease.sla`); without it a
    /// failover costs the provider the chain's `sla_penalty_ppm` of its bid deposit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
}

/// A lease's service level: in each period of `period_blocks` from the lease's start, its
/// monitors may hold it down for `allowed_down_ppm` of the period; a period past that is a
/// breach, and each breach, like a failover, moves `penalty_ppm` of the provider's bid
/// deposit to the tenant. The down blocks themselves are never paid, breach or not.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Sla {
    pub period_blocks: u64,
    pub allowed_down_ppm: u32,
    pub penalty_ppm: u32,
}

/// Shortest SLA period: a hundred blocks.
pub const MIN_SLA_PERIOD_BLOCKS: u64 = 100;
/// Longest SLA period: about three years of one-second blocks.
pub const MAX_SLA_PERIOD_BLOCKS: u64 = 100_000_000;

impl Sla {
    /// Down blocks a period allows.
    pub fn allowed_blocks(&self) -> u64 {
        u64::try_from(
            u128::from(self.period_blocks) * u128::from(self.allowed_down_ppm) / 1_000_000,
        )
        .unwrap_or(u64::MAX)
    }

    fn check(&self) -> Result<(), String> {
        if !(MIN_SLA_PERIOD_BLOCKS..=MAX_SLA_PERIOD_BLOCKS).contains(&self.period_blocks) {
            return Err(format!(
                "an SLA period must be {MIN_SLA_PERIOD_BLOCKS} to {MAX_SLA_PERIOD_BLOCKS} blocks, not {}",
                self.period_blocks
            ));
        }
        if self.allowed_down_ppm > 1_000_000 || self.penalty_ppm > 1_000_000 {
            return Err("an SLA's allowed downtime and penalty are at most 1,000,000 ppm".into());
        }
        Ok(())
    }
}

/// How an auction picks its winner among the open bids.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BidPolicy {
    /// The lowest price wins (the earliest bid among equal prices).
    #[default]
    Price,
    /// The lowest price weighted by the bidder's uptime record wins: each 0.1% of recorded
    /// downtime weighs as 1% more price (see `ProviderUptime::weighed_uptime_ppm`).
    Reliability,
}

impl BidPolicy {
    pub fn is_price(&self) -> bool {
        *self == BidPolicy::Price
    }

    /// What a bid of `price` (base units, or any fixed scale) from a provider whose weighed
    /// uptime is `uptime_ppm` counts as in the auction: the price itself, or under
    /// `Reliability` the price times (1 + 10 x the downtime share). The lowest score wins.
    pub fn score(self, price: u128, uptime_ppm: u64) -> u128 {
        match self {
            BidPolicy::Price => price,
            BidPolicy::Reliability => {
                let down_ppm = 1_000_000u128.saturating_sub(u128::from(uptime_ppm));
                let weight = 1_000_000 + 10 * down_ppm;
                match price.checked_mul(weight) {
                    Some(x) => x / 1_000_000,
                    None => (price / 1_000_000).saturating_mul(weight),
                }
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BidPolicy::Price => "price",
            BidPolicy::Reliability => "reliability",
        }
    }
}

/// Why a group has no total price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("a group needs at least one resource unit")]
    NoResources,
    #[error("a group prices in both {0} and {1}: use one denomination")]
    MixedDenoms(Denom, Denom),
    #[error("the group's total price (price times count) overflows")]
    Overflow,
}

/// The exact GPU a provider offers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct GpuOffer {
    pub units: u32,
    pub vendor: String,
    pub model: String,
    pub ram: String,
    pub interface: String,
}

/// What a provider offers for one resource unit of the order, in the same position.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ResourceOffer {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    #[serde(default)]
    pub storage: Vec<StorageVolume>,
    #[serde(default)]
    pub gpu: Option<GpuOffer>,
    pub count: u32,
}

impl GpuSpec {
    /// Whether an offered GPU is one of the models this spec accepts.
    pub fn accepts(&self, offer: &GpuOffer) -> bool {
        let eq = |want: &Option<String>, got: &str| {
            want.as_deref().is_none_or(|w| w == "*" || w.eq_ignore_ascii_case(got))
        };
        self.vendor.eq_ignore_ascii_case(&offer.vendor)
            && eq(&self.model, &offer.model)
            && eq(&self.ram, &offer.ram)
            && eq(&self.interface, &offer.interface)
    }
}

impl ResourceUnit {
    /// Why `offer` does not provide this unit, or `None` when it does.
    pub fn offer_mismatch(&self, offer: &ResourceOffer) -> Option<String> {
        let r = &self.resources;
        if offer.count != self.count {
            return Some(format!("offers {} replicas, the order asks {}", offer.count, self.count));
        }
        if offer.cpu_millis < r.cpu_millis {
            return Some(format!(
                "offers {}m cpu, the order asks {}m",
                offer.cpu_millis, r.cpu_millis
            ));
        }
        if offer.memory_bytes < r.memory_bytes {
            return Some(format!(
                "offers {} bytes of memory, the order asks {}",
                offer.memory_bytes, r.memory_bytes
            ));
        }
        if offer.storage.len() != r.storage.len() {
            return Some(format!(
                "offers {} storage volumes, the order asks {}",
                offer.storage.len(),
                r.storage.len()
            ));
        }
        for (want, got) in r.storage.iter().zip(&offer.storage) {
            if want.name != got.name || want.class != got.class || want.persistent != got.persistent
            {
                return Some(format!(
                    "storage volume `{}` differs in name, class or persistence",
                    want.name
                ));
            }
            if got.bytes < want.bytes {
                return Some(format!("storage volume `{}` is smaller than asked", want.name));
            }
        }
        match (&offer.gpu, r.gpu.units) {
            (None, 0) => None,
            (None, n) => Some(format!("offers no GPU, the order asks {n}")),
            (Some(g), n) if g.units != n => {
                Some(format!("offers {} GPUs, the order asks {n}", g.units))
            }
            (Some(_), 0) => None,
            (Some(g), _) => {
                if g.model.is_empty() {
                    Some("a GPU offer must name the exact model".to_string())
                } else if r.gpu.options.is_empty() || r.gpu.options.iter().any(|o| o.accepts(g)) {
                    None
                } else {
                    Some(format!("GPU {}/{} is not among the accepted models", g.vendor, g.model))
                }
            }
        }
    }
}

impl GroupSpec {
    /// The highest total price per block the tenant accepts: the sum of price × count.
    pub fn max_price(&self) -> Result<DecCoin, PriceError> {
        let first = self.resources.first().ok_or(PriceError::NoResources)?;
        let denom: &Denom = &first.price.denom;
        let mut total = DecAmount::ZERO;
        for unit in &self.resources {
            if &unit.price.denom != denom {
                return Err(PriceError::MixedDenoms(denom.clone(), unit.price.denom.clone()));
            }
            total = unit
                .price
                .amount
                .checked_mul_int(u128::from(unit.count))
                .and_then(|p| total.checked_add(p))
                .map_err(|_| PriceError::Overflow)?;
        }
        Ok(DecCoin { denom: denom.clone(), amount: total })
    }

    /// Structural checks a group must pass to be ordered.
    pub fn validate(&self) -> Result<(), InvalidGroup> {
        self.check().map_err(InvalidGroup)
    }

    fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > 128 {
            return Err("group name must be 1 to 128 characters".into());
        }
        if self.resources.is_empty() || self.resources.len() > MAX_LIST_LEN {
            return Err(format!("group `{}` needs 1 to {MAX_LIST_LEN} resource units", self.name));
        }
        if self.requirements.attributes.len() > MAX_LIST_LEN
            || self.requirements.signed_by.all_of.len() > MAX_LIST_LEN
            || self.requirements.signed_by.any_of.len() > MAX_LIST_LEN
        {
            return Err(format!("group `{}` has too many requirements", self.name));
        }
        for u in &self.resources {
            let r = &u.resources;
            if u.count == 0 || u.count > MAX_COUNT {
                return Err(format!("resource unit {} count must be 1 to {MAX_COUNT}", r.id));
            }
            if r.cpu_millis == 0 || r.memory_bytes == 0 {
                return Err(format!("resource unit {} needs cpu and memory above zero", r.id));
            }
            if r.storage.len() > MAX_LIST_LEN
                || r.gpu.options.len() > MAX_LIST_LEN
                || r.endpoints.len() > MAX_LIST_LEN
            {
                return Err(format!("resource unit {} has too many entries", r.id));
            }
            if r.gpu.units == 0 && !r.gpu.options.is_empty() {
                return Err(format!("resource unit {} lists GPU models but asks 0 GPUs", r.id));
            }
            if u.price.amount.is_zero() {
                return Err(format!("resource unit {} must have a price above zero", r.id));
            }
        }
        if let Some(sla) = &self.sla {
            sla.check().map_err(|e| format!("group `{}`: {e}", self.name))?;
        }
        self.max_price().map(|_| ()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod bid_policy_tests {
    use super::BidPolicy;

    #[test]
    fn reliability_weighs_each_tenth_of_a_percent_down_as_a_percent_of_price() {
        assert_eq!(BidPolicy::Price.score(1_000, 500_000), 1_000);
        assert_eq!(BidPolicy::Reliability.score(1_000, 1_000_000), 1_000);
        assert_eq!(BidPolicy::Reliability.score(1_000, 999_000), 1_010);
        assert_eq!(BidPolicy::Reliability.score(1_000, 990_000), 1_100);
        assert_eq!(BidPolicy::Reliability.score(1_000, 0), 11_000);
        // Huge prices do not overflow; they keep their order.
        let big = BidPolicy::Reliability.score(u128::MAX / 2, 990_000);
        assert!(big > BidPolicy::Reliability.score(u128::MAX / 4, 990_000));
    }
}
