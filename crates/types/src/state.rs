//! The ledger's objects and their lifecycle states. States are enums: a closed lease always
//! carries its reason and height, an open one cannot.

use crate::msg::ProviderInfo;
use crate::{
    Address, Attribute, BidId, Coin, DecAmount, DecCoin, Denom, DeploymentId, GroupId, GroupSpec,
    Height, OrderId, PublicKey, ResourceOffer,
};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Why something closed. Every close records one.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The tenant closed the lease, group or deployment.
    TenantClosed,
    /// The provider closed the lease; the group goes back to auction.
    ProviderClosed,
    /// The deployment closed, taking its groups, orders, bids and leases with it.
    DeploymentClosed,
    /// The escrow account stayed overdrawn past the grace period.
    InsufficientFunds,
    /// Another bid won the auction.
    AuctionLost,
    /// The provider withdrew the bid before the auction closed.
    BidWithdrawn,
    /// The order's lease ended.
    LeaseEnded,
    /// The tenant replaced an order that found no winner with a fresh one.
    Reopened,
    /// The tenant's monitors reported the lease down for longer than the failover grace: the
    /// chain closed it, kept part of the provider's bid deposit for the tenant, and put the
    /// group back to auction without that provider.
    Unhealthy,
}

wire_names!(CloseReason {
    TenantClosed => "tenant_closed",
    ProviderClosed => "provider_closed",
    DeploymentClosed => "deployment_closed",
    InsufficientFunds => "insufficient_funds",
    AuctionLost => "auction_lost",
    BidWithdrawn => "bid_withdrawn",
    LeaseEnded => "lease_ended",
    Reopened => "reopened",
    Unhealthy => "unhealthy",
});

#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Account {
    pub public_key: Option<PublicKey>,
    pub sequence: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Provider {
    pub owner: Address,
    pub host_uri: String,
    pub attributes: Vec<Attribute>,
    pub info: ProviderInfo,
    pub created_at: Height,
}

