//! Executing a block of raw transactions against the store and committing it.

use gridlease_ledger::{BlockContext, BlockOutput, ExecError};
use gridlease_types::{CheckedTx, Height, Tx, VerifiedTx};
use rayon::prelude::*;

use crate::store::{BlockRecord, Store, StoreError};

/// Why a block could not be executed and committed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("block execution failed: {0}")]
    Exec(#[from] ExecError),
}

/// Decodes and verifies raw transactions in parallel (signature checks dominate the cost).
pub fn check_txs(raw: &[Vec<u8>]) -> Vec<CheckedTx> {
    raw.par_iter().with_min_len(64).map(|bytes| Tx::check_bytes(bytes)).collect()
}

/// A block's transactions after the stateless checks, and how many of them came verified.
#[derive(Debug)]
pub struct CheckedTxs {
    pub txs: Vec<CheckedTx>,
    /// Transactions whose signature an earlier check (mempool admission) had verified.
    pub reused: usize,
}

/// [`check_txs`] for a block some of whose transactions were verified before: `known[i]`,
/// when present, is transaction `i` as verified from the same bytes; the rest are checked in
/// parallel.
pub fn check_txs_except(raw: &[Vec<u8>], known: Vec<Option<VerifiedTx>>) -> CheckedTxs {
    let reused = known.iter().filter(|k| k.is_some()).count();
    let txs = raw
        .par_iter()
        .with_min_len(64)
        .zip(known.into_par_iter())
        .map(|(bytes, known)| match known {
            Some(v) => CheckedTx::Valid(v),
            None => Tx::check_bytes(bytes),
        })
        .collect();
    CheckedTxs { txs, reused }
}

/// What consensus adds to a block: the round it was decided in, its certificate, and the
/// parent state root its header carried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitInfo {
    pub round: u32,
    pub certificate: Vec<u8>,
    pub parent_root: [u8; 32],
}

impl Store {
    /// Executes a block on the committed state and commits it. Returns the stored record
    /// (with its state root) and the ledger's output.
    pub fn execute_block(
        &mut self,
        chain_id: &str,
        height: Height,
        time_ms: u64,
        raw_txs: Vec<Vec<u8>>,
    ) -> Result<(BlockRecord, BlockOutput), BlockError> {
        self.execute_decided_block(chain_id, height, time_ms, raw_txs, CommitInfo::default())
    }

    /// [`Store::execute_block`] for a block consensus decided, keeping its commit info.
    pub fn execute_decided_block(
        &mut self,
        chain_id: &str,
        height: Height,
        time_ms: u64,
        raw_txs: Vec<Vec<u8>>,
        commit: CommitInfo,
    ) -> Result<(BlockRecord, BlockOutput), BlockError> {
        let checked = check_txs(&raw_txs);
        let ctx = BlockContext {
            chain_id: chain_id.to_string(),
            height,
            time_ms,
            verified_evidence: Default::default(),
        };
        let out = {
            let view = self.view()?;
            gridlease_ledger::execute(&view, &ctx, &checked)?
        };
        let mut record = BlockRecord {
            height,
            time_ms,
            txs: raw_txs,
            receipts: out.receipts.clone(),
            begin_events: out.begin_events.clone(),
            round: commit.round,
            certificate: commit.certificate,
            parent_root: commit.parent_root,
            state_root: [0; 32],
        };
        self.commit_block(&mut record, &out.changes)?;
        Ok((record, out))
    }
}
