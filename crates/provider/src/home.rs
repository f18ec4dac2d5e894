//! The provider's home directory: `provider.toml`, the account key (`keys/provider.json`, in
//! the CLI's encrypted keystore: this crate never reads it, the daemon is handed the unlocked
//! key), the TLS certificate of the manifest service (`tls/`), and the daemon's state
//! (`state/`: holds and one record per lease, `exec/`: the exec driver's replicas).

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

/// Writes `text` to `path` readable by the owner only, atomically and durably.
pub fn write_private(path: &Path, text: &str) -> Result<(), ProviderError> {
    Ok(crate::durable_file::write_durably(path, text.as_bytes(), 0o600)?)
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

    pub fn save_tls(&self, bundle: &CertBundle) -> Result<(), ProviderError> {
        let dir = self.tls_dir();
        std::fs::create_dir_all(&dir).map_err(ProviderError::io("create", &dir))?;
        for (name, text) in [("cert.pem", &bundle.cert_pem), ("pubkey.pem", &bundle.pubkey_pem)] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(ProviderError::io("write", &path))?;
        }
        write_private(&dir.join("key.pem"), &bundle.key_pem)
    }

    pub fn load_tls(&self) -> Result<CertBundle, ProviderError> {
        let dir = self.tls_dir();
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(ProviderError::io("read", &path))
        };
        Ok(CertBundle {
            cert_pem: read("cert.pem")?,
            key_pem: read("key.pem")?,
            pubkey_pem: read("pubkey.pem")?,
        })
    }
}
