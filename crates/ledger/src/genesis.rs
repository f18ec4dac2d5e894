//! Chain parameters and the genesis document (JSON) that sets them and the initial balances.

use borsh::{BorshDeserialize, BorshSerialize};
use gridlease_types::amount::DEC_ONE;
use gridlease_types::{Address, Coin, Denom};
use serde::{Deserialize, Serialize};

use crate::keyspace;
use crate::state::Account;
use crate::view::{Changes, MemState};

/// Parameters every node must agree on.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
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
    #[serde(with = "gridlease_types::amount::u128_string")]
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
    #[serde(with = "gridlease_types::amount::u128_string", default = "default_fee_per_msg")]
    pub fee_per_msg: u128,
    /// Fee per byte of a transaction's canonical encoding.
    #[serde(with = "gridlease_types::amount::u128_string", default = "default_fee_per_byte")]
    pub fee_per_byte: u128,
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

    /// Devnet defaults: `ugrid` native, `uusdc` stable, 5-block bid window, 100-block grace.
    pub fn devnet() -> Self {
        let ugrid = Denom::new("ugrid").unwrap_or_else(|_| unreachable!("valid literal"));
        let uusdc = Denom::new("uusdc").unwrap_or_else(|_| unreachable!("valid literal"));
        Params {
            native_denom: ugrid.clone(),
            denoms: vec![ugrid.clone(), uusdc.clone()],
            bid_window: 5,
            min_deposits: vec![Coin::new(500_000, &ugrid), Coin::new(500_000, &uusdc)],
            bid_deposit: Coin::new(500_000, &ugrid),
            take_rates_ppm: vec![(ugrid, 20_000), (uusdc, 20_000)],
            overdraw_grace: 100,
            min_fee: 1_000,
            max_groups: 20,
            max_bids_per_order: 100,
            bid_withdraw_penalty_ppm: default_bid_withdraw_penalty_ppm(),
            max_certs_per_owner: default_max_certs_per_owner(),
            auditors: Vec::new(),
            fee_per_msg: default_fee_per_msg(),
            fee_per_byte: default_fee_per_byte(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
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
        let mut auditors = self.auditors.clone();
        auditors.sort();
        auditors.dedup();
        if auditors.len() != self.auditors.len() {
            return Err("auditors lists an account twice".into());
        }
        Ok(())
    }
}

/// Initial balances of one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisBalance {
    pub address: Address,
    pub coins: Vec<Coin>,
}

/// The genesis document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    /// Unix time of genesis, in milliseconds.
    pub genesis_time_ms: u64,
    pub params: Params,
    pub balances: Vec<GenesisBalance>,
}

/// Why a genesis document is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis does not parse: {0}")]
    Json(String),
    #[error("invalid genesis params: {0}")]
    Params(String),
    #[error("invalid genesis balances: {0}")]
    Balances(String),
}

impl Genesis {
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        let g: Genesis =
            serde_json::from_str(text).map_err(|e| GenesisError::Json(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.chain_id.is_empty() || self.chain_id.len() > 64 {
            return Err(GenesisError::Params("chain_id must be 1 to 64 characters".into()));
        }
        self.params.validate().map_err(GenesisError::Params)?;
        let mut seen = std::collections::BTreeSet::new();
        let mut totals = std::collections::BTreeMap::<Denom, u128>::new();
        for b in &self.balances {
            if !seen.insert(b.address) {
                return Err(GenesisError::Balances(format!("{} is listed twice", b.address)));
            }
            for c in &b.coins {
                if !self.params.knows(&c.denom) {
                    return Err(GenesisError::Balances(format!("unknown denom {}", c.denom)));
                }
                let t = totals.entry(c.denom.clone()).or_default();
                *t = t
                    .checked_add(c.amount)
                    .filter(|t| t.checked_mul(DEC_ONE).is_some())
                    .ok_or_else(|| {
                        GenesisError::Balances(format!("supply of {} is too large", c.denom))
                    })?;
            }
        }
        Ok(())
    }

    /// The state writes that create this genesis.
    pub fn initial_changes(&self) -> Changes {
        let mut out = Changes::new();
        let put = |out: &mut Changes, k: Vec<u8>, v: Vec<u8>| {
            out.insert(k, Some(v));
        };
        put(&mut out, keyspace::params(), gridlease_types::encode(&self.params));
        let mut totals = std::collections::BTreeMap::<Denom, u128>::new();
        for b in &self.balances {
            put(
                &mut out,
                keyspace::account(&b.address),
                gridlease_types::encode(&Account::default()),
            );
            for c in &b.coins {
                if c.amount == 0 {
                    continue;
                }
                put(
                    &mut out,
                    keyspace::balance(&b.address, &c.denom),
                    gridlease_types::encode(&c.amount),
                );
                *totals.entry(c.denom.clone()).or_default() += c.amount;
            }
        }
        for d in &self.params.denoms {
            let total = totals.get(d).copied().unwrap_or(0);
            put(&mut out, keyspace::supply(d), gridlease_types::encode(&total));
        }
        out
    }

    /// Genesis applied to an empty in-memory state.
    pub fn mem_state(&self) -> MemState {
        let mut s = MemState::default();
        s.apply(&self.initial_changes());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Genesis {
        let ugrid = Denom::new("ugrid").unwrap();
        Genesis {
            chain_id: "gridlease-devnet".into(),
            genesis_time_ms: 1,
            params: Params::devnet(),
            balances: vec![GenesisBalance {
                address: Address([1; 20]),
                coins: vec![Coin::new(5, &ugrid)],
            }],
        }
    }

    #[test]
    fn json_round_trip_and_initial_state() {
        let g = sample();
        let back = Genesis::from_json(&g.to_json()).unwrap();
        assert_eq!(back, g);
        let state = g.mem_state();
        let ugrid = Denom::new("ugrid").unwrap();
        assert_eq!(crate::query::balance(&state, &Address([1; 20]), &ugrid).unwrap(), 5);
        assert_eq!(crate::query::supply(&state, &ugrid).unwrap(), 5);
        crate::invariants::check_state(&state).unwrap();
    }

    #[test]
    fn bad_genesis_is_refused_with_a_reason() {
        assert!(matches!(Genesis::from_json("{"), Err(GenesisError::Json(_))));
        let mut g = sample();
        g.balances.push(g.balances[0].clone());
        assert!(matches!(g.validate(), Err(GenesisError::Balances(m)) if m.contains("twice")));
        let mut g = sample();
        g.balances[0].coins[0].denom = Denom::new("uatom").unwrap();
        assert!(
            matches!(g.validate(), Err(GenesisError::Balances(m)) if m.contains("unknown denom"))
        );
        let mut g = sample();
        g.params.bid_window = 0;
        assert!(matches!(g.validate(), Err(GenesisError::Params(_))));
        let mut g = sample();
        g.balances[0].coins[0].amount = u128::MAX;
        assert!(matches!(g.validate(), Err(GenesisError::Balances(m)) if m.contains("too large")));
        let text = sample().to_json().replace("\"5\"", "\"-5\"");
        assert!(matches!(Genesis::from_json(&text), Err(GenesisError::Json(_))));
    }
}
