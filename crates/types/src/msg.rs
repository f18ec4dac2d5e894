//! Messages: the operations a transaction carries, one enum variant per operation.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::amount::{Coin, DecCoin};
use crate::attributes::Attribute;
use crate::ids::{BidId, DeploymentId, OrderId};
use crate::resources::{GroupSpec, ResourceOffer};
use crate::{Address, PublicKey};

/// Contact details a provider publishes.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ProviderInfo {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub website: String,
}

/// One operation. The signer of the transaction is the actor of every message in it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    // bank
    Send {
        to: Address,
        amount: Coin,
    },
    // provider
    CreateProvider {
        host_uri: String,
        attributes: Vec<Attribute>,
        info: ProviderInfo,
    },
    UpdateProvider {
        host_uri: String,
        attributes: Vec<Attribute>,
        info: ProviderInfo,
    },
    // audit
    SignProviderAttributes {
        provider: Address,
        attributes: Vec<Attribute>,
    },
    DeleteProviderAttributes {
        provider: Address,
        keys: Vec<String>,
    },
    // cert
    CreateCertificate {
        cert_pem: Vec<u8>,
        pubkey_pem: Vec<u8>,
    },
    RevokeCertificate {
        serial: [u8; 32],
    },
    // deployment
    CreateDeployment {
        dseq: u64,
        groups: Vec<GroupSpec>,
        manifest_hash: [u8; 32],
        deposit: Coin,
    },
    DepositDeployment {
        dseq: u64,
        amount: Coin,
    },
    UpdateDeployment {
        dseq: u64,
        manifest_hash: [u8; 32],
    },
    CloseDeployment {
        dseq: u64,
    },
    // market
    CreateBid {
        order: OrderId,
        price: DecCoin,
        offer: Vec<ResourceOffer>,
        deposit: Coin,
    },
    CloseBid {
        order: OrderId,
    },
    AcceptBid {
        bid: BidId,
    },
    CloseLease {
        lease: BidId,
    },
    WithdrawLease {
        lease: BidId,
    },
    /// The tenant replaces an open order that could not find a winner (stalled) with a fresh
    /// one for the same group.
    ReopenOrder {
        order: OrderId,
    },
    // staking
    /// The signer bonds native tokens behind a consensus key. The first bond makes the signer
    /// a validator with that key (unique on the chain); later bonds must name the same key.
    Bond {
        consensus_key: PublicKey,
        moniker: String,
        amount: Coin,
    },
    /// The signer starts unbonding part or all of its stake; the tokens come back after the
    /// unbonding period.
    Unbond {
        amount: Coin,
    },
    /// Anyone reports that the validator with consensus key `offender` signed two different
    /// votes of one kind for one height and round. `evidence` holds the two signed votes
    /// (consensus' encoding); the node checks them before executing the block, and a report
    /// that does not verify fails. A verified one slashes the validator and removes it from
    /// the set for good.
    SubmitEvidence {
        offender: PublicKey,
        height: u64,
        evidence: Vec<u8>,
    },
    // health
    /// The tenant names the accounts whose health reports decide whether the deployment's
    /// leases are up (at most [`MAX_MONITORS`], distinct; empty: nobody, health is not
    /// tracked and every lease pays every block).
    SetMonitors {
        dseq: u64,
        monitors: Vec<Address>,
    },
    /// A monitor's observations, many leases in one message (at most [`MAX_HEALTH_REPORTS`]).
    /// A report on a lease whose tenant does not name the signer, or on a closed lease, is
    /// skipped with a `HealthReportIgnored` event; the others count.
    ReportHealth {
        reports: Vec<HealthReport>,
    },
}

/// Most monitors a deployment names.
pub const MAX_MONITORS: usize = 8;
/// Most lease reports in one `ReportHealth`.
pub const MAX_HEALTH_REPORTS: usize = 512;

/// One monitor's verdict on one lease.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct HealthReport {
    pub lease: BidId,
    /// Whether the lease's service answered the monitor.
    pub up: bool,
}

impl Msg {
    /// Short name used in events, logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Send { .. } => "bank.send",
            Msg::CreateProvider { .. } => "provider.create",
            Msg::UpdateProvider { .. } => "provider.update",
            Msg::SignProviderAttributes { .. } => "audit.sign",
            Msg::DeleteProviderAttributes { .. } => "audit.delete",
            Msg::CreateCertificate { .. } => "cert.create",
            Msg::RevokeCertificate { .. } => "cert.revoke",
            Msg::CreateDeployment { .. } => "deployment.create",
            Msg::DepositDeployment { .. } => "deployment.deposit",
            Msg::UpdateDeployment { .. } => "deployment.update",
            Msg::CloseDeployment { .. } => "deployment.close",
            Msg::CreateBid { .. } => "market.create_bid",
            Msg::CloseBid { .. } => "market.close_bid",
            Msg::AcceptBid { .. } => "market.accept_bid",
            Msg::CloseLease { .. } => "market.close_lease",
            Msg::WithdrawLease { .. } => "market.withdraw_lease",
            Msg::ReopenOrder { .. } => "market.reopen_order",
            Msg::Bond { .. } => "staking.bond",
            Msg::Unbond { .. } => "staking.unbond",
            Msg::SubmitEvidence { .. } => "staking.evidence",
            Msg::SetMonitors { .. } => "health.set_monitors",
            Msg::ReportHealth { .. } => "health.report",
        }
    }

    /// The deployment a message addresses when the signer owns it.
    pub fn deployment_of(&self, signer: Address) -> Option<DeploymentId> {
        match self {
            Msg::CreateDeployment { dseq, .. }
            | Msg::DepositDeployment { dseq, .. }
            | Msg::UpdateDeployment { dseq, .. }
            | Msg::CloseDeployment { dseq }
            | Msg::SetMonitors { dseq, .. } => Some(DeploymentId { owner: signer, dseq: *dseq }),
            _ => None,
        }
    }
}
