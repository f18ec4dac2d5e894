//! What a lease pays for, and the check that a tenant's manifest stays within it.
//!
//! The manifest is the tenant's own bytes: the chain only keeps their hash, so a manifest can
//! claim anything (a thousand replicas on a lease for one, services and global ports the order
//! never asked for, more CPU, memory, GPUs or storage than the winning bid offered). What the
//! lease pays for comes from the chain alone: the shape of each resource unit (its id, its
//! endpoints, its storage volumes' names, classes and persistence) from the group spec, and
//! the amounts (replicas, CPU, memory, GPUs, storage bytes) from the winning bid's offer, which
//! the ledger only accepts when it covers the spec. A manifest that asks for more in any of
//! these is refused with what exceeded what; an accepted one runs with exactly the leased
//! amounts, whatever smaller numbers (or zeros) the manifest wrote.

use std::collections::{BTreeMap, BTreeSet};

use gridlease_types::{EndpointKind, GroupSpec, ResourceOffer};

use gridlease_sdl::spec::{ManifestGroup, ManifestService, Volume as ManifestVolume};

/// One resource unit of a lease: `count` replicas, each with these amounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedUnit {
    /// The unit's id in the group spec (services name it in `resources.id`).
    pub id: u32,
    /// Position of the unit in the group spec (and in the provider's hold).
    pub index: usize,
    pub count: u32,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// GPUs per replica.
    pub gpu_units: u32,
    pub storage: Vec<LeasedVolume>,
    /// Globally exposed ports the unit may publish (its shared-HTTP and random-port
    /// endpoints).
    pub global_ports: u32,
}

/// One storage volume of a leased unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedVolume {
    pub name: String,
    pub bytes: u64,
    /// `None`: the default class.
    pub class: Option<String>,
    pub persistent: bool,
}

/// Everything one lease pays for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leased {
    pub units: Vec<LeasedUnit>,
}

/// Why the chain's records of a lease cannot be read as limits (they contradict each other;
/// the ledger should have refused such a bid).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseShapeError {
    #[error("the winning bid offers {offer} resource units, the group spec has {spec}")]
    UnitCount { spec: usize, offer: usize },
    #[error(
        "resource unit {unit}: the winning bid offers {offer} storage volumes, the spec has {spec}"
    )]
    VolumeCount { unit: u32, spec: usize, offer: usize },
}

/// What in a manifest exceeds its lease.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestExcess {
    #[error("service `{service}` runs on resource unit {unit}, which the lease does not have")]
    UnknownUnit { service: String, unit: u32 },
    #[error("service `{service}` appears twice in the group")]
    DuplicateService { service: String },
    #[error(
        "resource unit {unit}: the manifest asks for {asked} replicas in all, the lease pays for {leased}"
    )]
    Replicas { unit: u32, asked: u64, leased: u32 },
    #[error("service `{service}` asks for {asked}m cpu per replica, the lease pays for {leased}m")]
    Cpu { service: String, asked: u64, leased: u64 },
    #[error(
        "service `{service}` asks for {asked} bytes of memory per replica, the lease pays for {leased}"
    )]
    Memory { service: String, asked: u64, leased: u64 },
    #[error("service `{service}` asks for {asked} gpus per replica, the lease pays for {leased}")]
    Gpu { service: String, asked: u64, leased: u32 },
    #[error(
        "service `{service}` declares storage `{volume}`, which its leased resource unit does not have"
    )]
    UnknownVolume { service: String, volume: String },
    #[error("service `{service}` declares storage `{volume}` twice")]
    DuplicateVolume { service: String, volume: String },
    #[error(
        "service `{service}` asks for {asked} bytes of storage `{volume}`, the lease pays for {leased}"
    )]
    VolumeSize { service: String, volume: String, asked: u64, leased: u64 },
    #[error(
        "service `{service}` declares storage `{volume}` as {asked}, the lease pays for {leased}"
    )]
    VolumeClass { service: String, volume: String, asked: String, leased: String },
    #[error(
        "resource unit {unit}: the manifest exposes {asked} global ports, the lease pays for {leased} endpoints"
    )]
    GlobalPorts { unit: u32, asked: u64, leased: u32 },
}

/// `class x, persistent` as people read a volume's kind.
fn describe(class: Option<&str>, persistent: bool) -> String {
    format!(
        "class {}{}",
        class.unwrap_or("default"),
        if persistent { ", persistent" } else { ", not persistent" }
    )
}

fn manifest_volume_kind(volume: &ManifestVolume) -> (Option<&str>, bool) {
    let attr =
        |key: &str| volume.attributes.iter().find(|a| a.key == key).map(|a| a.value.as_str());
    (attr("class"), attr("persistent") == Some("true"))
}

