//! State shared by the consensus application and the RPC server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use gridlease_ledger::{Event, Params, Receipt};
use gridlease_storage::Store;
use gridlease_types::TxHash;
use tokio::sync::broadcast;

use crate::mempool::Mempool;

/// A block as subscribers see it once it is committed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CommittedBlock {
    pub height: u64,
    pub time_ms: u64,
    #[serde(serialize_with = "hex32")]
    pub state_root: [u8; 32],
    pub begin_events: Vec<Event>,
    pub receipts: Vec<Receipt>,
}

fn hex32<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::hex(v))
}

impl CommittedBlock {
    pub fn contains(&self, hash: &TxHash) -> Option<&Receipt> {
        self.receipts.iter().find(|r| &r.tx_hash == hash)
    }
}

/// Counters exported on `/metrics` (base units).
#[derive(Debug, Default)]
pub struct Metrics {
    pub blocks_committed: AtomicU64,
    pub txs_committed: AtomicU64,
    pub txs_failed: AtomicU64,
    pub txs_admitted: AtomicU64,
    pub txs_rejected: AtomicU64,
    pub rpc_requests: AtomicU64,
    /// Microseconds spent executing and committing the last block.
    pub last_commit_micros: AtomicU64,
    /// Committed transactions whose signature admission had verified (not checked again).
    pub signatures_reused: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Everything the node shares between tasks.
#[derive(Debug)]
pub struct Node {
    pub chain_id: String,
    pub params: Params,
    pub store: RwLock<Store>,
    pub mempool: Mutex<Mempool>,
    pub committed: broadcast::Sender<Arc<CommittedBlock>>,
    pub metrics: Metrics,
    /// Permits for RPC requests in flight; one is held for the whole life of an event stream
    /// in `subscribers` instead.
    pub requests: Arc<tokio::sync::Semaphore>,
    /// Permits for open `/events` streams.
    pub subscribers: Arc<tokio::sync::Semaphore>,
    /// Double signs consensus saw lately, oldest first (at most [`MAX_EVIDENCE_KEPT`]).
    pub evidence: Mutex<std::collections::VecDeque<gridlease_rpc_types::EvidenceView>>,
}

/// Double signs `/evidence` keeps.
pub const MAX_EVIDENCE_KEPT: usize = 64;

/// Most RPC requests served at once; more get 503 at once rather than queueing without end.
pub const MAX_RPC_IN_FLIGHT: usize = 512;
/// Most `/events` subscribers at once.
pub const MAX_SUBSCRIBERS: usize = 256;

/// Locks that survive a panicked holder: the data is still consistent (every mutation is
/// completed before the guard drops), so poisoning is ignored.
pub fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
