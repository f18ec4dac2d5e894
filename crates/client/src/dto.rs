//! What the node's list and object endpoints return, as the off-chain crates read it. The
//! shapes mirror the ledger's objects; lifecycle states stay JSON (`{"state": "open", ...}`)
//! and are read through [`state_name`].

use gridlease_types::msg::ProviderInfo;
use gridlease_types::{
    Address, Attribute, BidId, Coin, DecCoin, DeploymentId, GroupId, GroupSpec, OrderId,
    ResourceOffer,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `state` tag of a lifecycle enum as JSON (`open`, `active`, `closed`, ...).
pub fn state_name(state: &Value) -> &str {
    state["state"].as_str().unwrap_or("unknown")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProviderDto {
    pub owner: Address,
    pub host_uri: String,
    pub attributes: Vec<Attribute>,
    #[serde(default)]
    pub info: ProviderInfo,
    pub created_at: u64,
}

/// Attributes of a provider that one auditor signed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditDto {
    pub provider: Address,
    pub auditor: Address,
    pub attributes: Vec<Attribute>,
}

/// `GET /providers/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProviderRecord {
    pub provider: ProviderDto,
    pub audits: Vec<AuditDto>,
}

/// One entry of `GET /certificates/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CertificateDto {
    pub owner: Address,
    /// Hex SHA-256 of the PEM.
    pub serial: String,
    pub state: Value,
    pub cert_pem: String,
    pub pubkey_pem: String,
    pub created_at: u64,
}

impl CertificateDto {
    pub fn is_valid(&self) -> bool {
        state_name(&self.state) == "valid"
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeploymentDto {
    pub id: DeploymentId,
    pub state: Value,
    /// Hex SHA-256 of the manifest.
    pub manifest_hash: String,
    pub groups: u32,
    pub created_at: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupDto {
    pub id: GroupId,
    pub spec: GroupSpec,
    pub state: Value,
    pub oseq: u32,
    pub created_at: u64,
}

/// `GET /deployments/{owner}/{dseq}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub deployment: DeploymentDto,
    pub groups: Vec<GroupDto>,
    pub escrow: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrderDto {
    pub id: OrderId,
    pub max_price: DecCoin,
    pub state: Value,
    pub bids: u32,
    pub created_at: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BidDto {
    pub id: BidId,
    pub price: DecCoin,
    pub offer: Vec<ResourceOffer>,
    pub deposit: Coin,
    pub state: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseDto {
    pub id: BidId,
    pub price: DecCoin,
    pub state: Value,
    pub created_at: u64,
}

/// One module event of a committed block, as `/events` streams it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainEvent {
    pub height: u64,
    #[serde(default)]
    pub tx_hash: Option<String>,
    /// The event itself: `{"type": "order_opened", ...}`.
    pub event: Value,
}

impl ChainEvent {
    pub fn kind(&self) -> &str {
        self.event["type"].as_str().unwrap_or("unknown")
    }
}

/// One committed block's events, as `/events` streams it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockEvents {
    pub height: u64,
    pub time: String,
    pub events: Vec<ChainEvent>,
}