/// Attributes of a provider that one auditor signed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    pub provider: Address,
    pub auditor: Address,
    pub attributes: Vec<Attribute>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CertState {
    Valid,
    Revoked { at: Height },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Certificate {
    pub owner: Address,
    /// SHA-256 of the certificate PEM.
    pub serial: [u8; 32],
    pub cert_pem: Vec<u8>,
    pub pubkey_pem: Vec<u8>,
    pub state: CertState,
    pub created_at: Height,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeploymentState {
    Active,
    Closed { reason: CloseReason, at: Height },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Deployment {
    pub id: DeploymentId,
    pub state: DeploymentState,
    /// SHA-256 of the manifest the provider must receive.
    pub manifest_hash: [u8; 32],
    pub groups: u32,
    pub created_at: Height,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GroupState {
    /// Its current order is open for bids.
    Open,
    /// A lease with this provider runs.
    Leased {
        provider: Address,
    },
    Closed {
        reason: CloseReason,
        at: Height,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Group {
    pub id: GroupId,
    pub spec: GroupSpec,
    pub state: GroupState,
    /// The latest order (auction round) of the group.
    pub oseq: u32,
    pub created_at: Height,
}

/// Why an order whose bid window ended is still open.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoBidReason {
    /// No provider bid during the window: the next valid bid starts a new window.
    NoBids,
    /// Every bid was withdrawn before the window ended: the next valid bid starts a new window.
    AllBidsWithdrawn,
    /// The deployment's escrow is overdrawn: the auction retries after a deposit.
    EscrowOverdrawn,
    /// Deciding the auction failed (see the block's `BeginBlockItemFailed` event): the next
    /// valid bid starts a new window, or the tenant reopens the order.
    AuctionFailed,
    /// Every open bid came from a provider that already holds another replica of the
    /// deployment (groups that ask for distinct providers): the next valid bid starts a new
    /// window.
    ProvidersTaken,
}

wire_names!(NoBidReason {
    NoBids => "no_bids",
    AllBidsWithdrawn => "all_bids_withdrawn",
    EscrowOverdrawn => "escrow_overdrawn",
    AuctionFailed => "auction_failed",
    ProvidersTaken => "providers_taken",
});

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OrderState {
    /// Taking bids. `closes_at` is when the auction decides (none: waiting for a first bid);
    /// `stalled` says why an ended window picked no winner.
    Open {
        closes_at: Option<Height>,
        stalled: Option<NoBidReason>,
    },
    /// The auction picked a bid; its lease is active.
    Matched {
        provider: Address,
    },
    Closed {
        reason: CloseReason,
        at: Height,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Order {
    pub id: OrderId,
    pub max_price: DecCoin,
    pub state: OrderState,
    /// Bids open on this order while it is open: a withdrawn bid frees its place, so bids
    /// that come and go cannot fill the limit.
    pub bids: u32,
    pub created_at: Height,
}

/// When a bid was placed: earlier wins ties.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BidTime {
    pub height: Height,
    pub tx_index: u32,
    pub msg_index: u32,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BidState {
    Open,
    /// Won the auction; the lease runs.
    Won,
    Closed {
        reason: CloseReason,
        at: Height,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Bid {
    pub id: BidId,
    pub price: DecCoin,
    pub offer: Vec<ResourceOffer>,
    /// Held from the provider while the bid is open or won; refunded when it closes.
    pub deposit: Coin,
    pub state: BidState,
    pub placed: BidTime,
}

impl Bid {
    pub fn holds_deposit(&self) -> bool {
        matches!(self.state, BidState::Open | BidState::Won)
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LeaseState {
    Active,
    Closed { reason: CloseReason, at: Height },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Lease {
    pub id: BidId,
    /// Price per block.
    pub price: DecCoin,
    pub state: LeaseState,
    pub created_at: Height,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EscrowState {
    Open,
    /// Funds ran out at `since`; leases keep running unpaid until `grace_until`, when the
    /// deployment closes unless the tenant deposits.
    Overdrawn {
        since: Height,
        grace_until: Height,
    },
    Closed {
        at: Height,
    },
}

/// The escrow of one deployment. Settlement is lazy: `paid_blocks` counts the blocks paid at
/// the full `rate`, and each payment's share is `payment.rate × (paid_blocks − checkpoint)`,
/// so settling costs the same whatever the number of leases.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EscrowAccount {
    pub id: DeploymentId,
    pub denom: Denom,
    pub state: EscrowState,
    pub balance: DecAmount,
    pub deposited: DecAmount,
    /// Moved to payments by settlement.
    pub transferred: DecAmount,
    /// Returned to the owner at close.
    pub refunded: DecAmount,
    /// Sum of the rates of the open payments, per block.
    pub rate: DecAmount,
    pub settled_at: Height,
    pub paid_blocks: u64,
    /// Height at which the balance can no longer pay `rate` (queued in `DUE_DEPLETION`).
    pub depletes_at: Option<Height>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PaymentState {
    Open,
    Closed {
        at: Height,
    },
    /// The lease is down: the payment earns nothing until it is up again.
    Paused {
        since: Height,
    },
}

/// What a deployment's monitors say of one lease, and what it cost the provider.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LeaseHealth {
    pub lease: BidId,
    /// Down since this height (the majority of the tenant's monitors report it down);
    /// `None` while up.
    pub down_since: Option<Height>,
    /// Blocks it was down before the current spell, if any.
    pub down_blocks: u64,
    /// Each monitor's latest verdict: (monitor, up, height of the report).
    pub votes: Vec<(Address, bool, Height)>,
    /// Under an SLA: the period (counted from the lease's start) whose down blocks
    /// `sla_period_down` holds, whether that period was already a breach, and the breaches so
    /// far. Down blocks count when their spell ends.
    pub sla_period: u64,
    pub sla_period_down: u64,
    pub sla_period_breached: bool,
    pub sla_breaches: u32,
}

impl LeaseHealth {
    /// Blocks down up to `height`, the current spell included.
    pub fn down_blocks_at(&self, height: Height) -> u64 {
        self.down_blocks.saturating_add(self.down_since.map_or(0, |s| height.saturating_sub(s)))
    }
}

/// A provider a group's auctions refuse until a height, because the chain failed over its
/// lease of the group.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Exclusion {
    pub provider: Address,
    /// The first height it may bid on the group again.
    pub until: Height,
}

/// A provider's record under the tenants' monitors, over every lease it held.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ProviderUptime {
    /// Blocks of its leases that ended (from lease creation to close).
    pub lease_blocks: u64,
    /// Of those, blocks the monitors reported down.
    pub down_blocks: u64,
    /// Times one of its leases went down.
    pub outages: u64,
    /// Leases the chain closed because they stayed down past the grace.
    pub failovers: u64,
}

/// Blocks of history at [`UPTIME_PRIOR_PPM`] that every uptime record is weighed from, so that
/// a provider with little or no record scores as a middling one, not a perfect one (a flaky
/// provider gains nothing from a fresh key).
pub const UPTIME_PRIOR_BLOCKS: u64 = 10_000;
/// The uptime a provider without a record is assumed to have: 90%.
pub const UPTIME_PRIOR_PPM: u64 = 900_000;

impl ProviderUptime {
    /// The uptime auctions weigh bids by: the record's up blocks and those of the prior
    /// ([`UPTIME_PRIOR_BLOCKS`] at [`UPTIME_PRIOR_PPM`]) over both, in parts per million.
    pub fn weighed_uptime_ppm(&self) -> u64 {
        let prior_up = u128::from(UPTIME_PRIOR_BLOCKS) * u128::from(UPTIME_PRIOR_PPM) / 1_000_000;
        let up = u128::from(self.lease_blocks.saturating_sub(self.down_blocks)) + prior_up;
        let all = u128::from(self.lease_blocks) + u128::from(UPTIME_PRIOR_BLOCKS);
        u64::try_from(up * 1_000_000 / all).unwrap_or(1_000_000)
    }

    /// Share of its ended leases' blocks that were up, in parts per million (1,000,000 with no
    /// ended lease yet).
    pub fn uptime_ppm(&self) -> u64 {
        if self.lease_blocks == 0 {
            return 1_000_000;
        }
        let up = self.lease_blocks.saturating_sub(self.down_blocks);
        u64::try_from(u128::from(up) * 1_000_000 / u128::from(self.lease_blocks))
            .unwrap_or(1_000_000)
    }
}

/// One lease's stream of payment out of its deployment's escrow.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Payment {
    pub lease: BidId,
    pub rate: DecAmount,
    /// The escrow's `paid_blocks` when this payment last took its share.
    pub checkpoint: u64,
    /// Earned and not yet paid out.
    pub unwithdrawn: DecAmount,
    /// Paid out so far, before the take rate.
    pub withdrawn: DecAmount,
    pub state: PaymentState,
}

impl EscrowAccount {
    /// `paid_blocks` as settlement at `height` would leave it: the blocks owed since
    /// `settled_at` that the balance affords are paid (an open account with a rate only).
    pub fn paid_blocks_at(&self, height: Height) -> u64 {
        if self.state != EscrowState::Open || self.rate.is_zero() {
            return self.paid_blocks;
        }
        let owed = u128::from(height.saturating_sub(self.settled_at));
        let blocks = owed.min(self.balance.0 / self.rate.0);
        self.paid_blocks.saturating_add(u64::try_from(blocks).unwrap_or(u64::MAX))
    }
}

impl Payment {
    /// Earned since the last checkpoint, as if the account were settled at `height`.
    pub fn pending_at(&self, account: &EscrowAccount, height: Height) -> DecAmount {
        if self.state != PaymentState::Open {
            return DecAmount::ZERO;
        }
        let blocks = account.paid_blocks_at(height).saturating_sub(self.checkpoint);
        DecAmount(self.rate.0.saturating_mul(u128::from(blocks)))
    }

    /// Earned since the last checkpoint, given the account's `paid_blocks`.
    pub fn pending(&self, account: &EscrowAccount) -> DecAmount {
        if self.state != PaymentState::Open {
            return DecAmount::ZERO;
        }
        let blocks = account.paid_blocks.saturating_sub(self.checkpoint);
        DecAmount(self.rate.0.saturating_mul(u128::from(blocks)))
    }
}

/// A validator: an account that bonded native tokens behind a consensus key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Validator {
    /// The account that bonded (and gets the tokens back when it unbonds).
    pub operator: Address,
    /// The ed25519 key its node signs consensus messages with.
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    pub consensus_key: PublicKey,
    pub moniker: String,
    /// Stake bonded now (unbonding stake no longer counts).
    pub bonded: Coin,
    /// Slashed for a double sign: never in the active set again (it may still unbond).
    #[serde(default)]
    pub jailed: bool,
}

/// One member of the active validator set.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ValidatorPower {
    pub operator: Address,
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    pub consensus_key: PublicKey,
    /// Bonded stake in whole [`crate::params::POWER_UNIT`]s.
    pub power: u64,
}

/// The validators that decide blocks from `from_height` on, sorted by consensus key.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ValidatorSet {
    pub from_height: Height,
    pub members: Vec<ValidatorPower>,
}

impl ValidatorSet {
    pub fn total_power(&self) -> u64 {
        self.members.iter().map(|m| m.power).fold(0, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(balance: u128, rate: u128, settled_at: Height, paid_blocks: u64) -> EscrowAccount {
        EscrowAccount {
            id: DeploymentId { owner: Address([1; 20]), dseq: 1 },
            denom: Denom::new("uusdc").unwrap(),
            state: EscrowState::Open,
            balance: DecAmount(balance),
            deposited: DecAmount(balance),
            transferred: DecAmount::ZERO,
            refunded: DecAmount::ZERO,
            rate: DecAmount(rate),
            settled_at,
            paid_blocks,
            depletes_at: None,
        }
    }

    /// Settlement is lazy: what a payment earned up to a height counts the blocks owed since
    /// the last settlement that the balance affords, and nothing while paused or closed.
    #[test]
    fn a_payment_earns_up_to_a_height_what_the_balance_affords() {
        let acc = account(1_000, 10, 100, 5);
        assert_eq!(acc.paid_blocks_at(100), 5);
        assert_eq!(acc.paid_blocks_at(130), 35);
        assert_eq!(acc.paid_blocks_at(1_000), 105, "the balance pays 100 blocks at most");
        let mut p = Payment {
            lease: BidId {
                order: crate::OrderId { owner: Address([1; 20]), dseq: 1, gseq: 1, oseq: 1 },
                provider: Address([2; 20]),
            },
            rate: DecAmount(4),
            checkpoint: 5,
            unwithdrawn: DecAmount::ZERO,
            withdrawn: DecAmount::ZERO,
            state: PaymentState::Open,
        };
        assert_eq!(p.pending_at(&acc, 130), DecAmount(120));
        assert_eq!(p.pending(&acc), DecAmount::ZERO, "nothing settled yet");
        p.state = PaymentState::Paused { since: 120 };
        assert_eq!(p.pending_at(&acc, 130), DecAmount::ZERO);
        let closed = EscrowAccount { state: EscrowState::Closed { at: 110 }, ..acc };
        assert_eq!(closed.paid_blocks_at(130), 5);
    }
}
