//! The provider daemon: inventory, bid engine, mTLS manifest service, runtime drivers and the
//! lease lifecycle. The `gridlease provider ...` commands front it.
#![forbid(unsafe_code)]

pub mod api;
pub mod api_client;
pub mod bidengine;
pub mod book;
pub mod config;
pub mod daemon;
pub mod driver;
pub mod durable_file;
pub mod error;
pub mod home;
pub mod inventory;
pub mod lease_handle;
pub mod leased;
pub mod leases;
pub mod manifest;
pub mod pricing;
pub mod reserve;
pub mod server;
pub mod state;
pub mod tls;
