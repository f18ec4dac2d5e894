//! The redb-backed store.
//!
//! Each block is made durable by one write transaction that appends its changes to a log
//! (`LOG`), its record (`BLOCKS`), its root (`ROOTS`) and the new height and root (`META`).
//! Appends land at the right edge of their B-trees, so a block costs the same few page writes
//! however large the state is. The changes themselves live in memory (`pending`, a persistent
//! ordered map that views snapshot for free) until a checkpoint folds them into the `STATE` and
//! `BUCKETS` tables and trims the log, in one more write transaction, every
//! [`StoreConfig::checkpoint_every`] blocks. Opening replays the log past the last checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use borsh::{BorshDeserialize, BorshSerialize};
use gridlease_ledger::{Changes, Genesis, Receipt, StateView, ViewError};
use gridlease_types::Height;
use rayon::prelude::*;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::merkle::{self, Hash, Tree};

/// TEMP profiling.
pub mod prof {
    use std::sync::atomic::{AtomicU64, Ordering};
    pub static T: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];
    pub const NAMES: [&str; 12] = [
        "check",
        "view",
        "exec",
        "stage",
        "tree",
        "encode",
        "redb_ops",
        "redb_commit",
        "apply",
        "checkpoint",
        "stage_reads",
        "x",
    ];
    pub fn add(i: usize, since: std::time::Instant) {
        T[i].fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    pub fn take() -> Vec<(&'static str, u64)> {
        NAMES.iter().enumerate().map(|(i, n)| (*n, T[i].swap(0, Ordering::Relaxed))).collect()
    }
}

const STATE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("state");
const BUCKETS: TableDefinition<'static, u32, &[u8]> = TableDefinition::new("merkle_buckets");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
const ROOTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("roots");
const LOG: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("change_log");
/// Transaction hash -> (height, index in block).
const TX_INDEX: TableDefinition<'static, &[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");

const META_HEIGHT: &str = "height";
const META_ROOT: &str = "state_root";
const META_CHAIN_ID: &str = "chain_id";
const META_CHECKPOINT: &str = "checkpoint";

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error at {path}: {source}")]
    Db { path: PathBuf, source: Box<redb::Error> },
    #[error("store at {0} already holds a chain: genesis can only be applied to an empty store")]
    NotEmpty(PathBuf),
    #[error("block {got} does not follow the committed height {committed}")]
    OutOfOrder { got: Height, committed: Height },
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
}

/// A committed block as stored: the raw transactions, their receipts and begin-block events.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockRecord {
    pub height: Height,
    pub time_ms: u64,
    pub txs: Vec<Vec<u8>>,
    pub receipts: Vec<Receipt>,
    pub begin_events: Vec<gridlease_ledger::Event>,
    /// Consensus round the block was decided in.
    pub round: u32,
    /// Consensus commit certificate (opaque to storage).
    pub certificate: Vec<u8>,
    /// State root after the previous block, as the block header carried it.
    pub parent_root: Hash,
    /// Filled by [`Store::commit_block`].
    pub state_root: Hash,
}

/// How often changes are folded from the log into the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Checkpoint after this many blocks since the last one.
    pub checkpoint_every: u32,
    /// Checkpoint early once this many distinct keys are pending.
    pub checkpoint_max_keys: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { checkpoint_every: 64, checkpoint_max_keys: 1_000_000 }
    }
}

type Pending = imbl::OrdMap<Vec<u8>, Option<Vec<u8>>>;

/// New contents of the buckets a block touches, applied once its log record is durable.
type StagedBuckets = BTreeMap<u32, Vec<merkle::Entry>>;

