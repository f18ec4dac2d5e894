//! Deriving group specs and the manifest from a checked SDL, in the order and
//! with the defaults Akash uses (so manifest hashes can agree).

use std::collections::BTreeMap;

use crate::error::{Diagnostics, FieldPath};
use crate::model::{ComputeProfile, Expose, HttpOptionsIn, Input, SdlVersion};
use crate::spec::{
    Attribute, Cpu, Credentials, DecCoin, Endpoint, EndpointKind, Gpu, GroupSpec, HttpOptions,
    ManifestGroup, ManifestService, Protocol, Requirements, ResourceUnit, Resources, ServiceExpose,
    ServiceParams, SignedBy, StorageParams, Volume,
};
use crate::validate::UnitOrigin;

pub(crate) struct Derived {
    pub groups: Vec<GroupSpec>,
    pub origins: Vec<Vec<UnitOrigin>>,
    pub manifest: Vec<ManifestGroup>,
}

/// Sequence numbers of named IP endpoints, assigned as Akash does: every
/// non-global-or-IP destination of every deployed service contributes its
/// `ip` (possibly empty) to a sorted list numbered from 1, and a repeated
/// name keeps its last number.
fn endpoint_sequence_numbers(input: &Input) -> BTreeMap<String, u32> {
    let mut names: Vec<&str> = Vec::new();
    for svc_name in input.deployment.keys() {
        let Some(svc) = input.services.get(svc_name) else { continue };
        for expose in &svc.expose {
            for to in &expose.to {
                if to.global && to.ip.is_empty() {
                    continue;
                }
                names.push(&to.ip);
            }
        }
    }
    names.sort_unstable();
    let mut out = BTreeMap::new();
    for (i, name) in names.into_iter().enumerate() {
        out.insert(name.to_owned(), u32::try_from(i + 1).unwrap_or(u32::MAX));
    }
    out
}

/// The SDL's HTTP options with Akash's defaults for what it leaves out (or sets to 0).
fn http_options(h: &HttpOptionsIn) -> HttpOptions {
    let defaults = HttpOptions::default();
    let or = |v: u32, default: u32| if v == 0 { default } else { v };
    HttpOptions {
        max_body_size: or(h.max_body_size, defaults.max_body_size),
        read_timeout: or(h.read_timeout, defaults.read_timeout),
        send_timeout: or(h.send_timeout, defaults.send_timeout),
        next_tries: or(h.next_tries, defaults.next_tries),
        next_timeout: h.next_timeout,
        next_cases: if h.next_cases.is_empty() {
            defaults.next_cases
        } else {
            h.next_cases.clone()
        },
        proxy_buffer_size: h.proxy_buffer_size,
    }
}

/// One manifest expose per destination (or one local expose when there is
/// none), stably sorted by service, port, protocol and global-first.
fn manifest_exposes(exposes: &[Expose], seq: &BTreeMap<String, u32>) -> Vec<ServiceExpose> {
    let mut out = Vec::new();
    for e in exposes {
        let proto = if e.udp { Protocol::Udp } else { Protocol::Tcp };
        let http = http_options(&e.http);
        let hosts: Option<Vec<String>> =
            e.accept.as_ref().map(|a| a.iter().map(|(h, _)| h.clone()).collect());
        let base = ServiceExpose {
            port: e.port,
            external_port: e.external_port,
            proto,
            service: String::new(),
            global: false,
            hosts,
            http_options: http,
            ip: String::new(),
            endpoint_sequence_number: 0,
        };
        if e.to.is_empty() {
            out.push(base);
            continue;
        }
        for to in &e.to {
            let mut x = base.clone();
            x.service = to.service.clone();
            x.global = to.global;
            x.ip = to.ip.clone();
            if to.global && !to.ip.is_empty() {
                x.endpoint_sequence_number = seq.get(&to.ip).copied().unwrap_or(0);
            }
            out.push(x);
        }
    }
    out.sort_by(|a, b| {
        a.service
            .cmp(&b.service)
            .then(a.port.cmp(&b.port))
            .then(a.proto.as_str().cmp(b.proto.as_str()))
            .then(b.global.cmp(&a.global))
    });
    out
}

