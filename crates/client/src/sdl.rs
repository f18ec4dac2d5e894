//! From a parsed SDL file to what goes on chain: the group specs of a `CreateDeployment`, and
//! the manifest bytes whose SHA-256 is the deployment's `manifest_hash` (the provider checks
//! the bytes it receives against it).

use gridlease_sdl::Sdl;
use gridlease_sdl::spec as sdl;
use gridlease_types::{
    Address, Attribute, DecAmount, DecCoin, Denom, Endpoint, EndpointKind, GpuRequirement, GpuSpec,
    GroupSpec, PlacementRequirements, ResourceUnit, Resources, SignedBy, StorageVolume,
};
use sha2::{Digest, Sha256};

/// USDC on Akash, as its templates name it (the IBC denomination of the bridged coin).
pub const AKASH_IBC_USDC: &str =
    "ibc/170C677610AC31DF0904FFE09CD3B5C657492170E7E52372E48756B71E56F2F1";

/// The chain's denomination for one an SDL file prices in: Akash's IBC USDC is `uusdc`;
/// `uact`, `uakt` and gridlease's own are themselves.
pub fn akash_denom(denom: &str) -> &str {
    if denom == AKASH_IBC_USDC { "uusdc" } else { denom }
}

/// Why an SDL file's groups cannot go on chain.
#[derive(Debug, thiserror::Error)]
pub enum SdlChainError {
    #[error("group `{group}`: auditor `{auditor}` is neither a grid nor an akash address")]
    Auditor { group: String, auditor: String },
    #[error("group `{group}`: denomination `{denom}` is not valid")]
    Denom { group: String, denom: String },
    #[error(
        "group `{group}`: GPU attribute `{key}` is not vendor/<vendor>/model/<model>[/ram/<size>][/interface/<pcie|sxm>]"
    )]
    GpuAttribute { group: String, key: String },
}

/// The manifest exactly as it is hashed and sent to providers: the gridlease JSON shape,
/// compact.
pub fn manifest_bytes(sdl: &Sdl) -> Vec<u8> {
    sdl.manifest_json().to_string().into_bytes()
}

/// SHA-256 of [`manifest_bytes`].
pub fn manifest_hash(sdl: &Sdl) -> [u8; 32] {
    Sha256::digest(manifest_bytes(sdl)).into()
}

/// Parses an Akash GPU attribute key (`vendor/nvidia/model/a100/ram/80Gi/interface/sxm`).
fn gpu_spec(key: &str) -> Option<GpuSpec> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.len() < 2 || parts[0] != "vendor" || !parts.len().is_multiple_of(2) {
        return None;
    }
    let mut spec =
        GpuSpec { vendor: parts[1].to_string(), model: None, ram: None, interface: None };
    for pair in parts[2..].chunks(2) {
        let value = Some(pair[1].to_string()).filter(|v| v != "*");
        match pair[0] {
            "model" => spec.model = value,
            "ram" => spec.ram = value,
            "interface" => spec.interface = value,
            _ => return None,
        }
    }
    Some(spec)
}

