//! The consensus application: builds blocks from the mempool, checks proposed blocks, and
//! executes and commits decided ones.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gridlease_consensus::{Application, BoxError, DecidedBlock, ValidatorInfo};
use gridlease_storage::CommitInfo;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::block::{Block, MAX_BLOCK_BYTES};
use crate::state::{CommittedBlock, Metrics, Node, lock, read, write};

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 20_000;
/// How far ahead of our clock a proposed block time may be.
const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Adapts the node to the consensus engine.
#[derive(Debug, Clone)]
pub struct ChainApp {
    pub node: Arc<Node>,
    /// Signs the node's double-sign reports (its validator key; its account pays the fee).
    pub reporter: gridlease_types::Keypair,
}

impl ChainApp {
    fn last_block_time(&self) -> u64 {
        let store = read(&self.node.store);
        let h = store.height();
        if h == 0 {
            return 0;
        }
        store.block(h).ok().flatten().map_or(0, |b| b.time_ms)
    }

    fn check_block(&self, height: u64, bytes: &[u8]) -> Result<Block, String> {
        let block = Block::decode(bytes)?;
        let store = read(&self.node.store);
        if block.chain_id != self.node.chain_id {
            return Err(format!("block for chain {}", block.chain_id));
        }
        if block.height != height || height != store.height() + 1 {
            return Err(format!("block height {} at consensus height {height}", block.height));
        }
        if block.parent_root != store.state_root() {
            return Err("block's parent state root differs from ours".into());
        }
        drop(store);
        if block.time_ms <= self.last_block_time() || block.time_ms > now_ms() + MAX_CLOCK_DRIFT_MS
        {
            return Err(format!(
                "block time {} is not after the last block or is in the future",
                block.time_ms
            ));
        }
        if block.txs.len() > MAX_BLOCK_TXS {
            return Err(format!("{} transactions exceed {MAX_BLOCK_TXS}", block.txs.len()));
        }
        Ok(block)
    }
}

impl Application for ChainApp {
    fn last_committed(&self) -> u64 {
        read(&self.node.store).height()
    }

    async fn propose(&mut self, height: u64, _round: u32) -> Vec<u8> {
        let parent_root = read(&self.node.store).state_root();
        // The mempool keeps each account's committed sequence itself: reaping reads no state.
        let txs = lock(&self.node.mempool).reap(MAX_BLOCK_TXS, MAX_BLOCK_BYTES / 2);
        let time_ms = now_ms().max(self.last_block_time() + 1);
        Block { chain_id: self.node.chain_id.clone(), height, time_ms, parent_root, txs }.encode()
    }

    async fn validate(&mut self, height: u64, block: &[u8]) -> bool {
        match self.check_block(height, block) {
            Ok(_) => true,
            Err(e) => {
                warn!(target: "node.validate", height, error = %e, "rejecting proposed block");
                false
            }
        }
    }

    async fn commit(&mut self, decided: DecidedBlock) -> Result<(), BoxError> {
        let block = Block::decode(&decided.block)?;
        let started = std::time::Instant::now();
        let commit = CommitInfo {
            round: decided.round,
            certificate: decided.certificate,
            parent_root: block.parent_root,
        };
        // Signature checks and execution run on a snapshot, outside the store's lock, and off
        // the async workers; the write lock covers only the durable write.
        let node = self.node.clone();
        let height = decided.height;
        let committed = tokio::task::block_in_place(move || -> Result<_, BoxError> {
            let (view, committed_height) = {
                let store = read(&node.store);
                (store.view()?, store.height())
            };
            if height <= committed_height {
                return Ok(None); // already committed before a restart
            }
            // Admission verified the signatures of the transactions this node holds; only the
            // others are checked here (in parallel).
            let hashes: Vec<gridlease_types::TxHash> =
                block.txs.iter().map(|b| gridlease_types::TxHash::of_bytes(b)).collect();
            let known = lock(&node.mempool).verified(&block.txs, &hashes);
            let checked = gridlease_storage::check_txs_except(&block.txs, known);
            Metrics::add(&node.metrics.signatures_reused, checked.reused as u64);
            let checked = checked.txs;
            let signers: Vec<gridlease_types::Address> = checked
                .iter()
                .filter_map(|c| match c {
                    gridlease_types::CheckedTx::Valid(v) => Some(v.body().signer),
                    gridlease_types::CheckedTx::Invalid { .. } => None,
                })
                .collect();
            let ctx = gridlease_ledger::BlockContext {
                chain_id: node.chain_id.clone(),
                height,
                time_ms: block.time_ms,
                verified_evidence: crate::evidence::verified(&node.chain_id, &checked),
            };
            let out = gridlease_ledger::execute(&view, &ctx, &checked)?;
            drop(view);
            let mut record = gridlease_storage::BlockRecord {
                height,
                time_ms: block.time_ms,
                txs: block.txs,
                receipts: out.receipts.clone(),
                begin_events: out.begin_events.clone(),
                round: commit.round,
                certificate: commit.certificate,
                parent_root: commit.parent_root,
                state_root: [0; 32],
            };
            let mut store = write(&node.store);
            store.commit_block(&mut record, &out.changes)?;
            let view = store.view()?;
            Ok(Some((record, out, view, signers)))
        })?;
        let Some((record, out, view, signers)) = committed else { return Ok(()) };
        let hashes: Vec<_> = out.receipts.iter().map(|r| r.tx_hash).collect();
        lock(&self.node.mempool).update(record.height, &hashes, &signers, &view);
        let m = &self.node.metrics;
        Metrics::add(&m.blocks_committed, 1);
        Metrics::add(&m.txs_committed, out.receipts.len() as u64);
        let failed =
            out.receipts.iter().filter(|r| r.code != gridlease_ledger::ReceiptCode::Ok).count();
        Metrics::add(&m.txs_failed, failed as u64);
        m.last_commit_micros
            .store(started.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
        info!(target: "node.commit", height = record.height, txs = out.receipts.len(), "committed block");
        let _ = self.node.committed.send(Arc::new(CommittedBlock {
            height: record.height,
            time_ms: record.time_ms,
            state_root: record.state_root,
            begin_events: out.begin_events,
            receipts: out.receipts,
        }));
        Ok(())
    }

    fn misbehaviour(&mut self, reports: Vec<gridlease_consensus::Misbehaviour>) {
        crate::evidence::report(&self.node, &self.reporter, reports);
    }

    fn validator_set(&self, height: u64) -> Option<Vec<ValidatorInfo>> {
        let store = read(&self.node.store);
        match crate::validator_set(&store, height) {
            Ok(set) => Some(set),
            Err(e) => {
                warn!(target: "node.validators", height, error = %e, "no validator set");
                None
            }
        }
    }

    fn decided_block(&self, height: u64) -> Option<DecidedBlock> {
        let record = read(&self.node.store).block(height).ok().flatten()?;
        let block = Block {
            chain_id: self.node.chain_id.clone(),
            height,
            time_ms: record.time_ms,
            parent_root: record.parent_root,
            txs: record.txs,
        }
        .encode();
        let hash = Sha256::digest(&block).into();
        Some(DecidedBlock {
            height,
            round: record.round,
            hash,
            block,
            certificate: record.certificate,
        })
    }
}