fn is_ingress(e: &ServiceExpose) -> bool {
    let external = if e.external_port == 0 { e.port } else { e.external_port };
    e.proto == Protocol::Tcp && e.global && external == 80
}

fn expose_endpoints(exposes: &[ServiceExpose]) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for e in exposes.iter().filter(|e| e.global) {
        let kind = if is_ingress(e) { EndpointKind::SharedHttp } else { EndpointKind::RandomPort };
        out.push(Endpoint { kind, sequence_number: 0 });
        if !e.ip.is_empty() {
            out.push(Endpoint {
                kind: EndpointKind::LeasedIp,
                sequence_number: e.endpoint_sequence_number,
            });
        }
    }
    out
}

fn attributes(pairs: &[(String, String)]) -> Vec<Attribute> {
    pairs.iter().map(|(k, v)| Attribute::new(k, v)).collect()
}

fn resources(c: &ComputeProfile, id: u32, endpoints: Vec<Endpoint>) -> Resources {
    Resources {
        id,
        cpu: Cpu { millis: c.cpu_millis, attributes: attributes(&c.cpu_attributes) },
        memory_bytes: c.memory_bytes,
        storage: c
            .storage
            .iter()
            .map(|v| Volume {
                name: v.name.clone(),
                bytes: v.bytes,
                attributes: attributes(&v.attributes),
            })
            .collect(),
        gpu: Gpu { units: c.gpu_units, attributes: attributes(&c.gpu_attributes) },
        endpoints,
    }
}

struct GroupBuilder {
    spec: GroupSpec,
    origins: Vec<UnitOrigin>,
    services: Vec<ManifestService>,
    unit_by_profile: BTreeMap<String, usize>,
    tee: Option<String>,
}

