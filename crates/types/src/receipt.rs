//! Receipts and events: what a block tells the world about each transaction.

use crate::{Address, BidId, Coin, DecAmount, DecCoin, DeploymentId, Height, OrderId, TxHash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::state::{CloseReason, NoBidReason};

/// Outcome of a transaction. `Ok` is 0; every failure has its own stable number.
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
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = true)]
#[repr(u16)]
pub enum ReceiptCode {
    Ok = 0,
    WrongChainId = 1,
    BadSignature = 2,
    WrongSigner = 3,
    MalformedTx = 4,
    BadSequence = 5,
    InsufficientFee = 6,
    InsufficientFunds = 7,
    InvalidAmount = 8,
    UnknownDenom = 9,
    DenomMismatch = 10,
    Unauthorized = 11,
    NotFound = 12,
    AlreadyExists = 13,
    InvalidState = 14,
    PriceAboveMax = 15,
    ProviderNotRegistered = 16,
    AttributesNotMatched = 17,
    AttributesNotAudited = 18,
    OfferMismatch = 19,
    DepositTooLow = 20,
    InvalidRequest = 21,
    Overflow = 22,
    TooManyBids = 23,
    TooManyCertificates = 24,
    ProviderExcluded = 25,
}

impl ReceiptCode {
    /// Every code, for tables and docs.
    pub const ALL: [ReceiptCode; 26] = [
        ReceiptCode::Ok,
        ReceiptCode::WrongChainId,
        ReceiptCode::BadSignature,
        ReceiptCode::WrongSigner,
        ReceiptCode::MalformedTx,
        ReceiptCode::BadSequence,
        ReceiptCode::InsufficientFee,
        ReceiptCode::InsufficientFunds,
        ReceiptCode::InvalidAmount,
        ReceiptCode::UnknownDenom,
        ReceiptCode::DenomMismatch,
        ReceiptCode::Unauthorized,
        ReceiptCode::NotFound,
        ReceiptCode::AlreadyExists,
        ReceiptCode::InvalidState,
        ReceiptCode::PriceAboveMax,
        ReceiptCode::ProviderNotRegistered,
        ReceiptCode::AttributesNotMatched,
        ReceiptCode::AttributesNotAudited,
        ReceiptCode::OfferMismatch,
        ReceiptCode::DepositTooLow,
        ReceiptCode::InvalidRequest,
        ReceiptCode::Overflow,
        ReceiptCode::TooManyBids,
        ReceiptCode::TooManyCertificates,
        ReceiptCode::ProviderExcluded,
    ];

    /// Whether the fee was charged and the sequence advanced (the message step ran).
    pub fn charged_fee(self) -> bool {
        !matches!(
            self,
            ReceiptCode::WrongChainId
                | ReceiptCode::BadSignature
                | ReceiptCode::WrongSigner
                | ReceiptCode::MalformedTx
                | ReceiptCode::BadSequence
                | ReceiptCode::InsufficientFee
        )
    }
}

wire_names!(ReceiptCode {
    Ok => "ok",
    WrongChainId => "wrong_chain_id",
    BadSignature => "bad_signature",
    WrongSigner => "wrong_signer",
    MalformedTx => "malformed_tx",
    BadSequence => "bad_sequence",
    InsufficientFee => "insufficient_fee",
    InsufficientFunds => "insufficient_funds",
    InvalidAmount => "invalid_amount",
    UnknownDenom => "unknown_denom",
    DenomMismatch => "denom_mismatch",
    Unauthorized => "unauthorized",
    NotFound => "not_found",
    AlreadyExists => "already_exists",
    InvalidState => "invalid_state",
    PriceAboveMax => "price_above_max",
    ProviderNotRegistered => "provider_not_registered",
    AttributesNotMatched => "attributes_not_matched",
    AttributesNotAudited => "attributes_not_audited",
    OfferMismatch => "offer_mismatch",
    DepositTooLow => "deposit_too_low",
    InvalidRequest => "invalid_request",
    Overflow => "overflow",
    TooManyBids => "too_many_bids",
    TooManyCertificates => "too_many_certificates",
    ProviderExcluded => "provider_excluded",
});

impl Receipt {
    /// The transaction did what it asked.
    pub fn is_ok(&self) -> bool {
        self.code == ReceiptCode::Ok
    }
}

