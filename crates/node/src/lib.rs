//! The gridlease node: mempool, block building, Malachite consensus (through the `consensus`
//! crate), execution and storage, and the JSON RPC with live events.
#![forbid(unsafe_code)]

pub mod app;
pub mod block;
pub mod evidence;
pub mod home;
pub mod mempool;
pub mod rpc;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use gridlease_consensus::{ConsensusConfig, ValidatorInfo};
use gridlease_storage::Store;

pub use home::{Home, NodeConfig};

pub use gridlease_types::hex::{decode as unhex, encode as hex};

/// Options of `run` that override the config file.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    pub rpc_addr: Option<SocketAddr>,
    pub p2p_addr: Option<SocketAddr>,
    pub block_time: Option<Duration>,
}

/// Why a node refuses to start on its store: the store holds another chain than the genesis
/// the home gives.
#[derive(Debug, thiserror::Error)]
pub enum ChainMismatch {
    #[error(
        "the chain store in {dir} holds chain `{stored}`, but genesis.json is for chain \
         `{given}`: this home's data belongs to another chain; start it with the genesis it was \
         created with, or use another --home"
    )]
    ChainId { dir: String, stored: String, given: String },
    #[error(
        "the chain store in {dir} was started from another genesis than this genesis.json (its \
         state root at height 0 is {stored}, the file gives {given}): restore the genesis it \
         was created with, or use another --home"
    )]
    Genesis { dir: String, stored: String, given: String },
}

/// Checks that `store` was started from `genesis`: the same chain id and the same state root
/// at height 0.
pub fn store_matches(
    store: &Store,
    genesis: &gridlease_ledger::Genesis,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let dir = dir.display().to_string();
    let stored = store.chain_id()?.unwrap_or_default();
    if stored != genesis.chain_id {
        let given = genesis.chain_id.clone();
        return Err(ChainMismatch::ChainId { dir, stored, given }.into());
    }
    let given = gridlease_storage::genesis_root(genesis);
    let stored = store.root_at(0)?;
    if stored != Some(given) {
        let hex = |h: &[u8]| gridlease_types::hex::encode(h);
        let stored = stored.map(|h| hex(&h)).unwrap_or_else(|| "missing".into());
        return Err(ChainMismatch::Genesis { dir, stored, given: hex(&given) }.into());
    }
    Ok(())
}

/// The validators that decide `height` (the one after the last committed block), from the
/// ledger's state.
pub fn validator_set(store: &Store, height: u64) -> anyhow::Result<Vec<ValidatorInfo>> {
    let view = store.view()?;
    let set = gridlease_ledger::query::validator_set_at(&view, height)?
        .filter(|s| !s.members.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the chain has no validators: genesis.json must list at least one under \
                 `validators` (`gridlease node init` and `gridlease node testnet` write them)"
            )
        })?;
    Ok(set
        .members
        .iter()
        .map(|m| ValidatorInfo { public_key: m.consensus_key.0, voting_power: m.power })
        .collect())
}

