//! Shared chain types of gridlease: addresses, keys, amounts, resources, transactions and the
//! one canonical binary encoding they are hashed and signed in.
//!
//! This crate is pure: no I/O, no clock, no randomness, no async. It builds for
//! `wasm32-unknown-unknown`, which CI checks.
#![forbid(unsafe_code)]

/// `name()` (the variant's name as serde writes it, `snake_case`) and `Display` for a fieldless
/// enum, from one table; a test in `rpc-types` checks the table against serde.
macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name as it goes on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub mod address;
pub mod amount;
pub mod attributes;
pub mod encoding;
pub mod hex;
pub mod ids;
pub mod keys;
pub mod msg;
pub mod params;
pub mod receipt;
pub mod resources;
#[cfg(feature = "schema")]
mod schema;
pub mod state;
pub mod tx;

pub use address::{Address, AddressError};
pub use amount::{AmountError, Coin, DecAmount, DecCoin, Denom};
pub use attributes::{Attribute, PlacementRequirements, SignedBy};
pub use encoding::{DecodeError, decode, encode};
pub use ids::{BadOrderId, BidId, DeploymentId, GroupId, LeaseId, OrderId};
pub use keys::{KeyError, Keypair, PublicKey, Signature};
pub use msg::Msg;
pub use resources::{
    BidPolicy, Endpoint, EndpointKind, GpuOffer, GpuRequirement, GpuSpec, GroupSpec, InvalidGroup,
    ResourceOffer, ResourceUnit, Resources, Sla, StorageVolume,
};
pub use tx::{CheckedTx, Tx, TxBody, TxCheckError, TxHash, VerifiedTx};

/// Block height. Genesis state is height 0; the first block is height 1.
pub type Height = u64;
