//! The node's home directory: validator key, genesis and config, written by `init`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use gridlease_ledger::{Genesis, GenesisBalance, Params};
use gridlease_types::{Address, Coin, Keypair};
use serde::{Deserialize, Serialize};

/// `config.json` in the home directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeConfig {
    pub moniker: String,
    pub rpc_addr: SocketAddr,
    pub p2p_addr: SocketAddr,
    /// Target time between blocks, milliseconds.
    pub block_time_ms: u64,
    #[serde(default)]
    pub persistent_peers: Vec<SocketAddr>,
    /// Mempool limits (see `MempoolLimits` for each field and its default).
    #[serde(default)]
    pub mempool: crate::mempool::MempoolLimits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            moniker: "validator-0".into(),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 26657)),
            p2p_addr: SocketAddr::from(([127, 0, 0, 1], 26656)),
            block_time_ms: 1000,
            persistent_peers: Vec::new(),
            mempool: crate::mempool::MempoolLimits::default(),
        }
    }
}

/// `validator_key.json`: the validator's ed25519 secret.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    address: Address,
    secret_hex: String,
}

#[derive(Debug)]
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Home { dir: dir.into() }
    }
    pub fn genesis_path(&self) -> PathBuf {
        self.dir.join("genesis.json")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("validator_key.json")
    }
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("data").join("chain.redb")
    }
    pub fn consensus_dir(&self) -> PathBuf {
        self.dir.join("data").join("consensus")
    }

    /// Creates a new home: a fresh validator key from `entropy`, a genesis that funds the
    /// validator and `funded`, and the default config; `bid_window` overrides the devnet
    /// parameter.
    pub fn init(
        &self,
        chain_id: &str,
        entropy: [u8; 32],
        funded: &[(Address, Vec<Coin>)],
        bid_window: Option<u64>,
    ) -> anyhow::Result<Address> {
        if self.genesis_path().exists() {
            bail!("{} already holds a node: pick another --home or delete it", self.dir.display());
        }
        std::fs::create_dir_all(self.dir.join("data"))
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let key = Keypair::from_secret(entropy);
        let address = key.address();
        let mut params = Params::devnet();
        if let Some(w) = bid_window {
            params.bid_window = w;
        }
        let mut balances = vec![GenesisBalance {
            address,
            coins: vec![Coin::new(1_000_000_000_000, &params.native_denom)],
        }];
        for (a, coins) in funded {
            if *a == address {
                continue;
            }
            balances.push(GenesisBalance { address: *a, coins: coins.clone() });
        }
        let genesis = Genesis { chain_id: chain_id.into(), genesis_time_ms: 0, params, balances };
        genesis.validate().context("the generated genesis is invalid")?;
        std::fs::write(self.genesis_path(), genesis.to_json())?;
        let file = KeyFile { address, secret_hex: crate::hex(&key.secret_bytes()) };
        write_private(&self.key_path(), &serde_json::to_string_pretty(&file)?)?;
        std::fs::write(self.config_path(), serde_json::to_string_pretty(&NodeConfig::default())?)?;
        Ok(address)
    }

    pub fn load_genesis(&self) -> anyhow::Result<Genesis> {
        let text = read(&self.genesis_path())?;
        Genesis::from_json(&text).with_context(|| format!("in {}", self.genesis_path().display()))
    }

    pub fn load_config(&self) -> anyhow::Result<NodeConfig> {
        let text = read(&self.config_path())?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid config", self.config_path().display()))
    }

    pub fn load_key(&self) -> anyhow::Result<[u8; 32]> {
        let text = read(&self.key_path())?;
        let file: KeyFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid key file", self.key_path().display()))?;
        let bytes =
            crate::unhex(&file.secret_hex).filter(|b| b.len() == 32).with_context(|| {
                format!("{}: secret_hex must be 64 hex digits", self.key_path().display())
            })?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(out)
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!("cannot read {}: run `gridlease-node init --home DIR` first", path.display())
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
