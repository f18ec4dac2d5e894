//! The bid decision: does this provider bid on an order, with which exact resources and at
//! what price. Pure and synchronous, so it can be tested and benchmarked without a chain;
//! the daemon feeds it orders from the event stream and submits the bids.

use gridlease_client::AuditRecord;
use gridlease_types::attributes::attributes_satisfied;
use gridlease_types::{
    Attribute, DecAmount, DecCoin, EndpointKind, GroupSpec, OrderId, ResourceOffer,
};

use crate::config::Rates;
use crate::inventory::GpuDevice;
use crate::pricing;
use crate::reserve::{Hold, Reservations, UnitRequest};

/// What the provider knows about itself when it decides.
#[derive(Clone, Debug)]
pub struct BidContext {
    /// Attributes published on chain.
    pub attributes: Vec<Attribute>,
    /// Attributes auditors signed for this provider.
    pub audits: Vec<AuditRecord>,
    /// Storage classes offered (`default` stands for volumes without class).
    pub storage_classes: Vec<String>,
    pub rates: Rates,
}

/// A bid ready to be priced (when a script prices) and submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    pub offer: Vec<ResourceOffer>,
    pub hold: Hold,
    /// The price from the rates.
    pub price: DecCoin,
}

/// Why the provider does not bid: the reason's kind, its words (for `provider status`, the
/// log and the tenant), and the change to the order that would get a bid, where one would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub reason: DeclineReason,
    pub detail: String,
    pub suggestion: Option<String>,
}

impl Skip {
    fn new(reason: DeclineReason, detail: impl Into<String>) -> Skip {
        Skip { reason, detail: detail.into(), suggestion: None }
    }

