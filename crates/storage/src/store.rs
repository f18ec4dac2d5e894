//! The redb-backed store, in two files.
//!
//! The chain file (the path given) makes each block durable with one write transaction that
//! appends its changes to a log (`LOG`), its record (`BLOCKS`), its root (`ROOTS`) and the new
//! height and root (`META`). Appends land at the right edge of their B-trees, so a block costs
//! the same few page writes however large the state is. The changes themselves live in memory
//! (`pending`, a persistent ordered map that views snapshot for free) until a checkpoint folds
//! them into the `STATE` and `BUCKETS` tables of the state file (`*.state.redb`), every
//! [`StoreConfig::checkpoint_every`] blocks. A checkpoint rewrites pages all over tables as big
//! as the state, so it runs on its own thread, in the state file's own write transaction, while
//! the next blocks keep committing to the chain file; until it is durable its changes stay a
//! layer that views and the commitment read. The state file records the height it holds, and
//! opening replays the chain file's log past it; the log is trimmed up to that height by the
//! next block's write, so a crash at any moment leaves a state that one replay completes.
//!
//! Nothing a block writes depends on how much state or history there is: the transaction index
//! (`TX_INDEX`, keyed by hash, so its inserts land anywhere in the tree) is folded in at the
//! checkpoint too, and rebuilt for the blocks past it from their records in `BLOCKS` on open.
//! Reads of keys that no recent block wrote go to the `STATE` table once and are then served by
//! a bounded read cache, so a block that rereads the same objects does not walk a deeper B-tree
//! on a bigger chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use borsh::{BorshDeserialize, BorshSerialize};
use gridlease_ledger::{Changes, Genesis, Receipt, StateView, ViewError};
use gridlease_types::Height;
use rayon::prelude::*;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::merkle::{self, Hash, Tree};

// The state file.
const STATE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("state");
const BUCKETS: TableDefinition<'static, u32, &[u8]> = TableDefinition::new("merkle_buckets");
/// Transaction hash -> (height, index in block); the blocks since the checkpoint are only in
/// memory (`Store::pending_tx_index`) and in their records.
const TX_INDEX: TableDefinition<'static, &[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
/// The height the state file's tables hold (`META_CHECKPOINT`).
const STATE_META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("state_meta");

// The chain file.
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
const ROOTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("roots");
const LOG: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("change_log");

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
    #[error(
        "store at {0} was written by an older gridlease that kept the state in the chain file; \
         remove its data directory and sync again"
    )]
    OldLayout(PathBuf),
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
    /// Most keys read from the `STATE` table that the read cache keeps (it starts over when
    /// full).
    pub read_cache_max_keys: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            checkpoint_every: 64,
            checkpoint_max_keys: 1_000_000,
            read_cache_max_keys: 262_144,
        }
    }
}

type Pending = imbl::OrdMap<Vec<u8>, Option<Vec<u8>>>;

/// Transaction hash -> (height, index in block), for the blocks since the checkpoint.
type TxLocations = BTreeMap<[u8; 32], (Height, u32)>;

/// What views read from the `STATE` table, handed to the store's read cache at the next
/// commit. Only reads made under the current checkpoint count: a view of an older table may
/// hold values that a checkpoint has replaced since.
struct TableReads {
    generation: u64,
    reads: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    max: usize,
}

type SharedReads = Arc<Mutex<TableReads>>;

/// The reads are only a cache: one left half-written by a panicking thread is still usable.
fn lock_reads(reads: &Mutex<TableReads>) -> MutexGuard<'_, TableReads> {
    reads.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A changed key as the commitment sees it: its bucket, its hash and its value's (`None`:
/// deleted).
type Update = (u32, Hash, Option<Hash>);

/// New contents of the buckets a block touches, applied once its log record is durable.
type StagedBuckets = BTreeMap<u32, Vec<merkle::Entry>>;

