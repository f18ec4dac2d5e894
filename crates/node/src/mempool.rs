//! The mempool: admission checks, per-account ordering by sequence, limits and eviction.
//!
//! A transaction is admitted when it decodes, its signature verifies, it names this chain,
//! pays at least the minimum fee in the native denomination, its signer's balance covers its
//! fee plus the fees of the signer's other pending transactions, and its sequence is not below
//! the signer's committed sequence nor too far above it. Blocks take transactions in arrival
//! order, but only an account's next sequence, so a block never holds a gap.
//!
//! Nothing here is free for an attacker to hold: a transaction behind a sequence gap is
//! *gapped*, expires `gap_ttl_blocks` after it became gapped, counts against its peer's small
//! gapped quota, and is evicted before any executable (*ready*) transaction whatever fee it
//! declares. Every operation touches only the accounts it concerns (each holds at most
//! `max_per_account` transactions) and ordered indexes, never the whole pool.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::IpAddr;

use gridlease_ledger::{Params, StateView, query};
use gridlease_types::tx::MAX_TX_BYTES;
use gridlease_types::{Address, CheckedTx, Tx, TxHash, VerifiedTx};

/// Limits of the pool (`mempool` in the node's `config.json`; absent fields keep defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolLimits {
    pub max_txs: usize,
    pub max_bytes: usize,
    /// Most pending transactions of one account (also the largest sequence gap accepted).
    pub max_per_account: u64,
    /// Most pending transactions submitted from one IP address.
    pub max_per_peer: usize,
    /// Most gapped transactions submitted from one IP address.
    pub max_gapped_per_peer: usize,
    /// Blocks a gapped transaction waits for its gap to fill before it is dropped.
    pub gap_ttl_blocks: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_txs: 50_000,
            max_bytes: 64 * 1024 * 1024,
            max_per_account: 256,
            max_per_peer: 25_000,
            max_gapped_per_peer: 1_000,
            gap_ttl_blocks: 10,
        }
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
    #[error(
        "the signer's balance {balance} cannot pay this fee and its pending fees ({needed} in all): fund the account first"
    )]
    CannotPayFee { balance: String, needed: String },
    #[error("another transaction with sequence {0} from this account is pending")]
    SequencePending(u64),
    #[error("transaction is already in the mempool")]
    Duplicate,
    #[error("mempool is full: retry later or pay a higher fee")]
    Full,
    #[error("this peer has {0} pending transactions, its limit: wait for some to commit")]
    PeerLimit(usize),
    #[error(
        "this peer has {0} transactions waiting behind sequence gaps, its limit: send the missing sequences first"
    )]
    PeerGapLimit(usize),
    #[error("state unavailable: {0}")]
    State(String),
}

struct Entry {
    bytes: Vec<u8>,
    /// The transaction as admission verified it, so a block holding these very bytes does
    /// not check the signature a second time.
    verified: VerifiedTx,
    signer: Address,
    sequence: u64,
    fee: u128,
    arrival: u64,
    peer: Option<IpAddr>,
    /// Every sequence from the account's next up to this one is pending.
    ready: bool,
    /// While gapped: the height at which it is dropped.
    expires_at: u64,
}

impl Entry {
    /// Eviction order: gapped before ready, then the lowest fee, then the newest.
    fn evict_key(&self, hash: TxHash) -> EvictKey {
        (self.ready, self.fee, Reverse(self.arrival), hash)
    }
}

type EvictKey = (bool, u128, Reverse<u64>, TxHash);

/// One account's pending transactions.
#[derive(Default)]
struct AccountQueue {
    /// The account's next sequence in the committed state.
    next: u64,
    txs: BTreeMap<u64, TxHash>,
    /// Sum of the pending transactions' fees.
    fees: u128,
    /// Arrival of the transaction at `next`, when pending (its key in `ready_heads`).
    head: Option<u64>,
}

#[derive(Default, Clone, Copy)]
struct PeerCount {
    total: usize,
    gapped: usize,
}

/// Pending transactions.
#[derive(Default)]
pub struct Mempool {
    limits: MempoolLimits,
    by_hash: HashMap<TxHash, Entry>,
    accounts: BTreeMap<Address, AccountQueue>,
    evict_order: BTreeSet<EvictKey>,
    /// Accounts whose next sequence is pending, by that transaction's arrival.
    ready_heads: BTreeSet<(u64, Address)>,
    /// Gapped transactions by the height at which they are dropped.
    expiry: BTreeSet<(u64, TxHash)>,
    peers: HashMap<IpAddr, PeerCount>,
    bytes: usize,
    arrivals: u64,
    /// Height of the last commit seen.
    height: u64,
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

