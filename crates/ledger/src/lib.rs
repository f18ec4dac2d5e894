//! The pure, deterministic state machine of the gridlease marketplace: bank, provider, audit,
//! cert, deployment, market, escrow and staking, executed block by block against a read-only state view.
//!
//! `execute(view, block, txs)` returns the block's changes, events and receipts and writes
//! nothing; the `storage` crate commits them. No I/O, clock, randomness or async here: the
//! crate builds for `wasm32-unknown-unknown`, which CI checks.
#![forbid(unsafe_code)]

pub mod exec;
pub mod genesis;
pub mod invariants;
pub mod keyspace;
mod modules;
pub mod query;
pub use gridlease_types::receipt;
pub use gridlease_types::state;
pub mod view;

pub use exec::{BlockContext, BlockOutput, ExecError, execute};
pub use genesis::{Genesis, GenesisBalance, GenesisError, GenesisValidator, Params};
pub use modules::{MAX_MONIKER, bonded_pool, choose_active, power_of};
pub use receipt::{BeginBlockItem, Event, Receipt, ReceiptCode};
pub use view::{Changes, MemState, StateView, ViewError};
