//! The mempool: admission checks, per-account ordering by sequence, limits and eviction.
//!
//! A transaction is admitted when it decodes, its signature verifies, it names this chain,
//! pays at least the minimum fee in the native denomination, and its sequence is not below the
//! signer's committed sequence nor too far above it. Blocks take transactions in arrival order,
//! but only an account's next sequence, so a block never holds a gap.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use gridlease_ledger::{Params, StateView, query};
use gridlease_types::tx::MAX_TX_BYTES;
use gridlease_types::{Address, CheckedTx, Tx, TxHash, VerifiedTx};

/// Limits of the pool.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    pub max_txs: usize,
    pub max_bytes: usize,
    /// Most pending transactions of one account (also the largest sequence gap accepted).
    pub max_per_account: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits { max_txs: 50_000, max_bytes: 64 * 1024 * 1024, max_per_account: 256 }
    }
}

/// Why a transaction was not admitted. Each maps to one HTTP status in the RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("transaction is invalid: {0}")]
    Invalid(String),
    #[error("transaction is for chain `{got}`, this chain is `{want}`")]
    WrongChain { got: String, want: String },
    #[error("sequence {got} is already used: the account's next sequence is {next}")]
    SequenceTooLow { got: u64, next: u64 },
    #[error("sequence {got} is too far ahead of the account's next sequence {next}")]
    SequenceTooHigh { got: u64, next: u64 },
    #[error("fee {got} is below the minimum {min}")]
    FeeTooLow { got: String, min: String },
    #[error("another transaction with sequence {0} from this account is pending")]
    SequencePending(u64),
    #[error("transaction is already in the mempool")]
    Duplicate,
    #[error("mempool is full: retry later or pay a higher fee")]
    Full,
    #[error("state unavailable: {0}")]
    State(String),
}

struct Entry {
    bytes: Vec<u8>,
    signer: Address,
    sequence: u64,
    fee: u128,
    arrival: u64,
}

/// Pending transactions.
#[derive(Default)]
pub struct Mempool {
    limits: MempoolLimits,
    by_hash: HashMap<TxHash, Entry>,
    by_account: BTreeMap<Address, BTreeMap<u64, TxHash>>,
    bytes: usize,
    arrivals: u64,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mempool({} txs, {} bytes)", self.by_hash.len(), self.bytes)
    }
}