fn group_spec(g: &sdl::GroupSpec) -> Result<GroupSpec, SdlChainError> {
    let auditors = |list: &Option<Vec<String>>| -> Result<Vec<Address>, SdlChainError> {
        list.iter()
            .flatten()
            .map(|a| {
                a.parse::<Address>().or_else(|_| Address::from_akash(a)).map_err(|_| {
                    SdlChainError::Auditor { group: g.name.clone(), auditor: a.clone() }
                })
            })
            .collect()
    };
    let requirements = PlacementRequirements {
        attributes: g
            .requirements
            .attributes
            .iter()
            .flatten()
            .map(|a| Attribute::new(&a.key, &a.value))
            .collect(),
        signed_by: SignedBy {
            all_of: auditors(&g.requirements.signed_by.all_of)?,
            any_of: auditors(&g.requirements.signed_by.any_of)?,
        },
    };
    let mut resources = Vec::with_capacity(g.resources.len());
    for u in &g.resources {
        let r = &u.resources;
        let storage = r
            .storage
            .iter()
            .map(|v| StorageVolume {
                name: v.name.clone(),
                bytes: v.bytes,
                class: v.attributes.iter().find(|a| a.key == "class").map(|a| a.value.clone()),
                persistent: v.attributes.iter().any(|a| a.key == "persistent" && a.value == "true"),
            })
            .collect();
        let mut options = Vec::new();
        for a in &r.gpu.attributes {
            let spec = gpu_spec(&a.key).ok_or_else(|| SdlChainError::GpuAttribute {
                group: g.name.clone(),
                key: a.key.clone(),
            })?;
            options.push(spec);
        }
        let endpoints = r
            .endpoints
            .iter()
            .map(|e| Endpoint {
                kind: match e.kind {
                    sdl::EndpointKind::SharedHttp => EndpointKind::SharedHttp,
                    sdl::EndpointKind::RandomPort => EndpointKind::RandomPort,
                    sdl::EndpointKind::LeasedIp => EndpointKind::LeasedIp,
                },
                sequence_number: e.sequence_number,
            })
            .collect();
        let denom = Denom::new(akash_denom(&u.price.denom)).map_err(|_| SdlChainError::Denom {
            group: g.name.clone(),
            denom: u.price.denom.clone(),
        })?;
        resources.push(ResourceUnit {
            resources: Resources {
                id: r.id,
                cpu_millis: r.cpu.millis,
                memory_bytes: r.memory_bytes,
                storage,
                gpu: GpuRequirement {
                    units: u32::try_from(r.gpu.units).unwrap_or(u32::MAX),
                    options,
                },
                endpoints,
            },
            count: u.count,
            price: DecCoin { denom, amount: DecAmount::from_atto(u.price.amount.atto()) },
        });
    }
    Ok(GroupSpec {
        name: g.name.clone(),
        requirements,
        resources,
        distinct_providers: g.distinct_providers,
        bid_policy: match g.auction {
            gridlease_sdl::AuctionPolicy::Price => gridlease_types::BidPolicy::Price,
            gridlease_sdl::AuctionPolicy::Reliability => gridlease_types::BidPolicy::Reliability,
        },
        sla: g.sla.map(|s| gridlease_types::Sla {
            period_blocks: s.period_blocks,
            allowed_down_ppm: s.allowed_down_ppm,
            penalty_ppm: s.penalty_ppm,
        }),
    })
}

/// The on-chain group specs of an SDL file, in its order (sorted by name).
pub fn group_specs(sdl: &Sdl) -> Result<Vec<GroupSpec>, SdlChainError> {
    sdl.groups().iter().map(group_spec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
version: "2.0"
services:
  llm:
    image: demo/llm
    expose:
      - port: 8080
        to: [{ global: true }]
profiles:
  compute:
    llm:
      resources:
        cpu: { units: 1.5 }
        memory: { size: 2Gi }
        storage: { size: 1Gi }
        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: a100
                  ram: 80Gi
                - model: "*"
  placement:
    dc:
      attributes: { region: eu }
      pricing: { llm: { denom: uusdc, amount: 12.5 } }
deployment:
  llm:
    dc: { profile: llm, count: 2 }
"#;

    #[test]
    fn groups_carry_resources_gpus_and_prices_exactly() {
        let sdl = Sdl::parse("app.yaml", APP).expect("valid");
        let groups = group_specs(&sdl).expect("converts");
        let g = &groups[0];
        assert_eq!(g.name, "dc");
        assert_eq!(g.requirements.attributes, vec![Attribute::new("region", "eu")]);
        let u = &g.resources[0];
        assert_eq!((u.resources.cpu_millis, u.count), (1500, 2));
        assert_eq!(u.price.amount, "12.5".parse().expect("dec"));
        assert_eq!(u.resources.gpu.units, 1);
        let models: Vec<Option<&str>> =
            u.resources.gpu.options.iter().map(|o| o.model.as_deref()).collect();
        assert!(models.contains(&Some("a100")) && models.contains(&None), "{models:?}");
        assert!(g.validate().is_ok());
        assert_eq!(manifest_hash(&sdl), <[u8; 32]>::from(Sha256::digest(manifest_bytes(&sdl))));
    }

    #[test]
    fn gpu_keys_parse_with_wildcards() {
        let s = gpu_spec("vendor/nvidia/model/h100/ram/80Gi/interface/sxm").expect("spec");
        assert_eq!(s.interface.as_deref(), Some("sxm"));
        assert_eq!(gpu_spec("vendor/nvidia/model/*").and_then(|s| s.model), None);
        assert!(gpu_spec("model/a100").is_none());
        assert!(gpu_spec("vendor/nvidia/color/red").is_none());
    }
}
