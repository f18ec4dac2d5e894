//! The gridlease node: mempool, block building, Malachite consensus (through the `consensus`
//! crate), execution and storage, and the JSON RPC with live events.
#![forbid(unsafe_code)]

pub mod app;
pub mod block;
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
    let mut store = Store::open(home.store_path())
        .with_context(|| format!("cannot open the chain store in {}", home.dir.display()))?;
    if !store.is_initialized()? {
        store.init_genesis(&genesis)?;
    }
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
    let public_key = gridlease_types::Keypair::from_secret(key).public_key().0;
    let consensus_config = ConsensusConfig {
        home: home.consensus_dir(),
        chain_id: genesis.chain_id.clone(),
        moniker: config.moniker.clone(),
        validator_key: key,
        validators: vec![ValidatorInfo { public_key, voting_power: 1 }],
        listen_addr: config.p2p_addr,
        persistent_peers: config.persistent_peers.clone(),
        block_time: opts.block_time.unwrap_or(Duration::from_millis(config.block_time_ms)),
        propose_timeout: Duration::from_secs(3),
        part_size: 128 * 1024,
        max_block_bytes: block::MAX_BLOCK_BYTES,
    };
    let app = app::ChainApp { node: node.clone() };
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
    let _ = server.await;
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e).context("consensus stopped with an error"),
        Err(e) => Err(anyhow::anyhow!("consensus task failed: {e}")),
    }
}

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
