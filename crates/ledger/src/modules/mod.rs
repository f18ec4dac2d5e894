//! The ledger's modules, each an `impl Ctx` block over its own keys.

mod audit;
mod bank;
mod cert;
mod deployment;
mod escrow;
mod health;
mod market;
mod provider;
mod staking;

pub(crate) use audit::validate_attributes;
pub use staking::{MAX_MONIKER, bonded_pool, choose_active, power_of};
