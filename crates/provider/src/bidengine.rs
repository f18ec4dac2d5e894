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

/// Why the provider does not bid, in words for `provider status` and the log.
pub type Skip = String;

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
        return Err(format!(
            "the order pays in {}, this provider prices in {} and has no exchange rate for {} (pricing.exchange)",
            max_price.denom, ctx.rates.denom, max_price.denom
        ));
    }
    if let Some(sla) = &spec.sla {
        if sla.penalty_ppm > ctx.rates.max_sla_penalty_ppm {
            return Err(format!(
                "the SLA's penalty ({} ppm of the bid deposit per breach) is above this provider's limit ({} ppm, pricing.max_sla_penalty_ppm)",
                sla.penalty_ppm, ctx.rates.max_sla_penalty_ppm
            ));
        }
        if sla.period_blocks < ctx.rates.min_sla_period_blocks {
            return Err(format!(
                "the SLA's period ({} blocks) is shorter than this provider accepts ({} blocks, pricing.min_sla_period_blocks)",
                sla.period_blocks, ctx.rates.min_sla_period_blocks
            ));
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
        return Err(format!("attributes not offered: {}", missing.join(", ")));
    }
    if !req.signed_by.is_empty() {
        let audited = |auditor: &gridlease_types::Address| {
            ctx.audits.iter().find(|a| &a.auditor == auditor).map(|a| a.attributes.as_slice())
        };
        if !req.signed_by_satisfied(audited) {
            return Err("the required auditors have not signed these attributes".into());
        }
    }
    let mut units = Vec::with_capacity(spec.resources.len());
    for unit in &spec.resources {
        let r = &unit.resources;
        for v in &r.storage {
            let class = v.class.as_deref().unwrap_or("default");
            if !ctx.storage_classes.iter().any(|c| c == class) {
                return Err(format!("storage class `{class}` is not offered"));
            }
        }
        if r.endpoints.iter().any(|e| e.kind == EndpointKind::LeasedIp) {
            return Err("leased IP endpoints are not offered".into());
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
        .map_err(|s| format!("not enough free resources: {s}"))?;
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
            return Err(e.to_string());
        }
    };
    let Some(price) = ctx.rates.convert(price, &max_price.denom) else {
        reservations.release(order);
        return Err(format!(
            "our price {price}{} does not convert to {}",
            ctx.rates.denom, max_price.denom
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
        return Err(format!(
            "our price {price}{} per block is above the order's maximum {}{}",
            max_price.denom, max_price.amount, max_price.denom
        ));
    }
    Ok(())
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
            assert!(e.contains(why), "{e} should say {why}");
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
