//! `ProviderError`: why the provider daemon, or one of its steps, cannot go on. Each variant
//! is one cause in one sentence, so the CLI maps it to an exit code without reading words
//! (`is_unreachable`).

use std::path::PathBuf;

use gridlease_client::ClientError;
use gridlease_types::Address;

use crate::book::RecordsUnreadable;
use crate::config::ConfigError;
use crate::driver::DriverError;
use crate::durable_file::DurableWriteError;
use crate::inventory::InventoryError;
use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach the node at {node}: {source}")]
    NodeUnreachable {
        node: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Chain(#[from] ClientError),
    #[error("{0} is not a registered provider: run `gridlease provider register` first")]
    NotRegistered(Address),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Runtime(#[from] DriverError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Records(#[from] RecordsUnreadable),
    #[error(transparent)]
    Durable(#[from] DurableWriteError),
    #[error(
        "{} cannot be read ({why}): without it this provider could promise the resources of \
         its running leases twice; restore it, or delete it to start without holds",
        path.display()
    )]
    HoldsUnreadable { path: PathBuf, why: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch for the stop signal: {0}")]
    Signal(#[source] std::io::Error),
    #[error("transaction {0} was not committed in time")]
    NotCommitted(String),
    #[error("the node kept refusing the account sequence")]
    SequenceRefused,
    #[error("the manifest service stopped: {0}")]
    ServiceStopped(String),
}

impl ProviderError {
    /// Whether the node could not be reached at all (the CLI's exit code 3).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ProviderError::NodeUnreachable { .. }
                | ProviderError::Chain(ClientError::Unreachable { .. })
        )
    }

    /// An I/O failure on `path` while trying to `action` it.
    pub fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> ProviderError {
        let path = path.to_path_buf();
        move |source| ProviderError::Io { action, path, source }
    }
}
