//! The decoded SDL input: services, compute and placement profiles, deployment, endpoints and
//! settings, as written in the file (with positions) and before any cross-reference check.

use std::collections::BTreeMap;

use crate::quantity::Dec18;
use crate::yaml::Pos;

/// SDL format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum SdlVersion {
    /// `version: "2.0"`.
    #[serde(rename = "2.0")]
    V2_0,
    /// `version: "2.1"`: services sharing a placement and a compute profile
    /// share one resource unit.
    #[serde(rename = "2.1")]
    V2_1,
}

/// A whole SDL file, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub version: SdlVersion,
    pub root_pos: Pos,
    pub services: BTreeMap<String, Service>,
    pub compute: BTreeMap<String, ComputeProfile>,
    pub placement: BTreeMap<String, PlacementProfile>,
    pub deployment: BTreeMap<String, BTreeMap<String, Deployment>>,
    pub deployment_pos: Pos,
    pub endpoints: BTreeMap<String, Endpoint>,
    pub reclamation_min_window_secs: Option<u64>,
    /// `x-gridlease.replicas`: placement name to (replicas on distinct providers, position).
    pub replicas: BTreeMap<String, (u32, Pos)>,
    /// `x-gridlease.auction`.
    pub auction: crate::spec::AuctionPolicy,
    /// `x-gridlease.sla`.
    pub sla: Option<crate::spec::SlaSpec>,
}

/// One entry of `services`.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub pos: Pos,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub env: Option<Vec<(String, Pos)>>,
    pub expose: Vec<Expose>,
    pub params: Option<Params>,
    pub credentials: Option<Credentials>,
}

/// One entry of a service's `expose` list.
#[derive(Debug, Clone)]
pub(crate) struct Expose {
    pub pos: Pos,
    pub port: u32,
    pub external_port: u32,
    /// As written (empty when absent); the port-collision key uses it verbatim.
    pub proto_raw: String,
    pub udp: bool,
    pub to: Vec<ExposeTo>,
    pub accept: Option<Vec<(String, Pos)>>,
    pub http: HttpOptionsIn,
}

/// One destination of an expose (`to`).
#[derive(Debug, Clone)]
pub(crate) struct ExposeTo {
    pub pos: Pos,
    pub service: String,
    pub global: bool,
    pub ip: String,
}

/// An expose's `http_options` (zero where unset).
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpOptionsIn {
    pub max_body_size: u32,
    pub read_timeout: u32,
    pub send_timeout: u32,
    pub next_tries: u32,
    pub next_timeout: u32,
    pub next_cases: Vec<String>,
    pub proxy_buffer_size: u32,
}

/// A service's `params`.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub storage: BTreeMap<String, StorageParam>,
    pub permissions: Option<Vec<String>>,
    pub tee: Option<(String, Pos)>,
}

/// Where a service mounts one volume (`params.storage.<volume>`).
#[derive(Debug, Clone)]
pub(crate) struct StorageParam {
    pub pos: Pos,
    pub mount: String,
    pub read_only: bool,
}

/// A service's private registry `credentials`.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub host: String,
    pub email: String,
    pub username: String,
    pub password: String,
}

/// One entry of `profiles.compute`, quantities in base units.
#[derive(Debug, Clone)]
pub(crate) struct ComputeProfile {
    pub pos: Pos,
    pub cpu_millis: u64,
    pub cpu_attributes: Vec<(String, String)>,
    pub memory_bytes: u64,
    pub storage: Vec<Volume>,
    pub gpu_units: u64,
    pub gpu_attributes: Vec<(String, String)>,
}

/// One volume of a compute profile's `storage`.
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub pos: Pos,
    pub name: String,
    pub bytes: u64,
    /// Sorted by key; values normalized (`persistent` is `true`/`false`).
    pub attributes: Vec<(String, String)>,
}

impl Volume {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn persistent(&self) -> bool {
        self.attribute("persistent") == Some("true")
    }

    pub(crate) fn class(&self) -> Option<&str> {
        self.attribute("class")
    }
}

/// One entry of `profiles.placement`.
#[derive(Debug, Clone)]
pub(crate) struct PlacementProfile {
    pub pos: Pos,
    pub attributes: Option<Vec<(String, String)>>,
    pub all_of: Option<Vec<String>>,
    pub any_of: Option<Vec<String>>,
    pub pricing: BTreeMap<String, Coin>,
}

/// A price in `pricing`.
#[derive(Debug, Clone)]
pub(crate) struct Coin {
    pub pos: Pos,
    pub denom: String,
    pub amount: Dec18,
}

/// How many replicas of a service run under one placement (`deployment.<service>.<placement>`).
#[derive(Debug, Clone)]
pub(crate) struct Deployment {
    pub pos: Pos,
    pub profile: String,
    pub profile_pos: Pos,
    pub count: u32,
}

/// One entry of `endpoints`.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub pos: Pos,
    pub kind: String,
}
