//! The node RPC's wire types: what every endpoint takes and answers, in one place that the node
//! (which serializes them) and the client (which deserializes them) both compile against, so a
//! renamed field, state or code is a compile error on both sides rather than a `null` at run
//! time.
//!
//! The chain's own objects, states, events, receipt codes and params (defined in `types`,
//! which the ledger executes on) go on the wire as they are (re-exported here); the types defined here are the answers that wrap them, and the few
//! views that present bytes as text (hashes in hex, PEM as a string).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

pub use gridlease_types::params::Params;
pub use gridlease_types::receipt::{BeginBlockItem, Event, Receipt, ReceiptCode};
pub use gridlease_types::state::{
    AuditRecord, Bid, BidState, BidTime, CertState, CloseReason, DeploymentState, EscrowAccount,
    EscrowState, Group, GroupState, Lease, LeaseHealth, LeaseState, NoBidReason, Order, OrderState,
    Payment, PaymentState, Provider, ProviderUptime,
};
use gridlease_types::{Address, Coin, DeploymentId, PublicKey, Tx};
use serde::{Deserialize, Serialize};

/// Why the node refused a request, as a stable code (the `error` of [`ErrorBody`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    /// The node's store cannot be read right now.
    Unavailable,
    TooLarge,
    /// `MAX_RPC_IN_FLIGHT` requests are being served.
    Busy,
    TooManySubscribers,
    InvalidTx,
    WrongChainId,
    SequenceTooLow,
    SequenceTooHigh,
    SequencePending,
    FeeTooLow,
    CannotPayFee,
    PeerLimit,
    PeerGapLimit,
    Duplicate,
    MempoolFull,
    /// A code this client does not know (a newer node), or an answer that was not JSON.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it goes on the wire (`sequence_too_low`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Busy => "busy",
            ErrorCode::TooManySubscribers => "too_many_subscribers",
            ErrorCode::InvalidTx => "invalid_tx",
            ErrorCode::WrongChainId => "wrong_chain_id",
            ErrorCode::SequenceTooLow => "sequence_too_low",
            ErrorCode::SequenceTooHigh => "sequence_too_high",
            ErrorCode::SequencePending => "sequence_pending",
            ErrorCode::FeeTooLow => "fee_too_low",
            ErrorCode::CannotPayFee => "cannot_pay_fee",
            ErrorCode::PeerLimit => "peer_limit",
            ErrorCode::PeerGapLimit => "peer_gap_limit",
            ErrorCode::Duplicate => "duplicate",
            ErrorCode::MempoolFull => "mempool_full",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// A refusal about the signer's sequence: resubmitting with a fresh one may succeed.
    pub fn is_sequence(self) -> bool {
        matches!(
            self,
            ErrorCode::SequenceTooLow | ErrorCode::SequenceTooHigh | ErrorCode::SequencePending
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error answer: a stable code and one sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok` when the node answers.
    pub status: String,
    pub latest_height: u64,
}

/// `GET /status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Status {
    pub chain_id: String,
    pub latest_height: u64,
    /// RFC 3339, UTC, milliseconds.
    pub latest_block_time: String,
    pub latest_block_time_ms: u64,
    /// Hex.
    pub state_root: String,
    pub mempool_size: usize,
}

/// `GET /pool`: the community pool's balance per denomination (amounts as decimal strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Pool {
    pub community_pool: BTreeMap<String, String>,
}

/// `GET /accounts/{address}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct AccountInfo {
    pub address: Address,
    /// The next transaction's sequence (0 for an account that never sent one).
    pub sequence: u64,
    #[serde(default)]
    pub public_key: Option<PublicKey>,
    pub balances: Vec<Coin>,
}

/// Query of every list endpoint: filters and paging.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "schema", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Address>,
    /// One deployment of `owner` (deployments, orders, bids and leases; needs `owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dseq: Option<u64>,
    /// The state's name as the objects report it (`open`, `active`, `closed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Most items in the answer (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", param(minimum = 1, maximum = 1000))]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", param(pattern = "^([0-9A-Fa-f]{2})*$"))]
    pub cursor: Option<String>,
}