/// The ledger state in redb plus the in-memory Merkle tree and pending changes over it.
pub struct Store {
    db: Database,
    path: PathBuf,
    config: StoreConfig,
    tree: Tree,
    height: Height,
    root: Hash,
    checkpoint: Height,
    /// State changes committed (in the log) since the checkpoint; `None` is a deletion.
    pending: Pending,
    /// Bucket contents changed since the checkpoint.
    pending_buckets: BTreeMap<u32, Vec<merkle::Entry>>,
    /// What the last checkpoint folded in, kept as a read cache: the same values as the
    /// tables hold, so reads of recently written keys (the hot set) skip the B-trees.
    recent: Pending,
    recent_buckets: BTreeMap<u32, Vec<merkle::Entry>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({}, height {})", self.path.display(), self.height)
    }
}

fn db_err(path: &Path) -> impl Fn(redb::Error) -> StoreError + '_ {
    move |e| StoreError::Db { path: path.to_path_buf(), source: Box::new(e) }
}

macro_rules! tryd {
    ($self_path:expr, $e:expr) => {
        $e.map_err(|e| db_err($self_path)(e.into()))?
    };
}

fn hash_from(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt(format!("hash of {} bytes", bytes.len())))
}

fn height_from(bytes: &[u8]) -> Result<Height, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt("height".into()))?;
    Ok(u64::from_be_bytes(arr))
}

/// One block's changes as the log stores them.
#[derive(BorshSerialize, BorshDeserialize)]
struct LogRecord {
    changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Store {
    /// Opens (or creates) the store at `path` with the default checkpoint policy.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Self::open_with(path, StoreConfig::default())
    }

