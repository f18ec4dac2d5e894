//! Property: every accepted SDL derives groups whose resource totals equal
//! the deployed services' resources times their counts, in 2.0 and 2.1.

use std::collections::BTreeMap;
use std::fmt::Write;

use gridlease_sdl::Sdl;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Profile {
    cpu_millis: u64,
    memory_mib: u64,
    volumes_mib: Vec<u64>,
    gpus: u64,
}

#[derive(Debug, Clone)]
struct Deploy {
    profile: usize,
    placement: usize,
    count: u32,
}

#[derive(Debug, Clone)]
struct Case {
    v21: bool,
    profiles: Vec<Profile>,
    placements: usize,
    /// One service per entry; each deployed to one or two placements.
    services: Vec<Vec<Deploy>>,
    cpu_as_millis: bool,
}

fn profile() -> impl Strategy<Value = Profile> {
    (10u64..=8000, 1u64..=8192, prop::collection::vec(5u64..=4096, 1..=3), 0u64..=2).prop_map(
        |(cpu_millis, memory_mib, volumes_mib, gpus)| Profile {
            cpu_millis,
            memory_mib,
            volumes_mib,
            gpus,
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    (any::<bool>(), prop::collection::vec(profile(), 1..=3), 1usize..=2, any::<bool>())
        .prop_flat_map(|(v21, profiles, placements, cpu_as_millis)| {
            let n = profiles.len();
            let deploy = (0..n, 0..placements, 1u32..=5)
                .prop_map(|(profile, placement, count)| Deploy { profile, placement, count });
            let service = prop::collection::vec(deploy, 1..=2).prop_map(|mut v| {
                v.sort_by_key(|d| d.placement);
                v.dedup_by_key(|d| d.placement);
                v
            });
            prop::collection::vec(service, 1..=4).prop_map(move |services| Case {
                v21,
                profiles: profiles.clone(),
                placements,
                services,
                cpu_as_millis,
            })
        })
}

fn render(c: &Case) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "version: \"{}\"", if c.v21 { "2.1" } else { "2.0" });
    s.push_str("services:\n");
    for i in 0..c.services.len() {
        let _ = writeln!(
            s,
            "  svc{i}:\n    image: img{i}\n    expose:\n      - port: {}\n        to:\n          - global: true",
            8000 + i
        );
    }
    s.push_str("profiles:\n  compute:\n");
    for (i, p) in c.profiles.iter().enumerate() {
        let cpu = if c.cpu_as_millis {
            format!("\"{}m\"", p.cpu_millis)
        } else {
            format!("{}.{:03}", p.cpu_millis / 1000, p.cpu_millis % 1000)
        };
        let _ = writeln!(
            s,
            "    p{i}:\n      resources:\n        cpu:\n          units: {cpu}\n        memory:\n          size: {}Mi\n        storage:",
            p.memory_mib
        );
        for (v, mib) in p.volumes_mib.iter().enumerate() {
            let name = if v == 0 { "default".to_owned() } else { format!("vol{v}") };
            let _ = writeln!(s, "          - name: {name}\n            size: {mib}Mi");
        }
        if p.gpus > 0 {
            let _ = writeln!(
                s,
                "        gpu:\n          units: {}\n          attributes:\n            vendor:\n              nvidia:",
                p.gpus
            );
        }
    }
    s.push_str("  placement:\n");
    for g in 0..c.placements {
        let _ = writeln!(s, "    g{g}:\n      pricing:");
        for i in 0..c.profiles.len() {
            let _ =
                writeln!(s, "        p{i}:\n          denom: uakt\n          amount: {}", i + 1);
        }
    }
    s.push_str("deployment:\n");
    for (i, deploys) in c.services.iter().enumerate() {
        let _ = writeln!(s, "  svc{i}:");
        for d in deploys {
            let _ = writeln!(
                s,
                "    g{}:\n      profile: p{}\n      count: {}",
                d.placement, d.profile, d.count
            );
        }
    }
    s
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    cpu: u128,
    memory: u128,
    storage: u128,
    gpu: u128,
    count: u128,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn group_totals_equal_service_resources_times_counts(c in case()) {
        let text = render(&c);
        let sdl = match Sdl::parse("generated.yaml", &text) {
            Ok(sdl) => sdl,
            Err(e) => return Err(TestCaseError::fail(format!("generated sdl rejected: {e}\n{text}"))),
        };
        let mut expected: BTreeMap<String, Totals> = BTreeMap::new();
        for deploys in &c.services {
            for d in deploys {
                let p = &c.profiles[d.profile];
                let n = u128::from(d.count);
                let t = expected.entry(format!("g{}", d.placement)).or_default();
                t.cpu += u128::from(p.cpu_millis) * n;
                t.memory += u128::from(p.memory_mib << 20) * n;
                t.storage += p.volumes_mib.iter().map(|m| u128::from(m << 20)).sum::<u128>() * n;
                t.gpu += u128::from(p.gpus) * n;
                t.count += n;
            }
        }
        let mut actual: BTreeMap<String, Totals> = BTreeMap::new();
        for g in sdl.groups() {
            let t = actual.entry(g.name.clone()).or_default();
            for u in &g.resources {
                let n = u128::from(u.count);
                let r = &u.resources;
                t.cpu += u128::from(r.cpu.millis) * n;
                t.memory += u128::from(r.memory_bytes) * n;
                t.storage += r.storage.iter().map(|v| u128::from(v.bytes)).sum::<u128>() * n;
                t.gpu += u128::from(r.gpu.units) * n;
                t.count += n;
            }
        }
        prop_assert_eq!(&actual, &expected, "{}", text);
        // The manifest carries the same replicas, service by service.
        for (g, m) in sdl.groups().iter().zip(sdl.manifest()) {
            prop_assert_eq!(&g.name, &m.name);
            let group_count: u64 = g.resources.iter().map(|u| u64::from(u.count)).sum();
            let manifest_count: u64 = m.services.iter().map(|s| u64::from(s.count)).sum();
            prop_assert_eq!(group_count, manifest_count);
            for s in &m.services {
                prop_assert!(g.resources.iter().any(|u| u.resources.id == s.resources.id));
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = Sdl::parse("fuzz.yaml", &text);
    }
}
