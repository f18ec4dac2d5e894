//! Cross-reference rules of an SDL (profiles, endpoints, volumes, mounts) and
//! the limits Akash's chain and providers apply to the derived groups and
//! manifest.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Diagnostics, FieldPath};
use crate::model::{Input, Service};
use crate::quantity::Dec18;
use crate::rules::{
    MAX_CPU_MILLIS, MAX_GPU_UNITS, MAX_MEMORY_BYTES, MAX_STORAGE_BYTES, MAX_UNIT_COUNT,
    MAX_UNIT_PRICE, MIN_CPU_MILLIS, MIN_MEMORY_BYTES, MIN_STORAGE_BYTES, is_valid_env_name,
    is_valid_hostname, is_valid_service_name,
};
use crate::spec::{GroupSpec, ManifestGroup};
use crate::yaml::Pos;

/// Checks that every name an SDL refers to exists and that volumes, mounts
/// and endpoints are used consistently.
pub(crate) fn check_references(input: &Input, d: &mut Diagnostics) {
    let root = FieldPath::root();
    let mut endpoints_used = BTreeSet::new();
    let mut ports_used: BTreeMap<(String, u32, String), String> = BTreeMap::new();
    if input.deployment.values().all(|p| p.is_empty()) {
        d.error(
            input.deployment_pos,
            &root.key("deployment"),
            "nothing is deployed; expected at least one service with a placement, a profile and a count",
        );
    }
    for (svc_name, placements) in &input.deployment {
        let dp = root.key("deployment").key(svc_name);
        let service = input.services.get(svc_name);
        for (placement_name, depl) in placements {
            let pp = dp.key(placement_name);
            let Some(service) = service else {
                d.error(
                    depl.pos,
                    &dp,
                    format!("service `{svc_name}` is deployed but not defined under services"),
                );
                continue;
            };
            let compute = input.compute.get(&depl.profile);
            if compute.is_none() {
                d.error(
                    depl.profile_pos,
                    &pp.key("profile"),
                    format!(
                        "no compute profile named `{}`; expected one of: {}",
                        depl.profile,
                        names(input.compute.keys())
                    ),
                );
            }
            match input.placement.get(placement_name) {
                None => d.error(
                    depl.pos,
                    &pp,
                    format!(
                        "no placement profile named `{placement_name}`; expected one of: {}",
                        names(input.placement.keys())
                    ),
                ),
                Some(placement) => {
                    if !placement.pricing.contains_key(&depl.profile) {
                        d.error(
                            placement.pos,
                            &root.key("profiles").key("placement").key(placement_name).key("pricing"),
                            format!(
                                "no price for compute profile `{}` (used by deployment.{svc_name}.{placement_name})",
                                depl.profile
                            ),
                        );
                    }
                }
            }
            let sp = root.key("services").key(svc_name);
            for (i, expose) in service.expose.iter().enumerate() {
                for (j, to) in expose.to.iter().enumerate() {
                    if to.ip.is_empty() {
                        continue;
                    }
                    let tp = sp.key("expose").index(i).key("to").index(j);
                    if !to.global {
                        d.error(to.pos, &tp.key("global"), "an ip endpoint requires global: true");
                        continue;
                    }
                    match input.endpoints.get(&to.ip) {
                        None => {
                            d.error(
                                to.pos,
                                &tp.key("ip"),
                                format!("no endpoint named `{}`; declare it under endpoints with kind: ip", to.ip),
                            );
                            continue;
                        }
                        Some(e) if e.kind != "ip" => continue,
                        Some(_) => {}
                    }
                    endpoints_used.insert(to.ip.clone());
                    let key = (to.ip.clone(), expose.external_port, expose.proto_raw.clone());
                    if let Some(other) = ports_used.get(&key) {
                        d.error(
                            expose.pos,
                            &sp.key("expose").index(i),
                            format!(
                                "ip endpoint `{}` port {} protocol {} is already used by service `{other}`",
                                to.ip,
                                expose.port,
                                if expose.udp { "UDP" } else { "TCP" }
                            ),
                        );
                    } else {
                        ports_used.insert(key, svc_name.clone());
                    }
                }
            }
            let Some(compute) = compute else { continue };
            let Some(params) = &service.params else {
                check_unmounted_persistent(input, svc_name, &depl.profile, &BTreeSet::new(), d);
                continue;
            };
            let mut mounts: BTreeMap<&str, &str> = BTreeMap::new();
            let mut mounted = BTreeSet::new();
            for (vol_name, param) in &params.storage {
                let vp = sp.key("params").key("storage").key(vol_name);
                let Some(volume) = compute.storage.iter().find(|v| &v.name == vol_name) else {
                    d.error(
                        param.pos,
                        &vp,
                        format!(
                            "no volume named `{vol_name}` in compute profile `{}`; expected one of: {}",
                            depl.profile,
                            names(compute.storage.iter().map(|v| &v.name))
                        ),
                    );
                    continue;
                };
                if !param.mount.starts_with('/') {
                    d.error(
                        param.pos,
                        &vp.key("mount"),
                        format!(
                            "mount {:?} is not an absolute path; expected a path such as /data",
                            param.mount
                        ),
                    );
                    continue;
                }
                if let Some(other) = mounts.insert(&param.mount, vol_name) {
                    d.error(
                        param.pos,
                        &vp.key("mount"),
                        format!("mount {:?} is already used by volume `{other}`", param.mount),
                    );
                }
                mounted.insert(vol_name.clone());
                if volume.class() == Some("ram") && param.read_only {
                    d.error(
                        param.pos,
                        &vp.key("readOnly"),
                        "a volume of class ram cannot be read-only",
                    );
                }
            }
            check_unmounted_persistent(input, svc_name, &depl.profile, &mounted, d);
        }
    }
    for (name, endpoint) in &input.endpoints {
        if !endpoints_used.contains(name) {
            d.error(
                endpoint.pos,
                &root.key("endpoints").key(name),
                format!("endpoint `{name}` is declared but no deployed service uses it"),
            );
        }
    }
}

