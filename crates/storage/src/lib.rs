//! Commits ledger blocks to an embedded redb database, one fsynced write transaction per
//! block, and keeps the Merkle state root (see [`merkle`]). After a crash the store reopens at
//! its last committed block with the same root.
#![forbid(unsafe_code)]

mod block;
pub mod merkle;
mod store;

pub use block::{BlockError, CheckedTxs, CommitInfo, check_txs, check_txs_except};
pub use store::{
    BlockRecord, Store, StoreConfig, StoreError, StoreView, genesis_root, state_path_of,
};
