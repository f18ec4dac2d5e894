//! The provider's home directory: `provider.toml`, the account key (`keys/provider.json`, in
//! the CLI's encrypted keystore), the TLS certificate of the manifest service (`tls/`: the
//! certificate and public key in clear, the private key sealed like the account key), and the
//! daemon's state (`state/`: holds and one record per lease, `daemon.json` while it runs,
//! `exec/`: the exec driver's replicas). This crate never reads a sealed secret: the CLI
//! opens them and hands the daemon the account key and the whole certificate.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ProviderError;
use crate::tls::CertBundle;

/// What a running daemon says of itself in `state/daemon.json` once it serves: the file is
/// how supervisors (the devnet, scripts) learn it is ready, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// The daemon's process id.
    pub pid: u32,
    /// The provider's account.
    pub address: gridlease_types::Address,
    /// Where the manifest service listens (`HOST:PORT`).
    pub listen: String,
}

/// Paths inside a provider home.
#[derive(Clone, Debug)]
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    pub fn new(dir: &Path) -> Home {
        Home { dir: dir.to_path_buf() }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("provider.toml")
    }

    /// Where homes made before the encrypted keystore kept the key's mnemonic in clear.
    pub fn clear_key_path(&self) -> PathBuf {
        self.dir.join("key.json")
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn exec_dir(&self) -> PathBuf {
        self.dir.join("exec")
    }

    pub fn running_path(&self) -> PathBuf {
        self.state_dir().join("daemon.json")
    }

    /// The running daemon's own account of itself, if a daemon wrote one (it may have died
    /// since: compare `pid`).
    pub fn running(&self) -> Option<Running> {
        serde_json::from_slice(&std::fs::read(self.running_path()).ok()?).ok()
    }

    /// The sealed private key of the manifest service's certificate (sealed and opened by
    /// the CLI, under the provider key's passphrase, as the account key is).
    pub fn tls_key_path(&self) -> PathBuf {
        self.tls_dir().join("key.json")
    }

    /// Where homes made before sealing kept that key in clear (sealed at the next start).
    pub fn clear_tls_key_path(&self) -> PathBuf {
        self.tls_dir().join("key.pem")
    }

    /// Writes the public half of the manifest service's certificate: the certificate and its
    /// public key.
    pub fn save_certificate(&self, bundle: &CertBundle) -> Result<(), ProviderError> {
        let dir = self.tls_dir();
        std::fs::create_dir_all(&dir).map_err(ProviderError::io("create", &dir))?;
        for (name, text) in [("cert.pem", &bundle.cert_pem), ("pubkey.pem", &bundle.pubkey_pem)] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(ProviderError::io("write", &path))?;
        }
        Ok(())
    }

    /// The manifest service's certificate and public key (PEM), without the private key.
    pub fn load_certificate(&self) -> Result<CertBundle, ProviderError> {
        let dir = self.tls_dir();
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(ProviderError::io("read", &path))
        };
        Ok(CertBundle {
            cert_pem: read("cert.pem")?,
            key_pem: String::new(),
            pubkey_pem: read("pubkey.pem")?,
        })
    }
}
