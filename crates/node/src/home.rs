//! The node's home directory: validator key, node (P2P) key, genesis and config, written by
//! `init`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use gridlease_ledger::{Genesis, GenesisBalance, GenesisValidator, Params};
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
    /// How long a validator waits for round 0's proposal before prevoting nil, milliseconds
    /// (later rounds wait longer). Raise it on slow links; a value far below the network's
    /// latency makes this validator vote nil on most heights.
    #[serde(default = "default_propose_timeout_ms")]
    pub propose_timeout_ms: u64,
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
            propose_timeout_ms: default_propose_timeout_ms(),
            persistent_peers: Vec::new(),
            mempool: crate::mempool::MempoolLimits::default(),
        }
    }
}

fn default_propose_timeout_ms() -> u64 {
    3000
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
    /// `node_key.json`: the node's P2P identity, separate from the validator key.
    pub fn node_key_path(&self) -> PathBuf {
        self.dir.join("node_key.json")
    }
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("data").join("chain.redb")
    }
    pub fn consensus_dir(&self) -> PathBuf {
        self.dir.join("data").join("consensus")
    }

    /// Creates a new home for a one-validator chain: a fresh validator key from `entropy`, a
    /// genesis that funds the validator and `funded` and bonds the validator's stake, and the
    /// default config; `bid_window` overrides the devnet parameter.
    pub fn init(
        &self,
        chain_id: &str,
        entropy: [u8; 32],
        funded: &[(Address, Vec<Coin>)],
        bid_window: Option<u64>,
    ) -> anyhow::Result<Address> {
        let key = Keypair::from_secret(entropy);
        let genesis = genesis_for(chain_id, &[&key], funded, bid_window)?;
        self.write(&genesis, &key, &NodeConfig::default())?;
        Ok(key.address())
    }

    /// Writes a home: genesis, validator key (owner-only) and config. Refuses a directory that
    /// already holds a node.
    pub fn write(
        &self,
        genesis: &Genesis,
        key: &Keypair,
        config: &NodeConfig,
    ) -> anyhow::Result<()> {
        if self.genesis_path().exists() {
            bail!("{} already holds a node: pick another --home or delete it", self.dir.display());
        }
        std::fs::create_dir_all(self.dir.join("data"))
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        std::fs::write(self.genesis_path(), genesis.to_json())?;
        let file = KeyFile { address: key.address(), secret_hex: crate::hex(&key.secret_bytes()) };
        write_private(&self.key_path(), &serde_json::to_string_pretty(&file)?)?;
        self.node_key()?;
        std::fs::write(self.config_path(), serde_json::to_string_pretty(config)?)?;
        Ok(())
    }

    /// The node's P2P identity: read from `node_key.json`, or drawn from the OS and written
    /// there (owner-only) when the home has none yet (homes written before node keys existed
    /// get one on their next start; their peer id changes once).
    pub fn node_key(&self) -> anyhow::Result<[u8; 32]> {
        let path = self.node_key_path();
        if !path.exists() {
            let secret = os_entropy()?;
            let file = NodeKeyFile { secret_hex: crate::hex(&secret) };
            write_private(&path, &serde_json::to_string_pretty(&file)?)?;
            return Ok(secret);
        }
        let text = read(&path)?;
        let file: NodeKeyFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid node key file", path.display()))?;
        secret_32(&file.secret_hex)
            .with_context(|| format!("{}: secret_hex must be 64 hex digits", path.display()))
    }

    pub fn load_genesis(&self) -> anyhow::Result<Genesis> {
        let text = read(&self.genesis_path())?;
        Genesis::from_json(&text).with_context(|| format!("in {}", self.genesis_path().display()))
    }

    pub fn load_config(&self) -> anyhow::Result<NodeConfig> {
        let text = read(&self.config_path())?;
        let config: NodeConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid config", self.config_path().display()))?;
        if !(1..=600_000).contains(&config.propose_timeout_ms) {
            bail!(
                "{}: propose_timeout_ms must be between 1 and 600000, not {}",
                self.config_path().display(),
                config.propose_timeout_ms
            );
        }
        Ok(config)
    }

    pub fn load_key(&self) -> anyhow::Result<[u8; 32]> {
        let text = read(&self.key_path())?;
        let file: KeyFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid key file", self.key_path().display()))?;
        secret_32(&file.secret_hex).with_context(|| {
            format!("{}: secret_hex must be 64 hex digits", self.key_path().display())
        })
    }
}

/// `node_key.json`: the seed of the node's libp2p identity.
#[derive(Serialize, Deserialize)]
struct NodeKeyFile {
    secret_hex: String,
}

fn secret_32(hex: &str) -> Option<[u8; 32]> {
    crate::unhex(hex).and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
}

/// 32 bytes from the operating system's random source.
pub fn os_entropy() -> anyhow::Result<[u8; 32]> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf)
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

/// Native stake each generated validator bonds at genesis.
pub const GENESIS_BOND: u128 = 1_000 * gridlease_types::params::POWER_UNIT;
/// Native balance each generated validator's account starts with.
pub const GENESIS_BALANCE: u128 = 1_000_000_000_000;