/// One page of a list endpoint: its items, and the cursor of the next page when there may
/// be more.
pub trait Paged {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

macro_rules! page {
    ($(#[$doc:meta])* $name:ident, $field:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
        pub struct $name {
            pub $field: Vec<$item>,
            /// Where the next page starts; `None` at the end of the list.
            pub next_cursor: Option<String>,
        }

        impl Paged for $name {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, Option<String>) {
                (self.$field, self.next_cursor)
            }
        }
    };
}

page!(
    /// `GET /providers`.
    ProvidersPage, providers, Provider
);
page!(
    /// `GET /deployments`.
    DeploymentsPage, deployments, DeploymentView
);
page!(
    /// `GET /orders`.
    OrdersPage, orders, Order
);
page!(
    /// `GET /bids`.
    BidsPage, bids, Bid
);
page!(
    /// `GET /leases`.
    LeasesPage, leases, Lease
);

/// `GET /providers/{address}`: the provider and the attributes each auditor signed for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ProviderRecord {
    pub provider: Provider,
    pub audits: Vec<AuditRecord>,
    /// Its record under the tenants' monitors (zero before any lease ends or goes down).
    #[serde(default)]
    pub uptime: ProviderUptime,
    /// Share of its ended leases' blocks that were up, parts per million.
    #[serde(default = "full_uptime")]
    pub uptime_ppm: u64,
}

fn full_uptime() -> u64 {
    1_000_000
}

/// A certificate, with its serial in hex and its PEM as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CertificateView {
    pub owner: Address,
    /// Hex SHA-256 of the PEM.
    pub serial: String,
    pub state: CertState,
    pub cert_pem: String,
    pub pubkey_pem: String,
    pub created_at: u64,
}

impl CertificateView {
    pub fn is_valid(&self) -> bool {
        self.state == CertState::Valid
    }
}

/// `GET /certificates/{address}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Certificates {
    pub certificates: Vec<CertificateView>,
}

/// `GET /certificates/{address}/{serial}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct CertificateAnswer {
    pub certificate: CertificateView,
}

/// A deployment, with its manifest hash in hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DeploymentView {
    pub id: DeploymentId,
    pub state: DeploymentState,
    /// Hex SHA-256 of the manifest.
    pub manifest_hash: String,
    pub groups: u32,
    pub created_at: u64,
}

/// `GET /deployments/{owner}/{dseq}`: the deployment, its groups and its escrow account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct DeploymentRecord {
    pub deployment: DeploymentView,
    pub groups: Vec<Group>,
    pub escrow: Option<EscrowAccount>,
    /// The accounts whose health reports decide whether its leases are up.
    #[serde(default)]
    pub monitors: Vec<Address>,
}

/// `GET /leases/{owner}/{dseq}/{gseq}/{oseq}/{provider}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LeaseAnswer {
    pub lease: Lease,
    /// What the tenant's monitors say of it (`null` before any report).
    #[serde(default)]
    pub health: Option<LeaseHealth>,
    /// Its payment stream out of the deployment's escrow (`null` when the chain has none).
    #[serde(default)]
    pub payment: Option<Payment>,
    /// What the lease has earned up to the latest block, before the take rate: withdrawn,
    /// earned and not yet withdrawn, and the share settlement would move to it now.
    #[serde(default)]
    pub earned: Option<gridlease_types::DecAmount>,
}

/// `GET /bids/{owner}/{dseq}/{gseq}/{oseq}/{provider}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BidAnswer {
    pub bid: Bid,
}

