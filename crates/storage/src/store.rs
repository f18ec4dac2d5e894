//! The redb-backed store: state, Merkle buckets, blocks with their receipts, and roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use borsh::{BorshDeserialize, BorshSerialize};
use gridlease_ledger::{Changes, Genesis, Receipt, StateView, ViewError};
use gridlease_types::Height;
use rayon::prelude::*;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::merkle::{self, Hash, Tree};

const STATE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("state");
const BUCKETS: TableDefinition<'static, u32, &[u8]> = TableDefinition::new("merkle_buckets");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("blocks");
const ROOTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("roots");

const META_HEIGHT: &str = "height";
const META_ROOT: &str = "state_root";
const META_CHAIN_ID: &str = "chain_id";

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
    /// Filled by [`Store::commit_block`].
    pub state_root: Hash,
}

/// The ledger state in redb plus the in-memory Merkle tree over it.
pub struct Store {
    db: Database,
    path: PathBuf,
    tree: Tree,
    height: Height,
    root: Hash,
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

impl Store {
    /// Opens (or creates) the store at `path` and rebuilds the Merkle tree from the buckets.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = tryd!(&path, Database::create(&path));
        {
            let tx = tryd!(&path, db.begin_write());
            tryd!(&path, tx.open_table(STATE));
            tryd!(&path, tx.open_table(BUCKETS));
            tryd!(&path, tx.open_table(META));
            tryd!(&path, tx.open_table(BLOCKS));
            tryd!(&path, tx.open_table(ROOTS));
            tryd!(&path, tx.commit());
        }
        let (height, root, leaves) = {
            let tx = tryd!(&path, db.begin_read());
            let meta = tryd!(&path, tx.open_table(META));
            let height = match tryd!(&path, meta.get(META_HEIGHT)) {
                Some(v) => u64::from_be_bytes(
                    v.value().try_into().map_err(|_| StoreError::Corrupt("height".into()))?,
                ),
                None => 0,
            };
            let root = match tryd!(&path, meta.get(META_ROOT)) {
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
            (height, root, leaves)
        };
        let tree = Tree::build(leaves);
        if let Some(stored) = root.filter(|r| *r != tree.root()) {
            return Err(StoreError::Corrupt(format!(
                "state root {} recorded at height {height} does not match the buckets",
                hex(&stored)
            )));
        }
        let root = tree.root();
        Ok(Store { db, path, tree, height, root })
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
        self.write(0, &changes, None, Some(genesis.chain_id.as_bytes()))
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
        self.write(record.height, changes, Some(record), None)
    }

    fn write(
        &mut self,
        height: Height,
        changes: &Changes,
        record: Option<&mut BlockRecord>,
        chain_id: Option<&[u8]>,
    ) -> Result<Hash, StoreError> {
        let path = self.path.clone();
        let mut tx = tryd!(&path, self.db.begin_write());
        tx.set_durability(Durability::Immediate);
        // Group the changed keys by bucket.
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
        {
            let mut state = tryd!(&path, tx.open_table(STATE));
            for (k, v) in changes {
                match v {
                    Some(v) => tryd!(&path, state.insert(k.as_slice(), v.as_slice())),
                    None => tryd!(&path, state.remove(k.as_slice())),
                };
            }
        }
        let mut leaves = Vec::with_capacity(by_bucket.len());
        {
            let mut buckets = tryd!(&path, tx.open_table(BUCKETS));
            for (b, updates) in by_bucket {
                let mut entries = match tryd!(&path, buckets.get(b)) {
                    Some(v) => merkle::decode_entries(v.value())
                        .ok_or_else(|| StoreError::Corrupt(format!("bucket {b}")))?,
                    None => Vec::new(),
                };
                for (kh, vh) in updates {
                    merkle::upsert(&mut entries, kh, vh);
                }
                let h = merkle::bucket_hash(&entries);
                if entries.is_empty() {
                    tryd!(&path, buckets.remove(b));
                } else {
                    tryd!(&path, buckets.insert(b, merkle::encode_entries(&entries).as_slice()));
                }
                leaves.push((b, h));
            }
        }
        let undo = self.tree.update(&leaves);
        let root = self.tree.root();
        let result = (|| -> Result<(), StoreError> {
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
            Ok(())
        })();
        let committed = result.and_then(|()| tx.commit().map_err(|e| db_err(&path)(e.into())));
        match committed {
            Ok(()) => {
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

    /// A snapshot of the committed state for executing the next block or answering queries.
    pub fn view(&self) -> Result<StoreView, StoreError> {
        let tx = tryd!(&self.path, self.db.begin_read());
        let table = tryd!(&self.path, tx.open_table(STATE));
        Ok(StoreView { table })
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

    /// A Merkle proof for `key` at the current root: its bucket's entries and sibling path.
    pub fn prove(&self, key: &[u8]) -> Result<(Vec<merkle::Entry>, Vec<Hash>), StoreError> {
        let b = merkle::bucket_of(&merkle::hash_key(key));
        let tx = tryd!(&self.path, self.db.begin_read());
        let buckets = tryd!(&self.path, tx.open_table(BUCKETS));
        let entries = match tryd!(&self.path, buckets.get(b)) {
            Some(v) => merkle::decode_entries(v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("bucket {b}")))?,
            None => Vec::new(),
        };
        Ok((entries, self.tree.proof(b)))
    }
}

/// Read-only snapshot of the state table.
pub struct StoreView {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl std::fmt::Debug for StoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreView")
    }
}

fn view_err(e: impl std::fmt::Display) -> ViewError {
    ViewError::Store(e.to_string())
}

impl StateView for StoreView {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ViewError> {
        Ok(self.table.get(key).map_err(view_err)?.map(|v| v.value().to_vec()))
    }

    fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ViewError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.table.range(start..end).map_err(view_err)? {
            let (k, v) = item.map_err(view_err)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
