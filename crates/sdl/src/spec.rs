//! What an SDL file derives: the on-chain group specs and the provider manifest.
//!
//! Quantities are in base units (CPU in millicores, memory and storage in
//! bytes); prices are exact decimals per block. These serialize to the
//! gridlease JSON shape; [`Sdl::groups_akash_json`](crate::Sdl::groups_akash_json) and
//! [`Sdl::manifest_akash_json`](crate::Sdl::manifest_akash_json) render Akash's shape.
//!
//! They deserialize from the same shape, so the tenant (who derives a manifest here) and the
//! provider (who reads the tenant's bytes) speak one type. Deserializing what they serialize
//! gives the same value back; beyond that it is lenient where a hand-written manifest may be
//! brief: optional lists, parameters, exposes, GPUs, storage, attributes, endpoints and the
//! expose fields a plain port leaves out default when missing (HTTP options to Akash's
//! defaults), and unknown fields are ignored.

use serde::{Deserialize, Serialize};

use crate::quantity::Dec18;

/// A key/value attribute (placement requirement, storage class, GPU model).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attribute {
    /// Attribute key, e.g. `region` or `vendor/nvidia/model/a100`.
    pub key: String,
    /// Attribute value, e.g. `us-west` or `true`.
    pub value: String,
}

impl Attribute {
    pub(crate) fn new(key: &str, value: &str) -> Self {
        Attribute { key: key.to_owned(), value: value.to_owned() }
    }
}

/// Auditors that must have signed the provider's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignedBy {
    /// Every one of these auditors (`None` when the SDL gives no list).
    pub all_of: Option<Vec<String>>,
    /// At least one of these auditors (`None` when the SDL gives no list).
    pub any_of: Option<Vec<String>>,
}

/// What a provider must satisfy to bid on a group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Requirements {
    /// Required auditor signatures.
    pub signed_by: SignedBy,
    /// Required provider attributes, sorted by key (`None` when there are none).
    pub attributes: Option<Vec<Attribute>>,
}

/// How an endpoint is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// A hostname on the provider's shared HTTP ingress (global TCP on port 80).
    SharedHttp,
    /// A random port on the provider's address.
    RandomPort,
    /// A leased IP address (an `ip` endpoint).
    LeasedIp,
}

impl EndpointKind {
    /// Akash's numeric code for the kind.
    pub fn code(self) -> u32 {
        match self {
            EndpointKind::SharedHttp => 0,
            EndpointKind::RandomPort => 1,
            EndpointKind::LeasedIp => 2,
        }
    }
}

/// One network endpoint a resource unit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Kind of endpoint.
    pub kind: EndpointKind,
    /// For leased IPs, the sequence number of the named IP endpoint; else 0.
    pub sequence_number: u32,
}

/// CPU request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// Thousandths of a core.
    pub millis: u64,
    /// Attributes such as `arch`.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// GPU request (the default: none).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Gpu {
    /// Number of GPUs.
    pub units: u64,
    /// Acceptable models, e.g. `vendor/nvidia/model/rtx3080` = `true`
    /// (`vendor/nvidia/model/*` for any model).
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// One storage volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Volume name (`default` for a single unnamed volume).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// `class` and `persistent`, sorted by key.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// The resources of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Resource unit id within its group, from 1.
    pub id: u32,
    /// CPU.
    pub cpu: Cpu,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Storage volumes.
    #[serde(default)]
    pub storage: Vec<Volume>,
    /// GPUs.
    #[serde(default)]
    pub gpu: Gpu,
    /// Network endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// A price in a denomination, per block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecCoin {
    /// Denomination such as `uakt`.
    pub denom: String,
    /// Exact amount with 18 decimal places.
    #[serde(serialize_with = "serialize_dec", deserialize_with = "deserialize_dec")]
    pub amount: Dec18,
}

fn serialize_dec<S: serde::Serializer>(d: &Dec18, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

fn deserialize_dec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Dec18, D::Error> {
    let text = String::deserialize(d)?;
    Dec18::parse(&text).map_err(serde::de::Error::custom)
}

/// Resources requested `count` times at a maximum price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUnit {
    /// Resources of one replica.
    pub resources: Resources,
    /// Number of replicas.
    pub count: u32,
    /// Maximum price per block for one replica.
    pub price: DecCoin,
}

/// An on-chain deployment group: what is ordered from providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Group name (the placement profile's name).
    pub name: String,
    /// Provider requirements.
    pub requirements: Requirements,
    /// Resource units.
    pub resources: Vec<ResourceUnit>,
    /// One of the replicas `x-gridlease.replicas` asked for: each on a provider of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub distinct_providers: bool,
    /// How the group's auctions pick the winner (`x-gridlease.auction`).
    #[serde(default, skip_serializing_if = "AuctionPolicy::is_price")]
    pub auction: AuctionPolicy,
    /// The service level asked of each lease (`x-gridlease.sla`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaSpec>,
}

/// `x-gridlease.sla`: in each period of `period_blocks` from a lease's start, its monitors may
/// hold it down for `allowed_down_ppm` of the period; each period past that, and each
/// failover, moves `penalty_ppm` of the provider's bid deposit to the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaSpec {
    pub period_blocks: u64,
    pub allowed_down_ppm: u32,
    pub penalty_ppm: u32,
}

/// `x-gridlease.auction`: how the auctions of the file's groups pick their winners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuctionPolicy {
    /// The lowest price wins (Akash's rule).
    #[default]
    Price,
    /// The lowest price weighted by each bidder's uptime record on chain wins.
    Reliability,
}

impl AuctionPolicy {
    pub fn is_price(&self) -> bool {
        *self == AuctionPolicy::Price
    }
}