    /// The verified form of each of `txs` (raw bytes, as a block holds them) that this mempool
    /// admitted: the same bytes hash to the same key, and admission verified their signature.
    /// `None` for the others, which the caller must check.
    /// `hashes` are the transactions' hashes, computed by the caller before taking the lock.
    pub fn verified(&self, txs: &[Vec<u8>], hashes: &[TxHash]) -> Vec<Option<VerifiedTx>> {
        txs.iter()
            .zip(hashes)
            .map(|(bytes, hash)| {
                let entry = self.by_hash.get(hash)?;
                (entry.bytes == *bytes).then(|| entry.verified.clone())
            })
            .collect()
    }

    /// The sequence `signer`'s next transaction takes: after its pending ones, else its
    /// committed next.
    pub fn next_sequence(&self, signer: &Address, view: &impl StateView) -> u64 {
        match self.accounts.get(signer) {
            Some(a) => a.txs.keys().next_back().map_or(a.next, |s| s + 1),
            None => query::account(view, signer).ok().flatten().map_or(0, |a| a.sequence),
        }
    }

    /// Transactions waiting behind a sequence gap.
    pub fn gapped(&self) -> usize {
        self.expiry.len()
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
        self.admit_verified(bytes, &vtx, chain_id, params, view, None)
    }

    /// [`Mempool::admit`] for a transaction that [`Mempool::verify`] already checked, sent
    /// by `peer` (none: from inside the node).
    pub fn admit_verified(
        &mut self,
        bytes: Vec<u8>,
        vtx: &VerifiedTx,
        chain_id: &str,
        params: &Params,
        view: &impl StateView,
        peer: Option<IpAddr>,
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
        let required = params.required_fee(body.messages.len(), bytes.len());
        if body.fee.denom != params.native_denom || body.fee.amount < required {
            return Err(Rejection::FeeTooLow {
                got: body.fee.to_string(),
                min: format!("{required}{}", params.native_denom),
            });
        }
        let state = |e: gridlease_ledger::ViewError| Rejection::State(e.to_string());
        let (next, pending_fees, gap_free) = match self.accounts.get(&body.signer) {
            Some(a) => {
                let below = body.sequence.saturating_sub(a.next);
                let present = a.txs.range(a.next..body.sequence).count() as u64;
                (a.next, a.fees, present == below)
            }
            None => {
                let next =
                    query::account(view, &body.signer).map_err(state)?.map_or(0, |a| a.sequence);
                (next, 0, body.sequence == next)
            }
        };
        if body.sequence < next {
            return Err(Rejection::SequenceTooLow { got: body.sequence, next });
        }
        if body.sequence >= next + self.limits.max_per_account {
            return Err(Rejection::SequenceTooHigh { got: body.sequence, next });
        }
        if self.accounts.get(&body.signer).is_some_and(|a| a.txs.contains_key(&body.sequence)) {
            return Err(Rejection::SequencePending(body.sequence));
        }
        let needed = pending_fees.saturating_add(body.fee.amount);
        let balance = query::balance(view, &body.signer, &params.native_denom).map_err(state)?;
        if balance < needed {
            return Err(Rejection::CannotPayFee {
                balance: format!("{balance}{}", params.native_denom),
                needed: format!("{needed}{}", params.native_denom),
            });
        }
        if let Some(ip) = peer {
            let count = self.peers.get(&ip).copied().unwrap_or_default();
            if count.total >= self.limits.max_per_peer {
                return Err(Rejection::PeerLimit(count.total));
            }
            if !gap_free && count.gapped >= self.limits.max_gapped_per_peer {
                return Err(Rejection::PeerGapLimit(count.gapped));
            }
        }
        while self.by_hash.len() >= self.limits.max_txs
            || self.bytes + bytes.len() > self.limits.max_bytes
        {
            self.evict_for(gap_free, body.fee.amount)?;
        }
        self.arrivals += 1;
        self.bytes += bytes.len();
        let entry = Entry {
            bytes,
            verified: vtx.clone(),
            signer: body.signer,
            sequence: body.sequence,
            fee: body.fee.amount,
            arrival: self.arrivals,
            peer,
            ready: false,
            expires_at: self.height + self.limits.gap_ttl_blocks,
        };
        self.evict_order.insert(entry.evict_key(hash));
        self.expiry.insert((entry.expires_at, hash));
        if let Some(ip) = peer {
            let c = self.peers.entry(ip).or_default();
            c.total += 1;
            c.gapped += 1;
        }
        let account = self
            .accounts
            .entry(body.signer)
            .or_insert_with(|| AccountQueue { next, ..AccountQueue::default() });
        account.txs.insert(body.sequence, hash);
        account.fees = account.fees.saturating_add(body.fee.amount);
        self.by_hash.insert(hash, entry);
        self.refresh_account(&body.signer);
        Ok(hash)
    }

