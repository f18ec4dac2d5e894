//! Parameters every node must agree on, as the genesis document sets them and the RPC reports
//! them.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::{Address, Coin, Denom};

/// Why chain parameters are inconsistent, in one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidParams(pub String);

/// Parameters every node must agree on.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Params {
    /// The native denomination: fees, bid deposits.
    pub native_denom: Denom,
    /// Every denomination the chain knows, the native one included.
    pub denoms: Vec<Denom>,
    /// Blocks from an order's opening to its auction's close.
    pub bid_window: u64,
    /// Minimum deployment deposit per escrow denomination; a denomination absent here cannot
    /// fund deployments.
    pub min_deposits: Vec<Coin>,
    /// Deposit a provider locks with each bid (native denomination).
    pub bid_deposit: Coin,
    /// Share of each provider payout that goes to the community pool, in parts per million, per
    /// denomination (absent: zero).
    pub take_rates_ppm: Vec<(Denom, u32)>,
    /// Blocks an overdrawn escrow keeps its leases before the deployment closes.
    pub overdraw_grace: u64,
    /// Minimum fee per transaction, in the native denomination.
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    #[serde(with = "crate::amount::u128_string")]
    pub min_fee: u128,
    /// Most groups in one deployment.
    pub max_groups: u32,
    /// Most bids open at once on one order (withdrawn and closed bids do not count).
    pub max_bids_per_order: u32,
    /// Share of a bid's deposit kept (to the community pool) when the provider withdraws the
    /// bid before its auction closes, in parts per million.
    #[serde(default = "default_bid_withdraw_penalty_ppm")]
    pub bid_withdraw_penalty_ppm: u32,
    /// Most certificates one account keeps registered; revoked ones make room for new ones.
    #[serde(default = "default_max_certs_per_owner")]
    pub max_certs_per_owner: u32,
    /// Accounts allowed to sign provider attributes (audits). Nobody else can.
    #[serde(default)]
    pub auditors: Vec<Address>,
    /// Fee per message of a transaction (see [`Params::required_fee`]).
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    #[serde(with = "crate::amount::u128_string", default = "default_fee_per_msg")]
    pub fee_per_msg: u128,
    /// Fee per byte of a transaction's canonical encoding.
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    #[serde(with = "crate::amount::u128_string", default = "default_fee_per_byte")]
    pub fee_per_byte: u128,
    /// Most validators in the active set: the top ones by bonded stake.
    #[serde(default = "default_max_validators")]
    pub max_validators: u32,
    /// Blocks between an unbond and the tokens' return to the operator.
    #[serde(default = "default_unbonding_blocks")]
    pub unbonding_blocks: u64,
    /// Least native stake a validator keeps bonded to be in the active set (at least
    /// [`POWER_UNIT`]).
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    #[serde(with = "crate::amount::u128_string", default = "default_min_validator_bond")]
    pub min_validator_bond: u128,
    /// Share of its bonded stake a validator loses for signing two different votes at one
    /// height and round, in parts per million.
    #[serde(default = "default_slash_double_sign_ppm")]
    pub slash_double_sign_ppm: u32,
    /// Blocks a lease may stay down (by its tenant's monitors) before the chain closes it and
    /// puts its group back to auction without that provider.
    #[serde(default = "default_failover_grace_blocks")]
    pub failover_grace_blocks: u64,
    /// Blocks a provider whose lease the chain failed over may not bid on that group again;
    /// after that it may (a provider that came back is not shut out for good, which would
    /// starve a group on a small market).
    #[serde(default = "default_failover_exclusion_blocks")]
    pub failover_exclusion_blocks: u64,
    /// Share of the provider's bid deposit that goes to the tenant when the chain closes a
    /// lease as unhealthy, in parts per million.
    #[serde(default = "default_sla_penalty_ppm")]
    pub sla_penalty_ppm: u32,
}

/// Native base units of bonded stake per unit of voting power.
pub const POWER_UNIT: u128 = 1_000_000;

/// Blocks from the one that changed the stakes to the first one the new validator set signs:
/// the height after next, so every node has committed the change before it applies.
pub const VALIDATOR_SET_DELAY: u64 = 2;

fn default_failover_grace_blocks() -> u64 {
    100
}
fn default_failover_exclusion_blocks() -> u64 {
    86_400
}

fn default_sla_penalty_ppm() -> u32 {
    100_000
}

fn default_max_validators() -> u32 {
    100
}

fn default_unbonding_blocks() -> u64 {
    1_000
}

fn default_slash_double_sign_ppm() -> u32 {
    50_000
}

fn default_min_validator_bond() -> u128 {
    POWER_UNIT
}

fn default_fee_per_msg() -> u128 {
    100
}

fn default_fee_per_byte() -> u128 {
    1
}

fn default_bid_withdraw_penalty_ppm() -> u32 {
    100_000
}

fn default_max_certs_per_owner() -> u32 {
    16
}