impl Leased {
    /// The limits of a lease from its group spec and its winning bid's offer (one offer per
    /// resource unit, in the spec's order).
    pub fn new(spec: &GroupSpec, offer: &[ResourceOffer]) -> Result<Leased, LeaseShapeError> {
        if spec.resources.len() != offer.len() {
            return Err(LeaseShapeError::UnitCount {
                spec: spec.resources.len(),
                offer: offer.len(),
            });
        }
        let mut units = Vec::with_capacity(offer.len());
        for (index, (unit, offered)) in spec.resources.iter().zip(offer).enumerate() {
            let r = &unit.resources;
            if r.storage.len() != offered.storage.len() {
                return Err(LeaseShapeError::VolumeCount {
                    unit: r.id,
                    spec: r.storage.len(),
                    offer: offered.storage.len(),
                });
            }
            let storage = r
                .storage
                .iter()
                .zip(&offered.storage)
                .map(|(asked, got)| LeasedVolume {
                    name: asked.name.clone(),
                    bytes: got.bytes,
                    class: asked.class.clone(),
                    persistent: asked.persistent,
                })
                .collect();
            let global_ports = r
                .endpoints
                .iter()
                .filter(|e| matches!(e.kind, EndpointKind::SharedHttp | EndpointKind::RandomPort))
                .count();
            units.push(LeasedUnit {
                id: r.id,
                index,
                count: offered.count.min(unit.count),
                cpu_millis: offered.cpu_millis,
                memory_bytes: offered.memory_bytes,
                gpu_units: offered.gpu.as_ref().map_or(0, |g| g.units),
                storage,
                global_ports: u32::try_from(global_ports).unwrap_or(u32::MAX),
            });
        }
        Ok(Leased { units })
    }

    /// The leased unit a service runs on.
    pub fn unit(&self, id: u32) -> Option<&LeasedUnit> {
        self.units.iter().find(|u| u.id == id)
    }

    /// Checks that `group` asks for no more than the lease pays for: the first excess found,
    /// in the manifest's order.
    pub fn check(&self, group: &ManifestGroup) -> Result<(), ManifestExcess> {
        let mut names = BTreeSet::new();
        let mut replicas: BTreeMap<u32, u64> = BTreeMap::new();
        let mut global_ports: BTreeMap<u32, u64> = BTreeMap::new();
        for s in &group.services {
            if !names.insert(s.name.as_str()) {
                return Err(ManifestExcess::DuplicateService { service: s.name.clone() });
            }
            let unit = self.unit(s.resources.id).ok_or_else(|| ManifestExcess::UnknownUnit {
                service: s.name.clone(),
                unit: s.resources.id,
            })?;
            check_service(s, unit)?;
            let asked = replicas.entry(unit.id).or_insert(0);
            *asked = asked.saturating_add(u64::from(s.count));
            if *asked > u64::from(unit.count) {
                return Err(ManifestExcess::Replicas {
                    unit: unit.id,
                    asked: *asked,
                    leased: unit.count,
                });
            }
            let ports = global_ports.entry(unit.id).or_insert(0);
            *ports = ports.saturating_add(s.expose.iter().filter(|e| e.global).count() as u64);
            if *ports > u64::from(unit.global_ports) {
                return Err(ManifestExcess::GlobalPorts {
                    unit: unit.id,
                    asked: *ports,
                    leased: unit.global_ports,
                });
            }
        }
        Ok(())
    }
}