/// Runs the node until Ctrl-C or SIGTERM: storage, consensus and the RPC server.
pub async fn run(home: &Home, opts: RunOptions) -> anyhow::Result<()> {
    let genesis = home.load_genesis()?;
    let mut config = home.load_config()?;
    if let Some(a) = opts.rpc_addr {
        config.rpc_addr = a;
    }
    if let Some(a) = opts.p2p_addr {
        config.p2p_addr = a;
    }
    let key = home.load_key()?;
    let node_key = home.node_key()?;
    let mut store = Store::open(home.store_path())
        .with_context(|| format!("cannot open the chain store in {}", home.dir.display()))?;
    if store.is_initialized()? {
        store_matches(&store, &genesis, &home.dir)?;
    } else {
        store.init_genesis(&genesis)?;
    }
    let validators = validator_set(&store, store.height() + 1)?;
    let (committed, _) = tokio::sync::broadcast::channel(1024);
    let node = Arc::new(state::Node {
        chain_id: genesis.chain_id.clone(),
        params: genesis.params.clone(),
        store: RwLock::new(store),
        mempool: Mutex::new(mempool::Mempool::new(config.mempool)),
        committed,
        metrics: state::Metrics::default(),
        requests: Arc::new(tokio::sync::Semaphore::new(state::MAX_RPC_IN_FLIGHT)),
        subscribers: Arc::new(tokio::sync::Semaphore::new(state::MAX_SUBSCRIBERS)),
        evidence: Mutex::new(Default::default()),
    });
    let listener = tokio::net::TcpListener::bind(config.rpc_addr)
        .await
        .with_context(|| format!("cannot listen for RPC on {}", config.rpc_addr))?;
    let rpc_addr = listener.local_addr()?;
    println!("rpc listening on http://{rpc_addr}");
    tracing::info!(target: "node.run", %rpc_addr, height = state::read(&node.store).height(), "node starting");
    let router = rpc::router(node.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rpc_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        // Peer addresses feed the mempool's per-peer limits.
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = rpc_stop.changed().await;
            })
            .await
    });
    let consensus_config = ConsensusConfig {
        home: home.consensus_dir(),
        chain_id: genesis.chain_id.clone(),
        network_id: format!(
            "{}-{}",
            genesis.chain_id,
            &hex(&gridlease_storage::genesis_root(&genesis))[..16]
        ),
        moniker: config.moniker.clone(),
        validator_key: key,
        node_key,
        validators,
        listen_addr: config.p2p_addr,
        persistent_peers: config.persistent_peers.clone(),
        block_time: opts.block_time.unwrap_or(Duration::from_millis(config.block_time_ms)),
        propose_timeout: Duration::from_millis(config.propose_timeout_ms),
        part_size: 128 * 1024,
        max_block_bytes: block::MAX_BLOCK_BYTES,
    };
    let reporter = gridlease_types::Keypair::from_secret(key);
    let app = app::ChainApp { node: node.clone(), reporter };
    let mut consensus_stop = stop_rx.clone();
    let consensus = tokio::spawn(async move {
        gridlease_consensus::run(consensus_config, app, async move {
            let _ = consensus_stop.changed().await;
        })
        .await
    });
    shutdown_signal().await;
    tracing::info!(target: "node.run", "stopping");
    let _ = stop_tx.send(true);
    let result = consensus.await;
    // Requests in flight finish; an event stream never would, and would keep the node from
    // stopping for as long as its subscriber stays: those get a moment, then are cut.
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        tracing::info!(target: "node.run", "cutting the RPC connections still open (event streams)");
    }
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e).context("consensus stopped with an error"),
        Err(e) => Err(anyhow::anyhow!("consensus task failed: {e}")),
    }
}

/// How long a stopping node waits for its RPC connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use gridlease_ledger::{Genesis, GenesisBalance, Params};
    use gridlease_types::{Address, Coin};

    use super::*;

    fn genesis(chain_id: &str, amount: u128) -> Genesis {
        let params = Params::devnet();
        let coins = vec![Coin::new(amount, &params.native_denom)];
        let balances = vec![GenesisBalance { address: Address([9; 20]), coins }];
        Genesis {
            chain_id: chain_id.into(),
            genesis_time_ms: 0,
            params,
            balances,
            validators: vec![],
        }
    }

    /// A node refuses, in one sentence, a genesis that is not the one its store was started
    /// from: another chain id, or the same id with other contents.
    #[test]
    fn a_store_refuses_another_chain_or_genesis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(dir.path().join("chain.redb")).expect("store");
        store.init_genesis(&genesis("alpha", 1000)).expect("genesis");
        store_matches(&store, &genesis("alpha", 1000), dir.path()).expect("its own genesis");

        let e = store_matches(&store, &genesis("beta", 1000), dir.path()).expect_err("chain id");
        let e = e.to_string();
        assert!(e.contains("holds chain `alpha`") && e.contains("is for chain `beta`"), "{e}");

        let e = store_matches(&store, &genesis("alpha", 1001), dir.path()).expect_err("contents");
        assert!(e.to_string().contains("started from another genesis"), "{e}");
    }
}
