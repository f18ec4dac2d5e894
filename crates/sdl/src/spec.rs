//! What an SDL file derives: the on-chain group specs and the provider manifest.
//!
//! Quantities are in base units (CPU in millicores, memory and storage in
//! bytes); prices are exact decimals per block. These serialize to the
//! gridlease JSON shape; [`Sdl::groups_akash_json`](crate::Sdl::groups_akash_json) and
//! [`Sdl::manifest_akash_json`](crate::Sdl::manifest_akash_json) render Akash's shape.

use serde::Serialize;

use crate::quantity::Dec18;

/// A key/value attribute (placement requirement, storage class, GPU model).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SignedBy {
    /// Every one of these auditors (`None` when the SDL gives no list).
    pub all_of: Option<Vec<String>>,
    /// At least one of these auditors (`None` when the SDL gives no list).
    pub any_of: Option<Vec<String>>,
}

/// What a provider must satisfy to bid on a group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Requirements {
    /// Required auditor signatures.
    pub signed_by: SignedBy,
    /// Required provider attributes, sorted by key (`None` when there are none).
    pub attributes: Option<Vec<Attribute>>,
}

/// How an endpoint is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Kind of endpoint.
    pub kind: EndpointKind,
    /// For leased IPs, the sequence number of the named IP endpoint; else 0.
    pub sequence_number: u32,
}

/// CPU request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// Thousandths of a core.
    pub millis: u64,
    /// Attributes such as `arch`.
    pub attributes: Vec<Attribute>,
}

/// GPU request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// Number of GPUs.
    pub units: u64,
    /// Acceptable models, e.g. `vendor/nvidia/model/rtx3080` = `true`
    /// (`vendor/nvidia/model/*` for any model).
    pub attributes: Vec<Attribute>,
}

/// One storage volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Volume name (`default` for a single unnamed volume).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// `class` and `persistent`, sorted by key.
    pub attributes: Vec<Attribute>,
}

/// The resources of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Resource unit id within its group, from 1.
    pub id: u32,
    /// CPU.
    pub cpu: Cpu,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Storage volumes.
    pub storage: Vec<Volume>,
    /// GPUs.
    pub gpu: Gpu,
    /// Network endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// A price in a denomination, per block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecCoin {
    /// Denomination such as `uakt`.
    pub denom: String,
    /// Exact amount with 18 decimal places.
    #[serde(serialize_with = "serialize_dec")]
    pub amount: Dec18,
}

fn serialize_dec<S: serde::Serializer>(d: &Dec18, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

/// Resources requested `count` times at a maximum price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceUnit {
    /// Resources of one replica.
    pub resources: Resources,
    /// Number of replicas.
    pub count: u32,
    /// Maximum price per block for one replica.
    pub price: DecCoin,
}

/// An on-chain deployment group: what is ordered from providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSpec {
    /// Group name (the placement profile's name).
    pub name: String,
    /// Provider requirements.
    pub requirements: Requirements,
    /// Resource units.
    pub resources: Vec<ResourceUnit>,
}

/// Network protocol of an exposed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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

/// HTTP proxy settings of an exposed port (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// One exposed port of a service, for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceExpose {
    /// Container port.
    pub port: u32,
    /// Port seen from outside (0: same as `port`).
    pub external_port: u32,
    /// Protocol.
    pub proto: Protocol,
    /// Service allowed to connect (empty for global or none).
    pub service: String,
    /// Reachable from the internet.
    pub global: bool,
    /// Accepted host names.
    pub hosts: Option<Vec<String>>,
    /// HTTP proxy settings.
    pub http_options: HttpOptions,
    /// Named IP endpoint (empty for none).
    pub ip: String,
    /// Sequence number of the IP endpoint (0 for none).
    pub endpoint_sequence_number: u32,
}

/// A volume mount of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageParams {
    /// Volume name.
    pub name: String,
    /// Absolute mount path.
    pub mount: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Extra service parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceParams {
    /// Volume mounts sorted by name (`None` when the service mounts none).
    pub storage: Option<Vec<StorageParams>>,
    /// What the workload may read about its own lease (`deployment`, `logs`, `events`).
    pub permissions: Option<Vec<String>>,
    /// Confidential-compute type (`cpu` or `cpu-gpu`).
    pub tee: Option<String>,
}

/// Private registry credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    /// Registry host.
    pub host: String,
    /// Email (empty when not given, and always empty for SDL 2.0 as in Akash).
    pub email: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

/// One service in a manifest group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    pub expose: Vec<ServiceExpose>,
    /// Mounts and other parameters.
    pub params: Option<ServiceParams>,
    /// Registry credentials.
    pub credentials: Option<Credentials>,
}

/// The services of one group, as the provider receives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestGroup {
    /// Group name.
    pub name: String,
    /// Services sorted by name.
    pub services: Vec<ManifestService>,
}
