//! Bid decision time per order with 10,000 open orders (attributes, audits, storage classes,
//! GPU choice among models, pricing, hold):
//! - `all_10k_orders`: an 8-GPU provider decides on each of 10,000 open orders (a third ask
//!   for a model it lacks; once its GPUs are held the rest are skipped for lack of resources);
//! - `one_more_with_10k_holds`: a large CPU provider already holds resources for 10,000 bids
//!   and decides on one more, then gives it back.

use std::collections::BTreeMap;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gridlease_client::AuditRecord;
use gridlease_provider::bidengine::{BidContext, decide};
use gridlease_provider::config::Rates;
use gridlease_provider::inventory::GpuDevice;
use gridlease_provider::reserve::{Capacity, Reservations};
use gridlease_types::{
    Address, Attribute, DecAmount, DecCoin, Denom, GpuRequirement, GpuSpec, GroupSpec, OrderId,
    PlacementRequirements, ResourceUnit, Resources, SignedBy, StorageVolume,
};

const OPEN_ORDERS: u64 = 10_000;

fn dec(s: &str) -> DecAmount {
    s.parse().expect("decimal")
}

fn uusdc() -> Denom {
    Denom::new("uusdc").expect("denom")
}

fn context() -> BidContext {
    BidContext {
        attributes: vec![Attribute::new("region", "eu"), Attribute::new("tier", "datacenter")],
        audits: vec![AuditRecord {
            provider: Address([9; 20]),
            auditor: Address([1; 20]),
            attributes: vec![Attribute::new("region", "eu"), Attribute::new("tier", "datacenter")],
        }],
        storage_classes: vec!["default".into(), "beta2".into()],
        rates: Rates {
            denom: uusdc(),
            cpu_per_core: dec("1"),
            memory_per_gib: dec("0.5"),
            storage_per_gib: dec("0.05"),
            gpu_default: dec("20"),
            gpu: BTreeMap::from([("a100".into(), dec("40")), ("h100".into(), dec("60"))]),
            exchange: BTreeMap::new(),
            max_sla_penalty_ppm: 100_000,
            min_sla_period_blocks: 3_600,
        },
    }
}

/// An 8-GPU machine.
fn gpu_box() -> Capacity {
    let gpus = (0..8u32)
        .map(|i| GpuDevice {
            index: i,
            vendor: "nvidia".into(),
            model: if i < 4 { "a100" } else { "l40s" }.into(),
            ram: if i < 4 { "80Gi" } else { "48Gi" }.into(),
            interface: if i < 4 { "sxm" } else { "pcie" }.into(),
            uuid: None,
            cdi_name: format!("nvidia.com/gpu={i}"),
        })
        .collect();
    Capacity { cpu_millis: 128_000, memory_bytes: 1 << 40, storage_bytes: 1 << 44, gpus }
}

/// A machine with room for every CPU-only order.
fn cpu_farm() -> Capacity {
    Capacity { cpu_millis: 1 << 40, memory_bytes: 1 << 60, storage_bytes: 1 << 60, gpus: vec![] }
}

fn group(i: u64, gpus: u32) -> GroupSpec {
    let model = ["a100", "h100", "*"][i as usize % 3];
    GroupSpec {
        distinct_providers: false,
        bid_policy: Default::default(),
        sla: None,
        name: format!("g{i}"),
        requirements: PlacementRequirements {
            attributes: vec![Attribute::new("region", "eu")],
            signed_by: SignedBy { all_of: vec![], any_of: vec![Address([1; 20])] },
        },
        resources: vec![ResourceUnit {
            resources: Resources {
                id: 1,
                cpu_millis: 4000,
                memory_bytes: 16 << 30,
                storage: vec![StorageVolume {
                    name: "default".into(),
                    bytes: 100 << 30,
                    class: Some("beta2".into()),
                    persistent: false,
                }],
                gpu: GpuRequirement {
                    units: gpus,
                    options: if gpus == 0 {
                        vec![]
                    } else {
                        vec![GpuSpec {
                            vendor: "nvidia".into(),
                            model: Some(model.into()),
                            ram: None,
                            interface: None,
                        }]
                    },
                },
                endpoints: vec![],
            },
            count: 1,
            price: DecCoin { denom: uusdc(), amount: dec("1000") },
        }],
    }
}

fn order(i: u64) -> OrderId {
    OrderId { owner: Address([2; 20]), dseq: i, gseq: 1, oseq: 1 }
}

fn bench(c: &mut Criterion) {
    let ctx = context();
    let max = DecCoin { denom: uusdc(), amount: dec("1000") };
    let orders: Vec<(OrderId, GroupSpec)> =
        (0..OPEN_ORDERS).map(|i| (order(i), group(i, 1))).collect();
    let mut g = c.benchmark_group("bid_decision");
    g.throughput(Throughput::Elements(OPEN_ORDERS));
    g.sample_size(20);
    g.bench_function("all_10k_orders", |b| {
        b.iter_batched(
            || Reservations::new(gpu_box()),
            |mut r| {
                let mut bids = 0;
                for (id, spec) in &orders {
                    bids += usize::from(decide(&ctx, &mut r, id, &max, spec).is_ok());
                }
                assert_eq!(bids, 8, "one bid per GPU");
                r
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut r = Reservations::new(cpu_farm());
    for i in 0..OPEN_ORDERS {
        decide(&ctx, &mut r, &order(i), &max, &group(i, 0))
            .expect("the farm fits every open order");
    }
    let next = order(OPEN_ORDERS);
    let spec = group(OPEN_ORDERS, 0);
    c.bench_function("bid_decision/one_more_with_10k_holds", |b| {
        b.iter(|| {
            let m = decide(&ctx, &mut r, &next, &max, &spec).expect("bids");
            r.release(&next);
            m
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
