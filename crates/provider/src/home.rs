//! The provider's home directory: `provider.toml`, the account key (`keys/provider.json`, in
//! the CLI's encrypted keystore: this crate never reads it, the daemon is handed the unlocked
//! key), the TLS certificate of the manifest service (`tls/`), and the daemon's state
//! (`state/`: holds and one record per lease, `exec/`: the exec driver's replicas).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::tls::CertBundle;

/// Paths inside a provider home.
#[derive(Clone, Debug)]
pub struct Home {
    pub dir: PathBuf,
}

/// Writes `text` to `path` readable by the owner only, atomically and durably.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
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

    pub fn save_tls(&self, bundle: &CertBundle) -> anyhow::Result<()> {
        let dir = self.tls_dir();
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cert.pem"), &bundle.cert_pem)?;
        std::fs::write(dir.join("pubkey.pem"), &bundle.pubkey_pem)?;
        write_private(&dir.join("key.pem"), &bundle.key_pem)
    }

    pub fn load_tls(&self) -> anyhow::Result<CertBundle> {
        let dir = self.tls_dir();
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .with_context(|| format!("cannot read {}", dir.join(name).display()))
        };
        Ok(CertBundle {
            cert_pem: read("cert.pem")?,
            key_pem: read("key.pem")?,
            pubkey_pem: read("pubkey.pem")?,
        })
    }
}