    /// Makes room for a transaction of this readiness and fee by dropping the first one in
    /// eviction order (gapped before ready, then the lowest fee, then the newest), if that one
    /// comes strictly before it.
    fn evict_for(&mut self, ready: bool, fee: u128) -> Result<(), Rejection> {
        let victim = self.evict_order.first().copied();
        match victim {
            Some((v_ready, v_fee, _, h)) if (v_ready, v_fee) < (ready, fee) => {
                let signer = self.by_hash.get(&h).map(|e| e.signer);
                self.remove(&h);
                if let Some(a) = signer {
                    self.refresh_account(&a);
                }
                Ok(())
            }
            _ => Err(Rejection::Full),
        }
    }

    /// Drops one transaction from every index. Callers refresh its account afterwards.
    fn remove(&mut self, hash: &TxHash) {
        let Some(e) = self.by_hash.remove(hash) else { return };
        self.bytes -= e.bytes.len();
        self.evict_order.remove(&e.evict_key(*hash));
        if !e.ready {
            self.expiry.remove(&(e.expires_at, *hash));
        }
        if let Some(ip) = e.peer
            && let Some(c) = self.peers.get_mut(&ip)
        {
            c.total -= 1;
            if !e.ready {
                c.gapped -= 1;
            }
            if c.total == 0 {
                self.peers.remove(&ip);
            }
        }
        if let Some(a) = self.accounts.get_mut(&e.signer) {
            a.txs.remove(&e.sequence);
            a.fees = a.fees.saturating_sub(e.fee);
            if a.txs.is_empty() {
                if let Some(head) = a.head {
                    self.ready_heads.remove(&(head, e.signer));
                }
                self.accounts.remove(&e.signer);
            }
        }
    }

    /// Recomputes which of an account's transactions are ready (a gap-free run from its next
    /// sequence) and its place among the ready heads. Costs O(its pending transactions).
    fn refresh_account(&mut self, addr: &Address) {
        let Some(account) = self.accounts.get_mut(addr) else { return };
        if let Some(head) = account.head.take() {
            self.ready_heads.remove(&(head, *addr));
        }
        let mut expect = account.next;
        for (&seq, hash) in &account.txs {
            let ready = seq == expect;
            if ready {
                expect += 1;
            }
            let Some(e) = self.by_hash.get_mut(hash) else { continue };
            if e.ready == ready {
                continue;
            }
            self.evict_order.remove(&e.evict_key(*hash));
            let peer = e.peer.and_then(|ip| self.peers.get_mut(&ip));
            if ready {
                self.expiry.remove(&(e.expires_at, *hash));
                if let Some(c) = peer {
                    c.gapped -= 1;
                }
            } else {
                e.expires_at = self.height + self.limits.gap_ttl_blocks;
                self.expiry.insert((e.expires_at, *hash));
                if let Some(c) = peer {
                    c.gapped += 1;
                }
            }
            e.ready = ready;
            self.evict_order.insert(e.evict_key(*hash));
        }
        if let Some(e) = account.txs.get(&account.next).and_then(|h| self.by_hash.get(h)) {
            account.head = Some(e.arrival);
            self.ready_heads.insert((e.arrival, *addr));
        }
    }

