//! Chain parameters and the genesis document (JSON) that sets them and the initial balances.

use gridlease_types::amount::DEC_ONE;
use gridlease_types::{Address, Coin, Denom};
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