    fn suggest(mut self, suggestion: impl Into<String>) -> Skip {
        self.suggestion = Some(suggestion.into());
        self
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

pub use crate::api::DeclineReason;

/// At most this many items are listed in a suggestion (attributes, classes, models).
const LISTED: usize = 8;

fn listed<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let all: Vec<String> = items.map(|i| i.to_string()).collect();
    let mut text = all.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > LISTED {
        text.push_str(&format!(" and {} more", all.len() - LISTED));
    }
    text
}

fn gpu_rate(rates: &Rates, g: &GpuDevice) -> u128 {
    rates.gpu.get(&g.model.to_lowercase()).copied().unwrap_or(rates.gpu_default).atto()
}

/// Decides on `order` for group `spec`, holding the offered resources when it bids. On a
/// skip nothing stays held.
pub fn decide(
    ctx: &BidContext,
    reservations: &mut Reservations,
    order: &OrderId,
    max_price: &DecCoin,
    spec: &GroupSpec,
) -> Result<Matched, Skip> {
    if max_price.denom != ctx.rates.denom && !ctx.rates.exchange.contains_key(&max_price.denom) {
        let accepted = std::iter::once(ctx.rates.denom.to_string())
            .chain(ctx.rates.exchange.keys().map(|d| d.to_string()));
        return Err(Skip::new(
            DeclineReason::Denomination,
            format!(
                "the order pays in {}, this provider prices in {} and has no exchange rate for {} (pricing.exchange)",
                max_price.denom, ctx.rates.denom, max_price.denom
            ),
        )
        .suggest(format!("price the order in one of: {}", listed(accepted))));
    }
    if let Some(sla) = &spec.sla {
        if sla.penalty_ppm > ctx.rates.max_sla_penalty_ppm {
            return Err(Skip::new(
                DeclineReason::Sla,
                format!(
                    "the SLA's penalty ({} ppm of the bid deposit per breach) is above this provider's limit ({} ppm, pricing.max_sla_penalty_ppm)",
                    sla.penalty_ppm, ctx.rates.max_sla_penalty_ppm
                ),
            )
            .suggest(format!(
                "ask for an SLA penalty of at most {}%",
                ppm_percent(ctx.rates.max_sla_penalty_ppm)
            )));
        }
        if sla.period_blocks < ctx.rates.min_sla_period_blocks {
            return Err(Skip::new(
                DeclineReason::Sla,
                format!(
                    "the SLA's period ({} blocks) is shorter than this provider accepts ({} blocks, pricing.min_sla_period_blocks)",
                    sla.period_blocks, ctx.rates.min_sla_period_blocks
                ),
            )
            .suggest(format!(
                "ask for an SLA period of at least {} blocks",
                ctx.rates.min_sla_period_blocks
            )));
        }
    }
    let req = &spec.requirements;
    if !attributes_satisfied(&req.attributes, &ctx.attributes) {
        let missing: Vec<String> = req
            .attributes
            .iter()
            .filter(|r| !ctx.attributes.contains(r))
            .map(|a| format!("{}={}", a.key, a.value))
            .collect();
        let offered = if ctx.attributes.is_empty() {
            "this provider publishes no attributes".to_string()
        } else {
            format!(
                "this provider offers {}",
                listed(ctx.attributes.iter().map(|a| format!("{}={}", a.key, a.value)))
            )
        };
        return Err(Skip::new(
            DeclineReason::Attributes,
            format!("attributes not offered: {}", missing.join(", ")),
        )
        .suggest(format!("drop or change {}: {offered}", missing.join(", "))));
    }
    if !req.signed_by.is_empty() {
        let audited = |auditor: &gridlease_types::Address| {
            ctx.audits.iter().find(|a| &a.auditor == auditor).map(|a| a.attributes.as_slice())
        };
        if !req.signed_by_satisfied(audited) {
            let skip = Skip::new(
                DeclineReason::SignedBy,
                "the required auditors have not signed these attributes",
            );
            return Err(if ctx.audits.is_empty() {
                skip.suggest("drop signedBy: no auditor has signed this provider's attributes")
            } else {
                skip.suggest(format!(
                    "this provider's attributes are signed by {}",
                    listed(ctx.audits.iter().map(|a| a.auditor))
                ))
            });
        }
    }
    let mut units = Vec::with_capacity(spec.resources.len());
    for unit in &spec.resources {
        let r = &unit.resources;
        for v in &r.storage {
            let class = v.class.as_deref().unwrap_or("default");
            if !ctx.storage_classes.iter().any(|c| c == class) {
                return Err(Skip::new(
                    DeclineReason::StorageClass,
                    format!("storage class `{class}` is not offered"),
                )
                .suggest(format!(
                    "use a storage class this provider offers: {}",
                    listed(ctx.storage_classes.iter())
                )));
            }
        }
        if r.endpoints.iter().any(|e| e.kind == EndpointKind::LeasedIp) {
            return Err(Skip::new(DeclineReason::LeasedIp, "leased IP endpoints are not offered")
                .suggest("expose the service globally without an IP endpoint"));
        }
        units.push(UnitRequest {
            cpu_millis: r.cpu_millis,
            memory_bytes: r.memory_bytes,
            storage_bytes: r.storage.iter().map(|v| v.bytes).sum(),
            count: unit.count,
            gpu_units: r.gpu.units,
            gpu_options: r.gpu.options.clone(),
        });
    }
    let hold = reservations
        .reserve(order, &units, |g| gpu_rate(&ctx.rates, g))
        .map_err(|s| shortfall(s, &reservations.free(), &units))?;
    let offer: Vec<ResourceOffer> = spec
        .resources
        .iter()
        .zip(&hold.units)
        .map(|(unit, alloc)| ResourceOffer {
            cpu_millis: unit.resources.cpu_millis,
            memory_bytes: unit.resources.memory_bytes,
            storage: unit.resources.storage.clone(),
            gpu: alloc.gpu.clone(),
            count: unit.count,
        })
        .collect();
    let price = match pricing::price_offer(&ctx.rates, &offer) {
        Ok(p) => p,
        Err(e) => {
            reservations.release(order);
            return Err(Skip::new(DeclineReason::Other, e.to_string()));
        }
    };
    let Some(price) = ctx.rates.convert(price, &max_price.denom) else {
        reservations.release(order);
        return Err(Skip::new(
            DeclineReason::Denomination,
            format!("our price {price}{} does not convert to {}", ctx.rates.denom, max_price.denom),
        ));
    };
    if let Err(skip) = within_max(price, max_price) {
        reservations.release(order);
        return Err(skip);
    }
    Ok(Matched { offer, hold, price: DecCoin { denom: max_price.denom.clone(), amount: price } })
}

/// Whether a price is at most the order's maximum.
pub fn within_max(price: DecAmount, max_price: &DecCoin) -> Result<(), Skip> {
    if price > max_price.amount {
        let denom = &max_price.denom;
        return Err(Skip::new(
            DeclineReason::Price,
            format!(
                "our price {price}{denom} per block is above the order's maximum {}{denom}",
                max_price.amount
            ),
        )
        .suggest(format!(
            "this provider would bid at {price} {denom}/block; your max is {} {denom}: raise the \
             placement's price to at least {price}",
            max_price.amount
        )));
    }
    Ok(())
}

fn ppm_percent(ppm: u32) -> String {
    let whole = ppm / 10_000;
    let frac = ppm % 10_000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:04}").trim_end_matches('0'))
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// A reservation's shortfall as a decline, with what is free for one replica.
fn shortfall(
    s: crate::reserve::Shortfall,
    free: &crate::reserve::Free,
    units: &[UnitRequest],
) -> Skip {
    use crate::reserve::Shortfall;
    let detail = format!("not enough free resources: {s}");
    let replicas: u64 = units.iter().map(|u| u64::from(u.count)).sum::<u64>().max(1);
    match s {
        Shortfall::Cpu { free: f, .. } => Skip::new(DeclineReason::Cpu, detail).suggest(format!(
            "this provider has {f}m cpu free: ask for at most {}m per replica",
            f / replicas
        )),
        Shortfall::Memory { free: f, .. } => Skip::new(DeclineReason::Memory, detail)
            .suggest(format!("this provider has {} of memory free", mib(f))),
        Shortfall::Storage { free: f, .. } => Skip::new(DeclineReason::Storage, detail)
            .suggest(format!("this provider has {} of storage free", mib(f))),
        Shortfall::Gpu { .. } => {
            let skip = Skip::new(DeclineReason::Gpu, detail);
            let models: Vec<String> = free
                .gpus
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(m, n)| format!("{n}x {m}"))
                .collect();
            if models.is_empty() {
                skip.suggest("this provider has no free GPU now: try again when one is free, or ask another provider")
            } else {
                skip.suggest(format!(
                    "this provider has free: {} (ask for one of these models, or \"*\")",
                    listed(models.iter())
                ))
            }
        }
        Shortfall::Overflow | Shortfall::AlreadyHeld(_) => Skip::new(DeclineReason::Other, detail),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gridlease_types::{
        Address, Denom, GpuRequirement, GpuSpec, PlacementRequirements, ResourceUnit, Resources,
        SignedBy, StorageVolume,
    };

    use super::*;
    use crate::reserve::Capacity;

    fn dec(s: &str) -> DecAmount {
        s.parse().expect("dec")
    }

    fn ctx() -> BidContext {
        BidContext {
            attributes: vec![Attribute::new("region", "eu")],
            audits: vec![AuditRecord {
                provider: Address([9; 20]),
                auditor: Address([1; 20]),
                attributes: vec![Attribute::new("region", "eu")],
            }],
            storage_classes: vec!["default".into(), "beta2".into()],
            rates: Rates {
                denom: Denom::new("uusdc").expect("denom"),
                cpu_per_core: dec("1"),
                memory_per_gib: dec("1"),
                storage_per_gib: dec("0"),
                gpu_default: dec("10"),
                gpu: BTreeMap::from([("a100".into(), dec("30")), ("rtx4090".into(), dec("8"))]),
                exchange: BTreeMap::from([
                    (Denom::new("uact").expect("d"), dec("1")),
                    (Denom::new("uakt").expect("d"), dec("2")),
                ]),
                max_sla_penalty_ppm: 100_000,
                min_sla_period_blocks: 3_600,
            },
        }
    }

    fn gpu(index: u32, model: &str, ram: &str) -> GpuDevice {
        GpuDevice {
            index,
            vendor: "nvidia".into(),
            model: model.into(),
            ram: ram.into(),
            interface: "pcie".into(),
            uuid: None,
            cdi_name: format!("nvidia.com/gpu={index}"),
        }
    }

    fn reservations() -> Reservations {
        Reservations::new(Capacity {
            cpu_millis: 16_000,
            memory_bytes: 64 << 30,
            storage_bytes: 1 << 40,
            gpus: vec![gpu(0, "a100", "80Gi"), gpu(1, "rtx4090", "24Gi")],
        })
    }

    fn spec(gpus: u32, options: Vec<GpuSpec>, class: Option<&str>) -> GroupSpec {
        GroupSpec {
            distinct_providers: false,
            bid_policy: Default::default(),
            sla: None,
            name: "dc".into(),
            requirements: PlacementRequirements {
                attributes: vec![Attribute::new("region", "eu")],
                signed_by: SignedBy::default(),
            },
            resources: vec![ResourceUnit {
                resources: Resources {
                    id: 1,
                    cpu_millis: 2000,
                    memory_bytes: 4 << 30,
                    storage: vec![StorageVolume {
                        name: "default".into(),
                        bytes: 1 << 30,
                        class: class.map(str::to_string),
                        persistent: false,
                    }],
                    gpu: GpuRequirement { units: gpus, options },
                    endpoints: vec![],
                },
                count: 1,
                price: DecCoin { denom: Denom::new("uusdc").expect("d"), amount: dec("100") },
            }],
        }
    }

    fn order() -> OrderId {
        OrderId { owner: Address([2; 20]), dseq: 1, gseq: 1, oseq: 1 }
    }

    /// Every kind of decline says what it is and what change would get a bid.
    #[test]
    fn each_decline_reason_comes_with_its_suggestion() {
        let c = ctx();
        let with = |f: &dyn Fn(&mut GroupSpec)| {
            let mut s = spec(0, vec![], None);
            f(&mut s);
            s
        };
        let res = |f: &dyn Fn(&mut Resources)| with(&|s| f(&mut s.resources[0].resources));
        let usd = max("100");
        let cases: Vec<(GroupSpec, DecCoin, DeclineReason, &str)> = vec![
            (
                spec(0, vec![], None),
                DecCoin { denom: Denom::new("ueur").expect("d"), amount: dec("100") },
                DeclineReason::Denomination,
                "price the order in one of: uusdc, uact, uakt",
            ),
            (
                with(&|s| {
                    s.sla = Some(gridlease_types::Sla {
                        period_blocks: 86_400,
                        allowed_down_ppm: 0,
                        penalty_ppm: 500_000,
                    })
                }),
                usd.clone(),
                DeclineReason::Sla,
                "an SLA penalty of at most 10%",
            ),
            (
                with(&|s| {
                    s.sla = Some(gridlease_types::Sla {
                        period_blocks: 60,
                        allowed_down_ppm: 0,
                        penalty_ppm: 1_000,
                    })
                }),
                usd.clone(),
                DeclineReason::Sla,
                "an SLA period of at least 3600 blocks",
            ),
            (
                with(&|s| s.requirements.attributes = vec![Attribute::new("region", "us")]),
                usd.clone(),
                DeclineReason::Attributes,
                "drop or change region=us: this provider offers region=eu",
            ),
            (
                with(&|s| {
                    s.requirements.signed_by =
                        SignedBy { all_of: vec![Address([7; 20])], any_of: vec![] }
                }),
                usd.clone(),
                DeclineReason::SignedBy,
                "signed by grid1",
            ),
            (
                spec(0, vec![], Some("beta3")),
                usd.clone(),
                DeclineReason::StorageClass,
                "storage class this provider offers: default, beta2",
            ),
            (
                res(&|r| {
                    r.endpoints = vec![gridlease_types::Endpoint {
                        kind: EndpointKind::LeasedIp,
                        sequence_number: 1,
                    }]
                }),
                usd.clone(),
                DeclineReason::LeasedIp,
                "without an IP endpoint",
            ),
            (
                res(&|r| r.cpu_millis = 64_000),
                usd.clone(),
                DeclineReason::Cpu,
                "16000m cpu free: ask for at most 16000m per replica",
            ),
            (
                res(&|r| r.memory_bytes = 128 << 30),
                usd.clone(),
                DeclineReason::Memory,
                "65536 MiB of memory free",
            ),
            (
                res(&|r| r.storage[0].bytes = 2 << 40),
                usd.clone(),
                DeclineReason::Storage,
                "1048576 MiB of storage free",
            ),
            (
                spec(1, vec![nvidia(Some("h100"), None)], None),
                usd.clone(),
                DeclineReason::Gpu,
                "this provider has free: 1x a100, 1x rtx4090",
            ),
            (
                spec(1, vec![nvidia(Some("a100"), None)], None),
                max("5"),
                DeclineReason::Price,
                "would bid at 36.0",
            ),
        ];
        // Every GPU held: no model to suggest.
        let mut busy = reservations();
        for (dseq, model) in [(8, "a100"), (9, "rtx4090")] {
            let one = spec(1, vec![nvidia(Some(model), None)], None);
            decide(&c, &mut busy, &OrderId { dseq, ..order() }, &usd, &one).expect("takes it");
        }
        let e = decide(&c, &mut busy, &order(), &usd, &spec(1, vec![], None)).expect_err("none");
        assert_eq!(e.reason, DeclineReason::Gpu);
        assert!(e.suggestion.as_deref().unwrap_or_default().contains("no free GPU now"), "{e:?}");
        for (s, m, reason, says) in cases {
            let mut r = reservations();
            let e = decide(&c, &mut r, &order(), &m, &s).expect_err(says);
            assert_eq!(e.reason, reason, "{e:?}");
            let suggestion = e.suggestion.clone().unwrap_or_default();
            assert!(suggestion.contains(says), "{reason:?}: {suggestion:?} should say {says:?}");
            assert_eq!(r.holds().count(), 0, "a decline holds nothing");
        }
    }

    fn max(p: &str) -> DecCoin {
        DecCoin { denom: Denom::new("uusdc").expect("d"), amount: dec(p) }
    }

    fn nvidia(model: Option<&str>, ram: Option<&str>) -> GpuSpec {
        GpuSpec {
            vendor: "nvidia".into(),
            model: model.map(str::to_string),
            ram: ram.map(str::to_string),
            interface: None,
        }
    }

    #[test]
    fn bids_the_cheapest_accepted_gpu_with_its_exact_model() {
        let mut r = reservations();
        let m = decide(
            &ctx(),
            &mut r,
            &order(),
            &max("100"),
            &spec(1, vec![nvidia(Some("*"), None)], None),
        )
        .expect("bids");
        let g = m.offer[0].gpu.as_ref().expect("gpu offered");
        assert_eq!(g.model, "rtx4090");
        // 2 cores + 4 GiB + one 4090.
        assert_eq!(m.price, max("14"));
        let mut r = reservations();
        let m = decide(
            &ctx(),
            &mut r,
            &order(),
            &max("100"),
            &spec(1, vec![nvidia(None, Some("80Gi"))], None),
        )
        .expect("bids");
        assert_eq!(m.offer[0].gpu.as_ref().map(|g| g.model.as_str()), Some("a100"));
    }

    #[test]
    fn bids_in_akash_denominations_through_the_exchange_rates() {
        let c = ctx();
        let in_usdc =
            decide(&c, &mut reservations(), &order(), &max("100"), &spec(1, vec![], None))
                .expect("bids in uusdc");
        let denom = |d: &str| Denom::new(d).expect("d");
        let act = DecCoin { denom: denom("uact"), amount: dec("100") };
        let m = decide(&c, &mut reservations(), &order(), &act, &spec(1, vec![], None))
            .expect("bids in uact");
        assert_eq!(m.price, DecCoin { denom: denom("uact"), amount: in_usdc.price.amount });
        // One uakt is worth two uusdc here: half the amount.
        let akt = DecCoin { denom: denom("uakt"), amount: dec("100") };
        let m = decide(&c, &mut reservations(), &order(), &akt, &spec(1, vec![], None))
            .expect("bids in uakt");
        assert_eq!(m.price.denom, denom("uakt"));
        assert_eq!(m.price.amount.atto() * 2, in_usdc.price.amount.atto());
        assert_eq!(c.rates.convert(dec("1"), &denom("uakt")), Some(dec("0.5")));
        assert_eq!(c.rates.convert(dec("1"), &denom("ugrid")), None);
    }

    #[test]
    fn skips_say_why_and_hold_nothing() {
        let c = ctx();
        let mut r = reservations();
        let cases: Vec<(GroupSpec, DecCoin, &str)> = vec![
            (
                spec(1, vec![nvidia(Some("h100"), None)], None),
                max("100"),
                "not enough free resources",
            ),
            (spec(0, vec![], Some("ram")), max("100"), "storage class `ram`"),
            (spec(1, vec![], None), max("5"), "above the order's maximum"),
            (
                spec(0, vec![], None),
                DecCoin { denom: Denom::new("ugrid").expect("d"), amount: dec("9") },
                "no exchange rate for ugrid",
            ),
            (
                GroupSpec {
                    distinct_providers: false,
                    bid_policy: Default::default(),
                    sla: None,
                    requirements: PlacementRequirements {
                        attributes: vec![Attribute::new("region", "us")],
                        ..Default::default()
                    },
                    ..spec(0, vec![], None)
                },
                max("100"),
                "attributes not offered: region=us",
            ),
            (
                GroupSpec {
                    distinct_providers: false,
                    bid_policy: Default::default(),
                    sla: None,
                    requirements: PlacementRequirements {
                        attributes: vec![Attribute::new("region", "eu")],
                        signed_by: SignedBy { all_of: vec![Address([7; 20])], any_of: vec![] },
                    },
                    ..spec(0, vec![], None)
                },
                max("100"),
                "auditors",
            ),
            (
                GroupSpec {
                    sla: Some(gridlease_types::Sla {
                        period_blocks: 86_400,
                        allowed_down_ppm: 0,
                        penalty_ppm: 1_000_000,
                    }),
                    ..spec(0, vec![], None)
                },
                max("100"),
                "above this provider's limit",
            ),
            (
                GroupSpec {
                    sla: Some(gridlease_types::Sla {
                        period_blocks: 100,
                        allowed_down_ppm: 0,
                        penalty_ppm: 50_000,
                    }),
                    ..spec(0, vec![], None)
                },
                max("100"),
                "shorter than this provider accepts",
            ),
        ];
        for (s, m, why) in cases {
            let e = decide(&c, &mut r, &order(), &m, &s).expect_err(why);
            assert!(e.detail.contains(why), "{e} should say {why}");
            assert_eq!(r.holds().count(), 0);
        }
        // The auditor that did sign is accepted.
        let audited = GroupSpec {
            distinct_providers: false,
            bid_policy: Default::default(),
            sla: None,
            requirements: PlacementRequirements {
                attributes: vec![Attribute::new("region", "eu")],
                signed_by: SignedBy { all_of: vec![], any_of: vec![Address([1; 20])] },
            },
            ..spec(0, vec![], None)
        };
        assert!(decide(&c, &mut r, &order(), &max("100"), &audited).is_ok());
    }
}