fn check_unmounted_persistent(
    input: &Input,
    svc_name: &str,
    profile: &str,
    mounted: &BTreeSet<String>,
    d: &mut Diagnostics,
) {
    let Some(compute) = input.compute.get(profile) else { return };
    for volume in &compute.storage {
        if volume.persistent() && !mounted.contains(&volume.name) {
            d.error(
                volume.pos,
                &FieldPath::root().key("profiles").key("compute").key(profile).key("resources").key("storage"),
                format!(
                    "persistent volume `{}` must be mounted; add services.{svc_name}.params.storage.{}.mount",
                    volume.name, volume.name
                ),
            );
        }
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() { "(none defined)".to_owned() } else { v.join(", ") }
}

/// Where a derived resource unit came from, for error positions.
#[derive(Debug, Clone)]
pub(crate) struct UnitOrigin {
    pub profile: String,
    pub placement: String,
}

/// Applies the chain's limits to the derived groups and the provider's
/// checks to the manifest.
pub(crate) fn check_derived(
    input: &Input,
    groups: &[GroupSpec],
    origins: &[Vec<UnitOrigin>],
    manifest: &[ManifestGroup],
    d: &mut Diagnostics,
) {
    let root = FieldPath::root();
    let mut first_denom: Option<&str> = None;
    for (g, group) in groups.iter().enumerate() {
        let (mut cpu, mut gpu, mut mem) = (0u128, 0u128, 0u128);
        for (u, unit) in group.resources.iter().enumerate() {
            let Some(origin) = origins.get(g).and_then(|o| o.get(u)) else { continue };
            let cp = root.key("profiles").key("compute").key(&origin.profile).key("resources");
            let profile_pos =
                input.compute.get(&origin.profile).map(|c| c.pos).unwrap_or(input.root_pos);
            let r = &unit.resources;
            if !(MIN_CPU_MILLIS..=MAX_CPU_MILLIS).contains(&r.cpu.millis) {
                d.error(
                    profile_pos,
                    &cp.key("cpu").key("units"),
                    format!(
                        "cpu request of {}m is out of range; expected 10m to {}m ({} cores)",
                        r.cpu.millis,
                        MAX_CPU_MILLIS,
                        MAX_CPU_MILLIS / 1000
                    ),
                );
            }
            if r.gpu.units > MAX_GPU_UNITS {
                d.error(
                    profile_pos,
                    &cp.key("gpu").key("units"),
                    format!(
                        "gpu request of {} is out of range; expected at most {MAX_GPU_UNITS}",
                        r.gpu.units
                    ),
                );
            }
            if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&r.memory_bytes) {
                d.error(
                    profile_pos,
                    &cp.key("memory").key("size"),
                    format!(
                        "memory of {} bytes is out of range; expected 1Mi to 2Ti",
                        r.memory_bytes
                    ),
                );
            }
            for v in &r.storage {
                if !(MIN_STORAGE_BYTES..=MAX_STORAGE_BYTES).contains(&v.bytes) {
                    d.error(
                        profile_pos,
                        &cp.key("storage").key(&v.name),
                        format!(
                            "volume `{}` of {} bytes is out of range; expected 5Mi to 32Ti",
                            v.name, v.bytes
                        ),
                    );
                }
            }
            let price_pos = input
                .placement
                .get(&origin.placement)
                .and_then(|p| p.pricing.get(&origin.profile))
                .map(|c| c.pos)
                .unwrap_or(input.root_pos);
            let pp = root
                .key("profiles")
                .key("placement")
                .key(&origin.placement)
                .key("pricing")
                .key(&origin.profile);
            if unit.price.amount > Dec18::from_int(MAX_UNIT_PRICE) {
                d.error(
                    price_pos,
                    &pp.key("amount"),
                    format!(
                        "price {} is too high; expected at most {MAX_UNIT_PRICE} per block",
                        unit.price.amount
                    ),
                );
            }
            match first_denom {
                None => first_denom = Some(&unit.price.denom),
                Some(first) if first != unit.price.denom => d.error(
                    price_pos,
                    &pp.key("denom"),
                    format!(
                        "denomination `{}` differs from `{first}`; all prices of a deployment must use one denomination",
                        unit.price.denom
                    ),
                ),
                Some(_) => {}
            }
            let count = u128::from(unit.count);
            cpu += u128::from(r.cpu.millis) * count;
            gpu += u128::from(r.gpu.units) * count;
            mem += u128::from(r.memory_bytes) * count;
        }
        let gp = root.key("deployment");
        let limits = [
            ("cpu", cpu, u128::from(MAX_CPU_MILLIS * MAX_UNIT_COUNT)),
            ("gpu", gpu, u128::from(MAX_GPU_UNITS * MAX_UNIT_COUNT)),
            ("memory", mem, u128::from(MAX_MEMORY_BYTES) * u128::from(MAX_UNIT_COUNT)),
        ];
        for (what, total, max) in limits {
            if total > max {
                d.error(
                    input.deployment_pos,
                    &gp,
                    format!(
                        "group `{}` requests {total} {what} in total; the limit is {max}",
                        group.name
                    ),
                );
            }
        }
    }

    let mut hosts: BTreeMap<&str, &str> = BTreeMap::new();
    let mut global = false;
    for group in manifest {
        for svc in &group.services {
            let sp = root.key("services").key(&svc.name);
            let svc_in = input.services.get(&svc.name);
            let svc_pos = svc_in.map(|s| s.pos).unwrap_or(input.root_pos);
            if !is_valid_service_name(&svc.name) {
                d.error(
                    svc_pos,
                    &sp,
                    format!(
                        "invalid service name {:?}; expected lowercase letters, digits and -, starting with a letter",
                        svc.name
                    ),
                );
            }
            if let Some(env) = svc_in.and_then(|s| s.env.as_ref()) {
                for (i, (entry, pos)) in env.iter().enumerate() {
                    let name = entry.split('=').next().unwrap_or("");
                    if !is_valid_env_name(name) {
                        d.error(
                            *pos,
                            &sp.key("env").index(i),
                            format!(
                                "invalid environment variable name {name:?}; expected NAME=value with letters, digits, _, - or . (not starting with a digit)"
                            ),
                        );
                    }
                }
            }
            global |= svc.expose.iter().any(|e| e.global);
            for e in &svc.expose {
                for host in e.hosts.iter().flatten() {
                    let (pos, hp) =
                        host_position(svc_in, host, &sp).unwrap_or((svc_pos, sp.clone()));
                    if !is_valid_hostname(host) {
                        d.error(
                            pos,
                            &hp,
                            format!("invalid host name {host:?}; expected a lowercase DNS name such as app.example.com"),
                        );
                    } else if let Some(other) = hosts.insert(host, &svc.name) {
                        d.error(
                            pos,
                            &hp,
                            format!(
                                "host name {host:?} is accepted more than once (also by service `{other}`); \
                                 each host may appear once per deployment, in one expose with one destination"
                            ),
                        );
                    }
                }
            }
        }
    }
    // Akash's parser and schema accept a deployment that exposes nothing globally (a backup
    // job, a batch worker); it is legal, but worth a word in case the `global: true` was
    // forgotten.
    if !manifest.is_empty() && !global {
        d.warning(
            input.deployment_pos,
            &root.key("deployment"),
            "no deployed service is exposed globally: nothing in it will be reachable from \
             outside (fine for a batch job or a backup; add `to: [{global: true}]` to an expose \
             otherwise)",
        );
    }
}

fn host_position(svc: Option<&Service>, host: &str, sp: &FieldPath) -> Option<(Pos, FieldPath)> {
    let svc = svc?;
    svc.expose.iter().enumerate().find_map(|(i, e)| {
        e.accept.iter().flatten().enumerate().find_map(|(j, (h, pos))| {
            (h == host).then(|| (*pos, sp.key("expose").index(i).key("accept").index(j)))
        })
    })
}