/// `GET /blocks/latest`, `GET /blocks/{height}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BlockView {
    pub height: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub time_ms: u64,
    /// Consensus round the block was decided in.
    pub round: u32,
    /// Hex state root before the block.
    pub parent_root: String,
    /// Hex state root after the block.
    pub state_root: String,
    /// Hex hashes of the block's transactions, in order.
    pub txs: Vec<String>,
    /// One per transaction, in order.
    pub receipts: Vec<Receipt>,
    /// What begin-block did (auctions, settlements, grace expiries).
    pub begin_events: Vec<Event>,
    /// Addresses of the consensus keys whose precommits this node holds for the block (its
    /// commit certificate).
    #[serde(default)]
    pub signers: Vec<Address>,
}

/// One member of a validator set, with what the chain knows of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ValidatorView {
    pub operator: Address,
    /// Hex ed25519 consensus key.
    pub consensus_key: String,
    /// The address of the consensus key (what commit certificates name).
    pub consensus_address: Address,
    pub moniker: String,
    pub bonded: Coin,
    pub power: u64,
}

/// A double sign this node's consensus saw: two different votes one validator signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EvidenceView {
    /// Hex ed25519 consensus key of the validator that signed both.
    pub offender: String,
    pub height: u64,
    /// Hex of both signed votes: the `evidence` of a `submit_evidence` message.
    pub evidence: String,
}

/// `GET /evidence`: the double signs this node saw lately (at most 64, oldest first). The
/// node reports each on chain itself, signed by its validator key; anyone may submit one too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EvidenceAnswer {
    pub seen: Vec<EvidenceView>,
}

/// `GET /validators`: the set that decides the next block, and a scheduled change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ValidatorsAnswer {
    /// The last committed height; `active` decides `height + 1`.
    pub height: u64,
    pub active: Vec<ValidatorView>,
    pub total_power: u64,
    /// A set that takes over at `scheduled_from`, when stakes changed.
    pub scheduled: Option<Vec<ValidatorView>>,
    pub scheduled_from: Option<u64>,
}

/// Where a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// In the mempool (`POST /txs` without waiting).
    Admitted,
    /// Admitted, not committed yet (or not within the wait).
    Pending,
    /// In a block, with its receipt.
    Committed,
}

/// `POST /txs` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The transaction's canonical bytes, hex.
    pub tx: String,
}

/// `POST /txs` query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    /// Answer once the mempool admitted it.
    #[default]
    None,
    /// Answer once it is in a block (or after 30 s, `pending`).
    Commit,
}

/// `POST /txs` query string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "schema", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    #[serde(default)]
    pub wait: Wait,
}

/// `POST /txs` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SubmitResult {
    /// Hex hash of the transaction.
    pub hash: String,
    pub status: TxStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

impl SubmitResult {
    /// Committed with a successful receipt.
    pub fn is_committed_ok(&self) -> bool {
        self.status == TxStatus::Committed
            && self.receipt.as_ref().is_some_and(|r| r.code == ReceiptCode::Ok)
    }
}

/// `GET /txs/{hash}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct TxView {
    pub hash: String,
    pub status: TxStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Position in its block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<Tx>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// `GET /events` query.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "schema", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Comma-separated event types (`order_opened,lease_created`); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<String>,
    /// Only events that mention this address (owner, provider, sender, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// One event of a committed block, as `/events` streams it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ChainEvent {
    pub height: u64,
    /// The transaction that caused it; `None` for begin-block work.
    #[serde(default)]
    pub tx_hash: Option<String>,
    pub event: Event,
}

/// SSE event `block`: one committed block's events (those that pass the filters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BlockEvents {
    pub height: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub events: Vec<ChainEvent>,
}

/// Query of `GET /blocks`: the newest blocks first, below `before`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "schema", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct BlocksQuery {
    /// Blocks below this height (default: from the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// Most blocks in the answer (default 20, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", param(minimum = 1, maximum = 100))]
    pub limit: Option<usize>,
}