    /// Transactions for a block: each account's run of consecutive sequences from its next
    /// one, interleaved across accounts in arrival order, within the limits. Walks only the
    /// ready accounts it takes from.
    pub fn reap(&self, max_txs: usize, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut heads = self.ready_heads.iter().copied().peekable();
        // Follow-up transactions of accounts already taken from: (arrival, account, sequence).
        let mut more: BinaryHeap<Reverse<(u64, Address, u64)>> = BinaryHeap::new();
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut tries = 0usize;
        while out.len() < max_txs && tries < max_txs.saturating_mul(4) {
            tries += 1;
            let from_heads = match (heads.peek(), more.peek()) {
                (Some(h), Some(Reverse(m))) => h.0 < m.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (addr, seq) = if from_heads {
                let Some((_, addr)) = heads.next() else { break };
                let Some(a) = self.accounts.get(&addr) else { continue };
                (addr, a.next)
            } else {
                let Some(Reverse((_, addr, seq))) = more.pop() else { break };
                (addr, seq)
            };
            let Some(account) = self.accounts.get(&addr) else { continue };
            let Some(entry) = account.txs.get(&seq).and_then(|h| self.by_hash.get(h)) else {
                continue;
            };
            if bytes + entry.bytes.len() > max_bytes {
                continue;
            }
            bytes += entry.bytes.len();
            out.push(entry.bytes.clone());
            if let Some(next) = account.txs.get(&(seq + 1)).and_then(|h| self.by_hash.get(h)) {
                more.push(Reverse((next.arrival, addr, seq + 1)));
            }
        }
        out
    }

    /// After the commit of block `height`: drops the committed transactions and any whose
    /// sequence is now used (reading the next sequence of the block's `signers` only), and
    /// the gapped transactions whose time ran out.
    pub fn update(
        &mut self,
        height: u64,
        committed: &[TxHash],
        signers: &[Address],
        view: &impl StateView,
    ) {
        self.height = height;
        let mut touched: BTreeSet<Address> = signers.iter().copied().collect();
        for h in committed {
            if let Some(e) = self.by_hash.get(h) {
                touched.insert(e.signer);
            }
            self.remove(h);
        }
        for addr in &touched {
            let Some(account) = self.accounts.get_mut(addr) else { continue };
            if let Ok(Some(a)) = query::account(view, addr) {
                account.next = a.sequence;
            }
            let stale: Vec<TxHash> = account.txs.range(..account.next).map(|(_, h)| *h).collect();
            for h in stale {
                self.remove(&h);
            }
            self.refresh_account(addr);
        }
        while let Some(&(at, h)) = self.expiry.first() {
            if at > height {
                break;
            }
            let signer = self.by_hash.get(&h).map(|e| e.signer);
            self.remove(&h);
            self.expiry.remove(&(at, h));
            if let Some(a) = signer {
                self.refresh_account(&a);
            }
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

    /// A block's transactions that admission verified come back verified (their signature
    /// is not checked again at commit); others, and other bytes, do not.
    #[test]
    fn admitted_transactions_come_back_verified() {
        let actors = Actors::new(2, 0, 0);
        let g = actors.genesis();
        let state = g.mem_state();
        let (a, b) = (&actors.tenants[0], &actors.tenants[1]);
        let mut m = Mempool::new(MempoolLimits::default());
        let mine = send(a, 0, 100);
        m.admit(mine.clone(), CHAIN_ID, &g.params, &state).expect("admitted");
        let stranger = send(b, 0, 100);
        let both = [mine.clone(), stranger];
        let hashes: Vec<TxHash> = both.iter().map(|b| TxHash::of_bytes(b)).collect();
        let got = m.verified(&both, &hashes);
        assert_eq!(got[0].as_ref().map(VerifiedTx::hash), Some(TxHash::of_bytes(&mine)));
        assert!(got[1].is_none(), "a transaction never admitted must be checked");
        let checked = gridlease_storage::check_txs_except(
            std::slice::from_ref(&mine),
            m.verified(std::slice::from_ref(&mine), &hashes[..1]),
        );
        assert_eq!(checked.reused, 1);
        assert!(matches!(checked.txs[0], CheckedTx::Valid(_)));
    }

    #[test]
    fn admission_ordering_and_eviction() {
        let actors = Actors::new(2, 0, 0);
        let g = actors.genesis();
        let state = g.mem_state();
        let (a, b) = (&actors.tenants[0], &actors.tenants[1]);
        let limits = MempoolLimits {
            max_txs: 4,
            max_bytes: 1 << 20,
            max_per_account: 3,
            ..MempoolLimits::default()
        };
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
        let block = m.reap(10, 1 << 20);
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

    fn seqs_of(block: &[Vec<u8>]) -> Vec<(Address, u64)> {
        block
            .iter()
            .map(|t| {
                let tx = Tx::from_bytes(t).unwrap();
                (tx.body.signer, tx.body.sequence)
            })
            .collect()
    }

    /// The attack of issue 10 item 2: unfunded keys with huge declared fees and funded keys
    /// with sequence gaps try to fill the pool. Unfunded ones are refused outright; gapped
    /// ones never run, are evicted first by an honest minimum-fee transaction, and expire.
    #[test]
    fn attack_unfunded_and_gapped_flood_cannot_lock_the_pool() {
        let actors = Actors::new(6, 0, 0);
        let g = actors.genesis();
        let mut state = g.mem_state();
        let limits = MempoolLimits {
            max_txs: 50,
            gap_ttl_blocks: 3,
            max_gapped_per_peer: 1_000,
            ..MempoolLimits::default()
        };
        let mut m = Mempool::new(limits);
        let p = &g.params;
        let peer = Some(IpAddr::from([127, 0, 0, 1]));
        for i in 0..100u8 {
            let stranger = gridlease_types::Keypair::from_secret([i.wrapping_add(100); 32]);
            let r = m.admit_verified(
                send(&stranger, 0, 10u128.pow(12)),
                &Mempool::verify(&send(&stranger, 0, 10u128.pow(12))).unwrap(),
                CHAIN_ID,
                p,
                &state,
                peer,
            );
            assert!(matches!(r, Err(Rejection::CannotPayFee { .. })), "{r:?}");
        }
        assert!(m.is_empty());
        for attacker in &actors.tenants[..5] {
            for seq in 1..=10 {
                let bytes = send(attacker, seq, 1_000_000);
                let v = Mempool::verify(&bytes).unwrap();
                m.admit_verified(bytes, &v, CHAIN_ID, p, &state, peer).unwrap();
            }
        }
        assert_eq!((m.len(), m.gapped()), (50, 50));
        let honest = &actors.tenants[5];
        let bytes = send(honest, 0, p.min_fee);
        let v = Mempool::verify(&bytes).unwrap();
        let hash = m.admit_verified(bytes, &v, CHAIN_ID, p, &state, peer).unwrap();
        assert_eq!((m.len(), m.gapped()), (50, 49));
        // Only the honest transaction is executable; it is the whole block.
        let block = m.reap(100, 1 << 20);
        assert_eq!(seqs_of(&block), vec![(honest.address(), 0)]);
        let txs: Vec<Tx> = block.iter().map(|b| Tx::from_bytes(b).unwrap()).collect();
        gridlease_sim::run_block(&mut state, 1, &txs).unwrap();
        m.update(1, &[hash], &[honest.address()], &state);
        assert_eq!(m.len(), 49);
        m.update(2, &[], &[], &state);
        assert_eq!(m.len(), 49, "gapped transactions wait out their time to live");
        m.update(3, &[], &[], &state);
        assert!(m.is_empty(), "gapped transactions expire after gap_ttl_blocks");
        assert!(m.peers.is_empty() && m.evict_order.is_empty() && m.ready_heads.is_empty());
    }

    #[test]
    fn pending_fees_must_be_covered_by_the_balance() {
        let actors = Actors::new(1, 0, 0);
        let mut g = actors.genesis();
        let poor = gridlease_types::Keypair::from_secret([77; 32]);
        g.balances.push(gridlease_ledger::GenesisBalance {
            address: poor.address(),
            coins: vec![Coin::new(250, &ugrid())],
        });
        let state = g.mem_state();
        let mut m = Mempool::new(MempoolLimits::default());
        let p = &g.params;
        assert!(m.admit(send(&poor, 0, 100), CHAIN_ID, p, &state).is_ok());
        assert!(m.admit(send(&poor, 1, 100), CHAIN_ID, p, &state).is_ok());
        assert!(matches!(
            m.admit(send(&poor, 2, 100), CHAIN_ID, p, &state),
            Err(Rejection::CannotPayFee { .. })
        ));
    }

    #[test]
    fn a_peer_holds_few_gapped_transactions_and_a_filled_gap_frees_them() {
        let actors = Actors::new(1, 0, 0);
        let g = actors.genesis();
        let state = g.mem_state();
        let limits = MempoolLimits { max_gapped_per_peer: 2, ..MempoolLimits::default() };
        let mut m = Mempool::new(limits);
        let (p, a) = (&g.params, &actors.tenants[0]);
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        let admit = |m: &mut Mempool, seq| {
            let bytes = send(a, seq, 100);
            let v = Mempool::verify(&bytes).unwrap();
            m.admit_verified(bytes, &v, CHAIN_ID, p, &state, peer)
        };
        assert!(admit(&mut m, 2).is_ok());
        assert!(admit(&mut m, 3).is_ok());
        assert_eq!(admit(&mut m, 4), Err(Rejection::PeerGapLimit(2)));
        assert!(admit(&mut m, 1).is_err(), "1 is still behind the gap at 0");
        assert!(admit(&mut m, 0).is_ok(), "a ready transaction is always welcome");
        assert_eq!(m.gapped(), 2);
        assert!(admit(&mut m, 1).is_ok(), "1 closes the gap");
        assert_eq!(m.gapped(), 0, "2 and 3 became ready");
        assert!(admit(&mut m, 4).is_ok());
        let block = m.reap(100, 1 << 20);
        let seqs: Vec<u64> = seqs_of(&block).iter().map(|(_, q)| *q).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    }
}
