//! Akash's SDL files reach the auction, and a lease, unchanged: each is parsed, turned into
//! the chain's group specs as `gridlease deploy` does, and deployed on a ledger with the
//! devnet's parameters, whose denominations include Akash's `uact` and `uakt`. Then a provider
//! that declares enough capacity, the GPU models and storage classes asked and the attributes
//! required decides with the provider's own bid engine (`bidengine::decide`, exchange rates
//! for uact and uakt as on the devnet), bids what it decided, and the auction closes by itself
//! into a lease per group. The repository's own fixtures always run; with
//! `GRIDLEASE_CONFORMANCE` set to an absolute path (`.ci/conformance` sets it), every template
//! of the community collection under `sdl/awesome-akash` does too.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use gridlease_client::sdl::SdlChainError;
use gridlease_ledger::{Event, GenesisBalance, Params, ReceiptCode};
use gridlease_provider::bidengine::{BidContext, decide};
use gridlease_provider::config::Rates;
use gridlease_provider::inventory::GpuDevice;
use gridlease_provider::reserve::{Capacity, Reservations};
use gridlease_sim::{Actors, World};
use gridlease_types::state::AuditRecord;
use gridlease_types::{Attribute, Coin, DecCoin, Denom, GroupSpec, Msg, OrderId};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

/// What became of a set of files.
#[derive(Debug, Default)]
struct Outcome {
    deployed: usize,
    /// Deployments with a lease for every group.
    leased: usize,
    /// Of those, the ones whose `signedBy` names an auditor whose signature was written into
    /// the state (no key of Akash's auditors signs on a test chain).
    leased_with_forced_audit: usize,
    /// Deployments the provider declined, with its reason (what it does not offer).
    declined: Vec<String>,
    /// Not SDL this parser accepts (the SDL suites' business).
    unparsed: usize,
    /// Refused before the chain for a `signedBy` address that is not bech32 at all.
    bad_auditor: Vec<String>,
    /// Anything else that kept a file from the auction: the failures.
    refused: Vec<String>,
}