/// One block in a list: what it holds, counted, without its transactions and events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BlockSummary {
    pub height: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub time_ms: u64,
    pub txs: u32,
    /// Transactions whose receipt is an error.
    pub failed_txs: u32,
    pub events: u32,
    /// Event type → how many of them.
    pub event_kinds: std::collections::BTreeMap<String, u32>,
}

/// `GET /blocks`: the newest blocks first, and the `before` of the next page (none at
/// block 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BlocksPage {
    pub blocks: Vec<BlockSummary>,
    pub next_before: Option<u64>,
}

/// SSE event `lagged`: the subscriber fell behind and missed blocks; the stream ends after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Lagged {
    pub lagged: bool,
    pub missed_blocks: u64,
}

/// The `state` name of a lifecycle state (`open`, `active`, `closed`, ...), as list filters
/// take it.
pub trait StateName {
    fn state_name(&self) -> &'static str;
}

macro_rules! state_names {
    ($($ty:ident { $($variant:ident $( { $($skip:tt)* } )? => $name:literal),* $(,)? })*) => {$(
        impl StateName for $ty {
            fn state_name(&self) -> &'static str {
                match self {
                    $($ty::$variant $( { $($skip)* } )? => $name,)*
                }
            }
        }
    )*};
}

state_names! {
    CertState { Valid => "valid", Revoked { .. } => "revoked" }
    DeploymentState { Active => "active", Closed { .. } => "closed" }
    GroupState { Open => "open", Leased { .. } => "leased", Closed { .. } => "closed" }
    OrderState { Open { .. } => "open", Matched { .. } => "matched", Closed { .. } => "closed" }
    BidState { Open => "open", Won => "won", Closed { .. } => "closed" }
    LeaseState { Active => "active", Closed { .. } => "closed" }
    EscrowState { Open => "open", Overdrawn { .. } => "overdrawn", Closed { .. } => "closed" }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names `StateName` gives are the ones serde writes, so a filter by name matches.
    #[test]
    fn state_names_match_the_wire() {
        let wire = |v: serde_json::Value| v["state"].as_str().unwrap().to_owned();
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                serde_json::to_value(CertState::Revoked { at: 3 }).unwrap(),
                CertState::Revoked { at: 3 }.state_name(),
            ),
            (serde_json::to_value(LeaseState::Active).unwrap(), LeaseState::Active.state_name()),
            (
                serde_json::to_value(OrderState::Open { closes_at: None, stalled: None }).unwrap(),
                OrderState::Open { closes_at: None, stalled: None }.state_name(),
            ),
            (serde_json::to_value(BidState::Won).unwrap(), BidState::Won.state_name()),
            (
                serde_json::to_value(EscrowState::Overdrawn { since: 1, grace_until: 2 }).unwrap(),
                EscrowState::Overdrawn { since: 1, grace_until: 2 }.state_name(),
            ),
        ];
        for (value, name) in cases {
            assert_eq!(wire(value), name);
        }
    }

    #[test]
    fn code_and_reason_names_match_the_wire() {
        for code in ReceiptCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.name(), "{code:?}");
        }
        for reason in [
            CloseReason::TenantClosed,
            CloseReason::ProviderClosed,
            CloseReason::DeploymentClosed,
            CloseReason::InsufficientFunds,
            CloseReason::AuctionLost,
            CloseReason::BidWithdrawn,
            CloseReason::LeaseEnded,
            CloseReason::Reopened,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.name(), "{reason:?}");
        }
        for reason in [
            NoBidReason::NoBids,
            NoBidReason::AllBidsWithdrawn,
            NoBidReason::EscrowOverdrawn,
            NoBidReason::AuctionFailed,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.name(), "{reason:?}");
        }
    }

    #[test]
    fn unknown_error_codes_decode_as_unknown() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"something_new","message":"m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Unknown);
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"sequence_too_low","message":"m"}"#).unwrap();
        assert!(body.error.is_sequence());
        assert_eq!(body.error.to_string(), "sequence_too_low");
    }
}