/// Builds groups and manifest. References must already have been checked;
/// anything missing is skipped.
pub(crate) fn derive(input: &Input, d: &mut Diagnostics) -> Derived {
    let seq = endpoint_sequence_numbers(input);
    let mut groups: BTreeMap<&str, GroupBuilder> = BTreeMap::new();
    for (svc_name, placements) in &input.deployment {
        let Some(svc) = input.services.get(svc_name) else { continue };
        for (placement_name, depl) in placements {
            let (Some(compute), Some(placement)) =
                (input.compute.get(&depl.profile), input.placement.get(placement_name))
            else {
                continue;
            };
            let Some(price) = placement.pricing.get(&depl.profile) else { continue };
            let group = groups.entry(placement_name).or_insert_with(|| GroupBuilder {
                spec: GroupSpec {
                    distinct_providers: false,
                    auction: Default::default(),
                    sla: None,
                    name: placement_name.clone(),
                    requirements: Requirements {
                        signed_by: SignedBy {
                            all_of: placement.all_of.clone(),
                            any_of: placement.any_of.clone(),
                        },
                        attributes: placement.attributes.as_deref().map(attributes),
                    },
                    resources: Vec::new(),
                },
                origins: Vec::new(),
                services: Vec::new(),
                unit_by_profile: BTreeMap::new(),
                tee: None,
            });
            if let Some(params) = &svc.params
                && let Some((tee, tee_pos)) = &params.tee
            {
                let tp = FieldPath::root().key("services").key(svc_name).key("params").key("tee");
                if tee == "cpu-gpu" && compute.gpu_units == 0 {
                    d.error(
                        *tee_pos,
                        &tp,
                        format!(
                            "tee type cpu-gpu requires gpu resources, but compute profile `{}` has none",
                            depl.profile
                        ),
                    );
                }
                match &group.tee {
                    Some(existing) if existing != tee => d.error(
                        *tee_pos,
                        &tp,
                        format!("placement `{placement_name}` already has tee type {existing:?}; one group cannot mix tee types"),
                    ),
                    Some(_) => {}
                    None => {
                        group.tee = Some(tee.clone());
                        let attrs = group.spec.requirements.attributes.get_or_insert_with(Vec::new);
                        attrs.push(Attribute::new("tee/type", tee));
                        attrs.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
            }
            let exposes = manifest_exposes(&svc.expose, &seq);
            let endpoints = expose_endpoints(&exposes);
            let bound = match input.version {
                SdlVersion::V2_1 => group.unit_by_profile.get(&depl.profile).copied(),
                SdlVersion::V2_0 => None,
            };
            let id = match bound {
                Some(index) => {
                    let unit = &mut group.spec.resources[index];
                    unit.count = unit.count.saturating_add(depl.count);
                    unit.resources.endpoints.extend(endpoints.iter().copied());
                    unit.resources.endpoints.sort_by_key(|e| e.sequence_number);
                    unit.resources.id
                }
                None => {
                    let id = u32::try_from(group.spec.resources.len() + 1).unwrap_or(u32::MAX);
                    group.spec.resources.push(ResourceUnit {
                        resources: resources(compute, id, endpoints.clone()),
                        count: depl.count,
                        price: DecCoin { denom: price.denom.clone(), amount: price.amount },
                    });
                    group.origins.push(UnitOrigin {
                        profile: depl.profile.clone(),
                        placement: placement_name.clone(),
                    });
                    group
                        .unit_by_profile
                        .insert(depl.profile.clone(), group.spec.resources.len() - 1);
                    id
                }
            };
            let params = svc.params.as_ref().map(|p| ServiceParams {
                storage: (!p.storage.is_empty()).then(|| {
                    p.storage
                        .iter()
                        .map(|(name, s)| StorageParams {
                            name: name.clone(),
                            mount: s.mount.clone(),
                            read_only: s.read_only,
                        })
                        .collect()
                }),
                permissions: p.permissions.clone(),
                tee: p.tee.as_ref().map(|(t, _)| t.clone()),
            });
            let credentials = svc.credentials.as_ref().map(|c| match input.version {
                SdlVersion::V2_0 => Credentials {
                    host: c.host.clone(),
                    email: String::new(),
                    username: c.username.clone(),
                    password: c.password.clone(),
                },
                SdlVersion::V2_1 => Credentials {
                    host: c.host.trim().to_owned(),
                    email: c.email.trim().to_owned(),
                    username: c.username.trim().to_owned(),
                    password: c.password.trim().to_owned(),
                },
            });
            group.services.push(ManifestService {
                name: svc_name.clone(),
                image: svc.image.clone(),
                command: svc.command.clone(),
                args: svc.args.clone(),
                env: svc.env.as_ref().map(|e| e.iter().map(|(v, _)| v.clone()).collect()),
                resources: resources(compute, id, endpoints),
                count: depl.count,
                expose: exposes,
                params,
                credentials,
            });
        }
    }
    let ext = FieldPath::root().key(crate::decode::GRIDLEASE_EXTENSION).key("replicas");
    for (name, (_, pos)) in &input.replicas {
        if !groups.contains_key(name.as_str()) {
            d.error(
                *pos,
                &ext.key(name),
                format!(
                    "no group `{name}`: replicas name a placement profile used under `deployment`"
                ),
            );
        }
    }
    let mut out = Derived { groups: Vec::new(), origins: Vec::new(), manifest: Vec::new() };
    let names: Vec<String> = groups.keys().map(|n| n.to_string()).collect();
    for (_, mut g) in groups {
        g.services.sort_by(|a, b| a.name.cmp(&b.name));
        // `x-gridlease.replicas`: N copies of the group, `NAME`, `NAME-2`, ..., each on a
        // provider of its own.
        let (copies, pos) =
            input.replicas.get(&g.spec.name).copied().unwrap_or((1, input.root_pos));
        for i in 1..=copies {
            let mut spec = g.spec.clone();
            if i > 1 {
                spec.name = format!("{}-{i}", g.spec.name);
                if names.contains(&spec.name) {
                    d.error(
                        pos,
                        &ext.key(&g.spec.name),
                        format!(
                            "replica group `{}` would clash with the placement of that name",
                            spec.name
                        ),
                    );
                }
            }
            spec.distinct_providers = copies > 1;
            spec.auction = input.auction;
            spec.sla = input.sla;
            out.manifest
                .push(ManifestGroup { name: spec.name.clone(), services: g.services.clone() });
            out.groups.push(spec);
            out.origins.push(g.origins.clone());
        }
    }
    out
}