/// A devnet genesis whose validators are `validators` (each bonding [`GENESIS_BOND`] from its
/// own account, which also gets [`GENESIS_BALANCE`]) and that funds `funded`.
pub fn genesis_for(
    chain_id: &str,
    validators: &[&Keypair],
    funded: &[(Address, Vec<Coin>)],
    bid_window: Option<u64>,
) -> anyhow::Result<Genesis> {
    let mut params = Params::devnet();
    if let Some(w) = bid_window {
        params.bid_window = w;
    }
    let native = params.native_denom.clone();
    let mut balances = Vec::new();
    let mut genesis_validators = Vec::new();
    for (i, key) in validators.iter().enumerate() {
        balances.push(GenesisBalance {
            address: key.address(),
            coins: vec![Coin::new(GENESIS_BALANCE, &native)],
        });
        genesis_validators.push(GenesisValidator {
            operator: key.address(),
            consensus_key: key.public_key(),
            moniker: format!("node{i}"),
            bonded: Coin::new(GENESIS_BOND, &native),
        });
    }
    for (a, coins) in funded {
        if balances.iter().any(|b| b.address == *a) {
            continue;
        }
        balances.push(GenesisBalance { address: *a, coins: coins.clone() });
    }
    let genesis = Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 0,
        params,
        balances,
        validators: genesis_validators,
    };
    genesis.validate().context("the generated genesis is invalid")?;
    Ok(genesis)
}

/// One node of a generated testnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetNode {
    pub home: PathBuf,
    /// `host:port` of its RPC.
    pub rpc: String,
    /// `host:port` of its consensus P2P listener.
    pub p2p: String,
    /// The validator's account (and operator) address.
    pub validator: Address,
}

/// Free loopback ports, held open together so they differ, then released.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find a free loopback port")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Writes `dir/node0` ... `dir/node{n-1}`: one validator each, one shared genesis, free
/// loopback ports, and every other node as a persistent peer.
pub fn testnet(
    dir: &Path,
    n: usize,
    chain_id: &str,
    entropy: impl Fn() -> anyhow::Result<[u8; 32]>,
    funded: &[(Address, Vec<Coin>)],
    bid_window: Option<u64>,
    block_time_ms: u64,
) -> anyhow::Result<Vec<TestnetNode>> {
    if n == 0 {
        bail!("a testnet needs at least one validator");
    }
    let keys =
        (0..n).map(|_| entropy().map(Keypair::from_secret)).collect::<anyhow::Result<Vec<_>>>()?;
    let key_refs: Vec<&Keypair> = keys.iter().collect();
    let genesis = genesis_for(chain_id, &key_refs, funded, bid_window)?;
    let ports = free_ports(2 * n)?;
    let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let p2p: Vec<SocketAddr> = (0..n).map(|i| loopback(ports[2 * i + 1])).collect();
    let mut out = Vec::with_capacity(n);
    for (i, key) in keys.iter().enumerate() {
        let home = Home::new(dir.join(format!("node{i}")));
        let config = NodeConfig {
            moniker: format!("node{i}"),
            rpc_addr: loopback(ports[2 * i]),
            p2p_addr: p2p[i],
            block_time_ms,
            persistent_peers: p2p
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| *a)
                .collect(),
            ..NodeConfig::default()
        };
        home.write(&genesis, key, &config)?;
        out.push(TestnetNode {
            home: home.dir.clone(),
            rpc: config.rpc_addr.to_string(),
            p2p: config.p2p_addr.to_string(),
            validator: key.address(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written_home(dir: &Path) -> Home {
        let key = Keypair::from_secret([3; 32]);
        let genesis = genesis_for("home-test", &[&key], &[], None).expect("genesis");
        let home = Home::new(dir);
        home.write(&genesis, &key, &NodeConfig::default()).expect("write");
        home
    }

    #[test]
    fn the_node_key_is_its_own_and_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = written_home(dir.path());
        let node_key = home.node_key().expect("node key");
        assert_ne!(node_key, home.load_key().expect("validator key"));
        assert_eq!(home.node_key().expect("again"), node_key);
        // A home from before node keys gets one on its next start.
        std::fs::remove_file(home.node_key_path()).expect("remove");
        let fresh = home.node_key().expect("created");
        assert_ne!(fresh, node_key);
        assert_eq!(home.node_key().expect("again"), fresh);
        std::fs::write(home.node_key_path(), r#"{"secret_hex":"abcd"}"#).expect("write");
        let err = home.node_key().expect_err("short secret").to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn a_config_without_a_propose_timeout_gets_the_default_and_zero_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = written_home(dir.path());
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(home.config_path()).expect("read"))
                .expect("json");
        json.as_object_mut().expect("object").remove("propose_timeout_ms");
        std::fs::write(home.config_path(), json.to_string()).expect("write");
        assert_eq!(home.load_config().expect("config").propose_timeout_ms, 3000);
        json["propose_timeout_ms"] = 0.into();
        std::fs::write(home.config_path(), json.to_string()).expect("write");
        let err = home.load_config().expect_err("zero timeout").to_string();
        assert!(err.contains("propose_timeout_ms must be between 1 and 600000"), "{err}");
    }
}