/// One service's per-replica resources against its unit.
fn check_service(s: &ManifestService, unit: &LeasedUnit) -> Result<(), ManifestExcess> {
    let service = || s.name.clone();
    let r = &s.resources;
    if r.cpu.millis > unit.cpu_millis {
        return Err(ManifestExcess::Cpu {
            service: service(),
            asked: r.cpu.millis,
            leased: unit.cpu_millis,
        });
    }
    if r.memory_bytes > unit.memory_bytes {
        return Err(ManifestExcess::Memory {
            service: service(),
            asked: r.memory_bytes,
            leased: unit.memory_bytes,
        });
    }
    if r.gpu.units > u64::from(unit.gpu_units) {
        return Err(ManifestExcess::Gpu {
            service: service(),
            asked: r.gpu.units,
            leased: unit.gpu_units,
        });
    }
    let mut volumes = BTreeSet::new();
    for v in &r.storage {
        if !volumes.insert(v.name.as_str()) {
            return Err(ManifestExcess::DuplicateVolume {
                service: service(),
                volume: v.name.clone(),
            });
        }
        let leased = unit.storage.iter().find(|l| l.name == v.name).ok_or_else(|| {
            ManifestExcess::UnknownVolume { service: service(), volume: v.name.clone() }
        })?;
        if v.bytes > leased.bytes {
            return Err(ManifestExcess::VolumeSize {
                service: service(),
                volume: v.name.clone(),
                asked: v.bytes,
                leased: leased.bytes,
            });
        }
        let (class, persistent) = manifest_volume_kind(v);
        if class != leased.class.as_deref() || persistent != leased.persistent {
            return Err(ManifestExcess::VolumeClass {
                service: service(),
                volume: v.name.clone(),
                asked: describe(class, persistent),
                leased: describe(leased.class.as_deref(), leased.persistent),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use gridlease_types::{
        DecAmount, DecCoin, Denom, Endpoint, GpuOffer, GpuRequirement, PlacementRequirements,
        ResourceUnit, Resources, StorageVolume,
    };

    use super::*;
    use crate::manifest::Manifest;

    /// One unit: 1 replica of 100m cpu, 64 MiB, 1 GiB persistent `data`, a 16 MiB ram `shm`,
    /// one random-port endpoint.
    fn spec() -> GroupSpec {
        GroupSpec {
            distinct_providers: false,
            bid_policy: Default::default(),
            sla: None,
            name: "dc".into(),
            requirements: PlacementRequirements::default(),
            resources: vec![ResourceUnit {
                resources: Resources {
                    id: 1,
                    cpu_millis: 100,
                    memory_bytes: 64 << 20,
                    storage: vec![
                        StorageVolume {
                            name: "data".into(),
                            bytes: 1 << 30,
                            class: Some("beta2".into()),
                            persistent: true,
                        },
                        StorageVolume {
                            name: "shm".into(),
                            bytes: 16 << 20,
                            class: Some("ram".into()),
                            persistent: false,
                        },
                    ],
                    gpu: GpuRequirement::default(),
                    endpoints: vec![Endpoint {
                        kind: EndpointKind::RandomPort,
                        sequence_number: 0,
                    }],
                },
                count: 1,
                price: DecCoin {
                    denom: Denom::new("uusdc").expect("denom"),
                    amount: DecAmount::from_atto(1),
                },
            }],
        }
    }

    fn offer(spec: &GroupSpec) -> Vec<ResourceOffer> {
        spec.resources
            .iter()
            .map(|u| ResourceOffer {
                cpu_millis: u.resources.cpu_millis,
                memory_bytes: u.resources.memory_bytes,
                storage: u.resources.storage.clone(),
                gpu: None,
                count: u.count,
            })
            .collect()
    }

    /// The honest manifest of [`spec`].
    const HONEST: &str = r#"[{"name":"dc","services":[{"name":"web","image":"demo",
      "resources":{"id":1,"cpu":{"millis":100},"memory_bytes":67108864,"gpu":{"units":0},
      "storage":[{"name":"data","bytes":1073741824,"attributes":[{"key":"class","value":"beta2"},
      {"key":"persistent","value":"true"}]},{"name":"shm","bytes":16777216,
      "attributes":[{"key":"class","value":"ram"},{"key":"persistent","value":"false"}]}]},
      "count":1,"expose":[{"port":8080,"proto":"TCP","global":true},
      {"port":9090,"proto":"TCP","global":false}]}]}]"#;

    fn check(doc: &str) -> Result<(), ManifestExcess> {
        let spec = spec();
        let leased = Leased::new(&spec, &offer(&spec)).expect("consistent");
        let m = Manifest::parse(doc.as_bytes()).expect("parses");
        leased.check(m.group("dc").expect("group"))
    }

    #[test]
    fn the_honest_manifest_and_a_smaller_one_pass() {
        assert_eq!(check(HONEST), Ok(()));
        let smaller = HONEST
            .replace(r#""millis":100"#, r#""millis":0"#)
            .replace("67108864", "0")
            .replace("16777216", "1");
        assert_eq!(check(&smaller), Ok(()));
    }

    #[test]
    fn a_thousand_replicas_on_a_lease_for_one_are_refused() {
        let e = check(&HONEST.replace(r#""count":1"#, r#""count":1000"#)).expect_err("count");
        assert_eq!(e, ManifestExcess::Replicas { unit: 1, asked: 1000, leased: 1 });
        assert_eq!(
            e.to_string(),
            "resource unit 1: the manifest asks for 1000 replicas in all, the lease pays for 1"
        );
    }

    #[test]
    fn an_extra_service_on_the_same_unit_is_refused() {
        let services = HONEST.trim_start_matches(r#"[{"name":"dc","services":["#);
        let service = services.trim_end_matches("]}]");
        let two = format!(
            r#"[{{"name":"dc","services":[{service},{}]}}]"#,
            service.replacen(r#""name":"web""#, r#""name":"miner""#, 1)
        );
        // The second service fits alone, but together they ask for two replicas.
        assert_eq!(
            check(&two).expect_err("extra"),
            ManifestExcess::Replicas { unit: 1, asked: 2, leased: 1 }
        );
        let dup = format!(r#"[{{"name":"dc","services":[{service},{service}]}}]"#);
        assert_eq!(
            check(&dup).expect_err("dup"),
            ManifestExcess::DuplicateService { service: "web".into() }
        );
        let other_unit = HONEST.replace(r#""id":1"#, r#""id":2"#);
        assert_eq!(
            check(&other_unit).expect_err("unit"),
            ManifestExcess::UnknownUnit { service: "web".into(), unit: 2 }
        );
    }

    #[test]
    fn more_cpu_memory_or_gpus_than_leased_are_refused() {
        let cpu = HONEST.replace(r#""millis":100"#, r#""millis":101"#);
        assert_eq!(
            check(&cpu).expect_err("cpu"),
            ManifestExcess::Cpu { service: "web".into(), asked: 101, leased: 100 }
        );
        let memory = HONEST.replace("67108864", "67108865");
        assert_eq!(
            check(&memory).expect_err("memory"),
            ManifestExcess::Memory {
                service: "web".into(),
                asked: (64 << 20) + 1,
                leased: 64 << 20
            }
        );
        let gpu = HONEST.replace(r#""gpu":{"units":0}"#, r#""gpu":{"units":1}"#);
        let e = check(&gpu).expect_err("gpu");
        assert_eq!(e, ManifestExcess::Gpu { service: "web".into(), asked: 1, leased: 0 });
        assert_eq!(
            e.to_string(),
            "service `web` asks for 1 gpus per replica, the lease pays for 0"
        );
    }

    #[test]
    fn bigger_unknown_or_reclassed_storage_is_refused() {
        let big = HONEST.replace("1073741824", "1073741825");
        assert_eq!(
            check(&big).expect_err("size"),
            ManifestExcess::VolumeSize {
                service: "web".into(),
                volume: "data".into(),
                asked: (1 << 30) + 1,
                leased: 1 << 30
            }
        );
        // A ram volume beyond i64::MAX would have been an unbounded tmpfs.
        let huge_ram = HONEST.replace("16777216", &u64::MAX.to_string());
        assert!(matches!(
            check(&huge_ram).expect_err("ram"),
            ManifestExcess::VolumeSize { asked: u64::MAX, leased: 16777216, .. }
        ));
        let unknown = HONEST.replace(r#""name":"shm""#, r#""name":"more""#);
        assert_eq!(
            check(&unknown).expect_err("unknown"),
            ManifestExcess::UnknownVolume { service: "web".into(), volume: "more".into() }
        );
        // Disk leased as a ram volume (or the reverse) is another class.
        let reclassed = HONEST.replace(r#""value":"beta2""#, r#""value":"ram""#);
        let e = check(&reclassed).expect_err("class");
        assert_eq!(
            e.to_string(),
            "service `web` declares storage `data` as class ram, persistent, the lease pays for \
             class beta2, persistent"
        );
        let not_persistent = HONEST.replacen(r#""value":"true""#, r#""value":"false""#, 1);
        assert!(matches!(check(&not_persistent), Err(ManifestExcess::VolumeClass { .. })));
    }

    #[test]
    fn more_global_ports_than_leased_endpoints_are_refused() {
        let more = HONEST.replace(r#""global":false"#, r#""global":true"#);
        let e = check(&more).expect_err("ports");
        assert_eq!(e, ManifestExcess::GlobalPorts { unit: 1, asked: 2, leased: 1 });
        assert_eq!(
            e.to_string(),
            "resource unit 1: the manifest exposes 2 global ports, the lease pays for 1 endpoints"
        );
    }

    #[test]
    fn limits_are_the_offer_and_the_shape_is_the_spec() {
        let spec = spec();
        let mut offer = offer(&spec);
        offer[0].cpu_millis = 250;
        offer[0].gpu = Some(GpuOffer {
            units: 2,
            vendor: "nvidia".into(),
            model: "a100".into(),
            ram: "80Gi".into(),
            interface: "sxm".into(),
        });
        let leased = Leased::new(&spec, &offer).expect("consistent");
        let unit = leased.unit(1).expect("unit 1");
        assert_eq!((unit.cpu_millis, unit.gpu_units, unit.global_ports), (250, 2, 1));
        assert_eq!(unit.storage[1].class.as_deref(), Some("ram"));
        assert_eq!(Leased::new(&spec, &[]), Err(LeaseShapeError::UnitCount { spec: 1, offer: 0 }));
    }
}
