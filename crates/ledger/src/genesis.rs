//! Chain parameters and the genesis document (JSON) that sets them and the initial balances.

use gridlease_types::amount::DEC_ONE;
use gridlease_types::state::{Validator, ValidatorSet};
use gridlease_types::{Address, Coin, Denom, PublicKey};
use serde::{Deserialize, Serialize};

pub use gridlease_types::params::Params;

use crate::keyspace;
use crate::state::Account;
use crate::view::{Changes, MemState};

/// Initial balances of one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisBalance {
    pub address: Address,
    pub coins: Vec<Coin>,
}

/// A validator at genesis: its operator account, consensus key and bonded stake (native
/// tokens that exist in addition to the balances, held by the bonded pool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisValidator {
    pub operator: Address,
    pub consensus_key: PublicKey,
    #[serde(default)]
    pub moniker: String,
    pub bonded: Coin,
}

/// The genesis document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    /// Unix time of genesis, in milliseconds.
    pub genesis_time_ms: u64,
    pub params: Params,
    pub balances: Vec<GenesisBalance>,
    /// The validators of the first block (a node cannot run a chain without one).
    #[serde(default)]
    pub validators: Vec<GenesisValidator>,
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
    #[error("invalid genesis validators: {0}")]
    Validators(String),
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
        self.params.validate().map_err(|e| GenesisError::Params(e.0))?;
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
        self.validate_validators(&mut totals)
    }

    fn validate_validators(
        &self,
        totals: &mut std::collections::BTreeMap<Denom, u128>,
    ) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Validators(m));
        let mut operators = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        for v in &self.validators {
            if !operators.insert(v.operator) {
                return bad(format!("{} is listed twice", v.operator));
            }
            if !keys.insert(v.consensus_key) {
                return bad(format!("{}'s consensus key is used twice", v.operator));
            }
            if !v.consensus_key.is_valid() {
                return bad(format!("{}'s consensus key is not a usable ed25519 key", v.operator));
            }
            if v.moniker.len() > crate::MAX_MONIKER || v.moniker.chars().any(char::is_control) {
                return bad(format!(
                    "{}'s moniker is too long or has control characters",
                    v.operator
                ));
            }
            if v.bonded.denom != self.params.native_denom {
                return bad(format!(
                    "{} bonds {}, not the native denomination",
                    v.operator, v.bonded
                ));
            }
            if v.bonded.amount < self.params.min_validator_bond {
                return bad(format!(
                    "{} bonds {}, below min_validator_bond {}",
                    v.operator, v.bonded, self.params.min_validator_bond
                ));
            }
            let t = totals.entry(v.bonded.denom.clone()).or_default();
            *t = t
                .checked_add(v.bonded.amount)
                .filter(|t| t.checked_mul(DEC_ONE).is_some())
                .ok_or_else(|| GenesisError::Validators("bonded supply is too large".into()))?;
        }
        Ok(())
    }

    /// The validators of the first block, as they would be chosen from the stakes.
    fn initial_validators(&self) -> Vec<Validator> {
        let mut by_stake: Vec<Validator> = self
            .validators
            .iter()
            .map(|g| Validator {
                operator: g.operator,
                consensus_key: g.consensus_key,
                moniker: g.moniker.clone(),
                bonded: g.bonded.clone(),
                jailed: false,
            })
            .collect();
        by_stake.sort_by(|a, b| {
            b.bonded.amount.cmp(&a.bonded.amount).then(a.operator.cmp(&b.operator))
        });
        by_stake
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
        let validators = self.initial_validators();
        let mut bonded = 0u128;
        for v in &validators {
            put(&mut out, keyspace::validator(&v.operator), gridlease_types::encode(v));
            put(&mut out, keyspace::validator_by_stake(v.bonded.amount, &v.operator), Vec::new());
            put(&mut out, keyspace::consensus_key(&v.consensus_key.0), v.operator.0.to_vec());
            bonded += v.bonded.amount;
        }
        if !validators.is_empty() {
            let native = &self.params.native_denom;
            let pool = crate::bonded_pool();
            let held = out
                .get(&keyspace::balance(&pool, native))
                .and_then(|v| v.as_ref())
                .and_then(|v| gridlease_types::decode::<u128>(v).ok())
                .unwrap_or(0);
            put(
                &mut out,
                keyspace::balance(&pool, native),
                gridlease_types::encode(&(held + bonded)),
            );
            *totals.entry(native.clone()).or_default() += bonded;
            let members = crate::choose_active(&self.params, &validators);
            let set = ValidatorSet { from_height: 1, members };
            put(&mut out, keyspace::validator_set_current(), gridlease_types::encode(&set));
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
            validators: Vec::new(),
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