/// A checkpoint on its way into the state file: what it writes, kept readable until it is
/// durable and installed.
struct Fold {
    /// The height it brings the state file to.
    height: Height,
    changes: Pending,
    buckets: Arc<StagedBuckets>,
    tx_index: Arc<TxLocations>,
    /// The thread writing it; `None` when it was written on the caller's thread.
    thread: Option<std::thread::JoinHandle<Result<(), StoreError>>>,
    /// The outcome when it was written on the caller's thread.
    outcome: Option<Result<(), StoreError>>,
}

impl Fold {
    fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(std::thread::JoinHandle::is_finished)
    }

    fn wait(&mut self) -> Result<(), StoreError> {
        match (self.thread.take(), self.outcome.take()) {
            (Some(thread), _) => thread.join().unwrap_or_else(|_| {
                Err(StoreError::Corrupt("the checkpoint thread panicked".into()))
            }),
            (None, Some(outcome)) => outcome,
            (None, None) => Ok(()),
        }
    }
}

/// The ledger state in redb plus the in-memory Merkle tree and pending changes over it.
pub struct Store {
    /// The chain file: blocks, roots, the change log, height and root.
    db: Database,
    /// The state file: state and bucket tables, transaction index, the height they hold.
    state_db: Arc<Database>,
    path: PathBuf,
    state_path: PathBuf,
    config: StoreConfig,
    tree: Tree,
    height: Height,
    root: Hash,
    /// The height the state file holds (durable and installed).
    checkpoint: Height,
    /// Log records up to this height are gone from the chain file.
    log_trimmed: Height,
    /// State changes committed (in the log) since the checkpoint and the fold in flight;
    /// `None` is a deletion.
    pending: Pending,
    /// Bucket contents changed since then.
    pending_buckets: StagedBuckets,
    /// The checkpoint being written by its thread.
    folding: Option<Fold>,
    /// What the last checkpoint folded in, kept as a read cache: the same values as the
    /// tables hold, so reads of recently written keys (the hot set) skip the B-trees.
    recent: Pending,
    recent_buckets: Arc<StagedBuckets>,
    /// Transaction locations of the blocks since the checkpoint (their records hold them too).
    pending_tx_index: TxLocations,
    /// Keys read from the `STATE` table (`None`: absent there) that neither `pending` nor
    /// `recent` holds; valid for the table as of the current checkpoint, which drops the keys
    /// it folds in.
    read_cache: Pending,
    /// Table reads of the views since the last commit, not yet in `read_cache`.
    table_reads: SharedReads,
    /// Checkpoints since opening; names the table version that `table_reads` collects for.
    generation: u64,
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

/// The state root `genesis` leads to at height 0, computed without a store: what
/// [`Store::init_genesis`] returns, so a node can tell whether its store was started from the
/// genesis it is given.
pub fn genesis_root(genesis: &Genesis) -> Hash {
    let mut buckets: std::collections::BTreeMap<u32, Vec<merkle::Entry>> = Default::default();
    for (k, v) in genesis.initial_changes().iter() {
        let kh = merkle::hash_key(k);
        let entries = buckets.entry(merkle::bucket_of(&kh)).or_default();
        merkle::upsert(entries, kh, v.as_deref().map(merkle::hash_key));
    }
    merkle::Tree::build(buckets.iter().map(|(b, e)| (*b, merkle::bucket_hash(e)))).root()
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
        let state_path = state_path_of(&path);
        let db = tryd!(&path, Database::create(&path));
        {
            let tx = tryd!(&path, db.begin_write());
            tryd!(&path, tx.open_table(META));
            tryd!(&path, tx.open_table(BLOCKS));
            tryd!(&path, tx.open_table(ROOTS));
            tryd!(&path, tx.open_table(LOG));
            tryd!(&path, tx.commit());
        }
        let tx = tryd!(&path, db.begin_read());
        let meta = tryd!(&path, tx.open_table(META));
        if tryd!(&path, meta.get(META_CHECKPOINT)).is_some() {
            return Err(StoreError::OldLayout(path));
        }
        let height = match tryd!(&path, meta.get(META_HEIGHT)) {
            Some(v) => height_from(v.value())?,
            None => 0,
        };
        let recorded_root = match tryd!(&path, meta.get(META_ROOT)) {
            Some(v) => Some(hash_from(v.value())?),
            None => None,
        };
        let initialized = tryd!(&path, meta.get(META_CHAIN_ID)).is_some();
        if initialized && !state_path.exists() {
            return Err(StoreError::Corrupt(format!(
                "the state file {} of this chain is missing",
                state_path.display()
            )));
        }
        let state_db = tryd!(&state_path, Database::create(&state_path));
        {
            let tx = tryd!(&state_path, state_db.begin_write());
            tryd!(&state_path, tx.open_table(STATE));
            tryd!(&state_path, tx.open_table(BUCKETS));
            tryd!(&state_path, tx.open_table(TX_INDEX));
            tryd!(&state_path, tx.open_table(STATE_META));
            tryd!(&state_path, tx.commit());
        }
        let stx = tryd!(&state_path, state_db.begin_read());
        let checkpoint = match tryd!(
            &state_path,
            tryd!(&state_path, stx.open_table(STATE_META)).get(META_CHECKPOINT)
        ) {
            Some(v) => height_from(v.value())?,
            None => 0,
        };
        if checkpoint > height {
            return Err(StoreError::Corrupt(format!(
                "the state file holds height {checkpoint} but the chain ends at {height}"
            )));
        }
        let buckets = tryd!(&state_path, stx.open_table(BUCKETS));
        let mut leaves = Vec::with_capacity(tryd!(&state_path, buckets.len()) as usize);
        for item in tryd!(&state_path, buckets.range::<u32>(..)) {
            let (k, v) = tryd!(&state_path, item);
            let entries = merkle::decode_entries(v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("bucket {}", k.value())))?;
            leaves.push((k.value(), merkle::bucket_hash(&entries)));
        }
        let mut store = Store {
            tree: Tree::build(leaves),
            db,
            state_db: Arc::new(state_db),
            path: path.clone(),
            state_path: state_path.clone(),
            config,
            height: checkpoint,
            root: [0; 32],
            checkpoint,
            // Records at or below the checkpoint that a crash left behind go with the next block.
            log_trimmed: 0,
            pending: Pending::new(),
            pending_buckets: StagedBuckets::new(),
            folding: None,
            recent: Pending::new(),
            recent_buckets: Arc::new(StagedBuckets::new()),
            pending_tx_index: TxLocations::new(),
            read_cache: Pending::new(),
            table_reads: Arc::new(Mutex::new(TableReads {
                generation: 0,
                reads: Vec::new(),
                max: config.read_cache_max_keys,
            })),
            generation: 0,
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
        // The index of the blocks past the checkpoint is folded in at the next one.
        let blocks = tryd!(&path, tx.open_table(BLOCKS));
        for item in tryd!(&path, blocks.range(checkpoint + 1..)) {
            let (h, v) = tryd!(&path, item);
            let record: BlockRecord = gridlease_types::decode(v.value())
                .map_err(|e| StoreError::Corrupt(format!("block {}: {e}", h.value())))?;
            store.pending_tx_index.extend(tx_locations(&record));
        }
        drop((blocks, log, buckets, stx, meta, tx));
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

    /// The chain id genesis was applied with (`None`: an empty store).
    pub fn chain_id(&self) -> Result<Option<String>, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let meta = tryd!(&self.path, tx.open_table(META));
        Ok(tryd!(&self.path, meta.get(META_CHAIN_ID))
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// Whether genesis has been applied.
    pub fn is_initialized(&self) -> Result<bool, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let meta = tryd!(&self.path, tx.open_table(META));
        Ok(tryd!(&self.path, meta.get(META_CHAIN_ID)).is_some())
    }

    /// Writes the genesis state at height 0; returns its state root, the one
    /// [`genesis_root`] computes.
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
        // A checkpoint that failed puts its changes back and fails this commit, before the
        // block is written: the caller may retry it.
        self.finish_fold(false)?;
        self.absorb_table_reads();
        let root = self.write(record.height, changes, Some(record), None)?;
        let since = self.folding.as_ref().map_or(self.checkpoint, |f| f.height);
        let too_many = self.pending.len() >= self.config.checkpoint_max_keys;
        if self.height - since >= u64::from(self.config.checkpoint_every) || too_many {
            // One checkpoint at a time: a due one waits for the one in flight only when the
            // changes in memory have reached their bound, else it starts after a later block.
            if too_many {
                self.finish_fold(true)?;
            }
            if self.folding.is_none() {
                self.start_fold();
            }
        }
        Ok(root)
    }