    /// Opens (or creates) the store: rebuilds the Merkle tree from the buckets and replays the
    /// log past the last checkpoint.
    pub fn open_with(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = tryd!(&path, Database::create(&path));
        {
            let tx = tryd!(&path, db.begin_write());
            tryd!(&path, tx.open_table(STATE));
            tryd!(&path, tx.open_table(BUCKETS));
            tryd!(&path, tx.open_table(META));
            tryd!(&path, tx.open_table(BLOCKS));
            tryd!(&path, tx.open_table(ROOTS));
            tryd!(&path, tx.open_table(LOG));
            tryd!(&path, tx.open_table(TX_INDEX));
            tryd!(&path, tx.commit());
        }
        let tx = tryd!(&path, db.begin_read());
        let meta = tryd!(&path, tx.open_table(META));
        let read_height = |key: &str| -> Result<Height, StoreError> {
            match tryd!(&path, meta.get(key)) {
                Some(v) => height_from(v.value()),
                None => Ok(0),
            }
        };
        let height = read_height(META_HEIGHT)?;
        let checkpoint = read_height(META_CHECKPOINT)?;
        let recorded_root = match tryd!(&path, meta.get(META_ROOT)) {
            Some(v) => Some(hash_from(v.value())?),
            None => None,
        };
        let buckets = tryd!(&path, tx.open_table(BUCKETS));
        let mut leaves = Vec::with_capacity(tryd!(&path, buckets.len()) as usize);
        for item in tryd!(&path, buckets.range::<u32>(..)) {
            let (k, v) = tryd!(&path, item);
            let entries = merkle::decode_entries(v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("bucket {}", k.value())))?;
            leaves.push((k.value(), merkle::bucket_hash(&entries)));
        }
        let mut store = Store {
            tree: Tree::build(leaves),
            db,
            path: path.clone(),
            config,
            height: checkpoint,
            root: [0; 32],
            checkpoint,
            pending: Pending::new(),
            pending_buckets: BTreeMap::new(),
            recent: Pending::new(),
            recent_buckets: BTreeMap::new(),
        };
        let log = tryd!(&path, tx.open_table(LOG));
        for item in tryd!(&path, log.range(checkpoint + 1..)) {
            let (h, v) = tryd!(&path, item);
            let record: LogRecord = gridlease_types::decode(v.value())
                .map_err(|e| StoreError::Corrupt(format!("log record {}: {e}", h.value())))?;
            let changes: Changes = record.changes.into_iter().collect();
            let (leaves, staged) = store.stage_buckets(&changes, &buckets)?;
            store.tree.update(&leaves);
            store.apply_pending(&changes, staged);
            store.height = h.value();
        }
        drop((log, buckets, meta, tx));
        store.root = store.tree.root();
        if store.height != height {
            return Err(StoreError::Corrupt(format!(
                "log ends at height {} but height {height} is recorded",
                store.height
            )));
        }
        if let Some(stored) = recorded_root.filter(|r| *r != store.root) {
            return Err(StoreError::Corrupt(format!(
                "state root {} recorded at height {height} does not match the state",
                gridlease_types::hex::encode(&stored)
            )));
        }
        Ok(store)
    }

    /// The last committed height (0: genesis or empty).
    pub fn height(&self) -> Height {
        self.height
    }

    pub fn state_root(&self) -> Hash {
        self.root
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether genesis has been applied.
    pub fn is_initialized(&self) -> Result<bool, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let meta = tryd!(&self.path, tx.open_table(META));
        Ok(tryd!(&self.path, meta.get(META_CHAIN_ID)).is_some())
    }

    /// Writes the genesis state at height 0.
    pub fn init_genesis(&mut self, genesis: &Genesis) -> Result<Hash, StoreError> {
        if self.is_initialized()? || self.height != 0 {
            return Err(StoreError::NotEmpty(self.path.clone()));
        }
        let changes = genesis.initial_changes();
        let root = self.write(0, &changes, None, Some(genesis.chain_id.as_bytes()))?;
        self.checkpoint()?;
        Ok(root)
    }

    /// Commits one block's changes and record in one durable write transaction.
    pub fn commit_block(
        &mut self,
        record: &mut BlockRecord,
        changes: &Changes,
    ) -> Result<Hash, StoreError> {
        if record.height != self.height + 1 {
            return Err(StoreError::OutOfOrder { got: record.height, committed: self.height });
        }
        let root = self.write(record.height, changes, Some(record), None)?;
        let due = self.height - self.checkpoint >= u64::from(self.config.checkpoint_every)
            || self.pending.len() >= self.config.checkpoint_max_keys;
        if due {
            let t = std::time::Instant::now();
            self.checkpoint()?;
            prof::add(9, t);
        }
        Ok(root)
    }

    /// New contents and leaf hashes of the buckets that `changes` touch.
    fn stage_buckets(
        &self,
        changes: &Changes,
        buckets: &impl ReadableTable<u32, &'static [u8]>,
    ) -> Result<(Vec<(u32, Hash)>, StagedBuckets), StoreError> {
        let pairs: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = changes.iter().collect();
        let hashed: Vec<(Hash, Option<Hash>)> = pairs
            .par_iter()
            .with_min_len(256)
            .map(|(k, v)| (merkle::hash_key(k), v.as_deref().map(merkle::hash_key)))
            .collect();
        let mut by_bucket: BTreeMap<u32, Vec<(Hash, Option<Hash>)>> = BTreeMap::new();
        for (kh, vh) in hashed {
            by_bucket.entry(merkle::bucket_of(&kh)).or_default().push((kh, vh));
        }
        let mut leaves = Vec::with_capacity(by_bucket.len());
        let mut staged = BTreeMap::new();
        for (b, updates) in by_bucket {
            let cached = self.pending_buckets.get(&b).or_else(|| self.recent_buckets.get(&b));
            let mut entries = match cached {
                Some(e) => e.clone(),
                None => match {
                    let t = std::time::Instant::now();
                    let r = buckets.get(b);
                    prof::add(10, t);
                    tryd!(&self.path, r)
                } {
                    Some(v) => merkle::decode_entries(v.value())
                        .ok_or_else(|| StoreError::Corrupt(format!("bucket {b}")))?,
                    None => Vec::new(),
                },
            };
            for (kh, vh) in updates {
                merkle::upsert(&mut entries, kh, vh);
            }
            leaves.push((b, merkle::bucket_hash(&entries)));
            staged.insert(b, entries);
        }
        Ok((leaves, staged))
    }

    fn apply_pending(&mut self, changes: &Changes, staged: StagedBuckets) {
        for (k, v) in changes {
            self.pending.insert(k.clone(), v.clone());
        }
        self.pending_buckets.extend(staged);
    }

    fn write(
        &mut self,
        height: Height,
        changes: &Changes,
        record: Option<&mut BlockRecord>,
        chain_id: Option<&[u8]>,
    ) -> Result<Hash, StoreError> {
        let path = self.path.clone();
        let t = std::time::Instant::now();
        let (leaves, staged) = {
            let rtx = tryd!(&path, self.db.begin_read());
            let buckets = tryd!(&path, rtx.open_table(BUCKETS));
            self.stage_buckets(changes, &buckets)?
        };
        prof::add(3, t);
        let t = std::time::Instant::now();
        let undo = self.tree.update(&leaves);
        let root = self.tree.root();
        prof::add(4, t);
        let t = std::time::Instant::now();
        let log_bytes = gridlease_types::encode(&LogRecord {
            changes: changes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
        prof::add(5, t);
        let result = (|| -> Result<(), StoreError> {
            let t = std::time::Instant::now();
            let mut tx = tryd!(&path, self.db.begin_write());
            tx.set_durability(Durability::Immediate);
            {
                let mut log = tryd!(&path, tx.open_table(LOG));
                tryd!(&path, log.insert(height, log_bytes.as_slice()));
                let mut meta = tryd!(&path, tx.open_table(META));
                tryd!(&path, meta.insert(META_HEIGHT, height.to_be_bytes().as_slice()));
                tryd!(&path, meta.insert(META_ROOT, root.as_slice()));
                if let Some(id) = chain_id {
                    tryd!(&path, meta.insert(META_CHAIN_ID, id));
                }
                let mut roots = tryd!(&path, tx.open_table(ROOTS));
                tryd!(&path, roots.insert(height, root.as_slice()));
                if let Some(rec) = record {
                    rec.state_root = root;
                    let mut blocks = tryd!(&path, tx.open_table(BLOCKS));
                    tryd!(&path, blocks.insert(height, gridlease_types::encode(&*rec).as_slice()));
                    let mut index = tryd!(&path, tx.open_table(TX_INDEX));
                    for (i, r) in rec.receipts.iter().enumerate() {
                        let at = (height, u32::try_from(i).unwrap_or(u32::MAX));
                        tryd!(&path, index.insert(&r.tx_hash.0, at));
                    }
                }
            }
            prof::add(6, t);
            let t = std::time::Instant::now();
            tryd!(&path, tx.commit());
            prof::add(7, t);
            Ok(())
        })();
        match result {
            Ok(()) => {
                let t = std::time::Instant::now();
                self.apply_pending(changes, staged);
                prof::add(8, t);
                self.height = height;
                self.root = root;
                Ok(root)
            }
            Err(e) => {
                self.tree.undo(undo);
                Err(e)
            }
        }
    }

    /// Folds the pending changes into the state and bucket tables and trims the log, in one
    /// durable transaction.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        if self.checkpoint == self.height && self.pending.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let mut tx = tryd!(&path, self.db.begin_write());
        tx.set_durability(Durability::Immediate);
        {
            let mut state = tryd!(&path, tx.open_table(STATE));
            for (k, v) in self.pending.iter() {
                match v {
                    Some(v) => tryd!(&path, state.insert(k.as_slice(), v.as_slice())),
                    None => tryd!(&path, state.remove(k.as_slice())),
                };
            }
            let mut buckets = tryd!(&path, tx.open_table(BUCKETS));
            for (b, entries) in &self.pending_buckets {
                if entries.is_empty() {
                    tryd!(&path, buckets.remove(*b));
                } else {
                    tryd!(&path, buckets.insert(*b, merkle::encode_entries(entries).as_slice()));
                }
            }
            let mut log = tryd!(&path, tx.open_table(LOG));
            tryd!(&path, log.retain_in(..=self.height, |_, _| false));
            let mut meta = tryd!(&path, tx.open_table(META));
            tryd!(&path, meta.insert(META_CHECKPOINT, self.height.to_be_bytes().as_slice()));
        }
        tryd!(&path, tx.commit());
        self.checkpoint = self.height;
        self.recent = std::mem::take(&mut self.pending);
        self.recent_buckets = std::mem::take(&mut self.pending_buckets);
        Ok(())
    }

    /// A snapshot of the committed state for executing the next block or answering queries.
    pub fn view(&self) -> Result<StoreView, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let table = tryd!(&self.path, tx.open_table(STATE));
        Ok(StoreView { table, pending: self.pending.clone(), recent: self.recent.clone() })
    }

    /// The state root recorded after `height`.
    pub fn root_at(&self, height: Height) -> Result<Option<Hash>, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let roots = tryd!(&self.path, tx.open_table(ROOTS));
        match tryd!(&self.path, roots.get(height)) {
            Some(v) => Ok(Some(hash_from(v.value())?)),
            None => Ok(None),
        }
    }

    /// A committed block.
    pub fn block(&self, height: Height) -> Result<Option<BlockRecord>, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let blocks = tryd!(&self.path, tx.open_table(BLOCKS));
        match tryd!(&self.path, blocks.get(height)) {
            Some(v) => gridlease_types::decode(v.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("block {height}: {e}"))),
            None => Ok(None),
        }
    }

    /// Where a transaction was committed: its block height and index in the block.
    pub fn tx_location(&self, hash: &[u8; 32]) -> Result<Option<(Height, u32)>, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let index = tryd!(&self.path, tx.open_table(TX_INDEX));
        Ok(tryd!(&self.path, index.get(hash)).map(|v| v.value()))
    }

    /// A Merkle proof for `key` at the current root: its bucket's entries and sibling path.
    pub fn prove(&self, key: &[u8]) -> Result<(Vec<merkle::Entry>, Vec<Hash>), StoreError> {
        let b = merkle::bucket_of(&merkle::hash_key(key));
        let entries = match self.pending_buckets.get(&b).or_else(|| self.recent_buckets.get(&b)) {
            Some(e) => e.clone(),
            None => {
                let tx = tryd!(&self.path, self.db.begin_read());
                let buckets = tryd!(&self.path, tx.open_table(BUCKETS));
                match tryd!(&self.path, buckets.get(b)) {
                    Some(v) => merkle::decode_entries(v.value())
                        .ok_or_else(|| StoreError::Corrupt(format!("bucket {b}")))?,
                    None => Vec::new(),
                }
            }
        };
        Ok((entries, self.tree.proof(b)))
    }
}

/// Read-only snapshot of the state: the checkpointed table plus the changes pending over it
/// (and the last checkpoint's writes as a cache in between).
pub struct StoreView {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    pending: Pending,
    recent: Pending,
}

impl std::fmt::Debug for StoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreView({} pending)", self.pending.len())
    }
}

fn view_err(e: impl std::fmt::Display) -> ViewError {
    ViewError::Store(e.to_string())
}

impl StateView for StoreView {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ViewError> {
        if let Some(v) = self.pending.get(key).or_else(|| self.recent.get(key)) {
            return Ok(v.clone());
        }
        Ok(self.table.get(key).map_err(view_err)?.map(|v| v.value().to_vec()))
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<gridlease_ledger::view::Entries, ViewError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for item in self.table.range(start..end).map_err(view_err)? {
            let (k, v) = item.map_err(view_err)?;
            merged.insert(k.value().to_vec(), Some(v.value().to_vec()));
        }
        for layer in [&self.recent, &self.pending] {
            for (k, v) in layer.range(start.to_vec()..end.to_vec()) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }
}