/// Network protocol of an exposed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    /// Akash's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// HTTP proxy settings of an exposed port (defaults filled in; a field left out of a
/// manifest takes Akash's default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpOptions {
    /// Largest request body in bytes.
    pub max_body_size: u32,
    /// Read timeout in milliseconds.
    pub read_timeout: u32,
    /// Send timeout in milliseconds.
    pub send_timeout: u32,
    /// Upstream retries.
    pub next_tries: u32,
    /// Retry timeout in milliseconds (0: none).
    pub next_timeout: u32,
    /// When to retry.
    pub next_cases: Vec<String>,
    /// Proxy buffer size in bytes (0: the provider's default).
    pub proxy_buffer_size: u32,
}

impl Default for HttpOptions {
    /// Akash's defaults: 1 MiB bodies, 60 s timeouts, 3 tries on error or timeout.
    fn default() -> Self {
        HttpOptions {
            max_body_size: 1_048_576,
            read_timeout: 60_000,
            send_timeout: 60_000,
            next_tries: 3,
            next_timeout: 0,
            next_cases: vec!["error".to_owned(), "timeout".to_owned()],
            proxy_buffer_size: 0,
        }
    }
}

/// One exposed port of a service, for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceExpose {
    /// Container port.
    pub port: u32,
    /// Port seen from outside (0: same as `port`).
    #[serde(default)]
    pub external_port: u32,
    /// Protocol.
    pub proto: Protocol,
    /// Service allowed to connect (empty for global or none).
    #[serde(default)]
    pub service: String,
    /// Reachable from the internet.
    #[serde(default)]
    pub global: bool,
    /// Accepted host names.
    pub hosts: Option<Vec<String>>,
    /// HTTP proxy settings.
    #[serde(default)]
    pub http_options: HttpOptions,
    /// Named IP endpoint (empty for none).
    #[serde(default)]
    pub ip: String,
    /// Sequence number of the IP endpoint (0 for none).
    #[serde(default)]
    pub endpoint_sequence_number: u32,
}

/// A volume mount of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageParams {
    /// Volume name.
    pub name: String,
    /// Absolute mount path.
    pub mount: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Extra service parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceParams {
    /// Volume mounts sorted by name (`None` when the service mounts none).
    pub storage: Option<Vec<StorageParams>>,
    /// What the workload may read about its own lease (`deployment`, `logs`, `events`).
    pub permissions: Option<Vec<String>>,
    /// Confidential-compute type (`cpu` or `cpu-gpu`).
    pub tee: Option<String>,
}

/// Private registry credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Registry host.
    pub host: String,
    /// Email (empty when not given, and always empty for SDL 2.0 as in Akash).
    #[serde(default)]
    pub email: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// One service in a manifest group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestService {
    /// Service name.
    pub name: String,
    /// Container image.
    pub image: String,
    /// Entrypoint override.
    pub command: Option<Vec<String>>,
    /// Arguments.
    pub args: Option<Vec<String>>,
    /// `NAME=value` environment entries.
    pub env: Option<Vec<String>>,
    /// Resources of one replica (the id names the group's resource unit).
    pub resources: Resources,
    /// Number of replicas.
    pub count: u32,
    /// Exposed ports, in Akash's order.
    #[serde(default)]
    pub expose: Vec<ServiceExpose>,
    /// Mounts and other parameters.
    pub params: Option<ServiceParams>,
    /// Registry credentials.
    pub credentials: Option<Credentials>,
}

/// The services of one group, as the provider receives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestGroup {
    /// Group name.
    pub name: String,
    /// Services sorted by name.
    pub services: Vec<ManifestService>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-written manifest may leave out what a plain service does not use.
    #[test]
    fn a_brief_manifest_reads_with_defaults_and_ignores_unknown_fields() {
        let doc = r#"[{"name":"dc","services":[{"name":"web","image":"demo","count":1,
          "resources":{"id":1,"cpu":{"millis":100},"memory_bytes":1024,"future":true},
          "expose":[{"port":8080,"proto":"UDP","http_options":{}}],
          "params":{"storage":[{"name":"data","mount":"/data"}]}}]}]"#;
        let groups: Vec<ManifestGroup> = serde_json::from_str(doc).expect("a brief manifest");
        let web = &groups[0].services[0];
        assert_eq!((web.command.as_ref(), web.resources.gpu.units), (None, 0));
        assert!(web.resources.storage.is_empty() && web.resources.endpoints.is_empty());
        let expose = &web.expose[0];
        assert_eq!((expose.proto, expose.global, expose.external_port), (Protocol::Udp, false, 0));
        assert_eq!(expose.http_options, HttpOptions::default());
        let mounts = web.params.as_ref().and_then(|p| p.storage.as_deref()).unwrap_or_default();
        assert!(!mounts[0].read_only);
    }

    #[test]
    fn protocols_and_amounts_are_typed() {
        let expose = r#"{"port":53,"proto":"SCTP"}"#;
        let e = serde_json::from_str::<ServiceExpose>(expose).expect_err("sctp").to_string();
        assert!(e.contains("expected `TCP` or `UDP`"), "{e}");
        let coin: DecCoin =
            serde_json::from_str(r#"{"denom":"uakt","amount":"0.250000000000000000"}"#)
                .expect("coin");
        assert_eq!(
            serde_json::to_string(&coin).ok().as_deref(),
            Some(r#"{"denom":"uakt","amount":"0.250000000000000000"}"#)
        );
        let negative = r#"{"denom":"uakt","amount":"-1"}"#;
        let e = serde_json::from_str::<DecCoin>(negative).expect_err("negative").to_string();
        assert!(e.contains("is negative"), "{e}");
    }
}
