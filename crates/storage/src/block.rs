//! Executing a block of raw transactions against the store and committing it.

use gridlease_ledger::{BlockContext, BlockOutput, ExecError};
use gridlease_types::{CheckedTx, Height, Tx};
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
        let ctx = BlockContext { chain_id: chain_id.to_string(), height, time_ms };
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