impl Params {
    pub fn knows(&self, denom: &Denom) -> bool {
        self.denoms.contains(denom)
    }
    pub fn min_deposit(&self, denom: &Denom) -> Option<u128> {
        self.min_deposits.iter().find(|c| &c.denom == denom).map(|c| c.amount)
    }
    /// The fee a transaction of `msgs` messages and `bytes` bytes must pay: the minimum fee,
    /// or its size priced per message and per byte when that is more. Big transactions pay
    /// for the work and the space they take.
    pub fn required_fee(&self, msgs: usize, bytes: usize) -> u128 {
        let by_size = self
            .fee_per_msg
            .saturating_mul(msgs as u128)
            .saturating_add(self.fee_per_byte.saturating_mul(bytes as u128));
        self.min_fee.max(by_size)
    }

    pub fn take_rate_ppm(&self, denom: &Denom) -> u32 {
        self.take_rates_ppm.iter().find(|(d, _)| d == denom).map_or(0, |(_, r)| *r)
    }

    /// Devnet defaults: `ugrid` native, `uusdc` stable, Akash's `uact` and `uakt`, 5-block bid
    /// window, 100-block grace, 30-block failover grace, 600-block exclusion of a failed-over
    /// provider.
    pub fn devnet() -> Self {
        let ugrid = Denom::new("ugrid").unwrap_or_else(|_| unreachable!("valid literal"));
        let uusdc = Denom::new("uusdc").unwrap_or_else(|_| unreachable!("valid literal"));
        let uact = Denom::new("uact").unwrap_or_else(|_| unreachable!("valid literal"));
        let uakt = Denom::new("uakt").unwrap_or_else(|_| unreachable!("valid literal"));
        Params {
            native_denom: ugrid.clone(),
            // Akash's denominations too, so that its templates deploy unchanged: uact, its
            // compute credit pegged to the dollar like uusdc, and uakt, its token.
            denoms: vec![ugrid.clone(), uusdc.clone(), uact.clone(), uakt.clone()],
            bid_window: 5,
            min_deposits: vec![
                Coin::new(500_000, &ugrid),
                Coin::new(500_000, &uusdc),
                Coin::new(500_000, &uact),
                Coin::new(500_000, &uakt),
            ],
            bid_deposit: Coin::new(500_000, &ugrid),
            take_rates_ppm: vec![(ugrid, 20_000), (uusdc, 20_000), (uact, 20_000), (uakt, 20_000)],
            overdraw_grace: 100,
            min_fee: 1_000,
            max_groups: 20,
            max_bids_per_order: 100,
            bid_withdraw_penalty_ppm: default_bid_withdraw_penalty_ppm(),
            max_certs_per_owner: default_max_certs_per_owner(),
            auditors: Vec::new(),
            fee_per_msg: default_fee_per_msg(),
            fee_per_byte: default_fee_per_byte(),
            max_validators: default_max_validators(),
            unbonding_blocks: 100,
            min_validator_bond: default_min_validator_bond(),
            slash_double_sign_ppm: default_slash_double_sign_ppm(),
            failover_grace_blocks: 30,
            failover_exclusion_blocks: 600,
            sla_penalty_ppm: default_sla_penalty_ppm(),
        }
    }

    /// Whether the parameters are consistent, or the first thing that is not.
    pub fn validate(&self) -> Result<(), InvalidParams> {
        self.check().map_err(InvalidParams)
    }

    fn check(&self) -> Result<(), String> {
        if !self.denoms.contains(&self.native_denom) {
            return Err(format!("native denom {} is not in denoms", self.native_denom));
        }
        let mut sorted = self.denoms.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.denoms.len() {
            return Err("denoms lists a denomination twice".into());
        }
        if self.bid_window == 0 {
            return Err("bid_window must be at least 1 block".into());
        }
        for c in &self.min_deposits {
            if !self.knows(&c.denom) {
                return Err(format!("min_deposits names unknown denom {}", c.denom));
            }
        }
        if self.bid_deposit.denom != self.native_denom {
            return Err("bid_deposit must be in the native denomination".into());
        }
        for (d, r) in &self.take_rates_ppm {
            if !self.knows(d) || *r > 1_000_000 {
                return Err(format!(
                    "take rate for {d} must name a known denom and be at most 1000000 ppm"
                ));
            }
        }
        if self.max_groups == 0 || self.max_bids_per_order == 0 || self.max_certs_per_owner == 0 {
            return Err(
                "max_groups, max_bids_per_order and max_certs_per_owner must be at least 1".into(),
            );
        }
        if self.bid_withdraw_penalty_ppm > 1_000_000 {
            return Err("bid_withdraw_penalty_ppm must be at most 1000000".into());
        }
        if self.max_validators == 0 || self.unbonding_blocks == 0 {
            return Err("max_validators and unbonding_blocks must be at least 1".into());
        }
        if self.slash_double_sign_ppm > 1_000_000 || self.sla_penalty_ppm > 1_000_000 {
            return Err("slash_double_sign_ppm and sla_penalty_ppm must be at most 1000000".into());
        }
        if self.failover_grace_blocks == 0 {
            return Err("failover_grace_blocks must be at least 1".into());
        }
        if self.failover_exclusion_blocks == 0 {
            return Err("failover_exclusion_blocks must be at least 1".into());
        }
        if self.min_validator_bond < POWER_UNIT {
            return Err(format!("min_validator_bond must be at least {POWER_UNIT}"));
        }
        let mut auditors = self.auditors.clone();
        auditors.sort();
        auditors.dedup();
        if auditors.len() != self.auditors.len() {
            return Err("auditors lists an account twice".into());
        }
        Ok(())
    }
}