/// Something that happened, for subscribers and indexers.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Transfer {
        from: Address,
        to: Address,
        amount: Coin,
    },
    FeePaid {
        payer: Address,
        amount: Coin,
    },
    ProviderCreated {
        owner: Address,
    },
    ProviderUpdated {
        owner: Address,
    },
    AttributesSigned {
        provider: Address,
        auditor: Address,
    },
    AttributesDeleted {
        provider: Address,
        auditor: Address,
    },
    CertificateCreated {
        owner: Address,
        serial: [u8; 32],
    },
    CertificateRevoked {
        owner: Address,
        serial: [u8; 32],
    },
    DeploymentCreated {
        id: DeploymentId,
        deposit: Coin,
    },
    DeploymentUpdated {
        id: DeploymentId,
    },
    DeploymentDeposit {
        id: DeploymentId,
        amount: Coin,
    },
    DeploymentClosed {
        id: DeploymentId,
        reason: CloseReason,
    },
    OrderOpened {
        id: OrderId,
        max_price: DecCoin,
        closes_at: Height,
    },
    OrderStalled {
        id: OrderId,
        reason: NoBidReason,
    },
    OrderClosed {
        id: OrderId,
        reason: CloseReason,
    },
    BidCreated {
        id: BidId,
        price: DecCoin,
    },
    BidClosed {
        id: BidId,
        reason: CloseReason,
    },
    LeaseCreated {
        id: BidId,
        price: DecCoin,
    },
    LeaseClosed {
        id: BidId,
        reason: CloseReason,
    },
    EscrowOverdrawn {
        id: DeploymentId,
        grace_until: Height,
    },
    EscrowResumed {
        id: DeploymentId,
    },
    PaymentWithdrawn {
        lease: BidId,
        to_provider: Coin,
        to_pool: DecAmount,
    },
    EscrowRefunded {
        id: DeploymentId,
        amount: Coin,
    },
    /// A begin-block item failed: its own changes were dropped, it left its queue, and the
    /// rest of the block went on.
    BeginBlockItemFailed {
        item: BeginBlockItem,
        code: ReceiptCode,
        reason: String,
    },
    /// The tenant closed an order that could not find a winner and opened a fresh one.
    OrderReopened {
        closed: OrderId,
        opened: OrderId,
    },
    /// An account bonded stake; `bonded` is its total after the bond.
    Bonded {
        operator: Address,
        amount: Coin,
        bonded: Coin,
    },
    /// An account started unbonding; the tokens come back at `completes_at`.
    Unbonding {
        operator: Address,
        amount: Coin,
        completes_at: Height,
    },
    /// Unbonded tokens came back to their owner.
    UnbondingCompleted {
        operator: Address,
        amount: Coin,
    },
    /// A validator that double-signed at `height` lost `slashed` of its stake (to the
    /// community pool) and left the set for good.
    ValidatorSlashed {
        operator: Address,
        height: Height,
        slashed: Coin,
    },
    /// The active validator set changes from `from_height` on.
    ValidatorSetScheduled {
        from_height: Height,
        validators: u32,
        total_power: u64,
    },
    /// The tenant's monitors for a deployment changed.
    MonitorsSet {
        id: DeploymentId,
        monitors: Vec<Address>,
    },
    /// A health report that did not count, and why.
    HealthReportIgnored {
        lease: BidId,
        reason: String,
    },
    /// A majority of the tenant's monitors report the lease down: its payment stops from
    /// this block on; the chain closes it at `failover_at` if it is still down then.
    LeaseDown {
        id: BidId,
        failover_at: Height,
    },
    /// The lease is up again after `down_blocks` blocks down; its payment resumes.
    LeaseUp {
        id: BidId,
        down_blocks: u64,
    },
    /// Part of the provider's bid deposit went to the tenant for a lease closed as unhealthy.
    SlaPenalty {
        lease: BidId,
        to_tenant: Coin,
    },
    /// A lease's monitors held it down for more of an SLA period than the SLA allows:
    /// `to_tenant` of the provider's bid deposit went to the tenant.
    SlaBreached {
        lease: BidId,
        period: u64,
        down_blocks: u64,
        allowed_blocks: u64,
        to_tenant: Coin,
    },
    /// An auction's winner and why: the group's policy, the winning price, the winner's
    /// weighed uptime (`ProviderUptime::weighed_uptime_ppm`), how many open bids it beat, and
    /// the reason in words. The lease follows in the same block.
    AuctionWon {
        id: BidId,
        policy: crate::BidPolicy,
        price: DecCoin,
        uptime_ppm: u64,
        bids: u32,
        why: String,
    },
}