/// Deploys every parseable file of `files`, each with the minimum deposit in its own
/// denomination.
fn deploy_all(files: &[PathBuf]) -> Outcome {
    let devnet = Params::devnet();
    let mut world = World::new(Actors::new(1, 1, 0), |g| {
        g.params.denoms = devnet.denoms.clone();
        g.params.min_deposits = devnet.min_deposits.clone();
        g.params.take_rates_ppm = devnet.take_rates_ppm.clone();
        // The tenant pays every deployment's deposit, the provider every bid's (each stays
        // held while its lease runs).
        for b in &mut g.balances {
            *b = GenesisBalance {
                address: b.address,
                coins: devnet.denoms.iter().map(|d| Coin::new(1_000_000_000_000_000, d)).collect(),
            };
        }
    });
    let tenant = world.actors.tenants[0].clone();
    let provider = world.actors.providers[0].clone();
    let mut out = Outcome::default();
    for (i, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let Ok(sdl) = gridlease_sdl::Sdl::parse(&name, &text) else {
            out.unparsed += 1;
            continue;
        };
        let groups = match gridlease_client::sdl::group_specs(&sdl) {
            Ok(g) => g,
            Err(SdlChainError::Auditor { auditor, .. }) if bech32::decode(&auditor).is_err() => {
                out.bad_auditor.push(name);
                continue;
            }
            Err(e) => {
                out.refused.push(format!("{name}: no group specs: {e}"));
                continue;
            }
        };
        let denom: Denom = groups[0].resources[0].price.denom.clone();
        let Some(min) = devnet.min_deposit(&denom) else {
            out.refused.push(format!("{name}: the devnet has no deposit in {denom}"));
            continue;
        };
        let n = groups.len();
        let msg = Msg::CreateDeployment {
            dseq: i as u64 + 1,
            groups: groups.clone(),
            manifest_hash: [1; 32],
            deposit: Coin::new(min, &denom),
        };
        let audited = audit_what_is_asked(&mut world, &provider, &groups);
        let ctx = provider_ready_for(&mut world, &provider, &groups, audited.clone());
        let r = world.run(&tenant, vec![msg]);
        let orders: Vec<OrderId> = r
            .events
            .iter()
            .filter_map(|e| match e {
                Event::OrderOpened { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        if r.code != ReceiptCode::Ok || orders.len() != n {
            out.refused.push(format!(
                "{name}: {} {} ({} of {n} orders)",
                r.code,
                r.log,
                orders.len()
            ));
            continue;
        }
        out.deployed += 1;
        match bid_and_lease(&mut world, &provider, &ctx, &orders) {
            Ok(()) => {
                out.leased += 1;
                out.leased_with_forced_audit += usize::from(!audited.is_empty());
            }
            Err(NoLease::Declined(why)) => out.declined.push(format!("{name}: {why}")),
            Err(NoLease::Failed(why)) => out.refused.push(format!("{name}: no lease: {why}")),
        }
    }
    out
}

/// Attributes every group of `groups` requires (a provider declares them all).
fn required_attributes(groups: &[GroupSpec]) -> Vec<Attribute> {
    let mut all: Vec<Attribute> = Vec::new();
    for a in groups.iter().flat_map(|g| &g.requirements.attributes) {
        if !all.contains(a) {
            all.push(a.clone());
        }
    }
    all
}

/// Writes into the state an audit of the provider's attributes by every auditor the groups'
/// `signedBy` names (Akash's own auditors hold no key on a test chain, so no transaction can
/// make it); returns the records.
fn audit_what_is_asked(
    world: &mut World,
    provider: &gridlease_types::Keypair,
    groups: &[GroupSpec],
) -> Vec<AuditRecord> {
    let attributes = required_attributes(groups);
    let mut auditors: Vec<gridlease_types::Address> = Vec::new();
    for g in groups {
        let s = &g.requirements.signed_by;
        for a in s.all_of.iter().chain(&s.any_of) {
            if !auditors.contains(a) {
                auditors.push(*a);
            }
        }
    }
    auditors
        .into_iter()
        .map(|auditor| {
            let rec = AuditRecord {
                provider: provider.address(),
                auditor,
                attributes: attributes.clone(),
            };
            world.force(gridlease_ledger::keyspace::audit(&provider.address(), &auditor), &rec);
            rec
        })
        .collect()
}

/// Publishes the attributes the groups require and returns what the provider knows when it
/// decides: those attributes, the audits, every storage class asked, devnet-like rates.
fn provider_ready_for(
    world: &mut World,
    provider: &gridlease_types::Keypair,
    groups: &[GroupSpec],
    audits: Vec<AuditRecord>,
) -> BidContext {
    let mut attributes = required_attributes(groups);
    if attributes.is_empty() {
        attributes.push(Attribute::new("region", "devnet"));
    }
    world.ok(
        provider,
        vec![Msg::UpdateProvider {
            host_uri: "https://provider.example".into(),
            attributes: attributes.clone(),
            info: Default::default(),
        }],
    );
    let mut classes = vec!["default".to_string()];
    for v in groups.iter().flat_map(|g| &g.resources).flat_map(|u| &u.resources.storage) {
        if let Some(c) = &v.class
            && !classes.contains(c)
        {
            classes.push(c.clone());
        }
    }
    let dec = |s: &str| s.parse().expect("decimal");
    BidContext {
        attributes,
        audits: audits
            .into_iter()
            .map(|a| gridlease_client::AuditRecord {
                provider: a.provider,
                auditor: a.auditor,
                attributes: a.attributes,
            })
            .collect(),
        storage_classes: classes,
        rates: Rates {
            denom: Denom::new("uusdc").expect("denom"),
            cpu_per_core: dec("0.001"),
            memory_per_gib: dec("0.001"),
            storage_per_gib: dec("0.0001"),
            gpu_default: dec("0.01"),
            gpu: BTreeMap::new(),
            exchange: BTreeMap::from([
                (Denom::new("uact").expect("denom"), dec("1")),
                (Denom::new("uakt").expect("denom"), dec("2")),
            ]),
            max_sla_penalty_ppm: 100_000,
            min_sla_period_blocks: 3_600,
        },
    }
}

/// GPUs enough for `group`: for each resource unit, as many devices as it asks of the first
/// model it accepts (a wildcard gets an h100).
fn gpus_for(group: &GroupSpec) -> Vec<GpuDevice> {
    let mut devices = Vec::new();
    for unit in &group.resources {
        let need = unit.resources.gpu.units * unit.count;
        let option = unit.resources.gpu.options.first();
        for _ in 0..need {
            let index = devices.len() as u32;
            let model = option.and_then(|o| o.model.clone()).filter(|m| !m.is_empty() && m != "*");
            devices.push(GpuDevice {
                index,
                vendor: option.map(|o| o.vendor.clone()).unwrap_or_else(|| "nvidia".into()),
                model: model.unwrap_or_else(|| "h100".into()),
                ram: option.and_then(|o| o.ram.clone()).unwrap_or_else(|| "80Gi".into()),
                interface: option.and_then(|o| o.interface.clone()).unwrap_or_else(|| "sxm".into()),
                uuid: None,
                cdi_name: format!("nvidia.com/gpu={index}"),
            });
        }
    }
    devices
}

/// Why a deployment has no lease: the provider declined (and said why), or the chain refused.
enum NoLease {
    Declined(String),
    Failed(String),
}

/// The provider decides on each order with the bid engine, bids what it decided, and the
/// auctions close by themselves; a lease per order, or why not.
fn bid_and_lease(
    world: &mut World,
    provider: &gridlease_types::Keypair,
    ctx: &BidContext,
    orders: &[OrderId],
) -> Result<(), NoLease> {
    let deposit = Params::devnet().bid_deposit;
    for order in orders {
        let group = gridlease_ledger::query::group(&world.state, &order.group())
            .map_err(|e| NoLease::Failed(e.to_string()))?
            .ok_or(NoLease::Failed("the order's group is gone".into()))?;
        let max: DecCoin = group.spec.resources[0].price.clone();
        let mut reservations = Reservations::new(Capacity {
            cpu_millis: 1 << 40,
            memory_bytes: 1 << 60,
            storage_bytes: 1 << 62,
            gpus: gpus_for(&group.spec),
        });
        let matched = decide(ctx, &mut reservations, order, &max, &group.spec).map_err(|s| {
            NoLease::Declined(format!("group {} ({:?}): {s}", order.gseq, s.reason))
        })?;
        let bid = Msg::CreateBid {
            order: *order,
            price: matched.price,
            offer: matched.offer,
            deposit: deposit.clone(),
        };
        let r = world.run(provider, vec![bid]);
        if r.code != ReceiptCode::Ok {
            return Err(NoLease::Failed(format!(
                "group {}: bid refused: {} {}",
                order.gseq, r.code, r.log
            )));
        }
    }
    let mut leased = 0;
    for _ in 0..Params::devnet().bid_window + 2 {
        world.empty(1);
        leased += world.events.iter().filter(|e| matches!(e, Event::LeaseCreated { .. })).count();
    }
    if leased == orders.len() {
        Ok(())
    } else {
        Err(NoLease::Failed(format!("{leased} of {} orders leased", orders.len())))
    }
}

#[test]
fn the_repositorys_akash_fixtures_reach_the_auction() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdl/tests/fixtures/valid");
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert!(files.len() >= 10, "fixtures missing under {}", dir.display());
    let out = deploy_all(&files);
    assert!(out.refused.is_empty(), "{out:#?}");
    // gpu-models.yaml names a made-up auditor (`akash1auditor`), which the CLI refuses.
    assert_eq!(out.bad_auditor.len(), 1, "{out:#?}");
    assert_eq!((out.deployed + 1, out.unparsed), (files.len(), 0));
    // Every deployed fixture leases but two the provider declines, saying why: leased IPs
    // (not offered by gridlease providers) and a maximum price of 10^-18 uusdc per block.
    assert_eq!(out.leased + 2, out.deployed, "{out:#?}");
    assert_eq!(out.declined.len(), 2, "{out:#?}");
    assert!(out.declined.iter().any(|d| d.contains("ip-endpoints") && d.contains("LeasedIp")));
    assert!(out.declined.iter().any(|d| d.contains("pricing-decimal") && d.contains("Price")));
}

#[test]
fn the_community_templates_reach_the_auction_unchanged() {
    let Some(root) = std::env::var_os("GRIDLEASE_CONFORMANCE") else {
        eprintln!("GRIDLEASE_CONFORMANCE is not set: the community templates are not tried");
        return;
    };
    let dir = Path::new(&root).join("sdl/awesome-akash");
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert!(!files.is_empty(), "no template under {}", dir.display());
    let out = deploy_all(&files);
    println!(
        "{} of {} templates reached the auction ({} are not SDL this parser accepts); {} reached \
         a lease ({} of them with an Akash auditor's signature written into the state), {} were \
         declined by the provider:",
        out.deployed,
        files.len(),
        out.unparsed,
        out.leased,
        out.leased_with_forced_audit,
        out.declined.len()
    );
    for d in &out.declined {
        println!("  declined: {d}");
    }
    // What a gridlease provider does not offer at all: leased IP endpoints.
    assert!(out.declined.iter().all(|d| d.contains("(LeasedIp)")), "{out:#?}");
    assert_eq!(out.leased + out.declined.len(), out.deployed, "{out:#?}");
    assert!(out.refused.is_empty() && out.bad_auditor.is_empty(), "{out:#?}");
}