impl Mempool {
    pub fn new(limits: MempoolLimits) -> Self {
        Mempool { limits, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn contains(&self, hash: &TxHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Stateless checks: size, decoding, signature. Needs no lock, so callers run it before
    /// taking the mempool's.
    pub fn verify(bytes: &[u8]) -> Result<VerifiedTx, Rejection> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(Rejection::Invalid(format!(
                "{} bytes exceeds {MAX_TX_BYTES}",
                bytes.len()
            )));
        }
        match Tx::check_bytes(bytes) {
            CheckedTx::Valid(v) => Ok(v),
            CheckedTx::Invalid { error, .. } => Err(Rejection::Invalid(error.to_string())),
        }
    }

    /// Checks a transaction against the committed state and admits it.
    pub fn admit(
        &mut self,
        bytes: Vec<u8>,
        chain_id: &str,
        params: &Params,
        view: &impl StateView,
    ) -> Result<TxHash, Rejection> {
        let vtx = Self::verify(&bytes)?;
        self.admit_verified(bytes, &vtx, chain_id, params, view)
    }

    /// [`Mempool::admit`] for a transaction that [`Mempool::verify`] already checked.
    pub fn admit_verified(
        &mut self,
        bytes: Vec<u8>,
        vtx: &VerifiedTx,
        chain_id: &str,
        params: &Params,
        view: &impl StateView,
    ) -> Result<TxHash, Rejection> {
        let hash = vtx.hash();
        if self.by_hash.contains_key(&hash) {
            return Err(Rejection::Duplicate);
        }
        let body = vtx.body();
        if body.chain_id != chain_id {
            return Err(Rejection::WrongChain {
                got: body.chain_id.clone(),
                want: chain_id.into(),
            });
        }
        if body.fee.denom != params.native_denom || body.fee.amount < params.min_fee {
            return Err(Rejection::FeeTooLow {
                got: body.fee.to_string(),
                min: format!("{}{}", params.min_fee, params.native_denom),
            });
        }
        let next = query::account(view, &body.signer)
            .map_err(|e| Rejection::State(e.to_string()))?
            .map_or(0, |a| a.sequence);
        if body.sequence < next {
            return Err(Rejection::SequenceTooLow { got: body.sequence, next });
        }
        if body.sequence >= next + self.limits.max_per_account {
            return Err(Rejection::SequenceTooHigh { got: body.sequence, next });
        }
        if self.by_account.get(&body.signer).is_some_and(|m| m.contains_key(&body.sequence)) {
            return Err(Rejection::SequencePending(body.sequence));
        }
        if self.by_hash.len() >= self.limits.max_txs
            || self.bytes + bytes.len() > self.limits.max_bytes
        {
            self.evict_for(body.fee.amount)?;
        }
        self.arrivals += 1;
        self.bytes += bytes.len();
        self.by_account.entry(body.signer).or_default().insert(body.sequence, hash);
        self.by_hash.insert(
            hash,
            Entry {
                bytes,
                signer: body.signer,
                sequence: body.sequence,
                fee: body.fee.amount,
                arrival: self.arrivals,
            },
        );
        Ok(hash)
    }

    /// Makes room by dropping the newest transaction of the lowest fee, if it pays less.
    fn evict_for(&mut self, fee: u128) -> Result<(), Rejection> {
        let victim = self
            .by_hash
            .iter()
            .min_by_key(|(_, e)| (e.fee, std::cmp::Reverse(e.arrival)))
            .map(|(h, e)| (*h, e.fee));
        match victim {
            Some((h, victim_fee)) if victim_fee < fee => {
                self.remove(&h);
                Ok(())
            }
            _ => Err(Rejection::Full),
        }
    }

    fn remove(&mut self, hash: &TxHash) {
        if let Some(e) = self.by_hash.remove(hash) {
            self.bytes -= e.bytes.len();
            if let Some(m) = self.by_account.get_mut(&e.signer) {
                m.remove(&e.sequence);
                if m.is_empty() {
                    self.by_account.remove(&e.signer);
                }
            }
        }
    }

    /// Transactions for a block: each account's run of consecutive sequences from its next
    /// one, interleaved across accounts in arrival order, within the limits.
    pub fn reap(&self, view: &impl StateView, max_txs: usize, max_bytes: usize) -> Vec<Vec<u8>> {
        // Heap of (earliest arrival first) account heads.
        let mut heads = BinaryHeap::new();
        let mut cursors: BTreeMap<Address, u64> = BTreeMap::new();
        for (addr, seqs) in &self.by_account {
            let next = query::account(view, addr).ok().flatten().map_or(0, |a| a.sequence);
            if let Some(h) = seqs.get(&next) {
                heads.push(std::cmp::Reverse((self.by_hash[h].arrival, *addr)));
                cursors.insert(*addr, next);
            }
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(std::cmp::Reverse((_, addr))) = heads.pop() {
            if out.len() >= max_txs {
                break;
            }
            let seq = cursors[&addr];
            let Some(hash) = self.by_account[&addr].get(&seq) else { continue };
            let entry = &self.by_hash[hash];
            if bytes + entry.bytes.len() > max_bytes {
                continue;
            }
            bytes += entry.bytes.len();
            out.push(entry.bytes.clone());
            if let Some(h) = self.by_account[&addr].get(&(seq + 1)) {
                cursors.insert(addr, seq + 1);
                heads.push(std::cmp::Reverse((self.by_hash[h].arrival, addr)));
            }
        }
        out
    }

    /// After a commit: drops the committed transactions and any whose sequence is now used.
    pub fn update(&mut self, committed: &[TxHash], view: &impl StateView) {
        for h in committed {
            self.remove(h);
        }
        let stale: Vec<TxHash> = self
            .by_account
            .iter()
            .flat_map(|(addr, seqs)| {
                let next = query::account(view, addr).ok().flatten().map_or(0, |a| a.sequence);
                seqs.range(..next).map(|(_, h)| *h).collect::<Vec<_>>()
            })
            .collect();
        for h in stale {
            self.remove(&h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridlease_sim::{Actors, CHAIN_ID, sign, ugrid};
    use gridlease_types::{Coin, Msg};

    fn send(k: &gridlease_types::Keypair, seq: u64, fee: u128) -> Vec<u8> {
        let to = k.address();
        sign(k, seq, fee, vec![Msg::Send { to, amount: Coin::new(1, &ugrid()) }]).to_bytes()
    }

    #[test]
    fn admission_ordering_and_eviction() {
        let actors = Actors::new(2, 0, 0);
        let g = actors.genesis();
        let state = g.mem_state();
        let (a, b) = (&actors.tenants[0], &actors.tenants[1]);
        let limits = MempoolLimits { max_txs: 4, max_bytes: 1 << 20, max_per_account: 3 };
        let mut m = Mempool::new(limits);
        let p = &g.params;
        assert!(m.admit(send(a, 1, 100), CHAIN_ID, p, &state).is_ok());
        assert!(m.admit(send(b, 0, 100), CHAIN_ID, p, &state).is_ok());
        assert!(m.admit(send(a, 0, 100), CHAIN_ID, p, &state).is_ok());
        assert_eq!(m.admit(send(a, 0, 100), CHAIN_ID, p, &state), Err(Rejection::Duplicate));
        assert_eq!(
            m.admit(send(a, 0, 200), CHAIN_ID, p, &state),
            Err(Rejection::SequencePending(0))
        );
        assert!(matches!(
            m.admit(send(a, 3, 100), CHAIN_ID, p, &state),
            Err(Rejection::SequenceTooHigh { .. })
        ));
        assert!(matches!(
            m.admit(send(a, 2, 1), CHAIN_ID, p, &state),
            Err(Rejection::FeeTooLow { .. })
        ));
        assert!(matches!(m.admit(vec![1, 2, 3], CHAIN_ID, p, &state), Err(Rejection::Invalid(_))));
        assert!(matches!(
            m.admit(send(a, 2, 100), "other", p, &state),
            Err(Rejection::WrongChain { .. })
        ));
        // Reaping follows sequences: a's 0 then 1, never 1 before 0.
        let block = m.reap(&state, 10, 1 << 20);
        let seqs: Vec<(Address, u64)> = block
            .iter()
            .map(|t| {
                let tx = Tx::from_bytes(t).unwrap();
                (tx.body.signer, tx.body.sequence)
            })
            .collect();
        let a_seqs: Vec<u64> =
            seqs.iter().filter(|(s, _)| *s == a.address()).map(|(_, q)| *q).collect();
        assert_eq!(a_seqs, vec![0, 1]);
        assert_eq!(block.len(), 3);
        // Full: a higher fee evicts the cheapest, an equal fee is refused.
        assert!(m.admit(send(b, 1, 100), CHAIN_ID, p, &state).is_ok());
        assert_eq!(m.admit(send(b, 2, 100), CHAIN_ID, p, &state), Err(Rejection::Full));
        assert!(m.admit(send(b, 2, 500), CHAIN_ID, p, &state).is_ok());
        assert_eq!(m.len(), 4);
    }
}