impl Event {
    /// The event's `type` on the wire (its serde tag), without serializing it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Transfer { .. } => "transfer",
            Event::FeePaid { .. } => "fee_paid",
            Event::ProviderCreated { .. } => "provider_created",
            Event::ProviderUpdated { .. } => "provider_updated",
            Event::AttributesSigned { .. } => "attributes_signed",
            Event::AttributesDeleted { .. } => "attributes_deleted",
            Event::CertificateCreated { .. } => "certificate_created",
            Event::CertificateRevoked { .. } => "certificate_revoked",
            Event::DeploymentCreated { .. } => "deployment_created",
            Event::DeploymentUpdated { .. } => "deployment_updated",
            Event::DeploymentDeposit { .. } => "deployment_deposit",
            Event::DeploymentClosed { .. } => "deployment_closed",
            Event::OrderOpened { .. } => "order_opened",
            Event::OrderStalled { .. } => "order_stalled",
            Event::OrderClosed { .. } => "order_closed",
            Event::BidCreated { .. } => "bid_created",
            Event::BidClosed { .. } => "bid_closed",
            Event::LeaseCreated { .. } => "lease_created",
            Event::LeaseClosed { .. } => "lease_closed",
            Event::EscrowOverdrawn { .. } => "escrow_overdrawn",
            Event::EscrowResumed { .. } => "escrow_resumed",
            Event::PaymentWithdrawn { .. } => "payment_withdrawn",
            Event::EscrowRefunded { .. } => "escrow_refunded",
            Event::BeginBlockItemFailed { .. } => "begin_block_item_failed",
            Event::OrderReopened { .. } => "order_reopened",
            Event::Bonded { .. } => "bonded",
            Event::Unbonding { .. } => "unbonding",
            Event::UnbondingCompleted { .. } => "unbonding_completed",
            Event::ValidatorSlashed { .. } => "validator_slashed",
            Event::ValidatorSetScheduled { .. } => "validator_set_scheduled",
            Event::MonitorsSet { .. } => "monitors_set",
            Event::HealthReportIgnored { .. } => "health_report_ignored",
            Event::LeaseDown { .. } => "lease_down",
            Event::LeaseUp { .. } => "lease_up",
            Event::SlaPenalty { .. } => "sla_penalty",
            Event::SlaBreached { .. } => "sla_breached",
            Event::AuctionWon { .. } => "auction_won",
        }
    }
}

/// One unit of begin-block work, as named in `BeginBlockItemFailed`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BeginBlockItem {
    /// An escrow account whose balance ran out.
    Depletion { id: DeploymentId },
    /// An overdrawn escrow account whose grace period ended.
    GraceExpiry { id: DeploymentId },
    /// An order whose bid window ended.
    Auction { id: OrderId },
    /// Unbonded stake whose unbonding period ended.
    Unbonding { operator: Address },
    /// A lease down for the whole failover grace.
    Failover { lease: BidId },
}

/// The result of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub tx_hash: TxHash,
    pub code: ReceiptCode,
    /// Empty on success; otherwise what went wrong, in words.
    pub log: String,
    pub events: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kind` is what serde writes as `type`, for variants of every shape of name (one word,
    /// two, an acronym-free run of three).
    #[test]
    fn an_event_s_kind_is_its_wire_type() {
        let a = Address([1; 20]);
        let d = DeploymentId { owner: a, dseq: 1 };
        let events = [
            Event::Transfer { from: a, to: a, amount: Coin::new(1, &"ugrid".parse().unwrap()) },
            Event::ProviderCreated { owner: a },
            Event::AttributesSigned { provider: a, auditor: a },
            Event::CertificateRevoked { owner: a, serial: [0; 32] },
            Event::DeploymentUpdated { id: d },
            Event::EscrowOverdrawn { id: d, grace_until: 9 },
        ];
        for e in &events {
            let wire = serde_json::to_value(e).unwrap();
            assert_eq!(wire["type"], e.kind(), "{e:?}");
        }
    }
}