    /// New contents and leaf hashes of the buckets that `changes` touch.
    fn stage_buckets(
        &self,
        changes: &Changes,
        buckets: &(impl ReadableTable<u32, &'static [u8]> + Sync),
    ) -> Result<(Vec<(u32, Hash)>, StagedBuckets), StoreError> {
        let pairs: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = changes.iter().collect();
        let mut hashed: Vec<Update> = pairs
            .par_iter()
            .with_min_len(256)
            .map(|(k, v)| {
                let kh = merkle::hash_key(k);
                (merkle::bucket_of(&kh), kh, v.as_deref().map(merkle::hash_key))
            })
            .collect();
        hashed.sort_unstable_by_key(|u| u.0);
        let chunks: Vec<&[Update]> = hashed.chunk_by(|a, b| a.0 == b.0).collect();
        // A bucket's current contents come from memory when a block since the checkpoint before
        // last touched it, else from the table (read on all cores: on a big chain most buckets
        // are not empty, and each read walks down a B-tree).
        let new: Vec<(u32, Hash, Vec<merkle::Entry>)> = chunks
            .into_par_iter()
            .with_min_len(64)
            .map(|updates| {
                let b = updates[0].0;
                let cached = self.cached_bucket(b);
                let mut entries = match cached {
                    Some(e) => e.clone(),
                    None => match tryd!(&self.state_path, buckets.get(b)) {
                        Some(v) => merkle::decode_entries(v.value())
                            .ok_or_else(|| StoreError::Corrupt(format!("bucket {b}")))?,
                        None => Vec::new(),
                    },
                };
                for &(_, kh, vh) in updates {
                    merkle::upsert(&mut entries, kh, vh);
                }
                Ok((b, merkle::bucket_hash(&entries), entries))
            })
            .collect::<Result<_, StoreError>>()?;
        let leaves = new.iter().map(|(b, h, _)| (*b, *h)).collect();
        let staged = new.into_iter().map(|(b, _, e)| (b, e)).collect();
        Ok((leaves, staged))
    }

    /// A bucket's contents when a block since the checkpoint before last touched it.
    fn cached_bucket(&self, b: u32) -> Option<&Vec<merkle::Entry>> {
        self.pending_buckets
            .get(&b)
            .or_else(|| self.folding.as_ref().and_then(|f| f.buckets.get(&b)))
            .or_else(|| self.recent_buckets.get(&b))
    }

    /// Moves what views read from the table into the read cache.
    fn absorb_table_reads(&mut self) {
        let reads = std::mem::take(&mut lock_reads(&self.table_reads).reads);
        if reads.is_empty() {
            return;
        }
        if self.read_cache.len() + reads.len() > self.config.read_cache_max_keys {
            self.read_cache = Pending::new();
        }
        for (k, v) in reads {
            // A key written since the checkpoint is served by `pending` and dropped from the
            // cache when the checkpoint folds it in.
            if !self.pending.contains_key(&k) {
                self.read_cache.insert(k, v);
            }
        }
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
        let (leaves, staged) = {
            let rtx = tryd!(&self.state_path, self.state_db.begin_read());
            let buckets = tryd!(&self.state_path, rtx.open_table(BUCKETS));
            self.stage_buckets(changes, &buckets)?
        };
        let undo = self.tree.update(&leaves);
        let root = self.tree.root();
        let locations: Option<Vec<_>> = record.as_deref().map(|r| tx_locations(r).collect());
        let log_bytes = gridlease_types::encode(&LogRecord {
            changes: changes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
        let result = (|| -> Result<(), StoreError> {
            let mut tx = tryd!(&path, self.db.begin_write());
            tx.set_durability(Durability::Immediate);
            {
                let mut log = tryd!(&path, tx.open_table(LOG));
                if self.log_trimmed < self.checkpoint {
                    tryd!(&path, log.retain_in(..=self.checkpoint, |_, _| false));
                }
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
                }
            }
            tryd!(&path, tx.commit());
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.log_trimmed = self.checkpoint;
                self.apply_pending(changes, staged);
                self.pending_tx_index.extend(locations.into_iter().flatten());
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

    /// Folds the pending changes into the state file and waits until that is durable (the log
    /// is trimmed by the next block). Blocks call this on their own when it is due, without
    /// waiting.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.finish_fold(true)?;
        if self.checkpoint == self.height && self.pending.is_empty() {
            return Ok(());
        }
        self.start_fold();
        self.finish_fold(true)
    }

    /// Hands the pending changes to a thread that writes them into the state file; they stay
    /// readable as the fold's layer until [`Store::finish_fold`] installs it.
    fn start_fold(&mut self) {
        debug_assert!(self.folding.is_none(), "one checkpoint at a time");
        let changes = std::mem::take(&mut self.pending);
        let buckets = Arc::new(std::mem::take(&mut self.pending_buckets));
        let tx_index = Arc::new(std::mem::take(&mut self.pending_tx_index));
        let height = self.height;
        let job = {
            let (db, path) = (Arc::clone(&self.state_db), self.state_path.clone());
            let (changes, buckets, tx_index) =
                (changes.clone(), Arc::clone(&buckets), Arc::clone(&tx_index));
            move || write_fold(&db, &path, height, &changes, &buckets, &tx_index)
        };
        // Without a thread (none could be started) the fold is written here and now.
        let (thread, outcome) =
            match std::thread::Builder::new().name("state-checkpoint".into()).spawn(job.clone()) {
                Ok(thread) => (Some(thread), None),
                Err(_) => (None, Some(job())),
            };
        self.folding = Some(Fold { height, changes, buckets, tx_index, thread, outcome });
    }

    /// Installs the fold in flight once it is durable (`wait`: waits for it). A fold that failed
    /// puts its changes back under the pending ones and returns its error.
    fn finish_fold(&mut self, wait: bool) -> Result<(), StoreError> {
        let Some(mut fold) = self.folding.take_if(|f| wait || f.is_finished()) else {
            return Ok(());
        };
        if let Err(e) = fold.wait() {
            let changes = std::mem::take(&mut self.pending);
            self.pending = changes.union(fold.changes);
            for (b, entries) in fold.buckets.iter() {
                self.pending_buckets.entry(*b).or_insert_with(|| entries.clone());
            }
            for (hash, at) in fold.tx_index.iter() {
                self.pending_tx_index.entry(*hash).or_insert(*at);
            }
            return Err(e);
        }
        self.checkpoint = fold.height;
        // The table changed: cached reads of the keys folded in are stale, and so is whatever
        // views of the old table read since the last commit.
        if !self.read_cache.is_empty() {
            for k in fold.changes.keys() {
                self.read_cache.remove(k);
            }
        }
        self.generation += 1;
        {
            let mut reads = lock_reads(&self.table_reads);
            reads.generation = self.generation;
            reads.reads.clear();
        }
        self.recent = fold.changes;
        self.recent_buckets = fold.buckets;
        Ok(())
    }

    /// A snapshot of the committed state for executing the next block or answering queries.
    pub fn view(&self) -> Result<StoreView, StoreError> {
        let tx = tryd!(&self.state_path, self.state_db.begin_read());
        let table = tryd!(&self.state_path, tx.open_table(STATE));
        Ok(StoreView {
            table,
            pending: self.pending.clone(),
            folding: self.folding.as_ref().map(|f| f.changes.clone()).unwrap_or_default(),
            recent: self.recent.clone(),
            cached: self.read_cache.clone(),
            table_reads: Arc::clone(&self.table_reads),
            generation: self.generation,
        })
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
        let folding = self.folding.as_ref().and_then(|f| f.tx_index.get(hash));
        if let Some(at) = self.pending_tx_index.get(hash).or(folding) {
            return Ok(Some(*at));
        }
        let tx = tryd!(&self.state_path, self.state_db.begin_read());
        let index = tryd!(&self.state_path, tx.open_table(TX_INDEX));
        Ok(tryd!(&self.state_path, index.get(hash)).map(|v| v.value()))
    }

    /// A Merkle proof for `key` at the current root: its bucket's entries and sibling path.
    pub fn prove(&self, key: &[u8]) -> Result<(Vec<merkle::Entry>, Vec<Hash>), StoreError> {
        let b = merkle::bucket_of(&merkle::hash_key(key));
        let entries = match self.cached_bucket(b) {
            Some(e) => e.clone(),
            None => {
                let tx = tryd!(&self.state_path, self.state_db.begin_read());
                let buckets = tryd!(&self.state_path, tx.open_table(BUCKETS));
                match tryd!(&self.state_path, buckets.get(b)) {
                    Some(v) => merkle::decode_entries(v.value())
                        .ok_or_else(|| StoreError::Corrupt(format!("bucket {b}")))?,
                    None => Vec::new(),
                }
            }
        };
        Ok((entries, self.tree.proof(b)))
    }
}

impl Drop for Store {
    /// Waits for a checkpoint in flight, so that the files are closed when the store is gone
    /// (a store opened again at once would otherwise find them still open). Its outcome does
    /// not matter here: opening replays whatever it did not make durable.
    fn drop(&mut self) {
        if let Some(mut fold) = self.folding.take() {
            let _ = fold.wait();
        }
    }
}

/// The state file that goes with the chain file at `path`: `chain.redb` -> `chain.state.redb`.
pub fn state_path_of(path: &Path) -> PathBuf {
    path.with_extension("state.redb")
}

/// Writes a checkpoint into the state file in one durable transaction.
fn write_fold(
    db: &Database,
    path: &Path,
    height: Height,
    changes: &Pending,
    buckets: &StagedBuckets,
    tx_index: &TxLocations,
) -> Result<(), StoreError> {
    let mut tx = tryd!(path, db.begin_write());
    tx.set_durability(Durability::Immediate);
    {
        let mut state = tryd!(path, tx.open_table(STATE));
        for (k, v) in changes.iter() {
            match v {
                Some(v) => tryd!(path, state.insert(k.as_slice(), v.as_slice())),
                None => tryd!(path, state.remove(k.as_slice())),
            };
        }
        let mut table = tryd!(path, tx.open_table(BUCKETS));
        for (b, entries) in buckets {
            if entries.is_empty() {
                tryd!(path, table.remove(*b));
            } else {
                tryd!(path, table.insert(*b, merkle::encode_entries(entries).as_slice()));
            }
        }
        let mut index = tryd!(path, tx.open_table(TX_INDEX));
        for (hash, at) in tx_index {
            tryd!(path, index.insert(hash, *at));
        }
        let mut meta = tryd!(path, tx.open_table(STATE_META));
        tryd!(path, meta.insert(META_CHECKPOINT, height.to_be_bytes().as_slice()));
    }
    tryd!(path, tx.commit());
    Ok(())
}

/// Where each transaction of a block landed.
fn tx_locations(record: &BlockRecord) -> impl Iterator<Item = ([u8; 32], (Height, u32))> + '_ {
    record
        .receipts
        .iter()
        .enumerate()
        .map(|(i, r)| (r.tx_hash.0, (record.height, u32::try_from(i).unwrap_or(u32::MAX))))
}

/// Read-only snapshot of the state: the checkpointed table plus the changes pending over it
/// (and, in between, the last checkpoint's writes and the table reads cached since, which hold
/// the same values as the table).
pub struct StoreView {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    pending: Pending,
    /// The changes of the checkpoint in flight (empty when none is).
    folding: Pending,
    recent: Pending,
    cached: Pending,
    table_reads: SharedReads,
    /// The checkpoint this view's table belongs to.
    generation: u64,
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
        let layers = [&self.pending, &self.folding, &self.recent, &self.cached];
        if let Some(v) = layers.into_iter().find_map(|layer| layer.get(key)) {
            return Ok(v.clone());
        }
        let value = self.table.get(key).map_err(view_err)?.map(|v| v.value().to_vec());
        let mut reads = lock_reads(&self.table_reads);
        if reads.generation == self.generation && reads.reads.len() < reads.max {
            reads.reads.push((key.to_vec(), value.clone()));
        }
        Ok(value)
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
        for layer in [&self.recent, &self.folding, &self.pending] {
            for (k, v) in layer.range(start.to_vec()..end.to_vec()) {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// Merges the table and the in-memory layers lazily and stops after `limit` live entries,
    /// so a page of a large range reads O(limit) keys (plus the deletions it skips).
    fn range_page(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<gridlease_ledger::view::Entries, ViewError> {
        type Source<'a> =
            Box<dyn Iterator<Item = Result<(Vec<u8>, Option<Vec<u8>>), ViewError>> + 'a>;
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        fn layer<'a>(l: &'a Pending, start: &[u8], end: &[u8]) -> Source<'a> {
            Box::new(l.range(start.to_vec()..end.to_vec()).map(|(k, v)| Ok((k.clone(), v.clone()))))
        }
        let table: Source<'_> =
            Box::new(self.table.range(start..end).map_err(view_err)?.map(|item| {
                let (k, v) = item.map_err(view_err)?;
                Ok((k.value().to_vec(), Some(v.value().to_vec())))
            }));
        // Highest priority first: a key in `pending` hides the same key further down.
        let mut sources: Vec<std::iter::Peekable<Source<'_>>> = vec![
            layer(&self.pending, start, end).peekable(),
            layer(&self.folding, start, end).peekable(),
            layer(&self.recent, start, end).peekable(),
            table.peekable(),
        ];
        let mut out = Vec::new();
        while out.len() < limit {
            let mut least: Option<Vec<u8>> = None;
            for s in &mut sources {
                match s.peek() {
                    Some(Ok((k, _))) if least.as_ref().is_none_or(|l| k < l) => {
                        least = Some(k.clone());
                    }
                    Some(Err(_)) => {
                        if let Some(Err(e)) = s.next() {
                            return Err(e);
                        }
                    }
                    _ => {}
                }
            }
            let Some(key) = least else { break };
            let mut value = None;
            let mut found = false;
            for s in &mut sources {
                if matches!(s.peek(), Some(Ok((k, _))) if *k == key)
                    && let Some(Ok((_, v))) = s.next()
                    && !found
                {
                    value = v;
                    found = true;
                }
            }
            if let Some(v) = value {
                out.push((key, v));
            }
        }
        Ok(out)
    }
}
